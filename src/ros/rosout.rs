//! The node's log lines on `/rosout`, where rqt_console, Foxglove's log panel and `ros2 bag`
//! look for them (r2r creates no `/rosout` publisher, and its log calls reach the console only).
//!
//! [`RosoutLayer`] turns every `tracing` event the filter lets through into a pending
//! `rcl_interfaces/msg/Log` in a bounded queue ([`QUEUE_LINES`], the oldest dropped and
//! counted). The queue is process-wide: the layer is installed with the subscriber, before the
//! node exists, and the lines logged until then wait in it. [`start`] creates the publisher
//! once the node exists and publishes the queue's lines under the node's logger name, with
//! rcl's own `/rosout` QoS, until shutdown.
//!
//! Publishing a line must not log a line that is published again: while this module publishes,
//! the events of that thread (r2r reports a failed publish through `log`) reach the console
//! but not the queue.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use r2r::QosProfile;
use r2r::builtin_interfaces::msg::Time;
use r2r::rcl_interfaces::msg::Log;
use tokio::task::JoinHandle;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::media::handoff::DropOldestQueue;
use crate::ros::logging::EventText;
use crate::shutdown::CancellationToken;

/// Lines waiting for the publisher at most (as many as `/rosout` keeps for late joiners).
pub const QUEUE_LINES: usize = 1000;
/// rcl's `/rosout` QoS (`rcl_qos_profile_rosout_default`): reliable, transient local, keep
/// last 1000, each line kept 10 s for late-joining subscribers.
const ROSOUT_DEPTH: usize = 1000;
const ROSOUT_LIFESPAN: Duration = Duration::from_secs(10);
/// The shortest time between two reports of dropped lines.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// `rcl_interfaces/msg/Log` levels (tracing has no FATAL: 50 is never sent).
pub const LEVEL_DEBUG: u8 = 10;
pub const LEVEL_INFO: u8 = 20;
pub const LEVEL_WARN: u8 = 30;
pub const LEVEL_ERROR: u8 = 40;

/// One log line waiting for the publisher (the node's name is added when it is published).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingLog {
    /// Wall time of the event.
    pub stamp: SystemTime,
    /// [`LEVEL_DEBUG`] .. [`LEVEL_ERROR`].
    pub level: u8,
    /// The message and its fields, as the console shows them.
    pub msg: String,
    pub file: String,
    /// The module the event comes from (tracing does not know the function).
    pub function: String,
    pub line: u32,
}

/// The queue [`RosoutLayer::install`] fills and [`start`] publishes from.
static QUEUE: OnceLock<Arc<DropOldestQueue<PendingLog>>> = OnceLock::new();

thread_local! {
    /// This thread is publishing a line: its events are not queued.
    static PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as publishing while it lives.
struct Publishing;

impl Publishing {
    fn enter() -> Self {
        PUBLISHING.with(|p| p.set(true));
        Publishing
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        PUBLISHING.with(|p| p.set(false));
    }
}

/// A `tracing` layer that queues every event for `/rosout`.
pub struct RosoutLayer {
    queue: Arc<DropOldestQueue<PendingLog>>,
}

impl RosoutLayer {
    /// The layer of the process's subscriber, queueing into the queue [`start`] publishes.
    pub fn install() -> Self {
        let queue = QUEUE.get_or_init(|| DropOldestQueue::new(QUEUE_LINES));
        Self::with_queue(Arc::clone(queue))
    }

    /// A layer queueing into `queue` (tests).
    pub fn with_queue(queue: Arc<DropOldestQueue<PendingLog>>) -> Self {
        Self { queue }
    }
}

/// The `Log` level of a `tracing` level.
pub fn level_of(level: &Level) -> u8 {
    match *level {
        Level::ERROR => LEVEL_ERROR,
        Level::WARN => LEVEL_WARN,
        Level::INFO => LEVEL_INFO,
        Level::DEBUG | Level::TRACE => LEVEL_DEBUG,
    }
}

impl<S: Subscriber> Layer<S> for RosoutLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if PUBLISHING.with(Cell::get) {
            return;
        }
        let text = EventText::of(event);
        let metadata = event.metadata();
        let file = metadata
            .file()
            .map(str::to_owned)
            .or_else(|| text.log_file.clone())
            .unwrap_or_default();
        let line = metadata.line().or(text.log_line).unwrap_or(0);
        let function = metadata
            .module_path()
            .map(str::to_owned)
            .or_else(|| text.log_module_path.clone())
            .unwrap_or_else(|| metadata.target().to_owned());
        self.queue.push(PendingLog {
            stamp: SystemTime::now(),
            level: level_of(metadata.level()),
            msg: text.line(),
            file,
            function,
            line,
        });
    }
}

