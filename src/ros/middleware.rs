//! Large images on a stock ROS 2 installation: the node's own Fast DDS profile.
//!
//! A stock Jazzy or Humble installation runs Fast DDS (`rmw_fastrtps_cpp`) with its built-in
//! transports, whose shared-memory segment is 512 KiB per participant. A 1080p bgr8 picture is
//! 6.2 MB: its ~95 fragments overrun the segment, Fast DDS recycles buffers a reader has not
//! read yet, and a best-effort subscriber (sensor-data QoS, `rqt_image_view`) gets about one
//! picture in ten (28 of ~300 measured here; a reliable one 159, repaired over and over).
//!
//! The segment that matters is the *writer's*: Fast DDS copies each outgoing fragment into the
//! sending participant's segment and hands readers a reference to it. So the node can fix this
//! for every subscriber by itself, before it creates its ROS context: when the user has not
//! configured Fast DDS (no profile file, no `DEFAULT_FASTRTPS_PROFILES.xml` in the working
//! directory, no `FASTDDS_BUILTIN_TRANSPORTS`), and the middleware is Fast DDS, it writes a
//! profile with the same transports as the built-in set (shared memory + UDPv4) but a larger
//! segment, and points `FASTRTPS_DEFAULT_PROFILES_FILE` (Fast DDS 2.x: Humble, Jazzy) and
//! `FASTDDS_DEFAULT_PROFILES_FILE` (Fast DDS 3.x) at it. Subscribers need nothing.
//!
//! The segment lives in `/dev/shm`, which a container may keep small (Docker: 64 MiB), and Fast
//! DDS writes the whole segment when it creates it: the size is capped at half of what
//! `/dev/shm` has free, and below [`MIN_SEGMENT_BYTES`] the node leaves Fast DDS alone and
//! warns. `SPOT_PTZ_STREAM_FASTDDS_PROFILE=off` turns all of this off.

use std::path::{Path, PathBuf};

/// The variable that turns the node's own profile off (`off`) or on (`auto`, the default).
pub const SWITCH_VARIABLE: &str = "SPOT_PTZ_STREAM_FASTDDS_PROFILE";
/// The profile file variables of Fast DDS 2.x and 3.x.
pub const PROFILE_VARIABLES: [&str; 2] = [
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_DEFAULT_PROFILES_FILE",
];
/// Files Fast DDS loads from the working directory when present.
const WORKING_DIRECTORY_PROFILES: [&str; 2] = [
    "DEFAULT_FASTRTPS_PROFILES.xml",
    "DEFAULT_FASTDDS_PROFILES.xml",
];
/// The segment the node asks for: five 1080p bgr8 pictures (a best-effort and a reliable
/// reader at 30 fps, with room for the one being written).
pub const SEGMENT_BYTES: u64 = 32 * 1024 * 1024;
/// Below this (two 1080p pictures and a half) a larger segment does not help enough to be
/// worth taking the space from others.
pub const MIN_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// What the node does about the middleware, decided from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write the profile with this segment size and use it.
    UseOwnProfile { segment_bytes: u64 },
    /// The user configured Fast DDS (the named variable or file): leave it.
    UserConfigured(String),
    /// Another middleware (its name): the profile would not apply.
    OtherMiddleware(String),
    /// `SPOT_PTZ_STREAM_FASTDDS_PROFILE=off`.
    SwitchedOff,
    /// `/dev/shm` has too little room (free bytes).
    TooLittleSharedMemory { free_bytes: u64 },
}

/// What [`decide`] reads of the process's surroundings.
pub struct Surroundings<'a> {
    pub variable: &'a dyn Fn(&str) -> Option<String>,
    pub working_directory_has: &'a dyn Fn(&str) -> bool,
    /// Free bytes in `/dev/shm`, `None` when unknown.
    pub shared_memory_free_bytes: Option<u64>,
}

