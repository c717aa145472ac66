//! The camera's H.264, passed through without decoding: one [`EncodedFrame`] per access unit,
//! ready for `image_raw/ffmpeg` (ffmpeg_image_transport) and `image_raw/foxglove` (Foxglove's
//! CompressedVideo).
//!
//! What consumers need, and what [`Passthrough`] guarantees:
//! - Annex B, one access unit per message (the depacketizer's output already is);
//! - a keyframe carries its SPS and PPS in front, so a subscriber that joins there can start
//!   decoding from that message alone. Keyframes are IDR pictures and, for a camera with
//!   periodic intra refresh (which sends no IDR after its first), the pictures that carry a
//!   recovery-point SEI: a decoder starting there has a whole picture one refresh wave later;
//! - a presentation time on the RTP clock (90 kHz), extended to 64 bits across wraps;
//! - the picture size, from the SPS.
//!
//! Access units before the first SPS and PPS are not passed on: nobody could decode them.

use std::time::Instant;

use crate::media::depacketizer::{AccessUnit, nal_type as nal};
use crate::media::h264::{self, annex_b_nal_units, nal_kind};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// One access unit for a passthrough consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex B NAL units; a keyframe starts with its SPS and PPS.
    pub data: Vec<u8>,
    /// An IDR picture or a recovery point: decoding may start here.
    pub keyframe: bool,
    /// An IDR picture (Foxglove starts only at these).
    pub is_idr: bool,
    /// RTP timestamp (90 kHz) extended to 64 bits.
    pub pts_90khz: u64,
    pub width: u32,
    pub height: u32,
    /// When the frame's first RTP packet arrived (the picture's stamp, as for `image_raw`).
    pub first_arrival: Instant,
}

/// Turns access units into [`EncodedFrame`]s; one per stream (see the module docs).
#[derive(Debug, Default)]
pub struct Passthrough {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    size: Option<(u32, u32)>,
    last_timestamp: Option<u32>,
    pts_90khz: u64,
}

impl Passthrough {
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame for `au`, or `None` while no SPS and PPS have been seen.
    pub fn frame(&mut self, au: &AccessUnit) -> Option<EncodedFrame> {
        let mut has_sps = false;
        let mut has_pps = false;
        let mut recovery_point = false;
        for unit in annex_b_nal_units(&au.data) {
            match nal_kind(unit) {
                nal::SPS => {
                    has_sps = true;
                    if let Ok(info) = h264::parse_sps(unit) {
                        self.size = Some((info.width, info.height));
                    }
                    if self.sps.as_deref() != Some(unit) {
                        self.sps = Some(unit.to_vec());
                    }
                }
                nal::PPS => {
                    has_pps = true;
                    if self.pps.as_deref() != Some(unit) {
                        self.pps = Some(unit.to_vec());
                    }
                }
                nal::SEI => recovery_point |= h264::sei_has_recovery_point(unit),
                _ => {}
            }
        }
        let pts_90khz = self.extend_timestamp(au.rtp_timestamp);
        let (sps, pps, (width, height)) = (self.sps.as_ref()?, self.pps.as_ref()?, self.size?);
        let keyframe = au.is_idr || recovery_point;
        let data = if keyframe && !(has_sps && has_pps) {
            let mut data =
                Vec::with_capacity(2 * START_CODE.len() + sps.len() + pps.len() + au.data.len());
            for unit in [sps, pps] {
                data.extend_from_slice(&START_CODE);
                data.extend_from_slice(unit);
            }
            data.extend_from_slice(&au.data);
            data
        } else {
            au.data.clone()
        };
        Some(EncodedFrame {
            data,
            keyframe,
            is_idr: au.is_idr,
            pts_90khz,
            width,
            height,
            first_arrival: au.first_arrival,
        })
    }

    /// Extends a 32-bit RTP timestamp: steps of less than half the range count as forward or
    /// backward, so a wrap moves on instead of jumping back 13 hours.
    fn extend_timestamp(&mut self, timestamp: u32) -> u64 {
        match self.last_timestamp {
            None => self.pts_90khz = u64::from(timestamp),
            Some(last) => {
                let step = timestamp.wrapping_sub(last) as i32;
                self.pts_90khz = self.pts_90khz.saturating_add_signed(i64::from(step));
            }
        }
        self.last_timestamp = Some(timestamp);
        self.pts_90khz
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::media::test_stream;

    /// SPS, PPS and the IDR slice of a real 64x48 stream, and one of its P slices.
    fn stream_units() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let frames = test_stream::encode(64, 48, 2);
        let units =
            |data: &[u8]| -> Vec<Vec<u8>> { annex_b_nal_units(data).map(<[u8]>::to_vec).collect() };
        let first = units(&frames[0].0);
        let find = |kind| {
            first
                .iter()
                .find(|u| nal_kind(u) == kind)
                .cloned()
                .expect("unit")
        };
        let p_slice = units(&frames[1].0)
            .into_iter()
            .find(|u| nal_kind(u) == nal::NON_IDR_SLICE)
            .expect("a P slice");
        (
            find(nal::SPS),
            find(nal::PPS),
            find(nal::IDR_SLICE),
            p_slice,
        )
    }
    /// SEI: recovery_point (type 6, 2 bytes), then rbsp trailing bits.
    const SEI_RECOVERY: &[u8] = &[0x06, 0x06, 0x02, 0x80, 0x10, 0x80];
    /// SEI: user data unregistered (type 5, 3 bytes), then recovery_point.
    const SEI_USER_THEN_RECOVERY: &[u8] = &[0x06, 0x05, 0x03, 1, 2, 3, 0x06, 0x01, 0x84, 0x80];
    /// SEI: user data only.
    const SEI_USER: &[u8] = &[0x06, 0x05, 0x03, 1, 2, 3, 0x80];

