//! The ROS node's parameters as one struct, read from values checked against their declarations
//! in [`super::table`], with the checks that span parameters. Messages name the parameter and
//! its accepted values. ROS-free: the node reads values through [`ParamSource`], so validation
//! is tested without ROS.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::aiming::selection::{PolicyName, SelectionPolicy};
use crate::camera_link::port_range::UdpPortRange;
use crate::media::convert::{ColorMatrix, ColorRange};
use crate::media::decoder::DecoderBackend;

use super::table::{self, Kind, ParamSpec};

/// A parameter value as ROS carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    Integer(i64),
    Double(f64),
    String(String),
    StringArray(Vec<String>),
    DoubleArray(Vec<f64>),
    /// Types no parameter of this node has; kept to say what was given.
    BoolArray(Vec<bool>),
    IntegerArray(Vec<i64>),
    ByteArray(Vec<u8>),
}

impl ParamValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "bool",
            Self::Integer(_) => "integer",
            Self::Double(_) => "double",
            Self::String(_) => "string",
            Self::StringArray(_) => "string array",
            Self::DoubleArray(_) => "double array",
            Self::BoolArray(_) => "bool array",
            Self::IntegerArray(_) => "integer array",
            Self::ByteArray(_) => "byte array",
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
    pub name: String,
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
    /// `None`: any port.
    pub udp_port_range: Option<UdpPortRange>,
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
    pub recording: RecordingParams,
}

/// Where and how the node records events (see [`crate::record::events`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingParams {
    /// Record while a matching detection is seen (and keep the pre-roll meanwhile).
    pub on_detection: bool,
    /// `None`: `$ROS_HOME/spot_ptz_stream/recordings`.
    pub dir: Option<PathBuf>,
    pub pre_roll: Duration,
    pub max_file: Duration,
    pub max_total_bytes: u64,
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
    /// After a `~/ptz_command`, detections do not move the PTZ for this long.
    pub manual_hold: Duration,
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
    /// The outputs named in `image_raw.enable_pub_plugins` (already checked against
    /// [`table::IMAGE_PLUGINS`]).
    fn from_plugins(names: &[String]) -> Self {
        let named = |plugin: &str| names.iter().any(|n| n == plugin);
        Self {
            raw: named("image_transport/raw"),
            compressed: named("image_transport/compressed"),
            ffmpeg: named("image_transport/ffmpeg"),
            foxglove: named("image_transport/foxglove"),
        }
    }
}

type Param<T> = Result<T, ParamError>;

fn wrong_type(spec: &ParamSpec, got: &ParamValue) -> ParamError {
    type_mismatch(spec.name, &spec.kind, got)
}

fn type_mismatch(name: &str, kind: &Kind, got: &ParamValue) -> ParamError {
    ParamError {
        name: name.to_string(),
        problem: format!(
            "expected {}, got {}",
            with_article(kind.type_name()),
            with_article(got.type_name())
        ),
        accepted: kind.accepted(),
    }
}

/// "an integer", "a double".
fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

/// Checks `value` against the declaration of its parameter: its type, and its range or
/// accepted values. An integer given for a number parameter becomes a number.
pub fn check(spec: &ParamSpec, value: ParamValue) -> Param<ParamValue> {
    check_value(spec.name, &spec.kind, value)
}

