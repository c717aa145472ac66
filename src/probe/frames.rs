//! The probe's frame consumer: takes decoded frames as a subscriber would and writes the PNG
//! snapshots on schedule.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::media::decoder::DecodedFrame;
use crate::media::handoff::DropOldestQueue;
use crate::record::snapshot::{self, SnapshotError, SnapshotSchedule};
use crate::stats::StreamStats;

/// What the frame consumer did.
#[derive(Debug, Default)]
pub struct SnapshotReport {
    pub written: u64,
    pub failed: u64,
    pub first_error: Option<String>,
}

/// Takes decoded frames as a subscriber would (latency, published count) and writes a PNG
/// snapshot every interval, on a blocking thread, one at a time (a due snapshot waits for the
/// next frame while the previous one is still being written).
pub async fn consume_frames(
    frames: Arc<DropOldestQueue<DecodedFrame>>,
    stats: Arc<StreamStats>,
    snapshots: Option<(Duration, PathBuf)>,
    display: Option<Arc<DropOldestQueue<DecodedFrame>>>,
) -> SnapshotReport {
    type Pending = tokio::task::JoinHandle<Result<PathBuf, SnapshotError>>;
    let mut report = SnapshotReport::default();
    let mut schedule = snapshots.map(|(interval, dir)| (SnapshotSchedule::new(interval), dir));
    let mut pending: Option<Pending> = None;
    async fn collect(pending: Pending, report: &mut SnapshotReport) {
        match pending.await {
            Ok(Ok(path)) => {
                report.written += 1;
                tracing::info!(path = %path.display(), "snapshot written");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "snapshot not written");
                report.failed += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
            Err(error) => {
                tracing::warn!(%error, "snapshot writer failed");
                report.failed += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    while let Some(frame) = frames.pop().await {
        stats.record_latency(frame.first_arrival.elapsed());
        stats.frames_published.fetch_add(1, Ordering::Relaxed);
        let writing = pending.as_ref().is_some_and(|p| !p.is_finished());
        if let Some((schedule, dir)) = schedule.as_mut()
            && !writing
        {
            if let Some(done) = pending.take() {
                collect(done, &mut report).await;
            }
            if let Some(sequence) = schedule.take(frame.first_arrival) {
                let path = snapshot::snapshot_path(dir, sequence);
                let frame = frame.clone();
                pending = Some(tokio::task::spawn_blocking(move || {
                    snapshot::write_png(&path, &frame).map(|()| path)
                }));
            }
        }
        if let Some(display) = &display {
            display.push(frame);
        }
    }
    if let Some(done) = pending.take() {
        collect(done, &mut report).await;
    }
    report
}
