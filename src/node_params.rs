//! The ROS node's parameters: one struct, defaults, validation with messages that name the
//! parameter and its accepted values. ROS-free: the node reads values through
//! [`ParamSource`], so validation is tested without ROS.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::aiming::lens::DEFAULT_HFOV_DEG_AT_ZOOM_1;
use crate::aiming::selection::{PolicyName, SelectionPolicy};
use crate::camera_link::answerer::DEFAULT_UDP_RECEIVE_BUFFER_BYTES;
use crate::media::convert::{ColorMatrix, ColorRange};
use crate::media::decoder::DecoderBackend;
use crate::media::depacketizer::DEFAULT_MAX_ACCESS_UNIT_BYTES;

/// A parameter value as ROS carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    Integer(i64),
    Double(f64),
    String(String),
    StringArray(Vec<String>),
    DoubleArray(Vec<f64>),
}

impl ParamValue {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "bool",
            Self::Integer(_) => "integer",
            Self::Double(_) => "double",
            Self::String(_) => "string",
            Self::StringArray(_) => "string array",
            Self::DoubleArray(_) => "double array",
        }
    }
}

/// Where parameter values come from (ROS parameters in the node, a map in tests).
pub trait ParamSource {
    /// The value of a parameter, or `None` when it was not set.
    fn get(&self, name: &str) -> Option<ParamValue>;
}

impl ParamSource for std::collections::HashMap<String, ParamValue> {
    fn get(&self, name: &str) -> Option<ParamValue> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// A parameter is missing, of the wrong type, or out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parameter {name}: {problem}; accepted: {accepted}")]
pub struct ParamError {
    pub name: &'static str,
    pub problem: String,
    pub accepted: String,
}

/// Reliability of the image publishers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reliability {
    Reliable,
    BestEffort,
}

impl fmt::Display for Reliability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reliable => "reliable",
            Self::BestEffort => "best_effort",
        })
    }
}

/// Every parameter of `spot_ptz_stream`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeParams {
    pub robot_host: String,
    pub grpc_port: u16,
    pub sdp_port: u16,
    pub sdp_path: String,
    /// Empty: the embedded Boston Dynamics root CA.
    pub robot_ca_path: Option<PathBuf>,
    /// Empty: the camera's certificate is not verified (like the official client).
    pub camera_ca_path: Option<PathBuf>,
    /// Empty: leave the compositor screen as it is.
    pub screen: Option<String>,
    /// 0: leave the camera's bitrate as it is.
    pub target_bitrate_bps: Option<i64>,
    /// 0: leave the camera's IDR interval as it is.
    pub idr_interval_frames: Option<i64>,
    pub initial_ptz_enabled: bool,
    pub initial_ptz_name: String,
    pub initial_pan_deg: f64,
    pub initial_tilt_deg: f64,
    pub initial_zoom: f64,
    pub autostart: bool,
    pub frame_id: String,
    pub camera_info_url: Option<String>,
    pub image_qos_depth: usize,
    pub image_qos_reliability: Reliability,
    pub queue_depth: usize,
    pub max_access_unit_bytes: usize,
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    pub reorder_wait: Duration,
    pub adaptive_bitrate: bool,
    pub min_bitrate_bps: i64,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub token_refresh: Duration,
    pub keyframe_wait: Duration,
    pub decoder: DecoderBackend,
    pub color_range: ColorRange,
    pub color_matrix: ColorMatrix,
    pub udp_bind_address: String,
    pub udp_receive_buffer_bytes: usize,
    pub diagnostics_period: Duration,
    pub auto_trigger: bool,
    pub trigger_class_ids: Vec<String>,
    pub trigger_min_score: f64,
    pub trigger_timeout: Duration,
    /// Which image outputs exist (`image_raw.enable_pub_plugins`).
    pub outputs: ImageOutputs,
    pub jpeg_quality: u8,
    pub jpeg_max_rate_hz: f64,
    pub aiming: AimingParams,
}

