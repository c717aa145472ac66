//! The one declaration of every node parameter: name, type, default, limits or accepted
//! values, meaning, and whether a change takes effect while the node runs.
//!
//! Everything else follows from [`PARAMETERS`]: reading and validating ([`super::node_params`]),
//! refusing a bad `ros2 param set` ([`super::store`]), the ROS descriptors `ros2 param describe`
//! and rqt_reconfigure show, the start-up log, the README's parameter table and the comments of
//! `config/ptz_stream.yaml` (both checked against this table by a test; see [`render`]).

use std::fmt::Write as _;

use crate::aiming::lens::DEFAULT_HFOV_DEG_AT_ZOOM_1;
use crate::camera_link::answerer::DEFAULT_UDP_RECEIVE_BUFFER_BYTES;
use crate::media::depacketizer::DEFAULT_MAX_ACCESS_UNIT_BYTES;

use super::node_params::ParamValue;

/// When a change made while the node runs takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// At once, on the running stream (no reconnect).
    Live,
    /// Only at start: read-only while the node runs (set it in the parameter file or with
    /// `-p`, then restart the node).
    AtStart,
}

/// A parameter's type, default and accepted values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Bool {
        default: bool,
    },
    Integer {
        default: i64,
        min: i64,
        max: i64,
    },
    /// A number; an integer is accepted for it (YAML `10`, `ros2 param set ... 10`).
    Double {
        default: f64,
        min: f64,
        max: f64,
    },
    /// A string; when `choices` is not empty, one of them.
    String {
        default: &'static str,
        choices: &'static [&'static str],
    },
    /// A list of strings; when `choices` is not empty, each one of them.
    StringArray {
        default: &'static [&'static str],
        choices: &'static [&'static str],
    },
    /// Exactly `default.len()` finite numbers.
    DoubleArray {
        default: &'static [f64],
    },
}

/// One parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// What it means, for users (README, YAML comment, `ros2 param describe`).
    pub description: &'static str,
    pub apply: Apply,
    /// The section of the YAML file it belongs to.
    pub group: &'static str,
}

impl Kind {
    /// The default as a parameter value.
    pub fn default_value(&self) -> ParamValue {
        match *self {
            Self::Bool { default } => ParamValue::Bool(default),
            Self::Integer { default, .. } => ParamValue::Integer(default),
            Self::Double { default, .. } => ParamValue::Double(default),
            Self::String { default, .. } => ParamValue::String(default.to_string()),
            Self::StringArray { default, .. } => {
                ParamValue::StringArray(default.iter().map(|s| (*s).to_string()).collect())
            }
            Self::DoubleArray { default } => ParamValue::DoubleArray(default.to_vec()),
        }
    }

    /// The type's name, as in messages ("expected a double").
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bool { .. } => "bool",
            Self::Integer { .. } => "integer",
            Self::Double { .. } => "double",
            Self::String { .. } => "string",
            Self::StringArray { .. } => "string array",
            Self::DoubleArray { .. } => "double array",
        }
    }

    /// The accepted values, in words.
    pub fn accepted(&self) -> String {
        match self {
            Self::Bool { .. } => "true or false".to_string(),
            Self::Integer { min, max, .. } => format!("an integer from {min} to {max}"),
            Self::Double { min, max, .. } => format!("a number from {min} to {max}"),
            Self::String { choices: [], .. } => "a string".to_string(),
            Self::String { choices, .. } => format!("one of {}", choices.join(", ")),
            Self::StringArray { choices: [], .. } => "a list of strings".to_string(),
            Self::StringArray { choices, .. } => {
                format!("a list of {}", choices.join(", "))
            }
            Self::DoubleArray { default } => {
                format!(
                    "{} numbers, e.g. {}",
                    default.len(),
                    yaml_value(&self.default_value())
                )
            }
        }
    }
}

const ROBOT: &str = "Robot and camera";
const PREPARE: &str = "Camera settings (sent to the camera at once when changed)";
const STREAMING: &str = "Streaming";
const TOPICS: &str = "Topics";
const AIMING: &str = "Aiming the PTZ at people";
const TRIGGER: &str = "Detection trigger";
const RECORDING: &str = "Event recording (MCAP)";

use Apply::{AtStart, Live};

const fn spec(
    group: &'static str,
    name: &'static str,
    kind: Kind,
    apply: Apply,
    description: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        description,
        apply,
        group,
    }
}

const fn int(default: i64, min: i64, max: i64) -> Kind {
    Kind::Integer { default, min, max }
}

