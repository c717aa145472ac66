//! Streams that are hard to join: IDR pictures only at session start and on request
//! (`--idr-interval 0`), SPS/PPS only with IDRs, and sessions that start on a non-IDR frame.
//! The node must wait for parameter sets, ask for a keyframe, and deliver frames.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, subscribe, unique_domain_id};

#[test]
fn joins_a_stream_that_starts_on_a_non_idr_frame_without_periodic_idrs() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--idr-interval", "0", "--join-mid-stream"]);
    let node = NodeLaunch::new(domain, Some(&sim))
        // Leave the camera's IDR interval alone (0 = unchanged), so only PLIs give IDRs.
        .param("idr_interval_frames", "0")
        .start();
    let images = subscribe("image", "image_raw", 30, domain);
    let mut stats = StatsWatcher::start(domain);
    let mut tagged = 0;
    for _ in 0..30 {
        let image = images
            .next_json(Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "frames stopped; node log:\n{}\nsim log:\n{}",
                    node.log(),
                    sim.log()
                )
            });
        if image["frame_number"].is_u64() {
            tagged += 1;
        }
    }
    assert!(tagged >= 29, "only {tagged} of 30 frames decoded cleanly");
    let status = stats
        .wait_for(Duration::from_secs(10), |s| {
            counter(s, "keyframe_requests") > 0
        })
        .expect("the node never asked for a keyframe");
    assert_eq!(counter(&status, "decode_errors"), 0, "{status}");
    assert!(
        sim.log().contains("keyframe requested"),
        "the simulator saw no PLI"
    );
}
