//! The node starts from a YAML parameter file (`/**: ros__parameters`) and a separate rclpy
//! process receives what it publishes (cross-process DDS).
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::node::{NodeLaunch, subscribe, unique_domain_id};

#[test]
fn yaml_parameters_are_applied_and_stats_reach_an_rclpy_subscriber() {
    let domain = unique_domain_id();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("params.yaml");
    // Not the defaults: autostart off (so the state is "stopped") and a 0.2 s report period.
    std::fs::write(
        &yaml,
        "/**:\n  ros__parameters:\n    autostart: false\n    diagnostics_period_secs: 0.2\n    frame_id: \"test_optical\"\n",
    )
    .unwrap();
    let mut launch = NodeLaunch::new(domain, None);
    launch.params_file = Some(yaml);
    let node = launch.start();

    let listener = subscribe("diagnostic_status", "/spot_ptz_stream/stats", 5, domain);
    let mut statuses = Vec::new();
    while let Some(status) = listener.next_json(Duration::from_secs(30)) {
        statuses.push(status);
        if statuses.len() == 5 {
            break;
        }
    }
    assert_eq!(
        statuses.len(),
        5,
        "received {statuses:?}\nnode log:\n{}",
        node.log()
    );
    for status in &statuses {
        assert_eq!(status["values"]["state"], "stopped", "{status}");
        assert_eq!(status["level"], 0, "{status}");
        assert!(
            status["name"].as_str().unwrap().contains("spot_ptz_stream"),
            "{status}"
        );
    }
    assert_eq!(listener.wait(), Some(0));
}

#[test]
fn the_shipped_yaml_file_is_valid() {
    let domain = unique_domain_id();
    let node = NodeLaunch::new(domain, None)
        .param("autostart", "false")
        .start();
    let listener = subscribe("diagnostic_array", "/diagnostics", 1, domain);
    let array = listener.next_json(Duration::from_secs(30));
    assert!(
        array.is_some(),
        "no /diagnostics message; node log:\n{}",
        node.log()
    );
    let array = array.unwrap();
    assert_eq!(
        array["statuses"][0]["values"]["state"], "stopped",
        "{array}"
    );
}