/// [`check`] for a parameter named `name` of this kind (also one declared at start, such as a
/// QoS override).
pub fn check_value(name: &str, kind: &Kind, value: ParamValue) -> Param<ParamValue> {
    let refuse = |problem: String| ParamError {
        name: name.to_string(),
        problem,
        accepted: kind.accepted(),
    };
    match (kind, value) {
        (Kind::Bool { .. }, value @ ParamValue::Bool(_)) => Ok(value),
        (Kind::Integer { min, max, .. }, ParamValue::Integer(i)) => {
            if (*min..=*max).contains(&i) {
                Ok(ParamValue::Integer(i))
            } else {
                Err(refuse(format!("{i} is out of range")))
            }
        }
        (Kind::Double { min, max, .. }, ParamValue::Double(d)) => {
            // NaN is never within the range.
            if d >= *min && d <= *max {
                Ok(ParamValue::Double(d))
            } else {
                Err(refuse(format!("{d} is out of range")))
            }
        }
        (Kind::Double { .. }, ParamValue::Integer(i)) => {
            check_value(name, kind, ParamValue::Double(i as f64))
        }
        (Kind::String { choices, .. }, ParamValue::String(s)) => {
            if choices.is_empty() || choices.contains(&s.as_str()) {
                Ok(ParamValue::String(s))
            } else {
                Err(refuse(format!("{s:?} is not accepted")))
            }
        }
        (Kind::StringArray { choices, .. }, ParamValue::StringArray(v)) => {
            match v
                .iter()
                .find(|s| !choices.is_empty() && !choices.contains(&s.as_str()))
            {
                Some(s) => Err(refuse(format!("{s:?} is not accepted"))),
                None => Ok(ParamValue::StringArray(v)),
            }
        }
        (Kind::DoubleArray { .. }, ParamValue::IntegerArray(v)) => check_value(
            name,
            kind,
            ParamValue::DoubleArray(v.into_iter().map(|i| i as f64).collect()),
        ),
        (Kind::DoubleArray { default }, ParamValue::DoubleArray(v)) => {
            if v.len() == default.len() && v.iter().all(|x| x.is_finite()) {
                Ok(ParamValue::DoubleArray(v))
            } else {
                Err(refuse(format!(
                    "{v:?} is not {} finite numbers",
                    default.len()
                )))
            }
        }
        (_, other) => Err(type_mismatch(name, kind, &other)),
    }
}

/// Accessors of [`Reader`]: the checked value of a parameter declared with this type.
macro_rules! typed {
    ($($accessor:ident -> $type:ty = $variant:ident;)*) => {$(
        fn $accessor(&self, name: &'static str) -> Param<$type> {
            match self.checked(name)? {
                (ParamValue::$variant(value), _) => Ok(value),
                (other, spec) => Err(wrong_type(spec, &other)),
            }
        }
    )*};
}

/// Reads parameters by name, each checked against its declaration in [`table::PARAMETERS`].
struct Reader<'a> {
    source: &'a dyn ParamSource,
}

impl Reader<'_> {
    /// The checked value of `name`, or its default when it is not set.
    fn checked(&self, name: &'static str) -> Param<(ParamValue, &'static ParamSpec)> {
        let Some(spec) = table::find(name) else {
            return Err(ParamError {
                name: name.to_string(),
                problem: "is read but not declared (a bug of this node)".to_string(),
                accepted: "a parameter of src/params/table.rs".to_string(),
            });
        };
        match self.source.get(name) {
            None => Ok((spec.kind.default_value(), spec)),
            Some(value) => Ok((check(spec, value)?, spec)),
        }
    }

    typed! {
        string -> String = String;
        boolean -> bool = Bool;
        integer -> i64 = Integer;
        double -> f64 = Double;
        string_array -> Vec<String> = StringArray;
    }

    fn seconds(&self, name: &'static str) -> Param<Duration> {
        Ok(Duration::from_secs_f64(self.double(name)?))
    }

    /// A string parameter with accepted values, parsed.
    fn choice<T: std::str::FromStr>(&self, name: &'static str) -> Param<T> {
        let (value, spec) = self.checked(name)?;
        match &value {
            ParamValue::String(s) => s.parse().map_err(|_| ParamError {
                name: name.to_string(),
                problem: format!("{s:?} is not accepted"),
                accepted: spec.kind.accepted(),
            }),
            other => Err(wrong_type(spec, other)),
        }
    }

    /// A list of exactly three numbers.
    fn triple(&self, name: &'static str) -> Param<[f64; 3]> {
        match self.checked(name)? {
            (ParamValue::DoubleArray(v), spec) => <[f64; 3]>::try_from(v.as_slice())
                .map_err(|_| wrong_type(spec, &ParamValue::DoubleArray(v.clone()))),
            (other, spec) => Err(wrong_type(spec, &other)),
        }
    }

    /// A TF frame name.
    fn frame(&self, name: &'static str) -> Param<String> {
        let frame = self.string(name)?;
        if frame.is_empty() || frame.contains(char::is_whitespace) {
            return Err(ParamError {
                name: name.to_string(),
                problem: format!("{frame:?} is not a frame name"),
                accepted: "a TF frame name without spaces, such as body".to_string(),
            });
        }
        Ok(frame)
    }
}

