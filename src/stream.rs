//! The Spot CAM stream state machine: login → service lookup → stream preparation →
//! signalling → WebRTC → depacketize → decode, with reconnects.
//!
//! [`spawn`] starts one task that owns the session and returns a [`StreamHandle`]: start and
//! stop it, watch its [`StreamStatus`], take decoded frames from its queue, read its
//! [`StreamStats`]. When the stream ends or fails while it should run, the task tears the peer
//! connection down and starts again from signalling. When the camera cannot be reached (its
//! video stalled, the connection dropped, signalling or ICE timed out: the link is down), it
//! tries about once per second ([`OUTAGE_RETRY_INTERVAL`]), each attempt's steps cut short to a
//! few times what they took on this link before ([`OUTAGE_MIN_STEP_WAIT`]), so that the first
//! attempt after the link's return connects at once; the outage shows in the status
//! (`link_down_since`), with one WARN when it starts and one INFO when video is back. Other
//! failures back off exponentially, with jitter. It logs in again only when the token is
//! rejected, and gives up after [`MAX_CONSECUTIVE_LOGIN_FAILURES`] rejected logins (the robot
//! locks logins after six); each later start request then tries once more.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::adaptive_bitrate::{self, BitrateController, BitrateLimits, Change};
use crate::camera_link::answerer::{
    AnswererConfig, AnswererSession, PeerState, ReceivedRtp, WebRtcError,
};
use crate::camera_link::signalling::{SignallingClient, SignallingConfig, SignallingError};
use crate::lock;
use crate::media::buffer_pool::BufferPool;
use crate::media::decoder::{self, DecodedFrame, DecoderOutput, DecoderSettings};
use crate::media::depacketizer::{AccessUnit, Depacketizer, DepacketizerCounters, RtpInfo};
use crate::media::handoff::{Demand, DropOldestQueue};
use crate::media::jpeg::{self, JpegPicture, JpegSettings, JpegTap};
use crate::media::reorder::{ReorderBuffer, ReorderCounters};
use crate::robot::{Credentials, RobotClient, RobotConfig, RobotError, StreamParamsUpdate};
use crate::shutdown::CancellationToken;
use crate::stats::{StreamStats, bump};

/// Rejected logins in a row before the stream gives up (the robot locks out after six).
pub const MAX_CONSECUTIVE_LOGIN_FAILURES: u32 = 3;
/// The Spot CAM services the stream needs from the directory.
pub const SPOT_CAM_SERVICES: [&str; 3] = [
    "spot-cam-compositor",
    "spot-cam-stream-quality",
    "spot-cam-ptz",
];
/// Video RTP packets buffered between the WebRTC session and the stream task.
const RTP_CHANNEL_PACKETS: usize = 2048;
/// Access units buffered between the stream task and the decoder thread.
const ACCESS_UNIT_QUEUE: usize = 16;
/// Least time between two keyframe requests (RTCP PLI).
const KEYFRAME_REQUEST_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// How often the directory is polled while the Spot CAM services are missing.
const DIRECTORY_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// While the camera cannot be reached: one attempt per this interval, at most (each attempt
/// is a signalling round on the camera; the robot must not be hammered).
pub const OUTAGE_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// While the camera cannot be reached, each step of an attempt (signalling, then ICE + DTLS)
/// waits [`OUTAGE_WAIT_FACTOR`] times the slowest such step that succeeded on this link, and at
/// least this long: an attempt that cannot succeed ends soon, so that the next one, started
/// after the link's return, connects at once (an in-flight attempt whose ICE checks went
/// unanswered does not recover).
pub const OUTAGE_MIN_STEP_WAIT: Duration = Duration::from_secs(1);
const OUTAGE_WAIT_FACTOR: u32 = 3;

/// The PTZ position to move to before streaming; `None` axes are left where they are.
pub type InitialPtz = crate::robot::PtzPose;

/// What to configure on the camera before the first stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrepareConfig {
    pub screen: Option<String>,
    pub target_bitrate_bps: Option<i64>,
    pub idr_interval_frames: Option<i64>,
    pub ptz: Option<InitialPtz>,
}

/// Everything the stream task needs.
#[derive(Clone)]
pub struct StreamConfig {
    pub robot: RobotConfig,
    pub credentials: Credentials,
    pub signalling: SignallingConfig,
    pub answerer: AnswererConfig,
    pub prepare: PrepareConfig,
    /// From the answer being posted to ICE + DTLS connected.
    pub connect_timeout: Duration,
    /// No video RTP for this long while streaming ends the session.
    pub stall_timeout: Duration,
    /// Lower the camera's bitrate when the link loses packets, raise it again when it is
    /// clean; `None`: leave the bitrate alone.
    pub adaptive_bitrate: Option<AdaptiveBitrateConfig>,
    /// How long a missing RTP packet may take to arrive (late, or retransmitted after a NACK)
    /// before its frame is declared lost.
    pub reorder_wait: Duration,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub token_refresh_interval: Duration,
    pub decoder: DecoderSettings,
    /// Decoded frames kept for the consumer; older ones are dropped and counted.
    pub queue_depth: usize,
    /// Larger access units are dropped (a sender that never sets the marker bit).
    pub max_access_unit_bytes: usize,
    /// Optional tap: while its demand is set, every access unit handed to the decoder is also
    /// pushed here (a copy; drop-oldest, never blocks the network path). Used by recorders and
    /// the node's passthrough topics. The owner closes it.
    pub access_unit_tap: Option<AccessUnitTap>,
    /// Optional JPEG pictures, encoded from the decoded planes while their demand is set.
    pub jpeg: Option<JpegOutput>,
}

