//! A consumer that arrives while nobody watched gets the current picture at once, from a camera
//! like the Spot CAM: periodic intra refresh, no IDR after the first picture, keyframe requests
//! ignored. The node decodes nothing while `image_raw` has no subscriber, but keeps the access
//! units since the last complete refresh wave (src/media/catch_up.rs); a new subscriber gets a
//! whole picture (checked pixel by pixel against what the simulator drew for its frame number)
//! within 0.3 s of the node seeing it, instead of after the next wave or two (1.3–2.1 s before).
//! Three subscribers come one after the other, each after a different idle time (so they join
//! at different points of the refresh wave); a fourth joins over a link that loses packets.
//! After each part the stream is stopped and every received access unit is found in exactly
//! one of the counters of `~/stats`.
// The simulator's intra-refresh encoder is libx264 through libavcodec.
#![cfg(all(feature = "ros", feature = "libavcodec"))]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::node::{
    NodeLaunch, NodeProcess, StatsWatcher, counter, counters_add_up, unique_domain_id,
};
use common::{Sim, luma_error};
use futures::{FutureExt as _, StreamExt as _};
use spot_ptz_stream::sim::frame_tag;

const FPS: u32 = 30;
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
/// From the node seeing a new subscriber to its first picture (the target).
const FIRST_PICTURE_TARGET: Duration = Duration::from_millis(300);
/// The worst 16x16 block of a clean picture stays well below this (see node_lossy_link.rs); a
/// picture with a region the refresh wave has not reached yet is far above it.
const WORST_BLOCK_LIMIT: f64 = 12.0;
/// The node's log line when `image_raw` gets its first subscriber, and when it loses its last.
const SEEN: &str = "image_raw/camera_info subscribed: decoding";
const IDLE: &str = "nobody subscribes to image_raw or camera_info";

fn unix_secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// The times (Unix seconds) of the node's log lines containing `text`: rcutils prints
/// `[INFO] [1733580000.123456789] [spot_ptz_stream]: ...`.
fn log_times(log: &str, text: &str) -> Vec<f64> {
    log.lines()
        .filter(|line| line.contains(text))
        .filter_map(|line| {
            let start = line.find("] [")? + 3;
            let end = start + line[start..].find(']')?;
            line[start..end].parse().ok()
        })
        .collect()
}

/// Spins `node` until the node process has logged `text` `count` times.
fn spin_until_logged(node: &mut r2r::Node, process: &NodeProcess, text: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_times(&process.log(), text).len() < count {
        assert!(
            Instant::now() < deadline,
            "the node did not log {text:?} {count} times:\n{}",
            process.log()
        );
        node.spin_once(Duration::from_millis(20));
    }
}

struct Join {
    /// From subscribing to the node seeing the subscriber (DDS discovery and the node's poll).
    discovery: Duration,
    /// From the node seeing the subscriber to the first picture arriving.
    first_picture: Duration,
    frame_number: u32,
    worst_block: f64,
}

/// Subscribes to `image_raw`, takes the first picture, checks it, and unsubscribes.
fn join(node: &mut r2r::Node, process: &NodeProcess, joins_before: usize) -> Join {
    let subscribed_at = unix_secs(SystemTime::now());
    let mut images = node
        .subscribe::<r2r::sensor_msgs::msg::Image>("/image_raw", r2r::QosProfile::sensor_data())
        .expect("subscribe image_raw");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (image, received_at) = loop {
        assert!(
            Instant::now() < deadline,
            "no picture within 20 s of subscribing:\n{}",
            process.log()
        );
        node.spin_once(Duration::from_millis(2));
        if let Some(Some(image)) = images.next().now_or_never() {
            break (image, unix_secs(SystemTime::now()));
        }
    };
    drop(images);
    assert_eq!((image.width, image.height), (WIDTH, HEIGHT));
    let frame_number = frame_tag::read_bgr8(&image.data, WIDTH as usize * 3, WIDTH, HEIGHT)
        .unwrap_or_else(|| panic!("the first picture has no readable frame tag"));
    let error = luma_error(&image.data, WIDTH, HEIGHT, frame_number, FPS);
    let seen_at = *log_times(&process.log(), SEEN)
        .get(joins_before)
        .unwrap_or_else(|| {
            panic!(
                "the node did not log seeing the subscriber:\n{}",
                process.log()
            )
        });
    Join {
        discovery: Duration::from_secs_f64((seen_at - subscribed_at).max(0.0)),
        first_picture: Duration::from_secs_f64((received_at - seen_at).max(0.0)),
        frame_number,
        worst_block: error.worst_block,
    }
}