/// Decides whether the node uses its own Fast DDS profile (see the module docs).
pub fn decide(surroundings: &Surroundings<'_>) -> Decision {
    let variable = |name: &str| (surroundings.variable)(name).filter(|v| !v.trim().is_empty());
    if variable(SWITCH_VARIABLE).is_some_and(|v| v.trim().eq_ignore_ascii_case("off")) {
        return Decision::SwitchedOff;
    }
    if let Some(rmw) = variable("RMW_IMPLEMENTATION")
        && !rmw.starts_with("rmw_fastrtps")
    {
        return Decision::OtherMiddleware(rmw);
    }
    for name in PROFILE_VARIABLES
        .into_iter()
        .chain(["FASTDDS_BUILTIN_TRANSPORTS"])
    {
        if variable(name).is_some() {
            return Decision::UserConfigured(name.to_string());
        }
    }
    for file in WORKING_DIRECTORY_PROFILES {
        if (surroundings.working_directory_has)(file) {
            return Decision::UserConfigured(format!("./{file}"));
        }
    }
    let segment_bytes = match surroundings.shared_memory_free_bytes {
        Some(free_bytes) => (free_bytes / 2).min(SEGMENT_BYTES),
        None => SEGMENT_BYTES,
    };
    if segment_bytes < MIN_SEGMENT_BYTES {
        return Decision::TooLittleSharedMemory {
            free_bytes: surroundings.shared_memory_free_bytes.unwrap_or(0),
        };
    }
    Decision::UseOwnProfile { segment_bytes }
}

/// The profile: Fast DDS's built-in transports (shared memory, then UDPv4), with a shared-memory
/// segment of `segment_bytes`, as the default participant profile.
pub fn profile_xml(segment_bytes: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by spot_ptz_stream (src/ros/middleware.rs): Fast DDS's built-in transports with a
     shared-memory segment large enough for 1080p images. Set FASTRTPS_DEFAULT_PROFILES_FILE to
     use a profile of your own, or SPOT_PTZ_STREAM_FASTDDS_PROFILE=off to use none. -->
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>spot_ptz_stream_shm</transport_id>
      <type>SHM</type>
      <segment_size>{segment_bytes}</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>spot_ptz_stream_udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="spot_ptz_stream_large_images" is_default_profile="true">
    <rtps>
      <useBuiltinTransports>false</useBuiltinTransports>
      <userTransports>
        <transport_id>spot_ptz_stream_shm</transport_id>
        <transport_id>spot_ptz_stream_udp</transport_id>
      </userTransports>
    </rtps>
  </participant>
</profiles>
"#
    )
}

/// The profile could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "could not write the node's Fast DDS profile {path}: {source}; large images may not reach \
     best-effort subscribers (set FASTRTPS_DEFAULT_PROFILES_FILE to a profile of your own, or \
     make the temporary directory writable)"
)]
pub struct ProfileError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Writes the profile for `segment_bytes` into `directory` (once per size: an existing file of
/// the same content is kept; a new one is written aside and renamed, so concurrent nodes never
/// read half a file) and returns its path.
pub fn write_profile(directory: &Path, segment_bytes: u64) -> Result<PathBuf, ProfileError> {
    let xml = profile_xml(segment_bytes);
    let path = directory.join(format!("spot_ptz_stream-fastdds-{segment_bytes}.xml"));
    if std::fs::read_to_string(&path).is_ok_and(|existing| existing == xml) {
        return Ok(path);
    }
    let partial = directory.join(format!(
        ".spot_ptz_stream-fastdds-{segment_bytes}.{}.xml",
        std::process::id()
    ));
    std::fs::write(&partial, &xml)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&partial);
            ProfileError {
                path: path.display().to_string(),
                source,
            }
        })?;
    Ok(path)
}

/// Free bytes of the file system holding `path` (`/dev/shm`).
fn free_bytes(path: &str) -> Option<u64> {
    let c_path = std::ffi::CString::new(path).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: a NUL-terminated path and a buffer of the right type, which the call fills.
    let status = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    let stats = unsafe { stats.assume_init() };
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    Some(u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize)))
}

/// Decides from this process's environment, and applies the decision: writes the profile and
/// sets the profile variables. Returns what was done, for the caller to log once logging runs.
///
/// # Safety
///
/// Changes the process environment: call it before any other thread exists (first thing in
/// `main`) and before the ROS context is created.
pub unsafe fn configure_from_environment() -> Result<Decision, ProfileError> {
    let decision = decide(&Surroundings {
        variable: &|name| std::env::var(name).ok(),
        working_directory_has: &|file| Path::new(file).is_file(),
        shared_memory_free_bytes: free_bytes("/dev/shm"),
    });
    if let Decision::UseOwnProfile { segment_bytes } = decision {
        let path = write_profile(&std::env::temp_dir(), segment_bytes)?;
        for name in PROFILE_VARIABLES {
            // SAFETY: the caller guarantees no other thread runs yet.
            unsafe { std::env::set_var(name, &path) };
        }
    }
    Ok(decision)
}