/// Where copies of the access units go, and whether anybody wants them now.
#[derive(Clone)]
pub struct AccessUnitTap {
    pub queue: Arc<DropOldestQueue<AccessUnit>>,
    pub demand: Demand,
}

/// JPEG pictures of the stream (see [`crate::media::jpeg`]).
#[derive(Clone)]
pub struct JpegOutput {
    /// Quality and rate may change while the stream runs (the owner keeps the sender).
    pub settings: watch::Receiver<JpegSettings>,
    /// Whether anybody wants JPEG pictures now (nothing is encoded otherwise).
    pub demand: Demand,
    /// The encoded pictures; the owner takes them from here and closes it.
    pub pictures: Arc<DropOldestQueue<JpegPicture>>,
}

/// What may change while the stream runs ([`StreamHandle::reconfigure`]), without a reconnect.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSettings {
    /// Sent to the camera at once (and again at the next session if that failed).
    pub camera: CameraSettings,
    pub adaptive_bitrate: Option<AdaptiveBitrateConfig>,
    pub stall_timeout: Duration,
    pub reorder_wait: Duration,
}

/// The camera's settings the stream asks for; `None`: leave it as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CameraSettings {
    pub screen: Option<String>,
    pub target_bitrate_bps: Option<i64>,
    pub idr_interval_frames: Option<i64>,
}

impl LiveSettings {
    /// The settings `config` starts with.
    pub fn of(config: &StreamConfig) -> Self {
        Self {
            camera: CameraSettings {
                screen: config.prepare.screen.clone(),
                target_bitrate_bps: config.prepare.target_bitrate_bps,
                idr_interval_frames: config.prepare.idr_interval_frames,
            },
            adaptive_bitrate: config.adaptive_bitrate,
            stall_timeout: config.stall_timeout,
            reorder_wait: config.reorder_wait,
        }
    }
}

/// Limits of the adaptive bitrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveBitrateConfig {
    /// Never ask the camera for less than this.
    pub min_bitrate_bps: i64,
}

/// Where the stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Not asked to run.
    Stopped,
    LoggingIn,
    WaitingForServices,
    Preparing,
    Signalling,
    Connecting,
    /// Connected; frames flow.
    Streaming,
    /// Waiting before the next attempt.
    Reconnecting,
    /// Gave up until started again (e.g. rejected credentials).
    Failed,
}

