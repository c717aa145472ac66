//! Harness of the `depacketize` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): RTP H.264 packets into the depacketizer with
//! realistic payload sizes, advancing arrival times, and occasional `reset()` and
//! `take_keyframe_request()` calls.
//!
//! Input: a 3-byte header, then records.
//! - header: `keyframe_wait` in units of 10 ms (u8); the largest access unit (u16 BE, 0 = the
//!   default, else the value times 16 bytes).
//! - record: sequence number (u16 BE), timestamp step in 1500 ticks (u8), flags (u8: bit 0
//!   marker, bit 1 `reset()` before the packet, bit 2 `take_keyframe_request()` after it, bit 3
//!   the timestamp step is shifted left by 24 bits: a jump), arrival advance in ms (u8), payload
//!   length (u16 BE, at most [`MAX_PAYLOAD_BYTES`] and what is left), payload.
//!
//! Properties checked on every packet:
//! - an access unit starts with a 4-byte start code;
//! - it holds no more bytes than the packets since the previous access unit (or reset) can
//!   produce, [`output_allowance`] each, plus, for an IDR, the cached SPS and PPS with their
//!   start codes (the depacketizer prepends them);
//! - it is no larger than the limit plus what the last packet can add past the check;
//! - after a loss, a sequence resync, an oversized or incomplete frame, or a reset,
//!   `take_keyframe_request()` answers true;
//! - `packets` and `frames_emitted` count every push and every access unit since the reset.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use spot_ptz_stream::media::depacketizer::{
    AccessUnit, DEFAULT_MAX_ACCESS_UNIT_BYTES, Depacketizer, RtpInfo,
};

/// Largest payload a record carries: a typical path MTU less the IP/UDP/RTP/SRTP headers.
pub const MAX_PAYLOAD_BYTES: usize = 1500;
const HEADER_BYTES: usize = 3;
const RECORD_HEADER_BYTES: usize = 7;
const START_CODE_BYTES: usize = 4;

/// How the depacketizer is set up.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub keyframe_wait: Duration,
    pub max_access_unit_bytes: usize,
}

/// One packet and what the harness does around it.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub rtp: RtpInfo,
    pub payload: &'a [u8],
    /// How much later than the previous packet it arrives.
    pub arrival_advance: Duration,
    pub reset_before: bool,
    pub take_keyframe_request_after: bool,
}

/// Splits fuzz input into the configuration and the packets (a trailing partial record is
/// ignored).
pub fn parse(data: &[u8]) -> (Config, Vec<Packet<'_>>) {
    let (header, mut rest) = data.split_at(data.len().min(HEADER_BYTES));
    let byte = |i: usize| header.get(i).copied().unwrap_or(0);
    let limit_units = usize::from(u16::from_be_bytes([byte(1), byte(2)]));
    let config = Config {
        keyframe_wait: Duration::from_millis(u64::from(byte(0)) * 10),
        max_access_unit_bytes: if limit_units == 0 {
            DEFAULT_MAX_ACCESS_UNIT_BYTES
        } else {
            limit_units * 16
        },
    };
    let mut packets = Vec::new();
    let mut timestamp = 0u32;
    while rest.len() >= RECORD_HEADER_BYTES {
        let sequence_number = u16::from_be_bytes([rest[0], rest[1]]);
        let flags = rest[3];
        let step = u32::from(rest[2]);
        let step = if flags & 8 != 0 {
            step << 24
        } else {
            step * 1500
        };
        timestamp = timestamp.wrapping_add(step);
        let arrival_advance = Duration::from_millis(u64::from(rest[4]));
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]]))
            .min(MAX_PAYLOAD_BYTES)
            .min(rest.len() - RECORD_HEADER_BYTES);
        let payload = &rest[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len];
        rest = &rest[RECORD_HEADER_BYTES + len..];
        packets.push(Packet {
            rtp: RtpInfo {
                sequence_number,
                timestamp,
                marker: flags & 1 != 0,
            },
            payload,
            arrival_advance,
            reset_before: flags & 2 != 0,
            take_keyframe_request_after: flags & 4 != 0,
        });
    }
    (config, packets)
}

/// The inverse of [`parse`] for one record (`timestamp_step` in units of 1500 ticks), for
/// writing seeds and regression inputs.
pub fn encode_record(out: &mut Vec<u8>, packet: &Packet<'_>, timestamp_step: u8) {
    out.extend_from_slice(&packet.rtp.sequence_number.to_be_bytes());
    out.push(timestamp_step);
    let flags = u8::from(packet.rtp.marker)
        | u8::from(packet.reset_before) << 1
        | u8::from(packet.take_keyframe_request_after) << 2;
    out.push(flags);
    out.push(u8::try_from(packet.arrival_advance.as_millis()).unwrap_or(u8::MAX));
    let len = u16::try_from(packet.payload.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet.payload);
}

/// The most Annex-B bytes one payload can add to an access unit, from the depacketizer's
/// parser (RFC 6184):
/// - a single NAL unit (types 1–23): the payload behind a 4-byte start code, `len + 4`;
/// - STAP-A: `k` NAL units of at least one byte, each with a 2-byte size, behind the 1-byte
///   indicator: `k <= (len - 1) / 3`, and the output is `(len - 1 - 2k) + 4k = len - 1 + 2k`;
/// - FU-A: the NAL unit rebuilt from `m` fragments is `1 + sum(len_i - 2)` bytes plus its start
///   code, i.e. `sum(len_i) - 2m + 5`: `len + 3` for the start fragment, `len - 2` for others;
/// - anything else (empty, forbidden bit, types 0 and 25–27, 29–31): nothing.
pub fn output_allowance(payload: &[u8]) -> usize {
    let Some(&indicator) = payload.first() else {
        return 0;
    };
    let len = payload.len();
    if indicator & 0x80 != 0 {
        return 0;
    }
    match indicator & 0x1F {
        1..=23 => len + START_CODE_BYTES,
        24 => len - 1 + 2 * ((len - 1) / 3),
        28 => match payload.get(1) {
            Some(fu_header) if fu_header & 0x80 != 0 => len + 3,
            _ => len.saturating_sub(2),
        },
        _ => 0,
    }
}

