//! The stream's health as a diagnostics report: a level, a message and key/value pairs
//! (ROS-free; the node wraps it in `diagnostic_msgs/DiagnosticStatus`).

use std::time::{Duration, Instant};

use crate::stats::{Rates, StatsSnapshot};
use crate::stream::{StreamState, StreamStatus};

/// Connecting for longer than this is reported as a warning.
const SLOW_CONNECT: Duration = Duration::from_secs(15);

/// Severity, as `diagnostic_msgs/DiagnosticStatus` levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok = 0,
    Warn = 1,
    Error = 2,
}

/// One health report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub level: Level,
    pub message: String,
    pub values: Vec<(&'static str, String)>,
}

/// Detection counters shown in the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DetectionSummary {
    pub messages: u64,
    /// Age and class of the last detection.
    pub last: Option<(Duration, String)>,
    pub auto_trigger: bool,
}

fn optional_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}"))
}

/// Builds the report from the stream's status and counters over the last window.
pub fn build(
    status: &StreamStatus,
    snapshot: &StatsSnapshot,
    rates: Rates,
    detections: &DetectionSummary,
    now: Instant,
) -> Report {
    let in_state = now.saturating_duration_since(status.since);
    let link_down = status
        .link_down_since
        .map(|since| now.saturating_duration_since(since));
    let (level, message) = match status.state {
        StreamState::Stopped | StreamState::Failed | StreamState::Streaming => {
            plain_state(status, rates, in_state)
        }
        _ => match link_down {
            Some(down) => (
                Level::Warn,
                format!(
                    "no video for {:.0} s: the camera cannot be reached (link down?); trying \
                     again about once per second",
                    down.as_secs_f64()
                ),
            ),
            None => plain_state(status, rates, in_state),
        },
    };
    let link_down_secs =
        link_down.map_or_else(|| "0".to_string(), |d| format!("{:.1}", d.as_secs_f64()));
    let (detection_age, detection_class) = match &detections.last {
        Some((age, class)) => (format!("{:.1}", age.as_secs_f64()), class.clone()),
        None => ("n/a".to_string(), String::new()),
    };
    let values = vec![
        ("state", status.state.as_str().to_string()),
        ("link_down_secs", link_down_secs),
        ("frames_received", snapshot.frames_received.to_string()),
        ("frames_decoded", snapshot.frames_decoded.to_string()),
        (
            "frames_awaiting_keyframe",
            snapshot.frames_awaiting_keyframe.to_string(),
        ),
        ("frames_caught_up", snapshot.frames_caught_up.to_string()),
        (
            "frames_dropped_before_decoding",
            snapshot.frames_dropped_before_decoding.to_string(),
        ),
        (
            "frames_in_flight",
            snapshot
                .frames_received
                .saturating_sub(snapshot.frames_accounted())
                .to_string(),
        ),
        ("frames_withheld", snapshot.frames_withheld.to_string()),
        (
            "frames_not_decoded",
            snapshot.frames_not_decoded.to_string(),
        ),
        ("frames_published", snapshot.frames_published.to_string()),
        ("frames_dropped", snapshot.frames_dropped.to_string()),
        ("frames_incomplete", snapshot.frames_incomplete.to_string()),
        ("frames_oversized", snapshot.frames_oversized.to_string()),
        (
            "rtp_sequence_resyncs",
            snapshot.rtp_sequence_resyncs.to_string(),
        ),
        ("decode_errors", snapshot.decode_errors.to_string()),
        ("rtp_packets", snapshot.rtp_packets.to_string()),
        ("rtp_packets_lost", snapshot.rtp_packets_lost.to_string()),
        ("packets_recovered", snapshot.packets_recovered.to_string()),
        (
            "rtp_packets_too_late",
            snapshot.rtp_packets_too_late.to_string(),
        ),
        (
            "target_bitrate_bps",
            snapshot.target_bitrate_bps.to_string(),
        ),
        ("keyframe_requests", snapshot.keyframe_requests.to_string()),
        ("fps", format!("{:.2}", rates.fps)),
        ("bitrate_bps", format!("{:.0}", rates.bitrate_bps)),
        ("latency_ms_p50", optional_ms(snapshot.latency_p50_ms)),
        ("latency_ms_p95", optional_ms(snapshot.latency_p95_ms)),
        ("latency_ms_p99", optional_ms(snapshot.latency_p99_ms)),
        ("reconnects", snapshot.reconnects.to_string()),
        ("ffmpeg_published", snapshot.ffmpeg_published.to_string()),
        (
            "foxglove_published",
            snapshot.foxglove_published.to_string(),
        ),
        (
            "passthrough_dropped",
            snapshot.passthrough_dropped.to_string(),
        ),
        ("jpeg_encoded", snapshot.jpeg_encoded.to_string()),
        ("jpeg_published", snapshot.jpeg_published.to_string()),
        ("jpeg_dropped", snapshot.jpeg_dropped.to_string()),
        ("jpeg_errors", snapshot.jpeg_errors.to_string()),
        ("last_error", status.last_error.clone().unwrap_or_default()),
        ("width", snapshot.width.to_string()),
        ("height", snapshot.height.to_string()),
        ("detections_received", detections.messages.to_string()),
        ("last_detection_age_secs", detection_age),
        ("last_detection_class", detection_class),
        ("auto_trigger", detections.auto_trigger.to_string()),
    ];
    Report {
        level,
        message,
        values,
    }
}