impl StreamState {
    /// Lower-case name for status messages and diagnostics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::LoggingIn => "logging_in",
            Self::WaitingForServices => "waiting_for_services",
            Self::Preparing => "preparing",
            Self::Signalling => "signalling",
            Self::Connecting => "connecting",
            Self::Streaming => "streaming",
            Self::Reconnecting => "reconnecting",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state and the last error.
#[derive(Clone, Debug)]
pub struct StreamStatus {
    pub state: StreamState,
    pub since: Instant,
    pub last_error: Option<String>,
    /// Since when the camera's video is lost and the camera cannot be reached (a stall, a
    /// dropped connection, attempts that time out); `None` while it streams.
    pub link_down_since: Option<Instant>,
}

/// Why one attempt at streaming ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Robot(#[from] RobotError),
    #[error(transparent)]
    Signalling(#[from] SignallingError),
    #[error(transparent)]
    WebRtc(#[from] WebRtcError),
    #[error(transparent)]
    Decoder(#[from] decoder::DecoderError),
    #[error(transparent)]
    Jpeg(jpeg::JpegError),
    #[error(
        "the WebRTC connection was not established within {timeout_secs:.1} s (ICE/DTLS); check that UDP between this computer and the robot is not blocked"
    )]
    ConnectTimeout { timeout_secs: f64 },
    #[error("the WebRTC connection {0}")]
    ConnectionLost(&'static str),
    #[error("no video for {stalled_secs:.1} s; reconnecting")]
    Stalled { stalled_secs: f64 },
}

impl StreamError {
    /// The camera could not be reached, or its video stopped coming: the link may be down.
    fn is_link_down(&self) -> bool {
        match self {
            Self::Stalled { .. } | Self::ConnectTimeout { .. } | Self::ConnectionLost(_) => true,
            Self::Signalling(e) => e.is_unreachable(),
            _ => false,
        }
    }

    fn is_auth_rejection(&self) -> bool {
        match self {
            Self::Robot(e) => e.is_auth_rejection(),
            Self::Signalling(e) => e.is_auth_rejection(),
            _ => false,
        }
    }
}

/// Controls and observes the stream task.
#[derive(Clone)]
pub struct StreamHandle {
    wanted: watch::Sender<bool>,
    frames_wanted: Demand,
    status: watch::Receiver<StreamStatus>,
    frames: Arc<DropOldestQueue<DecodedFrame>>,
    buffers: Arc<BufferPool>,
    stats: Arc<StreamStats>,
    keyframe_wanted: Arc<AtomicBool>,
    robot: RobotClient,
    live: watch::Sender<LiveSettings>,
}

impl StreamHandle {
    /// Changes what may change on the running stream: camera settings are sent at once, the
    /// timeouts and the adaptive bitrate apply from now on; no reconnect.
    pub fn reconfigure(&self, settings: LiveSettings) {
        self.live.send_if_modified(|live| {
            let changed = *live != settings;
            *live = settings;
            changed
        });
    }

    /// The settings in force.
    pub fn live_settings(&self) -> LiveSettings {
        self.live.borrow().clone()
    }

    /// Asks the stream to run (idempotent). Returns at once; watch [`Self::status`].
    pub fn start(&self) {
        self.wanted.send_replace(true);
    }

    /// Asks the stream to stop (idempotent); the peer connection is closed.
    pub fn stop(&self) {
        self.wanted.send_replace(false);
    }

    /// Whether the stream is asked to run.
    pub fn is_wanted(&self) -> bool {
        *self.wanted.borrow()
    }

    /// The current status.
    pub fn status(&self) -> StreamStatus {
        self.status.borrow().clone()
    }

    /// Watch status changes.
    pub fn subscribe_status(&self) -> watch::Receiver<StreamStatus> {
        self.status.clone()
    }

    /// Whether decoded frames are wanted (default yes). While not, access units are dropped
    /// without decoding (counted as `frames_not_decoded`); when wanted again, decoding
    /// restarts at the next whole picture, with a keyframe request.
    pub fn set_frames_wanted(&self, wanted: bool) {
        self.frames_wanted.set(wanted);
    }

    /// Decoded frames, oldest first; at most `queue_depth` wait.
    pub fn frames(&self) -> Arc<DropOldestQueue<DecodedFrame>> {
        self.frames.clone()
    }

    /// Returns a consumed frame's pixel buffer (`DecodedFrame::bgr`) so that the decoder
    /// reuses it instead of allocating a new one. Optional: a buffer not given back is freed.
    pub fn give_back_buffer(&self, buffer: Vec<u8>) {
        self.buffers.give_back(buffer);
    }

    /// Counters of the stream.
    pub fn stats(&self) -> Arc<StreamStats> {
        self.stats.clone()
    }

    /// Asks the camera for a keyframe (an RTCP PLI, with an FIR where negotiated), e.g. for a
    /// new subscriber of a passthrough topic. Rate-limited with the stream's own requests; a
    /// camera with periodic intra refresh may ignore it.
    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// The stream's robot client (shares its login), e.g. for PTZ commands.
    pub fn robot(&self) -> RobotClient {
        self.robot.clone()
    }
}

/// Starts the stream task. It runs while asked to (see [`StreamHandle::start`]) and ends when
/// `shutdown` is cancelled, closing the peer connection; then the frame queue is closed.
pub fn spawn(
    config: StreamConfig,
    start_now: bool,
    shutdown: CancellationToken,
) -> Result<(StreamHandle, JoinHandle<()>), RobotError> {
    let robot = RobotClient::new(config.robot.clone())?;
    let (wanted, wanted_rx) = watch::channel(start_now);
    let (status_tx, status) = watch::channel(StreamStatus {
        state: StreamState::Stopped,
        since: Instant::now(),
        last_error: None,
        link_down_since: None,
    });
    let frames = DropOldestQueue::new(config.queue_depth);
    // Enough spares for every queued frame, the one being decoded and the one being published.
    let buffers = Arc::new(BufferPool::new(config.queue_depth + 2));
    let stats = Arc::new(StreamStats::default());
    let frames_wanted = Demand::new(true);
    let keyframe_wanted = Arc::new(AtomicBool::new(true));
    let (live_tx, live) = watch::channel(LiveSettings::of(&config));
    let handle = StreamHandle {
        live: live_tx,
        wanted,
        frames_wanted: frames_wanted.clone(),
        status,
        frames: frames.clone(),
        buffers: buffers.clone(),
        stats: stats.clone(),
        keyframe_wanted: keyframe_wanted.clone(),
        robot: robot.clone(),
    };
    let mut task = StreamTask {
        config,
        robot,
        wanted: wanted_rx,
        status: status_tx,
        frames: frames.clone(),
        frames_wanted,
        buffers,
        stats,
        keyframe_wanted,
        live,
        token_rejected: false,
        services_ready: false,
        ptz_moved: false,
        camera_sent: Arc::new(std::sync::Mutex::new(None)),
        camera_bitrate_at_start: None,
        login_failures: 0,
        slowest_signalling: Duration::ZERO,
        slowest_connect: Duration::ZERO,
        outage: None,
    };
    let refresher = tokio::spawn(refresh_tokens(
        task.robot.clone(),
        task.config.token_refresh_interval,
        shutdown.clone(),
    ));
    let join = tokio::spawn(async move {
        task.run(shutdown).await;
        frames.close();
        refresher.abort();
    });
    Ok((handle, join))
}

struct StreamTask {
    config: StreamConfig,
    robot: RobotClient,
    wanted: watch::Receiver<bool>,
    status: watch::Sender<StreamStatus>,
    frames: Arc<DropOldestQueue<DecodedFrame>>,
    frames_wanted: Demand,
    buffers: Arc<BufferPool>,
    stats: Arc<StreamStats>,
    /// Set by anyone who needs a keyframe; the receive loop sends rate-limited requests.
    keyframe_wanted: Arc<AtomicBool>,
    live: watch::Receiver<LiveSettings>,
    /// The robot or camera refused the current token: log in again before the next attempt.
    token_rejected: bool,
    services_ready: bool,
    /// The initial PTZ pose was sent (once).
    ptz_moved: bool,
    /// The camera settings the camera took last; what differs is sent before the next session
    /// (or at once while streaming).
    camera_sent: Arc<std::sync::Mutex<Option<CameraSettings>>>,
    /// The camera's bitrate at the first preparation: the most the adaptive bitrate asks for
    /// when `target_bitrate_bps` leaves the camera's as it is.
    camera_bitrate_at_start: Option<i64>,
    login_failures: u32,
    /// The slowest signalling round and connection set-up (ICE + DTLS) that succeeded.
    slowest_signalling: Duration,
    slowest_connect: Duration,
    /// Set while the camera cannot be reached (see [`OUTAGE_RETRY_INTERVAL`]).
    outage: Option<Outage>,
}

/// The camera's video is lost and it cannot be reached.
#[derive(Clone, Copy, Debug)]
struct Outage {
    /// When video was last seen (or the first attempt that failed started).
    since: Instant,
    attempts: u32,
}

/// Outcome of waiting for the stream to be wanted.
enum Wanted {
    Yes,
    Shutdown,
}

impl StreamTask {
    fn set_state(&self, state: StreamState) {
        let changed = self.status.send_if_modified(|status| {
            if status.state == state {
                return false;
            }
            status.state = state;
            status.since = Instant::now();
            true
        });
        if changed {
            tracing::info!(state = state.as_str(), "stream state");
        }
    }

    fn set_error(&self, error: &StreamError) {
        let message = error.to_string();
        self.status
            .send_modify(|status| status.last_error = Some(message));
    }

    /// The link is down since `since` (once per outage: WARN), or still down (DEBUG).
    fn link_down(&mut self, since: Instant, error: &StreamError) {
        match &mut self.outage {
            Some(outage) => {
                outage.attempts += 1;
                tracing::debug!(%error, attempts = outage.attempts, "the camera is still unreachable");
            }
            None => {
                tracing::warn!(%error, "lost the camera's video; trying again about once per second");
                self.outage = Some(Outage { since, attempts: 1 });
                self.status
                    .send_modify(|status| status.link_down_since = Some(since));
            }
        }
    }

    /// Video flows again: ends an outage (INFO, with how long it lasted).
    fn link_up(&mut self) {
        if let Some(outage) = self.outage.take() {
            tracing::info!(
                down_secs = format_args!("{:.1}", outage.since.elapsed().as_secs_f64()),
                attempts = outage.attempts,
                "the camera's video is back"
            );
            self.status
                .send_modify(|status| status.link_down_since = None);
        }
    }

    /// How long a step may wait: `normal`, or during an outage a few times the slowest
    /// successful `slowest` (at least [`OUTAGE_MIN_STEP_WAIT`], at most `normal`).
    fn step_wait(&self, normal: Duration, slowest: Duration) -> Duration {
        if self.outage.is_none() {
            return normal;
        }
        (slowest * OUTAGE_WAIT_FACTOR)
            .max(OUTAGE_MIN_STEP_WAIT)
            .min(normal)
    }

    async fn wait_until_wanted(&mut self, shutdown: &CancellationToken) -> Wanted {
        loop {
            if *self.wanted.borrow_and_update() {
                return Wanted::Yes;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Wanted::Shutdown,
                changed = self.wanted.changed() => if changed.is_err() { return Wanted::Shutdown },
            }
        }
    }

    fn backoff(&self) -> backon::ExponentialBackoff {
        reconnect_backoff(self.config.reconnect_initial, self.config.reconnect_max)
    }

    async fn run(&mut self, shutdown: CancellationToken) {
        let mut backoff = self.backoff();
        loop {
            if let Wanted::Shutdown = self.wait_until_wanted(&shutdown).await {
                break;
            }
            // Runs until the attempt ends, the stream is stopped, or shutdown.
            let mut wanted = self.wanted.clone();
            let stop = async move {
                while *wanted.borrow_and_update() {
                    if wanted.changed().await.is_err() {
                        break;
                    }
                }
            };
            let attempt_started = Instant::now();
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => break,
                () = stop => {
                    tracing::info!("stream stopped on request");
                    self.set_state(StreamState::Stopped);
                    self.link_up();
                    backoff = self.backoff();
                    continue;
                }
                outcome = self.attempt() => outcome,
            };
            let error = match attempt {
                Ok(()) => continue,
                Err(error) => error,
            };
            self.set_error(&error);
            if error.is_auth_rejection() {
                // Log in again next time; rejected logins are counted there.
                self.token_rejected = true;
            }
            if self.login_failures >= MAX_CONSECUTIVE_LOGIN_FAILURES
                || matches!(error, StreamError::Robot(RobotError::LockedOut))
            {
                tracing::error!(%error, attempts = self.login_failures, "giving up: the robot rejected the login; fix the credentials, then call ~/start_stream or restart");
                self.set_state(StreamState::Failed);
                self.wanted.borrow_and_update();
                // Wait for the next start or stop request (a start while running is still a
                // request: `StreamHandle::start` always notifies).
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    changed = self.wanted.changed() => if changed.is_err() { break },
                }
                // One more attempt per request, so repeated requests stay below the robot's
                // lockout after six consecutive failures.
                self.login_failures = MAX_CONSECUTIVE_LOGIN_FAILURES - 1;
                if !*self.wanted.borrow() {
                    self.set_state(StreamState::Stopped);
                }
                backoff = self.backoff();
                continue;
            }
            let retry_at = if error.is_link_down() {
                // Video was last seen a stall timeout ago; otherwise the attempt found the
                // camera unreachable from its start.
                let since = match &error {
                    StreamError::Stalled { stalled_secs } => Instant::now()
                        .checked_sub(Duration::from_secs_f64(*stalled_secs))
                        .unwrap_or(attempt_started),
                    _ => attempt_started,
                };
                self.link_down(since, &error);
                // About one attempt per second until the camera answers again.
                attempt_started + OUTAGE_RETRY_INTERVAL
            } else {
                self.link_up();
                // backon's jitter adds up to one more delay on top; keep within the configured
                // range.
                let delay = backoff
                    .next()
                    .unwrap_or(self.config.reconnect_max)
                    .min(self.config.reconnect_max)
                    .max(self.config.reconnect_initial);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "stream attempt failed; retrying");
                Instant::now() + delay
            };
            self.set_state(StreamState::Reconnecting);
            bump(&self.stats.reconnects);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(retry_at.into()) => {}
            }
            if matches!(
                error,
                StreamError::Stalled { .. } | StreamError::ConnectionLost(_)
            ) {
                // The stream had been up: start the next series of delays from the beginning.
                backoff = self.backoff();
            }
        }
        self.set_state(StreamState::Stopped);
    }

    async fn ensure_logged_in(&mut self) -> Result<String, StreamError> {
        if !self.token_rejected
            && let Some(token) = self.robot.token()
        {
            // Kept fresh by `refresh_tokens`.
            return Ok(token.expose().to_string());
        }
        self.set_state(StreamState::LoggingIn);
        match self.robot.login(&self.config.credentials).await {
            Ok(token) => {
                self.login_failures = 0;
                self.token_rejected = false;
                Ok(token.expose().to_string())
            }
            Err(error) => {
                if matches!(error, RobotError::InvalidLogin | RobotError::LockedOut) {
                    self.login_failures += 1;
                }
                Err(error.into())
            }
        }
    }

    async fn prepare(&mut self) -> Result<(), StreamError> {
        if !self.services_ready {
            self.set_state(StreamState::WaitingForServices);
            self.robot
                .wait_for_services(&SPOT_CAM_SERVICES, DIRECTORY_POLL_INTERVAL)
                .await?;
            self.services_ready = true;
        }
        let wanted = self.live.borrow().camera.clone();
        let sent = lock(&self.camera_sent).clone();
        if sent.as_ref() != Some(&wanted) {
            self.set_state(StreamState::Preparing);
            let bitrate =
                send_camera_settings(&self.robot, sent.as_ref(), &wanted, &self.stats).await?;
            if let Some(bitrate_bps) = bitrate {
                self.camera_bitrate_at_start.get_or_insert(bitrate_bps);
            }
            *lock(&self.camera_sent) = Some(wanted);
        }
        if let Some(ptz) = self.config.prepare.ptz.as_ref().filter(|_| !self.ptz_moved) {
            self.set_state(StreamState::Preparing);
            let pose = self
                .robot
                .set_ptz_position(&ptz.name, ptz.pan_deg, ptz.tilt_deg, ptz.zoom)
                .await?;
            tracing::info!(ptz = %ptz.name, ?pose, "PTZ moving to its initial position");
            self.ptz_moved = true;
        }
        Ok(())
    }

    /// One attempt: from login (if needed) to the end of a stream.
    async fn attempt(&mut self) -> Result<(), StreamError> {
        let token = self.ensure_logged_in().await?;
        self.prepare().await?;

        self.set_state(StreamState::Signalling);
        let signalling_started = Instant::now();
        let mut signalling_config = self.config.signalling.clone();
        signalling_config.request_timeout = self.step_wait(
            self.config.signalling.request_timeout,
            self.slowest_signalling,
        );
        let signalling = SignallingClient::new(&signalling_config)?;
        let offer = signalling.get_offer(&token).await?;
        let (rtp_tx, rtp_rx) = mpsc::channel(RTP_CHANNEL_PACKETS);
        let (session, answer_sdp) =
            AnswererSession::start(&offer.sdp, &self.config.answerer, rtp_tx).await?;
        let result = async {
            signalling
                .post_answer(&token, &offer.id, &answer_sdp)
                .await?;
            self.slowest_signalling = self.slowest_signalling.max(signalling_started.elapsed());
            self.set_state(StreamState::Connecting);
            let connecting = Instant::now();
            let wait = self.step_wait(self.config.connect_timeout, self.slowest_connect);
            wait_connected(&session, wait).await?;
            self.slowest_connect = self.slowest_connect.max(connecting.elapsed());
            self.set_state(StreamState::Streaming);
            self.link_up();
            self.receive(&session, rtp_rx).await
        }
        .await;
        session.close().await;
        result
    }

    /// Adds what the reorder buffer and depacketizer counted since `before` to the stream's
    /// statistics.
    fn count_media_path(
        &self,
        (before, reorder_before): &(DepacketizerCounters, ReorderCounters),
        (now, reorder_now): &(DepacketizerCounters, ReorderCounters),
    ) {
        let stats = &self.stats;
        for (counter, later, earlier) in [
            (
                &stats.packets_recovered,
                reorder_now.packets_recovered,
                reorder_before.packets_recovered,
            ),
            (
                &stats.rtp_packets_too_late,
                reorder_now.packets_too_late,
                reorder_before.packets_too_late,
            ),
            (
                &stats.rtp_packets_lost,
                now.packets_lost,
                before.packets_lost,
            ),
            (
                &stats.frames_incomplete,
                now.frames_incomplete,
                before.frames_incomplete,
            ),
            (
                &stats.frames_oversized,
                now.frames_oversized,
                before.frames_oversized,
            ),
            // Whole frames the depacketizer held back until SPS/PPS and a decodable start:
            // received, and gave no picture.
            (
                &stats.frames_received,
                now.frames_waiting_for_keyframe,
                before.frames_waiting_for_keyframe,
            ),
            (
                &stats.frames_awaiting_keyframe,
                now.frames_waiting_for_keyframe,
                before.frames_waiting_for_keyframe,
            ),
            (
                &stats.rtp_sequence_resyncs,
                now.sequence_resyncs,
                before.sequence_resyncs,
            ),
        ] {
            counter.fetch_add(later.saturating_sub(earlier), Ordering::Relaxed);
        }
    }

    /// Packets received and packets lost for good so far, for the adaptive bitrate.
    fn loss_counts(&self) -> (u64, u64) {
        (
            self.stats.rtp_packets.load(Ordering::Relaxed),
            self.stats.rtp_packets_lost.load(Ordering::Relaxed),
        )
    }

    /// The adaptive bitrate's controller, starting at the camera's current target, if
    /// adaptation is on and the camera's bitrate is known.
    fn bitrate_controller(&self, live: &LiveSettings) -> Option<BitrateController> {
        let config = live.adaptive_bitrate?;
        let max_bitrate_bps = live
            .camera
            .target_bitrate_bps
            .or(self.camera_bitrate_at_start)?;
        let limits = BitrateLimits {
            min_bitrate_bps: config.min_bitrate_bps.min(max_bitrate_bps),
            max_bitrate_bps,
        };
        let current = self.stats.target_bitrate_bps.load(Ordering::Relaxed) as i64;
        Some(BitrateController::new(limits, current.min(max_bitrate_bps)))
    }

    /// Asks the camera for `target_bitrate_bps` without holding up the network path.
    fn apply_bitrate(&self, target_bitrate_bps: i64, change: Change) -> JoinHandle<()> {
        let robot = self.robot.clone();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            let update = StreamParamsUpdate {
                target_bitrate_bps: Some(target_bitrate_bps),
                ..StreamParamsUpdate::default()
            };
            match robot.set_stream_params(&update).await {
                Ok(_) => {
                    let before = stats
                        .target_bitrate_bps
                        .swap(target_bitrate_bps as u64, Ordering::Relaxed);
                    match change {
                        Change::Decrease { loss_fraction } => tracing::info!(
                            from_bps = before,
                            to_bps = target_bitrate_bps,
                            loss_percent = format_args!("{:.1}", loss_fraction * 100.0),
                            "the link loses packets the camera cannot repair: camera bitrate lowered"
                        ),
                        Change::Increase { clean_secs } => tracing::info!(
                            from_bps = before,
                            to_bps = target_bitrate_bps,
                            clean_secs = format_args!("{clean_secs:.0}"),
                            "the link has been clean: camera bitrate raised"
                        ),
                    }
                }
                Err(error) => tracing::warn!(
                    %error, target_bitrate_bps,
                    "could not change the camera's bitrate; trying again at the next decision"
                ),
            }
        })
    }

    /// Sends changed camera settings without holding up the network path; what the camera
    /// refuses is sent again before the next session.
    fn apply_camera_settings(&self, wanted: CameraSettings) -> JoinHandle<()> {
        let robot = self.robot.clone();
        let stats = self.stats.clone();
        let sent = self.camera_sent.clone();
        tokio::spawn(async move {
            let before = lock(&sent).clone();
            match send_camera_settings(&robot, before.as_ref(), &wanted, &stats).await {
                Ok(_) => *lock(&sent) = Some(wanted),
                Err(error) => tracing::warn!(
                    %error,
                    "could not change the camera's settings; trying again before the next session"
                ),
            }
        })
    }

    /// Moves video from the session to the decoder until the session ends or stalls.
    async fn receive(
        &self,
        session: &AnswererSession,
        mut rtp_rx: mpsc::Receiver<ReceivedRtp>,
    ) -> Result<(), StreamError> {
        let access_units: Arc<DropOldestQueue<AccessUnit>> =
            DropOldestQueue::new(ACCESS_UNIT_QUEUE);
        // The decoder and JPEG threads end once their inputs are closed, also when this future
        // is dropped (the stream stopped on request) instead of returning.
        let _close_access_units = CloseOnDrop(access_units.clone());
        let keyframe_wanted = self.keyframe_wanted.clone();
        // A new connection starts with a keyframe request.
        keyframe_wanted.store(true, Ordering::Relaxed);
        let decoder_flag = keyframe_wanted.clone();
        // JPEG: the decoder thread hands due pictures to an encoder thread of their own.
        let jpeg_input = DropOldestQueue::new(1);
        let _close_jpeg_input = CloseOnDrop(jpeg_input.clone());
        let jpeg_tap = self.config.jpeg.as_ref().map(|output| {
            JpegTap::new(
                output.demand.clone(),
                jpeg_input.clone(),
                output.settings.clone(),
            )
        });
        let decoder_thread = decoder::spawn(
            self.config.decoder,
            access_units.clone(),
            DecoderOutput {
                frames: self.frames.clone(),
                buffers: self.buffers.clone(),
                stats: self.stats.clone(),
                wanted: self.frames_wanted.clone(),
                jpeg: jpeg_tap,
                on_keyframe_needed: Box::new(move || decoder_flag.store(true, Ordering::Relaxed)),
            },
        )?;
        let jpeg_thread = match &self.config.jpeg {
            Some(output) => {
                let spawned = jpeg::spawn_encoder(
                    output.settings.clone(),
                    jpeg_input.clone(),
                    output.pictures.clone(),
                    self.stats.clone(),
                );
                match spawned {
                    Ok(thread) => Some(thread),
                    Err(error) => {
                        // The decoder thread ends once its input is closed.
                        access_units.close();
                        return Err(StreamError::Jpeg(error));
                    }
                }
            }
            None => None,
        };
        let requester = session.keyframe_requester();
        let mut depacketizer = Depacketizer::new(self.config.decoder.resync_wait)
            .with_max_access_unit_bytes(self.config.max_access_unit_bytes);
        let mut state = session.state();
        let mut last_keyframe_request: Option<Instant> = None;
        let mut live = self.live.clone();
        let mut settings = live.borrow_and_update().clone();
        let mut reorder = ReorderBuffer::new(settings.reorder_wait);
        let mut in_order = Vec::new();
        let mut counted = (depacketizer.counters(), reorder.counters());
        let mut stall_timeout = settings.stall_timeout;
        let mut last_video = tokio::time::Instant::now();
        let mut keyframe_tick = tokio::time::interval(KEYFRAME_REQUEST_MIN_INTERVAL);
        keyframe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        // A deadline that only video RTP moves: the keyframe tick and state changes that end
        // other turns of the loop cannot re-arm it.
        let stall = tokio::time::sleep(stall_timeout);
        tokio::pin!(stall);

        let mut bitrate = self.bitrate_controller(&settings);
        let mut camera_update: Option<JoinHandle<()>> = None;
        let mut bitrate_window = tokio::time::interval_at(
            tokio::time::Instant::now() + adaptive_bitrate::WINDOW,
            adaptive_bitrate::WINDOW,
        );
        let mut window_counts = self.loss_counts();
        let mut bitrate_update: Option<JoinHandle<()>> = None;

        let outcome = loop {
            let reorder_deadline = reorder.deadline();
            tokio::select! {
                () = &mut stall => {
                    break Err(StreamError::Stalled { stalled_secs: stall_timeout.as_secs_f64() });
                }
                received = rtp_rx.recv() => {
                    let Some(rtp) = received else {
                        break Err(StreamError::ConnectionLost("ended"));
                    };
                    last_video = tokio::time::Instant::now();
                    stall.as_mut().reset(last_video + stall_timeout);
                    bump(&self.stats.rtp_packets);
                    self.stats.rtp_bytes.fetch_add(rtp.packet.payload.len() as u64, Ordering::Relaxed);
                    let (sequence_number, arrival) = (rtp.packet.header.sequence_number, rtp.arrival);
                    reorder.push(sequence_number, rtp, arrival, &mut in_order);
                }
                () = sleep_until_deadline(reorder_deadline), if reorder_deadline.is_some() => {
                    reorder.poll(Instant::now(), &mut in_order);
                }
                _ = keyframe_tick.tick() => {}
                changed = live.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let now = live.borrow_and_update().clone();
                    if now.camera != settings.camera {
                        if let Some(update) = camera_update.take() {
                            update.abort();
                        }
                        camera_update = Some(self.apply_camera_settings(now.camera.clone()));
                    }
                    if now.camera.target_bitrate_bps != settings.camera.target_bitrate_bps
                        || now.adaptive_bitrate != settings.adaptive_bitrate
                    {
                        if let Some(update) = bitrate_update.take() {
                            update.abort();
                        }
                        bitrate = self.bitrate_controller(&now);
                    }
                    stall_timeout = now.stall_timeout;
                    stall.as_mut().reset(last_video + stall_timeout);
                    reorder.set_wait(now.reorder_wait);
                    settings = now;
                }
                _ = bitrate_window.tick(), if bitrate.is_some() => {
                    let counts = self.loss_counts();
                    let (received, lost) = (counts.0 - window_counts.0, counts.1 - window_counts.1);
                    window_counts = counts;
                    let in_flight = bitrate_update.as_ref().is_some_and(|task| !task.is_finished());
                    if let Some(controller) = bitrate.as_mut().filter(|_| !in_flight)
                        && let Some((target, change)) = controller.on_window(Instant::now(), received, lost)
                    {
                        bitrate_update = Some(self.apply_bitrate(target, change));
                    }
                }
                changed = state.changed() => {
                    let now = if changed.is_ok() { state.borrow_and_update().clone() } else { PeerState::Closed };
                    match now {
                        PeerState::Failed => break Err(StreamError::ConnectionLost("failed (ICE/DTLS)")),
                        PeerState::Closed => break Err(StreamError::ConnectionLost("was closed by the camera")),
                        PeerState::Disconnected => tracing::warn!("WebRTC connection disconnected; waiting for it to recover"),
                        _ => {}
                    }
                }
            }
            for rtp in in_order.drain(..) {
                let header = &rtp.packet.header;
                let info = RtpInfo {
                    sequence_number: header.sequence_number,
                    timestamp: header.timestamp,
                    marker: header.marker,
                };
                if let Some(au) = depacketizer.push(info, &rtp.packet.payload, rtp.arrival) {
                    bump(&self.stats.frames_received);
                    if let Some(tap) = self
                        .config
                        .access_unit_tap
                        .as_ref()
                        .filter(|t| t.demand.get())
                        && tap.queue.push(au.clone())
                    {
                        bump(&self.stats.passthrough_dropped);
                    }
                    if access_units.push(au) {
                        bump(&self.stats.frames_dropped_before_decoding);
                    }
                }
                if depacketizer.take_keyframe_request() {
                    keyframe_wanted.store(true, Ordering::Relaxed);
                }
            }
            let now = (depacketizer.counters(), reorder.counters());
            self.count_media_path(&counted, &now);
            counted = now;
            // Rate-limited keyframe requests (start, loss, decode errors).
            let due = last_keyframe_request
                .is_none_or(|at| at.elapsed() >= KEYFRAME_REQUEST_MIN_INTERVAL);
            if due && keyframe_wanted.swap(false, Ordering::Relaxed) {
                requester.request();
                bump(&self.stats.keyframe_requests);
                last_keyframe_request = Some(Instant::now());
                tracing::debug!("keyframe requested (PLI)");
            }
        };
        for update in [bitrate_update, camera_update].into_iter().flatten() {
            update.abort();
        }
        access_units.close();
        // The decoder thread finishes the access unit in hand, then ends; then the JPEG thread.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = decoder_thread.join();
            jpeg_input.close();
            if let Some(thread) = jpeg_thread {
                let _ = thread.join();
            }
        })
        .await;
        outcome
    }
}