/// How the node points the PTZ (see [`crate::aiming`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AimingParams {
    /// Aim at detections and `~/look_at` points.
    pub enabled: bool,
    pub pan_offset_deg: f64,
    pub max_pan_from_forward_deg: f64,
    pub hfov_deg_at_zoom_1: f64,
    pub person_height_m: f64,
    pub target_height_fraction: f64,
    pub deadband_deg: f64,
    pub zoom_deadband_fraction: f64,
    pub max_rate_hz: f64,
    pub policy: SelectionPolicy,
    pub keep_within_deg: f64,
    /// `camera_info` topics of the cameras detections come from.
    pub detection_camera_info_topics: Vec<String>,
    /// The frame the PTZ is mounted on, and the PTZ's frames.
    pub parent_frame: String,
    pub base_frame: String,
    pub head_frame: String,
    /// The PTZ base in the parent frame: x, y, z (m) and roll, pitch, yaw (rad).
    pub mount_xyz_m: [f64; 3],
    pub mount_rpy_rad: [f64; 3],
}

/// The image topics the node offers, as image_transport names its plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageOutputs {
    /// `image_raw` (bgr8).
    pub raw: bool,
    /// `image_raw/compressed` (JPEG).
    pub compressed: bool,
    /// `image_raw/ffmpeg` (H.264 passthrough, ffmpeg_image_transport).
    pub ffmpeg: bool,
    /// `image_raw/foxglove` (H.264 passthrough, Foxglove CompressedVideo).
    pub foxglove: bool,
}

impl ImageOutputs {
    /// Plugin names accepted in `image_raw.enable_pub_plugins`.
    pub const PLUGINS: [&'static str; 4] = [
        "image_transport/raw",
        "image_transport/compressed",
        "image_transport/ffmpeg",
        "image_transport/foxglove",
    ];

    fn from_plugins(names: &[String]) -> Result<Self, String> {
        let mut outputs = Self {
            raw: false,
            compressed: false,
            ffmpeg: false,
            foxglove: false,
        };
        for name in names {
            let flag = match name.as_str() {
                "image_transport/raw" => &mut outputs.raw,
                "image_transport/compressed" => &mut outputs.compressed,
                "image_transport/ffmpeg" => &mut outputs.ffmpeg,
                "image_transport/foxglove" => &mut outputs.foxglove,
                other => return Err(format!("{other:?} is not a plugin this node offers")),
            };
            *flag = true;
        }
        Ok(outputs)
    }
}

