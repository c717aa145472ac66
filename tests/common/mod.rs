//! Shared helpers of the integration tests: start the real `spot_cam_sim` binary and build
//! configurations that point at it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spot_ptz_stream::camera_link::answerer::AnswererConfig;
use spot_ptz_stream::camera_link::signalling::SignallingConfig;
use spot_ptz_stream::media::convert::ColorSpec;
use spot_ptz_stream::media::decoder::{DecoderBackend, DecoderSettings};
use spot_ptz_stream::media::depacketizer::DEFAULT_MAX_ACCESS_UNIT_BYTES;
use spot_ptz_stream::media::reorder::DEFAULT_REORDER_WAIT;
use spot_ptz_stream::robot::{Credentials, RobotConfig};
use spot_ptz_stream::stream::{PrepareConfig, StreamConfig};

pub const USERNAME: &str = "operator";
pub const PASSWORD: &str = "correct-horse";

/// A running `spot_cam_sim`, killed when dropped.
pub struct Sim {
    pub child: Child,
    pub grpc_addr: SocketAddr,
    pub sdp_addr: SocketAddr,
    pub ca_path: PathBuf,
    pub dir: tempfile::TempDir,
    pub stderr_log: PathBuf,
}

impl Sim {
    /// Starts the simulator with these extra flags and waits for its `ready` line.
    pub fn start(extra: &[&str]) -> Sim {
        Sim::start_logging(extra, Some("info,spot_ptz_stream=debug"))
    }

    /// A 640x360 simulator (most tests' size) with these extra flags.
    pub fn start_640x360(extra: &[&str]) -> Sim {
        let args: Vec<&str> = ["--width", "640", "--height", "360"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        Sim::start(&args)
    }

    /// As [`Sim::start`], with this `RUST_LOG` (`None`: the simulator's default filter).
    pub fn start_logging(extra: &[&str], rust_log: Option<&str>) -> Sim {
        Sim::start_at("127.0.0.1", extra, rust_log)
    }

    /// As [`Sim::start_logging`], listening on `bind` (another loopback address: a robot whose
    /// traffic a test can cut, see `tests/node_link_outage.rs`).
    pub fn start_at(bind: &str, extra: &[&str], rust_log: Option<&str>) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr_log = dir.path().join("sim.log");
        let stderr = std::fs::File::create(&stderr_log).expect("sim log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_spot_cam_sim"));
        command
            .args(["--bind", bind, "--grpc-port", "0", "--sdp-port", "0"])
            .arg("--cert-dir")
            .arg(dir.path().join("certs"))
            .args(["--username", USERNAME, "--password", PASSWORD])
            .args(extra);
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn spot_cam_sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read ready line");
        let fields: std::collections::HashMap<&str, &str> = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                )
            })
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        Sim {
            grpc_addr: fields["grpc"].parse().expect("grpc addr"),
            sdp_addr: fields["sdp"].parse().expect("sdp addr"),
            ca_path: PathBuf::from(fields["ca"]),
            child,
            dir,
            stderr_log,
        }
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca_path).expect("ca.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        send_signal(&self.child, "TERM");
        wait_with_timeout(&mut self.child, Duration::from_secs(5)).expect("simulator did not exit")
    }

    /// `ptz_stream_probe` pointed at this simulator over loopback, with its CA and credentials
    /// (the given password).
    pub fn probe_command(&self, password: &str, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ptz_stream_probe"));
        command
            .arg("127.0.0.1")
            .args(["--grpc-port", &self.grpc_addr.port().to_string()])
            .args(["--sdp-port", &self.sdp_addr.port().to_string()])
            .arg("--robot-ca")
            .arg(&self.ca_path)
            .arg("--camera-ca")
            .arg(&self.ca_path)
            .args(["--udp-bind-address", "127.0.0.1"])
            .args(extra)
            .env("BOSDYN_CLIENT_USERNAME", USERNAME)
            .env("BOSDYN_CLIENT_PASSWORD", password)
            .stdin(Stdio::null());
        command
    }

    /// A stream configuration that talks to this simulator over loopback.
    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            robot: RobotConfig {
                host: "127.0.0.1".to_string(),
                grpc_port: self.grpc_addr.port(),
                root_ca_pem: Some(self.ca_pem()),
                connect_timeout: Duration::from_secs(5),
                rpc_timeout: Duration::from_secs(5),
                client_name: "integration-test".to_string(),
            },
            credentials: Credentials::new(USERNAME.to_string(), PASSWORD.to_string()),
            signalling: SignallingConfig {
                host: "127.0.0.1".to_string(),
                port: self.sdp_addr.port(),
                path: "h264.sdp".to_string(),
                camera_ca_pem: Some(self.ca_pem()),
                request_timeout: Duration::from_secs(5),
            },
            answerer: AnswererConfig {
                udp_bind_addrs: vec!["127.0.0.1:0".to_string()],
                ..AnswererConfig::default()
            },
            prepare: PrepareConfig::default(),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(5),
            reorder_wait: DEFAULT_REORDER_WAIT,
            adaptive_bitrate: None,
            reconnect_initial: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(2),
            token_refresh_interval: Duration::from_secs(3600),
            decoder: DecoderSettings {
                backend: DecoderBackend::default_for_build(),
                color: ColorSpec::default(),
                resync_wait: Duration::from_secs(2),
                headroom_bytes: 0,
            },
            queue_depth: 8,
            max_access_unit_bytes: DEFAULT_MAX_ACCESS_UNIT_BYTES,
            access_unit_tap: None,
            jpeg: None,
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} failed");
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[cfg(feature = "ros")]
pub mod detector;
#[cfg(feature = "ros")]
pub mod node;

