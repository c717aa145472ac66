//! RTP H.264 payloads (RFC 6184) → Annex-B access units.
//!
//! Emits an access unit on the marker bit, without waiting for the next frame. Tracks sequence
//! numbers: a frame with a gap is dropped whole and a keyframe is asked for. Until SPS and PPS
//! are known and a frame can be decoded from scratch (an IDR, or any frame once
//! `keyframe_wait` has passed, for intra-refresh streams that never send another IDR), frames
//! are dropped, because a decoder handed a slice without its parameter sets fails with
//! "non-existing PPS 0 referenced".
//!
//! Written here rather than taken from `rtc::rtp::codec::h264::H264Packet`, which panics on a
//! STAP-A whose last length field is truncated and reassembles FU-A fragments whose start was
//! lost. The camera's packets are untrusted input: this parser never panics (see the fuzz
//! target `depacketize`).

use std::time::{Duration, Instant};

/// NAL unit types this module cares about (ITU-T H.264 table 7-1).
pub mod nal_type {
    pub const NON_IDR_SLICE: u8 = 1;
    pub const IDR_SLICE: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    /// RFC 6184 aggregation and fragmentation packet types.
    pub const STAP_A: u8 = 24;
    pub const FU_A: u8 = 28;
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Default largest access unit (Annex-B bytes): a 4K IDR at a high bitrate stays well below.
pub const DEFAULT_MAX_ACCESS_UNIT_BYTES: usize = 8 * 1024 * 1024;
/// RFC 3550 appendix A.1: a forward jump up to this many packets is loss; a larger one, or a
/// step back of more than [`MAX_MISORDER`], is a new sequence once two packets follow it in
/// order.
const MAX_DROPOUT: u16 = 3000;
/// A packet up to this many behind the expected one is late (or a duplicate) and dropped.
const MAX_MISORDER: u16 = 100;

/// The RTP header fields the depacketizer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpInfo {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
}

/// One complete, decodable H.264 access unit in Annex-B form.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// NAL units, each behind a 4-byte start code. Parameter sets are prepended to IDR frames
    /// that arrived without them.
    pub data: Vec<u8>,
    /// RTP timestamp (90 kHz clock).
    pub rtp_timestamp: u32,
    /// When the frame's first RTP packet arrived.
    pub first_arrival: Instant,
    /// The frame holds an IDR slice.
    pub is_idr: bool,
    /// The frame follows dropped data: the decoder's references may be missing.
    pub after_gap: bool,
}

/// Counters kept by the depacketizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepacketizerCounters {
    pub packets: u64,
    pub packets_lost: u64,
    pub packets_malformed: u64,
    pub frames_emitted: u64,
    /// Frames dropped because a packet was lost or malformed.
    pub frames_incomplete: u64,
    /// Frames dropped while waiting for SPS/PPS and a decodable starting frame.
    pub frames_waiting_for_keyframe: u64,
    /// Frames dropped because they grew past the largest access unit accepted.
    pub frames_oversized: u64,
    /// Times the sender's sequence numbers jumped and the depacketizer followed them.
    pub sequence_resyncs: u64,
    /// Packets dropped as late or duplicate, or as strays after a sequence jump.
    pub packets_discarded: u64,
}

/// RTP → access-unit assembler for one video stream.
pub struct Depacketizer {
    keyframe_wait: Duration,
    max_access_unit_bytes: usize,
    expected_sequence: Option<u16>,
    /// After a jump: the sequence number that confirms the new sequence if it comes next.
    resync_candidate: Option<u16>,
    current: Option<Frame>,
    fragment: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// Set once a frame could be emitted; cleared by [`Depacketizer::reset`].
    started: bool,
    /// When parameter sets became known while no IDR had arrived yet.
    waiting_since: Option<Instant>,
    gap_pending: bool,
    keyframe_wanted: bool,
    counters: DepacketizerCounters,
}

struct Frame {
    timestamp: u32,
    first_arrival: Instant,
    data: Vec<u8>,
    damaged: bool,
    has_idr: bool,
    has_sps: bool,
    has_pps: bool,
    has_slice: bool,
    /// Grew past the largest access unit accepted; its data is dropped.
    oversized: bool,
}

