//! The ROS 2 node (r2r): a thin adapter over [`crate::stream`].
//!
//! Publishes `image_raw` (bgr8) and `camera_info` with identical headers, the compressed
//! outputs `image_raw/compressed`, `image_raw/ffmpeg` and `image_raw/foxglove`
//! ([`compressed`]), `~/stats`, `/diagnostics` and the log lines on `/rosout` ([`rosout`]);
//! serves `~/start_stream` and `~/stop_stream`; subscribes to `detections` and `detections_3d`
//! ([`detections`]) to start the stream and to aim the PTZ ([`aiming`]); records events to MCAP
//! ([`recording`]: `~/start_recording`, `~/stop_recording`, `record_on_detection`). Everything
//! else lives in the ROS-free library.

pub mod aiming;
pub mod compressed;
pub mod detections;
pub mod image_cdr;
pub mod logging;
pub mod messages;
pub mod middleware;
pub mod parameters;
pub mod recording;
pub mod rosout;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use r2r::QosProfile;
use r2r::sensor_msgs::srv::SetCameraInfo;
use r2r::std_srvs::srv::Trigger;
use tokio::sync::watch;

use crate::camera_info::{self, Calibration};
use crate::camera_link::answerer::AnswererConfig;
use crate::camera_link::signalling::SignallingConfig;
use crate::lock;
use crate::media::capture_clock::CaptureClock;
use crate::media::convert::ColorSpec;
use crate::media::decoder::DecoderSettings;
use crate::media::handoff::{Demand, DropOldestQueue};
use crate::media::jpeg::JpegSettings;
use crate::params::qos::{self, PublisherQos};
use crate::params::{Declared, NodeParams, ParamError, ParamSource, ParamValue, ParameterStore};
use crate::robot::{Credentials, RobotConfig, RobotError};
use crate::ros::messages::Stamper;
use crate::shutdown::CancellationToken;
use crate::stats::{Rates, bump};
use crate::status_report::{self, DetectionSummary};
use crate::stream::{
    self, AccessUnitTap, AdaptiveBitrateConfig, CameraSettings, InitialPtz, JpegOutput,
    LiveSettings, PrepareConfig, StreamConfig, StreamHandle, StreamState,
};
use crate::trigger::{AutoTrigger, TriggerAction, TriggerConfig};

/// The node's name (launch files may remap it).
pub const NODE_NAME: &str = "spot_ptz_stream";
/// How long the spin loop waits per turn; bounds shutdown latency.
const SPIN_INTERVAL: Duration = Duration::from_millis(20);
/// How often the node looks whether its image outputs have subscribers.
const SUBSCRIBER_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Per-RPC timeout towards the robot.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// The node could not start or failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("ROS error while {what}: {source}")]
    Ros {
        what: &'static str,
        #[source]
        source: r2r::Error,
    },
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Robot(#[from] RobotError),
    #[error(transparent)]
    CameraInfo(#[from] camera_info::CameraInfoError),
    /// Quotes its cause (not chained: printed once).
    #[error("cannot read {what} {path}: {cause}; check the parameter {what}")]
    File {
        what: &'static str,
        path: String,
        cause: std::io::Error,
    },
}

fn ros(what: &'static str) -> impl FnOnce(r2r::Error) -> NodeError {
    move |source| NodeError::Ros { what, source }
}

struct RosParams(HashMap<String, ParamValue>);

impl ParamSource for RosParams {
    fn get(&self, name: &str) -> Option<ParamValue> {
        self.0.get(name).cloned()
    }
}

fn read_params(node: &r2r::Node) -> RosParams {
    let params = lock(&node.params);
    let map = params
        .iter()
        .filter_map(|(name, p)| {
            let value = match &p.value {
                r2r::ParameterValue::Bool(b) => ParamValue::Bool(*b),
                r2r::ParameterValue::Integer(i) => ParamValue::Integer(*i),
                r2r::ParameterValue::Double(d) => ParamValue::Double(*d),
                r2r::ParameterValue::String(s) => ParamValue::String(s.clone()),
                r2r::ParameterValue::StringArray(v) => ParamValue::StringArray(v.clone()),
                r2r::ParameterValue::DoubleArray(v) => ParamValue::DoubleArray(v.clone()),
                r2r::ParameterValue::IntegerArray(v) => ParamValue::IntegerArray(v.clone()),
                r2r::ParameterValue::BoolArray(v) => ParamValue::BoolArray(v.clone()),
                r2r::ParameterValue::ByteArray(v) => ParamValue::ByteArray(v.clone()),
                r2r::ParameterValue::NotSet => return None,
            };
            Some((name.clone(), value))
        })
        .collect();
    RosParams(map)
}

fn read_pem(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|cause| NodeError::File {
        what,
        path: path.display().to_string(),
        cause,
    })
}

/// The demands the subscriber counts set, and where the compressed outputs' data arrives.
struct OutputFeeds {
    /// `image_raw/ffmpeg`, `image_raw/foxglove` and the event recording (one copy of each
    /// access unit for all).
    passthrough: AccessUnitTap,
    /// `image_raw/compressed`, and where its live settings go.
    jpeg: Option<(JpegOutput, watch::Sender<JpegSettings>)>,
}

fn jpeg_settings(params: &NodeParams) -> JpegSettings {
    JpegSettings {
        quality: params.jpeg_quality,
        max_rate_hz: params.jpeg_max_rate_hz,
        color: ColorSpec {
            range: params.color_range,
            matrix: params.color_matrix,
        },
    }
}

