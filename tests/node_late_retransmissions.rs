//! A busy camera answers NACKs late: its retransmissions leave 120 ms after the request
//! (`--nack-delay-ms`), over a 10 ms link that loses 1 % of the packets, from a camera like the
//! Spot CAM (intra refresh, keyframe requests ignored). A retransmission that comes after the
//! reorder buffer gave its frame up is worth nothing, and the frame's loss costs the pictures
//! up to the end of the next refresh wave (1–2 s); a retransmission waited for costs only its
//! wait. So the default `reorder_wait_ms` must cover a late answer: with it the node publishes
//! almost every frame; with the earlier default (100 ms) most retransmissions come too late and
//! whole waves of pictures are lost. Either way every access unit received ends in exactly one
//! counter of `~/stats` (checked once the stream is stopped).
#![cfg(all(feature = "ros", feature = "libavcodec"))]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{
    FrameCounter, NodeLaunch, StatsWatcher, counter, counters_add_up, unique_domain_id,
};

const FPS: u64 = 30;
const COUNT_SECS: u64 = 12;

/// Frames a subscriber got in [`COUNT_SECS`], and the node's packet counters then.
fn watch(sim: &Sim, reorder_wait_ms: Option<&str>) -> (u64, serde_json::Value) {
    let domain = unique_domain_id();
    let mut launch = NodeLaunch::new(domain, Some(sim));
    if let Some(wait) = reorder_wait_ms {
        launch = launch.param("reorder_wait_ms", wait);
    }
    let node = launch.start();
    let mut stats = StatsWatcher::start(domain);
    let images = FrameCounter::start(domain, "reliable", COUNT_SECS, 60, &[]);
    let received = images.received(Duration::from_secs(60), &node);
    stats.latest().expect("stats");
    // Every access unit received, repaired or not, ended in exactly one counter.
    let status = counters_add_up(domain, &mut stats);
    (received, status)
}

#[test]
fn late_retransmissions_are_waited_for() {
    let sim = Sim::start_640x360(&[
        "--intra-refresh",
        "--ignore-keyframe-requests",
        "--link-loss-percent",
        "1",
        "--link-delay-ms",
        "10",
        "--nack-delay-ms",
        "120",
    ]);
    let (with_default, default_status) = watch(&sim, None);
    let (with_100_ms, short_status) = watch(&sim, Some("100"));
    let expected = FPS * COUNT_SECS;
    let summary = |status: &serde_json::Value| {
        format!(
            "packets recovered {}, too late {}, lost {}",
            counter(status, "packets_recovered"),
            counter(status, "rtp_packets_too_late"),
            counter(status, "rtp_packets_lost")
        )
    };
    eprintln!(
        "retransmissions 120 ms late, 1 % loss: default reorder wait {with_default} of about \
         {expected} frames ({}); 100 ms wait {with_100_ms} ({})",
        summary(&default_status),
        summary(&short_status)
    );
    assert!(
        with_default * 100 >= expected * 90,
        "with the default reorder wait only {with_default} of about {expected} frames: {}",
        summary(&default_status)
    );
    assert!(
        counter(&default_status, "packets_recovered") > 0,
        "nothing was retransmitted: {default_status}"
    );
    // The simulated camera's late answers are real: a wait shorter than them loses pictures.
    assert!(
        counter(&short_status, "rtp_packets_too_late") > 0 && with_100_ms < with_default,
        "a 100 ms wait lost nothing to 120 ms late retransmissions ({with_100_ms} frames, {})",
        summary(&short_status)
    );
}
