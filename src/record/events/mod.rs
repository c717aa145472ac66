//! Event recording to MCAP: while nothing happens, the last seconds of every recorded topic
//! wait in memory ([`pre_roll`]); when an event starts (a manual request or a detection) they
//! begin a new `.mcap` file at a point a video decoder can start from, and everything after
//! follows until the event ends. ROS-free: the node hands in already serialized (CDR)
//! messages.
//!
//! - [`EventRecorder`] is the handle (thread-safe, never blocks the caller);
//! - [`worker`] is the writer thread: the ring, the files, flushing a chunk every second,
//!   splitting long events at keyframes, surviving a full disk;
//! - [`mcap_file`] writes one file (profile `ros2`, lz4 chunks, `ros2msg` schemas, `cdr`);
//! - [`schema`] reads the `.msg` definitions from the ament index ([`SchemaSource`]);
//! - [`retention`] deletes the oldest files over the size limit.
//!
//! Files are `<dir>/<prefix>_<UTC start YYYYmmdd_HHMMSS.mmm>.mcap`; `ros2 bag info|play` and
//! Foxglove open them as they are. If the process dies before [`EventRecorder::finish`],
//! every chunk but the last (at most about one second) stays readable.
//!
//! Sample times (`log_time_ns`) must be on the system clock (nanoseconds since the UNIX
//! epoch): the pre-roll is cut relative to the wall-clock time of [`EventRecorder::start`].

mod mcap_file;
mod pre_roll;
mod retention;
mod schema;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

pub use mcap_file::unix_ns;
pub use schema::{SchemaError, SchemaSource};

use crate::media::handoff::DropOldestQueue;
use mcap_file::{FileNamer, ResolvedChannel};
use worker::{Command, Tuning, Worker};

/// One recorded topic.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub topic: String,
    /// Full ROS type, e.g. `foxglove_msgs/msg/CompressedVideo`.
    pub type_name: String,
    /// The publisher's QoS as rosbag2's `offered_qos_profiles` YAML, stored as channel
    /// metadata (`ros2 bag play` then offers the same QoS).
    pub offered_qos_yaml: Option<String>,
    /// Latched (like `/tf_static`): the channel's last message is written again at the start
    /// of every file, so that each file is complete on its own.
    pub latched: bool,
}

/// Where and how much to record.
#[derive(Debug, Clone)]
pub struct EventRecorderConfig {
    /// Directory of the files (created when a recording starts).
    pub dir: PathBuf,
    /// How much of what came before the event's start each event file begins with.
    pub pre_roll: Duration,
    /// A longer event is split into files of about this length (at a video keyframe).
    pub max_file: Duration,
    /// The `<file_prefix>_*.mcap` files of `dir` are kept under this total; oldest go first.
    pub max_total_bytes: u64,
    /// File names start with this and `_`, e.g. `spot_ptz`.
    pub file_prefix: String,
}

/// How a video message may start a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoKey {
    /// An IDR access unit (with SPS and PPS): the picture is whole from here.
    Idr,
    /// A recovery point (intra refresh): the picture is whole one refresh wave later.
    RecoveryPoint,
    /// Any other frame: needs what came before.
    Other,
}

/// One message to record.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index into the channel list given to [`EventRecorder::spawn`].
    pub channel: usize,
    /// Receive time, ns since the UNIX epoch (MCAP log time; playback is timed by it).
    pub log_time_ns: u64,
    /// Send time (the message's stamp), ns since the UNIX epoch.
    pub publish_time_ns: u64,
    /// The CDR-serialized message.
    pub data: Vec<u8>,
    /// `Some` for video messages: whether a clip can start at this one.
    pub video: Option<VideoKey>,
}

/// Why recording runs. Each reason is held independently; recording continues while any is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Manual,
    Detection,
}

impl Reason {
    /// `manual` or `detection`, as in the file's Metadata record.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::Detection => "detection",
        }
    }
}