/// Name, default and description of every parameter, in the order they are documented.
pub const PARAMETERS: &[(&str, &str, &str)] = &[
    (
        "robot_host",
        "\"\"",
        "Robot hostname or IP (falls back to the SPOT_IP environment variable).",
    ),
    ("grpc_port", "443", "Robot gRPC port."),
    (
        "sdp_port",
        "31102",
        "Spot CAM WebRTC signalling port (HTTPS).",
    ),
    ("sdp_path", "\"h264.sdp\"", "Signalling path on the camera."),
    (
        "robot_ca_path",
        "\"\"",
        "PEM root CA of the robot; empty = embedded Boston Dynamics root CA.",
    ),
    (
        "camera_ca_path",
        "\"\"",
        "PEM CA for the camera's HTTPS certificate; empty = not verified (warns).",
    ),
    (
        "screen",
        "\"mech_full\"",
        "Compositor screen to stream; empty = leave as is.",
    ),
    (
        "target_bitrate_bps",
        "2000000",
        "Camera target bitrate; 0 = leave as is.",
    ),
    (
        "idr_interval_frames",
        "30",
        "Frames between IDR pictures; 0 = leave as is.",
    ),
    (
        "initial_ptz_enabled",
        "false",
        "Move the PTZ to the initial pose before streaming (with aiming: once at start-up).",
    ),
    ("initial_ptz_name", "\"mech\"", "PTZ to move."),
    ("initial_pan_deg", "0.0", "Initial pan in degrees."),
    ("initial_tilt_deg", "0.0", "Initial tilt in degrees."),
    ("initial_zoom", "1.0", "Initial zoom level."),
    (
        "autostart",
        "true",
        "Start streaming at start-up (else wait for ~/start_stream).",
    ),
    (
        "frame_id",
        "\"spot_cam_ptz_optical\"",
        "frame_id of image_raw and camera_info.",
    ),
    (
        "camera_info_url",
        "\"\"",
        "file:// URL of a camera_calibration YAML; empty = uncalibrated.",
    ),
    (
        "image_qos_depth",
        "1",
        "History depth of image_raw and camera_info (keep-last).",
    ),
    (
        "image_qos_reliability",
        "\"reliable\"",
        "reliable or best_effort.",
    ),
    (
        "queue_depth",
        "2",
        "Decoded frames buffered before publishing; older ones are dropped.",
    ),
    (
        "max_access_unit_bytes",
        "8388608",
        "Largest H.264 access unit accepted; larger ones are dropped and a keyframe requested.",
    ),
    ("connect_timeout_secs", "10.0", "WebRTC connection timeout."),
    (
        "stall_timeout_secs",
        "5.0",
        "No video for this long triggers a reconnect.",
    ),
    (
        "reorder_wait_ms",
        "250",
        "How long a missing RTP packet may take to arrive (reordered, or retransmitted after a NACK) before its frame is lost; 0-1000.",
    ),
    (
        "adaptive_bitrate",
        "true",
        "Lower the camera's bitrate when the link loses packets NACK cannot repair; raise it again when the link is clean.",
    ),
    (
        "min_bitrate_bps",
        "500000",
        "The adaptive bitrate never asks for less than this.",
    ),
    (
        "reconnect_initial_secs",
        "0.5",
        "First reconnect delay after a failure other than a lost link (doubles, with jitter); a lost link is retried about once per second.",
    ),
    (
        "reconnect_max_secs",
        "10.0",
        "Longest reconnect delay after a failure other than a lost link.",
    ),
    (
        "token_refresh_secs",
        "3600.0",
        "Re-mint the user token this often.",
    ),
    (
        "decoder",
        "\"libavcodec\"",
        "H.264 decoder: libavcodec (FFmpeg) or openh264 (no system library).",
    ),
    (
        "keyframe_wait_secs",
        "2.0",
        "Wait this long for an IDR (at start; with openh264 also after a loss) before decoding intra-refresh frames.",
    ),
    (
        "color_range",
        "\"limited\"",
        "YUV range of the stream: limited or full.",
    ),
    (
        "color_matrix",
        "\"bt601\"",
        "YUV matrix of the stream: bt601 or bt709.",
    ),
    (
        "udp_bind_address",
        "\"0.0.0.0\"",
        "Local address for WebRTC UDP sockets.",
    ),
    (
        "udp_receive_buffer_bytes",
        "4194304",
        "Kernel receive buffer per WebRTC UDP socket (0 = system default). Capped by `net.core.rmem_max`; a warning names the sysctl when it is lower.",
    ),
    (
        "diagnostics_period_secs",
        "1.0",
        "Period of ~/stats and /diagnostics.",
    ),
    (
        "auto_trigger",
        "false",
        "Start on a matching detection, stop after trigger_timeout_secs without.",
    ),
    (
        "trigger_class_ids",
        "[\"person\", \"0\"]",
        "Detection class_ids that start the stream.",
    ),
    (
        "trigger_min_score",
        "0.5",
        "Lowest detection score that starts the stream.",
    ),
    (
        "trigger_timeout_secs",
        "10.0",
        "Stop this long after the last matching detection.",
    ),
    (
        "image_raw.enable_pub_plugins",
        "[\"image_transport/raw\", \"image_transport/compressed\", \"image_transport/ffmpeg\", \"image_transport/foxglove\"]",
        "Image outputs to offer (as image_transport's parameter): raw = image_raw, compressed = image_raw/compressed (JPEG), ffmpeg = image_raw/ffmpeg and foxglove = image_raw/foxglove (H.264 passthrough). Each costs nothing while nobody subscribes.",
    ),
    (
        "aiming",
        "true",
        "Point the PTZ at detected people and at ~/look_at points.",
    ),
    (
        "pan_offset_deg",
        "0.0",
        "The PTZ's pan reading when it looks along the mount frame's +x (calibrate per robot).",
    ),
    (
        "max_pan_from_forward_deg",
        "135.0",
        "Points further than this from forward (either side) are not aimed at (behind the robot).",
    ),
    (
        "hfov_deg_at_zoom_1",
        "66.4",
        "The PTZ camera's horizontal field of view at zoom 1; zoom narrows it like a focal length (camera_info K and the zoom that frames a person).",
    ),
    (
        "person_height_m",
        "1.7",
        "Height of a person: the range from a detection's box height, and the zoom.",
    ),
    (
        "target_height_fraction",
        "0.5",
        "Zoom so that the person fills this much of the picture's height (0.05-1).",
    ),
    (
        "aim_deadband_deg",
        "1.0",
        "Pan/tilt changes smaller than this are not sent to the PTZ.",
    ),
    (
        "aim_zoom_deadband_fraction",
        "0.15",
        "Zoom changes smaller than this fraction are not sent.",
    ),
    (
        "aim_max_rate_hz",
        "2.0",
        "At most this many PTZ commands per second.",
    ),
    (
        "aim_policy",
        "\"largest\"",
        "Whom to look at among several people: largest, highest_score or round_robin (the current one is kept while seen).",
    ),
    (
        "aim_dwell_secs",
        "5.0",
        "round_robin: look at each person this long.",
    ),
    (
        "aim_keep_within_deg",
        "8.0",
        "A person seen within this angle of the current target is the target (hysteresis).",
    ),
    (
        "detection_camera_info_topics",
        "[]",
        "camera_info topics of the cameras whose detections aim the PTZ (matched to a detection by frame_id).",
    ),
    (
        "ptz_parent_frame",
        "\"body\"",
        "The frame the PTZ is mounted on.",
    ),
    (
        "ptz_base_frame",
        "\"spot_cam_ptz_base\"",
        "The PTZ's base frame (pan/tilt centre, x forward at pan = pan_offset_deg).",
    ),
    (
        "ptz_head_frame",
        "\"spot_cam_ptz\"",
        "The PTZ head frame, turned by the measured pan and tilt; frame_id is its optical frame.",
    ),
    (
        "ptz_mount_xyz",
        "[0.0, 0.0, 0.0]",
        "The PTZ base's position in ptz_parent_frame, metres (measure on the robot).",
    ),
    (
        "ptz_mount_rpy",
        "[0.0, 0.0, 0.0]",
        "The PTZ base's roll, pitch, yaw in ptz_parent_frame, radians.",
    ),
    (
        "jpeg_quality",
        "80",
        "JPEG quality of image_raw/compressed, 1-100.",
    ),
    (
        "jpeg_max_rate_hz",
        "10.0",
        "At most this many JPEG pictures per second on image_raw/compressed (0.1-120; the camera's frame rate caps it).",
    ),
];

