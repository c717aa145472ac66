//! Adaptive stream quality (the seed's Phase 3): when the link cannot carry the camera's
//! bitrate, ask the camera for less; when it has been clean for a while, ask for more again.
//!
//! The signal is the loss that is left *after* repair: packets the reorder buffer gave up on
//! (a NACK could not bring them back in time). Retransmitted packets are not loss, so a link
//! with occasional loss that NACK repairs keeps its bitrate; a capped link, whose queue
//! overflows and also drops the retransmissions, does not. Every [`WINDOW`] the controller
//! looks at the loss fraction of the window:
//!
//! - above [`DECREASE_ABOVE_LOSS_FRACTION`]: multiply the target by [`DECREASE_FACTOR`], or by
//!   the share of packets that got through when that is smaller (a link that lost 40 % carries
//!   at most 60 % of the rate), but never by less than [`MIN_DECREASE_FACTOR`] and never below
//!   the minimum; then hold for [`HOLD_AFTER_CHANGE`] so the encoder's rate control
//!   and the link's queue settle before the next decision;
//! - below [`CLEAN_BELOW_LOSS_FRACTION`] for [`CLEAN_BEFORE_INCREASE`] in a row: multiply by
//!   [`INCREASE_FACTOR`] (never above the maximum, the configured bitrate): slowly up, fast
//!   down, as congestion controllers do.
//!
//! Time is passed in; the stream task applies the decisions with `SetStreamParams`.

use std::time::{Duration, Instant};

/// How often the loss is looked at.
pub const WINDOW: Duration = Duration::from_secs(2);
/// A window with more unrepaired loss than this lowers the bitrate.
pub const DECREASE_ABOVE_LOSS_FRACTION: f64 = 0.01;
/// Windows with less loss than this count as clean.
pub const CLEAN_BELOW_LOSS_FRACTION: f64 = 0.002;
/// Each decrease multiplies the target by this, or less after heavy loss.
pub const DECREASE_FACTOR: f64 = 0.75;
/// The largest single decrease: to half.
pub const MIN_DECREASE_FACTOR: f64 = 0.5;
/// Each increase multiplies the target by this.
pub const INCREASE_FACTOR: f64 = 1.15;
/// No decision this long after a change.
pub const HOLD_AFTER_CHANGE: Duration = Duration::from_secs(4);
/// Clean time before an increase.
pub const CLEAN_BEFORE_INCREASE: Duration = Duration::from_secs(10);
/// Fewer packets than this in a window say nothing about the link.
const MIN_PACKETS_PER_WINDOW: u64 = 20;

/// The limits of the adaptation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitrateLimits {
    pub min_bitrate_bps: i64,
    pub max_bitrate_bps: i64,
}

/// Which way the bitrate went, and why (for the log).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    Decrease { loss_fraction: f64 },
    Increase { clean_secs: f64 },
}

/// See the module documentation.
#[derive(Debug)]
pub struct BitrateController {
    limits: BitrateLimits,
    target_bitrate_bps: i64,
    hold_until: Option<Instant>,
    clean_since: Option<Instant>,
}

impl BitrateController {
    /// Starts at `current_bitrate_bps` (the camera's), within `limits`.
    pub fn new(limits: BitrateLimits, current_bitrate_bps: i64) -> Self {
        Self {
            limits,
            target_bitrate_bps: current_bitrate_bps
                .clamp(limits.min_bitrate_bps, limits.max_bitrate_bps),
            hold_until: None,
            clean_since: None,
        }
    }

    pub fn target_bitrate_bps(&self) -> i64 {
        self.target_bitrate_bps
    }

