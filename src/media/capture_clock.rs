//! When a frame was captured, from its RTP timestamp: the camera stamps each frame on its
//! capture clock (90 kHz), and the frame arrives later by the encoder's, the network's and the
//! jitter's delay. Over a few seconds the frame that arrived soonest after its RTP time shows
//! the smallest delay; every frame's capture time is its RTP time aligned by that one. The
//! estimate is late by that smallest delay only (a few milliseconds on a LAN), where the arrival
//! of a large frame is late by tens. A jump of the RTP clock (a new session) starts over.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const RTP_CLOCK_HZ: f64 = 90_000.0;
/// How long the smallest delay is remembered.
const WINDOW: Duration = Duration::from_secs(5);
/// A frame this much later or earlier than the RTP clock says is a new clock.
const CLOCK_JUMP_SECS: f64 = 2.0;

/// See the module docs.
#[derive(Debug, Default)]
pub struct CaptureClock {
    /// The first frame's RTP timestamp and arrival: the reference of the RTP clock.
    reference: Option<(u32, Instant)>,
    /// (arrival, how late after the reference's timeline it arrived, seconds), oldest first;
    /// increasing lateness, so the front is the smallest.
    lateness: VecDeque<(Instant, f64)>,
}

impl CaptureClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The capture time of the frame with `rtp_timestamp` that began arriving at `arrival`.
    pub fn capture_time(&mut self, rtp_timestamp: u32, arrival: Instant) -> Instant {
        let (rtp0, t0) = *self.reference.get_or_insert((rtp_timestamp, arrival));
        // Signed: frames may come out of order; wraps of the 32-bit clock are handled.
        let rtp_secs = f64::from(rtp_timestamp.wrapping_sub(rtp0) as i32) / RTP_CLOCK_HZ;
        let since_t0 = if arrival >= t0 {
            (arrival - t0).as_secs_f64()
        } else {
            -(t0 - arrival).as_secs_f64()
        };
        let late = since_t0 - rtp_secs;
        if let Some(&(_, smallest)) = self.lateness.front()
            && (late - smallest).abs() > CLOCK_JUMP_SECS
        {
            self.reference = Some((rtp_timestamp, arrival));
            self.lateness.clear();
            return self.capture_time(rtp_timestamp, arrival);
        }
        while self
            .lateness
            .front()
            .is_some_and(|(at, _)| arrival.saturating_duration_since(*at) > WINDOW)
        {
            self.lateness.pop_front();
        }
        // A monotonic deque: what is later than this frame can never be the smallest again.
        while self.lateness.back().is_some_and(|(_, l)| *l >= late) {
            self.lateness.pop_back();
        }
        self.lateness.push_back((arrival, late));
        let smallest = self.lateness.front().map_or(late, |(_, l)| *l);
        // This frame arrived (late - smallest) after the soonest-arriving frame's alignment.
        let delay = Duration::from_secs_f64((late - smallest).max(0.0));
        arrival.checked_sub(delay).unwrap_or(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_frame_is_placed_at_its_capture_time() {
        let mut clock = CaptureClock::new();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let rtp = |ms: u32| 1_000u32.wrapping_add(ms * 90);
        // 30 fps; frame 0 arrives 40 ms after capture, frame 1 only 10 ms after, frame 2 70 ms.
        assert_eq!(clock.capture_time(rtp(0), t0 + ms(40)), t0 + ms(40));
        let one = clock.capture_time(rtp(33), t0 + ms(43));
        assert_eq!(one, t0 + ms(43), "the soonest frame is its own reference");
        let two = clock.capture_time(rtp(66), t0 + ms(136));
        let expected = t0 + ms(76); // captured at 66 ms, aligned by frame 1's 10 ms delay
        let off = if two > expected {
            two - expected
        } else {
            expected - two
        };
        assert!(off < Duration::from_micros(100), "{two:?} vs {expected:?}");
    }

    #[test]
    fn a_new_rtp_clock_starts_over_and_the_clock_wraps() {
        let mut clock = CaptureClock::new();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        clock.capture_time(u32::MAX - 900, t0 + ms(10));
        // Across the wrap, 20 ms later on both clocks: no delay.
        let across = clock.capture_time(900, t0 + ms(30));
        assert_eq!(across, t0 + ms(30));
        // A reconnect: a random new RTP base.
        let fresh = clock.capture_time(123_456_789, t0 + ms(5000));
        assert_eq!(fresh, t0 + ms(5000));
        let next = clock.capture_time(123_456_789 + 90 * 33, t0 + ms(5033));
        assert_eq!(next, t0 + ms(5033));
    }
}
