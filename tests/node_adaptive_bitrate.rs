//! A link that cannot carry the camera's bitrate (the simulator's `--link-rate-bps`: a
//! capacity with a queue that overflows, as a Wi-Fi link does): the node lowers the camera's
//! target bitrate step by step until the loss stays below 1 %, and raises it again once the
//! cap is lifted. The simulator's encoder applies each change (its log says so).
// The simulator's intra-refresh encoder is libx264 through libavcodec.
#![cfg(all(feature = "ros", feature = "libavcodec"))]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, unique_domain_id};

/// The link's capacity while it is capped.
const CAP_BPS: u64 = 600_000;
/// When the cap is lifted (seconds after the simulator started).
const CAP_SECS: u64 = 45;

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
    // Then the loss stays below 1 % for 8 s while the cap is still on.
    std::thread::sleep(Duration::from_secs(2));
    let before = stats.latest().expect("stats");
    std::thread::sleep(Duration::from_secs(8));
    let after = stats.latest().expect("stats");
    assert!(
        started.elapsed() < Duration::from_secs(CAP_SECS),
        "the bitrate came down too late to measure the loss under the cap"
    );
    let packets = counter(&after, "rtp_packets") - counter(&before, "rtp_packets");
    let lost = counter(&after, "rtp_packets_lost") - counter(&before, "rtp_packets_lost");
    assert!(packets > 100, "too few packets under the cap: {after}");
    assert!(
        (lost as f64) < packets as f64 * 0.01,
        "{lost} of {packets} packets lost at {} bit/s under a {CAP_BPS} bit/s cap: {after}\nnode log:\n{}",
        counter(&after, "target_bitrate_bps"),
        node.log()
    );

    // Under the cap the controller may probe upwards, but each probe above the cap loses
    // packets and is taken back. Once the cap is lifted, the target climbs well above it.
    let above_cap = CAP_BPS * 6 / 5;
    let raised = stats
        .wait_for(
            Duration::from_secs(CAP_SECS + 55) - started.elapsed(),
            |s| counter(s, "target_bitrate_bps") > above_cap,
        )
        .unwrap_or_else(|| {
            panic!(
                "the target was not raised above {above_cap} bit/s after the cap ended (lowest \
                 {lowest}); node log:\n{}",
                node.log()
            )
        });
    assert!(
        started.elapsed() > Duration::from_secs(CAP_SECS),
        "the target rose above the cap while the cap was on: {raised}"
    );
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
