//! Event recording in the node: which topics go into the MCAP files of
//! [`crate::record::events`], where their messages are taken, and when a recording runs.
//!
//! - `~/start_recording` / `~/stop_recording` (`std_srvs/Trigger`, idempotent) hold and release
//!   a manual recording and answer the file's path;
//! - `record_on_detection` holds a detection recording from the first matching detection until
//!   `trigger_timeout_secs` after the last one (the auto-trigger's rule, [`AutoTrigger`]); while
//!   it is on, the last `record_pre_roll_secs` wait in memory so a file begins before the
//!   detection;
//! - every recording starts with a keyframe request, so that the camera's next IDR (if it
//!   honours the request) begins the video; the pre-roll starts at the newest IDR or recovery
//!   point before its cut (see [`crate::record::events`]).
//!
//! The messages are recorded as they are published (the same CDR, the same stamps), on the
//! channels of [`Channel`]; the video is the camera's H.264 as `foxglove_msgs/CompressedVideo`,
//! each access unit as `image_raw/foxglove` carries it. Nothing is serialized while nothing is
//! recorded and no pre-roll is kept (latched `/tf_static` aside).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt as _;
use r2r::QosProfile;
use r2r::builtin_interfaces::msg::Time;
use r2r::std_srvs::srv::Trigger;

use crate::lock;
use crate::media::handoff::Demand;
use crate::params::{NodeParams, RecordingParams};
use crate::record::events::{
    ChannelSpec, EventRecorder, EventRecorderConfig, Reason, RecorderStats, Sample, SchemaSource,
    VideoKey, unix_ns,
};
use crate::shutdown::CancellationToken;
use crate::stream::StreamHandle;
use crate::trigger::{AutoTrigger, Hypothesis, TriggerAction};

use super::NodeError;

/// Event files are `<record_dir>/spot_ptz_<UTC start>.mcap`.
pub const FILE_PREFIX: &str = "spot_ptz";
/// How long shutdown waits for the open file to be finished (its last chunk, summary, footer).
const FINISH_TIMEOUT: Duration = Duration::from_millis(1500);

/// The recorded topics, in the order given to the recorder (the value is the channel index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `image_raw/foxglove`: the camera's H.264.
    Video,
    CameraInfo,
    /// `ptz_detections`.
    People,
    /// `~/ptz_state`.
    PtzState,
    /// The head's transform on `/tf`.
    Tf,
    /// Our static transforms (latched: at the start of every file).
    TfStatic,
    /// The source detections, `detections` and `detections_3d`.
    Detections,
    Detections3d,
    /// `~/stats`.
    Stats,
}

/// A QoS as rosbag2 stores it in `offered_qos_profiles` (so `ros2 bag play` offers it again).
fn qos_yaml(reliability: &str, durability: &str, depth: usize) -> String {
    const INFINITE: &str = "\n    sec: 9223372036\n    nsec: 854775807";
    format!(
        "- history: keep_last\n  depth: {depth}\n  reliability: {reliability}\n  durability: \
         {durability}\n  deadline:{INFINITE}\n  lifespan:{INFINITE}\n  liveliness: automatic\n  \
         liveliness_lease_duration:{INFINITE}\n  avoid_ros_namespace_conventions: false\n"
    )
}

/// The channels of [`Channel`], in order: topics resolved in the node's namespace and name.
fn channel_specs(namespace: &str, node_name: &str, params: &NodeParams) -> Vec<ChannelSpec> {
    let ns = namespace.trim_end_matches('/');
    let node = node_name.trim_end_matches('/');
    let image_reliability = params.image_qos_reliability.to_string();
    let image_qos = qos_yaml(&image_reliability, "volatile", params.image_qos_depth);
    let channel = |topic: String, type_name: &str, qos: String, latched: bool| ChannelSpec {
        topic,
        type_name: type_name.to_string(),
        offered_qos_yaml: Some(qos),
        latched,
    };
    vec![
        channel(
            format!("{ns}/image_raw/foxglove"),
            "foxglove_msgs/msg/CompressedVideo",
            qos_yaml(
                "reliable",
                "volatile",
                super::compressed::PASSTHROUGH_QOS_DEPTH,
            ),
            false,
        ),
        channel(
            format!("{ns}/camera_info"),
            "sensor_msgs/msg/CameraInfo",
            image_qos.clone(),
            false,
        ),
        channel(
            format!("{ns}/ptz_detections"),
            "vision_msgs/msg/Detection2DArray",
            image_qos,
            false,
        ),
        channel(
            format!("{node}/ptz_state"),
            "sensor_msgs/msg/JointState",
            qos_yaml("reliable", "volatile", 10),
            false,
        ),
        channel(
            "/tf".to_string(),
            "tf2_msgs/msg/TFMessage",
            qos_yaml("reliable", "volatile", 100),
            false,
        ),
        channel(
            "/tf_static".to_string(),
            "tf2_msgs/msg/TFMessage",
            qos_yaml("reliable", "transient_local", 100),
            true,
        ),
        channel(
            format!("{ns}/detections"),
            "vision_msgs/msg/Detection2DArray",
            qos_yaml("best_effort", "volatile", 5),
            false,
        ),
        channel(
            format!("{ns}/detections_3d"),
            "vision_msgs/msg/Detection3DArray",
            qos_yaml("best_effort", "volatile", 5),
            false,
        ),
        channel(
            format!("{node}/stats"),
            "diagnostic_msgs/msg/DiagnosticStatus",
            qos_yaml("reliable", "volatile", 10),
            false,
        ),
    ]
}

