//! A link that cannot carry the camera's bitrate (the simulator's `--link-rate-bps`: a
//! capacity with a queue that overflows, as a Wi-Fi link does): the node lowers the camera's
//! target bitrate step by step until the loss stays below 1 % at one target, and raises it
//! again once the cap is lifted. The simulator's encoder applies each change (its log says so).
// The simulator's intra-refresh encoder is libx264 through libavcodec.
#![cfg(all(feature = "ros", feature = "libavcodec"))]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, unique_domain_id};

/// The link's capacity while it is capped.
const CAP_BPS: u64 = 600_000;
/// When the cap is lifted (seconds after the simulator started).
const CAP_SECS: u64 = 50;

#[test]
fn a_capped_link_lowers_the_bitrate_and_a_clean_one_raises_it_again() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[
        "--intra-refresh",
        "--link-rate-bps",
        &CAP_BPS.to_string(),
        "--link-rate-duration-secs",
        &CAP_SECS.to_string(),
        "--link-delay-ms",
        "10",
    ]);
    let started = std::time::Instant::now();
    // The repository's parameters ask for 2 Mbit/s; the floor is below the cap.
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("min_bitrate_bps", "200000")
        .start();
    let mut stats = StatsWatcher::start(domain);
    stats
        .wait_for_state("streaming", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("never streaming; node log:\n{}", node.log()));
    assert_eq!(
        counter(stats.last.as_ref().unwrap(), "target_bitrate_bps"),
        2_000_000
    );

    // Down below the cap, while it lasts.
    let lowered = stats
        .wait_for(Duration::from_secs(CAP_SECS - 15), |s| {
            counter(s, "target_bitrate_bps") < CAP_BPS
        })
        .unwrap_or_else(|| {
            panic!(
                "the target stayed at {} over a {CAP_BPS} bit/s link; node log:\n{}",
                counter(stats.last.as_ref().unwrap(), "target_bitrate_bps"),
                node.log()
            )
        });
    let lowest = counter(&lowered, "target_bitrate_bps");
    // Then it settles: 8 s at one target with less than 1 % loss, while the cap is still on
    // (the controller goes on lowering after windows with more, and probes upwards after
    // clean ones). Any 8 s span of the reports counts, not only back-to-back windows.
    let mut span: std::collections::VecDeque<(std::time::Instant, u64, u64, u64)> =
        std::collections::VecDeque::new();
    let settled = loop {
        assert!(
            started.elapsed() < Duration::from_secs(CAP_SECS),
            "the loss did not stay below 1 % for 8 s under the cap; last {:?}\nnode log:\n{}",
            stats.last,
            node.log()
        );
        let status = stats
            .wait_for(Duration::from_secs(5), |_| true)
            .expect("stats");
        let target = counter(&status, "target_bitrate_bps");
        span.push_back((
            std::time::Instant::now(),
            target,
            counter(&status, "rtp_packets"),
            counter(&status, "rtp_packets_lost"),
        ));
        // Only the reports since the target last changed.
        while span.front().is_some_and(|first| first.1 != target) {
            span.pop_front();
        }
        let (Some(&first), Some(&last)) = (span.front(), span.back()) else {
            continue;
        };
        if last.0.duration_since(first.0) < Duration::from_secs(8) {
            continue;
        }
        let (packets, lost) = (last.2 - first.2, last.3 - first.3);
        assert!(packets > 100, "too few packets under the cap: {status}");
        if (lost as f64) < packets as f64 * 0.01 {
            break target;
        }
        span.pop_front();
    };
    assert!(
        settled < CAP_BPS,
        "settled at {settled} bit/s over a {CAP_BPS} bit/s cap"
    );

    // Under the cap the controller probes upwards now and then, and each probe that loses
    // packets is taken back: remember the highest target the capped link saw.
    let highest_capped = std::cell::Cell::new(settled);
    let cap_left = Duration::from_secs(CAP_SECS).saturating_sub(started.elapsed());
    stats.wait_for(cap_left, |s| {
        highest_capped.set(highest_capped.get().max(counter(s, "target_bitrate_bps")));
        false
    });
    // Once the cap is lifted the target climbs beyond anything the capped link carried.
    let beyond = highest_capped.get().max(CAP_BPS);
    let raised = stats
        .wait_for(Duration::from_secs(60), |s| {
            counter(s, "target_bitrate_bps") > beyond
        })
        .unwrap_or_else(|| {
            panic!(
                "the target was not raised above {beyond} bit/s after the cap ended (lowest \
                 {lowest}); node log:\n{}",
                node.log()
            )
        });
    assert_eq!(raised["values"]["state"], "streaming");
    let log = node.log();
    assert!(log.contains("camera bitrate lowered"), "{log}");
    assert!(log.contains("camera bitrate raised"), "{log}");
    assert!(
        sim.log()
            .matches("applying new screen / stream parameters")
            .count()
            >= 3,
        "the camera did not apply the changes:\n{}",
        sim.log()
    );
}
