//! The ROS parameter services of the node over the ROS-free [`ParameterStore`]:
//! `~/list_parameters`, `~/get_parameters`, `~/get_parameter_types`, `~/set_parameters`,
//! `~/set_parameters_atomically`, `~/describe_parameters`, and `/parameter_events`, as rclcpp
//! serves them, so that `ros2 param`, rqt_reconfigure and Foxglove work unchanged.
//!
//! Served here rather than by r2r's `make_parameter_handler`, which has no descriptors (ranges,
//! read-only, constraints), no refusal of a bad value with a reason, no atomic set and no
//! `/parameter_events`. Every value is checked against its declaration
//! ([`crate::params::table`]) and, with the others, by [`crate::params::NodeParams::read`]
//! before it is taken; a refused set changes nothing and says why.

use std::sync::Arc;

use futures::StreamExt as _;
use r2r::QosProfile;
use r2r::rcl_interfaces::msg::{
    FloatingPointRange, IntegerRange, ListParametersResult, Parameter, ParameterDescriptor,
    ParameterEvent, ParameterValue as ValueMsg, SetParametersResult,
};
use r2r::rcl_interfaces::srv::{
    DescribeParameters, GetParameterTypes, GetParameters, ListParameters, SetParameters,
    SetParametersAtomically,
};
use tokio::sync::watch;

use crate::params::table::yaml_value;
use crate::params::{Apply, Change, Declared, Kind, NodeParams, ParamValue, ParameterStore};
use crate::ros::NodeError;
use crate::ros::messages::wall_time;
use crate::shutdown::CancellationToken;

// rcl_interfaces/msg/ParameterType.
const NOT_SET: u8 = 0;
const BOOL: u8 = 1;
const INTEGER: u8 = 2;
const DOUBLE: u8 = 3;
const STRING: u8 = 4;
const BYTE_ARRAY: u8 = 5;
const BOOL_ARRAY: u8 = 6;
const INTEGER_ARRAY: u8 = 7;
const DOUBLE_ARRAY: u8 = 8;
const STRING_ARRAY: u8 = 9;

/// A value as `rcl_interfaces/msg/ParameterValue`.
fn to_msg(value: &ParamValue) -> ValueMsg {
    let mut msg = ValueMsg::default();
    match value {
        ParamValue::Bool(b) => (msg.type_, msg.bool_value) = (BOOL, *b),
        ParamValue::Integer(i) => (msg.type_, msg.integer_value) = (INTEGER, *i),
        ParamValue::Double(d) => (msg.type_, msg.double_value) = (DOUBLE, *d),
        ParamValue::String(s) => (msg.type_, msg.string_value) = (STRING, s.clone()),
        ParamValue::ByteArray(v) => (msg.type_, msg.byte_array_value) = (BYTE_ARRAY, v.clone()),
        ParamValue::BoolArray(v) => (msg.type_, msg.bool_array_value) = (BOOL_ARRAY, v.clone()),
        ParamValue::IntegerArray(v) => {
            (msg.type_, msg.integer_array_value) = (INTEGER_ARRAY, v.clone());
        }
        ParamValue::DoubleArray(v) => {
            (msg.type_, msg.double_array_value) = (DOUBLE_ARRAY, v.clone());
        }
        ParamValue::StringArray(v) => {
            (msg.type_, msg.string_array_value) = (STRING_ARRAY, v.clone());
        }
    }
    msg
}

/// A `rcl_interfaces/msg/ParameterValue`; `None` for "not set" (or an unknown type).
fn from_msg(msg: ValueMsg) -> Option<ParamValue> {
    Some(match msg.type_ {
        BOOL => ParamValue::Bool(msg.bool_value),
        INTEGER => ParamValue::Integer(msg.integer_value),
        DOUBLE => ParamValue::Double(msg.double_value),
        STRING => ParamValue::String(msg.string_value),
        BYTE_ARRAY => ParamValue::ByteArray(msg.byte_array_value),
        BOOL_ARRAY => ParamValue::BoolArray(msg.bool_array_value),
        INTEGER_ARRAY => ParamValue::IntegerArray(msg.integer_array_value),
        DOUBLE_ARRAY => ParamValue::DoubleArray(msg.double_array_value),
        STRING_ARRAY => ParamValue::StringArray(msg.string_array_value),
        _ => return None,
    })
}

fn type_of(kind: &Kind) -> u8 {
    match kind {
        Kind::Bool { .. } => BOOL,
        Kind::Integer { .. } => INTEGER,
        Kind::Double { .. } => DOUBLE,
        Kind::String { .. } => STRING,
        Kind::StringArray { .. } => STRING_ARRAY,
        Kind::DoubleArray { .. } => DOUBLE_ARRAY,
    }
}

