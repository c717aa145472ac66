//! Streams that are hard to join: IDR pictures only at session start and on request
//! (`--idr-interval 0`), SPS/PPS only with IDRs, and sessions that start on a non-IDR frame.
//! The node must wait for parameter sets, ask for a keyframe, and deliver frames, also from a
//! camera that ignores keyframe requests.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, NodeProcess, StatsWatcher, counter, subscribe, unique_domain_id};

/// Subscribes to `image_raw` and waits for 30 images (30 s at most each); how many carry a
/// frame tag that reads back from the pixels.
fn tagged_of_30_images(domain: u32, node: &NodeProcess, sim: &Sim) -> usize {
    let images = subscribe("image", "image_raw", 30, domain);
    (0..30)
        .filter(|_| {
            let image = images
                .next_json(Duration::from_secs(30))
                .unwrap_or_else(|| {
                    panic!(
                        "no pictures; node log:\n{}\nsim log:\n{}",
                        node.log(),
                        sim.log()
                    )
                });
            image["frame_number"].is_u64()
        })
        .count()
}

#[test]
fn joins_a_stream_that_starts_on_a_non_idr_frame_without_periodic_idrs() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--idr-interval", "0", "--join-mid-stream"]);
    let node = NodeLaunch::new(domain, Some(&sim))
        // Leave the camera's IDR interval alone (0 = unchanged), so only PLIs give IDRs.
        .param("idr_interval_frames", "0")
        .start();
    let mut stats = StatsWatcher::start(domain);
    let tagged = tagged_of_30_images(domain, &node, &sim);
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

/// The real camera may ignore keyframe requests: a session that starts mid-stream becomes
/// decodable only at the encoder's next own IDR (every 2 s here). The node keeps asking
/// (rate-limited) and publishes clean pictures from that IDR on, none before.
#[test]
fn joins_a_camera_that_ignores_keyframe_requests_at_its_next_own_idr() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[
        "--idr-interval",
        "60",
        "--join-mid-stream",
        "--ignore-keyframe-requests",
    ]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("idr_interval_frames", "0")
        .start();
    let mut stats = StatsWatcher::start(domain);
    let tagged = tagged_of_30_images(domain, &node, &sim);
    assert_eq!(tagged, 30, "pictures whose frame tag did not read back");
    let status = stats
        .wait_for(Duration::from_secs(10), |s| {
            counter(s, "keyframe_requests") > 0 && counter(s, "frames_published") >= 30
        })
        .unwrap_or_else(|| panic!("no keyframe requests counted; last {:?}", stats.last));
    assert_eq!(counter(&status, "decode_errors"), 0, "{status}");
    let log = sim.log();
    assert!(
        log.contains("keyframe request ignored"),
        "the simulator answered a PLI:\n{log}"
    );
    assert!(!log.contains("keyframe requested by the peer"), "{log}");
}