const fn num(default: f64, min: f64, max: f64) -> Kind {
    Kind::Double { default, min, max }
}

const fn text(default: &'static str) -> Kind {
    Kind::String {
        default,
        choices: &[],
    }
}

const fn choice(default: &'static str, choices: &'static [&'static str]) -> Kind {
    Kind::String { default, choices }
}

const fn flag(default: bool) -> Kind {
    Kind::Bool { default }
}

/// libavcodec when this build has it, else openh264.
const DEFAULT_DECODER: &str = if cfg!(feature = "libavcodec") {
    "libavcodec"
} else {
    "openh264"
};

/// The image outputs, as image_transport names its plugins.
pub const IMAGE_PLUGINS: &[&str] = &[
    "image_transport/raw",
    "image_transport/compressed",
    "image_transport/ffmpeg",
    "image_transport/foxglove",
];

/// Every parameter of `spot_ptz_stream`, in the order they are documented.
#[rustfmt::skip]
pub const PARAMETERS: &[ParamSpec] = &[
    spec(ROBOT, "robot_host", text(""), AtStart,
        "Robot hostname or IP. Empty: the SPOT_IP environment variable."),
    spec(ROBOT, "grpc_port", int(443, 1, 65_535), AtStart, "Robot gRPC port (TLS)."),
    spec(ROBOT, "sdp_port", int(31_102, 1, 65_535), AtStart,
        "Spot CAM WebRTC signalling port (HTTPS)."),
    spec(ROBOT, "sdp_path", text("h264.sdp"), AtStart, "Signalling path on the camera."),
    spec(ROBOT, "robot_ca_path", text(""), AtStart,
        "PEM root CA of the robot's gRPC certificates. Empty: the embedded Boston Dynamics root CA."),
    spec(ROBOT, "camera_ca_path", text(""), AtStart,
        "PEM CA of the camera's HTTPS certificate. Empty: not verified (like the official client; warns)."),
    spec(PREPARE, "screen", text("mech_full"), Live,
        "Compositor screen to stream (mech_full = the PTZ full screen). Empty: leave as it is."),
    spec(PREPARE, "target_bitrate_bps", int(2_000_000, 0, 100_000_000), Live,
        "Camera target bitrate, bits/s; the most the adaptive bitrate asks for. 0: leave as it is."),
    spec(PREPARE, "idr_interval_frames", int(30, 0, 100_000), Live,
        "Frames between IDR pictures (a small value shortens start-up and recovery). 0: leave as it is."),
    spec(PREPARE, "initial_ptz_enabled", flag(false), AtStart,
        "Move the PTZ to the initial pose before streaming (with aiming: once at start-up, and the pose aiming returns to)."),
    spec(PREPARE, "initial_ptz_name", text("mech"), AtStart, "The PTZ to move."),
    spec(PREPARE, "initial_pan_deg", num(0.0, -360.0, 360.0), AtStart, "Initial pan, degrees."),
    spec(PREPARE, "initial_tilt_deg", num(0.0, -180.0, 180.0), AtStart, "Initial tilt, degrees."),
    spec(PREPARE, "initial_zoom", num(1.0, 1.0, 30.0), AtStart, "Initial zoom factor."),
    spec(STREAMING, "autostart", flag(true), AtStart,
        "Start streaming at start-up. false: wait for ~/start_stream (or, with auto_trigger, a detection)."),
    spec(STREAMING, "udp_bind_address", text("0.0.0.0"), AtStart,
        "Local address of the WebRTC UDP sockets (0.0.0.0 = every interface)."),
    spec(STREAMING, "udp_port_min", int(0, 0, 65_535), AtStart,
        "Lowest local UDP port WebRTC may use (with udp_port_max; a session takes one port). 0 with udp_port_max 0: any port. A firewalled payload such as Spot CORE I/O admits inbound UDP only on 21000-22000."),
    spec(STREAMING, "udp_port_max", int(0, 0, 65_535), AtStart,
        "Highest local UDP port WebRTC may use; 0 with udp_port_min 0: any port."),
    spec(STREAMING, "udp_receive_buffer_bytes",
        int(DEFAULT_UDP_RECEIVE_BUFFER_BYTES as i64, 0, 1 << 30), AtStart,
        "Kernel receive buffer per WebRTC UDP socket, bytes (0 = system default). Capped by net.core.rmem_max; a warning names the sysctl when it is lower."),
    spec(STREAMING, "connect_timeout_secs", num(10.0, 0.5, 120.0), AtStart,
        "WebRTC connection timeout (signalling, ICE + DTLS), seconds."),
    spec(STREAMING, "stall_timeout_secs", num(5.0, 0.5, 120.0), Live,
        "No video for this long ends the session and reconnects, seconds."),
    spec(STREAMING, "reorder_wait_ms", int(250, 0, 1000), Live,
        "How long a missing RTP packet may take to arrive (reordered, or resent after the node's NACK) before its frame counts as lost, milliseconds; 0 = never wait."),
    spec(STREAMING, "adaptive_bitrate", flag(true), Live,
        "Lower the camera's bitrate when the link loses packets NACK cannot repair; raise it again, slowly, up to target_bitrate_bps when the link is clean."),
    spec(STREAMING, "min_bitrate_bps", int(500_000, 50_000, 50_000_000), Live,
        "The adaptive bitrate never asks for less than this, bits/s."),
    spec(STREAMING, "reconnect_initial_secs", num(0.5, 0.05, 60.0), AtStart,
        "First reconnect delay after a failure other than a lost link (doubles, with jitter); a lost link is retried about once per second."),
    spec(STREAMING, "reconnect_max_secs", num(10.0, 0.05, 600.0), AtStart,
        "Longest reconnect delay after a failure other than a lost link, seconds."),
    spec(STREAMING, "token_refresh_secs", num(3600.0, 10.0, 43_000.0), AtStart,
        "Re-mint the robot user token this often, seconds (the token lives 12 h)."),
    spec(STREAMING, "decoder", choice(DEFAULT_DECODER, &["libavcodec", "openh264"]), AtStart,
        "H.264 decoder: libavcodec (FFmpeg; withholds damaged pictures until the stream recovers) or openh264 (no system library)."),
    spec(STREAMING, "keyframe_wait_secs", num(2.0, 0.0, 60.0), AtStart,
        "Wait this long for an IDR (at start; with openh264 also after a loss) before decoding intra-refresh frames, seconds."),
    spec(STREAMING, "color_range", choice("limited", &["limited", "full"]), AtStart,
        "YUV range of the stream."),
    spec(STREAMING, "color_matrix", choice("bt601", &["bt601", "bt709"]), AtStart,
        "YUV matrix of the stream."),
    spec(STREAMING, "queue_depth", int(2, 1, 60), AtStart,
        "Decoded frames waiting to be published; when full the oldest is dropped (and counted)."),
    spec(STREAMING, "max_access_unit_bytes",
        int(DEFAULT_MAX_ACCESS_UNIT_BYTES as i64, 64 * 1024, 256 * 1024 * 1024), AtStart,
        "Largest H.264 access unit accepted, bytes; a larger one is dropped, counted in frames_oversized, and a keyframe requested."),
    spec(TOPICS, "frame_id", text("spot_cam_ptz_optical"), AtStart,
        "frame_id of image_raw and camera_info."),
    spec(TOPICS, "camera_info_url", text(""), AtStart,
        "Calibration (camera_calibration YAML) as file:///absolute/path.yaml; ~/set_camera_info writes it. Empty: uncalibrated."),
    spec(TOPICS, "image_qos_depth", int(1, 1, 100), AtStart,
        "History depth (keep-last) of image_raw and camera_info."),
    spec(TOPICS, "image_qos_reliability", choice("reliable", &["reliable", "best_effort"]), AtStart,
        "Reliability of image_raw and camera_info."),
    spec(TOPICS, "image_raw.enable_pub_plugins",
        Kind::StringArray { default: IMAGE_PLUGINS, choices: IMAGE_PLUGINS }, AtStart,
        "Image outputs to offer (image_transport's parameter): raw = image_raw (bgr8), compressed = image_raw/compressed (JPEG), ffmpeg = image_raw/ffmpeg and foxglove = image_raw/foxglove (the camera's H.264 passed through). Each costs nothing while nobody subscribes."),
    spec(TOPICS, "jpeg_quality", int(80, 1, 100), Live, "JPEG quality of image_raw/compressed."),
    spec(TOPICS, "jpeg_max_rate_hz", num(10.0, 0.1, 120.0), Live,
        "At most this many JPEG pictures per second on image_raw/compressed (the camera's frame rate caps it)."),
    spec(TOPICS, "diagnostics_period_secs", num(1.0, 0.1, 60.0), Live,
        "Period of ~/stats and /diagnostics, seconds."),
    spec(AIMING, "aiming", flag(true), AtStart,
        "Point the PTZ at detected people and at ~/look_at points; return to the initial pose after trigger_timeout_secs."),
    spec(AIMING, "detection_camera_info_topics",
        Kind::StringArray { default: &[], choices: &[] }, AtStart,
        "camera_info topics of the body cameras the detections come from (matched to a detection by frame_id)."),
    spec(AIMING, "ptz_parent_frame", text("body"), AtStart, "The frame the PTZ is mounted on."),
    spec(AIMING, "ptz_base_frame", text("spot_cam_ptz_base"), AtStart,
        "The PTZ's base frame (pan/tilt centre, x forward at pan = pan_offset_deg)."),
    spec(AIMING, "ptz_head_frame", text("spot_cam_ptz"), AtStart,
        "The PTZ head frame, turned by the measured pan and tilt; frame_id is its optical frame."),
    spec(AIMING, "ptz_mount_xyz", Kind::DoubleArray { default: &[0.0, 0.0, 0.0] }, Live,
        "The PTZ base's position in ptz_parent_frame, metres (measure on the robot); /tf_static follows."),
    spec(AIMING, "ptz_mount_rpy", Kind::DoubleArray { default: &[0.0, 0.0, 0.0] }, Live,
        "The PTZ base's roll, pitch, yaw in ptz_parent_frame, radians; /tf_static follows."),
    spec(AIMING, "pan_offset_deg", num(0.0, -360.0, 360.0), Live,
        "The PTZ's pan reading when it looks along the mount frame's +x (calibrate per robot)."),
    spec(AIMING, "max_pan_from_forward_deg", num(135.0, 1.0, 180.0), Live,
        "Points further than this from forward (either side) are not aimed at (behind the robot)."),
    spec(AIMING, "hfov_deg_at_zoom_1", num(DEFAULT_HFOV_DEG_AT_ZOOM_1, 1.0, 170.0), Live,
        "Horizontal field of view at zoom 1, degrees; zoom narrows it like a focal length (camera_info's K without a calibration, and the zoom that frames a person)."),
    spec(AIMING, "person_height_m", num(1.7, 0.1, 5.0), Live,
        "Height of a person: the range from a detection's box height, and the zoom."),
    spec(AIMING, "target_height_fraction", num(0.5, 0.05, 1.0), Live,
        "Zoom so that the person fills this much of the picture's height."),
    spec(AIMING, "aim_deadband_deg", num(1.0, 0.0, 45.0), Live,
        "Pan/tilt changes smaller than this are not sent to the PTZ."),
    spec(AIMING, "aim_zoom_deadband_fraction", num(0.15, 0.0, 1.0), Live,
        "Zoom changes smaller than this fraction are not sent."),
    spec(AIMING, "aim_max_rate_hz", num(2.0, 0.1, 50.0), Live,
        "At most this many PTZ commands per second."),
    spec(AIMING, "aim_policy", choice("largest", &["largest", "highest_score", "round_robin"]), Live,
        "Whom to look at among several people (the current one is kept while seen within aim_keep_within_deg)."),
    spec(AIMING, "aim_dwell_secs", num(5.0, 0.5, 600.0), Live,
        "round_robin: look at each person this long, seconds."),
    spec(AIMING, "aim_keep_within_deg", num(8.0, 0.1, 90.0), Live,
        "A person seen within this angle of the current target is the target (hysteresis)."),
    spec(AIMING, "ptz_command_hold_secs", num(10.0, 0.0, 3600.0), Live,
        "After a ~/ptz_command (a joystick, a script), detections do not move the PTZ for this long, and it does not go home; 0: aiming may move it again at once."),
    spec(TRIGGER, "auto_trigger", flag(false), Live,
        "Start the stream on a detection with a listed class_id and a score of at least trigger_min_score; stop it trigger_timeout_secs after the last one."),
    spec(TRIGGER, "trigger_class_ids",
        Kind::StringArray { default: &["person", "0"], choices: &[] }, Live,
        "Detection class_ids that start the stream (and that aiming looks at)."),
    spec(TRIGGER, "trigger_min_score", num(0.5, 0.0, 1.0), Live,
        "Lowest detection score that starts the stream."),
    spec(TRIGGER, "trigger_timeout_secs", num(10.0, 0.1, 3600.0), Live,
        "Stop this long after the last matching detection, seconds."),
    spec(RECORDING, "record_on_detection", flag(false), Live,
        "Record an event file while a detection matches trigger_class_ids and trigger_min_score, until trigger_timeout_secs after the last one, beginning with record_pre_roll_secs of what came before (kept in memory while this is on). Records what the stream sends: combine with autostart or auto_trigger."),
    spec(RECORDING, "record_dir", text(""), AtStart,
        "Directory of the event recordings (created when needed). Empty: $ROS_HOME/spot_ptz_stream/recordings (ROS_HOME defaults to ~/.ros)."),
    spec(RECORDING, "record_pre_roll_secs", num(5.0, 0.0, 30.0), AtStart,
        "A detection's recording begins this long before the detection (from a keyframe at or before), seconds."),
    spec(RECORDING, "record_max_file_secs", num(300.0, 1.0, 3600.0), AtStart,
        "A longer recording continues in a new file, split at a keyframe, seconds."),
    spec(RECORDING, "record_max_total_bytes", int(1 << 30, 100_000, 1 << 50), AtStart,
        "The recordings in record_dir are kept under this total, bytes; the oldest files are deleted first (never the one being written)."),
];

/// The declaration of `name`.
pub fn find(name: &str) -> Option<&'static ParamSpec> {
    PARAMETERS.iter().find(|spec| spec.name == name)
}