/// What the recorder has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// A reason to record holds.
    pub recording: bool,
    /// The file being written (or about to be), while recording.
    pub current_file: Option<PathBuf>,
    /// Files closed with their summary and footer.
    pub files_written: u64,
    /// Messages in chunks written out (a chunk is written at least every second).
    pub messages_written: u64,
    /// Size on disk of the files written (the open one as of its last chunk).
    pub bytes_written: u64,
    /// Samples dropped because the writer thread fell behind ([`EventRecorder::push`]).
    pub dropped_queue: u64,
    /// Samples lost to write errors (or naming a channel that does not exist).
    pub dropped_write: u64,
    /// Old files deleted to stay under `max_total_bytes`.
    pub files_deleted: u64,
    /// The last write error, as logged.
    pub last_error: Option<String>,
}

/// The event recorder failed to start or to finish.
#[derive(Debug, thiserror::Error)]
pub enum EventRecordError {
    #[error("cannot record {topic}: {source}")]
    Schema {
        topic: String,
        #[source]
        source: SchemaError,
    },
    #[error("bad event recording configuration: {0}")]
    Config(String),
    #[error("cannot start the event recorder thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(
        "cannot finish {path}: {source}; its chunks written before stay readable (`mcap recover` \
         rebuilds the index)"
    )]
    Finish {
        path: PathBuf,
        #[source]
        source: mcap::McapError,
    },
    #[error("the event recorder thread panicked; the files keep the chunks written so far")]
    Panicked,
    #[error(
        "the event recorder did not finish within {timeout_ms} ms; the open file keeps the \
         chunks written so far (`mcap recover` rebuilds its index)"
    )]
    Timeout { timeout_ms: u128 },
}

/// What the handle and the writer thread share.
#[derive(Debug, Default)]
struct State {
    manual: bool,
    detection: bool,
    /// Counts the events started; the writer thread names files of the current one only.
    event_id: u64,
    current_file: Option<PathBuf>,
    namer: FileNamer,
    files_written: u64,
    messages_written: u64,
    bytes_written: u64,
    dropped_write: u64,
    files_deleted: u64,
    last_error: Option<String>,
}

impl State {
    fn recording(&self) -> bool {
        self.manual || self.detection
    }

    fn flag(&mut self, reason: Reason) -> &mut bool {
        match reason {
            Reason::Manual => &mut self.manual,
            Reason::Detection => &mut self.detection,
        }
    }
}

/// Records events to MCAP files on its own thread. Every method takes `&self` and returns at
/// once; the handle is `Send + Sync`.
pub struct EventRecorder {
    config: EventRecorderConfig,
    queue: Arc<DropOldestQueue<Sample>>,
    state: Arc<Mutex<State>>,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<Result<(), EventRecordError>>>,
}

impl EventRecorder {
    /// Resolves every channel's schema (an unknown type fails here, naming the package to
    /// install) and starts the writer thread. The directory is created when a recording
    /// starts; one that cannot be created is only warned about here.
    pub fn spawn(
        config: EventRecorderConfig,
        channels: Vec<ChannelSpec>,
        schemas: &SchemaSource,
    ) -> Result<Self, EventRecordError> {
        Self::spawn_tuned(config, channels, schemas, Tuning::default())
    }

