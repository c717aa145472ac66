//! Reconnects: the camera dropping every connection (frames resume within 3 s), and signalling
//! refused with 503 for a while (backoff, then success).
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, subscribe, unique_domain_id};

#[test]
fn frames_resume_within_three_seconds_after_the_camera_drops_the_connection() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--drop-after-secs", "3"]);
    let node = NodeLaunch::new(domain, Some(&sim)).start();
    let images = subscribe("image", "image_raw", 100000, domain);
    let mut stats = StatsWatcher::start(domain);
    // Follow the images across at least two drops and measure the longest gap.
    let mut previous: Option<u64> = None;
    let mut longest_gap_ns = 0;
    let mut received = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(11);
    while std::time::Instant::now() < deadline {
        let image = images
            .next_json(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("frames did not resume; node log:\n{}", node.log()));
        let at = image["receive_time_ns"].as_u64().unwrap();
        if let Some(p) = previous {
            longest_gap_ns = longest_gap_ns.max(at - p);
        }
        previous = Some(at);
        received += 1;
    }
    assert!(received > 100, "only {received} frames in 11 s");
    let status = stats
        .wait_for(Duration::from_secs(10), |s| {
            counter(s, "reconnects") >= 2 && s["values"]["state"] == "streaming"
        })
        .unwrap_or_else(|| panic!("no reconnects counted; last {:?}", stats.last));
    assert_eq!(counter(&status, "decode_errors"), 0, "{status}");
    let gap = Duration::from_nanos(longest_gap_ns);
    assert!(
        gap < Duration::from_secs(3),
        "frames stopped for {gap:?} around a reconnect"
    );
}

#[test]
fn signalling_refused_with_503_backs_off_then_streams() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--refuse-signalling-secs", "3"]);
    let node = NodeLaunch::new(domain, Some(&sim)).start();
    let mut stats = StatsWatcher::start(domain);
    let _viewer = subscribe("image", "image_raw", 1_000_000, domain);
    let refused = stats
        .wait_for(Duration::from_secs(20), |s| {
            s["values"]["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("503")
        })
        .unwrap_or_else(|| {
            panic!(
                "the 503 was not reported; last {:?}\nlog:\n{}",
                stats.last,
                node.log()
            )
        });
    assert_eq!(
        refused["level"], 1,
        "a retried error is a warning: {refused}"
    );
    let streaming = stats.wait_for(Duration::from_secs(30), |s| {
        counter(s, "frames_published") > 0
    });
    let streaming =
        streaming.unwrap_or_else(|| panic!("never streamed after the 503s; log:\n{}", node.log()));
    assert!(counter(&streaming, "reconnects") >= 1, "{streaming}");
    // Backoff: a handful of attempts in 3 s, not a storm.
    let attempts = sim.log().matches("signalling refused (503)").count();
    assert!(
        attempts < 30,
        "{attempts} signalling attempts in 3 s is a retry storm"
    );
}
