//! Arbitrary bodies of the camera's signalling answer: parse errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        let _ = spot_ptz_stream::camera_link::signalling::parse_offer("https://fuzz/h264.sdp", body);
    }
});
