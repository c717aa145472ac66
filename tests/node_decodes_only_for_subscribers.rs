//! Nothing is decoded while nobody subscribes to `image_raw`: the stream runs (access units
//! arrive and are counted), but `frames_decoded` stays put. A subscriber that appears gets
//! whole, correct pictures (the simulator's frame tags read back from the pixels); when it
//! leaves, decoding stops again.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, subscribe, unique_domain_id};

#[test]
fn decodes_only_while_image_raw_has_a_subscriber() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--fps", "30"]);
    let node = NodeLaunch::new(domain, Some(&sim)).start();
    let mut stats = StatsWatcher::start(domain);

    // Streaming, with no image subscriber: access units arrive, none is decoded.
    let idle = stats
        .wait_for(Duration::from_secs(30), |s| {
            s["values"]["state"] == "streaming" && counter(s, "frames_not_decoded") >= 60
        })
        .unwrap_or_else(|| panic!("no undecoded stream; last {:?}\n{}", stats.last, node.log()));
    assert_eq!(counter(&idle, "frames_decoded"), 0, "{idle}");
    assert_eq!(counter(&idle, "frames_published"), 0, "{idle}");
    assert!(counter(&idle, "frames_received") >= 60, "{idle}");

    // A subscriber appears: whole pictures with the simulator's frame tags.
    let images = subscribe("image", "image_raw", 30, domain);
    let mut tagged = 0;
    for _ in 0..30 {
        let image = images
            .next_json(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no images after subscribing; node log:\n{}", node.log()));
        assert_eq!(
            (image["width"].as_u64(), image["height"].as_u64()),
            (Some(640), Some(360))
        );
        if image["frame_number"].is_u64() {
            tagged += 1;
        }
    }
    assert_eq!(tagged, 30, "pictures whose frame tag did not read back");
    assert_eq!(images.wait(), Some(0));

    // The subscriber is gone: decoding stops again.
    let decoding = stats
        .wait_for(Duration::from_secs(10), |s| {
            counter(s, "frames_decoded") >= 30
        })
        .unwrap_or_else(|| panic!("decoding was not counted; last {:?}", stats.last));
    let stopped = stats
        .wait_for(Duration::from_secs(10), |s| {
            counter(s, "frames_not_decoded") >= counter(&decoding, "frames_not_decoded") + 30
        })
        .unwrap_or_else(|| panic!("decoding did not stop; last {:?}", stats.last));
    let later = stats
        .wait_for(Duration::from_secs(5), |s| {
            counter(s, "frames_not_decoded") >= counter(&stopped, "frames_not_decoded") + 30
        })
        .unwrap_or_else(|| panic!("the stream stalled; last {:?}", stats.last));
    assert_eq!(
        counter(&later, "frames_decoded"),
        counter(&stopped, "frames_decoded"),
        "frames were decoded with no subscriber: {later}"
    );
    drop(sim);
}
