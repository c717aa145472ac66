//! A camera that vanishes without a goodbye (power loss, a cable, Wi-Fi roaming: no RTCP BYE,
//! no DTLS close, no more ICE answers; the simulator's `--vanish-after-secs`) is noticed within
//! `stall_timeout_secs`, whatever else happens meanwhile (keyframe requests, RTCP), and the node
//! connects again and publishes pictures.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, subscribe, unique_domain_id};

#[test]
fn a_camera_that_vanishes_silently_is_noticed_and_the_stream_comes_back() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--vanish-after-secs", "4"]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("stall_timeout_secs", "3.0")
        .start();
    let mut stats = StatsWatcher::start(domain);
    let images = subscribe("image", "image_raw", 1_000_000, domain);

    // Pictures until the camera vanishes, then none: measure the gap, and that they return.
    let mut previous: Option<u64> = None;
    let mut longest_gap_ns = 0;
    let mut after_gap = 0;
    let deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < deadline && after_gap < 30 {
        let image = images
            .next_json(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("pictures did not come back; node log:\n{}", node.log()));
        let at = image["receive_time_ns"].as_u64().unwrap();
        if let Some(p) = previous {
            let gap = at - p;
            longest_gap_ns = longest_gap_ns.max(gap);
            if longest_gap_ns > 1_000_000_000 {
                after_gap += 1;
            }
        }
        previous = Some(at);
    }
    assert!(after_gap >= 30, "no pictures after the camera vanished");
    let gap = Duration::from_nanos(longest_gap_ns);
    // Noticed after the 3 s stall timeout, connected again after the first backoff delay.
    assert!(
        gap >= Duration::from_secs(3) && gap < Duration::from_secs(8),
        "pictures stopped for {gap:?}"
    );
    let status = stats
        .wait_for(Duration::from_secs(10), |s| counter(s, "reconnects") >= 1)
        .unwrap_or_else(|| panic!("no reconnect counted; last {:?}", stats.last));
    let last_error = status["values"]["last_error"].as_str().unwrap_or("");
    assert!(
        last_error.contains("no video for 3.0 s"),
        "the stall was not the reason: {status}"
    );
    assert!(
        sim.log().contains("vanished from the network"),
        "the simulator did not vanish:\n{}",
        sim.log()
    );
}
