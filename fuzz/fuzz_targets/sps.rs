//! H.264 syntax (SPS, PPS ids, slice starts, Annex-B) from the camera (see ../harness/sps.rs).
#![no_main]

#[path = "../harness/sps.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
