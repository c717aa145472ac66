//! Helpers for tests that run the real ROS node and real rclpy processes.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::{PASSWORD, Sim, USERNAME};

static NEXT_DOMAIN: AtomicU32 = AtomicU32::new(0);

/// A ROS domain no other running test uses (tests run in parallel, in several processes).
pub fn unique_domain_id() -> u32 {
    let offset = NEXT_DOMAIN.fetch_add(1, Ordering::Relaxed);
    1 + (std::process::id() * 7 + offset) % 100
}

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The interpreter with rclpy (set by scripts/ros-env.sh).
pub fn ros_python() -> String {
    std::env::var("ROS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A running `spot_ptz_stream` node, killed when dropped.
pub struct NodeProcess {
    pub child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// How to start the node.
pub struct NodeLaunch<'a> {
    pub domain_id: u32,
    pub params_file: Option<PathBuf>,
    pub params: Vec<(String, String)>,
    pub sim: Option<&'a Sim>,
    pub credentials: Option<(&'a str, &'a str)>,
    /// Environment variables set (`Some`) or removed (`None`) for the node.
    pub env: Vec<(String, Option<String>)>,
    /// A tmpfs of this size mounted at this directory for the node alone (a mount namespace
    /// of its own: `unshare --mount`, root or CAP_SYS_ADMIN as CI has).
    pub tmpfs: Option<(PathBuf, String)>,
}

impl<'a> NodeLaunch<'a> {
    /// The repository's YAML, pointed at `sim` over loopback (or at a closed port).
    pub fn new(domain_id: u32, sim: Option<&'a Sim>) -> Self {
        let mut params = Vec::new();
        let mut set = |k: &str, v: String| params.push((k.to_string(), v));
        let host = sim.map_or("127.0.0.1".to_string(), |sim| {
            sim.grpc_addr.ip().to_string()
        });
        set("robot_host", host);
        set("udp_bind_address", "127.0.0.1".to_string());
        match sim {
            Some(sim) => {
                set("grpc_port", sim.grpc_addr.port().to_string());
                set("sdp_port", sim.sdp_addr.port().to_string());
                set("robot_ca_path", sim.ca_path.display().to_string());
                set("camera_ca_path", sim.ca_path.display().to_string());
            }
            None => set("grpc_port", "9".to_string()),
        }
        Self {
            domain_id,
            params_file: Some(repo_file("config/ptz_stream.yaml")),
            params,
            sim,
            credentials: Some((USERNAME, PASSWORD)),
            env: Vec::new(),
            tmpfs: None,
        }
    }

    /// Runs the node with a tmpfs of `size` (e.g. `1m`) at `dir` (which must exist), seen by
    /// the node alone; the test sees the files under `/proc/<pid>/root`.
    pub fn with_tmpfs(mut self, dir: &std::path::Path, size: &str) -> Self {
        self.tmpfs = Some((dir.to_path_buf(), size.to_string()));
        self
    }

    /// Sets (`Some`) or removes (`None`) an environment variable of the node.
    pub fn env(mut self, name: &str, value: Option<&str>) -> Self {
        self.env.push((name.to_string(), value.map(str::to_string)));
        self
    }

    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_string(), value.to_string()));
        self
    }

    pub fn start(self) -> NodeProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("node.log");
        let log_file = std::fs::File::create(&log).expect("node log");
        let node = env!("CARGO_BIN_EXE_spot_ptz_stream");
        let mut command = match &self.tmpfs {
            // unshare and sh exec: the child's pid is the node's.
            Some((dir, size)) => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                    .arg(format!(
                        "mount -t tmpfs -o size={size} tmpfs '{}' && exec \"$0\" \"$@\"",
                        dir.display()
                    ))
                    .arg(node);
                c
            }
            None => Command::new(node),
        };
        command.arg("--ros-args");
        if let Some(file) = &self.params_file {
            command.arg("--params-file").arg(file);
        }
        for (name, value) in &self.params {
            command.arg("-p").arg(format!("{name}:={value}"));
        }
        command
            .env("ROS_DOMAIN_ID", self.domain_id.to_string())
            .env("ROS_LOG_DIR", dir.path())
            .env("SPOT_PTZ_STREAM_LOG", "info,spot_ptz_stream=debug")
            .env_remove("SPOT_IP")
            .env_remove("BOSDYN_CLIENT_USERNAME")
            .env_remove("BOSDYN_CLIENT_PASSWORD");
        if let Some((user, password)) = self.credentials {
            command
                .env("BOSDYN_CLIENT_USERNAME", user)
                .env("BOSDYN_CLIENT_PASSWORD", password);
        }
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn spot_ptz_stream");
        NodeProcess {
            child,
            log,
            _dir: dir,
        }
    }
}

