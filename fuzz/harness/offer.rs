//! Harness of the `offer` fuzz target (also replayed by `tests/untrusted_input_regressions.rs`):
//! arbitrary bodies of the camera's signalling answer. Parse errors, never panics; an accepted
//! offer is SDP text (`v=0` first).
#![allow(dead_code)]

use spot_ptz_stream::camera_link::signalling::parse_offer;

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    if let Ok(body) = std::str::from_utf8(data)
        && let Ok(offer) = parse_offer("https://fuzz/h264.sdp", body)
    {
        assert!(offer.sdp.starts_with("v=0"));
    }
}
