//! Records the stream's H.264 access units into a fragmented MP4 on its own thread, without
//! decoding or re-encoding.
//!
//! The stream task copies every access unit into a bounded drop-oldest tap
//! ([`crate::stream::StreamConfig::access_unit_tap`], its demand always set); the recorder thread takes them from it,
//! times them from the RTP clock ([`RtpTimeline`]) and writes one-second fragments
//! ([`Mp4Writer`]), so the file stays playable however the run ends.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::media::depacketizer::AccessUnit;
use crate::media::handoff::{Closed, DropOldestQueue};
use crate::record::mp4_writer::{Mp4Error, Mp4Summary, Mp4Writer, PushOutcome, RtpTimeline};
use crate::shutdown::{self, ThreadEnd};

/// Length of one MP4 fragment.
const FRAGMENT_DURATION: Duration = Duration::from_secs(1);
/// An RTP time step that disagrees with the arrival clock by more than this (a reconnect)
/// is replaced by the arrival time.
const RTP_DISCONTINUITY: Duration = Duration::from_secs(1);
/// How long [`Recorder::finish`] waits for the last fragment to be written.
const STOP_TIMEOUT: Duration = Duration::from_millis(400);

/// What the recorder wrote.
#[derive(Debug)]
pub struct RecordingReport {
    pub summary: Mp4Summary,
    /// Access units before the first keyframe, which a file cannot start with.
    pub skipped_waiting_for_keyframe: u64,
    /// Access units the tap dropped because the recorder fell behind.
    pub dropped_in_queue: u64,
}

/// Recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot create {path}: {source}; check the directory exists and is writable")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the recorder thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Mp4(#[from] Mp4Error),
    #[error("cannot finish the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the recorder thread panicked; the file holds the fragments written so far")]
    Panicked,
    #[error(
        "the recorder did not finish within {timeout_ms} ms; the file holds the fragments written so far"
    )]
    Timeout { timeout_ms: u128 },
}

/// Writes the access units of the stream tap to a fragmented MP4 on its own thread.
pub struct Recorder {
    tap: Arc<DropOldestQueue<AccessUnit>>,
    thread: JoinHandle<Result<RecordingReport, RecorderError>>,
}

impl Recorder {
    /// Creates the file now (so a bad path fails before connecting) and starts the thread.
    pub fn start(
        path: &Path,
        tap: Arc<DropOldestQueue<AccessUnit>>,
    ) -> Result<Self, RecorderError> {
        let file = File::create(path).map_err(|source| RecorderError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let input = tap.clone();
        let thread = std::thread::Builder::new()
            .name("mp4-recorder".to_string())
            .spawn(move || record(BufWriter::new(file), &input))
            .map_err(RecorderError::Thread)?;
        Ok(Self { tap, thread })
    }

    /// The thread ended before it was asked to (a write error).
    pub fn has_stopped(&self) -> bool {
        self.thread.is_finished()
    }

    /// Closes the tap, lets the thread write what is queued and finish the file.
    pub async fn finish(self) -> Result<RecordingReport, RecorderError> {
        self.tap.close();
        match shutdown::join_thread(self.thread, STOP_TIMEOUT).await {
            ThreadEnd::Returned(result) => result,
            ThreadEnd::Panicked => Err(RecorderError::Panicked),
            ThreadEnd::StillRunning => Err(RecorderError::Timeout {
                timeout_ms: STOP_TIMEOUT.as_millis(),
            }),
        }
    }
}

fn record(
    out: BufWriter<File>,
    input: &DropOldestQueue<AccessUnit>,
) -> Result<RecordingReport, RecorderError> {
    let mut writer = Mp4Writer::new(out, FRAGMENT_DURATION);
    let mut timeline = RtpTimeline::new(RTP_DISCONTINUITY);
    let mut skipped = 0u64;
    let mut started_logged = false;
    loop {
        let au = match input.pop_blocking(Duration::from_millis(200)) {
            Ok(Some(au)) => au,
            Ok(None) => continue,
            Err(Closed) => break,
        };
        if !writer.started() {
            // The timeline starts with the first recorded frame.
            timeline = RtpTimeline::new(RTP_DISCONTINUITY);
        }
        let decode_time = timeline.decode_time_ticks(au.rtp_timestamp, au.first_arrival);
        match writer.push(&au.data, decode_time, au.is_idr)? {
            PushOutcome::Queued => {
                if !started_logged {
                    started_logged = true;
                    tracing::info!("recording started at a keyframe");
                }
            }
            PushOutcome::WaitingForKeyframe => skipped += 1,
        }
    }
    let dropped_in_queue = input.dropped();
    if dropped_in_queue > 0 {
        tracing::error!(
            frames = dropped_in_queue,
            "the recorder fell behind; frames were dropped from the recording"
        );
    }
    let (summary, out) = writer.finish()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(RecordingReport {
        summary,
        skipped_waiting_for_keyframe: skipped,
        dropped_in_queue,
    })
}
