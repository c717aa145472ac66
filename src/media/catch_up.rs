//! The current picture at once for a consumer that arrives while nobody watched.
//!
//! Decoding stops while nobody consumes pictures (the CPU is the payload's). A camera with
//! periodic intra refresh that ignores keyframe requests, as the Spot CAM may, would then make
//! a new consumer wait for the next refresh wave to start and complete: up to two wave periods.
//! So while idle, the decoder thread keeps, undecoded, the access units a decoder needs to make
//! the current picture — those since the start of the last *complete* refresh wave (or since
//! the last IDR) — and when a consumer appears it decodes them in one burst and outputs only
//! the newest picture.
//!
//! What is kept, for a stream whose decodable starts ("start points") are IDR pictures and
//! pictures with a recovery-point SEI (H.264 D.2.8):
//! - from the newest IDR on, when it is the newest start point (an IDR is whole at once);
//! - else from the start point *before* the newest recovery point: that wave has completed
//!   (the next wave began after it), so decoding from its start gives a whole current picture;
//! - nothing across a loss (an access unit after a gap): the chain is broken until the next
//!   start point;
//! - at most `max_bytes` and [`MAX_UNITS`] access units: beyond them the oldest wave goes, and
//!   a consumer waits for the camera as before.
//!
//! The newest SPS and PPS seen are kept too (an intra-refresh camera may send them only with
//! its first IDR), and fed to the decoder ahead of the burst.
//!
//! Cost while idle: one scan of each access unit's NAL headers (SEI payload types only for SEI
//! units) and a move into a queue; the memory is at most two waves of the encoded stream
//! (about 0.5 MB at 2 Mbit/s with 1 s waves).

use std::collections::VecDeque;

use crate::media::depacketizer::{AccessUnit, nal_type};
use crate::media::h264::{annex_b_nal_units, nal_kind, sei_has_recovery_point};

/// Most access units kept (10 s at 30 fps: two long refresh waves).
pub const MAX_UNITS: usize = 300;
/// Default byte bound: two 1 s waves at 32 Mbit/s.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// What the decoder gets for a burst.
pub struct Burst {
    /// The newest SPS and PPS seen, Annex B (empty if none was seen).
    pub parameter_sets: Vec<u8>,
    /// The kept access units, oldest first; the first is a start point.
    pub units: Vec<AccessUnit>,
}

/// The access units kept while nobody consumes pictures (see the module docs).
#[derive(Debug)]
pub struct CatchUp {
    units: VecDeque<AccessUnit>,
    bytes: usize,
    /// Index in `units` of the newest start point.
    newest_start: Option<usize>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    max_bytes: usize,
}