/// What `ros2 param describe` and rqt_reconfigure show.
pub fn descriptor(spec: &Declared) -> ParameterDescriptor {
    let mut descriptor = ParameterDescriptor {
        name: spec.name.clone(),
        type_: type_of(&spec.kind),
        description: spec.description.clone(),
        read_only: spec.apply == Apply::AtStart,
        dynamic_typing: false,
        ..ParameterDescriptor::default()
    };
    match spec.kind {
        Kind::Integer { min, max, .. } => descriptor.integer_range.push(IntegerRange {
            from_value: min,
            to_value: max,
            step: 1,
        }),
        Kind::Double { min, max, .. } => descriptor.floating_point_range.push(FloatingPointRange {
            from_value: min,
            to_value: max,
            step: 0.0,
        }),
        Kind::String { choices: [], .. } | Kind::StringArray { choices: [], .. } => {}
        Kind::String { .. } | Kind::StringArray { .. } | Kind::DoubleArray { .. } => {
            descriptor.additional_constraints = format!("Accepted: {}.", spec.kind.accepted());
        }
        Kind::Bool { .. } => {}
    }
    if spec.apply == Apply::AtStart {
        descriptor.additional_constraints = format!(
            "{} Read-only while the node runs: set it in the parameter file or with -p, and restart.",
            descriptor.additional_constraints
        )
        .trim_start()
        .to_string();
    }
    descriptor
}

/// The names `list_parameters` answers with, as rclcpp does: all of them (depth 0 =
/// recursive, else fewer than `depth` dots), or those under `prefixes`.
fn list_names(store: &ParameterStore, prefixes: &[String], depth: u64) -> ListParametersResult {
    let within_depth = |rest: &str| depth == 0 || (rest.matches('.').count() as u64) < depth;
    let mut result = ListParametersResult::default();
    for (spec, _) in store.iter() {
        let name = spec.name.as_str();
        let listed = if prefixes.is_empty() {
            within_depth(name)
        } else {
            prefixes.iter().any(|prefix| {
                name == prefix
                    || name
                        .strip_prefix(prefix.as_str())
                        .and_then(|rest| rest.strip_prefix('.'))
                        .is_some_and(within_depth)
            })
        };
        if !listed {
            continue;
        }
        result.names.push(name.to_string());
        if let Some((prefix, _)) = name.rsplit_once('.')
            && !result.prefixes.iter().any(|p| p == prefix)
        {
            result.prefixes.push(prefix.to_string());
        }
    }
    result
}

fn parameter(name: &str, value: &ParamValue) -> Parameter {
    Parameter {
        name: name.to_string(),
        value: to_msg(value),
    }
}

/// The parameter services' requests.
struct Requests<L, G, T, S, A, D> {
    list: L,
    get: G,
    types: T,
    set: S,
    atomic: A,
    describe: D,
}

/// Creates the services and `/parameter_events`, announces every parameter on it, and starts
/// the task that serves them until `shutdown`. The receiver sees the parameters after each
/// change that was taken.
pub fn serve(
    node: &mut r2r::Node,
    store: ParameterStore,
    shutdown: CancellationToken,
) -> Result<
    (
        watch::Receiver<Arc<NodeParams>>,
        tokio::task::JoinHandle<()>,
    ),
    NodeError,
> {
    let ros = |what: &'static str| move |source| NodeError::Ros { what, source };
    let qos = QosProfile::parameters;
    let requests = Requests {
        list: node
            .create_service::<ListParameters::Service>("~/list_parameters", qos())
            .map_err(ros("creating ~/list_parameters"))?,
        get: node
            .create_service::<GetParameters::Service>("~/get_parameters", qos())
            .map_err(ros("creating ~/get_parameters"))?,
        types: node
            .create_service::<GetParameterTypes::Service>("~/get_parameter_types", qos())
            .map_err(ros("creating ~/get_parameter_types"))?,
        set: node
            .create_service::<SetParameters::Service>("~/set_parameters", qos())
            .map_err(ros("creating ~/set_parameters"))?,
        atomic: node
            .create_service::<SetParametersAtomically::Service>(
                "~/set_parameters_atomically",
                qos(),
            )
            .map_err(ros("creating ~/set_parameters_atomically"))?,
        describe: node
            .create_service::<DescribeParameters::Service>("~/describe_parameters", qos())
            .map_err(ros("creating ~/describe_parameters"))?,
    };

    let events = node
        .create_publisher::<ParameterEvent>("/parameter_events", QosProfile::parameter_events())
        .map_err(ros("creating the /parameter_events publisher"))?;
    let node_name = node
        .fully_qualified_name()
        .map_err(ros("reading the node's name"))?;
    let announced = ParameterEvent {
        stamp: wall_time(),
        node: node_name.clone(),
        new_parameters: store.iter().map(|(s, v)| parameter(&s.name, v)).collect(),
        ..ParameterEvent::default()
    };
    if let Err(error) = events.publish(&announced) {
        tracing::warn!(%error, "could not announce the parameters on /parameter_events");
    }
    let (changes, params) = watch::channel(Arc::new(store.params().clone()));
    let server = Server {
        store,
        events,
        node_name,
        changes,
    };
    let task = tokio::spawn(server.run(requests, shutdown));
    Ok((params, task))
}