impl OutputFeeds {
    fn new(params: &NodeParams) -> Self {
        let outputs = params.outputs;
        Self {
            // Also the event recording's video: always there (it costs nothing while its demand
            // is not set).
            passthrough: AccessUnitTap {
                queue: DropOldestQueue::new(compressed::PASSTHROUGH_QUEUE),
                demand: Demand::new(false),
            },
            jpeg: outputs.compressed.then(|| {
                let (settings_tx, settings) = watch::channel(jpeg_settings(params));
                let output = JpegOutput {
                    settings,
                    demand: Demand::new(false),
                    pictures: DropOldestQueue::new(compressed::JPEG_QUEUE),
                };
                (output, settings_tx)
            }),
        }
    }

    fn jpeg_output(&self) -> Option<&JpegOutput> {
        self.jpeg.as_ref().map(|(output, _)| output)
    }

    /// Ends the compressed publishers (their queues are closed).
    fn close(&self) {
        self.passthrough.queue.close();
        if let Some(jpeg) = self.jpeg_output() {
            jpeg.pictures.close();
        }
    }
}

/// What the stream lets change while it runs, from the parameters.
fn live_settings(params: &NodeParams) -> LiveSettings {
    LiveSettings {
        camera: CameraSettings {
            screen: params.screen.clone(),
            target_bitrate_bps: params.target_bitrate_bps,
            idr_interval_frames: params.idr_interval_frames,
        },
        adaptive_bitrate: params.adaptive_bitrate.then_some(AdaptiveBitrateConfig {
            min_bitrate_bps: params.min_bitrate_bps,
        }),
        stall_timeout: params.stall_timeout,
        reorder_wait: params.reorder_wait,
    }
}

fn trigger_config(params: &NodeParams) -> TriggerConfig {
    TriggerConfig {
        enabled: params.auto_trigger,
        class_ids: params.trigger_class_ids.clone(),
        min_score: params.trigger_min_score,
        timeout: params.trigger_timeout,
    }
}

fn stream_config(
    params: &NodeParams,
    credentials: Credentials,
    feeds: &OutputFeeds,
) -> Result<StreamConfig, NodeError> {
    let robot_ca = params
        .robot_ca_path
        .as_deref()
        .map(|p| read_pem("robot_ca_path", p))
        .transpose()?;
    let camera_ca = params
        .camera_ca_path
        .as_deref()
        .map(|p| read_pem("camera_ca_path", p))
        .transpose()?;
    let bind = SocketAddr::new(
        params
            .udp_bind_address
            .parse()
            .unwrap_or([0, 0, 0, 0].into()),
        0,
    );
    let live = live_settings(params);
    Ok(StreamConfig {
        robot: RobotConfig {
            host: params.robot_host.clone(),
            grpc_port: params.grpc_port,
            root_ca_pem: robot_ca,
            connect_timeout: params.connect_timeout,
            rpc_timeout: RPC_TIMEOUT,
            client_name: format!("{NODE_NAME}-{}", std::process::id()),
        },
        credentials,
        signalling: SignallingConfig {
            host: params.robot_host.clone(),
            port: params.sdp_port,
            path: params.sdp_path.clone(),
            camera_ca_pem: camera_ca,
            request_timeout: params.connect_timeout,
        },
        answerer: AnswererConfig {
            udp_bind_addrs: vec![bind.to_string()],
            udp_port_range: params.udp_port_range,
            ice_gather_timeout: params.connect_timeout.min(Duration::from_secs(5)),
            udp_receive_buffer_bytes: params.udp_receive_buffer_bytes,
        },
        prepare: PrepareConfig {
            screen: live.camera.screen,
            target_bitrate_bps: live.camera.target_bitrate_bps,
            idr_interval_frames: live.camera.idr_interval_frames,
            // With aiming, the aimer owns the PTZ (it sends the initial pose once at start-up):
            // a session's set-up must not turn the camera away from the person it was just
            // aimed at, nor back at every reconnect.
            ptz: (params.initial_ptz_enabled && !params.aiming.enabled).then(|| InitialPtz {
                name: params.initial_ptz_name.clone(),
                pan_deg: Some(params.initial_pan_deg as f32),
                tilt_deg: Some(params.initial_tilt_deg as f32),
                zoom: Some(params.initial_zoom as f32),
            }),
        },
        connect_timeout: params.connect_timeout,
        stall_timeout: live.stall_timeout,
        reorder_wait: live.reorder_wait,
        adaptive_bitrate: live.adaptive_bitrate,
        reconnect_initial: params.reconnect_initial,
        reconnect_max: params.reconnect_max,
        token_refresh_interval: params.token_refresh,
        decoder: DecoderSettings {
            backend: params.decoder,
            color: ColorSpec {
                range: params.color_range,
                matrix: params.color_matrix,
            },
            resync_wait: params.keyframe_wait,
            // The serialized message's fields go in front of the pixels (see image_cdr).
            headroom_bytes: image_cdr::prefix_len(&params.frame_id),
        },
        queue_depth: params.queue_depth,
        max_access_unit_bytes: params.max_access_unit_bytes,
        access_unit_tap: Some(feeds.passthrough.clone()),
        jpeg: feeds.jpeg_output().cloned(),
    })
}

