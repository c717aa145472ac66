//! The writer thread: takes samples from the queue, keeps the pre-roll ring while idle, writes
//! the event files, closes a chunk every second, splits long events at keyframes, deletes old
//! files, and rides out write errors (a full disk, a vanished directory) without blocking.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::media::handoff::{Closed, DropOldestQueue};

use super::mcap_file::{EventFile, EventInfo, ResolvedChannel, Skipped, unix_ns};
use super::pre_roll::{PreRoll, RingLimits};
use super::retention;
use super::{EventRecordError, EventRecorderConfig, Reason, Sample, State, VideoKey};

/// The ring keeps this much beyond the pre-roll: a start reaches the thread up to a poll
/// interval (or a slow write) after it was asked for.
const RING_SLACK: Duration = Duration::from_secs(1);

/// From the handle to the thread, in call order.
#[derive(Debug)]
pub(crate) enum Command {
    Start {
        event_id: u64,
        path: PathBuf,
        start_ns: u64,
        reason: Reason,
    },
    Stop {
        stop_ns: u64,
    },
}

/// The thread's fixed numbers (tests shorten the waits).
#[derive(Debug, Clone)]
pub(crate) struct Tuning {
    /// Samples waiting for the thread at most (~15 s of 30 fps video with its metadata).
    pub queue_capacity: usize,
    /// A chunk is closed (and survives a crash) at least this often.
    pub flush_interval: Duration,
    /// After a write error a new file is tried no more often than this.
    pub retry_interval: Duration,
    /// The directory's total size is checked this often while recording.
    pub retention_interval: Duration,
    /// The ring keeps at most `max(this, pre_roll + 10 s)` of log time…
    pub ring_min_span: Duration,
    /// …and at most this many payload bytes.
    pub ring_max_bytes: usize,
    /// Longest wait for a sample before looking at commands and timers again, while an event
    /// is recorded…
    pub poll: Duration,
    /// …and while none is (a start waits at most this long; the ring keeps `RING_SLACK` more
    /// than the pre-roll for it).
    pub idle_poll: Duration,
    /// The queue overflowing is logged (ERROR) at most this often.
    pub drop_report_interval: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            queue_capacity: 512,
            flush_interval: Duration::from_secs(1),
            retry_interval: Duration::from_secs(5),
            retention_interval: Duration::from_secs(5),
            ring_min_span: Duration::from_secs(30),
            ring_max_bytes: 64 * 1024 * 1024,
            poll: Duration::from_millis(50),
            idle_poll: Duration::from_millis(250),
            drop_report_interval: Duration::from_secs(10),
        }
    }
}

/// The event being recorded.
struct Event {
    id: u64,
    info: EventInfo,
    /// `None` after a write error until a new file opens.
    file: Option<EventFile>,
    /// When opening a file last failed (the next try waits `retry_interval`).
    failed_at: Option<Instant>,
    /// Log time of the last IDR seen, to prefer IDRs for splitting.
    last_idr_ns: Option<u64>,
}

pub(crate) struct Worker {
    config: EventRecorderConfig,
    channels: Vec<ResolvedChannel>,
    tuning: Tuning,
    queue: Arc<DropOldestQueue<Sample>>,
    commands: mpsc::Receiver<Command>,
    state: Arc<Mutex<State>>,
    ring: PreRoll,
    /// The last sample of each latched channel (by channel index), written at every file's
    /// start.
    latched: Vec<Option<Sample>>,
    event: Option<Event>,
    /// In a write-error episode (logged once at its start).
    failing: bool,
    /// A sample named a channel that does not exist (logged once).
    bad_channel_logged: bool,
    /// Bytes of the files closed so far.
    closed_bytes: u64,
    last_flush: Instant,
    last_retention: Instant,
    queue_drops_reported: u64,
    last_drop_report: Option<Instant>,
}

