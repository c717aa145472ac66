//! The probe's output lines: statistics, the summary and the recording report.

use std::path::Path;

use crate::record::recorder::RecordingReport;
use crate::stats::{Rates, StatsSnapshot};
use crate::stream::StreamState;

/// One statistics line, printed every `--stats-interval`.
pub fn stats_line(snapshot: &StatsSnapshot, rates: Rates, state: StreamState) -> String {
    format!(
        "state={state} frames received={} decoded={} published={} dropped={} incomplete={} fps={:.1} bitrate={:.2} Mbit/s latency p50/p99={}/{} ms size={}x{} reconnects={}",
        snapshot.frames_received,
        snapshot.frames_decoded,
        snapshot.frames_published,
        snapshot.frames_dropped,
        snapshot.frames_incomplete,
        rates.fps,
        rates.bitrate_bps / 1e6,
        snapshot
            .latency_p50_ms
            .map_or("-".to_string(), |v| format!("{v:.1}")),
        snapshot
            .latency_p99_ms
            .map_or("-".to_string(), |v| format!("{v:.1}")),
        snapshot.width,
        snapshot.height,
        snapshot.reconnects,
    )
}

/// The recording's report line.
pub fn recording_line(path: &Path, report: &RecordingReport) -> String {
    let summary = &report.summary;
    format!(
        "recording: {} {} frames ({} keyframes), {:.2} s, {}x{}, {} fragments, {:.2} MB, {} skipped before the first keyframe, {} lost in the recorder queue",
        path.display(),
        summary.samples,
        summary.sync_samples,
        summary.duration().as_secs_f64(),
        summary.width,
        summary.height,
        summary.fragments,
        summary.bytes_written as f64 / 1e6,
        report.skipped_waiting_for_keyframe,
        report.dropped_in_queue,
    )
}

/// The summary line at the end of a run.
pub fn summary_line(total: &StatsSnapshot, secs: f64) -> String {
    format!(
        "summary: {:.1} s, {} frames ({:.1} fps), {} dropped, {} incomplete, {} decode errors, {} reconnects, {}x{}",
        secs,
        total.frames_published,
        total.frames_published as f64 / secs.max(0.001),
        total.frames_dropped,
        total.frames_incomplete,
        total.decode_errors,
        total.reconnects,
        total.width,
        total.height
    )
}