/// The calibration at `camera_info_url`. A file that does not exist yet is no calibration
/// (`~/set_camera_info` writes it); one that cannot be read or parsed stops the node.
fn load_calibration(params: &NodeParams) -> Result<Option<Calibration>, NodeError> {
    let Some(url) = params.camera_info_url.as_deref() else {
        if params.aiming.enabled {
            tracing::info!(
                "no camera_info_url: camera_info's K comes from the lens model (hfov_deg_at_zoom_1) at the measured zoom"
            );
        } else {
            tracing::info!("no camera_info_url: camera_info is published uncalibrated (K = 0)");
        }
        return Ok(None);
    };
    match camera_info::load(url) {
        Ok(calibration) => Ok(Some(calibration)),
        Err(camera_info::CameraInfoError::Read { path, cause })
            if cause.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::warn!(
                "camera_info_url: {path} does not exist yet; camera_info stays uncalibrated until ~/set_camera_info (cameracalibrator's \"commit\") writes it"
            );
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// The image topics the node publishes, fully qualified (for their QoS overrides), with the QoS
/// each has unless overridden.
struct PublishedTopics(Vec<(&'static str, String, PublisherQos)>);

impl PublishedTopics {
    fn of(params: &NodeParams, namespace: &str) -> Self {
        let image = PublisherQos {
            reliability: params.image_qos_reliability.to_string(),
            durability: "volatile".to_string(),
            history: "keep_last".to_string(),
            depth: params.image_qos_depth as i64,
        };
        let passthrough = PublisherQos {
            reliability: "reliable".to_string(),
            depth: compressed::PASSTHROUGH_QOS_DEPTH as i64,
            ..image.clone()
        };
        let outputs = params.outputs;
        let topics = [
            ("image_raw", outputs.raw, &image),
            ("camera_info", true, &image),
            ("image_raw/compressed", outputs.compressed, &image),
            ("image_raw/ffmpeg", outputs.ffmpeg, &passthrough),
            ("image_raw/foxglove", outputs.foxglove, &passthrough),
            ("ptz_detections", params.aiming.enabled, &image),
        ];
        let prefix = namespace.trim_end_matches('/');
        Self(
            topics
                .into_iter()
                .filter(|(_, offered, _)| *offered)
                .map(|(topic, _, qos)| (topic, format!("{prefix}/{topic}"), qos.clone()))
                .collect(),
        )
    }

    fn declare_qos_overrides(&self) -> Vec<(Declared, ParamValue)> {
        self.0
            .iter()
            .flat_map(|(_, full, qos)| qos::declare(full, qos))
            .collect()
    }

    /// Each topic's QoS, its overrides applied.
    fn qos(&self, store: &ParameterStore) -> HashMap<&'static str, QosProfile> {
        self.0
            .iter()
            .map(|(topic, full, qos)| (*topic, qos_profile(&qos::read(store, full, qos))))
            .collect()
    }
}

fn qos_profile(qos: &PublisherQos) -> QosProfile {
    use r2r::qos::{DurabilityPolicy, HistoryPolicy, ReliabilityPolicy};
    let profile = QosProfile::default()
        .reliability(match qos.reliability.as_str() {
            "best_effort" => ReliabilityPolicy::BestEffort,
            "system_default" => ReliabilityPolicy::SystemDefault,
            _ => ReliabilityPolicy::Reliable,
        })
        .durability(match qos.durability.as_str() {
            "transient_local" => DurabilityPolicy::TransientLocal,
            "system_default" => DurabilityPolicy::SystemDefault,
            _ => DurabilityPolicy::Volatile,
        });
    match qos.history.as_str() {
        "keep_all" => profile.keep_all(),
        "system_default" => profile.history(HistoryPolicy::SystemDefault),
        _ => profile.keep_last(usize::try_from(qos.depth).unwrap_or(1)),
    }
}

/// The image and camera_info publishers.
#[derive(Clone)]
struct ImagePublishers {
    image: Option<r2r::PublisherUntyped>,
    info: r2r::Publisher<r2r::sensor_msgs::msg::CameraInfo>,
    jpeg: Option<r2r::Publisher<r2r::sensor_msgs::msg::CompressedImage>>,
    ffmpeg: Option<r2r::Publisher<r2r::ffmpeg_image_transport_msgs::msg::FFMPEGPacket>>,
    foxglove: Option<r2r::Publisher<r2r::foxglove_msgs::msg::CompressedVideo>>,
    /// `ptz_detections`, offered while aiming is on.
    people: Option<r2r::Publisher<r2r::vision_msgs::msg::Detection2DArray>>,
}

impl ImagePublishers {
    /// The publishers of the topics `qos` has (those offered), each with its QoS.
    fn create(
        node: &mut r2r::Node,
        qos: &HashMap<&'static str, QosProfile>,
    ) -> Result<Self, NodeError> {
        let qos_of = |topic: &str| qos.get(topic).cloned();
        Ok(Self {
            // Images are published serialized in place (image_cdr): an untyped publisher.
            image: qos_of("image_raw")
                .map(|qos| node.create_publisher_untyped("image_raw", "sensor_msgs/msg/Image", qos))
                .transpose()
                .map_err(ros("creating the image_raw publisher"))?,
            info: node
                .create_publisher(
                    "camera_info",
                    qos_of("camera_info").unwrap_or_else(QosProfile::default),
                )
                .map_err(ros("creating the camera_info publisher"))?,
            jpeg: qos_of("image_raw/compressed")
                .map(|qos| node.create_publisher("image_raw/compressed", qos))
                .transpose()
                .map_err(ros("creating the image_raw/compressed publisher"))?,
            ffmpeg: qos_of("image_raw/ffmpeg")
                .map(|qos| node.create_publisher("image_raw/ffmpeg", qos))
                .transpose()
                .map_err(ros("creating the image_raw/ffmpeg publisher"))?,
            foxglove: qos_of("image_raw/foxglove")
                .map(|qos| node.create_publisher("image_raw/foxglove", qos))
                .transpose()
                .map_err(ros("creating the image_raw/foxglove publisher"))?,
            people: qos_of("ptz_detections")
                .map(|qos| node.create_publisher("ptz_detections", qos))
                .transpose()
                .map_err(ros("creating the ptz_detections publisher"))?,
        })
    }
}

/// Runs the node until `shutdown` is cancelled. `ctx` comes from `r2r::Context::create()`.
pub async fn run(ctx: r2r::Context, shutdown: CancellationToken) -> Result<(), NodeError> {
    let mut node = r2r::Node::create(ctx, NODE_NAME, "").map_err(ros("creating the node"))?;
    let rosout = rosout::start(&mut node, shutdown.clone());
    let given = read_params(&node);
    let spot_ip = std::env::var("SPOT_IP").ok();
    let topics = PublishedTopics::of(
        &NodeParams::read(&given, spot_ip.clone())?,
        &node
            .namespace()
            .map_err(ros("reading the node's namespace"))?,
    );
    let store = ParameterStore::new(&given, spot_ip, topics.declare_qos_overrides())?;
    tracing::info!(
        "parameters: {} (credentials from BOSDYN_CLIENT_USERNAME/BOSDYN_CLIENT_PASSWORD)",
        store.summary()
    );
    let params = store.params().clone();
    let credentials = Credentials::from_env()?;
    let (calibration_tx, calibration) = watch::channel(load_calibration(&params)?);

    let publishers = ImagePublishers::create(&mut node, &topics.qos(&store))?;
    let report_publishers = ReportPublishers::create(&mut node, &params)?;
    let start_srv = node
        .create_service::<Trigger::Service>("~/start_stream", QosProfile::services_default())
        .map_err(ros("creating ~/start_stream"))?;
    let stop_srv = node
        .create_service::<Trigger::Service>("~/stop_stream", QosProfile::services_default())
        .map_err(ros("creating ~/stop_stream"))?;
    let set_camera_info_srv = node
        .create_service::<SetCameraInfo::Service>(
            "~/set_camera_info",
            QosProfile::services_default(),
        )
        .map_err(ros("creating ~/set_camera_info"))?;
    let detections = detections::subscribe(&mut node)?;
    let (live_params, parameter_server) = parameters::serve(&mut node, store, shutdown.clone())?;

    let feeds = OutputFeeds::new(&params);
    let stream_shutdown = shutdown.child_token();
    let (handle, stream_task) = stream::spawn(
        stream_config(&params, credentials.clone(), &feeds)?,
        params.autostart,
        stream_shutdown.clone(),
    )?;
    let trigger = Arc::new(Mutex::new(AutoTrigger::new(trigger_config(&params))));
    if params.autostart && params.auto_trigger {
        tracing::info!(
            "autostart with auto_trigger: streaming now, and stopping trigger_timeout_secs after the last matching detection (none yet)"
        );
        lock(&trigger).own_started_stream(Instant::now());
    }

    let stamper = Arc::new(Mutex::new(Stamper::new()));
    let recording = recording::start(
        &mut node,
        &params,
        handle.clone(),
        feeds.passthrough.demand.clone(),
        shutdown.clone(),
    )?;
    let recorder = recording.context.clone();
    let aiming = if params.aiming.enabled {
        Some(aiming::start(
            &mut node,
            &params,
            handle.robot(),
            credentials,
            stamper.clone(),
            recorder.clone(),
            shutdown.clone(),
        )?)
    } else {
        tracing::info!("aiming is off (aiming: false): the PTZ is not moved");
        None
    };
    let aim = aiming.as_ref().map(|a| a.context.clone());
    let people_wanted = Demand::new(false);

    // The node is spun on its own thread; publishers are used from tasks.
    let spin_shutdown = shutdown.clone();
    let spinner = tokio::task::spawn_blocking(move || {
        while !spin_shutdown.is_cancelled() {
            node.spin_once(SPIN_INTERVAL);
        }
    });

    let mut tasks = vec![
        parameter_server,
        recording.task,
        tokio::spawn(follow_parameters(
            live_params.clone(),
            LiveTargets {
                handle: handle.clone(),
                jpeg: feeds.jpeg.as_ref().map(|(_, settings)| settings.clone()),
                trigger: trigger.clone(),
                aim: aim.clone(),
                recording: recorder.clone(),
            },
            shutdown.clone(),
        )),
        tokio::spawn(follow_subscribers(
            handle.clone(),
            publishers.clone(),
            Demands {
                jpeg: feeds.jpeg_output().map(|j| j.demand.clone()),
                passthrough: feeds.passthrough.demand.clone(),
                people: people_wanted.clone(),
                recording: recorder.clone(),
            },
            shutdown.clone(),
        )),
        tokio::spawn(serve_services(
            handle.clone(),
            trigger.clone(),
            start_srv,
            stop_srv,
            shutdown.clone(),
        )),
        tokio::spawn(serve_set_camera_info(
            set_camera_info_srv,
            Calibrator {
                url: params.camera_info_url.clone(),
                calibration: calibration_tx,
                handle: handle.clone(),
                aim: aim.clone(),
            },
            shutdown.clone(),
        )),
        tokio::spawn(follow_detections(
            handle.clone(),
            trigger.clone(),
            aim.clone(),
            recorder.clone(),
            detections,
            shutdown.clone(),
        )),
        tokio::spawn(report(
            handle.clone(),
            trigger,
            live_params,
            report_publishers,
            aim.clone(),
            recorder.clone(),
            shutdown.clone(),
        )),
    ];
    let outputs = spawn_outputs(
        publishers,
        OutputSources {
            handle: &handle,
            feeds: &feeds,
            frame_id: &params.frame_id,
            calibration,
            stamper,
            aim: aim.clone(),
            recorder: recorder.clone(),
            people_wanted,
        },
    );

    shutdown.cancelled().await;
    stream_shutdown.cancel();
    // The stream task closes the peer connection and the frame queue, ending the publisher.
    let _ = stream_task.await;
    let _ = outputs.frames.await;
    feeds.close();
    if let Some(aim) = &aim {
        aim.close_people_frames();
    }
    tasks.extend(outputs.others);
    tasks.extend(aiming.into_iter().flat_map(|aiming| aiming.tasks));
    for task in tasks {
        let _ = task.await;
    }
    // Every recorded message is queued: the open file gets its last chunk and its index.
    recorder.finish().await;
    let _ = spinner.await;
    if let Some(rosout) = rosout {
        let _ = rosout.await;
    }
    Ok(())
}

/// What the output publishers take their data from.
struct OutputSources<'a> {
    handle: &'a StreamHandle,
    feeds: &'a OutputFeeds,
    frame_id: &'a str,
    calibration: watch::Receiver<Option<Calibration>>,
    stamper: Arc<Mutex<Stamper>>,
    aim: Option<Arc<aiming::AimContext>>,
    recorder: Arc<recording::Recording>,
    /// Whether anybody subscribes to `ptz_detections`.
    people_wanted: Demand,
}

/// The tasks publishing each frame's outputs.
struct OutputTasks {
    /// `image_raw` and `camera_info`: ends when the stream closes the frame queue.
    frames: tokio::task::JoinHandle<()>,
    /// The passthrough topics (and the recording's video), JPEG and `ptz_detections`: each
    /// ends when its queue is closed ([`OutputFeeds::close`], `close_people_frames`).
    others: Vec<tokio::task::JoinHandle<()>>,
}

fn spawn_outputs(publishers: ImagePublishers, from: OutputSources<'_>) -> OutputTasks {
    let OutputSources {
        handle,
        feeds,
        frame_id,
        calibration,
        stamper,
        aim,
        recorder,
        people_wanted,
    } = from;
    let frames = tokio::spawn(publish_frames(
        handle.clone(),
        FramePublishers {
            image: publishers.image,
            info: publishers.info,
            people: people_wanted.clone(),
        },
        frame_id.to_string(),
        FrameInfo::new(calibration.clone(), aim.clone(), true),
        stamper.clone(),
        aim.clone(),
    ));
    let mut others = vec![tokio::spawn(compressed::publish_passthrough(
        feeds.passthrough.queue.clone(),
        compressed::PassthroughPublishers {
            ffmpeg: publishers.ffmpeg,
            foxglove: publishers.foxglove,
            recording: recording::FrameRecorder {
                recording: recorder,
                frame_info: FrameInfo::new(calibration, aim.clone(), false),
                aim: aim.clone(),
                people_subscribed: people_wanted,
                capture_clock: CaptureClock::new(),
            },
        },
        frame_id.to_string(),
        stamper.clone(),
        handle.stats(),
    ))];
    if let Some((aim, publisher)) = aim.zip(publishers.people) {
        others.push(tokio::spawn(aiming::publish_people(aim, publisher)));
    }
    if let Some((jpeg, publisher)) = feeds.jpeg_output().zip(publishers.jpeg) {
        others.push(tokio::spawn(compressed::publish_jpeg(
            jpeg.pictures.clone(),
            publisher,
            frame_id.to_string(),
            stamper,
            handle.stats(),
        )));
    }
    OutputTasks { frames, others }
}

/// Where parameter changes take effect.
struct LiveTargets {
    handle: StreamHandle,
    jpeg: Option<watch::Sender<JpegSettings>>,
    trigger: Arc<Mutex<AutoTrigger>>,
    aim: Option<Arc<aiming::AimContext>>,
    recording: Arc<recording::Recording>,
}

/// Applies each change of the parameters (`ros2 param set`) to what runs.
async fn follow_parameters(
    mut params: watch::Receiver<Arc<NodeParams>>,
    targets: LiveTargets,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = params.changed() => if changed.is_err() { return },
        }
        let params = params.borrow_and_update().clone();
        targets.handle.reconfigure(live_settings(&params));
        if let Some(jpeg) = &targets.jpeg {
            jpeg.send_if_modified(|settings| {
                let wanted = jpeg_settings(&params);
                let changed = *settings != wanted;
                *settings = wanted;
                changed
            });
        }
        lock(&targets.trigger).set_config(trigger_config(&params));
        if let Some(aim) = &targets.aim {
            aim.reconfigure(&params);
        }
        targets.recording.reconfigure(&params);
    }
}