impl Worker {
    pub fn new(
        config: EventRecorderConfig,
        channels: Vec<ResolvedChannel>,
        tuning: Tuning,
        queue: Arc<DropOldestQueue<Sample>>,
        commands: mpsc::Receiver<Command>,
        state: Arc<Mutex<State>>,
    ) -> Self {
        let pre_roll_ns = duration_ns(config.pre_roll);
        let span = tuning
            .ring_min_span
            .max(config.pre_roll.saturating_add(Duration::from_secs(10)));
        let ring = PreRoll::new(RingLimits {
            pre_roll_ns,
            slack_ns: duration_ns(RING_SLACK),
            max_span_ns: duration_ns(span),
            max_bytes: tuning.ring_max_bytes,
        });
        Self {
            latched: vec![None; channels.len()],
            config,
            channels,
            tuning,
            queue,
            commands,
            state,
            ring,
            event: None,
            failing: false,
            bad_channel_logged: false,
            closed_bytes: 0,
            last_flush: Instant::now(),
            last_retention: Instant::now(),
            queue_drops_reported: 0,
            last_drop_report: None,
        }
    }

    /// Runs until the queue is closed and drained, then finishes the open file.
    pub fn run(mut self) -> Result<(), EventRecordError> {
        loop {
            self.apply_commands();
            let poll = if self.event.is_some() {
                self.tuning.poll
            } else {
                self.tuning.idle_poll
            };
            match self.queue.pop_blocking(poll) {
                Ok(Some(sample)) => self.on_sample(sample),
                Ok(None) => {}
                Err(Closed) => break,
            }
            self.on_tick();
        }
        self.apply_commands();
        self.report_queue_drops(true);
        self.end_event()
    }

    fn apply_commands(&mut self) {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Start {
                    event_id,
                    path,
                    start_ns,
                    reason,
                }) => self.start_event(event_id, path, start_ns, reason),
                Ok(Command::Stop { stop_ns }) => self.stop_event(stop_ns),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn start_event(&mut self, event_id: u64, path: PathBuf, start_ns: u64, reason: Reason) {
        // A start always follows a stop; end a left-over event all the same.
        if let Err(e) = self.end_event() {
            tracing::error!("{e}");
        }
        tracing::info!(file = %path.display(), reason = reason.as_str(), "event recording started");
        // What waits in the queue came before the start or just after: all of it is the clip's
        // (and must not be trimmed as the ring trims: the start time may be older than it).
        let mut waiting = Vec::with_capacity(self.queue.len());
        while let Ok(Some(sample)) = self.queue.pop_blocking(Duration::ZERO) {
            waiting.push(sample);
        }
        for sample in &waiting {
            self.remember_latched(sample);
        }
        let clip = self.ring.take_clip(start_ns, waiting);
        let first_ns = clip
            .first()
            .map_or(start_ns, |s| s.log_time_ns.min(start_ns));
        self.event = Some(Event {
            id: event_id,
            info: EventInfo {
                reason,
                start_ns,
                pre_roll_ns: duration_ns(self.config.pre_roll),
                part: 1,
            },
            file: None,
            failed_at: None,
            last_idr_ns: None,
        });
        if !self.open_file(path, start_ns, first_ns) {
            self.count_lost(clip.len() as u64);
            return;
        }
        for sample in clip {
            self.record(sample);
        }
    }

    /// Writes what was queued before the stop, then closes the file.
    fn stop_event(&mut self, stop_ns: u64) {
        let mut later = Vec::new();
        while let Ok(Some(sample)) = self.queue.pop_blocking(Duration::ZERO) {
            if sample.log_time_ns <= stop_ns {
                self.on_sample(sample);
            } else {
                later.push(sample);
            }
        }
        if let Err(e) = self.end_event() {
            tracing::error!("{e}");
        }
        for sample in later {
            self.ring.push(sample);
        }
    }

    /// Finishes the event's file, if any (an error is also logged and counted).
    fn end_event(&mut self) -> Result<(), EventRecordError> {
        let Some(mut event) = self.event.take() else {
            return Ok(());
        };
        let Some(file) = event.file.take() else {
            return Ok(());
        };
        let path = file.path().to_path_buf();
        let result = self.close_file(file);
        // The event just recorded stays, even alone over the limit.
        self.enforce_retention(Some(&path));
        tracing::info!(file = %path.display(), "event recording ended");
        result.map_err(|source| EventRecordError::Finish { path, source })
    }

    fn on_sample(&mut self, sample: Sample) {
        self.remember_latched(&sample);
        if self.event.is_some() {
            self.record(sample);
        } else {
            self.ring.push(sample);
        }
    }

    fn remember_latched(&mut self, sample: &Sample) {
        if self.channels.get(sample.channel).is_some_and(|c| c.latched) {
            self.latched[sample.channel] = Some(sample.clone());
        }
    }

