//! The node's log lines reach `/rosout`, where rqt_console, Foxglove's log panel and
//! `ros2 bag` look for them: a WARN (the camera's certificate is not verified when
//! `camera_ca_path` is empty) and INFO lines, under the node's logger name, with the file and
//! line they come from; the lines logged before the node existed (the middleware decision)
//! too; never the password.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::node::{NodeLaunch, PyProcess, unique_domain_id};
use common::{PASSWORD, Sim};

const WARN: u64 = 30;
const INFO: u64 = 20;

#[test]
fn log_lines_reach_rosout() {
    let domain = unique_domain_id();
    let listener = PyProcess::start("rosout_listener.py", &["--timeout", "60"], domain);
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    assert!(
        listener.next_json(Duration::from_secs(30)).is_some(),
        "the /rosout listener did not start"
    );
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("camera_ca_path", "''")
        .start();

    let wanted = |line: &serde_json::Value, level: u64, file: &str| {
        line["level"] == level
            && line["file"].as_str().is_some_and(|f| f.ends_with(file))
            && line["line"].as_u64().is_some_and(|l| l > 0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        let Some(line) = listener.next_json(Duration::from_millis(200)) else {
            continue;
        };
        lines.push(line);
        let warned = lines
            .iter()
            .any(|l| wanted(l, WARN, "src/camera_link/signalling.rs"));
        let informed = lines.iter().any(|l| wanted(l, INFO, "src/ros/mod.rs"));
        let before_node = lines
            .iter()
            .any(|l| l["file"].as_str() == Some("src/ros/middleware.rs"));
        if warned && informed && before_node {
            break;
        }
    }
    let all = lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let warn = lines
        .iter()
        .find(|l| wanted(l, WARN, "src/camera_link/signalling.rs"))
        .unwrap_or_else(|| {
            panic!(
                "no WARN from the signalling client on /rosout:\n{all}\nnode log:\n{}",
                node.log()
            )
        });
    assert!(
        warn["msg"]
            .as_str()
            .is_some_and(|m| m.contains("certificate is not verified")),
        "{warn}"
    );
    assert!(
        lines.iter().any(|l| wanted(l, INFO, "src/ros/mod.rs")),
        "no INFO line from the node on /rosout:\n{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["file"].as_str() == Some("src/ros/middleware.rs")),
        "the line logged before the node existed (the middleware decision) is not on /rosout:\n{all}"
    );
    for line in &lines {
        assert_eq!(line["name"], "spot_ptz_stream", "{line}");
        assert!(
            line["function"].as_str().is_some_and(|f| !f.is_empty()),
            "{line}"
        );
        assert!(!line.to_string().contains(PASSWORD), "{line}");
    }
}