impl Depacketizer {
    /// `keyframe_wait`: how long to wait for an IDR once SPS/PPS are known before starting on
    /// whatever frame comes (streams with intra refresh and no periodic IDR).
    pub fn new(keyframe_wait: Duration) -> Self {
        Self {
            keyframe_wait,
            max_access_unit_bytes: DEFAULT_MAX_ACCESS_UNIT_BYTES,
            expected_sequence: None,
            resync_candidate: None,
            current: None,
            fragment: None,
            sps: None,
            pps: None,
            started: false,
            waiting_since: None,
            gap_pending: false,
            keyframe_wanted: true,
            counters: DepacketizerCounters::default(),
        }
    }

    /// Access units larger than `bytes` are dropped (counted in `frames_oversized`) and a
    /// keyframe is asked for; the default is [`DEFAULT_MAX_ACCESS_UNIT_BYTES`].
    pub fn with_max_access_unit_bytes(mut self, bytes: usize) -> Self {
        self.max_access_unit_bytes = bytes;
        self
    }

    /// Forgets the stream (new peer connection): waits for parameter sets and a keyframe again.
    pub fn reset(&mut self) {
        *self =
            Self::new(self.keyframe_wait).with_max_access_unit_bytes(self.max_access_unit_bytes);
    }

    /// Counters since creation or the last reset.
    pub fn counters(&self) -> DepacketizerCounters {
        self.counters
    }

    /// True once since the last call when a keyframe should be requested (at start and after
    /// loss). The caller rate-limits the actual PLI.
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// The last SPS and PPS seen (without start codes), for containers that need them.
    pub fn parameter_sets(&self) -> Option<(&[u8], &[u8])> {
        Some((self.sps.as_deref()?, self.pps.as_deref()?))
    }

    /// Feeds one RTP packet. Returns an access unit when this packet completed one.
    pub fn push(&mut self, rtp: RtpInfo, payload: &[u8], arrival: Instant) -> Option<AccessUnit> {
        self.counters.packets += 1;
        let mut emitted = None;

        if !self.accept_sequence(rtp.sequence_number) {
            self.counters.packets_discarded += 1;
            return None;
        }

        if let Some(frame) = &self.current
            && frame.timestamp != rtp.timestamp
        {
            // The previous frame never saw its marker bit: its last packet was lost.
            self.abandon_current();
        }
        let frame = self.current.get_or_insert_with(|| Frame {
            timestamp: rtp.timestamp,
            first_arrival: arrival,
            data: Vec::with_capacity(payload.len() * 8),
            damaged: false,
            has_idr: false,
            has_sps: false,
            has_pps: false,
            has_slice: false,
            oversized: false,
        });

        let fragment_len = self.fragment.as_ref().map_or(0, Vec::len);
        if frame.oversized {
            // Already given up: nothing more of this frame is kept.
        } else if frame.data.len() + fragment_len + payload.len() > self.max_access_unit_bytes {
            frame.oversized = true;
            frame.damaged = true;
            frame.data = Vec::new();
            self.fragment = None;
        } else if parse_payload(
            payload,
            &mut self.fragment,
            frame,
            &mut self.sps,
            &mut self.pps,
        )
        .is_err()
        {
            self.counters.packets_malformed += 1;
            frame.damaged = true;
        }

        if rtp.marker
            && let Some(frame) = self.current.take()
        {
            self.fragment = None;
            emitted = self.finish(frame);
        }
        emitted
    }

    /// RFC 3550 appendix A.1 sequence tracking: whether the packet is taken (in order, or after
    /// a counted loss, or the second of a new sequence after a jump) or dropped (late,
    /// duplicate, or the first after a jump).
    fn accept_sequence(&mut self, sequence: u16) -> bool {
        let Some(expected) = self.expected_sequence else {
            self.expected_sequence = Some(sequence.wrapping_add(1));
            return true;
        };
        let distance = sequence.wrapping_sub(expected);
        if distance < MAX_DROPOUT {
            if distance > 0 {
                self.counters.packets_lost += u64::from(distance);
                self.mark_gap();
            }
        } else if distance >= MAX_MISORDER.wrapping_neg() {
            // Late or duplicate: its frame was already given up or emitted.
            return false;
        } else if self.resync_candidate == Some(sequence) {
            // Two packets in order after a jump: the sender restarted its sequence.
            self.counters.sequence_resyncs += 1;
            self.abandon_current();
        } else {
            self.resync_candidate = Some(sequence.wrapping_add(1));
            return false;
        }
        self.resync_candidate = None;
        self.expected_sequence = Some(sequence.wrapping_add(1));
        true
    }

    /// Drops the frame being assembled (counted) and marks the gap.
    fn abandon_current(&mut self) {
        let frame = self.current.take();
        self.give_up(frame);
    }

