//! Harness of the `sdp_directions` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): arbitrary SDP text through the offer normalisation
//! and the media-section scan the answerer uses.
//!
//! Properties: normalising is idempotent; it keeps every audio and video section with its
//! port and explicit direction, and gives every one without a direction `sendrecv`.
#![allow(dead_code)]

use spot_ptz_stream::camera_link::sdp::{media_sections, normalize_offer_directions};

/// The fuzz target's body (input that is not UTF-8 is skipped, as the answerer only sees text).
pub fn run(data: &[u8]) {
    if let Ok(sdp) = std::str::from_utf8(data) {
        check(sdp);
    }
}

/// Checks the properties on one SDP text; returns the normalised text.
pub fn check(sdp: &str) -> String {
    let normalized = normalize_offer_directions(sdp);
    assert_eq!(
        normalize_offer_directions(&normalized),
        normalized,
        "normalising twice differs from once for {sdp:?}"
    );
    for kind in ["audio", "video"] {
        let before = media_sections(sdp, kind);
        let after = media_sections(&normalized, kind);
        assert_eq!(before.len(), after.len(), "{kind} sections of {sdp:?}");
        for ((port_before, direction_before), (port_after, direction_after)) in
            before.iter().zip(&after)
        {
            assert_eq!(port_before, port_after);
            let expected = direction_before.as_deref().unwrap_or("sendrecv");
            assert_eq!(direction_after.as_deref(), Some(expected), "{sdp:?}");
        }
    }
    normalized
}