impl NodeProcess {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Stops a ROS process the way `ros2 launch` does (SIGINT, then SIGKILL after a grace period),
/// so its DDS participant is destroyed and its shared-memory segments are released; a killed
/// Fast DDS process leaves its segments in /dev/shm.
fn stop_gracefully(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        if super::wait_with_timeout(child, grace).is_none() {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child, Duration::from_secs(3));
    }
}

/// A Python helper script (tests/ros/*.py) running in the test's ROS domain; its stdout lines
/// (JSON) arrive on a channel.
pub struct PyProcess {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl PyProcess {
    pub fn start(script: &str, args: &[&str], domain_id: u32) -> PyProcess {
        PyProcess::start_with_env(script, args, domain_id, &[])
    }

    /// As [`PyProcess::start`], with environment variables set (`Some`) or removed (`None`).
    pub fn start_with_env(
        script: &str,
        args: &[&str],
        domain_id: u32,
        env: &[(&str, Option<&str>)],
    ) -> PyProcess {
        let mut command = Command::new(ros_python());
        for (name, value) in env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let mut child = command
            .arg(repo_file(&format!("tests/ros/{script}")))
            .args(args)
            .env("ROS_DOMAIN_ID", domain_id.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyProcess { child, lines }
    }

    /// The next JSON line, or None after `timeout`.
    pub fn next_json(&self, timeout: Duration) -> Option<serde_json::Value> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}")))
    }

    /// Waits for the script to end and returns its exit code.
    pub fn wait(mut self) -> Option<i32> {
        super::wait_with_timeout(&mut self.child, Duration::from_secs(60)).and_then(|s| s.code())
    }
}

impl Drop for PyProcess {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child, Duration::from_secs(3));
    }
}

/// A reliable rclpy subscriber (tests/ros/subscriber.py) printing `count` messages of `kind`
/// from `topic`, once it has subscribed.
pub fn subscribe(kind: &str, topic: &str, count: usize, domain_id: u32) -> PyProcess {
    let count = count.to_string();
    let process = PyProcess::start(
        "subscriber.py",
        &[
            "--topic",
            topic,
            "--type",
            kind,
            "--count",
            &count,
            "--timeout",
            "300",
            "--reliability",
            "reliable",
        ],
        domain_id,
    );
    assert!(
        process.next_json(Duration::from_secs(30)).is_some(),
        "the rclpy subscriber to {topic} did not start"
    );
    process
}

/// Follows the node's `~/stats` through an rclpy subscriber.
pub struct StatsWatcher {
    process: PyProcess,
    pub last: Option<serde_json::Value>,
}

impl StatsWatcher {
    pub fn start(domain_id: u32) -> StatsWatcher {
        let process = PyProcess::start(
            "subscriber.py",
            &[
                "--topic",
                "/spot_ptz_stream/stats",
                "--type",
                "diagnostic_status",
                "--count",
                "100000",
                "--timeout",
                "300",
                "--reliability",
                "reliable",
            ],
            domain_id,
        );
        process.next_json(Duration::from_secs(30));
        StatsWatcher {
            process,
            last: None,
        }
    }

