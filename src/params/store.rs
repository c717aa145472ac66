//! The parameters of a running node: their current values, and changes (`ros2 param set`,
//! rqt_reconfigure) checked against the declarations and against each other before any is
//! taken. ROS-free; [`crate::ros::parameters`] serves it over the ROS parameter services.

use std::collections::HashMap;

use super::node_params::{NodeParams, ParamError, ParamSource, ParamValue, check_value};
use super::table::{Apply, Kind, PARAMETERS, ParamSpec, yaml_value};

/// A parameter of the running node: one of [`PARAMETERS`], or one declared at start from what
/// the node has (a QoS override per publisher, [`super::qos`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Declared {
    pub name: String,
    pub kind: Kind,
    pub description: String,
    pub apply: Apply,
}

impl From<&ParamSpec> for Declared {
    fn from(spec: &ParamSpec) -> Self {
        Self {
            name: spec.name.to_string(),
            kind: spec.kind,
            description: spec.description.to_string(),
            apply: spec.apply,
        }
    }
}

/// A change asked for: a parameter's new value (`None`: unset it, which no parameter of this
/// node accepts).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub name: String,
    pub value: Option<ParamValue>,
}

/// A parameter whose value a set changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    pub name: String,
    pub before: ParamValue,
    pub after: ParamValue,
}

/// What a set did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SetOutcome {
    /// One per change (atomic: one for the whole batch): taken, or the reason it was refused.
    pub results: Vec<Result<(), String>>,
    /// The parameters whose value changed, in the order they were set.
    pub changed: Vec<Changed>,
}

/// Every parameter's value, and the [`NodeParams`] they make.
#[derive(Clone, Debug)]
pub struct ParameterStore {
    /// [`PARAMETERS`] in their order, then those declared at start.
    declared: Vec<Declared>,
    defaults: Vec<ParamValue>,
    values: Vec<ParamValue>,
    params: NodeParams,
    spot_ip: Option<String>,
}

impl ParameterStore {
    /// The parameters given at start (a parameter file, `-p`), checked; the others at their
    /// defaults. `spot_ip`: see [`NodeParams::read`]. `extra`: parameters declared at start
    /// besides the table's, each with its default (read-only).
    pub fn new(
        given: &dyn ParamSource,
        spot_ip: Option<String>,
        extra: Vec<(Declared, ParamValue)>,
    ) -> Result<Self, ParamError> {
        let params = NodeParams::read(given, spot_ip.clone())?;
        let mut declared: Vec<Declared> = PARAMETERS.iter().map(Declared::from).collect();
        let mut defaults: Vec<ParamValue> = PARAMETERS
            .iter()
            .map(|spec| spec.kind.default_value())
            .collect();
        for (parameter, default) in extra {
            declared.push(parameter);
            defaults.push(default);
        }
        let values = declared
            .iter()
            .zip(&defaults)
            .map(|(parameter, default)| match given.get(&parameter.name) {
                Some(value) => check_value(&parameter.name, &parameter.kind, value),
                None => Ok(default.clone()),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            declared,
            defaults,
            values,
            params,
            spot_ip,
        })
    }

    /// The checked parameters.
    pub fn params(&self) -> &NodeParams {
        &self.params
    }

