//! A host whose only network interface is loopback (a container, a payload computer before its
//! Wi-Fi is up): the simulator and the probe stream to each other over 127.0.0.1. Nothing may
//! need multicast (the library's default mDNS mode opened a multicast socket, and creating the
//! peer connection failed with `No such device`). The host is a fresh network namespace
//! (`unshare --net`) with only `lo` up.

use std::process::Command;

#[test]
fn streams_on_a_host_with_only_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = format!(
        r#"set -e
ip link set lo up
# A namespace of its own: the fixed ports cannot collide with anything.
"{sim}" --bind 127.0.0.1 --grpc-port 50443 --sdp-port 31102 --cert-dir "{dir}/certs" \
    --username operator --password secret --width 320 --height 240 \
    >"{dir}/sim.out" 2>"{dir}/sim.log" &
for _ in $(seq 100); do grep -q '^ready ' "{dir}/sim.out" 2>/dev/null && break; sleep 0.1; done
rc=0
BOSDYN_CLIENT_USERNAME=operator BOSDYN_CLIENT_PASSWORD=secret "{probe}" 127.0.0.1 \
    --grpc-port 50443 --sdp-port 31102 --robot-ca "{dir}/certs/ca.pem" \
    --camera-ca "{dir}/certs/ca.pem" --udp-bind-address 127.0.0.1 --duration 3 \
    --first-frame-timeout 10 || rc=$?
kill %1
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
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let sim_log = std::fs::read_to_string(dir.path().join("sim.log")).unwrap_or_default();
    assert!(
        output.status.success(),
        "no stream on a loopback-only host:\n{stdout}\n{stderr}\nsimulator:\n{sim_log}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    let frames: u64 = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {summary:?}"));
    assert!(frames > 30, "{summary}");
    assert!(!sim_log.contains("No such device"), "{sim_log}");
}