/// How far a published bgr8 picture is from what the simulated camera drew for that frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LumaError {
    /// Mean absolute luma difference over the picture.
    pub mean: f64,
    /// The same over the worst 16x16 block (a smeared face is local, not global).
    pub worst_block: f64,
}

/// Compares `bgr` (as the node publishes it: limited-range BT.601) with the simulator's scene
/// for `frame_number` at `fps`, the PTZ at its home position.
pub fn luma_error(bgr: &[u8], width: u32, height: u32, frame_number: u32, fps: u32) -> LumaError {
    use spot_ptz_stream::sim::scene::{self, I420Frame};
    use spot_ptz_stream::sim::state::PtzPose;
    let mut reference = I420Frame::new(width, height);
    let home = PtzPose {
        pan_deg: 0.0,
        tilt_deg: 0.0,
        zoom: 1.0,
    };
    let elapsed_secs = frame_number as f32 / fps as f32;
    scene::render(
        &mut reference,
        home,
        "mech_full",
        elapsed_secs,
        frame_number,
    );
    let (expected, _, _) = reference.planes();
    let (w, h) = (width as usize, height as usize);
    let mut blocks = vec![(0u64, 0u64); w.div_ceil(16) * h.div_ceil(16)];
    let mut total = 0u64;
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let (b, g, r) = (
                f64::from(bgr[i]),
                f64::from(bgr[i + 1]),
                f64::from(bgr[i + 2]),
            );
            let luma = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
            let error = (luma - f64::from(expected[y * w + x])).abs().round() as u64;
            total += error;
            let block = &mut blocks[(y / 16) * w.div_ceil(16) + x / 16];
            block.0 += error;
            block.1 += 1;
        }
    }
    LumaError {
        mean: total as f64 / (w * h) as f64,
        worst_block: blocks
            .iter()
            .map(|&(sum, n)| sum as f64 / n.max(1) as f64)
            .fold(0.0, f64::max),
    }
}

/// What a simulator and a probe did inside a network namespace of their own.
pub struct NamespaceRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub sim_log: String,
}

/// Runs `spot_cam_sim` (with `sim_args`) and `ptz_stream_probe` (with `probe_args`) against
/// each other over 127.0.0.1 in a fresh network namespace (`unshare --net`, only `lo`, fixed
/// ports that cannot collide with anything). `setup` runs first (after `lo` is up), `teardown`
/// after the probe; both print to the run's stdout. Succeeds when the probe did.
pub fn run_in_network_namespace(
    setup: &str,
    sim_args: &str,
    probe_args: &str,
    teardown: &str,
) -> NamespaceRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = format!(
        r#"set -e
ip link set lo up
{setup}
"{sim}" --bind 127.0.0.1 --grpc-port 50443 --sdp-port 31102 --cert-dir "{dir}/certs" \
    --username operator --password secret {sim_args} \
    >"{dir}/sim.out" 2>"{dir}/sim.log" &
for _ in $(seq 100); do grep -q '^ready ' "{dir}/sim.out" 2>/dev/null && break; sleep 0.1; done
rc=0
BOSDYN_CLIENT_USERNAME=operator BOSDYN_CLIENT_PASSWORD=secret "{probe}" 127.0.0.1 \
    --grpc-port 50443 --sdp-port 31102 --robot-ca "{dir}/certs/ca.pem" \
    --camera-ca "{dir}/certs/ca.pem" --udp-bind-address 127.0.0.1 {probe_args} || rc=$?
kill %1
{teardown}
exit $rc
"#,
        sim = env!("CARGO_BIN_EXE_spot_cam_sim"),
        probe = env!("CARGO_BIN_EXE_ptz_stream_probe"),
        dir = dir.path().display(),
    );
    let output = Command::new("unshare")
        .args(["--net", "--", "bash", "-c", &script])
        .output()
        .expect("run unshare (util-linux; needs root or CAP_SYS_ADMIN, as CI has)");
    NamespaceRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        sim_log: std::fs::read_to_string(dir.path().join("sim.log")).unwrap_or_default(),
    }
}

/// The probe's `summary:` line and the frame count it reports.
pub fn probe_summary(stdout: &str) -> (&str, u64) {
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    let frames = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {summary:?}"));
    (summary, frames)
}

/// Inodes of the sockets `pid` has open.
fn socket_inodes(pid: u32) -> std::collections::HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the process's fds")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The local address (`None` for IPv6) and port of each of `pid`'s UDP sockets, from its
/// network namespace's tables matched against its own socket inodes.
pub fn udp_sockets(pid: u32) -> Vec<(Option<std::net::Ipv4Addr>, u16)> {
    let inodes = socket_inodes(pid);
    let mut ports = Vec::new();
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            let Ok(inode) = inode.parse::<u64>() else {
                continue;
            };
            if !inodes.contains(&inode) {
                continue;
            }
            let (address, port) = local
                .rsplit_once(':')
                .and_then(|(address, hex)| Some((address, u16::from_str_radix(hex, 16).ok()?)))
                .unwrap_or_else(|| panic!("bad local address in {line:?}"));
            // IPv4 addresses are written as one little-endian hex number.
            let v4 = (address.len() == 8)
                .then(|| u32::from_str_radix(address, 16).ok())
                .flatten()
                .map(|n| std::net::Ipv4Addr::from(n.swap_bytes()));
            ports.push((v4, port));
        }
    }
    ports
}
