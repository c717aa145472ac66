//! Arbitrary SPS NAL units (from the camera's stream) into the MP4 writer's SPS parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spot_ptz_stream::record::mp4_writer::parse_sps(data);
    let _ = spot_ptz_stream::record::mp4_writer::annex_b_nal_units(data).count();
});