    /// The value of `name`, if it is a parameter of this node.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.index(name).map(|i| &self.values[i])
    }

    /// The declaration of `name`, if it is a parameter of this node.
    pub fn declaration(&self, name: &str) -> Option<&Declared> {
        self.index(name).map(|i| &self.declared[i])
    }

    /// Every parameter with its value, the table's first.
    pub fn iter(&self) -> impl Iterator<Item = (&Declared, &ParamValue)> {
        self.declared.iter().zip(&self.values)
    }

    /// One line for the log: the parameters not at their default (never a secret: credentials
    /// are not parameters).
    pub fn summary(&self) -> String {
        let set: Vec<String> = self
            .iter()
            .zip(&self.defaults)
            .filter(|((_, value), default)| value != default)
            .map(|((p, value), _)| format!("{}={}", p.name, yaml_value(value)))
            .collect();
        if set.is_empty() {
            "every parameter at its default".to_string()
        } else {
            format!("{}; every other parameter at its default", set.join(", "))
        }
    }

    /// Sets parameters as `set_parameters` does (each taken or refused on its own, in order),
    /// or, with `atomic`, as `set_parameters_atomically` does (all or none, one result).
    pub fn set(&mut self, changes: &[Change], atomic: bool) -> SetOutcome {
        let before = self.values.clone();
        let mut results = Vec::new();
        if atomic {
            let mut candidate = self.values.clone();
            let outcome = changes
                .iter()
                .try_for_each(|change| self.put(&mut candidate, change))
                .and_then(|()| self.take(candidate));
            results.push(outcome);
        } else {
            for change in changes {
                let mut candidate = self.values.clone();
                let outcome = self
                    .put(&mut candidate, change)
                    .and_then(|()| self.take(candidate));
                results.push(outcome);
            }
        }
        let mut changed: Vec<Changed> = Vec::new();
        for change in changes {
            let Some(i) = self.index(&change.name) else {
                continue;
            };
            let already = changed.iter().any(|c| c.name == change.name);
            if before[i] != self.values[i] && !already {
                changed.push(Changed {
                    name: change.name.clone(),
                    before: before[i].clone(),
                    after: self.values[i].clone(),
                });
            }
        }
        SetOutcome { results, changed }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.declared.iter().position(|p| p.name == name)
    }

    /// Takes `candidate` when the parameters it makes are valid together.
    fn take(&mut self, candidate: Vec<ParamValue>) -> Result<(), String> {
        let source: HashMap<String, ParamValue> = self
            .declared
            .iter()
            .map(|p| p.name.clone())
            .zip(candidate.iter().cloned())
            .collect();
        let params =
            NodeParams::read(&source, self.spot_ip.clone()).map_err(|error| error.to_string())?;
        self.values = candidate;
        self.params = params;
        Ok(())
    }

    /// Puts one change into `values`, or says why it cannot be made.
    fn put(&self, values: &mut [ParamValue], change: &Change) -> Result<(), String> {
        let name = &change.name;
        let Some(i) = self.index(name) else {
            return Err(format!(
                "parameter {name} is not a parameter of this node; `ros2 param list` shows them"
            ));
        };
        let parameter = &self.declared[i];
        if parameter.apply == Apply::AtStart {
            return Err(format!(
                "parameter {name} is read-only while the node runs: set it in the parameter file \
                 or with `-p {name}:=...` and restart the node"
            ));
        }
        let Some(value) = change.value.clone() else {
            return Err(format!(
                "parameter {name} cannot be unset; accepted: {}",
                parameter.kind.accepted()
            ));
        };
        values[i] = check_value(name, &parameter.kind, value).map_err(|error| error.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> ParameterStore {
        let given: HashMap<String, ParamValue> =
            [("robot_host".to_string(), ParamValue::String("robot".into()))].into();
        ParameterStore::new(&given, None, Vec::new()).unwrap()
    }

    fn change(name: &str, value: ParamValue) -> Change {
        Change {
            name: name.to_string(),
            value: Some(value),
        }
    }

    #[test]
    fn a_live_parameter_changes_and_is_reported() {
        let mut store = store();
        let outcome = store.set(
            &[change("target_bitrate_bps", ParamValue::Integer(1_000_000))],
            false,
        );
        assert_eq!(outcome.results, vec![Ok(())]);
        assert_eq!(store.params().target_bitrate_bps, Some(1_000_000));
        assert_eq!(outcome.changed.len(), 1);
        assert_eq!(outcome.changed[0].before, ParamValue::Integer(2_000_000));
        // The same value again changes nothing.
        let again = store.set(
            &[change("target_bitrate_bps", ParamValue::Integer(1_000_000))],
            false,
        );
        assert_eq!(again.results, vec![Ok(())]);
        assert!(again.changed.is_empty());
        // An integer for a number parameter is taken as a number.
        let rate = store.set(&[change("jpeg_max_rate_hz", ParamValue::Integer(5))], false);
        assert_eq!(rate.results, vec![Ok(())]);
        assert_eq!(
            store.get("jpeg_max_rate_hz"),
            Some(&ParamValue::Double(5.0))
        );
    }

    #[test]
    fn refusals_name_the_parameter_and_change_nothing() {
        let mut store = store();
        let cases = [
            (
                change("target_bitrate_bps", ParamValue::Integer(-1)),
                "from 0 to 100000000",
            ),
            (
                change("target_bitrate_bps", ParamValue::String("fast".into())),
                "expected an integer",
            ),
            (
                change("aim_policy", ParamValue::String("nearest".into())),
                "largest, highest_score, round_robin",
            ),
            (
                change("robot_host", ParamValue::String("other".into())),
                "read-only",
            ),
            (
                change("no_such_parameter", ParamValue::Bool(true)),
                "not a parameter of this node",
            ),
            (
                change(
                    "ptz_mount_xyz",
                    ParamValue::DoubleArray(vec![0.0, f64::NAN, 0.0]),
                ),
                "3 finite numbers",
            ),
            (
                Change {
                    name: "jpeg_quality".into(),
                    value: None,
                },
                "cannot be unset",
            ),
        ];
        for (change, expected) in cases {
            let name = change.name.clone();
            let outcome = store.set(&[change], false);
            let reason = outcome.results[0].clone().unwrap_err();
            assert!(
                reason.contains(&name) && reason.contains(expected),
                "{reason}"
            );
            assert!(outcome.changed.is_empty());
        }
        assert_eq!(
            store.params(),
            ParameterStore::new(
                &HashMap::from([("robot_host".to_string(), ParamValue::String("robot".into()))]),
                None,
                Vec::new(),
            )
            .unwrap()
            .params()
        );
    }

    #[test]
    fn an_atomic_batch_with_one_bad_value_changes_nothing() {
        let mut store = store();
        let outcome = store.set(
            &[
                change("jpeg_quality", ParamValue::Integer(50)),
                change("aim_deadband_deg", ParamValue::Double(90.0)),
            ],
            true,
        );
        assert_eq!(outcome.results.len(), 1);
        assert!(
            outcome.results[0]
                .as_ref()
                .unwrap_err()
                .contains("aim_deadband_deg")
        );
        assert!(outcome.changed.is_empty());
        assert_eq!(store.params().jpeg_quality, 80);
        // Not atomic: the good one is taken, the bad one refused.
        let outcome = store.set(
            &[
                change("jpeg_quality", ParamValue::Integer(50)),
                change("aim_deadband_deg", ParamValue::Double(90.0)),
            ],
            false,
        );
        assert_eq!(outcome.results[0], Ok(()));
        assert!(outcome.results[1].is_err());
        assert_eq!(store.params().jpeg_quality, 50);
        assert_eq!(outcome.changed.len(), 1);
    }
}
