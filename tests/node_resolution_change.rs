//! A compositor screen change that changes the stream's resolution mid-stream: the node
//! publishes the new size (width/height come from the decoded stream, not configuration).
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::node::{NodeLaunch, subscribe, unique_domain_id};
use common::{PASSWORD, Sim, USERNAME};
use spot_ptz_stream::robot::{Credentials, RobotClient, SPOT_CAM_SERVICES};

#[test]
fn a_new_size_is_published_after_the_screen_changes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&["--resize-on-screen-change"]);
    let node = NodeLaunch::new(domain, Some(&sim)).start();
    let images = subscribe("image", "image_raw", 100000, domain);
    let first = images
        .next_json(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no image; log:\n{}", node.log()));
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(640), Some(360))
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let robot = RobotClient::new(sim.stream_config().robot).unwrap();
        robot
            .login(&Credentials::new(USERNAME.into(), PASSWORD.into()))
            .await
            .unwrap();
        robot
            .wait_for_services(&SPOT_CAM_SERVICES, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(robot.set_screen("pano_full").await.unwrap(), "pano_full");
    });
    let resized = (0..300).find_map(|_| {
        let image = images.next_json(Duration::from_secs(10))?;
        (image["height"].as_u64() == Some(176)).then_some(image)
    });
    let resized =
        resized.unwrap_or_else(|| panic!("the new size never arrived; log:\n{}", node.log()));
    assert_eq!(resized["width"].as_u64(), Some(640));
    assert_eq!(resized["data_len"].as_u64(), Some(640 * 176 * 3));
}