/// `record_dir`, or `$ROS_HOME/spot_ptz_stream/recordings` (`~/.ros` without `ROS_HOME`); a
/// leading `~/` is the home directory.
fn record_dir(params: &RecordingParams) -> PathBuf {
    let home = || std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    match &params.dir {
        Some(dir) => match dir.strip_prefix("~") {
            Ok(rest) => home().join(rest),
            Err(_) => dir.clone(),
        },
        None => std::env::var_os("ROS_HOME")
            .map_or_else(|| home().join(".ros"), PathBuf::from)
            .join("spot_ptz_stream")
            .join("recordings"),
    }
}

/// The node's event recorder and when it records.
pub struct Recording {
    /// `None` when it could not start (the reason is in `unavailable`), or after shutdown.
    recorder: Mutex<Option<EventRecorder>>,
    unavailable: Option<String>,
    dir: PathBuf,
    /// `record_on_detection`: the pre-roll is kept.
    on_detection: AtomicBool,
    /// A recording runs (for any reason).
    recording: AtomicBool,
    /// When a detection recording starts and stops (the auto-trigger's rule).
    detection: Mutex<AutoTrigger>,
    stream: StreamHandle,
    /// The copy of the access units the video comes from (also set by the subscriber counts).
    access_units: Demand,
}

/// The recorder and its task (the services).
pub struct RecordingTasks {
    pub context: Arc<Recording>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the recorder and serves `~/start_recording` and `~/stop_recording`. A recorder that
/// cannot start (a message package missing) leaves the node running without recording; the
/// services then answer why.
pub fn start(
    node: &mut r2r::Node,
    params: &NodeParams,
    stream: StreamHandle,
    access_units: Demand,
    shutdown: CancellationToken,
) -> Result<RecordingTasks, NodeError> {
    let ros = |what: &'static str| move |source| NodeError::Ros { what, source };
    let namespace = node
        .namespace()
        .map_err(ros("reading the node's namespace"))?;
    let node_name = node
        .fully_qualified_name()
        .map_err(ros("reading the node's name"))?;
    let start_srv = node
        .create_service::<Trigger::Service>("~/start_recording", QosProfile::services_default())
        .map_err(ros("creating ~/start_recording"))?;
    let stop_srv = node
        .create_service::<Trigger::Service>("~/stop_recording", QosProfile::services_default())
        .map_err(ros("creating ~/stop_recording"))?;
    let dir = record_dir(&params.recording);
    let config = EventRecorderConfig {
        dir: dir.clone(),
        pre_roll: params.recording.pre_roll,
        max_file: params.recording.max_file,
        max_total_bytes: params.recording.max_total_bytes,
        file_prefix: FILE_PREFIX.to_string(),
    };
    let specs = channel_specs(&namespace, &node_name, params);
    let (recorder, unavailable) =
        match EventRecorder::spawn(config, specs, &SchemaSource::from_env()) {
            Ok(recorder) => (Some(recorder), None),
            Err(error) => {
                let reason =
                    format!("event recording is unavailable: {error}; the node runs without it");
                tracing::error!("{reason}");
                (None, Some(reason))
            }
        };
    let context = Arc::new(Recording {
        recorder: Mutex::new(recorder),
        unavailable,
        dir,
        on_detection: AtomicBool::new(false),
        recording: AtomicBool::new(false),
        detection: Mutex::new(AutoTrigger::new(super::trigger_config(params))),
        stream,
        access_units,
    });
    context.reconfigure(params);
    let task = tokio::spawn(serve(context.clone(), start_srv, stop_srv, shutdown));
    Ok(RecordingTasks { context, task })
}

impl Recording {
    /// Whether messages are recorded now: a recording runs, or the pre-roll is kept.
    pub fn is_feeding(&self) -> bool {
        self.recording.load(Ordering::Relaxed) || self.on_detection.load(Ordering::Relaxed)
    }

