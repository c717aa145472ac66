//! A payload computer whose firewall admits inbound UDP on a few ports only (Spot CORE I/O:
//! 21000–22000): with `--udp-port-min/--udp-port-max` every UDP socket of the probe is bound
//! within the range while it streams, and the stream comes through a firewall that drops all
//! other inbound UDP to the payload's address; without the range the same firewall stops it.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{PASSWORD, Sim, probe_summary, run_in_network_namespace, udp_sockets};

/// The payload computer's address inside the namespace (the simulated robot is 127.0.0.1).
const PAYLOAD: &str = "127.0.0.2";

/// The local ports of `pid`'s UDP sockets.
fn udp_ports(pid: u32) -> Vec<u16> {
    udp_sockets(pid).into_iter().map(|(_, port)| port).collect()
}

#[test]
fn every_webrtc_socket_is_bound_within_the_range() {
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    // A sub-range of its own, so parallel runs do not compete for ports.
    let min = 21000 + (std::process::id() % 98) as u16 * 10;
    let max = min + 9;
    let mut probe = sim
        .probe_command(
            PASSWORD,
            &[
                "--duration",
                "20",
                "--stats-interval",
                "0.2",
                "--udp-port-min",
                &min.to_string(),
                "--udp-port-max",
                &max.to_string(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ptz_stream_probe");
    let pid = probe.id();
    let stdout = probe.stdout.take().expect("stdout");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut streaming = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("probe stdout");
        let frames: u64 = line
            .strip_prefix("state=streaming frames received=")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if frames > 5 {
            streaming = Some(udp_ports(pid));
            break;
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let _ = probe.kill();
    let output = probe.wait_with_output().expect("probe output");
    let ports = streaming.unwrap_or_else(|| {
        panic!(
            "the probe did not stream with --udp-port-min {min} --udp-port-max {max}:\n{}\nsimulator:\n{}",
            String::from_utf8_lossy(&output.stderr),
            sim.log()
        )
    });
    assert!(!ports.is_empty(), "the streaming probe has no UDP socket");
    assert!(
        ports.iter().all(|port| (min..=max).contains(port)),
        "UDP ports {ports:?} of the probe are not all within {min}..{max}"
    );
}

/// The payload's firewall: inbound UDP to [`PAYLOAD`] only on 21000–21010.
const FIREWALL: &str = "nft add table inet payload
nft add chain inet payload input '{ type filter hook input priority 0; }'
nft add rule inet payload input ip daddr 127.0.0.2 udp dport != 21000-21010 drop";

#[test]
fn streams_through_a_firewall_that_admits_only_the_range() {
    let common = format!("--udp-bind-address {PAYLOAD} --stats-interval 0.5");
    let through = run_in_network_namespace(
        FIREWALL,
        "--width 320 --height 240",
        &format!(
            "{common} --duration 2 --first-frame-timeout 10 --udp-port-min 21000 --udp-port-max 21010"
        ),
        "nft list ruleset",
    );
    assert!(
        through.success,
        "no stream through the firewall with the port range:\n{}\n{}\nsimulator:\n{}",
        through.stdout, through.stderr, through.sim_log
    );
    let (summary, frames) = probe_summary(&through.stdout);
    assert!(frames > 10, "{summary}");
    assert!(
        through.stdout.contains("udp dport != 21000-21010 drop"),
        "the firewall was not in place:\n{}",
        through.stdout
    );

    // The same firewall, any port: the camera's packets to the payload are dropped.
    let blocked = run_in_network_namespace(
        FIREWALL,
        "--width 320 --height 240",
        &format!("{common} --duration 10 --first-frame-timeout 3"),
        "",
    );
    assert!(
        !blocked.success,
        "frames came through the firewall without the port range (the firewall does not \
         block, so the first run proves nothing):\n{}\n{}",
        blocked.stdout, blocked.stderr
    );
    assert!(
        blocked.stderr.contains("no frame within"),
        "{}",
        blocked.stderr
    );
}
