//! The camera's SDP before it reaches the WebRTC stack (see ../harness/sdp_directions.rs).
#![no_main]

#[path = "../harness/sdp_directions.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
