//! The `ros2msg` schema of a message type, read from the ament index: the type's `.msg` text
//! followed by every type it uses (recursively, each once), as rosbag2 writes it into MCAP.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Between two definitions of a `ros2msg` schema: a line of 80 `=`.
const DELIMITER: &str =
    "================================================================================";

/// Types of a `.msg` field that are not messages (so not dependencies).
const PRIMITIVES: &[&str] = &[
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "string", "wstring",
];

/// A message type's schema could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown message type {type_name}{detail}")]
    NotFound {
        type_name: String,
        /// Who uses it, where it was looked for and what to install.
        detail: String,
    },
    #[error("bad message type name {0:?}: expected `pkg/msg/Type` (or `pkg/Type`)")]
    BadName(String),
    #[error("cannot read {path}: {source}; check the file's permissions")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Finds `.msg` files in ament prefixes (`<prefix>/share/<pkg>/msg/<Type>.msg`), the first
/// prefix holding a type winning, as in `AMENT_PREFIX_PATH`.
#[derive(Debug, Clone)]
pub struct SchemaSource {
    prefixes: Vec<PathBuf>,
}

/// A message type as `package` and `name` (`sensor_msgs`, `CameraInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TypeName {
    package: String,
    name: String,
}

impl TypeName {
    /// `pkg/msg/Type` or `pkg/Type`.
    fn parse(full: &str) -> Result<Self, SchemaError> {
        let parts: Vec<&str> = full.split('/').collect();
        let (package, name) = match parts.as_slice() {
            [package, "msg", name] | [package, name] => (*package, *name),
            _ => return Err(SchemaError::BadName(full.to_string())),
        };
        let valid =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid(package) || !valid(name) {
            return Err(SchemaError::BadName(full.to_string()));
        }
        Ok(Self {
            package: package.to_string(),
            name: name.to_string(),
        })
    }

    /// As written after `MSG:` and in field types: `pkg/Type`.
    fn short(&self) -> String {
        format!("{}/{}", self.package, self.name)
    }

    fn full(&self) -> String {
        format!("{}/msg/{}", self.package, self.name)
    }
}

impl SchemaSource {
    /// Searches these prefixes, in order.
    pub fn new(prefixes: Vec<PathBuf>) -> Self {
        Self { prefixes }
    }

    /// The prefixes of `AMENT_PREFIX_PATH` (none when it is unset: every type is then unknown).
    pub fn from_env() -> Self {
        let prefixes = std::env::var_os("AMENT_PREFIX_PATH")
            .map(|value| {
                std::env::split_paths(&value)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Self::new(prefixes)
    }

    /// The `ros2msg` schema data of `type_name` (`pkg/msg/Type`): its `.msg` text, then for
    /// each message type it uses, directly or not, once: `\n`, 80 `=`, `\n`, `MSG: pkg/Type\n`
    /// and that type's text.
    pub fn resolve(&self, type_name: &str) -> Result<String, SchemaError> {
        let root = TypeName::parse(type_name)?;
        let root_text = self.read(&root, None)?;
        let mut out = root_text.clone();
        let mut seen: HashSet<TypeName> = HashSet::from([root.clone()]);
        // Depth-first, in the order the fields name them.
        let mut pending: Vec<(TypeName, TypeName)> = dependencies(&root, &root_text)
            .into_iter()
            .rev()
            .map(|dep| (dep, root.clone()))
            .collect();
        while let Some((dep, user)) = pending.pop() {
            if !seen.insert(dep.clone()) {
                continue;
            }
            let text = self.read(&dep, Some(&user))?;
            out.push('\n');
            out.push_str(DELIMITER);
            out.push_str("\nMSG: ");
            out.push_str(&dep.short());
            out.push('\n');
            out.push_str(&text);
            for next in dependencies(&dep, &text).into_iter().rev() {
                if !seen.contains(&next) {
                    pending.push((next, dep.clone()));
                }
            }
        }
        Ok(out)
    }

    fn read(&self, ty: &TypeName, needed_by: Option<&TypeName>) -> Result<String, SchemaError> {
        for prefix in &self.prefixes {
            let path = msg_path(prefix, ty);
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SchemaError::Read { path, source }),
            }
        }
        let needed_by = needed_by
            .map(|user| format!(", used by {}", user.full()))
            .unwrap_or_default();
        let prefixes = self
            .prefixes
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(SchemaError::NotFound {
            type_name: ty.full(),
            detail: format!(
                "{needed_by}: no share/{package}/msg/{name}.msg under the ament prefixes \
                 [{prefixes}]; install the package (e.g. `apt install ros-jazzy-{apt_name}`) or \
                 source the workspace that builds it",
                package = ty.package,
                name = ty.name,
                apt_name = ty.package.replace('_', "-"),
            ),
        })
    }
}

