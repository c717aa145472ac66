//! End to end: spot_cam_sim → spot_ptz_stream → rclpy subscribers in other processes, with
//! each decoder.
//! Encoding, size, stamps, frame numbers (loss < 1 %), and camera_info headers equal to the
//! images'.
#![cfg(feature = "ros")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, PyProcess, StatsWatcher, counter, unique_domain_id};

/// Frames received before the loss measurement starts.
const WARM_UP_FRAMES: usize = 10;

fn streams_at(width: u32, height: u32, frames: usize, decoder: &str) {
    let domain = unique_domain_id();
    let sim = Sim::start(&[
        "--width",
        &width.to_string(),
        "--height",
        &height.to_string(),
        "--fps",
        "30",
    ]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("frame_id", "test_ptz_optical")
        .param("decoder", decoder)
        // A consumer that wants every frame keeps a few in the reliable writer's history; with
        // the default depth 1 a busy Python reader loses frames inside DDS, not in the node.
        .param("image_qos_depth", "5")
        // The simulator's encoder, the node and two Python processes share two cores here.
        .param("queue_depth", "4")
        .start();
    let mut stats = StatsWatcher::start(domain);
    let count = frames.to_string();
    let images = PyProcess::start(
        "subscriber.py",
        &[
            "--topic",
            "image_raw",
            "--type",
            "image",
            "--also-camera-info",
            "camera_info",
            "--count",
            &count,
            "--timeout",
            "60",
            "--reliability",
            "reliable",
        ],
        domain,
    );
    images.next_json(Duration::from_secs(30));

    let mut received = Vec::new();
    let mut info_stamps = HashSet::new();
    while received.len() < frames {
        let Some(message) = images.next_json(Duration::from_secs(30)) else {
            panic!(
                "only {} images; node log:\n{}\nsim log:\n{}",
                received.len(),
                node.log(),
                sim.log()
            );
        };
        if message["kind"] == "camera_info" {
            assert_eq!(message["frame_id"], "test_ptz_optical");
            assert_eq!(
                (message["width"].as_u64(), message["height"].as_u64()),
                (Some(width.into()), Some(height.into()))
            );
            // No calibration: the lens model at the PTZ's zoom (1 here), or K = 0 before the
            // first PTZ measurement.
            let k: Vec<f64> = message["k"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_f64().unwrap())
                .collect();
            let lens = spot_ptz_stream::aiming::lens::LensModel::default().k(width, height, 1.0);
            let matches = k.iter().zip(lens).all(|(a, b)| (a - b).abs() < 1e-6);
            assert!(
                matches || k.iter().all(|v| *v == 0.0),
                "K {k:?}, expected {lens:?} or 0"
            );
            info_stamps.insert(message["stamp_ns"].as_u64().unwrap());
        } else {
            received.push(message);
        }
    }

    let mut numbers = Vec::new();
    let mut previous_stamp = 0;
    for image in &received {
        assert_eq!(image["encoding"], "bgr8");
        assert_eq!(image["width"].as_u64(), Some(width.into()));
        assert_eq!(image["height"].as_u64(), Some(height.into()));
        assert_eq!(image["step"].as_u64(), Some(u64::from(width) * 3));
        assert_eq!(
            image["data_len"].as_u64(),
            Some(u64::from(width * height * 3))
        );
        assert_eq!(image["frame_id"], "test_ptz_optical");
        let stamp = image["stamp_ns"].as_u64().unwrap();
        assert!(stamp >= previous_stamp, "stamps went backwards");
        previous_stamp = stamp;
        if let Some(n) = image["frame_number"].as_u64() {
            numbers.push(n);
        }
    }
    assert!(
        numbers.len() * 100 >= received.len() * 99,
        "unreadable frame tags: {} of {}",
        received.len() - numbers.len(),
        received.len()
    );
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "frame numbers not increasing: {numbers:?}"
    );
    // Loss is measured once the subscription is established: the first frames can race the
    // DDS endpoint matching of a subscriber that started at the same time as the node.
    let steady = &numbers[WARM_UP_FRAMES..];
    let span = (steady.last().unwrap() - steady.first().unwrap() + 1) as usize;
    let lost = span - steady.len();
    assert!(
        lost * 100 < span,
        "lost {lost} of {span} frames: {numbers:?}"
    );

    // The node itself (its bounded queues) dropped (almost) nothing; network loss on
    // loopback is what the frame numbers above measure.
    let status = stats
        .wait_for(Duration::from_secs(5), |s| {
            counter(s, "frames_published") >= frames as u64
        })
        .unwrap_or_else(|| panic!("no stats; last {:?}", stats.last));
    let published = counter(&status, "frames_published");
    let dropped = counter(&status, "frames_dropped");
    assert!(
        dropped * 100 <= published,
        "the node dropped {dropped} of {published}: {status}"
    );

    // camera_info carries exactly the images' headers.
    let image_stamps: HashSet<u64> = received
        .iter()
        .map(|i| i["stamp_ns"].as_u64().unwrap())
        .collect();
    let matched = info_stamps.intersection(&image_stamps).count();
    // The camera_info of the last few images may still be in flight.
    assert!(
        matched * 10 >= frames * 9,
        "only {matched} of {frames} camera_info stamps match an image"
    );
}

// One test, so the heavy runs do not share the machine's two cores: the default decoder
// (libavcodec where built in) at 720p and 1080p, then the openh264 fallback.
#[test]
fn streams_720p_then_1080p_with_each_decoder() {
    let default = if cfg!(feature = "libavcodec") {
        "libavcodec"
    } else {
        "openh264"
    };
    streams_at(1280, 720, 120, default);
    streams_at(1920, 1080, 90, default);
    streams_at(1280, 720, 60, "openh264");
}
