//! Loss on a real network path, not inside the simulator: the simulator (an intra-refresh
//! camera that ignores keyframe requests) and the probe run in a network namespace of their own
//! whose kernel drops 2 % of all UDP packets on arrival (nftables `numgen random`), in both
//! directions: video, retransmissions, NACKs, ICE and DTLS alike. The stream must connect and
//! deliver nearly every frame.
#![cfg(feature = "libavcodec")]

use std::process::Command;

const DURATION_SECS: u64 = 10;
const FPS: u64 = 30;

#[test]
fn a_network_path_that_drops_two_percent_of_udp_still_streams() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = format!(
        r#"set -e
ip link set lo up
nft add table inet lossy
nft add chain inet lossy input '{{ type filter hook input priority 0; }}'
nft add rule inet lossy input meta l4proto udp numgen random mod 100 '<' 2 counter drop
"{sim}" --bind 127.0.0.1 --grpc-port 50443 --sdp-port 31102 --cert-dir "{dir}/certs" \
    --username operator --password secret --width 640 --height 360 --fps {fps} \
    --intra-refresh --ignore-keyframe-requests \
    >"{dir}/sim.out" 2>"{dir}/sim.log" &
for _ in $(seq 100); do grep -q '^ready ' "{dir}/sim.out" 2>/dev/null && break; sleep 0.1; done
rc=0
BOSDYN_CLIENT_USERNAME=operator BOSDYN_CLIENT_PASSWORD=secret "{probe}" 127.0.0.1 \
    --grpc-port 50443 --sdp-port 31102 --robot-ca "{dir}/certs/ca.pem" \
    --camera-ca "{dir}/certs/ca.pem" --udp-bind-address 127.0.0.1 --duration {duration} \
    --first-frame-timeout 15 || rc=$?
kill %1
nft list chain inet lossy input
exit $rc
"#,
        sim = env!("CARGO_BIN_EXE_spot_cam_sim"),
        probe = env!("CARGO_BIN_EXE_ptz_stream_probe"),
        dir = dir.path().display(),
        fps = FPS,
        duration = DURATION_SECS,
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
        "no stream over the lossy path:\n{stdout}\n{stderr}\nsimulator:\n{sim_log}"
    );
    // The kernel really dropped packets: `counter packets N bytes M drop`.
    let dropped: u64 = stdout
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no nftables counter in:\n{stdout}"));
    assert!(dropped > 20, "the path dropped only {dropped} packets");
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
    // The first picture takes connecting and one refresh wave; after that nearly every frame.
    let expected = (DURATION_SECS - 2) * FPS;
    eprintln!("{summary}; the path dropped {dropped} packets");
    assert!(
        frames >= expected * 9 / 10,
        "{frames} frames over the lossy path, expected at least {}: {summary}",
        expected * 9 / 10
    );
}
