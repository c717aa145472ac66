//! The node serves the ROS parameter services, as `ros2 param`, rqt_reconfigure and Foxglove
//! call them (rclpy's `AsyncParameterClient` here: the same `rcl_interfaces` services):
//! every declared parameter is listed and described (ranges, read-only, accepted values); a live
//! change reaches the running stream without a reconnect (the simulated camera's
//! `GetStreamParams` shows the new bitrate, `~/stats` comes at the new period); wrong types,
//! out-of-range, unknown and read-only values and an atomic batch with one bad value are refused
//! with a reason that names the parameter, and change nothing; `/parameter_events` carries the
//! changes. The node's WebRTC sockets lie within `udp_port_min..=udp_port_max`.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::node::{NodeLaunch, PyProcess, StatsWatcher, counter, unique_domain_id};
use common::{PASSWORD, Sim, USERNAME};
use serde_json::Value;
use spot_ptz_stream::params::PARAMETERS;
use spot_ptz_stream::robot::{Credentials, RobotClient};

fn step(script: &PyProcess, name: &str, node_log: &dyn Fn() -> String) -> Value {
    let line = script
        .next_json(Duration::from_secs(40))
        .unwrap_or_else(|| {
            panic!(
                "no {name:?} step from the parameter client; node log:\n{}",
                node_log()
            )
        });
    assert_eq!(line["step"], name, "{line}");
    line
}

/// What the simulated camera reports as its stream parameters.
fn camera_bitrate_bps(sim: &Sim) -> Option<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let robot = RobotClient::new(sim.stream_config().robot).unwrap();
        robot
            .login(&Credentials::new(
                USERNAME.to_string(),
                PASSWORD.to_string(),
            ))
            .await
            .unwrap();
        robot.get_stream_params().await.unwrap().target_bitrate_bps
    })
}