    /// Writes a sample of the running event: splits the file first when it is due and this is
    /// a keyframe to split at, or opens a new file after a write error at a keyframe.
    fn record(&mut self, sample: Sample) {
        let max_file_ns = duration_ns(self.config.max_file);
        let retry_interval = self.tuning.retry_interval;
        let Some(event) = &mut self.event else {
            return;
        };
        if sample.video == Some(VideoKey::Idr) {
            event.last_idr_ns = Some(sample.log_time_ns);
        }
        let is_key = matches!(sample.video, Some(VideoKey::Idr | VideoKey::RecoveryPoint));
        match &event.file {
            Some(file) => {
                let due = sample.log_time_ns >= file.age_from_ns.saturating_add(max_file_ns);
                // A recovery point will do when the stream sends no periodic IDRs.
                let split_here = match sample.video {
                    Some(VideoKey::Idr) => true,
                    Some(VideoKey::RecoveryPoint) => event
                        .last_idr_ns
                        .is_none_or(|idr| sample.log_time_ns.saturating_sub(idr) >= max_file_ns),
                    _ => false,
                };
                if due && split_here {
                    self.split(&sample);
                }
            }
            None => {
                let may_retry = event
                    .failed_at
                    .is_none_or(|at| at.elapsed() >= retry_interval);
                if !(is_key && may_retry) {
                    self.count_lost(1);
                    return;
                }
                let event_id = event.id;
                let path = self.next_path(event_id);
                if !self.open_file(path, sample.log_time_ns, sample.log_time_ns) {
                    self.count_lost(1);
                    return;
                }
            }
        }
        self.write(&sample);
    }

    /// Closes the current file and opens the next part of the event at `sample` (a keyframe).
    fn split(&mut self, sample: &Sample) {
        let Some(event) = &mut self.event else { return };
        let Some(file) = event.file.take() else {
            return;
        };
        event.info.part += 1;
        let event_id = event.id;
        if let Err(e) = self.close_file(file) {
            tracing::debug!("closing a file at a split: {e}");
        }
        let path = self.next_path(event_id);
        if self.open_file(path, sample.log_time_ns, sample.log_time_ns) {
            tracing::info!("event recording continues in a new file (max_file reached)");
        }
    }

    /// Names a file starting now and announces it as the current file if the handle is still
    /// recording this event.
    fn next_path(&self, event_id: u64) -> PathBuf {
        let mut state = crate::lock(&self.state);
        let path = state.namer.next(
            &self.config.dir,
            &self.config.file_prefix,
            unix_ns(SystemTime::now()),
        );
        if state.event_id == event_id && state.recording() {
            state.current_file = Some(path.clone());
        }
        path
    }