struct Server {
    store: ParameterStore,
    events: r2r::Publisher<ParameterEvent>,
    node_name: String,
    changes: watch::Sender<Arc<NodeParams>>,
}

type Request<T> = r2r::ServiceRequest<T>;

impl Server {
    async fn run(
        mut self,
        requests: Requests<
            impl futures::Stream<Item = Request<ListParameters::Service>> + Unpin,
            impl futures::Stream<Item = Request<GetParameters::Service>> + Unpin,
            impl futures::Stream<Item = Request<GetParameterTypes::Service>> + Unpin,
            impl futures::Stream<Item = Request<SetParameters::Service>> + Unpin,
            impl futures::Stream<Item = Request<SetParametersAtomically::Service>> + Unpin,
            impl futures::Stream<Item = Request<DescribeParameters::Service>> + Unpin,
        >,
        shutdown: CancellationToken,
    ) {
        let Requests {
            mut list,
            mut get,
            mut types,
            mut set,
            mut atomic,
            mut describe,
        } = requests;
        loop {
            let answered = tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(request) = list.next() => {
                    let m = &request.message;
                    let result = list_names(&self.store, &m.prefixes, m.depth);
                    request.respond(ListParameters::Response { result })
                }
                Some(request) = get.next() => {
                    let values = request.message.names.iter().map(|name| {
                        self.store.get(name).map(to_msg).unwrap_or_default()
                    }).collect();
                    request.respond(GetParameters::Response { values })
                }
                Some(request) = types.next() => {
                    let types = request.message.names.iter().map(|name| {
                        self.store.declaration(name).map_or(NOT_SET, |spec| type_of(&spec.kind))
                    }).collect();
                    request.respond(GetParameterTypes::Response { types })
                }
                Some(request) = describe.next() => {
                    let descriptors = request.message.names.iter().map(|name| {
                        self.store.declaration(name).map_or_else(
                            || ParameterDescriptor { name: name.clone(), ..ParameterDescriptor::default() },
                            descriptor,
                        )
                    }).collect();
                    request.respond(DescribeParameters::Response { descriptors })
                }
                Some(request) = set.next() => {
                    let results = self.set(&request.message.parameters, false);
                    request.respond(SetParameters::Response { results })
                }
                Some(request) = atomic.next() => {
                    let result = self.set(&request.message.parameters, true).into_iter().next().unwrap_or_default();
                    request.respond(SetParametersAtomically::Response { result })
                }
                else => return,
            };
            if let Err(error) = answered {
                tracing::warn!(%error, "could not answer a parameter service call");
            }
        }
    }

    /// Sets parameters; logs and announces what changed, and hands the new parameters on.
    fn set(&mut self, parameters: &[Parameter], atomic: bool) -> Vec<SetParametersResult> {
        let changes: Vec<Change> = parameters
            .iter()
            .map(|p| Change {
                name: p.name.clone(),
                value: from_msg(p.value.clone()),
            })
            .collect();
        let outcome = self.store.set(&changes, atomic);
        for refused in outcome.results.iter().filter_map(|r| r.as_ref().err()) {
            tracing::warn!("parameter change refused: {refused}");
        }
        if !outcome.changed.is_empty() {
            for changed in &outcome.changed {
                tracing::info!(
                    "parameter {} set to {} (was {})",
                    changed.name,
                    yaml_value(&changed.after),
                    yaml_value(&changed.before)
                );
            }
            let event = ParameterEvent {
                stamp: wall_time(),
                node: self.node_name.clone(),
                changed_parameters: outcome
                    .changed
                    .iter()
                    .map(|c| parameter(&c.name, &c.after))
                    .collect(),
                ..ParameterEvent::default()
            };
            if let Err(error) = self.events.publish(&event) {
                tracing::warn!(%error, "could not publish /parameter_events");
            }
            self.changes
                .send_replace(Arc::new(self.store.params().clone()));
        }
        outcome
            .results
            .into_iter()
            .map(|result| SetParametersResult {
                successful: result.is_ok(),
                reason: result.err().unwrap_or_default(),
            })
            .collect()
    }
}