type Param<T> = Result<T, ParamError>;

/// A type of number parameter: its name, how its accepted values are described, and how the
/// number is taken out of a value (the value back when it has another type).
struct NumberKind<T> {
    name: &'static str,
    described: &'static str,
    read: fn(ParamValue) -> Result<T, ParamValue>,
}

const INTEGER: NumberKind<i64> = NumberKind {
    name: "integer",
    described: "an integer",
    read: |value| match value {
        ParamValue::Integer(i) => Ok(i),
        other => Err(other),
    },
};

const DOUBLE: NumberKind<f64> = NumberKind {
    name: "double",
    described: "a number",
    read: |value| match value {
        ParamValue::Double(d) => Ok(d),
        ParamValue::Integer(i) => Ok(i as f64),
        other => Err(other),
    },
};

struct Reader<'a> {
    source: &'a dyn ParamSource,
}

fn wrong_type(name: &'static str, expected: &str, got: &ParamValue) -> ParamError {
    ParamError {
        name,
        problem: format!("expected a {expected}, got a {}", got.type_name()),
        accepted: format!("a {expected}"),
    }
}

impl Reader<'_> {
    fn string(&self, name: &'static str, default: &str) -> Result<String, ParamError> {
        match self.source.get(name) {
            None => Ok(default.to_string()),
            Some(ParamValue::String(s)) => Ok(s),
            Some(other) => Err(wrong_type(name, "string", &other)),
        }
    }

    fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ParamError> {
        match self.source.get(name) {
            None => Ok(default),
            Some(ParamValue::Bool(b)) => Ok(b),
            Some(other) => Err(wrong_type(name, "bool", &other)),
        }
    }

    fn integer(&self, name: &'static str, default: i64, min: i64, max: i64) -> Param<i64> {
        self.ranged(name, default, (min, max), &INTEGER)
    }

    /// YAML `10` for a double parameter is an integer: accepted.
    fn double(&self, name: &'static str, default: f64, min: f64, max: f64) -> Param<f64> {
        self.ranged(name, default, (min, max), &DOUBLE)
    }

    /// A number parameter within `min..=max` (NaN never is).
    fn ranged<T: PartialOrd + Copy + std::fmt::Display>(
        &self,
        name: &'static str,
        default: T,
        (min, max): (T, T),
        kind: &NumberKind<T>,
    ) -> Param<T> {
        let value = match self.source.get(name) {
            None => default,
            Some(value) => {
                (kind.read)(value).map_err(|other| wrong_type(name, kind.name, &other))?
            }
        };
        if value >= min && value <= max {
            Ok(value)
        } else {
            Err(ParamError {
                name,
                problem: format!("{value} is out of range"),
                accepted: format!("{} from {min} to {max}", kind.described),
            })
        }
    }

    fn seconds(
        &self,
        name: &'static str,
        default: f64,
        min: f64,
        max: f64,
    ) -> Result<Duration, ParamError> {
        Ok(Duration::from_secs_f64(
            self.double(name, default, min, max)?,
        ))
    }

    fn choice<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: &str,
        accepted: &str,
    ) -> Result<T, ParamError> {
        let value = self.string(name, default)?;
        value.parse().map_err(|_| ParamError {
            name,
            problem: format!("{value:?} is not accepted"),
            accepted: accepted.to_string(),
        })
    }

    /// A list of exactly three numbers.
    fn triple(&self, name: &'static str) -> Param<[f64; 3]> {
        let value = match self.source.get(name) {
            None => return Ok([0.0; 3]),
            Some(ParamValue::DoubleArray(v)) => v,
            Some(other) => return Err(wrong_type(name, "double array", &other)),
        };
        match value[..] {
            [a, b, c] if value.iter().all(|v| v.is_finite()) => Ok([a, b, c]),
            _ => Err(ParamError {
                name,
                problem: format!("{value:?} is not three finite numbers"),
                accepted: "three numbers, e.g. [0.0, 0.0, 0.3]".to_string(),
            }),
        }
    }

    /// A TF frame name.
    fn frame(&self, name: &'static str, default: &str) -> Param<String> {
        let frame = self.string(name, default)?;
        if frame.is_empty() || frame.contains(char::is_whitespace) {
            return Err(ParamError {
                name,
                problem: format!("{frame:?} is not a frame name"),
                accepted: format!("a TF frame name such as {default}"),
            });
        }
        Ok(frame)
    }

    fn string_array(
        &self,
        name: &'static str,
        default: &[&str],
    ) -> Result<Vec<String>, ParamError> {
        match self.source.get(name) {
            None => Ok(default.iter().map(|s| (*s).to_string()).collect()),
            Some(ParamValue::StringArray(v)) => Ok(v),
            Some(other) => Err(wrong_type(name, "string array", &other)),
        }
    }
}