    /// One window's figures: packets that arrived and packets lost for good. Returns the new
    /// target when it changes.
    pub fn on_window(
        &mut self,
        now: Instant,
        packets_received: u64,
        packets_lost: u64,
    ) -> Option<(i64, Change)> {
        let total = packets_received + packets_lost;
        if total < MIN_PACKETS_PER_WINDOW {
            return None;
        }
        let loss_fraction = packets_lost as f64 / total as f64;
        if loss_fraction >= CLEAN_BELOW_LOSS_FRACTION {
            self.clean_since = None;
        } else if self.clean_since.is_none() {
            self.clean_since = Some(now);
        }
        if self.hold_until.is_some_and(|until| now < until) {
            return None;
        }
        let (factor, change) = if loss_fraction > DECREASE_ABOVE_LOSS_FRACTION {
            (
                DECREASE_FACTOR
                    .min(1.0 - loss_fraction)
                    .max(MIN_DECREASE_FACTOR),
                Change::Decrease { loss_fraction },
            )
        } else {
            let clean = self
                .clean_since
                .map(|since| now.saturating_duration_since(since))?;
            // The first clean window only starts the clock: count from its start.
            let clean = clean + WINDOW;
            if clean < CLEAN_BEFORE_INCREASE {
                return None;
            }
            (
                INCREASE_FACTOR,
                Change::Increase {
                    clean_secs: clean.as_secs_f64(),
                },
            )
        };
        let next = ((self.target_bitrate_bps as f64 * factor).round() as i64)
            .clamp(self.limits.min_bitrate_bps, self.limits.max_bitrate_bps);
        if next == self.target_bitrate_bps {
            return None;
        }
        self.target_bitrate_bps = next;
        self.hold_until = Some(now + HOLD_AFTER_CHANGE);
        self.clean_since = None;
        Some((next, change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BitrateLimits = BitrateLimits {
        min_bitrate_bps: 500_000,
        max_bitrate_bps: 2_000_000,
    };

    fn windows(start: Instant) -> impl Iterator<Item = Instant> {
        (1..).map(move |i| start + WINDOW * i)
    }

    #[test]
    fn loss_lowers_the_target_step_by_step_down_to_the_minimum() {
        let start = Instant::now();
        let mut controller = BitrateController::new(LIMITS, 2_000_000);
        let mut targets = Vec::new();
        for now in windows(start).take(30) {
            if let Some((target, change)) = controller.on_window(now, 950, 50) {
                assert!(matches!(change, Change::Decrease { .. }));
                targets.push(target);
            }
        }
        assert_eq!(targets, [1_500_000, 1_125_000, 843_750, 632_813, 500_000]);
        assert_eq!(controller.target_bitrate_bps(), 500_000);
    }

    #[test]
    fn heavy_loss_lowers_the_target_by_what_got_through_at_most_to_half() {
        let start = Instant::now();
        let mut controller = BitrateController::new(LIMITS, 2_000_000);
        assert_eq!(
            controller
                .on_window(start, 600, 400)
                .map(|(target, _)| target),
            Some(1_200_000)
        );
        let later = start + HOLD_AFTER_CHANGE;
        assert_eq!(
            controller
                .on_window(later, 100, 900)
                .map(|(target, _)| target),
            Some(600_000)
        );
    }

    #[test]
    fn decisions_wait_for_the_hold_after_a_change() {
        let start = Instant::now();
        let mut controller = BitrateController::new(LIMITS, 2_000_000);
        assert!(controller.on_window(start, 900, 100).is_some());
        assert!(controller.on_window(start + WINDOW, 900, 100).is_none());
        assert!(
            controller
                .on_window(start + HOLD_AFTER_CHANGE, 900, 100)
                .is_some()
        );
    }

    #[test]
    fn a_clean_link_raises_the_target_slowly_up_to_the_maximum() {
        let start = Instant::now();
        let mut controller = BitrateController::new(LIMITS, 1_000_000);
        let mut changes = Vec::new();
        for now in windows(start).take(60) {
            if let Some((target, _)) = controller.on_window(now, 1000, 0) {
                changes.push((now.duration_since(start).as_secs(), target));
            }
        }
        // Every 10 s of clean windows (the hold is shorter), +15 %.
        assert_eq!(changes.first(), Some(&(10, 1_150_000)));
        assert_eq!(changes.get(1), Some(&(20, 1_322_500)));
        assert_eq!(controller.target_bitrate_bps(), 2_000_000);
    }

    #[test]
    fn repaired_or_light_loss_keeps_the_target_and_a_quiet_stream_says_nothing() {
        let start = Instant::now();
        let mut controller = BitrateController::new(LIMITS, 1_000_000);
        for now in windows(start).take(20) {
            // 0.5 %: not clean, not bad.
            assert!(controller.on_window(now, 995, 5).is_none());
        }
        assert!(controller.on_window(start, 5, 5).is_none());
        assert_eq!(controller.target_bitrate_bps(), 1_000_000);
    }
}
