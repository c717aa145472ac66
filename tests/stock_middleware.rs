//! Every frame on a stock ROS 2 installation: Fast DDS with no profile anywhere (its built-in
//! shared-memory segment is 512 KiB, a 1080p bgr8 image 6.2 MB). The node sets up its own
//! participant for large images (src/ros/middleware.rs); a best-effort (sensor-data QoS) and a
//! reliable rclpy subscriber, themselves without any profile, must get as many 1080p30 frames
//! as when both sides run a 64 MiB profile chosen by the user, which the node must leave alone.
//! With the node's profile switched off, the best-effort subscriber loses most frames: what a
//! user got before, and what this test would see if the node stopped configuring itself.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{FrameCounter, NodeLaunch, unique_domain_id};

/// How long each subscriber counts, from its first image.
const COUNT_SECS: u32 = 10;
const FPS: u32 = 30;

/// A user's own Fast DDS profile: the built-in transports with a 64 MiB segment.
const USER_PROFILE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor><transport_id>user_shm</transport_id><type>SHM</type>
      <segment_size>67108864</segment_size></transport_descriptor>
    <transport_descriptor><transport_id>user_udp</transport_id><type>UDPv4</type></transport_descriptor>
  </transport_descriptors>
  <participant profile_name="user" is_default_profile="true">
    <rtps><useBuiltinTransports>false</useBuiltinTransports>
      <userTransports><transport_id>user_shm</transport_id><transport_id>user_udp</transport_id></userTransports>
    </rtps>
  </participant>
</profiles>
"#;

/// The variables by which a user configures Fast DDS, all removed for a stock run.
const FAST_DDS_VARIABLES: [&str; 4] = [
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "RMW_FASTRTPS_USE_QOS_FROM_XML",
];

#[derive(Debug, Clone, Copy)]
struct Counts {
    best_effort: u64,
    reliable: u64,
}

/// Starts a node with `node_env` and, once it streams, a best-effort and a reliable subscriber
/// with `subscriber_env`; returns what each received in [`COUNT_SECS`] and the node's log.
fn frames_received(
    sim: &Sim,
    node_env: &[(&str, Option<&str>)],
    subscriber_env: &[(&str, Option<&str>)],
) -> (Counts, String) {
    let domain = unique_domain_id();
    let mut launch = NodeLaunch::new(domain, Some(sim));
    for (name, value) in node_env {
        launch = launch.env(name, *value);
    }
    let node = launch.start();
    let subscriber = |reliability: &str| {
        FrameCounter::start(domain, reliability, COUNT_SECS.into(), 90, subscriber_env)
    };
    let best_effort = subscriber("best_effort");
    let reliable = subscriber("reliable");
    let counts = Counts {
        best_effort: best_effort.received(Duration::from_secs(90), &node),
        reliable: reliable.received(Duration::from_secs(90), &node),
    };
    let log = node.log();
    (counts, log)
}

#[test]
fn a_stock_installation_gets_every_1080p_frame() {
    let sim = Sim::start(&[
        "--width",
        "1920",
        "--height",
        "1080",
        "--fps",
        &FPS.to_string(),
    ]);
    let stock: Vec<(&str, Option<&str>)> = FAST_DDS_VARIABLES.iter().map(|v| (*v, None)).collect();

    let dir = tempfile::tempdir().expect("dir");
    let profile = dir.path().join("user_fastdds.xml");
    std::fs::write(&profile, USER_PROFILE).expect("profile");
    let profile = profile.to_str().expect("utf-8 path");
    let user: Vec<(&str, Option<&str>)> = vec![("FASTRTPS_DEFAULT_PROFILES_FILE", Some(profile))];

    let (with_user_profile, log) = frames_received(&sim, &user, &user);
    assert!(
        log.contains("Fast DDS is configured by the user (FASTRTPS_DEFAULT_PROFILES_FILE)"),
        "the node did not leave the user's profile alone:\n{log}"
    );
    let (on_stock, log) = frames_received(&sim, &stock, &stock);
    assert!(
        log.contains("using the node's own"),
        "the node did not configure itself on a stock installation:\n{log}"
    );
    let mut switched_off_env = stock.clone();
    switched_off_env.push(("SPOT_PTZ_STREAM_FASTDDS_PROFILE", Some("off")));
    let (switched_off, _) = frames_received(&sim, &switched_off_env, &stock);

    let expected = u64::from(COUNT_SECS * FPS);
    eprintln!(
        "1080p{FPS}, {COUNT_SECS} s (about {expected} frames): user's 64 MiB profile on both sides \
         {with_user_profile:?}; stock installation {on_stock:?}; stock with the node's profile \
         switched off {switched_off:?}"
    );
    let within_5_percent = |stock: u64, profile: u64| stock * 100 >= profile * 95;
    assert!(
        within_5_percent(on_stock.best_effort, with_user_profile.best_effort),
        "best effort: {on_stock:?} on a stock installation, {with_user_profile:?} with the profile"
    );
    assert!(
        within_5_percent(on_stock.reliable, with_user_profile.reliable),
        "reliable: {on_stock:?} on a stock installation, {with_user_profile:?} with the profile"
    );
    // Most frames, not a trickle (two cores carry the camera, the node and both subscribers).
    assert!(
        on_stock.best_effort * 100 >= expected * 80,
        "best effort: {on_stock:?} of about {expected}"
    );
    // What users got before: Fast DDS's built-in segment loses most large images.
    assert!(
        switched_off.best_effort * 2 < on_stock.best_effort,
        "with the built-in transports the best-effort subscriber got {switched_off:?}, with the \
         node's profile {on_stock:?}: the test no longer shows the stock installation's problem"
    );
}