/// Sends what differs between `wanted` and the settings the camera took `before` (all of
/// them the first time); returns the camera's target bitrate when it was read.
async fn send_camera_settings(
    robot: &RobotClient,
    before: Option<&CameraSettings>,
    wanted: &CameraSettings,
    stats: &StreamStats,
) -> Result<Option<i64>, RobotError> {
    if let Some(screen) = &wanted.screen
        && before.is_none_or(|b| b.screen != wanted.screen)
    {
        let shown = robot.set_screen(screen).await?;
        tracing::info!(screen = %shown, "compositor screen set");
    }
    let same_quality = before.is_some_and(|b| {
        (b.target_bitrate_bps, b.idr_interval_frames)
            == (wanted.target_bitrate_bps, wanted.idr_interval_frames)
    });
    if same_quality {
        return Ok(None);
    }
    let update = StreamParamsUpdate {
        target_bitrate_bps: wanted.target_bitrate_bps,
        idr_interval_frames: wanted.idr_interval_frames,
        ..StreamParamsUpdate::default()
    };
    let params = if update == StreamParamsUpdate::default() {
        robot.get_stream_params().await?
    } else {
        robot.set_stream_params(&update).await?
    };
    tracing::info!(?params, "camera stream parameters");
    let bitrate_bps = params.target_bitrate_bps.filter(|&b| b > 0);
    if let Some(bitrate_bps) = bitrate_bps {
        stats
            .target_bitrate_bps
            .store(bitrate_bps as u64, Ordering::Relaxed);
    }
    Ok(bitrate_bps)
}