/// Subscribers per output, or `None` while a count cannot be read (at shutdown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SubscriberCounts {
    images: usize,
    infos: usize,
    jpeg: usize,
    passthrough: usize,
    people: usize,
}

impl ImagePublishers {
    /// Their subscribers, which decide what the stream does.
    fn counts(&self) -> Option<SubscriberCounts> {
        fn count<T: r2r::WrappedTypesupport + 'static>(
            publisher: &Option<r2r::Publisher<T>>,
        ) -> Option<usize> {
            publisher
                .as_ref()
                .map_or(Ok(0), |p| p.get_inter_process_subscription_count())
                .ok()
        }
        let images = self
            .image
            .as_ref()
            .map_or(Ok(0), |p| p.get_inter_process_subscription_count())
            .ok()?;
        Some(SubscriberCounts {
            images,
            infos: self.info.get_inter_process_subscription_count().ok()?,
            jpeg: count(&self.jpeg)?,
            passthrough: count(&self.ffmpeg)? + count(&self.foxglove)?,
            people: count(&self.people)?,
        })
    }
}

/// The demands [`follow_subscribers`] sets besides the decoded frames'.
struct Demands {
    jpeg: Option<Demand>,
    /// The access units: for the passthrough topics and the event recording.
    passthrough: Demand,
    /// `ptz_detections` (published with each picture, so it also needs decoding).
    people: Demand,
    recording: Arc<recording::Recording>,
}

