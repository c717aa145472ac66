//! The PTZ on the robot: sends the aimer's commands (`SetPtzPosition`), measures where the head
//! is (`GetPtzPosition`: every 100 ms while it moves, every second otherwise), and reads its
//! limits once (`ListPtz`). Its own task; the newest command wins, none waits behind another.
//! It logs in itself only to send a command when the stream has not logged in yet (aiming
//! comes before streaming with the auto-trigger), at most every few seconds; after one rejected login it stops trying and waits
//! for the stream's login, so a wrong password does not lock the robot out (it locks after six
//! rejected logins, and the stream makes its own attempts).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aiming::pointing::{PtzCommand, PtzLimits};
use crate::robot::{Credentials, RobotClient};
use crate::shutdown::CancellationToken;

/// Measurement period while the head moves (or was just commanded).
pub const POLL_MOVING: Duration = Duration::from_millis(100);
/// Measurement period while it is still.
pub const POLL_IDLE: Duration = Duration::from_secs(1);
/// After a command, measure fast for at least this long (the head may not have started).
const SETTLE: Duration = Duration::from_secs(1);
/// Least time between two logins of the driver's own.
const LOGIN_RETRY: Duration = Duration::from_secs(5);
/// Measurements kept for [`PtzDriverHandle::pose_at`].
const HISTORY: usize = 64;
/// How far past the newest measurement [`PtzDriverHandle::pose_at`] carries a moving PTZ on
/// (about one poll interval while moving).
pub const MAX_EXTRAPOLATION: Duration = Duration::from_millis(150);
/// Smaller changes between two measurements are "not moving".
const STILL_DEG: f64 = 0.05;
const STILL_ZOOM: f64 = 0.005;

/// One measurement of the head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PtzState {
    pub pan_deg: f64,
    pub tilt_deg: f64,
    pub zoom: f64,
    /// It moved since the previous measurement.
    pub moving: bool,
    /// Halfway between request and reply (the reply carries no time of measurement).
    pub measured_at: Instant,
}

/// Commands the driver and reads what it measured.
#[derive(Clone)]
pub struct PtzDriverHandle {
    commands: watch::Sender<Option<PtzCommand>>,
    state: watch::Receiver<Option<PtzState>>,
    limits: watch::Receiver<Option<PtzLimits>>,
    sent: watch::Receiver<u64>,
    refusals: watch::Receiver<Option<Refusal>>,
    history: Arc<Mutex<VecDeque<PtzState>>>,
    /// When the newest command was given.
    commanded_at: Arc<Mutex<Option<Instant>>>,
}

/// A command the PTZ refused (an invalid request: a position it cannot take), and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub command: PtzCommand,
    pub reason: String,
}

impl PtzDriverHandle {
    /// The newest command the PTZ refused.
    pub fn refusals(&self) -> watch::Receiver<Option<Refusal>> {
        self.refusals.clone()
    }

    /// Moves the head (replaces a command not sent yet).
    pub fn command(&self, command: PtzCommand) {
        *crate::lock(&self.commanded_at) = Some(Instant::now());
        self.commands.send_replace(Some(command));
    }

    /// Whether the pose at `at` is measured rather than guessed: a measurement at or after
    /// `at` exists, or the newest one found the head still and no command was given since.
    pub fn pose_measured_at(&self, at: Instant) -> bool {
        let Some(newest) = crate::lock(&self.history).back().copied() else {
            return false;
        };
        let commanded_since =
            crate::lock(&self.commanded_at).is_some_and(|c| c >= newest.measured_at);
        newest.measured_at >= at || !(newest.moving || commanded_since)
    }

    /// The newest measurement.
    pub fn state(&self) -> watch::Receiver<Option<PtzState>> {
        self.state.clone()
    }

    /// The limits `ListPtz` reported.
    pub fn limits(&self) -> watch::Receiver<Option<PtzLimits>> {
        self.limits.clone()
    }

