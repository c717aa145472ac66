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
/// Measurements kept for [`PtzDriverHandle::zoom_at`].
const HISTORY: usize = 64;
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
    /// When the answer came (the reply carries no capture time).
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
        self.commands.send_replace(Some(command));
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

    /// The zoom measured last at or before `at` (or the oldest one kept).
    pub fn zoom_at(&self, at: Instant) -> Option<f64> {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history
            .iter()
            .rev()
            .find(|s| s.measured_at <= at)
            .or(history.front())
            .map(|s| s.zoom)
    }
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
    let handle = PtzDriverHandle {
        commands,
        state,
        limits,
        sent,
        refusals,
        history: history.clone(),
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
            measured_at: Instant::now(),
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
