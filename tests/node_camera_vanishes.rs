//! A camera that vanishes without a goodbye (power loss, a cable, Wi-Fi roaming: no RTCP BYE,
//! no DTLS close, no more ICE answers; the simulator's `--vanish-after-secs`) is noticed within
//! `stall_timeout_secs`, whatever else happens meanwhile (keyframe requests, RTCP), and the node
//! connects again and publishes pictures; twenty times in a row, without leaking threads,
//! sockets or memory.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, footprint, subscribe, unique_domain_id};

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

#[test]
fn twenty_vanishings_are_each_noticed_in_time_and_leak_nothing() {
    const CYCLES: u64 = 20;
    const STALL_SECS: f64 = 1.0;
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--vanish-after-secs", "2"]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("stall_timeout_secs", &STALL_SECS.to_string())
        .param("diagnostics_period_secs", "0.1")
        .start();
    let pid = node.child.id();
    let mut stats = StatsWatcher::start(domain);
    let images = subscribe("image", "image_raw", 1_000_000, domain);

    // Pictures and states, as they arrive, until CYCLES reconnects.
    let mut image_times = Vec::new();
    let mut states: Vec<(u64, String)> = Vec::new();
    let mut warm = None;
    let deadline = Instant::now() + Duration::from_secs(40 + CYCLES * 6);
    loop {
        assert!(
            Instant::now() < deadline,
            "{} reconnects after {:?}; node log:\n{}",
            stats.last.as_ref().map_or(0, |s| counter(s, "reconnects")),
            deadline,
            node.log()
        );
        let status = stats
            .wait_for(Duration::from_secs(10), |_| true)
            .unwrap_or_else(|| panic!("no stats; node log:\n{}", node.log()));
        states.push((
            status["receive_time_ns"].as_u64().unwrap(),
            status["values"]["state"].as_str().unwrap_or("").to_string(),
        ));
        while let Some(image) = images.next_json(Duration::ZERO) {
            image_times.push(image["receive_time_ns"].as_u64().unwrap());
        }
        let reconnects = counter(&status, "reconnects");
        if reconnects == 2 && warm.is_none() && states.last().is_some_and(|s| s.1 == "streaming") {
            warm = Some(footprint(pid));
        }
        if reconnects >= CYCLES && states.last().is_some_and(|s| s.1 == "streaming") {
            break;
        }
    }
    // Let the last session's pictures arrive, then look at each vanishing.
    std::thread::sleep(Duration::from_secs(1));
    while let Some(image) = images.next_json(Duration::from_millis(100)) {
        image_times.push(image["receive_time_ns"].as_u64().unwrap());
    }
    let mut noticed = 0;
    for pair in image_times.windows(2) {
        let (last, next) = (pair[0], pair[1]);
        if next - last < 500_000_000 {
            continue;
        }
        // The camera vanished just after `last`: the state must leave `streaming` within the
        // stall timeout + 1 s, and pictures come back within 3 s of that.
        let left = states
            .iter()
            .find(|(at, state)| *at > last && state != "streaming")
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("the state stayed streaming after a vanishing: {states:?}"));
        let noticed_after = Duration::from_nanos(left - last);
        let resumed_after = Duration::from_nanos(next.saturating_sub(left));
        assert!(
            noticed_after <= Duration::from_secs_f64(STALL_SECS + 1.0),
            "vanishing {noticed} noticed after {noticed_after:?}"
        );
        assert!(
            resumed_after <= Duration::from_secs(3),
            "vanishing {noticed}: pictures came back {resumed_after:?} after it was noticed"
        );
        noticed += 1;
    }
    assert!(
        noticed >= CYCLES as usize - 1,
        "only {noticed} gaps in the pictures for {CYCLES} vanishings"
    );
    let (threads_warm, fds_warm, rss_warm_kb) = warm.expect("a warm footprint");
    let (threads, fds, rss_kb) = footprint(pid);
    assert!(
        threads <= threads_warm + 2,
        "threads grew from {threads_warm} to {threads} over {CYCLES} reconnects"
    );
    assert!(
        fds <= fds_warm + 4,
        "open file descriptors grew from {fds_warm} to {fds} over {CYCLES} reconnects"
    );
    assert!(
        rss_kb <= rss_warm_kb + 40 * 1024,
        "resident memory grew from {rss_warm_kb} kB to {rss_kb} kB over {CYCLES} reconnects"
    );
    eprintln!(
        "{CYCLES} vanishings: threads {threads_warm}→{threads}, fds {fds_warm}→{fds}, RSS \
         {rss_warm_kb}→{rss_kb} kB"
    );
}