    /// Records `message` on `channel` if [`Self::is_feeding`] (a latched channel always: a
    /// later file begins with it). `stamp` is its header's stamp; `video` is for the video.
    pub fn record<T: r2r::WrappedTypesupport>(
        &self,
        channel: Channel,
        message: &T,
        stamp: &Time,
        video: Option<VideoKey>,
    ) {
        if !(self.is_feeding() || channel == Channel::TfStatic) {
            return;
        }
        let data = match message.to_serialized_bytes() {
            Ok(data) => data,
            Err(error) => {
                tracing::debug!(%error, ?channel, "could not serialize a message to record");
                return;
            }
        };
        let log_time_ns = unix_ns(SystemTime::now());
        let publish_time_ns =
            u64::try_from(super::messages::duration_of(stamp).as_nanos()).unwrap_or(u64::MAX);
        if let Some(recorder) = lock(&self.recorder).as_ref() {
            recorder.push(Sample {
                channel: channel as usize,
                log_time_ns,
                publish_time_ns,
                data,
                video,
            });
        }
    }

    /// A source detection message, on its channel.
    pub fn record_detections(&self, message: &super::detections::Detections) {
        use super::detections::Detections;
        match message {
            Detections::Boxes2d(m) => self.record(Channel::Detections, m, &m.header.stamp, None),
            Detections::Boxes3d(m) => self.record(Channel::Detections3d, m, &m.header.stamp, None),
        }
    }

    /// Takes changed parameters: `record_on_detection` and the trigger's classes, score and
    /// timeout. Turned off, a running detection recording ends.
    pub fn reconfigure(&self, params: &NodeParams) {
        let mut config = super::trigger_config(params);
        config.enabled = params.recording.on_detection;
        self.on_detection
            .store(params.recording.on_detection, Ordering::Relaxed);
        if params.recording.on_detection {
            self.access_units.set(true);
        }
        let mut detection = lock(&self.detection);
        let was_recording = detection.is_triggered();
        detection.set_config(config);
        if was_recording && !detection.is_triggered() {
            drop(detection);
            self.release(Reason::Detection);
        }
    }

    /// A detection message: starts a detection recording when it matches.
    pub fn on_detections(&self, hypotheses: &[Hypothesis], now: Instant) {
        let action = lock(&self.detection).on_detections(hypotheses, now);
        if action == TriggerAction::Start
            && let Err(reason) = self.hold(Reason::Detection)
        {
            // Said once at start-up, as an ERROR.
            tracing::debug!("a detection is not recorded: {reason}");
        }
    }

    /// Ends a detection recording `trigger_timeout_secs` after the last match; call
    /// periodically.
    pub fn on_tick(&self, now: Instant) {
        if lock(&self.detection).on_tick(now) == TriggerAction::Stop {
            self.release(Reason::Detection);
        }
    }

    /// Holds `reason`; answers the file (`Err`: why nothing can be recorded).
    fn hold(&self, reason: Reason) -> Result<PathBuf, String> {
        let path = {
            let recorder = lock(&self.recorder);
            let Some(recorder) = recorder.as_ref() else {
                return Err(self.why_unavailable());
            };
            let before = recorder.stats().recording;
            let path = recorder.start(reason);
            self.recording.store(true, Ordering::Relaxed);
            if before {
                return Ok(path);
            }
            path
        };
        // The access units now (not at the next look at the subscribers): the IDR asked for
        // next begins the file if the camera honours the request; the pre-roll (or the next
        // recovery point) otherwise.
        self.access_units.set(true);
        self.stream.request_keyframe();
        Ok(path)
    }

    /// Releases `reason`; answers the file closed then.
    fn release(&self, reason: Reason) -> Option<PathBuf> {
        let recorder = lock(&self.recorder);
        let recorder = recorder.as_ref()?;
        let closed = recorder.stop(reason);
        self.recording
            .store(recorder.stats().recording, Ordering::Relaxed);
        closed
    }

    fn why_unavailable(&self) -> String {
        self.unavailable
            .clone()
            .unwrap_or_else(|| "the node is shutting down".to_string())
    }

    fn stats(&self) -> Option<RecorderStats> {
        lock(&self.recorder).as_ref().map(EventRecorder::stats)
    }

    /// `~/start_recording`'s answer.
    fn start_response(&self) -> Trigger::Response {
        match self.hold(Reason::Manual) {
            Ok(path) => {
                let mut message = path.display().to_string();
                if !self.stream.is_wanted() {
                    message.push_str(
                        " (the stream is stopped: nothing is recorded until it runs; call \
                         ~/start_stream)",
                    );
                }
                Trigger::Response {
                    success: true,
                    message,
                }
            }
            Err(message) => Trigger::Response {
                success: false,
                message,
            },
        }
    }