/// rcl's logger name of a node: its namespace without the leading `/`, `/` as `.`, then the
/// node's name (`spot_ptz_stream` in `/`, `robot.cam.spot_ptz_stream` in `/robot/cam`).
pub fn logger_name(namespace: &str, node_name: &str) -> String {
    let namespace = namespace.trim_matches('/');
    if namespace.is_empty() {
        node_name.to_owned()
    } else {
        format!("{}.{node_name}", namespace.replace('/', "."))
    }
}

/// Creates the `/rosout` publisher on `node` and publishes the lines of the process's queue
/// (those logged before the node existed first) until `shutdown`. `None` when no
/// [`RosoutLayer`] was installed or the publisher cannot be created (logged: the lines then
/// reach the console only).
pub fn start(node: &mut r2r::Node, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let queue = Arc::clone(QUEUE.get()?);
    // Before Jazzy, rcl's node creation makes the node's /rosout publisher itself (rcl#1065
    // removed that): publishing here too would show every line twice.
    if let Ok(distro) = std::env::var("ROS_DISTRO")
        && matches!(distro.as_str(), "humble" | "iron")
    {
        tracing::debug!(%distro, "/rosout is rcl's own on this distribution");
        return None;
    }
    let qos = QosProfile::default()
        .keep_last(ROSOUT_DEPTH)
        .reliable()
        .transient_local()
        .lifespan(ROSOUT_LIFESPAN);
    let publisher = match node.create_publisher::<Log>("/rosout", qos) {
        Ok(publisher) => publisher,
        Err(error) => {
            tracing::warn!(
                %error,
                "could not create the /rosout publisher: the node's log lines reach the console \
                 only (not rqt_console, Foxglove or bags); check the ROS installation \
                 (rcl_interfaces) and restart the node"
            );
            return None;
        }
    };
    // rcl's own name when it has one; built the same way otherwise.
    let name = match node.logger() {
        "" => logger_name(
            &node.namespace().unwrap_or_default(),
            &node.name().unwrap_or_default(),
        ),
        logger => logger.to_owned(),
    };
    Some(tokio::spawn(publish(queue, publisher, name, shutdown)))
}

/// Publishes the queue's lines until `shutdown` (then what is queued, at most a queue's worth)
/// or until the queue is closed.
async fn publish(
    queue: Arc<DropOldestQueue<PendingLog>>,
    publisher: r2r::Publisher<Log>,
    name: String,
    shutdown: CancellationToken,
) {
    let mut sender = Sender {
        publisher,
        name,
        failing: false,
        stopping: false,
        dropped_reported: 0,
        dropped_reported_at: None,
    };
    loop {
        let line = tokio::select! {
            line = queue.pop() => line,
            _ = shutdown.cancelled() => break,
        };
        let Some(line) = line else { return };
        sender.send(line);
        sender.report_dropped(&queue);
    }
    // The node may be gone any moment now (its spinner ends on the same token).
    sender.stopping = true;
    for _ in 0..QUEUE_LINES {
        match queue.pop_blocking(Duration::ZERO) {
            Ok(Some(line)) => sender.send(line),
            Ok(None) | Err(_) => break,
        }
    }
}

