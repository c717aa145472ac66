//! Conversions from the stream's types to ROS messages.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use r2r::builtin_interfaces::msg::Time;
use r2r::diagnostic_msgs::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};
use r2r::sensor_msgs::msg::{CameraInfo, RegionOfInterest};
use r2r::std_msgs::msg::Header;

use crate::camera_info::Calibration;
use crate::status_report::Report;

/// Largest disagreement between the ROS clock and the anchored mapping before re-anchoring.
const STAMP_REANCHOR_THRESHOLD: Duration = Duration::from_millis(1);

/// Turns arrival [`Instant`]s into ROS times. The mapping is anchored once and kept while the
/// ROS clock agrees with it (within 1 ms), so every topic published for one frame
/// (`image_raw`, `camera_info` and the compressed outputs, from different tasks) carries the
/// very same stamp; a clock step (NTP, sim time) re-anchors it.
pub struct Stamper {
    clock: Option<r2r::Clock>,
    anchor: Option<(Instant, Duration)>,
}

impl Stamper {
    pub fn new() -> Self {
        let clock = match r2r::Clock::create(r2r::ClockType::RosTime) {
            Ok(clock) => Some(clock),
            Err(error) => {
                tracing::warn!(%error, "no ROS clock; stamping with the system clock");
                None
            }
        };
        Self {
            clock,
            anchor: None,
        }
    }

    /// The ROS time at which `arrival` happened.
    pub fn stamp(&mut self, arrival: Instant) -> Time {
        let now = Instant::now();
        let ros_now = self
            .clock
            .as_mut()
            .and_then(|c| c.get_now().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
            });
        let anchor = match self.anchor {
            Some((at, ros_at))
                if (ros_at + now.saturating_duration_since(at)).abs_diff(ros_now)
                    <= STAMP_REANCHOR_THRESHOLD =>
            {
                (at, ros_at)
            }
            _ => (now, ros_now),
        };
        self.anchor = Some(anchor);
        let (at, ros_at) = anchor;
        let time = if arrival >= at {
            ros_at + (arrival - at)
        } else {
            ros_at.saturating_sub(at - arrival)
        };
        r2r::Clock::to_builtin_time(&time)
    }
}

/// The header every image topic of one frame carries: its arrival on the shared [`Stamper`]
/// and the node's `frame_id`.
pub fn frame_header(
    stamper: &std::sync::Mutex<Stamper>,
    arrival: Instant,
    frame_id: &str,
) -> Header {
    let stamp = crate::lock(stamper).stamp(arrival);
    Header {
        stamp,
        frame_id: frame_id.to_string(),
    }
}

impl Default for Stamper {
    fn default() -> Self {
        Self::new()
    }
}

/// A ROS time as the time since the clock's zero (a negative time is zero).
pub fn duration_of(time: &Time) -> std::time::Duration {
    std::time::Duration::new(u64::try_from(time.sec).unwrap_or(0), time.nanosec)
}

/// The wall clock as a ROS time (for diagnostics).
pub fn wall_time() -> Time {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    r2r::Clock::to_builtin_time(&since_epoch)
}

/// `sensor_msgs/CameraInfo` for a frame of this size: the calibration when it was made for
/// this size; else the lens model's K at the zoom of capture (`zoom_k`: no distortion, R
/// identity, P = [K | 0]); else uncalibrated (K, D, R, P zero) with the size filled in.
pub fn camera_info(
    header: Header,
    width: u32,
    height: u32,
    calibration: Option<&Calibration>,
    zoom_k: Option<[f64; 9]>,
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
    } else if let Some(k) = zoom_k {
        info.distortion_model = "plumb_bob".to_string();
        info.d = vec![0.0; 5];
        info.k = k.to_vec();
        info.r = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        info.p = vec![
            k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0,
        ];
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