impl CatchUp {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            units: VecDeque::new(),
            bytes: 0,
            newest_start: None,
            sps: None,
            pps: None,
            max_bytes,
        }
    }

    /// Access units kept now.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Keeps `au` (the newest access unit); `after_loss`: data was lost before it. Returns how
    /// many access units were let go for good (never to be decoded), `au` included when it is
    /// of no use.
    pub fn keep(&mut self, au: AccessUnit, after_loss: bool) -> u64 {
        let is_start = self.observe(&au);
        let mut released = 0;
        if after_loss {
            released += self.clear();
        }
        if is_start {
            released += match self.newest_start {
                // A recovery point: the wave before it has completed; keep from its start.
                Some(newest) if !au.is_idr => self.release_front(newest),
                _ => self.clear(),
            };
            self.newest_start = Some(self.units.len());
        } else if self.units.is_empty() {
            // No start point to decode from.
            return released + 1;
        }
        self.bytes += au.data.len();
        self.units.push_back(au);
        while self.bytes > self.max_bytes || self.units.len() > MAX_UNITS {
            released += match self.newest_start {
                Some(newest) if newest > 0 => self.release_front(newest),
                _ => self.clear(),
            };
        }
        released
    }

    /// Takes everything kept, for a burst; the buffer is empty afterwards (the parameter sets
    /// stay known).
    pub fn take(&mut self) -> Burst {
        let mut parameter_sets = Vec::new();
        for unit in [&self.sps, &self.pps].into_iter().flatten() {
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(unit);
        }
        self.bytes = 0;
        self.newest_start = None;
        Burst {
            parameter_sets,
            units: self.units.drain(..).collect(),
        }
    }

    /// Lets everything kept go; returns how many access units that was.
    pub fn clear(&mut self) -> u64 {
        let released = self.units.len() as u64;
        self.units.clear();
        self.bytes = 0;
        self.newest_start = None;
        released
    }

    /// Lets the first `count` access units go (the new front is a start point).
    fn release_front(&mut self, count: usize) -> u64 {
        let count = count.min(self.units.len());
        for unit in self.units.drain(..count) {
            self.bytes -= unit.data.len();
        }
        self.newest_start = self.newest_start.map(|n| n - count);
        count as u64
    }

    /// Remembers the parameter sets of `au`; whether it is a start point.
    fn observe(&mut self, au: &AccessUnit) -> bool {
        let mut recovery_point = false;
        for nal in annex_b_nal_units(&au.data) {
            match nal_kind(nal) {
                nal_type::SPS if self.sps.as_deref() != Some(nal) => self.sps = Some(nal.to_vec()),
                nal_type::PPS if self.pps.as_deref() != Some(nal) => self.pps = Some(nal.to_vec()),
                nal_type::SEI => recovery_point |= sei_has_recovery_point(nal),
                // The first slice: SEI and parameter sets come before it.
                nal_type::NON_IDR_SLICE | nal_type::IDR_SLICE => break,
                _ => {}
            }
        }
        au.is_idr || recovery_point
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A slice access unit: an SEI recovery point in front when `recovery`.
    fn unit(number: u8, is_idr: bool, recovery: bool) -> AccessUnit {
        let mut data = Vec::new();
        if is_idr {
            data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0, 0x1e]); // SPS
            data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]); // PPS
        }
        if recovery {
            // SEI: payload type 6, size 2, recovery_frame_cnt etc., trailing bits.
            data.extend_from_slice(&[0, 0, 0, 1, 0x06, 0x06, 0x02, 0x9c, 0x80, 0x80]);
        }
        let header = if is_idr { 0x65 } else { 0x41 };
        data.extend_from_slice(&[0, 0, 0, 1, header, 0x88, number]);
        AccessUnit {
            data,
            rtp_timestamp: u32::from(number) * 3000,
            first_arrival: Instant::now(),
            is_idr,
            after_gap: false,
        }
    }

    fn numbers(catch_up: &mut CatchUp) -> Vec<u8> {
        catch_up
            .take()
            .units
            .iter()
            .map(|u| *u.data.last().expect("byte"))
            .collect()
    }

    #[test]
    fn keeps_from_the_newest_idr() {
        let mut c = CatchUp::new(DEFAULT_MAX_BYTES);
        assert_eq!(c.keep(unit(0, false, false), false), 1, "no start yet");
        assert_eq!(c.keep(unit(1, true, false), false), 0);
        assert_eq!(c.keep(unit(2, false, false), false), 0);
        assert_eq!(c.keep(unit(3, true, false), false), 2);
        c.keep(unit(4, false, false), false);
        let burst = c.take();
        assert!(burst.parameter_sets.starts_with(&[0, 0, 0, 1, 0x67]));
        assert_eq!(burst.units.len(), 2);
    }

    #[test]
    fn keeps_the_last_complete_refresh_wave_and_what_followed() {
        let mut c = CatchUp::new(DEFAULT_MAX_BYTES);
        c.keep(unit(0, true, false), false);
        for n in 1..4 {
            c.keep(unit(n, false, false), false);
        }
        // Wave 1 starts: the IDR's frames stay (wave 1 is not complete yet).
        assert_eq!(c.keep(unit(4, false, true), false), 0);
        c.keep(unit(5, false, false), false);
        // Wave 2 starts: wave 1 has completed; what came before it goes.
        assert_eq!(c.keep(unit(8, false, true), false), 4);
        c.keep(unit(9, false, false), false);
        assert_eq!(numbers(&mut c), vec![4, 5, 8, 9]);
        assert!(c.is_empty());
    }

    #[test]
    fn a_loss_breaks_the_chain_until_the_next_start() {
        let mut c = CatchUp::new(DEFAULT_MAX_BYTES);
        c.keep(unit(0, false, true), false);
        c.keep(unit(1, false, false), false);
        assert_eq!(
            c.keep(unit(2, false, false), true),
            3,
            "kept and the new one"
        );
        assert!(c.is_empty());
        assert_eq!(c.keep(unit(3, false, true), true), 0);
        assert_eq!(numbers(&mut c), vec![3]);
    }

    #[test]
    fn the_byte_bound_lets_the_oldest_wave_go() {
        let size = unit(0, false, true).data.len() + unit(1, false, false).data.len();
        let mut c = CatchUp::new(size * 2);
        c.keep(unit(0, false, true), false);
        c.keep(unit(1, false, false), false);
        c.keep(unit(2, false, true), false);
        assert_eq!(c.keep(unit(3, false, false), false), 0);
        // A fifth unit is past the bound: the first wave goes.
        assert_eq!(c.keep(unit(4, false, false), false), 2);
        assert_eq!(numbers(&mut c), vec![2, 3, 4]);
    }
}
