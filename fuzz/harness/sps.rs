//! Harness of the `sps` fuzz target (also replayed by `tests/untrusted_input_regressions.rs`):
//! the H.264 syntax readers of `media::h264` (used by the MP4 writer and the decoder's loss
//! guard) on arbitrary bytes: the whole input as one SPS NAL unit, then as an Annex-B stream
//! whose SPS, PPS and slice NAL units go to their readers, the slices with the SPS their PPS
//! names.
//!
//! Properties: a parsed SPS has a picture size an MP4 sample description can hold; every NAL
//! unit the splitter yields is non-empty, lies inside the input and ends in a non-zero byte; a
//! slice's `frame_num` fits the bits its SPS gives it.
#![allow(dead_code)]

use std::collections::HashMap;

use spot_ptz_stream::media::h264::{
    SpsInfo, annex_b_nal_units, nal_kind, parse_pps_ids, parse_slice_start, parse_sps,
};

fn check_sps(info: &SpsInfo) {
    assert!((1..=65_535).contains(&info.width), "{info:?}");
    assert!((1..=65_535).contains(&info.height), "{info:?}");
}

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    if let Ok(info) = parse_sps(data) {
        check_sps(&info);
    }
    let range = data.as_ptr_range();
    let mut sps_by_id: HashMap<u32, SpsInfo> = HashMap::new();
    let mut sps_id_by_pps: HashMap<u32, u32> = HashMap::new();
    for nal in annex_b_nal_units(data) {
        assert!(nal.last().is_some_and(|&b| b != 0), "{nal:?}");
        let inner = nal.as_ptr_range();
        assert!(range.start <= inner.start && inner.end <= range.end);
        match nal_kind(nal) {
            7 => {
                if let Ok(info) = parse_sps(nal) {
                    check_sps(&info);
                    sps_by_id.insert(info.seq_parameter_set_id, info);
                }
            }
            8 => {
                if let Ok((pps_id, sps_id)) = parse_pps_ids(nal) {
                    sps_id_by_pps.insert(pps_id, sps_id);
                }
            }
            1 | 5 => {
                let lookup = |pps_id| {
                    let sps_id = sps_id_by_pps.get(&pps_id)?;
                    sps_by_id.get(sps_id).copied()
                };
                if let Ok(slice) = parse_slice_start(nal, lookup) {
                    let sps = lookup(slice.pic_parameter_set_id).expect("the slice's SPS");
                    assert!(
                        u64::from(slice.frame_num) < 1u64 << sps.log2_max_frame_num.min(63),
                        "{slice:?} {sps:?}"
                    );
                }
            }
            _ => {}
        }
    }
}