    /// `~/stop_recording`'s answer.
    fn stop_response(&self) -> Trigger::Response {
        if lock(&self.recorder).is_none() {
            return Trigger::Response {
                success: false,
                message: self.why_unavailable(),
            };
        }
        let message = match self.release(Reason::Manual) {
            Some(path) => path.display().to_string(),
            None => match self.stats().and_then(|s| s.current_file) {
                Some(path) => format!(
                    "{} (still recording: a detection holds it, record_on_detection)",
                    path.display()
                ),
                None => "not recording".to_string(),
            },
        };
        Trigger::Response {
            success: true,
            message,
        }
    }

    /// The recorder's figures for `~/stats`.
    pub fn status_values(&self) -> Vec<(&'static str, String)> {
        let Some(stats) = self.stats() else {
            return vec![("recording", "unavailable".to_string())];
        };
        let mut values = vec![
            ("recording", stats.recording.to_string()),
            ("recording_dir", self.dir.display().to_string()),
            (
                "recording_file",
                stats
                    .current_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("recording_files_written", stats.files_written.to_string()),
            ("recording_bytes_written", stats.bytes_written.to_string()),
            (
                "recording_messages_written",
                stats.messages_written.to_string(),
            ),
            ("recording_dropped_queue", stats.dropped_queue.to_string()),
            ("recording_dropped_write", stats.dropped_write.to_string()),
            ("recording_files_deleted", stats.files_deleted.to_string()),
        ];
        if let Some(error) = stats.last_error {
            values.push(("recording_last_error", error));
        }
        values
    }

    /// Finishes the open file (at shutdown; waits at most [`FINISH_TIMEOUT`]).
    pub async fn finish(&self) {
        let Some(recorder) = lock(&self.recorder).take() else {
            return;
        };
        self.recording.store(false, Ordering::Relaxed);
        match tokio::task::spawn_blocking(move || recorder.finish(FINISH_TIMEOUT)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!("{error}"),
            Err(error) => tracing::error!(%error, "the event recorder's finish failed"),
        }
    }
}

/// Serves `~/start_recording` and `~/stop_recording` until `shutdown`.
async fn serve(
    recording: Arc<Recording>,
    mut start: impl futures::Stream<Item = r2r::ServiceRequest<Trigger::Service>> + Unpin,
    mut stop: impl futures::Stream<Item = r2r::ServiceRequest<Trigger::Service>> + Unpin,
    shutdown: CancellationToken,
) {
    loop {
        let (request, response) = tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(request) = start.next() => (request, recording.start_response()),
            Some(request) = stop.next() => (request, recording.stop_response()),
            else => return,
        };
        if !response.success {
            tracing::warn!("{}", response.message);
        }
        if let Err(error) = request.respond(response) {
            tracing::warn!(%error, "could not answer a recording service call");
        }
    }
}

/// The key of a passthrough frame for the recorder.
pub fn video_key(keyframe: bool, is_idr: bool) -> VideoKey {
    match (keyframe, is_idr) {
        (_, true) => VideoKey::Idr,
        (true, false) => VideoKey::RecoveryPoint,
        (false, false) => VideoKey::Other,
    }
}

/// The stream's frames on the passthrough path, for the recording: each frame's `camera_info`
/// and its people (`ptz_detections`, queued for [`super::aiming::publish_people`] when nobody
/// subscribes to it, which would queue them from the decoded pictures).
pub struct FrameRecorder {
    pub recording: Arc<Recording>,
    pub frame_info: super::FrameInfo,
    pub aim: Option<Arc<super::aiming::AimContext>>,
    pub people_subscribed: crate::media::handoff::Demand,
    pub capture_clock: crate::media::capture_clock::CaptureClock,
}

impl FrameRecorder {
    /// Records one passed-through frame with its metadata.
    pub fn on_frame(
        &mut self,
        frame: &crate::media::passthrough::EncodedFrame,
        header: &r2r::std_msgs::msg::Header,
        video: &r2r::foxglove_msgs::msg::CompressedVideo,
    ) {
        if !self.recording.is_feeding() {
            return;
        }
        self.recording.record(
            Channel::Video,
            video,
            &header.stamp,
            Some(video_key(frame.keyframe, frame.is_idr)),
        );
        let info = self.frame_info.camera_info(
            header.clone(),
            frame.width,
            frame.height,
            frame.first_arrival,
        );
        self.recording
            .record(Channel::CameraInfo, &info, &header.stamp, None);
        if let Some(aim) = &self.aim
            && !self.people_subscribed.get()
        {
            // The low 32 bits of the extended timestamp are the RTP timestamp.
            let captured = self
                .capture_clock
                .capture_time(frame.pts_90khz as u32, frame.first_arrival);
            aim.queue_people_frame(&info, captured);
        }
    }
}