/// A value as YAML (and the README) writes it: strings quoted, lists in brackets.
pub fn yaml_value(value: &ParamValue) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""));
    match value {
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Integer(i) => i.to_string(),
        ParamValue::Double(d) => format!("{d:?}"),
        ParamValue::String(s) => quoted(s),
        ParamValue::StringArray(v) => list(v.iter().map(|s| quoted(s))),
        ParamValue::DoubleArray(v) => list(v.iter().map(|d| format!("{d:?}"))),
        ParamValue::BoolArray(v) => list(v.iter().map(bool::to_string)),
        ParamValue::IntegerArray(v) => list(v.iter().map(i64::to_string)),
        ParamValue::ByteArray(v) => list(v.iter().map(u8::to_string)),
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

/// The README's parameter table and the YAML file, made from [`PARAMETERS`].
pub mod render {
    use super::*;

    /// The README's table (between its `parameters` markers).
    pub fn readme_table() -> String {
        let mut out = String::from("| parameter | default | live | meaning |\n|---|---|---|---|\n");
        for spec in PARAMETERS {
            let live = match spec.apply {
                Live => "yes",
                AtStart => "no",
            };
            let accepted = match spec.kind {
                Kind::String { choices: [], .. } | Kind::StringArray { choices: [], .. } => {
                    String::new()
                }
                kind => format!(" Accepted: {}.", kind.accepted()),
            };
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {live} | {}{accepted} |",
                spec.name,
                yaml_value(&spec.kind.default_value()),
                spec.description.replace('|', "\\|"),
            );
        }
        out
    }

    /// `config/ptz_stream.yaml`: every parameter at its default, its meaning as a comment.
    pub fn yaml_file() -> String {
        let mut out = String::from(
            "# Parameters of spot_ptz_stream (every one optional; these are the defaults).\n\
             # Made from the node's parameter table (src/params/table.rs; a test keeps them equal).\n\
             # Credentials never go here: export BOSDYN_CLIENT_USERNAME and BOSDYN_CLIENT_PASSWORD.\n\
             # \"live\": `ros2 param set` changes it on the running stream; the others are read-only\n\
             # while the node runs.\n\
             /**:\n  ros__parameters:\n",
        );
        let mut group = "";
        for spec in PARAMETERS {
            if spec.group != group {
                if !group.is_empty() {
                    out.push('\n');
                }
                group = spec.group;
                let _ = writeln!(out, "    # --- {group} ---");
            }
            let live = if spec.apply == Live { " (live)" } else { "" };
            let accepted = match spec.kind {
                Kind::String { choices: [], .. } | Kind::StringArray { choices: [], .. } => {
                    String::new()
                }
                kind => format!(" Accepted: {}.", kind.accepted()),
            };
            for line in wrap(&format!("{}{accepted}{live}", spec.description), 90) {
                let _ = writeln!(out, "    # {line}");
            }
            let value = yaml_value(&spec.kind.default_value());
            match spec.name.split_once('.') {
                Some((outer, inner)) => {
                    let _ = writeln!(out, "    {outer}:\n      {inner}: {value}");
                }
                None => {
                    let _ = writeln!(out, "    {}: {value}", spec.name);
                }
            }
        }
        out
    }

    fn wrap(text: &str, width: usize) -> Vec<String> {
        let mut lines = vec![String::new()];
        for word in text.split_whitespace() {
            let line = lines
                .last_mut()
                .filter(|l| l.is_empty() || l.len() + 1 + word.len() <= width);
            match line {
                Some(line) => {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(word);
                }
                None => lines.push(word.to_string()),
            }
        }
        lines
    }
}
