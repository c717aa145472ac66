//! The reorder buffer between WebRTC and the depacketizer: puts video RTP packets back in
//! sequence order and gives a missing packet up to [`ReorderBuffer::wait`] to arrive (late on
//! the link, or retransmitted after the NACK the library's generator sent) before it is
//! declared lost.
//!
//! In order, packets pass straight through: the buffer adds no latency while nothing is
//! missing. When a packet is missing, the ones behind it are held until it arrives or until
//! `wait` after the first of them arrived (the moment the gap became known); then the gap is
//! given up on and the held packets go on, so the depacketizer sees a sequence gap and treats
//! the frame as lost. A packet that comes after its gap was given up on is discarded (its
//! frame is gone already). webrtc 0.21's own `JitterBufferInterceptor` was not used: it holds
//! *every* packet for a fixed playout depth, which would add that depth to every frame's
//! latency, not only to frames with a gap.
//!
//! Time is passed in (`now`), so the buffer is tested without a clock. Sequence numbers wrap
//! at 16 bits; a jump of more than [`MAX_JUMP_PACKETS`] either way is a stream restart, not a
//! gap: everything held is released and ordering starts again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The default wait for a missing packet: two NACK tries on a Wi-Fi link (NACK interval 40 ms,
/// a 10–30 ms round trip) answered by a busy camera up to ~150 ms late. Waiting costs only
/// the frames behind a gap, for at most this long; a frame given up costs the pictures up to
/// the end of the next intra-refresh wave (1–2 s), so the wait errs on the long side
/// (`tests/node_late_retransmissions.rs`).
pub const DEFAULT_REORDER_WAIT: Duration = Duration::from_millis(250);
/// A sequence-number jump beyond this (either way) is a restart of the stream.
pub const MAX_JUMP_PACKETS: u64 = 3000;
/// Most packets held while waiting for a gap; past it the gap is given up at once.
pub const MAX_HELD_PACKETS: usize = 2048;

/// What the buffer counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReorderCounters {
    /// Packets that arrived after a later one and were still in time: retransmitted after a
    /// NACK, or reordered on the link.
    pub packets_recovered: u64,
    /// Packets that arrived after their gap had been given up on, or twice.
    pub packets_too_late: u64,
    /// Gaps given up on after `wait` (their packets are lost).
    pub gaps_given_up: u64,
    /// Stream restarts (sequence jumps beyond [`MAX_JUMP_PACKETS`]).
    pub restarts: u64,
}

/// See the module documentation; `T` is the packet.
#[derive(Debug)]
pub struct ReorderBuffer<T> {
    wait: Duration,
    /// Extended sequence number of the next packet to release.
    next: Option<u64>,
    /// Highest extended sequence number seen.
    highest: u64,
    /// Packets behind a gap, by extended sequence number, with their arrival time.
    held: BTreeMap<u64, (T, Instant)>,
    counters: ReorderCounters,
}