/// Logs what [`configure_from_environment`] did, once.
pub fn log_decision(decision: &Decision) {
    match decision {
        Decision::UseOwnProfile { segment_bytes } => tracing::info!(
            segment_mib = segment_bytes / (1024 * 1024),
            "Fast DDS without a profile of the user's: using the node's own (shared-memory segment \
             large enough for 1080p images; subscribers need nothing). Set \
             FASTRTPS_DEFAULT_PROFILES_FILE to use yours, or {SWITCH_VARIABLE}=off"
        ),
        Decision::UserConfigured(what) => tracing::info!(
            "Fast DDS is configured by the user ({what}): the node leaves it as it is; its \
             shared-memory segment must hold a whole image (6.2 MB at 1080p) for best-effort \
             subscribers to get every frame"
        ),
        Decision::OtherMiddleware(rmw) => tracing::info!(
            rmw = %rmw,
            "not Fast DDS: the node leaves the middleware's configuration as it is"
        ),
        Decision::SwitchedOff => tracing::info!(
            "{SWITCH_VARIABLE}=off: Fast DDS runs with its built-in transports (a 512 KiB \
             shared-memory segment: best-effort subscribers of large images lose most of them)"
        ),
        Decision::TooLittleSharedMemory { free_bytes } => tracing::warn!(
            free_mib = free_bytes / (1024 * 1024),
            "/dev/shm has too little room for a shared-memory segment that holds large images; \
             best-effort subscribers of image_raw may lose most frames. Give /dev/shm at least \
             64 MiB (docker run --shm-size=256m) and restart the node"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_with(variables: &[(&str, &str)], files: &[&str], free: Option<u64>) -> Decision {
        let variable = |name: &str| {
            variables
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let has = |file: &str| files.contains(&file);
        decide(&Surroundings {
            variable: &variable,
            working_directory_has: &has,
            shared_memory_free_bytes: free,
        })
    }

    #[test]
    fn a_stock_installation_gets_the_own_profile() {
        assert_eq!(
            decide_with(&[], &[], Some(8 << 30)),
            Decision::UseOwnProfile {
                segment_bytes: SEGMENT_BYTES
            }
        );
        assert_eq!(
            decide_with(&[("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")], &[], None),
            Decision::UseOwnProfile {
                segment_bytes: SEGMENT_BYTES
            }
        );
        // An empty variable is an unset one (launch files often pass "").
        assert_eq!(
            decide_with(&[("FASTRTPS_DEFAULT_PROFILES_FILE", "")], &[], None),
            Decision::UseOwnProfile {
                segment_bytes: SEGMENT_BYTES
            }
        );
    }

    #[test]
    fn a_users_configuration_is_never_overridden() {
        for name in [
            "FASTRTPS_DEFAULT_PROFILES_FILE",
            "FASTDDS_DEFAULT_PROFILES_FILE",
            "FASTDDS_BUILTIN_TRANSPORTS",
        ] {
            assert_eq!(
                decide_with(&[(name, "x")], &[], None),
                Decision::UserConfigured(name.to_string())
            );
        }
        assert_eq!(
            decide_with(&[], &["DEFAULT_FASTRTPS_PROFILES.xml"], None),
            Decision::UserConfigured("./DEFAULT_FASTRTPS_PROFILES.xml".to_string())
        );
        assert_eq!(
            decide_with(&[("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")], &[], None),
            Decision::OtherMiddleware("rmw_cyclonedds_cpp".to_string())
        );
        assert_eq!(
            decide_with(&[(SWITCH_VARIABLE, "OFF")], &[], None),
            Decision::SwitchedOff
        );
    }

    #[test]
    fn a_small_dev_shm_shrinks_the_segment_or_leaves_fast_dds_alone() {
        assert_eq!(
            decide_with(&[], &[], Some(40 << 20)),
            Decision::UseOwnProfile {
                segment_bytes: 20 << 20
            }
        );
        assert_eq!(
            decide_with(&[], &[], Some(20 << 20)),
            Decision::TooLittleSharedMemory {
                free_bytes: 20 << 20
            }
        );
    }

    #[test]
    fn the_profile_is_written_once_and_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_profile(dir.path(), SEGMENT_BYTES).expect("written");
        let xml = std::fs::read_to_string(&path).expect("read");
        assert!(
            xml.contains("<segment_size>33554432</segment_size>"),
            "{xml}"
        );
        assert!(xml.contains("<useBuiltinTransports>false</useBuiltinTransports>"));
        assert_eq!(
            write_profile(dir.path(), SEGMENT_BYTES).expect("again"),
            path
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn dev_shm_free_space_is_read() {
        assert!(free_bytes("/dev/shm").is_some_and(|free| free > 0));
        assert!(free_bytes("/no/such/directory").is_none());
    }
}