impl AimingParams {
    fn read(r: &Reader<'_>) -> Param<Self> {
        let policy: PolicyName = r.choice("aim_policy", "largest", SelectionPolicy::ACCEPTED)?;
        let dwell = r.seconds("aim_dwell_secs", 5.0, 0.5, 600.0)?;
        let policy = match policy {
            PolicyName::Largest => SelectionPolicy::Largest,
            PolicyName::HighestScore => SelectionPolicy::HighestScore,
            PolicyName::RoundRobin => SelectionPolicy::RoundRobin { dwell },
        };
        Ok(Self {
            enabled: r.boolean("aiming", true)?,
            pan_offset_deg: r.double("pan_offset_deg", 0.0, -360.0, 360.0)?,
            max_pan_from_forward_deg: r.double("max_pan_from_forward_deg", 135.0, 1.0, 180.0)?,
            hfov_deg_at_zoom_1: r.double(
                "hfov_deg_at_zoom_1",
                DEFAULT_HFOV_DEG_AT_ZOOM_1,
                1.0,
                170.0,
            )?,
            person_height_m: r.double("person_height_m", 1.7, 0.1, 5.0)?,
            target_height_fraction: r.double("target_height_fraction", 0.5, 0.05, 1.0)?,
            deadband_deg: r.double("aim_deadband_deg", 1.0, 0.0, 45.0)?,
            zoom_deadband_fraction: r.double("aim_zoom_deadband_fraction", 0.15, 0.0, 1.0)?,
            max_rate_hz: r.double("aim_max_rate_hz", 2.0, 0.1, 50.0)?,
            policy,
            keep_within_deg: r.double("aim_keep_within_deg", 8.0, 0.1, 90.0)?,
            detection_camera_info_topics: r.string_array("detection_camera_info_topics", &[])?,
            parent_frame: r.frame("ptz_parent_frame", "body")?,
            base_frame: r.frame("ptz_base_frame", "spot_cam_ptz_base")?,
            head_frame: r.frame("ptz_head_frame", "spot_cam_ptz")?,
            mount_xyz_m: r.triple("ptz_mount_xyz")?,
            mount_rpy_rad: r.triple("ptz_mount_rpy")?,
        })
    }
}