/// The most one payload can add past the size check (which compares the bytes held, the
/// pending fragment and the payload length with the limit): `output_allowance - len`, or for
/// FU-A 3 (an end fragment adds its start code and the header byte, less its own 2-byte
/// header, to the fragment already counted; a fragment that is both start and end adds 3).
fn overshoot(payload: &[u8]) -> usize {
    let fu_a = payload.first().is_some_and(|b| b & 0x1F == 28);
    if fu_a {
        3
    } else {
        output_allowance(payload).saturating_sub(payload.len())
    }
}

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    pub access_units: u64,
    pub access_unit_bytes: u64,
    pub keyframe_requests_answered_true: u64,
    /// Packet index (from 0) of the last access unit.
    pub last_access_unit_at: Option<usize>,
}

/// A depacketizer with the property checks around it.
pub struct Harness {
    config: Config,
    depacketizer: Depacketizer,
    now: Instant,
    /// Output the packets since the last access unit or reset may produce.
    allowance_bytes: usize,
    /// The largest overshoot of those packets.
    overshoot_bytes: usize,
    pushes_since_reset: u64,
    access_units_since_reset: u64,
    /// Losses, resyncs and dropped frames seen at the last `take_keyframe_request`.
    gap_events_at_take: u64,
    request_expected: bool,
    packets_seen: usize,
    pub outcome: Outcome,
}

impl Harness {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            depacketizer: new_depacketizer(config),
            now: Instant::now(),
            allowance_bytes: 0,
            overshoot_bytes: 0,
            pushes_since_reset: 0,
            access_units_since_reset: 0,
            gap_events_at_take: 0,
            request_expected: true,
            packets_seen: 0,
            outcome: Outcome::default(),
        }
    }

    pub fn depacketizer(&self) -> &Depacketizer {
        &self.depacketizer
    }

    fn gap_events(&self) -> u64 {
        let c = self.depacketizer.counters();
        c.packets_lost + c.sequence_resyncs + c.frames_oversized + c.frames_incomplete
    }

    /// Feeds one packet and checks the properties; returns the access unit it completed.
    pub fn push(&mut self, packet: &Packet<'_>) -> Option<AccessUnit> {
        if packet.reset_before {
            self.depacketizer.reset();
            self.allowance_bytes = 0;
            self.overshoot_bytes = 0;
            self.pushes_since_reset = 0;
            self.access_units_since_reset = 0;
            self.gap_events_at_take = 0;
            self.request_expected = true;
        }
        self.now += packet.arrival_advance;
        self.allowance_bytes += output_allowance(packet.payload);
        self.overshoot_bytes = self.overshoot_bytes.max(overshoot(packet.payload));
        let access_unit = self.depacketizer.push(packet.rtp, packet.payload, self.now);
        self.pushes_since_reset += 1;
        if let Some(au) = &access_unit {
            self.check_access_unit(au);
        }
        if self.gap_events() > self.gap_events_at_take {
            self.request_expected = true;
        }
        if packet.take_keyframe_request_after {
            let requested = self.depacketizer.take_keyframe_request();
            assert!(
                requested || !self.request_expected,
                "no keyframe request after a gap or reset: {:?}",
                self.depacketizer.counters()
            );
            self.outcome.keyframe_requests_answered_true += u64::from(requested);
            self.request_expected = false;
            self.gap_events_at_take = self.gap_events();
        }
        let counters = self.depacketizer.counters();
        assert_eq!(counters.packets, self.pushes_since_reset);
        assert_eq!(counters.frames_emitted, self.access_units_since_reset);
        self.packets_seen += 1;
        access_unit
    }

    fn check_access_unit(&mut self, au: &AccessUnit) {
        assert!(au.data.starts_with(&[0, 0, 0, 1]), "not Annex-B");
        let prepended = match (au.is_idr, self.depacketizer.parameter_sets()) {
            (true, Some((sps, pps))) => sps.len() + pps.len() + 2 * START_CODE_BYTES,
            _ => 0,
        };
        assert!(
            au.data.len() <= self.allowance_bytes + prepended,
            "{} bytes out of packets allowing {} (+{prepended} for parameter sets)",
            au.data.len(),
            self.allowance_bytes
        );
        assert!(
            au.data.len() <= self.config.max_access_unit_bytes + self.overshoot_bytes + prepended,
            "{} bytes past the limit of {}",
            au.data.len(),
            self.config.max_access_unit_bytes
        );
        self.allowance_bytes = 0;
        self.overshoot_bytes = 0;
        self.access_units_since_reset += 1;
        self.outcome.access_units += 1;
        self.outcome.access_unit_bytes += au.data.len() as u64;
        self.outcome.last_access_unit_at = Some(self.packets_seen);
    }
}

fn new_depacketizer(config: Config) -> Depacketizer {
    Depacketizer::new(config.keyframe_wait).with_max_access_unit_bytes(config.max_access_unit_bytes)
}

/// The fuzz target's body.
pub fn run(data: &[u8]) -> Harness {
    let (config, packets) = parse(data);
    let mut harness = Harness::new(config);
    for packet in &packets {
        harness.push(packet);
    }
    harness
}