    /// How many commands the robot accepted so far.
    pub fn commands_sent(&self) -> watch::Receiver<u64> {
        self.sent.clone()
    }

    /// The zoom at `at` (see [`Self::pose_at`]).
    pub fn zoom_at(&self, at: Instant) -> Option<f64> {
        self.pose_at(at).map(|pose| pose.zoom)
    }

    /// The PTZ's pose at `at`: interpolated between the measurements around it; before the
    /// oldest kept, the oldest; after the newest, the newest carried on at the speed of the
    /// last two measurements for at most [`MAX_EXTRAPOLATION`] (a still PTZ stays put).
    pub fn pose_at(&self, at: Instant) -> Option<PtzState> {
        let commanded_at = *crate::lock(&self.commanded_at);
        pose_in(&crate::lock(&self.history), commanded_at, at)
    }
}

/// [`PtzDriverHandle::pose_at`] over a history of measurements, oldest first. A head found
/// still stays put until `commanded_at` (the newest command), and moves from then on.
fn pose_in(
    history: &VecDeque<PtzState>,
    commanded_at: Option<Instant>,
    at: Instant,
) -> Option<PtzState> {
    let after = history.partition_point(|s| s.measured_at <= at);
    let newest = *history.back()?;
    if after == 0 {
        return history.front().copied();
    }
    let (a, b) = if after < history.len() {
        (history[after - 1], history[after])
    } else if history.len() >= 2 && newest.moving {
        (history[history.len() - 2], newest)
    } else {
        return Some(newest);
    };
    // When the head began the move from `a` to `b`.
    let start = match commanded_at {
        Some(c) if !a.moving && c > a.measured_at && c < b.measured_at => c,
        _ => a.measured_at,
    };
    if at <= start {
        return Some(PtzState {
            measured_at: at,
            ..a
        });
    }
    // The head moved from `a` at its speed before `a`, and got to `b` before `b` was measured
    // (it stopped there): it went on at that speed until it reached `b`. Where the earlier
    // speed would not have got it there in time (it sped up), the move is taken as even.
    if a.moving && after >= 2 && after < history.len() && at <= b.measured_at {
        let before = history[after - 2];
        let dt = a.measured_at.saturating_duration_since(before.measured_at);
        let span = b.measured_at.saturating_duration_since(a.measured_at);
        if !dt.is_zero() && !span.is_zero() {
            let t = at.saturating_duration_since(a.measured_at).as_secs_f64();
            let fraction = t / span.as_secs_f64();
            let go = |from: f64, d: f64, earlier: f64| {
                let speed = earlier / dt.as_secs_f64();
                let reaches = speed * d > 0.0 && (speed * span.as_secs_f64()).abs() >= d.abs();
                if reaches {
                    from + (speed * t).clamp(-d.abs(), d.abs())
                } else {
                    from + d * fraction
                }
            };
            let pan = go(
                a.pan_deg,
                crate::aiming::pointing::angle_difference_deg(b.pan_deg, a.pan_deg),
                crate::aiming::pointing::angle_difference_deg(a.pan_deg, before.pan_deg),
            );
            return Some(PtzState {
                pan_deg: crate::aiming::pointing::normalize_deg(pan),
                tilt_deg: go(
                    a.tilt_deg,
                    b.tilt_deg - a.tilt_deg,
                    a.tilt_deg - before.tilt_deg,
                ),
                zoom: go(a.zoom, b.zoom - a.zoom, a.zoom - before.zoom),
                moving: b.moving,
                measured_at: at,
            });
        }
    }
    let span = b.measured_at.saturating_duration_since(start);
    if span.is_zero() {
        return Some(b);
    }
    let elapsed = if at > b.measured_at {
        (b.measured_at - start) + (at - b.measured_at).min(MAX_EXTRAPOLATION)
    } else {
        at.saturating_duration_since(start)
    };
    let f = elapsed.as_secs_f64() / span.as_secs_f64();
    let pan = crate::aiming::pointing::angle_difference_deg(b.pan_deg, a.pan_deg);
    Some(PtzState {
        pan_deg: crate::aiming::pointing::normalize_deg(a.pan_deg + pan * f),
        tilt_deg: a.tilt_deg + (b.tilt_deg - a.tilt_deg) * f,
        zoom: a.zoom + (b.zoom - a.zoom) * f,
        moving: b.moving,
        measured_at: at,
    })
}