    /// Counts a frame given up on (oversized, or incomplete) and marks the gap.
    fn give_up(&mut self, frame: Option<Frame>) {
        if let Some(frame) = frame {
            if frame.oversized {
                self.counters.frames_oversized += 1;
            } else {
                self.counters.frames_incomplete += 1;
            }
        }
        self.mark_gap();
    }

    fn mark_gap(&mut self) {
        if let Some(frame) = &mut self.current {
            frame.damaged = true;
        }
        self.fragment = None;
        self.gap_pending = true;
        self.keyframe_wanted = true;
    }

    fn finish(&mut self, frame: Frame) -> Option<AccessUnit> {
        if frame.damaged {
            self.give_up(Some(frame));
            return None;
        }
        if !frame.has_slice {
            // Parameter sets or SEI alone: remembered, nothing to decode.
            return None;
        }
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            self.counters.frames_waiting_for_keyframe += 1;
            self.keyframe_wanted = true;
            return None;
        };
        if !self.started {
            let waited_long_enough = match self.waiting_since {
                Some(since) => frame.first_arrival.duration_since(since) >= self.keyframe_wait,
                None => {
                    self.waiting_since = Some(frame.first_arrival);
                    false
                }
            };
            if !frame.has_idr && !waited_long_enough {
                self.counters.frames_waiting_for_keyframe += 1;
                return None;
            }
            self.started = true;
        }

        let mut data = frame.data;
        if frame.has_idr && !(frame.has_sps && frame.has_pps) {
            let mut with_parameters = Vec::with_capacity(sps.len() + pps.len() + 8 + data.len());
            for nal in [sps, pps] {
                with_parameters.extend_from_slice(&START_CODE);
                with_parameters.extend_from_slice(nal);
            }
            with_parameters.extend_from_slice(&data);
            data = with_parameters;
        }
        let after_gap = std::mem::take(&mut self.gap_pending) && !frame.has_idr;
        self.counters.frames_emitted += 1;
        Some(AccessUnit {
            data,
            rtp_timestamp: frame.timestamp,
            first_arrival: frame.first_arrival,
            is_idr: frame.has_idr,
            after_gap,
        })
    }
}

/// The payload does not follow RFC 6184.
#[derive(Debug)]
struct Malformed;

fn add_nal(frame: &mut Frame, nal: &[u8], sps: &mut Option<Vec<u8>>, pps: &mut Option<Vec<u8>>) {
    let Some(&header) = nal.first() else {
        return;
    };
    match header & 0x1F {
        nal_type::SPS => {
            frame.has_sps = true;
            *sps = Some(nal.to_vec());
        }
        nal_type::PPS => {
            frame.has_pps = true;
            *pps = Some(nal.to_vec());
        }
        nal_type::IDR_SLICE => {
            frame.has_idr = true;
            frame.has_slice = true;
        }
        1..=4 => frame.has_slice = true,
        _ => {}
    }
    frame.data.extend_from_slice(&START_CODE);
    frame.data.extend_from_slice(nal);
}