/// The level and message from the state alone.
fn plain_state(status: &StreamStatus, rates: Rates, in_state: Duration) -> (Level, String) {
    match status.state {
        StreamState::Streaming if rates.fps > 0.0 => (Level::Ok, "streaming".to_string()),
        // Nobody subscribes to pictures (only passthrough, JPEG, recording, or nothing): the
        // video arrives, none is decoded. Not a fault.
        StreamState::Streaming if rates.received_fps > 0.0 => (
            Level::Ok,
            "streaming (no picture subscriber: none decoded)".to_string(),
        ),
        StreamState::Streaming if in_state < Duration::from_secs(2) => (
            Level::Ok,
            "connected, waiting for the first frame".to_string(),
        ),
        StreamState::Streaming => (
            Level::Warn,
            "connected but no frames are published (stalled)".to_string(),
        ),
        StreamState::Stopped => (
            Level::Ok,
            "stopped (call ~/start_stream to stream)".to_string(),
        ),
        StreamState::Reconnecting => (Level::Warn, "reconnecting after an error".to_string()),
        StreamState::Failed => (Level::Error, "failed; see last_error".to_string()),
        state if in_state > SLOW_CONNECT => (
            Level::Warn,
            format!("still {state} after {:.0} s", in_state.as_secs_f64()),
        ),
        state => (Level::Ok, format!("starting: {state}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streaming() -> StreamStatus {
        StreamStatus {
            state: StreamState::Streaming,
            since: Instant::now(),
            last_error: None,
            link_down_since: None,
        }
    }

    fn rates(fps: f64, received_fps: f64) -> Rates {
        Rates {
            fps,
            received_fps,
            bitrate_bps: 0.0,
        }
    }

    #[test]
    fn video_arriving_without_picture_subscribers_is_streaming_not_stalled() {
        let long = Duration::from_secs(10);
        let (level, message) = plain_state(&streaming(), rates(30.0, 30.0), long);
        assert_eq!((level, message.as_str()), (Level::Ok, "streaming"));
        let (level, message) = plain_state(&streaming(), rates(0.0, 30.0), long);
        assert_eq!(level, Level::Ok, "{message}");
        assert!(message.contains("no picture subscriber"), "{message}");
        let (level, message) = plain_state(&streaming(), rates(0.0, 0.0), long);
        assert_eq!(level, Level::Warn);
        assert!(message.contains("stalled"), "{message}");
    }
}