/// Starts the driver for the PTZ named `ptz_name`.
pub fn spawn(
    robot: RobotClient,
    credentials: Credentials,
    ptz_name: String,
    shutdown: CancellationToken,
) -> (PtzDriverHandle, JoinHandle<()>) {
    let (commands, commands_rx) = watch::channel(None);
    let (state_tx, state) = watch::channel(None);
    let (limits_tx, limits) = watch::channel(None);
    let (sent_tx, sent) = watch::channel(0);
    let (refusals_tx, refusals) = watch::channel(None);
    let history = Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY)));
    let commanded_at = Arc::new(Mutex::new(None));
    let handle = PtzDriverHandle {
        commands,
        state,
        limits,
        sent,
        refusals,
        history: history.clone(),
        commanded_at: commanded_at.clone(),
    };
    let driver = Driver {
        robot,
        credentials,
        ptz_name,
        state: state_tx,
        limits: limits_tx,
        sent: sent_tx,
        refusals: refusals_tx,
        history,
        commanded_at,
        last_login_attempt: None,
        login_rejected: false,
        warned: false,
    };
    let task = tokio::spawn(driver.run(commands_rx, shutdown));
    (handle, task)
}

struct Driver {
    robot: RobotClient,
    credentials: Credentials,
    ptz_name: String,
    state: watch::Sender<Option<PtzState>>,
    limits: watch::Sender<Option<PtzLimits>>,
    sent: watch::Sender<u64>,
    refusals: watch::Sender<Option<Refusal>>,
    history: Arc<Mutex<VecDeque<PtzState>>>,
    /// Shared with the handle: when the newest command took effect.
    commanded_at: Arc<Mutex<Option<Instant>>>,
    last_login_attempt: Option<Instant>,
    /// The robot rejected our login: only the stream's login is used from now on.
    login_rejected: bool,
    /// A failure was logged and nothing has worked since (log the next failure at DEBUG).
    warned: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: watch::Receiver<Option<PtzCommand>>,
        shutdown: CancellationToken,
    ) {
        let mut last_command_at: Option<Instant> = None;
        let mut next_poll = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = commands.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let command = *commands.borrow_and_update();
                    if let Some(command) = command
                        && self.send(command).await
                    {
                        last_command_at = Some(Instant::now());
                        next_poll = tokio::time::Instant::now() + POLL_MOVING;
                    }
                }
                () = tokio::time::sleep_until(next_poll) => {
                    let moving = self.measure().await;
                    let settling = last_command_at.is_some_and(|at| at.elapsed() < SETTLE);
                    next_poll = tokio::time::Instant::now()
                        + if moving || settling { POLL_MOVING } else { POLL_IDLE };
                }
            }
        }
    }

    /// Whether a token is there; with `may_log_in`, logs in when nobody has (rate-limited).
    async fn logged_in(&mut self, may_log_in: bool) -> bool {
        if self.robot.token().is_some() {
            return true;
        }
        if !may_log_in
            || self.login_rejected
            || self
                .last_login_attempt
                .is_some_and(|at| at.elapsed() < LOGIN_RETRY)
        {
            return false;
        }
        self.last_login_attempt = Some(Instant::now());
        match self.robot.login(&self.credentials).await {
            Ok(_) => true,
            Err(error) => {
                if error.is_auth_rejection() {
                    self.login_rejected = true;
                    tracing::error!(%error, "the robot rejected the login: the PTZ is not moved until the stream logs in (fix BOSDYN_CLIENT_USERNAME/BOSDYN_CLIENT_PASSWORD)");
                } else {
                    self.failed("could not log in to move the PTZ", &error);
                }
                false
            }
        }
    }

    async fn send(&mut self, command: PtzCommand) -> bool {
        if !self.logged_in(true).await {
            return false;
        }
        let sent_at = Instant::now();
        let result = self
            .robot
            .set_ptz_position(
                &self.ptz_name,
                Some(command.pan_deg as f32),
                Some(command.tilt_deg as f32),
                Some(command.zoom as f32),
            )
            .await;
        match result {
            Ok(_) => {
                // The PTZ took the command between request and reply: the head starts then.
                *crate::lock(&self.commanded_at) = Some(sent_at + sent_at.elapsed() / 2);
                self.recovered();
                self.sent.send_modify(|n| *n += 1);
                tracing::debug!(?command, "PTZ commanded");
                true
            }
            Err(error @ crate::robot::RobotError::InvalidRequest { .. }) => {
                // The PTZ cannot take this position: aiming holds off from it (see
                // `Aimer::on_refused`) instead of sending it again.
                tracing::warn!(%error, ?command, "the PTZ refused a position; aiming does not send it again");
                self.refusals.send_replace(Some(Refusal {
                    command,
                    reason: error.to_string(),
                }));
                false
            }
            Err(error) => {
                self.failed(
                    "the PTZ did not accept a position; the next aim tries again",
                    &error,
                );
                false
            }
        }
    }

    /// Reads the limits once, then the position; whether the head is moving.
    async fn measure(&mut self) -> bool {
        // Measuring waits for a login (the stream's, or one a command made).
        if !self.logged_in(false).await {
            return false;
        }
        if self.limits.borrow().is_none() {
            match self.robot.list_ptz().await {
                Ok(list) => {
                    let limits = list.iter().find(|p| p.name == self.ptz_name).map(|p| {
                        PtzLimits::from_reported(p.pan_limits_deg, p.tilt_limits_deg, p.zoom_limits)
                    });
                    match limits {
                        Some(limits) => {
                            tracing::info!(ptz = %self.ptz_name, ?limits, "PTZ limits");
                            self.limits.send_replace(Some(limits));
                        }
                        None => {
                            tracing::warn!(ptz = %self.ptz_name, "the robot lists no such PTZ; check initial_ptz_name (aiming uses no limits)")
                        }
                    }
                }
                Err(error) => self.failed("could not read the PTZ limits (ListPtz)", &error),
            }
        }
        let asked_at = Instant::now();
        let pose = match self.robot.get_ptz_position(&self.ptz_name).await {
            Ok(pose) => pose,
            Err(error) => {
                self.failed("could not read the PTZ position (GetPtzPosition)", &error);
                return false;
            }
        };
        self.recovered();
        let (Some(pan), Some(tilt), Some(zoom)) = (pose.pan_deg, pose.tilt_deg, pose.zoom) else {
            return false;
        };
        let previous = *self.state.borrow();
        let (pan_deg, tilt_deg, zoom) = (f64::from(pan), f64::from(tilt), f64::from(zoom));
        let moving = previous.is_some_and(|p| {
            crate::aiming::pointing::angle_difference_deg(p.pan_deg, pan_deg).abs() > STILL_DEG
                || (p.tilt_deg - tilt_deg).abs() > STILL_DEG
                || (p.zoom - zoom).abs() > STILL_ZOOM
        });
        let state = PtzState {
            pan_deg,
            tilt_deg,
            zoom,
            moving,
            // The PTZ answered between request and reply.
            measured_at: asked_at + asked_at.elapsed() / 2,
        };
        {
            let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(state);
        }
        self.state.send_replace(Some(state));
        moving
    }

    fn failed(&mut self, what: &str, error: &crate::robot::RobotError) {
        if std::mem::replace(&mut self.warned, true) {
            tracing::debug!(%error, "{what}");
        } else {
            tracing::warn!(%error, "{what}");
        }
    }

    fn recovered(&mut self) {
        if std::mem::replace(&mut self.warned, false) {
            tracing::info!("the PTZ answers again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(at: Instant, pan_deg: f64, zoom: f64, moving: bool) -> PtzState {
        PtzState {
            pan_deg,
            tilt_deg: 0.0,
            zoom,
            moving,
            measured_at: at,
        }
    }

    #[test]
    fn the_pose_between_measurements_is_interpolated_and_a_moving_head_carried_on() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let history: VecDeque<PtzState> = [
            state(t0, 350.0, 1.0, true),
            state(t0 + ms(100), 10.0, 3.0, true),
        ]
        .into();
        let mid = pose_in(&history, None, t0 + ms(50)).unwrap();
        // Across 0°: the short way round.
        assert!((mid.pan_deg - 0.0).abs() < 1e-9 || (mid.pan_deg - 360.0).abs() < 1e-9);
        assert!((mid.zoom - 2.0).abs() < 1e-9);
        // 50 ms after the newest: carried on at 200°/s; beyond the limit it stops.
        assert!((pose_in(&history, None, t0 + ms(150)).unwrap().pan_deg - 20.0).abs() < 1e-9);
        assert!((pose_in(&history, None, t0 + ms(1000)).unwrap().pan_deg - 40.0).abs() < 1e-9);
        // Before the oldest: the oldest.
        assert_eq!(pose_in(&history, None, t0 - ms(10)).unwrap().pan_deg, 350.0);
        // A still head stays put.
        let still: VecDeque<PtzState> = [
            state(t0, 5.0, 1.0, true),
            state(t0 + ms(100), 6.0, 1.0, false),
        ]
        .into();
        assert_eq!(pose_in(&still, None, t0 + ms(500)).unwrap().pan_deg, 6.0);
        assert!(pose_in(&VecDeque::new(), None, t0).is_none());
        // Still at 0° for a second, commanded at 900 ms, at 6° by 1000 ms: it moved only after
        // the command.
        let started: VecDeque<PtzState> = [
            state(t0, 0.0, 1.0, false),
            state(t0 + ms(1000), 6.0, 1.0, true),
        ]
        .into();
        let commanded = Some(t0 + ms(900));
        assert_eq!(
            pose_in(&started, commanded, t0 + ms(850)).unwrap().pan_deg,
            0.0
        );
        let during = pose_in(&started, commanded, t0 + ms(950)).unwrap().pan_deg;
        assert!((during - 3.0).abs() < 1e-9, "{during}");
        // Moving at 60°/s, found at 40° 100 ms after 36° (and still there later): at 40° from
        // 67 ms on.
        let stopped: VecDeque<PtzState> = [
            state(t0, 30.0, 1.0, true),
            state(t0 + ms(100), 36.0, 1.0, true),
            state(t0 + ms(200), 40.0, 1.0, true),
            state(t0 + ms(300), 40.0, 1.0, false),
        ]
        .into();
        let at = |t: u64| pose_in(&stopped, None, t0 + ms(t)).unwrap().pan_deg;
        assert!((at(150) - 39.0).abs() < 1e-9, "{}", at(150));
        assert!((at(180) - 40.0).abs() < 1e-9, "{}", at(180));
        // Speeding up (from 6°/100 ms to 10°/100 ms): even.
        let faster: VecDeque<PtzState> = [
            state(t0, 30.0, 1.0, true),
            state(t0 + ms(100), 36.0, 1.0, true),
            state(t0 + ms(200), 46.0, 1.0, true),
        ]
        .into();
        let mid = pose_in(&faster, None, t0 + ms(150)).unwrap().pan_deg;
        assert!((mid - 41.0).abs() < 1e-9, "{mid}");
    }
}
