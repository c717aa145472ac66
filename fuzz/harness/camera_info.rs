//! Harness of the `camera_info` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): arbitrary text as a `camera_calibration` YAML file.
//! Errors, never panics; an accepted calibration has matrices of the sizes `camera_info`
//! needs.
#![allow(dead_code)]

use spot_ptz_stream::camera_info::parse;

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(calibration) = parse("fuzz.yaml", yaml) {
        assert_eq!(calibration.camera_matrix.data.len(), 9);
        assert_eq!(calibration.rectification_matrix.data.len(), 9);
        assert_eq!(calibration.projection_matrix.data.len(), 12);
        let d = &calibration.distortion_coefficients;
        assert_eq!(d.rows.checked_mul(d.cols), Some(d.data.len()));
    }
}
