//! The passthrough topics' access units from the camera (see ../harness/passthrough.rs).
#![no_main]

#[path = "../harness/passthrough.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::run(data);
});
