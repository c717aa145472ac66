//! `~/start_stream` / `~/stop_stream` (idempotent, answered at once), `autostart: false`, and
//! detection-triggered streaming with its timeout — through real rclpy clients and publishers.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use common::node::{
    NodeLaunch, PyProcess, StatsWatcher, call_trigger, counter, subscribe, unique_domain_id,
};

#[test]
fn start_and_stop_services_are_idempotent() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("autostart", "false")
        .start();
    let mut stats = StatsWatcher::start(domain);
    let stopped = stats.wait_for_state("stopped", Duration::from_secs(20));
    assert!(
        stopped.is_some(),
        "autostart false must stay stopped; log:\n{}",
        node.log()
    );
    assert_eq!(counter(stopped.as_ref().unwrap(), "frames_published"), 0);

    // Somebody watches (the node decodes only for image subscribers).
    let _viewer = subscribe("image", "image_raw", 1_000_000, domain);
    let called = Instant::now();
    let started = call_trigger("/spot_ptz_stream/start_stream", domain);
    assert_eq!(started["success"], true, "{started}");
    assert!(
        started["message"].as_str().unwrap().starts_with("starting"),
        "{started}"
    );
    let streaming = stats.wait_for(Duration::from_secs(20), |s| {
        s["values"]["state"] == "streaming" && counter(s, "frames_published") > 0
    });
    assert!(
        streaming.is_some(),
        "no frames after start_stream ({:?} later); last {:?}\nlog:\n{}",
        called.elapsed(),
        stats.last,
        node.log()
    );

    let again = call_trigger("/spot_ptz_stream/start_stream", domain);
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .starts_with("already running"),
        "{again}"
    );
    assert!(
        again["message"].as_str().unwrap().contains("streaming"),
        "{again}"
    );

    let stop = call_trigger("/spot_ptz_stream/stop_stream", domain);
    assert!(
        stop["message"].as_str().unwrap().starts_with("stopping"),
        "{stop}"
    );
    let stopped = stats
        .wait_for_state("stopped", Duration::from_secs(10))
        .expect("stopped");
    let published = counter(&stopped, "frames_published");
    let stop_again = call_trigger("/spot_ptz_stream/stop_stream", domain);
    assert!(
        stop_again["message"]
            .as_str()
            .unwrap()
            .starts_with("already stopped"),
        "{stop_again}"
    );
    // No frames once stopped.
    let later = stats.wait_for(Duration::from_secs(5), |s| {
        counter(s, "frames_published") > published + 3
    });
    assert!(later.is_none(), "frames kept coming after stop_stream");
}

#[test]
fn detections_start_the_stream_and_its_absence_stops_it() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("autostart", "false")
        .param("auto_trigger", "true")
        .param("trigger_class_ids", "[person]")
        .param("trigger_min_score", "0.6")
        .param("trigger_timeout_secs", "2.0")
        .start();
    let mut stats = StatsWatcher::start(domain);
    assert!(
        stats
            .wait_for_state("stopped", Duration::from_secs(20))
            .is_some(),
        "log:\n{}",
        node.log()
    );

    // Non-matching detections are counted but start nothing.
    let cats = PyProcess::start(
        "publish_detections.py",
        &[
            "--class-id",
            "cat",
            "--score",
            "0.9",
            "--duration-secs",
            "2",
        ],
        domain,
    );
    assert_eq!(cats.wait(), Some(0));
    let weak = PyProcess::start(
        "publish_detections.py",
        &[
            "--class-id",
            "person",
            "--score",
            "0.3",
            "--duration-secs",
            "2",
        ],
        domain,
    );
    assert_eq!(weak.wait(), Some(0));
    let counted = stats
        .wait_for(Duration::from_secs(5), |s| {
            counter(s, "detections_received") > 0
        })
        .unwrap_or_else(|| {
            panic!(
                "detections were not counted; last {:?}\nlog:\n{}",
                stats.last,
                node.log()
            )
        });
    assert_eq!(counted["values"]["state"], "stopped", "{counted}");

    let _viewer = subscribe("image", "image_raw", 1_000_000, domain);
    let people = PyProcess::start(
        "publish_detections.py",
        &[
            "--class-id",
            "person",
            "--score",
            "0.9",
            "--duration-secs",
            "4",
        ],
        domain,
    );
    let streaming = stats.wait_for(Duration::from_secs(20), |s| {
        counter(s, "frames_published") > 0
    });
    assert!(
        streaming.is_some(),
        "a person detection did not start the stream; log:\n{}",
        node.log()
    );
    assert_eq!(
        streaming.unwrap()["values"]["last_detection_class"],
        "person"
    );
    assert_eq!(people.wait(), Some(0));
    let ended = Instant::now();
    let stopped = stats.wait_for_state("stopped", Duration::from_secs(10));
    assert!(
        stopped.is_some(),
        "the stream did not stop after trigger_timeout_secs; log:\n{}",
        node.log()
    );
    let waited = ended.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "stopped too early ({waited:?}) for a 2 s timeout"
    );
}

/// `autostart` with `auto_trigger`: the node streams at once, and the trigger owns that
/// stream as if a person had just been seen: without anybody, it stops `trigger_timeout_secs`
/// later.
#[test]
fn autostart_with_auto_trigger_streams_then_stops_without_anybody() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("autostart", "true")
        .param("auto_trigger", "true")
        .param("trigger_timeout_secs", "3.0")
        .start();
    let mut stats = StatsWatcher::start(domain);
    assert!(
        stats
            .wait_for_state("streaming", Duration::from_secs(20))
            .is_some(),
        "autostart did not stream; log:\n{}",
        node.log()
    );
    let stopped = stats.wait_for_state("stopped", Duration::from_secs(15));
    assert!(
        stopped.is_some(),
        "nobody was seen, yet the stream kept running; log:\n{}",
        node.log()
    );
    let log = node.log();
    assert!(
        log.contains("autostart with auto_trigger: streaming now"),
        "{log}"
    );
    assert!(
        log.contains("no matching detection within trigger_timeout_secs"),
        "{log}"
    );
}