impl<T> ReorderBuffer<T> {
    /// A buffer that waits at most `wait` for a missing packet (zero: never waits).
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            next: None,
            highest: 0,
            held: BTreeMap::new(),
            counters: ReorderCounters::default(),
        }
    }

    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Changes the wait, also for the gaps waiting now.
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    pub fn counters(&self) -> ReorderCounters {
        self.counters
    }

    /// Whether packets are held behind a gap.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// When the current gap is given up on, if there is one: call [`Self::poll`] then.
    pub fn deadline(&self) -> Option<Instant> {
        self.held
            .values()
            .map(|(_, arrival)| *arrival)
            .min()
            .map(|first| first + self.wait)
    }

    /// The extended form of `sequence_number`, nearest to the highest seen.
    fn extend(&self, sequence_number: u16) -> u64 {
        let delta = i64::from(sequence_number.wrapping_sub(self.highest as u16) as i16);
        // Start far from zero so the stream can go backwards from its first packet.
        (self.highest as i64 + delta).max(0) as u64
    }

    /// Takes one packet that arrived at `now`; what can go on now (in order) is appended to
    /// `out`.
    pub fn push(&mut self, sequence_number: u16, packet: T, now: Instant, out: &mut Vec<T>) {
        let Some(next) = self.next else {
            self.restart(sequence_number, packet, out);
            return;
        };
        let extended = self.extend(sequence_number);
        if extended.abs_diff(next) > MAX_JUMP_PACKETS
            && extended.abs_diff(self.highest) > MAX_JUMP_PACKETS
        {
            self.counters.restarts += 1;
            self.release_all(out);
            self.restart(sequence_number, packet, out);
            return;
        }
        if extended < next || self.held.contains_key(&extended) {
            self.counters.packets_too_late += 1;
            return;
        }
        if extended < self.highest {
            self.counters.packets_recovered += 1;
        }
        self.highest = self.highest.max(extended);
        if extended == next {
            out.push(packet);
            self.next = Some(next + 1);
            self.release_in_order(out);
        } else if self.wait.is_zero() {
            // No waiting: the gap is lost at once.
            self.counters.gaps_given_up += 1;
            out.push(packet);
            self.next = Some(extended + 1);
        } else {
            self.held.insert(extended, (packet, now));
            if self.held.len() > MAX_HELD_PACKETS {
                self.give_up(out);
            }
        }
    }

    /// Gives up on gaps whose time is over; what can go on is appended to `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<T>) {
        while self.deadline().is_some_and(|deadline| deadline <= now) {
            self.give_up(out);
        }
    }

    /// Releases everything held, in order, gaps and all (end of stream).
    pub fn release_all(&mut self, out: &mut Vec<T>) {
        while self.is_holding() {
            self.give_up(out);
        }
    }

    fn restart(&mut self, sequence_number: u16, packet: T, out: &mut Vec<T>) {
        // Extended numbers start at 2^32 so that the first packets can be followed by
        // reordered ones with lower numbers.
        let extended = (1u64 << 32) + u64::from(sequence_number);
        self.highest = extended;
        self.next = Some(extended + 1);
        out.push(packet);
    }

    /// Declares the first gap lost and releases the packets behind it up to the next gap.
    fn give_up(&mut self, out: &mut Vec<T>) {
        let Some((&first, _)) = self.held.first_key_value() else {
            return;
        };
        self.counters.gaps_given_up += 1;
        self.next = Some(first);
        self.release_in_order(out);
    }

    fn release_in_order(&mut self, out: &mut Vec<T>) {
        let Some(mut next) = self.next else { return };
        while let Some((packet, _)) = self.held.remove(&next) {
            out.push(packet);
            next += 1;
        }
        self.next = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(100);

    fn ms(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    fn push_all(buffer: &mut ReorderBuffer<u16>, sequence: &[u16], at: Instant) -> Vec<u16> {
        let mut out = Vec::new();
        for &s in sequence {
            buffer.push(s, s, at, &mut out);
        }
        out
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let mut buffer = ReorderBuffer::new(WAIT);
        let start = Instant::now();
        assert_eq!(push_all(&mut buffer, &[10, 11, 12], start), [10, 11, 12]);
        assert!(!buffer.is_holding());
        assert_eq!(buffer.deadline(), None);
    }

    #[test]
    fn a_late_packet_in_time_is_put_back_in_order() {
        let mut buffer = ReorderBuffer::new(WAIT);
        let start = Instant::now();
        assert_eq!(push_all(&mut buffer, &[1, 2, 4, 5], start), [1, 2]);
        assert_eq!(buffer.deadline(), Some(ms(start, 100)));
        let mut out = Vec::new();
        buffer.poll(ms(start, 99), &mut out);
        assert!(out.is_empty());
        buffer.push(3, 3, ms(start, 60), &mut out);
        assert_eq!(out, [3, 4, 5]);
        assert_eq!(buffer.counters().packets_recovered, 1);
        assert_eq!(buffer.counters().gaps_given_up, 0);
    }

    #[test]
    fn a_gap_is_given_up_after_the_wait_and_its_packet_discarded_later() {
        let mut buffer = ReorderBuffer::new(WAIT);
        let start = Instant::now();
        assert_eq!(push_all(&mut buffer, &[1, 3, 5], start), [1]);
        let mut out = Vec::new();
        buffer.poll(ms(start, 100), &mut out);
        // Both gaps became known at the same time, so both are given up together.
        assert_eq!(out, [3, 5]);
        assert_eq!(buffer.counters().gaps_given_up, 2);
        out.clear();
        buffer.push(2, 2, ms(start, 150), &mut out);
        buffer.push(5, 5, ms(start, 150), &mut out);
        assert!(out.is_empty());
        assert_eq!(buffer.counters().packets_too_late, 2);
        buffer.push(6, 6, ms(start, 160), &mut out);
        assert_eq!(out, [6]);
    }

    #[test]
    fn the_second_gap_gets_its_own_wait() {
        let mut buffer = ReorderBuffer::new(WAIT);
        let start = Instant::now();
        let mut out = Vec::new();
        buffer.push(1, 1, start, &mut out);
        buffer.push(3, 3, start, &mut out);
        buffer.push(5, 5, ms(start, 80), &mut out);
        buffer.poll(ms(start, 100), &mut out);
        assert_eq!(out, [1, 3]);
        assert_eq!(buffer.deadline(), Some(ms(start, 180)));
        buffer.push(4, 4, ms(start, 120), &mut out);
        assert_eq!(out, [1, 3, 4, 5]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut buffer = ReorderBuffer::new(WAIT);
        let start = Instant::now();
        assert_eq!(
            push_all(&mut buffer, &[65534, 65535, 1], start),
            [65534, 65535]
        );
        let mut out = Vec::new();
        buffer.push(0, 0, start, &mut out);
        assert_eq!(out, [0, 1]);
    }

    #[test]
    fn a_jump_is_a_restart_not_a_gap() {
        let mut buffer = ReorderBuffer::new(WAIT);
        let start = Instant::now();
        assert_eq!(
            push_all(&mut buffer, &[100, 102, 20000, 20001], start),
            [100, 102, 20000, 20001]
        );
        assert_eq!(buffer.counters().restarts, 1);
    }

    #[test]
    fn without_a_wait_gaps_are_lost_at_once() {
        let mut buffer = ReorderBuffer::new(Duration::ZERO);
        let start = Instant::now();
        assert_eq!(push_all(&mut buffer, &[1, 3, 2, 4], start), [1, 3, 4]);
        assert_eq!(buffer.counters().packets_too_late, 1);
    }

    #[test]
    fn a_full_buffer_gives_up_without_waiting() {
        let mut buffer = ReorderBuffer::new(WAIT);
        let start = Instant::now();
        let sequence: Vec<u16> = std::iter::once(0)
            .chain(2..=(MAX_HELD_PACKETS as u16 + 2))
            .collect();
        let out = push_all(&mut buffer, &sequence, start);
        assert_eq!(out.len(), sequence.len());
        assert!(!buffer.is_holding());
    }
}
