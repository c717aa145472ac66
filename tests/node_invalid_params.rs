//! Invalid parameter values stop the node at start-up with a message that names the
//! parameter and its accepted values.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::node::{NodeLaunch, unique_domain_id};
use common::wait_with_timeout;

fn rejected(name: &str, value: &str, expected: &[&str]) -> String {
    // Without the YAML file: rcl keeps a YAML value over a `-p` override of another type.
    let mut launch = NodeLaunch::new(unique_domain_id(), None).param(name, value);
    launch.params_file = None;
    let mut node = launch.start();
    let status = wait_with_timeout(&mut node.child, Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "{name}:={value} did not stop the node; log:\n{}",
            node.log()
        )
    });
    assert!(!status.success(), "{name}:={value} was accepted");
    let log = node.log();
    for text in expected {
        assert!(
            log.contains(text),
            "the error for {name}:={value} does not mention {text:?}:\n{log}"
        );
    }
    log
}

/// The one ERROR line the node ends with, after rcutils' `[ERROR] [time] [name]: `.
fn error_line(log: &str) -> &str {
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("[ERROR]")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    lines[0]
        .split_once("]: ")
        .map_or(lines[0], |(_, message)| message)
}

#[test]
fn the_line_a_user_sees_says_each_cause_once() {
    let log = rejected("aim_policy", "nearest", &[]);
    assert_eq!(
        error_line(&log),
        "parameter aim_policy: \"nearest\" is not accepted; accepted: one of largest, highest_score, round_robin"
    );
    let log = rejected("robot_host", "''", &[]);
    assert_eq!(
        error_line(&log),
        "parameter robot_host: \"\" is not a host name or IP address; accepted: the robot's hostname or IP, as a parameter or in the SPOT_IP environment variable"
    );
    // A calibration that cannot be read (a directory) still stops the node, saying why once.
    let dir = tempfile::tempdir().unwrap();
    let log = rejected(
        "camera_info_url",
        &format!("file://{}", dir.path().display()),
        &[],
    );
    assert_eq!(
        error_line(&log),
        format!(
            "cannot read the calibration {}: Is a directory (os error 21); check camera_info_url",
            dir.path().display()
        )
    );
}

#[test]
fn invalid_values_name_the_parameter_and_accepted_values() {
    rejected(
        "image_qos_reliability",
        "sometimes",
        &["image_qos_reliability", "reliable, best_effort"],
    );
    rejected("queue_depth", "0", &["queue_depth", "from 1 to 60"]);
    rejected("color_range", "studio", &["color_range", "limited, full"]);
    rejected("decoder", "vp8", &["decoder", "libavcodec, openh264"]);
    rejected(
        "connect_timeout_secs",
        "fast",
        &["connect_timeout_secs", "double"],
    );
    rejected(
        "connect_timeout_secs",
        "-3.0",
        &["connect_timeout_secs", "from 0.5 to 120"],
    );
    rejected("robot_host", "''", &["robot_host", "SPOT_IP"]);
}

#[test]
fn missing_credentials_are_reported_with_the_variable_to_set() {
    let mut launch = NodeLaunch::new(unique_domain_id(), None);
    launch.credentials = None;
    let mut node = launch.start();
    let status =
        wait_with_timeout(&mut node.child, Duration::from_secs(20)).expect("node kept running");
    assert!(!status.success());
    assert!(
        node.log().contains("BOSDYN_CLIENT_USERNAME"),
        "{}",
        node.log()
    );
}