fn parse_payload(
    payload: &[u8],
    fragment: &mut Option<Vec<u8>>,
    frame: &mut Frame,
    sps: &mut Option<Vec<u8>>,
    pps: &mut Option<Vec<u8>>,
) -> Result<(), Malformed> {
    let (&indicator, rest) = payload.split_first().ok_or(Malformed)?;
    if indicator & 0x80 != 0 {
        // forbidden_zero_bit set.
        return Err(Malformed);
    }
    match indicator & 0x1F {
        1..=23 => {
            add_nal(frame, payload, sps, pps);
            Ok(())
        }
        nal_type::STAP_A => {
            let mut rest = rest;
            while !rest.is_empty() {
                let (size, tail) = rest.split_at_checked(2).ok_or(Malformed)?;
                let size = usize::from(u16::from_be_bytes([size[0], size[1]]));
                let (nal, tail) = tail.split_at_checked(size).ok_or(Malformed)?;
                if nal.is_empty() {
                    return Err(Malformed);
                }
                add_nal(frame, nal, sps, pps);
                rest = tail;
            }
            Ok(())
        }
        nal_type::FU_A => {
            let (&fu_header, body) = rest.split_first().ok_or(Malformed)?;
            let start = fu_header & 0x80 != 0;
            let end = fu_header & 0x40 != 0;
            let reconstructed_header = (indicator & 0xE0) | (fu_header & 0x1F);
            if start {
                let mut nal = Vec::with_capacity(body.len() * 16);
                nal.push(reconstructed_header);
                nal.extend_from_slice(body);
                *fragment = Some(nal);
            } else {
                // A middle or end fragment without its start cannot be rebuilt.
                fragment.as_mut().ok_or(Malformed)?.extend_from_slice(body);
            }
            if end && let Some(nal) = fragment.take() {
                add_nal(frame, &nal, sps, pps);
            }
            Ok(())
        }
        _ => Err(Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xE0, 0x1F, 0xAA];
    const PPS: &[u8] = &[0x68, 0xCE, 0x38, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    const P: &[u8] = &[0x41, 0x9A, 0x02, 0x04];

    fn rtp(seq: u16, ts: u32, marker: bool) -> RtpInfo {
        RtpInfo {
            sequence_number: seq,
            timestamp: ts,
            marker,
        }
    }

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x78];
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    fn fu_a(nal: &[u8], pieces: usize) -> Vec<Vec<u8>> {
        let body = &nal[1..];
        let chunk = body.len().div_ceil(pieces);
        let chunks: Vec<&[u8]> = body.chunks(chunk).collect();
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut fu_header = nal[0] & 0x1F;
                if i == 0 {
                    fu_header |= 0x80;
                }
                if i == last {
                    fu_header |= 0x40;
                }
                let mut p = vec![(nal[0] & 0xE0) | 28, fu_header];
                p.extend_from_slice(c);
                p
            })
            .collect()
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| START_CODE.iter().chain(n.iter()).copied())
            .collect()
    }

    #[test]
    fn emits_on_marker_and_reassembles_fu_a() {
        let mut d = Depacketizer::new(Duration::from_secs(2));
        let now = Instant::now();
        assert!(d.take_keyframe_request());
        assert!(
            d.push(rtp(1, 0, false), &stap_a(&[SPS, PPS]), now)
                .is_none()
        );
        let big_idr: Vec<u8> = IDR.iter().copied().cycle().take(100).collect();
        let pieces = fu_a(&big_idr, 3);
        assert!(d.push(rtp(2, 0, false), &pieces[0], now).is_none());
        assert!(d.push(rtp(3, 0, false), &pieces[1], now).is_none());
        let au = d.push(rtp(4, 0, true), &pieces[2], now).expect("frame");
        assert!(au.is_idr && !au.after_gap);
        assert_eq!(au.data, annexb(&[SPS, PPS, &big_idr]));
        let p = d.push(rtp(5, 3000, true), P, now).expect("p frame");
        assert_eq!(p.data, annexb(&[P]));
        assert!(!d.take_keyframe_request());
        assert_eq!(d.counters().frames_emitted, 2);
    }

    #[test]
    fn drops_until_parameters_and_idr_then_prepends_cached_parameters() {
        let mut d = Depacketizer::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(d.push(rtp(10, 0, true), P, now).is_none());
        assert!(
            d.push(rtp(11, 1, true), IDR, now).is_none(),
            "no SPS/PPS yet"
        );
        assert!(
            d.push(rtp(12, 2, true), &stap_a(&[SPS, PPS]), now)
                .is_none()
        );
        assert!(
            d.push(rtp(13, 3, true), P, now).is_none(),
            "waits for an IDR"
        );
        let au = d.push(rtp(14, 4, true), IDR, now).expect("idr");
        assert_eq!(au.data, annexb(&[SPS, PPS, IDR]));
        assert_eq!(d.counters().frames_waiting_for_keyframe, 3);
    }

    #[test]
    fn starts_without_idr_after_keyframe_wait() {
        let mut d = Depacketizer::new(Duration::from_millis(500));
        let t0 = Instant::now();
        assert!(
            d.push(rtp(1, 0, true), &stap_a(&[SPS, PPS, P]), t0)
                .is_none()
        );
        let later = t0 + Duration::from_millis(600);
        let au = d
            .push(rtp(2, 1, true), P, later)
            .expect("intra-refresh start");
        assert!(!au.is_idr);
    }

    #[test]
    fn loss_drops_the_frame_and_asks_for_a_keyframe() {
        let mut d = Depacketizer::new(Duration::from_secs(2));
        let now = Instant::now();
        d.push(rtp(1, 0, true), &stap_a(&[SPS, PPS, IDR]), now)
            .expect("idr");
        assert!(d.take_keyframe_request());
        let pieces = fu_a(&[0x41, 1, 2, 3, 4, 5, 6, 7, 8], 3);
        assert!(d.push(rtp(2, 10, false), &pieces[0], now).is_none());
        // seq 3 lost
        assert!(d.push(rtp(4, 10, true), &pieces[2], now).is_none());
        assert!(d.take_keyframe_request());
        let next = d.push(rtp(5, 20, true), P, now).expect("next frame");
        assert!(next.after_gap);
        assert_eq!(d.counters().packets_lost, 1);
        assert_eq!(d.counters().frames_incomplete, 1);
        // A lost marker packet: the timestamp moves on.
        assert!(d.push(rtp(6, 30, false), P, now).is_none());
        let after = d
            .push(rtp(8, 40, true), P, now)
            .expect("frame after lost marker");
        assert!(after.after_gap);
        // Late duplicate is ignored.
        assert!(d.push(rtp(7, 30, true), P, now).is_none());
    }

    /// A started stream (SPS/PPS/IDR at sequence `seq`).
    fn started(seq: u16) -> Depacketizer {
        let mut d = Depacketizer::new(Duration::from_secs(2));
        d.push(rtp(seq, 0, true), &stap_a(&[SPS, PPS, IDR]), Instant::now())
            .expect("idr");
        assert!(d.take_keyframe_request());
        d
    }

    #[test]
    fn a_forward_sequence_jump_resynchronises_after_two_packets() {
        let mut d = started(100);
        let now = Instant::now();
        let jump = 100u16.wrapping_add(40_000);
        assert!(d.push(rtp(jump, 10, true), P, now).is_none(), "a stray");
        let au = d
            .push(rtp(jump.wrapping_add(1), 20, true), P, now)
            .expect("the new sequence is followed at once");
        assert!(au.after_gap);
        assert!(d.take_keyframe_request());
        let c = d.counters();
        assert_eq!(
            (c.sequence_resyncs, c.packets_discarded, c.packets_lost),
            (1, 1, 0)
        );
        assert!(
            d.push(rtp(jump.wrapping_add(2), 30, true), P, now)
                .is_some()
        );
    }

    #[test]
    fn a_sender_restarting_its_sequence_backwards_is_followed() {
        let mut d = started(30_000);
        let now = Instant::now();
        assert!(d.push(rtp(5, 10, true), P, now).is_none());
        assert!(d.push(rtp(6, 20, true), P, now).is_some());
        assert_eq!(d.counters().sequence_resyncs, 1);
    }

    #[test]
    fn one_stray_packet_does_not_move_the_sequence() {
        let mut d = started(1000);
        let now = Instant::now();
        assert!(d.push(rtp(50_000, 10, true), P, now).is_none());
        assert!(d.push(rtp(1001, 20, true), P, now).is_some());
        assert_eq!(d.counters().sequence_resyncs, 0);
        assert_eq!(d.counters().packets_discarded, 1);
    }

    #[test]
    fn an_access_unit_past_the_limit_is_dropped_counted_and_a_keyframe_asked_for() {
        let mut d = Depacketizer::new(Duration::from_secs(2)).with_max_access_unit_bytes(4096);
        let now = Instant::now();
        d.push(rtp(1, 0, true), &stap_a(&[SPS, PPS, IDR]), now)
            .expect("idr");
        assert!(d.take_keyframe_request());
        let slice: Vec<u8> = std::iter::once(0x41)
            .chain(std::iter::repeat_n(7, 1199))
            .collect();
        // No marker bit: the frame would grow without end.
        for seq in 2..2000u16 {
            assert!(d.push(rtp(seq, 10, false), &slice, now).is_none());
            let held = d.current.as_ref().map_or(0, |f| f.data.capacity());
            assert!(held <= 4096 + slice.len() * 8, "{held} bytes held");
        }
        assert!(d.push(rtp(2000, 10, true), &slice, now).is_none());
        assert_eq!(d.counters().frames_oversized, 1);
        assert!(d.take_keyframe_request());
        let next = d.push(rtp(2001, 20, true), P, now).expect("the next frame");
        assert!(next.after_gap);
    }

    #[test]
    fn malformed_payloads_never_panic() {
        let mut d = Depacketizer::new(Duration::from_secs(2));
        let now = Instant::now();
        let cases: [&[u8]; 7] = [
            &[],
            &[0x78, 0x00, 0x01, 0xAA, 0x00],
            &[0x78, 0x00, 0x09, 0x65],
            &[0x7C],
            &[0x7C, 0x05, 0x01],
            &[0x9F, 0x00],
            &[0x1E, 0x00],
        ];
        for (i, case) in cases.iter().enumerate() {
            assert!(d.push(rtp(i as u16, 0, true), case, now).is_none());
        }
        assert_eq!(d.counters().packets_malformed, 7);
    }
}