impl AimingParams {
    fn read(r: &Reader<'_>) -> Param<Self> {
        let policy: PolicyName = r.choice("aim_policy")?;
        let dwell = r.seconds("aim_dwell_secs")?;
        let policy = match policy {
            PolicyName::Largest => SelectionPolicy::Largest,
            PolicyName::HighestScore => SelectionPolicy::HighestScore,
            PolicyName::RoundRobin => SelectionPolicy::RoundRobin { dwell },
        };
        Ok(Self {
            enabled: r.boolean("aiming")?,
            pan_offset_deg: r.double("pan_offset_deg")?,
            max_pan_from_forward_deg: r.double("max_pan_from_forward_deg")?,
            hfov_deg_at_zoom_1: r.double("hfov_deg_at_zoom_1")?,
            person_height_m: r.double("person_height_m")?,
            target_height_fraction: r.double("target_height_fraction")?,
            deadband_deg: r.double("aim_deadband_deg")?,
            zoom_deadband_fraction: r.double("aim_zoom_deadband_fraction")?,
            max_rate_hz: r.double("aim_max_rate_hz")?,
            policy,
            keep_within_deg: r.double("aim_keep_within_deg")?,
            manual_hold: r.seconds("ptz_command_hold_secs")?,
            detection_camera_info_topics: r.string_array("detection_camera_info_topics")?,
            parent_frame: r.frame("ptz_parent_frame")?,
            base_frame: r.frame("ptz_base_frame")?,
            head_frame: r.frame("ptz_head_frame")?,
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
        let mut robot_host = r.string("robot_host")?;
        if robot_host.is_empty() {
            robot_host = spot_ip.unwrap_or_default();
        }
        if robot_host.is_empty() || robot_host.chars().any(char::is_whitespace) {
            return Err(ParamError {
                name: "robot_host".to_string(),
                problem: format!("{robot_host:?} is not a host name or IP address"),
                accepted: "the robot's hostname or IP, as a parameter or in the SPOT_IP environment variable".to_string(),
            });
        }
        let port = |name: &'static str| -> Param<u16> {
            let port = r.integer(name)?;
            u16::try_from(port).map_err(|_| ParamError {
                name: name.to_string(),
                problem: format!("{port} is not a port"),
                accepted: "a port from 1 to 65535".to_string(),
            })
        };
        let sdp_path = r.string("sdp_path")?;
        if sdp_path.trim_start_matches('/').is_empty() || sdp_path.contains(char::is_whitespace) {
            return Err(ParamError {
                name: "sdp_path".to_string(),
                problem: format!("{sdp_path:?} is not a URL path"),
                accepted: "a path such as h264.sdp".to_string(),
            });
        }
        let decoder = r.string("decoder")?;
        let decoder: DecoderBackend = decoder.parse().map_err(|problem| ParamError {
            name: "decoder".to_string(),
            problem,
            accepted: DecoderBackend::ACCEPTED.to_string(),
        })?;
        let frame_id = r.frame("frame_id")?;
        let camera_info_url = r.string("camera_info_url")?;
        if !camera_info_url.is_empty() && !camera_info_url.starts_with("file://") {
            return Err(ParamError {
                name: "camera_info_url".to_string(),
                problem: format!("{camera_info_url:?} is not supported"),
                accepted: "empty (uncalibrated) or a file:///absolute/path.yaml URL".to_string(),
            });
        }
        let udp_bind_address = r.string("udp_bind_address")?;
        if udp_bind_address.parse::<std::net::IpAddr>().is_err() {
            return Err(ParamError {
                name: "udp_bind_address".to_string(),
                problem: format!("{udp_bind_address:?} is not an IP address"),
                accepted: "an IP address of this computer, or 0.0.0.0 for all interfaces"
                    .to_string(),
            });
        }
        let udp_port_range =
            UdpPortRange::from_params(r.integer("udp_port_min")?, r.integer("udp_port_max")?)
                .map_err(|error| ParamError {
                    name: "udp_port_min".to_string(),
                    problem: error.to_string(),
                    accepted: "both 0 (any port), or a range such as 21000 and 22000".to_string(),
                })?;
        let reconnect_initial = r.seconds("reconnect_initial_secs")?;
        let reconnect_max = r.seconds("reconnect_max_secs")?;
        if reconnect_max < reconnect_initial {
            return Err(ParamError {
                name: "reconnect_max_secs".to_string(),
                problem: format!(
                    "{} is below reconnect_initial_secs ({})",
                    reconnect_max.as_secs_f64(),
                    reconnect_initial.as_secs_f64()
                ),
                accepted: "a number of seconds at least reconnect_initial_secs".to_string(),
            });
        }
        let screen = r.string("screen")?;
        let bitrate = r.integer("target_bitrate_bps")?;
        let idr = r.integer("idr_interval_frames")?;
        let aiming = AimingParams::read(&r)?;
        let plugins = r.string_array("image_raw.enable_pub_plugins")?;
        Ok(Self {
            robot_host,
            grpc_port: port("grpc_port")?,
            sdp_port: port("sdp_port")?,
            sdp_path,
            robot_ca_path: optional_path(r.string("robot_ca_path")?),
            camera_ca_path: optional_path(r.string("camera_ca_path")?),
            screen: (!screen.is_empty()).then_some(screen),
            target_bitrate_bps: (bitrate > 0).then_some(bitrate),
            idr_interval_frames: (idr > 0).then_some(idr),
            initial_ptz_enabled: r.boolean("initial_ptz_enabled")?,
            initial_ptz_name: r.string("initial_ptz_name")?,
            initial_pan_deg: r.double("initial_pan_deg")?,
            initial_tilt_deg: r.double("initial_tilt_deg")?,
            initial_zoom: r.double("initial_zoom")?,
            autostart: r.boolean("autostart")?,
            frame_id,
            camera_info_url: (!camera_info_url.is_empty()).then_some(camera_info_url),
            image_qos_depth: r.integer("image_qos_depth")? as usize,
            image_qos_reliability: r.choice("image_qos_reliability")?,
            queue_depth: r.integer("queue_depth")? as usize,
            max_access_unit_bytes: r.integer("max_access_unit_bytes")? as usize,
            connect_timeout: r.seconds("connect_timeout_secs")?,
            stall_timeout: r.seconds("stall_timeout_secs")?,
            reorder_wait: Duration::from_millis(r.integer("reorder_wait_ms")? as u64),
            adaptive_bitrate: r.boolean("adaptive_bitrate")?,
            min_bitrate_bps: r.integer("min_bitrate_bps")?,
            reconnect_initial,
            reconnect_max,
            token_refresh: r.seconds("token_refresh_secs")?,
            keyframe_wait: r.seconds("keyframe_wait_secs")?,
            decoder,
            color_range: r.choice("color_range")?,
            color_matrix: r.choice("color_matrix")?,
            udp_bind_address,
            udp_port_range,
            udp_receive_buffer_bytes: r.integer("udp_receive_buffer_bytes")? as usize,
            diagnostics_period: r.seconds("diagnostics_period_secs")?,
            auto_trigger: r.boolean("auto_trigger")?,
            trigger_class_ids: r.string_array("trigger_class_ids")?,
            trigger_min_score: r.double("trigger_min_score")?,
            trigger_timeout: r.seconds("trigger_timeout_secs")?,
            outputs: ImageOutputs::from_plugins(&plugins),
            jpeg_quality: r.integer("jpeg_quality")? as u8,
            jpeg_max_rate_hz: r.double("jpeg_max_rate_hz")?,
            aiming,
            recording: RecordingParams {
                on_detection: r.boolean("record_on_detection")?,
                dir: optional_path(r.string("record_dir")?),
                pre_roll: r.seconds("record_pre_roll_secs")?,
                max_file: r.seconds("record_max_file_secs")?,
                max_total_bytes: r.integer("record_max_total_bytes")? as u64,
            },
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

    /// Records the names asked for.
    struct Recorder(std::cell::RefCell<Vec<String>>);

    impl ParamSource for Recorder {
        fn get(&self, name: &str) -> Option<ParamValue> {
            self.0.borrow_mut().push(name.to_string());
            (name == "robot_host").then(|| ParamValue::String("h".into()))
        }
    }

    #[test]
    fn every_declared_parameter_is_read_and_every_read_one_declared() {
        let recorder = Recorder(Default::default());
        NodeParams::read(&recorder, None).unwrap();
        let mut read = recorder.0.take();
        read.sort();
        read.dedup();
        let mut declared: Vec<String> = table::PARAMETERS
            .iter()
            .map(|spec| spec.name.to_string())
            .collect();
        declared.sort();
        assert_eq!(read, declared);
        // Each default passes its own declaration's check.
        for spec in table::PARAMETERS {
            assert_eq!(
                check(spec, spec.kind.default_value()),
                Ok(spec.kind.default_value()),
                "{}",
                spec.name
            );
        }
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
                "3 numbers",
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