/// Runs the joins against a simulator with these extra flags; returns them and the stats.
fn joins(
    node: &mut r2r::Node,
    domain: u32,
    sim_flags: &[&str],
    idle_times: &[Duration],
) -> (Vec<Join>, serde_json::Value) {
    let flags: Vec<&str> = ["--intra-refresh", "--ignore-keyframe-requests"]
        .into_iter()
        .chain(sim_flags.iter().copied())
        .collect();
    let sim = Sim::start_640x360(&flags);
    let process = NodeLaunch::new(domain, Some(&sim)).start();
    let mut stats = StatsWatcher::start(domain);
    stats
        .wait_for(Duration::from_secs(30), |s| {
            s["values"]["state"] == "streaming" && counter(s, "frames_received") > 0
        })
        .unwrap_or_else(|| panic!("not streaming: {:?}\n{}", stats.last, process.log()));

    let mut done = Vec::new();
    for (index, idle) in idle_times.iter().enumerate() {
        // Idle (the node logged it), then long enough for a refresh wave or two to pass.
        spin_until_logged(node, &process, IDLE, index + 1);
        let until = Instant::now() + *idle;
        while Instant::now() < until {
            node.spin_once(Duration::from_millis(20));
        }
        done.push(join(node, &process, index));
    }
    // The last subscription goes once a message finds it dropped.
    spin_until_logged(node, &process, IDLE, idle_times.len() + 1);
    let status = counters_add_up(domain, &mut stats);
    (done, status)
}

#[test]
fn each_new_subscriber_gets_a_whole_picture_at_once() {
    let domain = unique_domain_id();
    // The test's own subscriber node, in this process: the only test in this binary, so no
    // other thread reads the environment concurrently.
    unsafe { std::env::set_var("ROS_DOMAIN_ID", domain.to_string()) };
    let ctx = r2r::Context::create().expect("ROS context");
    let mut node = r2r::Node::create(ctx, "late_joiner", "").expect("node");
    // Idle times that put the joins at different points of the 1 s refresh wave.
    let idle = [1700, 2300, 2900].map(Duration::from_millis);
    let (clean, status) = joins(&mut node, domain, &[], &idle);
    // One more over a link that loses 3 % of the packets in bursts (repaired by NACK): the
    // join may come while a packet is missing.
    let (lossy, lossy_status) = joins(
        &mut node,
        domain,
        &[
            "--link-loss-percent",
            "3",
            "--link-burst-len",
            "3",
            "--link-delay-ms",
            "20",
            "--rtx",
        ],
        &[Duration::from_millis(2500)],
    );
    for (what, join) in clean
        .iter()
        .map(|j| ("clean link", j))
        .chain(lossy.iter().map(|j| ("lossy link", j)))
    {
        eprintln!(
            "{what}: discovery {:.0} ms, then the first picture {:.0} ms after the node saw the \
             subscriber (frame {}, worst block error {:.1})",
            join.discovery.as_secs_f64() * 1e3,
            join.first_picture.as_secs_f64() * 1e3,
            join.frame_number,
            join.worst_block
        );
        assert!(
            join.worst_block < WORST_BLOCK_LIMIT,
            "{what}: the first picture (frame {}) is not whole: worst block error {:.1}",
            join.frame_number,
            join.worst_block
        );
    }
    for join in &clean {
        assert!(
            join.first_picture <= FIRST_PICTURE_TARGET,
            "the first picture came {:?} after the node saw the subscriber (target {:?})",
            join.first_picture,
            FIRST_PICTURE_TARGET
        );
    }
    assert!(
        counter(&status, "frames_caught_up") > 0,
        "no burst decoded: {status}"
    );
    eprintln!("counters after the clean joins: {status}\nafter the lossy join: {lossy_status}");
}
