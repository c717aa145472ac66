//! Access units into openh264 and the bgr8 conversion (see ../harness/decode.rs).
#![no_main]

#[path = "../harness/decode.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