fn msg_path(prefix: &Path, ty: &TypeName) -> PathBuf {
    prefix
        .join("share")
        .join(&ty.package)
        .join("msg")
        .join(format!("{}.msg", ty.name))
}

/// The message types the fields of `owner`'s `.msg` text use, in order, repeats removed.
fn dependencies(owner: &TypeName, text: &str) -> Vec<TypeName> {
    let mut deps: Vec<TypeName> = Vec::new();
    for line in text.lines() {
        let Some(field_type) = field_type(line) else {
            continue;
        };
        let Some(dep) = message_type(owner, field_type) else {
            continue;
        };
        if !deps.contains(&dep) {
            deps.push(dep);
        }
    }
    deps
}

/// The type token of a field or constant line (`float64[9] k # comment` → `float64[9]`), `None`
/// for blank and comment lines.
fn field_type(line: &str) -> Option<&str> {
    let code = line.split('#').next().unwrap_or("");
    code.split_whitespace().next()
}

/// The message type a field type names, `None` for primitives. Arrays (`T[]`, `T[N]`,
/// `T[<=N]`) and bounds (`string<=N`) are stripped; `Header` is `std_msgs/Header`; another
/// name without a package is in `owner`'s package.
fn message_type(owner: &TypeName, field_type: &str) -> Option<TypeName> {
    let base = field_type.split('[').next().unwrap_or(field_type);
    let base = base.split("<=").next().unwrap_or(base);
    if base.is_empty() || PRIMITIVES.contains(&base) {
        return None;
    }
    match base.split('/').collect::<Vec<_>>().as_slice() {
        [package, "msg", name] | [package, name] => Some(TypeName {
            package: (*package).to_string(),
            name: (*name).to_string(),
        }),
        ["Header"] => Some(TypeName {
            package: "std_msgs".to_string(),
            name: "Header".to_string(),
        }),
        [name] => Some(TypeName {
            package: owner.package.clone(),
            name: (*name).to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_msg(prefix: &Path, package: &str, name: &str, text: &str) {
        let dir = prefix.join("share").join(package).join("msg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.msg")), text).unwrap();
    }

    fn sections(schema: &str) -> Vec<String> {
        schema
            .split(&format!("\n{DELIMITER}\n"))
            .skip(1)
            .map(|s| s.lines().next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn fake_types_resolve_depth_first_each_once_with_arrays_bounds_constants_and_header() {
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("first");
        let second = tmp.path().join("second");
        write_msg(
            &first,
            "pkg",
            "Top",
            "# a comment naming other/Nope\nHeader header\nInner[] inners # Other too\n\
             other/Leaf[3] leaves\nother/msg/Leaf[<=4] more\nstring<=8 short\nint32 LIMIT=5\n\
             uint8 X = 1\nfloat64[9] k\nwstring<=3[] w\n",
        );
        write_msg(&first, "pkg", "Inner", "other/Leaf leaf\nbool b\n");
        write_msg(&second, "pkg", "Inner", "shadowed: the first prefix wins\n");
        write_msg(&second, "other", "Leaf", "builtin_interfaces/Time stamp\n");
        write_msg(
            &second,
            "std_msgs",
            "Header",
            "builtin_interfaces/Time stamp\nstring frame_id\n",
        );
        write_msg(
            &second,
            "builtin_interfaces",
            "Time",
            "int32 sec\nuint32 nanosec\n",
        );

        let source = SchemaSource::new(vec![first.clone(), second.clone()]);
        let schema = source.resolve("pkg/msg/Top").unwrap();
        assert!(schema.starts_with("# a comment naming other/Nope\nHeader header\n"));
        assert_eq!(
            sections(&schema),
            [
                "MSG: std_msgs/Header",
                "MSG: builtin_interfaces/Time",
                "MSG: pkg/Inner",
                "MSG: other/Leaf",
            ]
        );
        let inner = format!("\n{DELIMITER}\nMSG: pkg/Inner\nother/Leaf leaf\nbool b\n");
        assert!(schema.contains(&inner), "{schema}");
        assert_eq!(source.resolve("pkg/Top").unwrap(), schema);
    }

    #[test]
    fn unknown_dependency_names_the_type_the_user_and_the_prefixes() {
        let tmp = tempfile::tempdir().unwrap();
        write_msg(
            tmp.path(),
            "pkg",
            "Top",
            "foxglove_msgs/CompressedVideo video\n",
        );
        let source = SchemaSource::new(vec![tmp.path().to_path_buf()]);
        let message = source.resolve("pkg/msg/Top").unwrap_err().to_string();
        assert!(
            message.contains(
                "unknown message type foxglove_msgs/msg/CompressedVideo, used by pkg/msg/Top"
            ),
            "{message}"
        );
        assert!(
            message.contains(&tmp.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("ros-jazzy-foxglove-msgs"), "{message}");
        assert!(matches!(
            source.resolve("pkg/srv/Top"),
            Err(SchemaError::BadName(_))
        ));
        assert!(matches!(
            source.resolve("nope/msg/Missing"),
            Err(SchemaError::NotFound { .. })
        ));
    }

    #[test]
    fn real_camera_info_and_detection_array_include_each_dependency_once() {
        // The ROS installation the tests run with (scripts/ros-env.sh sets it).
        assert!(
            std::env::var_os("AMENT_PREFIX_PATH").is_some(),
            "AMENT_PREFIX_PATH is not set: source scripts/ros-env.sh (or a ROS 2 setup.bash)"
        );
        let source = SchemaSource::from_env();
        let info = source.resolve("sensor_msgs/msg/CameraInfo").unwrap();
        assert_eq!(
            sections(&info),
            [
                "MSG: std_msgs/Header",
                "MSG: builtin_interfaces/Time",
                "MSG: sensor_msgs/RegionOfInterest",
            ]
        );
        let detections = source.resolve("vision_msgs/msg/Detection2DArray").unwrap();
        let names = sections(&detections);
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for needed in [
            "MSG: std_msgs/Header",
            "MSG: builtin_interfaces/Time",
            "MSG: vision_msgs/Detection2D",
            "MSG: vision_msgs/ObjectHypothesisWithPose",
            "MSG: vision_msgs/ObjectHypothesis",
            "MSG: geometry_msgs/PoseWithCovariance",
            "MSG: geometry_msgs/Pose",
            "MSG: geometry_msgs/Point",
            "MSG: geometry_msgs/Quaternion",
            "MSG: vision_msgs/BoundingBox2D",
            "MSG: vision_msgs/Pose2D",
            "MSG: vision_msgs/Point2D",
        ] {
            assert!(names.iter().any(|n| n == needed), "{needed} in {names:?}");
        }
        assert_eq!(names.len(), 12, "{names:?}");
        let video = source.resolve("foxglove_msgs/msg/CompressedVideo").unwrap();
        assert_eq!(sections(&video), ["MSG: builtin_interfaces/Time"]);
    }
}
