//! A Rust (r2r) subscriber in this test process receives the node's images and camera_info
//! over DDS: bgr8, the stream's size, readable frame numbers, matching headers.
#![cfg(feature = "ros")]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::Sim;
use common::node::{NodeLaunch, unique_domain_id};
use futures::{FutureExt as _, StreamExt as _};
use spot_ptz_stream::sim::frame_tag;

#[test]
fn an_r2r_subscriber_receives_images_and_camera_info() {
    let domain = unique_domain_id();
    // The only test in this binary: no other thread reads the environment concurrently.
    unsafe { std::env::set_var("ROS_DOMAIN_ID", domain.to_string()) };
    let sim = Sim::start_640x360(&[]);
    let node_process = NodeLaunch::new(domain, Some(&sim)).start();

    let ctx = r2r::Context::create().expect("ROS context");
    let mut node = r2r::Node::create(ctx, "r2r_test_subscriber", "").expect("node");
    let mut images = node
        .subscribe::<r2r::sensor_msgs::msg::Image>("/image_raw", r2r::QosProfile::sensor_data())
        .expect("subscribe image_raw");
    let mut infos = node
        .subscribe::<r2r::sensor_msgs::msg::CameraInfo>(
            "/camera_info",
            r2r::QosProfile::sensor_data(),
        )
        .expect("subscribe camera_info");

    let mut numbers = Vec::new();
    let mut image_stamps = HashSet::new();
    let mut info_stamps = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while numbers.len() < 30 && Instant::now() < deadline {
        node.spin_once(Duration::from_millis(20));
        while let Some(Some(image)) = images.next().now_or_never() {
            assert_eq!(image.encoding, "bgr8");
            assert_eq!((image.width, image.height, image.step), (640, 360, 640 * 3));
            let stamp = (image.header.stamp.sec, image.header.stamp.nanosec);
            image_stamps.insert(stamp);
            if let Some(n) = frame_tag::read_bgr8(&image.data, 640 * 3, 640, 360) {
                numbers.push(n);
            }
        }
        while let Some(Some(info)) = infos.next().now_or_never() {
            assert_eq!((info.width, info.height), (640, 360));
            info_stamps.insert((info.header.stamp.sec, info.header.stamp.nanosec));
        }
    }
    assert!(
        numbers.len() >= 30,
        "only {} tagged images; node log:\n{}",
        numbers.len(),
        node_process.log()
    );
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    let matched = info_stamps.intersection(&image_stamps).count();
    assert!(
        matched >= 20,
        "camera_info headers do not match the images' ({matched} of {})",
        image_stamps.len()
    );
}
