//! The camera's offer into the webrtc crate's set_remote_description (see ../harness/webrtc_offer.rs).
#![no_main]

#[path = "../harness/webrtc_offer.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