    fn spawn_tuned(
        config: EventRecorderConfig,
        channels: Vec<ChannelSpec>,
        schemas: &SchemaSource,
        tuning: Tuning,
    ) -> Result<Self, EventRecordError> {
        check_config(&config, &channels)?;
        let resolved = channels
            .into_iter()
            .map(|spec| {
                let schema = schemas.resolve(&spec.type_name).map_err(|source| {
                    EventRecordError::Schema {
                        topic: spec.topic.clone(),
                        source,
                    }
                })?;
                let mut metadata = BTreeMap::new();
                if let Some(qos) = spec.offered_qos_yaml {
                    metadata.insert("offered_qos_profiles".to_string(), qos);
                }
                Ok(ResolvedChannel {
                    topic: spec.topic,
                    type_name: spec.type_name,
                    schema,
                    metadata,
                    latched: spec.latched,
                })
            })
            .collect::<Result<Vec<_>, EventRecordError>>()?;
        if let Err(e) = std::fs::create_dir_all(&config.dir) {
            tracing::warn!(
                dir = %config.dir.display(),
                "cannot create the event recording directory: {e}; recordings will fail until \
                 it can be created (check the path and its permissions)"
            );
        }
        let queue = DropOldestQueue::new(tuning.queue_capacity);
        let state = Arc::new(Mutex::new(State::default()));
        let (commands, command_rx) = mpsc::channel();
        let worker = Worker::new(
            config.clone(),
            resolved,
            tuning,
            queue.clone(),
            command_rx,
            state.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("mcap-events".to_string())
            .spawn(move || worker.run())
            .map_err(EventRecordError::Thread)?;
        Ok(Self {
            config,
            queue,
            state,
            commands,
            thread: Some(thread),
        })
    }

    /// Hands a sample to the writer thread. Never blocks: when the thread falls behind the
    /// oldest waiting sample is dropped (counted in [`RecorderStats::dropped_queue`]).
    pub fn push(&self, sample: Sample) {
        self.queue.push(sample);
    }

    /// Holds `reason`, starting a recording if none runs. Answers the file being written, or
    /// the one the event will be written to (named now, created by the thread at once).
    pub fn start(&self, reason: Reason) -> PathBuf {
        self.start_at(reason, SystemTime::now())
    }

    fn start_at(&self, reason: Reason, now: SystemTime) -> PathBuf {
        let mut state = crate::lock(&self.state);
        let was_recording = state.recording();
        *state.flag(reason) = true;
        if was_recording && let Some(path) = &state.current_file {
            return path.clone();
        }
        let start_ns = unix_ns(now);
        state.event_id += 1;
        let path = state
            .namer
            .next(&self.config.dir, &self.config.file_prefix, start_ns);
        state.current_file = Some(path.clone());
        let command = Command::Start {
            event_id: state.event_id,
            path: path.clone(),
            start_ns,
            reason,
        };
        if self.commands.send(command).is_err() {
            tracing::error!("the event recorder thread has ended; nothing will be recorded");
        }
        path
    }

    /// Releases `reason`. When no reason holds any more the recording ends: answers the file
    /// that is closed then (`None` while another reason still holds, or if none did).
    pub fn stop(&self, reason: Reason) -> Option<PathBuf> {
        self.stop_at(reason, SystemTime::now())
    }

    fn stop_at(&self, reason: Reason, now: SystemTime) -> Option<PathBuf> {
        let mut state = crate::lock(&self.state);
        if !std::mem::replace(state.flag(reason), false) || state.recording() {
            return None;
        }
        let path = state.current_file.take();
        let command = Command::Stop {
            stop_ns: unix_ns(now),
        };
        if self.commands.send(command).is_err() {
            tracing::error!("the event recorder thread has ended; the last file was not closed");
        }
        path
    }

    pub fn stats(&self) -> RecorderStats {
        let state = crate::lock(&self.state);
        RecorderStats {
            recording: state.recording(),
            current_file: state.current_file.clone(),
            files_written: state.files_written,
            messages_written: state.messages_written,
            bytes_written: state.bytes_written,
            dropped_queue: self.queue.dropped(),
            dropped_write: state.dropped_write,
            files_deleted: state.files_deleted,
            last_error: state.last_error.clone(),
        }
    }

    /// Writes what is queued and finishes the open file (summary, footer), waiting at most
    /// `timeout` (blocking the caller; from async code call it in `spawn_blocking`). After a
    /// timeout the thread goes on finishing the file on its own.
    pub fn finish(mut self, timeout: Duration) -> Result<(), EventRecordError> {
        self.queue.close();
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return Err(EventRecordError::Timeout {
                    timeout_ms: timeout.as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        thread.join().map_err(|_| EventRecordError::Panicked)?
    }
}

impl Drop for EventRecorder {
    /// Without [`finish`](Self::finish): closes the queue; the thread finishes the open file
    /// on its own (if the process lives long enough).
    fn drop(&mut self) {
        self.queue.close();
    }
}

fn check_config(
    config: &EventRecorderConfig,
    channels: &[ChannelSpec],
) -> Result<(), EventRecordError> {
    let prefix = &config.file_prefix;
    if prefix.is_empty() || prefix.contains(['/', '\\']) || prefix.starts_with('.') {
        return Err(EventRecordError::Config(format!(
            "file_prefix {prefix:?} must be a plain, non-empty file name start"
        )));
    }
    if config.max_file.is_zero() {
        return Err(EventRecordError::Config(
            "max_file must be longer than zero".to_string(),
        ));
    }
    if channels.is_empty() {
        return Err(EventRecordError::Config(
            "no channel to record: give at least one topic".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
