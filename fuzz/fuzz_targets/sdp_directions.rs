//! Arbitrary SDP text through the offer normalisation and media-section scan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spot_ptz_stream::camera_link::sdp::{media_sections, normalize_offer_directions};

fuzz_target!(|data: &[u8]| {
    if let Ok(sdp) = std::str::from_utf8(data) {
        let normalized = normalize_offer_directions(sdp);
        let _ = media_sections(&normalized, "video");
        let _ = media_sections(sdp, "audio");
    }
});