#[test]
fn parameters_are_listed_described_changed_live_and_refused_with_reasons() {
    let sim = Sim::start_640x360(&[]);
    let domain = unique_domain_id();
    let ports = {
        let min = 21_000 + (std::process::id() % 98) as u16 * 10 + 5;
        (min, min + 4)
    };
    let node = NodeLaunch::new(domain, Some(&sim))
        .param(
            "qos_overrides./image_raw.publisher.reliability",
            "best_effort",
        )
        .param(
            "qos_overrides./image_raw.publisher.durability",
            "transient_local",
        )
        .param("qos_overrides./image_raw.publisher.depth", "5")
        // A firewalled payload's range (a sub-range per test process).
        .param("udp_port_min", &ports.0.to_string())
        .param("udp_port_max", &ports.1.to_string())
        .start();
    let log = || node.log();
    let mut stats = StatsWatcher::start(domain);
    let streaming = stats
        .wait_for_state("streaming", Duration::from_secs(40))
        .unwrap_or_else(|| panic!("not streaming; node log:\n{}", log()));
    let reconnects_before = counter(&streaming, "reconnects");
    // The WebRTC sockets (bound to udp_bind_address, 127.0.0.1 here; DDS's are its own) lie
    // in the range.
    let webrtc: Vec<u16> = common::udp_sockets(node.child.id())
        .into_iter()
        .filter(|(address, _)| *address == Some(std::net::Ipv4Addr::LOCALHOST))
        .map(|(_, port)| port)
        .collect();
    assert!(!webrtc.is_empty(), "no WebRTC socket found");
    assert!(
        webrtc.iter().all(|port| (ports.0..=ports.1).contains(port)),
        "WebRTC ports {webrtc:?} outside {ports:?}"
    );
    assert_eq!(camera_bitrate_bps(&sim), Some(2_000_000));

    let script = PyProcess::start("parameter_client.py", &[], domain);

    // Every declared parameter, the QoS overrides of the five publishers, and nothing else.
    let listed = step(&script, "list", &log);
    let mut names: Vec<&str> = listed["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    names.sort();
    let overrides: Vec<String> = [
        "image_raw",
        "camera_info",
        "image_raw/compressed",
        "image_raw/ffmpeg",
        "image_raw/foxglove",
        // Offered while aiming is on (the default).
        "ptz_detections",
    ]
    .iter()
    .flat_map(|topic| {
        ["reliability", "durability", "history", "depth"]
            .map(|policy| format!("qos_overrides./{topic}.publisher.{policy}"))
    })
    .collect();
    let mut declared: Vec<&str> = PARAMETERS
        .iter()
        .map(|p| p.name)
        .chain(overrides.iter().map(String::as_str))
        .collect();
    declared.sort();
    assert_eq!(names, declared);

    let described = step(&script, "describe", &log);
    let d = &described["descriptors"];
    assert_eq!(d[0]["name"], "target_bitrate_bps");
    assert_eq!(d[0]["type"], 2, "integer");
    assert_eq!(d[0]["read_only"], false);
    assert_eq!(
        d[0]["integer_range"][0],
        serde_json::json!([0, 100_000_000, 1])
    );
    assert!(
        d[0]["description"].as_str().unwrap().contains("bitrate"),
        "{d}"
    );
    assert_eq!(
        d[1]["floating_point_range"][0],
        serde_json::json!([0.1, 120.0])
    );
    assert!(
        d[2]["additional_constraints"]
            .as_str()
            .unwrap()
            .contains("largest, highest_score, round_robin"),
        "{d}"
    );
    assert_eq!(d[3]["name"], "robot_host");
    assert_eq!(d[3]["read_only"], true);
    assert_eq!(d[4]["type"], 8, "double array");

    let got = step(&script, "get", &log);
    assert_eq!(got["values"], serde_json::json!([2_000_000, "largest"]));

    let set = step(&script, "set", &log);
    for result in set["results"].as_array().unwrap() {
        assert_eq!(result["successful"], true, "{result}");
    }

    let refused = step(&script, "refused", &log);
    let expected = [
        ("target_bitrate_bps", "from 0 to 100000000"),
        ("target_bitrate_bps", "expected an integer, got a string"),
        ("robot_host", "read-only"),
        ("aim_policy", "largest, highest_score, round_robin"),
        ("aim_deadband_deg", "out of range"),
        ("no_such_parameter", "not a parameter of this node"),
    ];
    for (result, (name, text)) in refused["results"].as_array().unwrap().iter().zip(expected) {
        assert_eq!(result["successful"], false, "{result}");
        let reason = result["reason"].as_str().unwrap();
        assert!(
            reason.contains(name) && reason.contains(text),
            "{reason:?} should name {name} and say {text:?}"
        );
    }

    let atomic = step(&script, "atomic", &log);
    assert_eq!(atomic["successful"], false, "{atomic}");
    assert!(
        atomic["reason"]
            .as_str()
            .unwrap()
            .contains("aim_deadband_deg"),
        "{atomic}"
    );

    // Only what was taken changed; the refused values and the atomic batch changed nothing.
    let after = step(&script, "after", &log);
    let values = &after["values"];
    assert_eq!(values["target_bitrate_bps"], 1_000_000, "{values}");
    assert_eq!(values["jpeg_max_rate_hz"], 5.0, "{values}");
    assert_eq!(values["jpeg_quality"], 80, "{values}");
    assert_eq!(values["aim_deadband_deg"], 1.0, "{values}");
    assert_eq!(values["robot_host"], "127.0.0.1", "{values}");
    assert_eq!(values["aim_policy"], "largest", "{values}");
    assert_eq!(
        values["qos_overrides./image_raw.publisher.depth"], 5,
        "{values}"
    );

    // The overrides given at start shape the publisher; they are read-only.
    let qos = step(&script, "qos", &log);
    // The node is the only publisher of these topics (its name may not be discovered yet).
    let ours = |topic: &str| -> (Option<i64>, Option<i64>) {
        let publishers = qos["publishers"][topic].as_array().unwrap();
        assert_eq!(publishers.len(), 1, "{qos}");
        (
            publishers[0]["reliability"].as_i64(),
            publishers[0]["durability"].as_i64(),
        )
    };
    // rmw's reliability: 1 reliable, 2 best effort; durability: 1 transient local, 2 volatile.
    // (Discovery carries no history depth: the parameter says it, see "after".)
    assert_eq!(ours("/image_raw"), (Some(2), Some(1)), "{qos}");
    assert_eq!(ours("/camera_info"), (Some(1), Some(2)), "{qos}");
    assert_eq!(qos["set"]["successful"], false, "{qos}");
    assert!(
        qos["set"]["reason"].as_str().unwrap().contains("read-only"),
        "{qos}"
    );

    let events = step(&script, "events", &log);
    let changed: Vec<&Value> = events["changed"].as_array().unwrap().iter().collect();
    assert!(
        changed.iter().any(|e| e["target_bitrate_bps"] == 1_000_000)
            && changed.iter().any(|e| e["diagnostics_period_secs"] == 0.25),
        "{events}"
    );
    assert!(
        !changed.iter().any(|e| e.get("jpeg_quality").is_some()),
        "{events}"
    );
    assert_eq!(script.wait(), Some(0));

    // The camera took the new bitrate at once, without a new session, and video kept coming.
    let deadline = Instant::now() + Duration::from_secs(10);
    while camera_bitrate_bps(&sim) != Some(1_000_000) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        camera_bitrate_bps(&sim),
        Some(1_000_000),
        "node log:\n{}",
        log()
    );
    // ~/stats now comes every 0.25 s.
    let mut arrivals = Vec::new();
    let first = stats.latest().unwrap();
    let received_before = counter(&first, "frames_received");
    while arrivals.len() < 9 {
        stats
            .wait_for(Duration::from_secs(5), |_| true)
            .expect("~/stats");
        arrivals.push(Instant::now());
    }
    let spacing = (arrivals[8] - arrivals[0]) / 8;
    assert!(
        spacing < Duration::from_millis(600),
        "~/stats every {spacing:?} after diagnostics_period_secs = 0.25"
    );
    let status = stats.latest().unwrap();
    assert_eq!(
        counter(&status, "reconnects"),
        reconnects_before,
        "{status}"
    );
    assert!(
        counter(&status, "frames_received") > received_before,
        "{status}"
    );
    assert_eq!(
        status["values"]["target_bitrate_bps"], "1000000",
        "{status}"
    );

    // Each change logged once at INFO; each refusal once at WARN.
    let log = node.log();
    assert_eq!(
        log.matches("parameter target_bitrate_bps set to 1000000 (was 2000000)")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("parameter change refused: parameter robot_host is read-only")
            .count(),
        1,
        "{log}"
    );
}