    /// Waits until a status satisfies `accept`; returns it, or None after `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let status = self.process.next_json(left)?;
            self.last = Some(status.clone());
            if accept(&status) {
                return Some(status);
            }
        }
        None
    }

    /// The newest status: what has arrived so far, or the next one if none is waiting.
    pub fn latest(&mut self) -> Option<serde_json::Value> {
        let mut newest = None;
        while let Some(status) = self.process.next_json(Duration::ZERO) {
            newest = Some(status);
        }
        let newest = newest.or_else(|| self.process.next_json(Duration::from_secs(5)))?;
        self.last = Some(newest.clone());
        Some(newest)
    }

    /// Waits for a given `state` value.
    pub fn wait_for_state(&mut self, state: &str, timeout: Duration) -> Option<serde_json::Value> {
        self.wait_for(timeout, |s| s["values"]["state"] == state)
    }
}

/// A counter from a status (values are strings).
pub fn counter(status: &serde_json::Value, key: &str) -> u64 {
    status["values"][key]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no counter {key} in {status}"))
}

/// Calls `~/start_stream` or `~/stop_stream` with rclpy; returns the response JSON.
pub fn call_trigger(service: &str, domain_id: u32) -> serde_json::Value {
    let call = PyProcess::start("call_trigger.py", &["--service", service], domain_id);
    call.next_json(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no answer from {service}"))
}

/// Threads, open file descriptors and resident memory of a process.
pub fn footprint(pid: u32) -> (usize, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    (field("Threads:") as usize, fds, field("VmRSS:"))
}

/// Stops the stream and checks that every access unit received ended in one counter.
pub fn counters_add_up(domain: u32, stats: &mut StatsWatcher) -> serde_json::Value {
    let answer = call_trigger("/spot_ptz_stream/stop_stream", domain);
    assert_eq!(answer["success"], true, "{answer}");
    let status = stats
        .wait_for(Duration::from_secs(15), |s| {
            s["values"]["state"] == "stopped" && counter(s, "frames_in_flight") == 0
        })
        .unwrap_or_else(|| panic!("access units still unaccounted for: {:?}", stats.last));
    let fates = [
        "frames_not_decoded",
        "frames_dropped_before_decoding",
        "frames_awaiting_keyframe",
        "frames_withheld",
        "decode_errors",
        "frames_caught_up",
        "frames_decoded",
    ];
    let sum: u64 = fates.iter().map(|key| counter(&status, key)).sum();
    assert_eq!(
        counter(&status, "frames_received"),
        sum,
        "frames_received is not the sum of {fates:?}: {status}"
    );
    assert!(counter(&status, "frames_received") > 0, "{status}");
    status
}

/// `tests/ros/count_frames.py`: a plain rclpy subscriber of `image_raw` with `reliability`
/// (`best_effort`: sensor-data QoS; `reliable`) that counts the images it gets in `seconds`
/// from its first one; `env` as in [`PyProcess::start_with_env`].
pub struct FrameCounter(PyProcess);

impl FrameCounter {
    /// Starts the subscriber and waits until it has subscribed.
    pub fn start(
        domain_id: u32,
        reliability: &str,
        seconds: u64,
        timeout_secs: u64,
        env: &[(&str, Option<&str>)],
    ) -> FrameCounter {
        let (seconds, timeout) = (seconds.to_string(), timeout_secs.to_string());
        let process = PyProcess::start_with_env(
            "count_frames.py",
            &[
                "--topic",
                "image_raw",
                "--reliability",
                reliability,
                "--seconds",
                &seconds,
                "--timeout",
                &timeout,
            ],
            domain_id,
            env,
        );
        assert!(
            process.next_json(Duration::from_secs(30)).is_some(),
            "the {reliability} subscriber did not start"
        );
        FrameCounter(process)
    }

    /// The count, once the subscriber has counted (within `timeout`); panics with the node's
    /// log otherwise.
    pub fn received(&self, timeout: Duration, node: &NodeProcess) -> u64 {
        loop {
            let line = self
                .0
                .next_json(timeout)
                .unwrap_or_else(|| panic!("no count from the subscriber:\n{}", node.log()));
            if let Some(received) = line["received"].as_u64() {
                return received;
            }
        }
    }
}