    fn annex_b(units: &[&[u8]]) -> Vec<u8> {
        units
            .iter()
            .flat_map(|u| START_CODE.iter().chain(u.iter()).copied())
            .collect()
    }

    fn au(units: &[&[u8]], rtp_timestamp: u32, is_idr: bool) -> AccessUnit {
        AccessUnit {
            data: annex_b(units),
            rtp_timestamp,
            first_arrival: Instant::now(),
            is_idr,
            after_gap: false,
        }
    }

    #[test]
    fn recovery_point_sei_is_found_among_other_messages() {
        assert!(h264::sei_has_recovery_point(SEI_RECOVERY));
        assert!(h264::sei_has_recovery_point(SEI_USER_THEN_RECOVERY));
        assert!(!h264::sei_has_recovery_point(SEI_USER));
        // Truncated: the size runs past the end.
        assert!(!h264::sei_has_recovery_point(&[0x06, 0x05, 0x09, 1]));
        assert!(!h264::sei_has_recovery_point(&[0x06, 0xFF, 0xFF]));
        assert!(!h264::sei_has_recovery_point(&[]));
    }

    #[test]
    fn nothing_before_parameter_sets_then_idr_passes_as_is() {
        let (sps, pps, idr, p_slice) = stream_units();
        let (sps, pps, idr, p_slice) = (&sps[..], &pps[..], &idr[..], &p_slice[..]);
        let mut p = Passthrough::new();
        assert_eq!(p.frame(&au(&[p_slice], 0, false)), None);
        let idr = au(&[sps, pps, idr], 3000, true);
        let frame = p.frame(&idr).expect("a frame");
        assert!(frame.keyframe && frame.is_idr);
        assert_eq!(frame.data, idr.data);
        assert_eq!((frame.width, frame.height), (64, 48));
        let next = p.frame(&au(&[p_slice], 6000, false)).expect("a frame");
        assert!(!next.keyframe);
        assert_eq!(next.data, annex_b(&[p_slice]));
    }

    #[test]
    fn recovery_points_get_the_parameter_sets_in_front() {
        let (sps, pps, idr, p_slice) = stream_units();
        let (sps, pps, idr, p_slice) = (&sps[..], &pps[..], &idr[..], &p_slice[..]);
        let mut p = Passthrough::new();
        p.frame(&au(&[sps, pps, idr], 0, true));
        let frame = p
            .frame(&au(&[SEI_RECOVERY, p_slice], 3000, false))
            .expect("a frame");
        assert!(frame.keyframe);
        assert!(!frame.is_idr);
        assert_eq!(frame.data, annex_b(&[sps, pps, SEI_RECOVERY, p_slice]));
        // A plain P picture gets nothing added.
        let plain = p
            .frame(&au(&[SEI_USER, p_slice], 6000, false))
            .expect("a frame");
        assert!(!plain.keyframe);
        assert_eq!(plain.data, annex_b(&[SEI_USER, p_slice]));
    }

    #[test]
    fn timestamps_are_extended_across_the_wrap() {
        let (sps, pps, idr, p_slice) = stream_units();
        let (sps, pps, idr, p_slice) = (&sps[..], &pps[..], &idr[..], &p_slice[..]);
        let mut p = Passthrough::new();
        let start = u32::MAX - 2999;
        let first = p
            .frame(&au(&[sps, pps, idr], start, true))
            .expect("a frame");
        assert_eq!(first.pts_90khz, u64::from(start));
        let wrapped = p.frame(&au(&[p_slice], 3000, false)).expect("a frame");
        assert_eq!(wrapped.pts_90khz, u64::from(start) + 6000);
        // A late (reordered) timestamp steps back a little, not a whole wrap.
        let back = p.frame(&au(&[p_slice], 0, false)).expect("a frame");
        assert_eq!(back.pts_90khz, u64::from(start) + 3000);
    }
}