impl std::str::FromStr for Reliability {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "reliable" => Ok(Self::Reliable),
            "best_effort" => Ok(Self::BestEffort),
            _ => Err(()),
        }
    }
}

fn optional_path(value: String) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

impl NodeParams {
    /// Reads and validates every parameter. `spot_ip` is the `SPOT_IP` environment variable,
    /// used when `robot_host` is empty.
    pub fn read(source: &dyn ParamSource, spot_ip: Option<String>) -> Result<Self, ParamError> {
        let r = Reader { source };
        let mut robot_host = r.string("robot_host", "")?;
        if robot_host.is_empty() {
            robot_host = spot_ip.unwrap_or_default();
        }
        if robot_host.is_empty() || robot_host.chars().any(char::is_whitespace) {
            return Err(ParamError {
                name: "robot_host",
                problem: format!("{robot_host:?} is not a host name or IP address"),
                accepted: "the robot's hostname or IP, as a parameter or in the SPOT_IP environment variable".to_string(),
            });
        }
        let port = |name: &'static str, default: i64| -> Result<u16, ParamError> {
            Ok(r.integer(name, default, 1, 65_535)? as u16)
        };
        let sdp_path = r.string("sdp_path", "h264.sdp")?;
        if sdp_path.trim_start_matches('/').is_empty() || sdp_path.contains(char::is_whitespace) {
            return Err(ParamError {
                name: "sdp_path",
                problem: format!("{sdp_path:?} is not a URL path"),
                accepted: "a path such as h264.sdp".to_string(),
            });
        }
        let reliability: Reliability =
            r.choice("image_qos_reliability", "reliable", "reliable, best_effort")?;
        let decoder = r.string("decoder", DecoderBackend::default_for_build().as_str())?;
        let decoder: DecoderBackend = decoder.parse().map_err(|problem| ParamError {
            name: "decoder",
            problem,
            accepted: DecoderBackend::ACCEPTED.to_string(),
        })?;
        let color_range: ColorRange = r.choice("color_range", "limited", "limited, full")?;
        let color_matrix: ColorMatrix = r.choice("color_matrix", "bt601", "bt601, bt709")?;
        let frame_id = r.string("frame_id", "spot_cam_ptz_optical")?;
        if frame_id.is_empty() {
            return Err(ParamError {
                name: "frame_id",
                problem: "empty".to_string(),
                accepted: "a TF frame name such as spot_cam_ptz_optical".to_string(),
            });
        }
        let camera_info_url = r.string("camera_info_url", "")?;
        if !camera_info_url.is_empty() && !camera_info_url.starts_with("file://") {
            return Err(ParamError {
                name: "camera_info_url",
                problem: format!("{camera_info_url:?} is not supported"),
                accepted: "empty (uncalibrated) or a file:///absolute/path.yaml URL".to_string(),
            });
        }
        let udp_bind_address = r.string("udp_bind_address", "0.0.0.0")?;
        if udp_bind_address.parse::<std::net::IpAddr>().is_err() {
            return Err(ParamError {
                name: "udp_bind_address",
                problem: format!("{udp_bind_address:?} is not an IP address"),
                accepted: "an IP address of this computer, or 0.0.0.0 for all interfaces"
                    .to_string(),
            });
        }
        let reconnect_initial = r.seconds("reconnect_initial_secs", 0.5, 0.05, 60.0)?;
        let reconnect_max = r.seconds("reconnect_max_secs", 10.0, 0.05, 600.0)?;
        if reconnect_max < reconnect_initial {
            return Err(ParamError {
                name: "reconnect_max_secs",
                problem: format!(
                    "{} is below reconnect_initial_secs ({})",
                    reconnect_max.as_secs_f64(),
                    reconnect_initial.as_secs_f64()
                ),
                accepted: "a number of seconds at least reconnect_initial_secs".to_string(),
            });
        }
        let screen = r.string("screen", "mech_full")?;
        let bitrate = r.integer("target_bitrate_bps", 2_000_000, 0, 100_000_000)?;
        let idr = r.integer("idr_interval_frames", 30, 0, 100_000)?;
        let camera_ca_path = optional_path(r.string("camera_ca_path", "")?);
        let aiming = AimingParams::read(&r)?;
        let plugins = r.string_array("image_raw.enable_pub_plugins", &ImageOutputs::PLUGINS)?;
        let outputs = ImageOutputs::from_plugins(&plugins).map_err(|problem| ParamError {
            name: "image_raw.enable_pub_plugins",
            problem,
            accepted: format!("a list of {}", ImageOutputs::PLUGINS.join(", ")),
        })?;
        Ok(Self {
            robot_host,
            grpc_port: port("grpc_port", 443)?,
            sdp_port: port("sdp_port", 31102)?,
            sdp_path,
            robot_ca_path: optional_path(r.string("robot_ca_path", "")?),
            camera_ca_path,
            screen: (!screen.is_empty()).then_some(screen),
            target_bitrate_bps: (bitrate > 0).then_some(bitrate),
            idr_interval_frames: (idr > 0).then_some(idr),
            initial_ptz_enabled: r.boolean("initial_ptz_enabled", false)?,
            initial_ptz_name: r.string("initial_ptz_name", "mech")?,
            initial_pan_deg: r.double("initial_pan_deg", 0.0, -360.0, 360.0)?,
            initial_tilt_deg: r.double("initial_tilt_deg", 0.0, -180.0, 180.0)?,
            initial_zoom: r.double("initial_zoom", 1.0, 1.0, 30.0)?,
            autostart: r.boolean("autostart", true)?,
            frame_id,
            camera_info_url: (!camera_info_url.is_empty()).then_some(camera_info_url),
            image_qos_depth: r.integer("image_qos_depth", 1, 1, 100)? as usize,
            image_qos_reliability: reliability,
            queue_depth: r.integer("queue_depth", 2, 1, 60)? as usize,
            max_access_unit_bytes: r.integer(
                "max_access_unit_bytes",
                DEFAULT_MAX_ACCESS_UNIT_BYTES as i64,
                64 * 1024,
                256 * 1024 * 1024,
            )? as usize,
            connect_timeout: r.seconds("connect_timeout_secs", 10.0, 0.5, 120.0)?,
            stall_timeout: r.seconds("stall_timeout_secs", 5.0, 0.5, 120.0)?,
            reorder_wait: Duration::from_millis(r.integer("reorder_wait_ms", 250, 0, 1000)? as u64),
            adaptive_bitrate: r.boolean("adaptive_bitrate", true)?,
            min_bitrate_bps: r.integer("min_bitrate_bps", 500_000, 50_000, 50_000_000)?,
            reconnect_initial,
            reconnect_max,
            token_refresh: r.seconds("token_refresh_secs", 3600.0, 10.0, 43_000.0)?,
            keyframe_wait: r.seconds("keyframe_wait_secs", 2.0, 0.0, 60.0)?,
            decoder,
            color_range,
            color_matrix,
            udp_bind_address,
            udp_receive_buffer_bytes: r.integer(
                "udp_receive_buffer_bytes",
                DEFAULT_UDP_RECEIVE_BUFFER_BYTES as i64,
                0,
                1 << 30,
            )? as usize,
            diagnostics_period: r.seconds("diagnostics_period_secs", 1.0, 0.1, 60.0)?,
            auto_trigger: r.boolean("auto_trigger", false)?,
            trigger_class_ids: r.string_array("trigger_class_ids", &["person", "0"])?,
            trigger_min_score: r.double("trigger_min_score", 0.5, 0.0, 1.0)?,
            trigger_timeout: r.seconds("trigger_timeout_secs", 10.0, 0.1, 3600.0)?,
            outputs,
            jpeg_quality: r.integer("jpeg_quality", 80, 1, 100)? as u8,
            jpeg_max_rate_hz: r.double("jpeg_max_rate_hz", 10.0, 0.1, 120.0)?,
            aiming,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn params(pairs: &[(&str, ParamValue)]) -> HashMap<String, ParamValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn defaults_and_spot_ip() {
        let p = NodeParams::read(&params(&[]), Some("10.0.0.3".into())).unwrap();
        assert_eq!(p.robot_host, "10.0.0.3");
        assert_eq!(p.grpc_port, 443);
        assert_eq!(p.queue_depth, 2);
        assert_eq!(p.image_qos_reliability, Reliability::Reliable);
        assert_eq!(p.screen.as_deref(), Some("mech_full"));
        assert!(p.outputs.raw && p.outputs.compressed && p.outputs.ffmpeg && p.outputs.foxglove);
        let only_ffmpeg = params(&[(
            "image_raw.enable_pub_plugins",
            ParamValue::StringArray(vec!["image_transport/ffmpeg".into()]),
        )]);
        let p = NodeParams::read(&only_ffmpeg, Some("h".into())).unwrap();
        assert!(p.outputs.ffmpeg && !p.outputs.raw && !p.outputs.compressed && !p.outputs.foxglove);
        let missing = NodeParams::read(&params(&[]), None).unwrap_err();
        assert_eq!(missing.name, "robot_host");
    }

    #[test]
    fn rejections_name_the_parameter_and_accepted_values() {
        let host = ("robot_host", ParamValue::String("h".into()));
        let cases = [
            (
                "image_qos_reliability",
                ParamValue::String("sometimes".into()),
                "reliable, best_effort",
            ),
            ("queue_depth", ParamValue::Integer(0), "from 1 to 60"),
            ("grpc_port", ParamValue::Integer(70_000), "from 1 to 65535"),
            (
                "color_matrix",
                ParamValue::String("bt2020".into()),
                "bt601, bt709",
            ),
            (
                "connect_timeout_secs",
                ParamValue::String("ten".into()),
                "a double",
            ),
            (
                "camera_info_url",
                ParamValue::String("http://x".into()),
                "file://",
            ),
            ("trigger_min_score", ParamValue::Double(1.5), "from 0 to 1"),
            ("jpeg_quality", ParamValue::Integer(0), "from 1 to 100"),
            (
                "aim_policy",
                ParamValue::String("nearest".into()),
                "round_robin",
            ),
            (
                "ptz_mount_xyz",
                ParamValue::DoubleArray(vec![0.0, 1.0]),
                "three numbers",
            ),
            (
                "image_raw.enable_pub_plugins",
                ParamValue::StringArray(vec!["image_transport/theora".into()]),
                "image_transport/compressed",
            ),
        ];
        for (name, value, accepted) in cases {
            let error =
                NodeParams::read(&params(&[host.clone(), (name, value)]), None).unwrap_err();
            assert_eq!(error.name, name);
            let message = error.to_string();
            assert!(
                message.contains(name) && message.contains(accepted),
                "{message}"
            );
        }
    }
}