/// Does only the work somebody subscribes to. Decodes to bgr8 while `image_raw`, `camera_info`
/// or `ptz_detections` (published with each picture) has subscribers; encodes JPEG while
/// `image_raw/compressed` has; copies access units while `image_raw/ffmpeg` or
/// `image_raw/foxglove` has, and asks the camera for a keyframe when a passthrough subscriber
/// joins, so that it can start decoding soon. Looks every [`SUBSCRIBER_POLL_INTERVAL`] (DDS
/// discovery reports subscribers as they come).
async fn follow_subscribers(
    handle: StreamHandle,
    publishers: ImagePublishers,
    demands: Demands,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(SUBSCRIBER_POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<SubscriberCounts> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // An error (the publisher is gone at shutdown) keeps the last decision.
        let Some(counts) = publishers.counts() else {
            continue;
        };
        let before = previous.unwrap_or_default();
        let first = previous.is_none();
        previous = Some(counts);
        let decoding = counts.images + counts.infos + counts.people > 0;
        demands.people.set(counts.people > 0);
        if first || decoding != (before.images + before.infos + before.people > 0) {
            if decoding {
                tracing::info!(
                    images = counts.images,
                    infos = counts.infos,
                    ptz_detections = counts.people,
                    "image_raw/camera_info subscribed: decoding"
                );
            } else {
                tracing::info!(
                    "nobody subscribes to image_raw or camera_info: not making bgr8 images"
                );
            }
            handle.set_frames_wanted(decoding);
        }
        if let Some(demand) = &demands.jpeg
            && (first || (counts.jpeg > 0) != (before.jpeg > 0))
        {
            demand.set(counts.jpeg > 0);
            if counts.jpeg > 0 {
                tracing::info!(
                    subscribers = counts.jpeg,
                    "image_raw/compressed subscribed: encoding JPEG"
                );
            }
        }
        demands
            .passthrough
            .set(counts.passthrough > 0 || demands.recording.is_feeding());
        if counts.passthrough > before.passthrough {
            tracing::debug!(
                subscribers = counts.passthrough,
                "a passthrough subscriber joined: asking the camera for a keyframe"
            );
            handle.request_keyframe();
        }
    }
}