/// Closes a queue when dropped.
struct CloseOnDrop<T>(Arc<DropOldestQueue<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Sleeps until `deadline` (forever without one; the caller guards the branch).
async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Re-mints the user token every `interval` (the SDK does it hourly; tokens live 12 h), with
/// exponential backoff on transient failures. A rejected re-mint is left to the stream task,
/// which logs in again when the token is refused.
async fn refresh_tokens(robot: RobotClient, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if robot.token().is_none() {
            continue;
        }
        let mut delays = reconnect_backoff(Duration::from_secs(1), Duration::from_secs(60)).take(6);
        loop {
            match robot.refresh_token().await {
                Ok(_) => {
                    tracing::debug!("user token re-minted");
                    break;
                }
                Err(error) if error.is_auth_rejection() => {
                    tracing::warn!(%error, "token re-mint refused; logging in again on the next connection");
                    break;
                }
                Err(error) => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "token re-mint failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            () = tokio::time::sleep(delay) => {}
                        }
                    }
                    None => {
                        tracing::warn!(%error, "token re-mint failed repeatedly; trying again in one interval");
                        break;
                    }
                },
            }
        }
    }
}

/// Exponential delays from `initial` doubling up to `max`, with jitter, without end.
fn reconnect_backoff(initial: Duration, max: Duration) -> backon::ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(initial)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

async fn wait_connected(session: &AnswererSession, timeout: Duration) -> Result<(), StreamError> {
    let mut state = session.state();
    let connected = async {
        loop {
            match *state.borrow_and_update() {
                PeerState::Connected => return Ok(()),
                PeerState::Failed => return Err(StreamError::ConnectionLost("failed (ICE/DTLS)")),
                PeerState::Closed => {
                    return Err(StreamError::ConnectionLost("was closed before connecting"));
                }
                _ => {}
            }
            if state.changed().await.is_err() {
                return Err(StreamError::ConnectionLost("was dropped before connecting"));
            }
        }
    };
    tokio::time::timeout(timeout, connected)
        .await
        .map_err(|_| StreamError::ConnectTimeout {
            timeout_secs: timeout.as_secs_f64(),
        })?
}
