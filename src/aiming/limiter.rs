//! Keeps the PTZ from being flooded: a command goes out only when it differs from the last one
//! sent by more than a deadband, and at most once per interval. The newest command held back
//! by the interval goes out when the interval ends ([`AimLimiter::poll`]), so the last aim of a
//! burst is never lost. Time is passed in.

use std::time::{Duration, Instant};

use crate::aiming::pointing::{PtzCommand, angle_difference_deg};

/// Deadband and rate limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimiterConfig {
    /// Pan and tilt changes smaller than this are not sent.
    pub deadband_deg: f64,
    /// Zoom changes smaller than this fraction of the zoom are not sent.
    pub zoom_deadband_fraction: f64,
    /// Least time between two commands.
    pub min_interval: Duration,
}

/// See the module docs.
#[derive(Debug)]
pub struct AimLimiter {
    config: LimiterConfig,
    last_sent: Option<(Instant, PtzCommand)>,
    pending: Option<PtzCommand>,
    suppressed: u64,
}

impl AimLimiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            last_sent: None,
            pending: None,
            suppressed: 0,
        }
    }

    /// Another deadband or rate, from the next command on.
    pub fn set_config(&mut self, config: LimiterConfig) {
        self.config = config;
    }

    /// Offers a command; returns it when it should be sent now.
    pub fn offer(&mut self, command: PtzCommand, now: Instant) -> Option<PtzCommand> {
        if let Some((_, last)) = self.last_sent
            && self.within_deadband(&last, &command)
        {
            self.pending = None;
            self.suppressed += 1;
            return None;
        }
        match self.last_sent {
            Some((at, _)) if now.duration_since(at) < self.config.min_interval => {
                self.pending = Some(command);
                None
            }
            _ => self.sent(command, now),
        }
    }

    /// The held-back command, once its interval is over.
    pub fn poll(&mut self, now: Instant) -> Option<PtzCommand> {
        let due = self.deadline().is_some_and(|d| now >= d);
        if due {
            self.pending.take().and_then(|c| self.sent(c, now))
        } else {
            None
        }
    }

    /// When [`Self::poll`] has something to send.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending?;
        Some(
            self.last_sent
                .map_or(Instant::now(), |(at, _)| at + self.config.min_interval),
        )
    }

    /// Commands the deadband kept back so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Forgets the last command (e.g. after the PTZ was moved by someone else).
    pub fn reset(&mut self) {
        self.last_sent = None;
        self.pending = None;
    }

    fn sent(&mut self, command: PtzCommand, now: Instant) -> Option<PtzCommand> {
        self.last_sent = Some((now, command));
        Some(command)
    }

    fn within_deadband(&self, a: &PtzCommand, b: &PtzCommand) -> bool {
        let c = &self.config;
        angle_difference_deg(a.pan_deg, b.pan_deg).abs() < c.deadband_deg
            && (a.tilt_deg - b.tilt_deg).abs() < c.deadband_deg
            && (a.zoom - b.zoom).abs() < c.zoom_deadband_fraction * a.zoom.max(b.zoom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> AimLimiter {
        AimLimiter::new(LimiterConfig {
            deadband_deg: 1.0,
            zoom_deadband_fraction: 0.1,
            min_interval: Duration::from_millis(500),
        })
    }

    fn command(pan_deg: f64, tilt_deg: f64, zoom: f64) -> PtzCommand {
        PtzCommand {
            pan_deg,
            tilt_deg,
            zoom,
        }
    }

    #[test]
    fn jitter_inside_the_deadband_sends_nothing() {
        let mut l = limiter();
        let start = Instant::now();
        assert!(l.offer(command(10.0, 5.0, 2.0), start).is_some());
        for i in 1..100u64 {
            let jitter = if i % 2 == 0 { 0.4 } else { -0.4 };
            let now = start + Duration::from_millis(100 * i);
            assert_eq!(
                l.offer(
                    command(10.0 + jitter, 5.0 - jitter, 2.0 * (1.0 + jitter / 10.0)),
                    now
                ),
                None
            );
            assert_eq!(l.poll(now), None);
        }
        assert_eq!(l.suppressed(), 99);
        // Across 0/360 the difference is small too.
        let mut wrap = limiter();
        wrap.offer(command(359.7, 0.0, 1.0), start);
        assert_eq!(
            wrap.offer(command(0.2, 0.0, 1.0), start + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn a_burst_is_rate_limited_and_its_last_command_still_goes_out() {
        let mut l = limiter();
        let start = Instant::now();
        assert!(l.offer(command(0.0, 0.0, 1.0), start).is_some());
        assert_eq!(
            l.offer(command(10.0, 0.0, 1.0), start + Duration::from_millis(100)),
            None
        );
        assert_eq!(
            l.offer(command(20.0, 0.0, 1.0), start + Duration::from_millis(200)),
            None
        );
        assert_eq!(l.deadline(), Some(start + Duration::from_millis(500)));
        assert_eq!(l.poll(start + Duration::from_millis(400)), None);
        assert_eq!(
            l.poll(start + Duration::from_millis(500)),
            Some(command(20.0, 0.0, 1.0))
        );
        assert_eq!(l.deadline(), None);
        assert!(
            l.offer(command(30.0, 0.0, 1.0), start + Duration::from_millis(1100))
                .is_some()
        );
    }
}
