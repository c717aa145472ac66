//! The robot's gRPC responses and statuses into the client's mapping (see ../harness/robot_responses.rs).
#![no_main]

#[path = "../harness/robot_responses.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
