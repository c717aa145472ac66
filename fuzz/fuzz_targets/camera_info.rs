//! camera_calibration YAML (see ../harness/camera_info.rs).
#![no_main]

#[path = "../harness/camera_info.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
