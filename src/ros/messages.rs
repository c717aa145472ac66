//! Conversions from the stream's types to ROS messages.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use r2r::builtin_interfaces::msg::Time;
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::sensor_msgs::msg::{CameraInfo, RegionOfInterest};
use r2r::std_msgs::msg::Header;

use crate::camera_info::Calibration;
use crate::status_report::Report;

/// Converts an arrival [`Instant`] to a ROS time, given the ROS clock's "now".
pub fn stamp_for(arrival: Instant, ros_now: Duration) -> Time {
    let age = arrival.elapsed();
    r2r::Clock::to_builtin_time(&ros_now.saturating_sub(age))
}

/// The wall clock as a ROS time (for diagnostics).
pub fn wall_time() -> Time {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    r2r::Clock::to_builtin_time(&since_epoch)
}

/// `sensor_msgs/CameraInfo` for a frame of this size: the calibration when it was made for
/// this size, otherwise uncalibrated (K, D, R, P zero) with the size filled in.
pub fn camera_info(
    header: Header,
    width: u32,
    height: u32,
    calibration: Option<&Calibration>,
) -> CameraInfo {
    let matching = calibration.filter(|c| c.image_width == width && c.image_height == height);
    let mut info = CameraInfo {
        header,
        height,
        width,
        distortion_model: String::new(),
        d: Vec::new(),
        k: vec![0.0; 9],
        r: vec![0.0; 9],
        p: vec![0.0; 12],
        binning_x: 0,
        binning_y: 0,
        roi: RegionOfInterest::default(),
    };
    if let Some(c) = matching {
        info.distortion_model = c.distortion_model.clone();
        info.d = c.distortion_coefficients.data.clone();
        info.k = c.camera_matrix.data.clone();
        info.r = c.rectification_matrix.data.clone();
        info.p = c.projection_matrix.data.clone();
    }
    info
}

/// `diagnostic_msgs/DiagnosticStatus` from a report.
pub fn diagnostic_status(report: &Report, name: &str, hardware_id: &str) -> DiagnosticStatus {
    DiagnosticStatus {
        level: report.level as u8,
        name: name.to_string(),
        message: report.message.clone(),
        hardware_id: hardware_id.to_string(),
        values: report
            .values
            .iter()
            .map(|(key, value)| KeyValue {
                key: (*key).to_string(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// The same status wrapped for `/diagnostics`.
pub fn diagnostic_array(status: DiagnosticStatus) -> DiagnosticArray {
    DiagnosticArray {
        header: Header {
            stamp: wall_time(),
            frame_id: String::new(),
        },
        status: vec![status],
    }
}
