//! RTP H.264 packets from the camera into the depacketizer (see ../harness/depacketize.rs).
#![no_main]

#[path = "../harness/depacketize.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
