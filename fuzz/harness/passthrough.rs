//! Harness of the `passthrough` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): `media::passthrough` on the camera's bitstream, which
//! the node republishes on `image_raw/ffmpeg` and `image_raw/foxglove`. The input is an Annex-B
//! stream, cut into access units after each slice NAL unit (as the depacketizer emits them; an
//! access unit with an IDR slice is marked as one). Each goes through `Passthrough::frame`, and
//! each SEI NAL unit through the recovery-point reader.
//!
//! Properties: nothing comes out before an SPS and a PPS were seen; what comes out ends with
//! the access unit's own bytes; a keyframe carries an SPS and a PPS; a picture size comes
//! from a parsed SPS.
#![allow(dead_code)]

use std::time::Instant;

use spot_ptz_stream::media::depacketizer::AccessUnit;
use spot_ptz_stream::media::h264::{annex_b_nal_units, nal_kind, sei_has_recovery_point};
use spot_ptz_stream::media::passthrough::Passthrough;

/// What an input reached (the seeds must reach frames and keyframes).
#[derive(Debug, Default)]
pub struct Outcome {
    pub frames: usize,
    pub keyframes: usize,
}

/// The fuzz target's body.
pub fn run(data: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut passthrough = Passthrough::new();
    let (mut seen_sps, mut seen_pps) = (false, false);
    let mut au_data = Vec::new();
    let mut is_idr = false;
    let mut index = 0u32;
    for nal in annex_b_nal_units(data) {
        au_data.extend_from_slice(&[0, 0, 0, 1]);
        au_data.extend_from_slice(nal);
        match nal_kind(nal) {
            6 => {
                sei_has_recovery_point(nal);
            }
            7 => seen_sps = true,
            8 => seen_pps = true,
            5 => is_idr = true,
            _ => {}
        }
        if !matches!(nal_kind(nal), 1 | 5) {
            continue;
        }
        let au = AccessUnit {
            data: std::mem::take(&mut au_data),
            rtp_timestamp: index.wrapping_mul(3000),
            first_arrival: Instant::now(),
            is_idr: std::mem::take(&mut is_idr),
            after_gap: false,
        };
        index += 1;
        let Some(frame) = passthrough.frame(&au) else {
            continue;
        };
        assert!(seen_sps && seen_pps, "a frame before any parameter set");
        assert!(
            frame.data.ends_with(&au.data),
            "the access unit's bytes were changed"
        );
        assert!(
            frame.width >= 1 && frame.height >= 1,
            "{}x{}",
            frame.width,
            frame.height
        );
        outcome.frames += 1;
        if frame.keyframe {
            outcome.keyframes += 1;
            let kinds: Vec<u8> = annex_b_nal_units(&frame.data).map(nal_kind).collect();
            assert!(
                kinds.contains(&7) && kinds.contains(&8),
                "a keyframe without SPS/PPS: {kinds:?}"
            );
        }
    }
    outcome
}