    /// Creates the directory and the file for the running event and writes the latched
    /// channels' last messages into it, logged at `first_ns` (the file's first message time).
    /// On failure the event waits for a keyframe after `retry_interval`.
    fn open_file(&mut self, path: PathBuf, age_from_ns: u64, first_ns: u64) -> bool {
        let Some(event) = &mut self.event else {
            return false;
        };
        let opened = std::fs::create_dir_all(&self.config.dir)
            .map_err(mcap::McapError::from)
            .and_then(|()| EventFile::create(&path, &self.channels, &event.info, age_from_ns));
        match opened {
            Ok(file) => {
                event.file = Some(file);
                event.failed_at = None;
                self.last_flush = Instant::now();
                if self.failing {
                    self.failing = false;
                    tracing::warn!(file = %path.display(), "event recording resumed after write errors");
                }
                self.enforce_retention(Some(&path));
                let latched: Vec<Sample> = self.latched.iter().flatten().cloned().collect();
                for mut sample in latched {
                    sample.log_time_ns = first_ns;
                    self.write(&sample);
                }
                true
            }
            Err(e) => {
                event.failed_at = Some(Instant::now());
                // create_new may have made an empty file: leave no empty file behind.
                if path.metadata().is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&path);
                }
                self.write_failed(&path, &e);
                false
            }
        }
    }

    fn write(&mut self, sample: &Sample) {
        let Some(event) = &mut self.event else { return };
        let Some(file) = &mut event.file else {
            return;
        };
        match file.write(sample) {
            Ok(Ok(())) | Ok(Err(Skipped::BeforeKeyframe)) => {}
            Ok(Err(Skipped::UnknownChannel)) => {
                if !self.bad_channel_logged {
                    self.bad_channel_logged = true;
                    tracing::error!(
                        channel = sample.channel,
                        channels = self.channels.len(),
                        "a sample names a channel the event recorder was not given; such \
                         samples are dropped (a bug in the caller)"
                    );
                }
                self.count_lost(1);
            }
            Err(e) => self.file_broke(&e, 1),
        }
    }

    /// The open file failed: its unwritten messages (and `extra` samples) are lost, the file
    /// is given up, and a new one is tried later at a keyframe.
    fn file_broke(&mut self, error: &mcap::McapError, extra: u64) {
        let Some(event) = &mut self.event else { return };
        let Some(file) = event.file.take() else {
            return;
        };
        event.failed_at = Some(Instant::now());
        let path = file.path().to_path_buf();
        let lost = file.unflushed + extra;
        file.abandon();
        self.count_lost(lost);
        self.write_failed(&path, error);
    }

    /// Records a write error: `last_error`, and an ERROR at the start of an episode.
    fn write_failed(&mut self, path: &Path, error: &mcap::McapError) {
        let message = format!(
            "cannot write the event recording {}: {}; free disk space or make {} writable \
             (a new file is tried every {} s at a video keyframe)",
            path.display(),
            error_chain(error),
            self.config.dir.display(),
            self.tuning.retry_interval.as_secs_f32(),
        );
        if !self.failing {
            self.failing = true;
            tracing::error!("{message}");
        } else {
            tracing::debug!("{message}");
        }
        crate::lock(&self.state).last_error = Some(message);
    }

    fn count_lost(&self, samples: u64) {
        if samples > 0 {
            crate::lock(&self.state).dropped_write += samples;
        }
    }

    /// Finishes a file and counts it; an error is logged and counted like a write error.
    fn close_file(&mut self, file: EventFile) -> Result<(), mcap::McapError> {
        let path = file.path().to_path_buf();
        let unflushed = file.unflushed;
        match file.finish() {
            Ok(messages) => {
                let size_bytes = path.metadata().map_or(0, |m| m.len());
                self.closed_bytes += size_bytes;
                let mut state = crate::lock(&self.state);
                state.files_written += 1;
                state.messages_written += messages;
                state.bytes_written = self.closed_bytes;
                Ok(())
            }
            Err(e) => {
                self.count_lost(unflushed);
                self.write_failed(&path, &e);
                Err(e)
            }
        }
    }

    fn on_tick(&mut self) {
        if self.last_flush.elapsed() >= self.tuning.flush_interval {
            self.last_flush = Instant::now();
            self.flush();
        }
        if self.event.is_some() && self.last_retention.elapsed() >= self.tuning.retention_interval {
            let open = self
                .event
                .as_ref()
                .and_then(|e| e.file.as_ref())
                .map(|f| f.path().to_path_buf());
            self.enforce_retention(open.as_deref());
        }
        self.report_queue_drops(false);
    }

    fn flush(&mut self) {
        let Some(file) = self.event.as_mut().and_then(|e| e.file.as_mut()) else {
            return;
        };
        if file.unflushed == 0 {
            return;
        }
        match file.flush() {
            Ok(messages) => {
                let size_bytes = file.path().metadata().map_or(0, |m| m.len());
                let mut state = crate::lock(&self.state);
                state.messages_written += messages;
                state.bytes_written = self.closed_bytes + size_bytes;
            }
            Err(e) => self.file_broke(&e, 0),
        }
    }

    fn enforce_retention(&mut self, open: Option<&Path>) {
        self.last_retention = Instant::now();
        let deleted = retention::enforce(
            &self.config.dir,
            &self.config.file_prefix,
            self.config.max_total_bytes,
            open,
        );
        if deleted > 0 {
            crate::lock(&self.state).files_deleted += deleted;
        }
    }

    fn report_queue_drops(&mut self, now: bool) {
        let dropped = self.queue.dropped();
        if dropped == self.queue_drops_reported {
            return;
        }
        let due = now
            || self
                .last_drop_report
                .is_none_or(|at| at.elapsed() >= self.tuning.drop_report_interval);
        if due {
            tracing::error!(
                samples = dropped - self.queue_drops_reported,
                total = dropped,
                "the event recorder fell behind writing; samples were dropped (a slow disk?)"
            );
            self.queue_drops_reported = dropped;
            self.last_drop_report = Some(Instant::now());
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An error with its sources (`McapError::Io` alone says only "I/O error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