/// What [`publish_frames`] publishes with each picture.
struct FramePublishers {
    image: Option<r2r::PublisherUntyped>,
    info: r2r::Publisher<r2r::sensor_msgs::msg::CameraInfo>,
    /// Whether anybody subscribes to `ptz_detections` (published by
    /// [`aiming::publish_people`]).
    people: Demand,
}

/// Each frame's `camera_info`: the calibration (`~/set_camera_info` may replace it) at the zoom
/// of capture, or the lens model's K.
pub struct FrameInfo {
    calibration: watch::Receiver<Option<Calibration>>,
    current: Option<Calibration>,
    aim: Option<Arc<aiming::AimContext>>,
    /// Warn (once per calibration) when it is for another picture size.
    warns: bool,
    warned_size: bool,
}

impl FrameInfo {
    fn new(
        mut calibration: watch::Receiver<Option<Calibration>>,
        aim: Option<Arc<aiming::AimContext>>,
        warns: bool,
    ) -> Self {
        let current = calibration.borrow_and_update().clone();
        Self {
            calibration,
            current,
            aim,
            warns,
            warned_size: false,
        }
    }

    /// `camera_info` of a `width` x `height` frame whose first packet came at `arrival`.
    pub fn camera_info(
        &mut self,
        header: r2r::std_msgs::msg::Header,
        width: u32,
        height: u32,
        arrival: Instant,
    ) -> r2r::sensor_msgs::msg::CameraInfo {
        if self.calibration.has_changed().unwrap_or(false) {
            self.current = self.calibration.borrow_and_update().clone();
            self.warned_size = false;
        }
        if let Some(c) = &self.current
            && self.warns
            && !self.warned_size
            && (c.image_width, c.image_height) != (width, height)
        {
            tracing::warn!(calibrated = ?(c.image_width, c.image_height), stream = ?(width, height),
                "the calibration is for another image size; camera_info uses the lens model (or K = 0 without aiming)");
            self.warned_size = true;
        }
        let aim = self.aim.as_ref();
        // Without a calibration for this size: the lens model at the zoom of capture.
        let zoom_k = aim.and_then(|a| a.k_at(width, height, arrival));
        // A calibration with its zoom follows the zoom of capture.
        let zoomed =
            self.current
                .as_ref()
                .map(|c| match aim.and_then(|a| a.driver().zoom_at(arrival)) {
                    Some(zoom) => std::borrow::Cow::Owned(c.at_zoom(zoom)),
                    None => std::borrow::Cow::Borrowed(c),
                });
        messages::camera_info(header, width, height, zoomed.as_deref(), zoom_k)
    }
}