struct Sender {
    publisher: r2r::Publisher<Log>,
    name: String,
    /// The last publish failed (reported once, until one succeeds again).
    failing: bool,
    /// Shutting down: a failure is the node going away, not worth a warning.
    stopping: bool,
    dropped_reported: u64,
    dropped_reported_at: Option<Instant>,
}

impl Sender {
    fn send(&mut self, line: PendingLog) {
        let since_epoch = line.stamp.duration_since(UNIX_EPOCH).unwrap_or_default();
        let message = Log {
            stamp: Time {
                sec: i32::try_from(since_epoch.as_secs()).unwrap_or(i32::MAX),
                nanosec: since_epoch.subsec_nanos(),
            },
            level: line.level,
            name: self.name.clone(),
            msg: line.msg,
            file: line.file,
            function: line.function,
            line: line.line,
        };
        // What r2r and this function log from here on reaches the console only.
        let _publishing = Publishing::enter();
        match self.publisher.publish(&message) {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("log lines are published on /rosout again");
            }
            Ok(()) => {}
            Err(error) if !self.failing && !self.stopping => {
                self.failing = true;
                tracing::warn!(
                    %error,
                    "could not publish a log line on /rosout (rqt_console and bags miss it; the \
                     console has it); retrying with the next line"
                );
            }
            Err(_) => {}
        }
    }

    /// Logs (and so publishes) how many lines the full queue dropped, at most every
    /// [`DROP_REPORT_INTERVAL`].
    fn report_dropped(&mut self, queue: &DropOldestQueue<PendingLog>) {
        let dropped = queue.dropped();
        if dropped == self.dropped_reported
            || self
                .dropped_reported_at
                .is_some_and(|at| at.elapsed() < DROP_REPORT_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            dropped_lines = dropped - self.dropped_reported,
            "log lines came faster than /rosout took them and the oldest were dropped from \
             /rosout (the console has them all); lower the log level (SPOT_PTZ_STREAM_LOG) if \
             this repeats"
        );
        self.dropped_reported = dropped;
        self.dropped_reported_at = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    fn queued(log: impl FnOnce()) -> Vec<PendingLog> {
        let queue = DropOldestQueue::new(3);
        let subscriber =
            tracing_subscriber::registry().with(RosoutLayer::with_queue(Arc::clone(&queue)));
        tracing::subscriber::with_default(subscriber, log);
        std::iter::from_fn(|| queue.pop_blocking(Duration::ZERO).ok().flatten()).collect()
    }

    #[test]
    fn events_become_log_lines_with_level_fields_and_place() {
        let lines = queued(|| {
            tracing::warn!(port = 21000, "first");
            tracing::info!(reason = %"a b", "second");
            tracing::debug!("third");
            tracing::error!("fourth");
        });
        // The oldest dropped: the queue holds three.
        let levels: Vec<u8> = lines.iter().map(|l| l.level).collect();
        assert_eq!(levels, [LEVEL_INFO, LEVEL_DEBUG, LEVEL_ERROR]);
        assert_eq!(lines[0].msg, "second reason=a b");
        assert!(lines[0].file.ends_with("rosout.rs"), "{:?}", lines[0]);
        assert!(lines[0].line > 0);
        assert_eq!(lines[0].function, module_path!());
    }

    #[test]
    fn nothing_is_queued_while_publishing() {
        let lines = queued(|| {
            let publishing = Publishing::enter();
            tracing::error!("could not publish");
            drop(publishing);
            tracing::info!("after");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].msg, "after");
    }

    #[test]
    fn logger_names_as_rcl_builds_them() {
        assert_eq!(logger_name("/", "spot_ptz_stream"), "spot_ptz_stream");
        assert_eq!(logger_name("/ns", "spot_ptz_stream"), "ns.spot_ptz_stream");
        assert_eq!(logger_name("/a/b", "n"), "a.b.n");
    }
}
