//! `ptz_stream_probe`'s run: stream with the same ROS-free session as the node, print a
//! statistics line every interval and a summary at the end, optionally record the access units
//! to MP4, write PNG snapshots and show a window.
//!
//! [`frames`] consumes the decoded frames as a subscriber would (and schedules the snapshots),
//! [`display`] and [`overlay`] are the `--display` window, [`report`] formats the output lines.

pub mod display;
pub mod frames;
pub mod overlay;
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::media::handoff::{Demand, DropOldestQueue};
use crate::record::recorder::{Recorder, RecorderError};
use crate::robot::RobotError;
use crate::shutdown::CancellationToken;
use crate::stats::Rates;
use crate::stream::{self, AccessUnitTap, StreamConfig, StreamState};

/// Access units waiting for the recorder (about 4 s at 30 fps); older ones are dropped.
const RECORDER_QUEUE_FRAMES: usize = 128;
/// Shutdown budget after Ctrl+C or the end of the run (the whole stop stays within 2 s).
const STREAM_STOP_TIMEOUT: Duration = Duration::from_millis(1000);
const CONSUMER_STOP_TIMEOUT: Duration = Duration::from_millis(400);
/// The shortest statistics interval.
const MIN_STATS_INTERVAL: Duration = Duration::from_millis(100);

/// What one probe run does besides streaming.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// For messages and the window title.
    pub robot_host: String,
    /// Stop after this long; zero runs until shutdown.
    pub duration: Duration,
    pub stats_interval: Duration,
    /// Fail when no frame arrived within this long.
    pub first_frame_timeout: Duration,
    /// Record the access units into this fragmented MP4 file.
    pub save_video: Option<PathBuf>,
    /// Write a PNG snapshot every interval into the directory (which must exist).
    pub snapshots: Option<(Duration, PathBuf)>,
    /// Show the stream in a window (headless, with a warning, when there is no display).
    pub display: bool,
}

/// Why a probe run failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Robot(#[from] RobotError),
    #[error("--save-video: {0}")]
    RecorderStart(#[source] RecorderError),
    #[error("recording {path}: {source}")]
    Recording {
        path: String,
        #[source]
        source: RecorderError,
    },
    #[error("{0}")]
    StreamFailed(String),
    #[error("no frame within {timeout_secs:.0} s: {reason}")]
    NoFirstFrame { timeout_secs: f64, reason: String },
    #[error("the recording stopped early")]
    RecordingStoppedEarly,
    #[error("{failed} snapshot(s) could not be written: {first_error}")]
    Snapshots { failed: u64, first_error: String },
    #[error("no frames were received")]
    NoFrames,
}

/// Streams until `options.duration` passes or `shutdown` is cancelled, printing statistics
/// lines and the summary to stdout. Ok when frames arrived and every output was written.
pub async fn run(
    mut config: StreamConfig,
    options: ProbeOptions,
    shutdown: CancellationToken,
) -> Result<(), ProbeError> {
    let recorder = match &options.save_video {
        Some(path) => {
            let tap = DropOldestQueue::new(RECORDER_QUEUE_FRAMES);
            config.access_unit_tap = Some(AccessUnitTap {
                queue: tap.clone(),
                demand: Demand::new(true),
            });
            Some(Recorder::start(path, tap).map_err(ProbeError::RecorderStart)?)
        }
        None => None,
    };
    let (handle, task) = stream::spawn(config, true, shutdown.child_token())?;
    let stats = handle.stats();
    let frames = handle.frames();
    let display = if options.display {
        display::start(handle.clone(), &options.robot_host, shutdown.clone())
    } else {
        None
    };
    // Consume frames as a subscriber would, measuring arrival → hand-over latency.
    let consumer = tokio::spawn(frames::consume_frames(
        frames.clone(),
        stats.clone(),
        options.snapshots.clone(),
        display.as_ref().map(|d| d.frames.clone()),
    ));

    let started = Instant::now();
    let mut previous = stats.snapshot();
    let mut tick = tokio::time::interval(options.stats_interval.max(MIN_STATS_INTERVAL));
    tick.tick().await;
    eprintln!("connecting to {} ...", options.robot_host);
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = tick.tick() => {}
        }
        let snapshot = stats.snapshot();
        let status = handle.status();
        let rates = Rates::between(&previous, &snapshot);
        println!("{}", report::stats_line(&snapshot, rates, status.state));
        previous = snapshot;
        if status.state == StreamState::Failed {
            let reason = status
                .last_error
                .unwrap_or_else(|| "the stream failed".into());
            break Err(ProbeError::StreamFailed(reason));
        }
        if previous.frames_published == 0 && started.elapsed() >= options.first_frame_timeout {
            break Err(ProbeError::NoFirstFrame {
                timeout_secs: options.first_frame_timeout.as_secs_f64(),
                reason: status
                    .last_error
                    .unwrap_or_else(|| format!("still {}", status.state)),
            });
        }
        if !options.duration.is_zero() && started.elapsed() >= options.duration {
            break Ok(());
        }
        if recorder.as_ref().is_some_and(Recorder::has_stopped) {
            break Err(ProbeError::RecordingStoppedEarly);
        }
    };
    shutdown.cancel();
    if tokio::time::timeout(STREAM_STOP_TIMEOUT, task)
        .await
        .is_err()
    {
        tracing::warn!("the stream task did not stop in time");
    }
    frames.close();
    let snapshot_report = match tokio::time::timeout(CONSUMER_STOP_TIMEOUT, consumer).await {
        Ok(Ok(report)) => Some(report),
        Ok(Err(error)) => {
            tracing::error!(%error, "the frame consumer failed");
            None
        }
        Err(_) => {
            tracing::warn!("the frame consumer did not stop in time");
            None
        }
    };
    let recording = match recorder {
        Some(recorder) => Some(recorder.finish().await),
        None => None,
    };
    if let Some(display) = display {
        display.stop().await;
    }
    let total = stats.snapshot();
    println!(
        "{}",
        report::summary_line(&total, started.elapsed().as_secs_f64())
    );
    let mut recording_error = None;
    if let (Some(result), Some(path)) = (recording, &options.save_video) {
        match result {
            Ok(recorded) => println!("{}", report::recording_line(path, &recorded)),
            Err(source) => {
                recording_error = Some(ProbeError::Recording {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
    if let (Some(report), Some((_, dir))) = (&snapshot_report, &options.snapshots) {
        println!(
            "snapshots: {} written to {}, {} failed",
            report.written,
            dir.display(),
            report.failed
        );
    }
    // A write error of the recording explains an early stop better than the stop itself.
    if let Some(error) = recording_error {
        return Err(error);
    }
    outcome?;
    if let Some(report) = snapshot_report
        && let Some(first_error) = report.first_error
    {
        return Err(ProbeError::Snapshots {
            failed: report.failed,
            first_error,
        });
    }
    if total.frames_published == 0 {
        return Err(ProbeError::NoFrames);
    }
    Ok(())
}