async fn publish_frames(
    handle: StreamHandle,
    publishers: FramePublishers,
    frame_id: String,
    mut frame_info: FrameInfo,
    stamper: Arc<Mutex<Stamper>>,
    aim: Option<Arc<aiming::AimContext>>,
) {
    let frames = handle.frames();
    let stats = handle.stats();
    let prefix_bytes = image_cdr::prefix_len(&frame_id);
    let mut capture_clock = CaptureClock::new();
    while let Some(frame) = frames.pop().await {
        if frame.headroom != prefix_bytes {
            // Cannot happen: the decoder leaves exactly this headroom (see stream_config).
            tracing::error!(
                headroom = frame.headroom,
                prefix_bytes,
                "decoded frame without room for the message header; frame lost"
            );
            continue;
        }
        let header = messages::frame_header(&stamper, frame.first_arrival, &frame_id);
        let (width, height, arrival) = (frame.width, frame.height, frame.first_arrival);
        if let Some(image_pub) = &publishers.image {
            let mut message = frame.buffer;
            let published =
                image_cdr::write_prefix(&mut message, &header.stamp, &frame_id, width, height)
                    .map_err(|e| e.to_string())
                    .and_then(|()| image_pub.publish_raw(&message).map_err(|e| e.to_string()));
            // The middleware copied the message: the buffer can be decoded into again.
            handle.give_back_buffer(message);
            if let Err(error) = published {
                tracing::error!(%error, "could not publish image_raw; frame lost");
                continue;
            }
        } else {
            handle.give_back_buffer(frame.buffer);
        }
        let info = frame_info.camera_info(header, width, height, arrival);
        if let Some(aim) = &aim
            && publishers.people.get()
        {
            // The people where they were when the picture was taken, not when it arrived.
            let captured = capture_clock.capture_time(frame.rtp_timestamp, arrival);
            aim.queue_people_frame(&info, captured);
        }
        if let Err(error) = publishers.info.publish(&info) {
            tracing::warn!(%error, "could not publish camera_info");
        }
        bump(&stats.frames_published);
        stats.record_latency(arrival.elapsed());
    }
}

/// What `~/set_camera_info` needs.
struct Calibrator {
    /// `camera_info_url`: where the calibration is saved.
    url: Option<String>,
    calibration: watch::Sender<Option<Calibration>>,
    handle: StreamHandle,
    aim: Option<Arc<aiming::AimContext>>,
}

impl Calibrator {
    /// Checks, saves and takes a calibration (`cameracalibrator`'s "commit"); the error is the
    /// `status_message`.
    fn take(&self, info: &r2r::sensor_msgs::msg::CameraInfo) -> Result<String, String> {
        let Some(url) = &self.url else {
            return Err("camera_info_url is empty: set it to a file:///absolute/path.yaml the node may write, and restart the node".to_string());
        };
        let matrix = |rows: usize, cols: usize, data: &[f64]| camera_info::Matrix {
            rows,
            cols,
            data: data.to_vec(),
        };
        // The zoom now: K holds for it (and follows the zoom from here on).
        let zoom = self
            .aim
            .as_ref()
            .and_then(|a| a.driver().zoom_at(Instant::now()));
        let calibration = Calibration {
            image_width: info.width,
            image_height: info.height,
            camera_name: NODE_NAME.to_string(),
            camera_matrix: matrix(3, 3, &info.k),
            distortion_model: info.distortion_model.clone(),
            distortion_coefficients: matrix(1, info.d.len(), &info.d),
            rectification_matrix: matrix(3, 3, &info.r),
            projection_matrix: matrix(3, 4, &info.p),
            ptz_zoom: zoom,
        };
        calibration
            .validate()
            .map_err(|problem| format!("calibration refused: {problem}; nothing was saved"))?;
        let stats = self.handle.stats().snapshot();
        if stats.width > 0
            && (stats.width, stats.height) != (calibration.image_width, calibration.image_height)
        {
            return Err(format!(
                "calibration refused: it is for {}x{} but the stream is {}x{}; nothing was saved",
                calibration.image_width, calibration.image_height, stats.width, stats.height
            ));
        }
        camera_info::save(url, &calibration).map_err(|error| error.to_string())?;
        tracing::info!(url = %url, zoom = ?zoom, "calibration saved; camera_info carries it from the next frame");
        self.calibration.send_replace(Some(calibration));
        Ok(String::new())
    }
}

/// `~/set_camera_info` (`sensor_msgs/srv/SetCameraInfo`), as camera_info_manager serves it, but
/// a calibration that cannot be used or saved is refused and changes nothing.
async fn serve_set_camera_info(
    mut requests: impl futures::Stream<Item = r2r::ServiceRequest<SetCameraInfo::Service>> + Unpin,
    calibrator: Calibrator,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => return,
            request = requests.next() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let response = match calibrator.take(&request.message.camera_info) {
            Ok(status_message) => SetCameraInfo::Response {
                success: true,
                status_message,
            },
            Err(status_message) => {
                tracing::warn!("~/set_camera_info: {status_message}");
                SetCameraInfo::Response {
                    success: false,
                    status_message,
                }
            }
        };
        if let Err(error) = request.respond(response) {
            tracing::warn!(%error, "could not answer ~/set_camera_info");
        }
    }
}

fn trigger_response(handle: &StreamHandle, verb: &str) -> Trigger::Response {
    let status = handle.status();
    Trigger::Response {
        success: true,
        message: format!("{verb}; state: {}", status.state),
    }
}

async fn serve_services(
    handle: StreamHandle,
    trigger: Arc<Mutex<AutoTrigger>>,
    mut start: impl futures::Stream<Item = r2r::ServiceRequest<Trigger::Service>> + Unpin,
    mut stop: impl futures::Stream<Item = r2r::ServiceRequest<Trigger::Service>> + Unpin,
    shutdown: CancellationToken,
) {
    loop {
        let (request, verb) = tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(request) = start.next() => {
                let verb = if handle.status().state == StreamState::Failed {
                    "retrying once"
                } else if handle.is_wanted() {
                    "already running"
                } else {
                    "starting"
                };
                handle.start();
                (request, verb)
            }
            Some(request) = stop.next() => {
                let verb = if handle.is_wanted() { "stopping" } else { "already stopped" };
                handle.stop();
                (request, verb)
            }
            else => return,
        };
        // An explicit call takes the stream away from the auto-trigger.
        lock(&trigger).release();
        if let Err(error) = request.respond(trigger_response(&handle, verb)) {
            tracing::warn!(%error, "could not answer a service call");
        }
    }
}

