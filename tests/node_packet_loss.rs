//! 5 % RTP packet loss: the stream continues, damaged frames are dropped, keyframes are
//! requested (RTCP PLI) and reach the camera.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, counter, subscribe, unique_domain_id};

#[test]
fn the_stream_continues_through_five_percent_loss() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--loss-percent", "5"]);
    let node = NodeLaunch::new(domain, Some(&sim)).start();
    let images = subscribe("image", "image_raw", 60, domain);
    let mut stats = StatsWatcher::start(domain);
    let mut numbers = Vec::new();
    for _ in 0..60 {
        let image = images
            .next_json(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("the stream stopped under loss; node log:\n{}", node.log()));
        if let Some(n) = image["frame_number"].as_u64() {
            numbers.push(n);
        }
    }
    // The simulator's loss is unrecoverable (it drops before the sender's NACK history), so
    // IDRs are often damaged too; after `keyframe_wait_secs` the node decodes on, and a P frame
    // decoded against a missing reference can show an older tag. The stream must keep going
    // forward, not be pristine.
    assert!(
        numbers.len() >= 40,
        "only {} of 60 frames had a readable tag",
        numbers.len()
    );
    let backwards = numbers.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(
        backwards * 10 <= numbers.len(),
        "frames went backwards {backwards} times: {numbers:?}"
    );
    assert!(
        numbers.last().unwrap() > numbers.first().unwrap(),
        "the stream did not advance: {numbers:?}"
    );
    let status = stats
        .wait_for(Duration::from_secs(10), |s| {
            // A loss before the first decodable picture costs no frame: wait for one that did.
            counter(s, "rtp_packets_lost") > 0
                && counter(s, "keyframe_requests") > 1
                && counter(s, "frames_incomplete") > 0
        })
        .unwrap_or_else(|| {
            panic!(
                "loss not seen, no frame dropped or no PLI sent; last {:?}",
                stats.last
            )
        });
    assert_eq!(status["values"]["state"], "streaming", "{status}");
    assert!(
        sim.log().matches("keyframe requested").count() > 1,
        "the simulator saw no PLIs"
    );
}
