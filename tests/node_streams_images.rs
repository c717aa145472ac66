//! End to end: spot_cam_sim → spot_ptz_stream → rclpy subscribers in other processes.
//! Encoding, size, stamps, frame numbers (loss < 1 %), and camera_info headers equal to the
//! images'.
#![cfg(feature = "ros")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, PyProcess, unique_domain_id};

fn streams_at(width: u32, height: u32, frames: usize) {
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
        .start();
    let count = frames.to_string();
    let images = PyProcess::start(
        "subscriber.py",
        &[
            "--topic",
            "image_raw",
            "--type",
            "image",
            "--count",
            &count,
            "--timeout",
            "60",
            "--reliability",
            "reliable",
        ],
        domain,
    );
    let infos = PyProcess::start(
        "subscriber.py",
        &[
            "--topic",
            "camera_info",
            "--type",
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
    infos.next_json(Duration::from_secs(30));

    let mut received = Vec::new();
    while received.len() < frames {
        match images.next_json(Duration::from_secs(30)) {
            Some(image) => received.push(image),
            None => panic!(
                "only {} images; node log:\n{}\nsim log:\n{}",
                received.len(),
                node.log(),
                sim.log()
            ),
        }
    }
    let mut info_stamps = HashSet::new();
    while let Some(info) = infos.next_json(Duration::from_secs(5)) {
        assert_eq!(info["frame_id"], "test_ptz_optical");
        assert_eq!(
            (info["width"].as_u64(), info["height"].as_u64()),
            (Some(width.into()), Some(height.into()))
        );
        assert!(
            info["k"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k.as_f64() == Some(0.0)),
            "uncalibrated K must be 0"
        );
        info_stamps.insert(info["stamp_ns"].as_u64().unwrap());
        if info_stamps.len() == frames {
            break;
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
    let span = (numbers.last().unwrap() - numbers.first().unwrap() + 1) as usize;
    let lost = span - numbers.len();
    assert!(
        lost * 100 < span,
        "lost {lost} of {span} frames: {numbers:?}"
    );

    // camera_info carries exactly the images' headers.
    let image_stamps: HashSet<u64> = received
        .iter()
        .map(|i| i["stamp_ns"].as_u64().unwrap())
        .collect();
    let matched = info_stamps.intersection(&image_stamps).count();
    assert!(
        matched * 10 >= frames * 9,
        "only {matched} of {frames} camera_info stamps match an image"
    );
}

// One test, so the two heavy runs do not share the machine's two cores.
#[test]
fn streams_720p_then_1080p() {
    streams_at(1280, 720, 120);
    streams_at(1920, 1080, 90);
}