async fn follow_detections(
    handle: StreamHandle,
    trigger: Arc<Mutex<AutoTrigger>>,
    aim: Option<Arc<aiming::AimContext>>,
    recording: Arc<recording::Recording>,
    mut detections: impl futures::Stream<Item = detections::Detections> + Unpin,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        // Set when this detection message made an aim command: the stream starts after it.
        let mut aimed = false;
        let action = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                recording.on_tick(Instant::now());
                lock(&trigger).on_tick(Instant::now())
            }
            message = detections.next() => {
                let Some(message) = message else { return };
                recording.record_detections(&message);
                aimed = aim.as_ref().and_then(|a| a.on_detections(&message)).is_some();
                let hypotheses = message.hypotheses();
                recording.on_detections(&hypotheses, Instant::now());
                lock(&trigger).on_detections(&hypotheses, Instant::now())
            }
        };
        match action {
            TriggerAction::Start if !handle.is_wanted() => {
                match aim.as_ref().filter(|_| aimed) {
                    Some(aim) => {
                        // Start once the PTZ took the command, so the first frames show the
                        // person (at most 2 s later, whatever happens).
                        tracing::info!("detection matched: aiming, then starting the stream");
                        let mut sent = aim.driver().commands_sent();
                        let before = *sent.borrow_and_update();
                        let handle = handle.clone();
                        tokio::spawn(async move {
                            let accepted = async {
                                while *sent.borrow_and_update() == before {
                                    if sent.changed().await.is_err() {
                                        break;
                                    }
                                }
                            };
                            let _ = tokio::time::timeout(Duration::from_secs(2), accepted).await;
                            handle.start();
                        });
                    }
                    None => {
                        tracing::info!("detection matched: starting the stream");
                        handle.start();
                    }
                }
            }
            TriggerAction::Start => {}
            TriggerAction::Stop => {
                tracing::info!(
                    "no matching detection within trigger_timeout_secs: stopping the stream"
                );
                handle.stop();
            }
            TriggerAction::Nothing => {}
        }
    }
}

/// Where the reports go.
struct ReportPublishers {
    stats: r2r::Publisher<r2r::diagnostic_msgs::msg::DiagnosticStatus>,
    diagnostics: r2r::Publisher<r2r::diagnostic_msgs::msg::DiagnosticArray>,
    status_name: String,
    hardware_id: String,
}

impl ReportPublishers {
    /// `~/stats` and `/diagnostics`; the status is named after the node, the hardware after
    /// the robot.
    fn create(node: &mut r2r::Node, params: &NodeParams) -> Result<Self, NodeError> {
        let full_name = node
            .fully_qualified_name()
            .unwrap_or_else(|_| format!("/{NODE_NAME}"));
        Ok(Self {
            stats: node
                .create_publisher("~/stats", QosProfile::default())
                .map_err(ros("creating the ~/stats publisher"))?,
            diagnostics: node
                .create_publisher("/diagnostics", QosProfile::default())
                .map_err(ros("creating the /diagnostics publisher"))?,
            status_name: format!("{}: stream", full_name.trim_start_matches('/')),
            hardware_id: params.robot_host.clone(),
        })
    }
}

/// Publishes `~/stats` and `/diagnostics` every `diagnostics_period_secs` (live).
async fn report(
    handle: StreamHandle,
    trigger: Arc<Mutex<AutoTrigger>>,
    mut params: watch::Receiver<Arc<NodeParams>>,
    publishers: ReportPublishers,
    aim: Option<Arc<aiming::AimContext>>,
    recording: Arc<recording::Recording>,
    shutdown: CancellationToken,
) {
    let stats = handle.stats();
    let mut previous = stats.snapshot();
    let mut period = params.borrow_and_update().diagnostics_period;
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            changed = params.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = params.borrow_and_update().diagnostics_period;
                if now != period {
                    period = now;
                    tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                }
                continue;
            }
        }
        let now = Instant::now();
        let snapshot = stats.snapshot();
        let rates = Rates::between(&previous, &snapshot);
        let detections = {
            let t = lock(&trigger);
            DetectionSummary {
                messages: t.detection_messages(),
                last: t
                    .last_detection(now)
                    .map(|(age, class)| (age, class.to_string())),
                auto_trigger: t.is_enabled(),
            }
        };
        let mut report = status_report::build(&handle.status(), &snapshot, rates, &detections, now);
        if let Some(aim) = &aim {
            if snapshot.width > 0 && snapshot.height > 0 {
                aim.set_image_size((snapshot.width, snapshot.height));
            }
            report.values.extend(aim.status_values(now));
        }
        report.values.extend(recording.status_values());
        previous = snapshot;
        let status =
            messages::diagnostic_status(&report, &publishers.status_name, &publishers.hardware_id);
        recording.record(
            recording::Channel::Stats,
            &status,
            &messages::wall_time(),
            None,
        );
        if let Err(error) = publishers.stats.publish(&status) {
            tracing::warn!(%error, "could not publish ~/stats");
        }
        if let Err(error) = publishers
            .diagnostics
            .publish(&messages::diagnostic_array(status))
        {
            tracing::warn!(%error, "could not publish /diagnostics");
        }
    }
}
