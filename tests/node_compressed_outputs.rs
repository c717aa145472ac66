//! The compressed outputs, as viewers use them: a separate rclpy process
//! (tests/ros/compressed_subscriber.py) decodes `image_raw/ffmpeg` and `image_raw/foxglove`
//! with PyAV (libavcodec) from the first keyframe on, as ffmpeg_image_transport and Foxglove
//! do, and each JPEG of `image_raw/compressed`; it reads the simulator's frame tags and checks
//! every picture's pixels against what the simulator drew. Late joiners, a camera with intra
//! refresh that ignores keyframe requests, and the cost of nobody subscribing are covered too.
#![cfg(feature = "ros")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, NodeProcess, PyProcess, StatsWatcher, counter, unique_domain_id};
use serde_json::Value;

const FFMPEG: &str = "/image_raw/ffmpeg";
const FOXGLOVE: &str = "/image_raw/foxglove";
const JPEG: &str = "/image_raw/compressed";
/// Worst 16x16-block luma error a clean picture stays under (H.264 measures about 0.2).
const DAMAGED_WORST_BLOCK: f64 = 12.0;
/// The simulator's frame rate, and the RTP clock step between its frames.
const FPS: u64 = 30;
const PTS_STEP: u64 = 90_000 / FPS;

/// What the subscriber printed: the `subscribed` line and one line per message.
struct Received {
    subscribed_ns: u64,
    messages: Vec<Value>,
}

impl Received {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["kind"] == kind).collect()
    }
}

fn compressed_subscriber(args: &[&str], domain: u32) -> (PyProcess, u64) {
    let process = PyProcess::start("compressed_subscriber.py", args, domain);
    let first = process
        .next_json(Duration::from_secs(30))
        .expect("the compressed subscriber did not start");
    let subscribed_ns = first["time_ns"].as_u64().expect("time_ns");
    (process, subscribed_ns)
}

/// Runs the subscriber to its end and collects what it printed.
fn receive(args: &[&str], domain: u32) -> Received {
    let (process, subscribed_ns) = compressed_subscriber(args, domain);
    let mut messages = Vec::new();
    while let Some(line) = process.next_json(Duration::from_secs(30)) {
        messages.push(line);
    }
    Received {
        subscribed_ns,
        messages,
    }
}

fn pictures<'a>(messages: &[&'a Value]) -> Vec<&'a Value> {
    messages
        .iter()
        .flat_map(|m| m["pictures"].as_array().into_iter().flatten())
        .collect()
}

/// Checks a decoded H.264 topic: decoding starts at the first message the topic's viewer
/// takes as a keyframe, no decode error after it, the frame tags of the pictures are
/// consecutive with less than 1 % missing, and every picture is clean.
fn check_decoded_video(kind: &str, messages: &[&Value], logs: &dyn Fn() -> String) -> usize {
    let started: Vec<&&Value> = messages.iter().filter(|m| m["started"] == true).collect();
    assert!(
        !started.is_empty(),
        "{kind}: no keyframe in {} messages\n{}",
        messages.len(),
        logs()
    );
    for message in messages {
        assert_eq!(
            message["starts_with_start_code"], true,
            "{kind}: not Annex B: {message}"
        );
        assert_eq!(
            message["frame_id"], "spot_cam_ptz_optical",
            "{kind}: {message}"
        );
    }
    let errors: Vec<&&&Value> = started.iter().filter(|m| !m["error"].is_null()).collect();
    assert!(
        errors.is_empty(),
        "{kind}: decode errors after the first keyframe: {errors:?}"
    );
    let decoded = pictures(messages);
    let numbers: BTreeSet<u64> = decoded
        .iter()
        .map(|p| {
            p["frame_number"]
                .as_u64()
                .unwrap_or_else(|| panic!("{kind}: a picture whose frame tag does not read: {p}"))
        })
        .collect();
    assert_eq!(
        numbers.len(),
        decoded.len(),
        "{kind}: a frame decoded twice"
    );
    let (first, last) = (
        *numbers.first().expect("pictures"),
        *numbers.last().expect("pictures"),
    );
    let missing = (last - first + 1) as usize - numbers.len();
    assert!(
        missing * 100 < numbers.len(),
        "{kind}: {missing} frames missing between {first} and {last} ({} decoded)",
        numbers.len()
    );
    for picture in &decoded {
        assert_eq!(
            (&picture["width"], &picture["height"]),
            (&Value::from(640), &Value::from(360))
        );
        let worst = picture["worst_block"].as_f64().expect("worst_block");
        assert!(
            worst < DAMAGED_WORST_BLOCK,
            "{kind}: a damaged picture: {picture}"
        );
    }
    numbers.len()
}

fn logs(node: &NodeProcess, sim: &Sim) -> String {
    format!("node log:\n{}\nsim log:\n{}", node.log(), sim.log())
}

#[test]
fn each_output_decodes_in_an_rclpy_subscriber_from_its_first_keyframe() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("jpeg_max_rate_hz", "10.0")
        .start();
    let logs = || logs(&node, &sim);
    let received = receive(
        &[
            "--ffmpeg",
            FFMPEG,
            "--foxglove",
            FOXGLOVE,
            "--jpeg",
            JPEG,
            "--duration",
            "10",
            "--check-pixels",
            "640x360@30",
        ],
        domain,
    );

    let ffmpeg = received.of("ffmpeg");
    let first_key = ffmpeg
        .iter()
        .find(|m| m["started"] == true)
        .unwrap_or_else(|| panic!("no ffmpeg keyframe\n{}", logs()));
    assert_eq!(first_key["flags"], 1, "{first_key}");
    for message in &ffmpeg {
        assert_eq!(message["encoding"], "h264;yuv420p;bgr8;bgr8", "{message}");
        assert_eq!(
            (&message["width"], &message["height"]),
            (&Value::from(640), &Value::from(360))
        );
    }
    // pts on the RTP clock (90 kHz): rising by about one frame per message (the sender's
    // timestamps follow its clock, so a step may be off by a tick or two), 30 fps on average.
    let pts: Vec<u64> = ffmpeg.iter().map(|m| m["pts"].as_u64().unwrap()).collect();
    for (pair, messages) in pts.windows(2).zip(ffmpeg.windows(2)) {
        let step = pair[1] - pair[0];
        assert!(
            (PTS_STEP / 2..=PTS_STEP * 2).contains(&step),
            "pts step {step}: {} then {}",
            messages[0],
            messages[1]
        );
    }
    let mean_step = (pts[pts.len() - 1] - pts[0]) as f64 / (pts.len() - 1) as f64;
    assert!(
        (mean_step - PTS_STEP as f64).abs() < 0.01 * PTS_STEP as f64,
        "mean pts step {mean_step}"
    );
    let ffmpeg_pictures = check_decoded_video("ffmpeg", &ffmpeg, &logs);
    assert!(
        ffmpeg_pictures >= 150,
        "ffmpeg: only {ffmpeg_pictures} pictures in 10 s"
    );

    let foxglove = received.of("foxglove");
    let first_idr = foxglove
        .iter()
        .find(|m| m["started"] == true)
        .unwrap_or_else(|| panic!("no foxglove IDR\n{}", logs()));
    assert_eq!(first_idr["has_idr"], true);
    assert!(foxglove.iter().all(|m| m["format"] == "h264"));
    let foxglove_pictures = check_decoded_video("foxglove", &foxglove, &logs);
    assert!(
        foxglove_pictures >= 150,
        "foxglove: only {foxglove_pictures} pictures in 10 s"
    );

    let jpeg = received.of("jpeg");
    assert!(!jpeg.is_empty(), "no JPEG\n{}", logs());
    for message in &jpeg {
        assert_eq!(message["format"], "bgr8; jpeg compressed bgr8", "{message}");
        assert!(message["error"].is_null(), "{message}");
        let [picture] = message["pictures"].as_array().expect("pictures").as_slice() else {
            panic!("a JPEG message is not one picture: {message}");
        };
        assert_eq!(
            (&picture["width"], &picture["height"]),
            (&Value::from(640), &Value::from(360))
        );
        assert!(
            picture["frame_number"].is_u64(),
            "unreadable tag: {message}"
        );
        let worst = picture["worst_block"].as_f64().expect("worst_block");
        assert!(worst < DAMAGED_WORST_BLOCK, "a damaged JPEG: {message}");
    }
    // jpeg_max_rate_hz = 10 of a 30 fps stream: every third frame, at most 10 per second.
    let span_secs = (jpeg.last().unwrap()["receive_time_ns"].as_u64().unwrap()
        - jpeg[0]["receive_time_ns"].as_u64().unwrap()) as f64
        / 1e9;
    let rate_hz = (jpeg.len() - 1) as f64 / span_secs;
    assert!(
        (8.0..=10.5).contains(&rate_hz),
        "{} JPEG at {rate_hz:.1} Hz",
        jpeg.len()
    );

    // One stamp per frame, whichever topic carries it (image_raw's too: the same Stamper).
    let video_stamps: BTreeSet<u64> = ffmpeg
        .iter()
        .map(|m| m["stamp_ns"].as_u64().unwrap())
        .collect();
    let foxglove_stamps: BTreeSet<u64> = foxglove
        .iter()
        .map(|m| m["stamp_ns"].as_u64().unwrap())
        .collect();
    let common_stamps = video_stamps.intersection(&foxglove_stamps).count();
    assert!(
        common_stamps + 5 >= foxglove_stamps.len().min(video_stamps.len()),
        "ffmpeg and foxglove stamps differ for the same access units"
    );
    // Every JPEG is of a current frame: its stamp (the frame's arrival) is at most 1.5 s before
    // this process received it. The first one comes at once (the node catches up to the current
    // picture as soon as it sees the subscriber), possibly of a frame whose passthrough message
    // went out before this process's video reader had matched (discovery of the three readers
    // finishes at different times on a loaded machine): compare the frames both topics carried.
    let stale: Vec<&Value> = jpeg
        .iter()
        .filter(|m| {
            let stamp = m["stamp_ns"].as_u64().unwrap();
            let received = m["receive_time_ns"].as_u64().unwrap();
            received.saturating_sub(stamp) > 1_500_000_000
        })
        .copied()
        .collect();
    assert!(
        stale.is_empty(),
        "{} of {} JPEG pictures are of frames older than 1.5 s: {:?}",
        stale.len(),
        jpeg.len(),
        stale.first()
    );
    let first_video_stamp = *video_stamps.first().expect("video stamps");
    let jpeg_of_video_time: Vec<&Value> = jpeg
        .iter()
        .filter(|m| m["stamp_ns"].as_u64().unwrap() >= first_video_stamp)
        .copied()
        .collect();
    let jpeg_in_video = jpeg_of_video_time
        .iter()
        .filter(|m| video_stamps.contains(&m["stamp_ns"].as_u64().unwrap()))
        .count();
    assert!(
        jpeg_of_video_time.len() * 2 >= jpeg.len(),
        "{} of {} JPEG pictures are older than the first video message",
        jpeg.len() - jpeg_of_video_time.len(),
        jpeg.len()
    );
    assert!(
        jpeg_in_video + 2 >= jpeg_of_video_time.len(),
        "JPEG stamps are not the stamps of their frames: {jpeg_in_video} of {}",
        jpeg_of_video_time.len()
    );
}

/// A simulator with these flags and a node that leaves the camera's IDR interval alone,
/// streaming for 3 s with nobody subscribed to the passthrough topics yet.
fn streaming_without_own_idrs(sim_flags: &[&str]) -> (u32, Sim, NodeProcess, StatsWatcher) {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(sim_flags);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("idr_interval_frames", "0")
        .start();
    let mut stats = StatsWatcher::start(domain);
    stats
        .wait_for(Duration::from_secs(60), |s| {
            counter(s, "frames_received") >= 90
        })
        .unwrap_or_else(|| panic!("the stream did not run\n{}", logs(&node, &sim)));
    (domain, sim, node, stats)
}

/// Without a keyframe request a late joiner would wait forever here: the camera sends IDRs
/// only on request (`--idr-interval 0`, and the node leaves the interval alone).
#[test]
fn a_late_passthrough_subscriber_gets_a_keyframe_within_2_s() {
    let (domain, sim, node, mut stats) = streaming_without_own_idrs(&["--idr-interval", "0"]);
    for round in 0..2 {
        let received = receive(
            &[
                "--ffmpeg",
                FFMPEG,
                "--foxglove",
                FOXGLOVE,
                "--until-decoded",
                "--duration",
                "15",
                "--check-pixels",
                "640x360@30",
            ],
            domain,
        );
        for kind in ["ffmpeg", "foxglove"] {
            let messages = received.of(kind);
            let first_picture = messages
                .iter()
                .find(|m| !m["pictures"].as_array().unwrap().is_empty())
                .unwrap_or_else(|| {
                    panic!(
                        "round {round}: {kind} decoded nothing\n{}",
                        logs(&node, &sim)
                    )
                });
            // Joined = the first message arrived (DDS discovery, before it, is not the node's).
            let joined_ns = messages[0]["receive_time_ns"].as_u64().unwrap();
            let at = |ns: u64| (ns - received.subscribed_ns) as f64 / 1e9;
            let picture_ns = first_picture["receive_time_ns"].as_u64().unwrap();
            let wait_secs = at(picture_ns) - at(joined_ns);
            eprintln!(
                "round {round}: {kind}: first message {:.2} s after subscribing, first picture {wait_secs:.2} s after that",
                at(joined_ns)
            );
            assert!(
                wait_secs < 2.0,
                "round {round}: {kind} waited {wait_secs:.2} s\n{}",
                logs(&node, &sim)
            );
            check_decoded_video(kind, &messages, &|| logs(&node, &sim));
        }
        // The second joiner comes after the first left: a rise from zero again.
        std::thread::sleep(Duration::from_secs(2));
    }
    let status = stats.latest().expect("stats");
    // One at the start of the session, one for each joiner.
    assert!(counter(&status, "keyframe_requests") >= 3, "{status}");
}

/// The Spot CAM's own behaviour: periodic intra refresh, no IDR after the first, keyframe
/// requests ignored. A late `ffmpeg` subscriber starts at a recovery point (flags = 1, with
/// SPS/PPS in front) and has a whole picture one refresh wave (30 frames) later.
#[test]
fn a_late_subscriber_of_an_intra_refresh_camera_decodes_from_a_recovery_point() {
    let (domain, sim, node, _stats) =
        streaming_without_own_idrs(&["--intra-refresh", "--ignore-keyframe-requests"]);
    let received = receive(
        &[
            "--ffmpeg",
            FFMPEG,
            "--until-decoded",
            "--duration",
            "15",
            "--check-pixels",
            "640x360@30",
        ],
        domain,
    );
    let messages = received.of("ffmpeg");
    let first_key = messages
        .iter()
        .find(|m| m["started"] == true)
        .unwrap_or_else(|| panic!("no keyframe flagged\n{}", logs(&node, &sim)));
    let first_picture = messages
        .iter()
        .find(|m| !m["pictures"].as_array().unwrap().is_empty())
        .unwrap_or_else(|| panic!("nothing decoded\n{}", logs(&node, &sim)));
    // Joined = the first message arrived (DDS discovery, before it, is not the node's).
    let joined_ns = messages[0]["receive_time_ns"].as_u64().unwrap();
    let wait_secs = (first_picture["receive_time_ns"].as_u64().unwrap() - joined_ns) as f64 / 1e9;
    let key_wait_secs = (first_key["receive_time_ns"].as_u64().unwrap() - joined_ns) as f64 / 1e9;
    let after_key_secs = (first_picture["pts"].as_u64().unwrap()
        - first_key["pts"].as_u64().unwrap()) as f64
        / 90_000.0;
    eprintln!(
        "intra refresh: first recovery point {key_wait_secs:.2} s after joining, first whole picture {wait_secs:.2} s after joining ({after_key_secs:.2} s of stream after the recovery point)"
    );
    assert!(
        first_key["flags"] == 1 && first_key["has_idr"].is_null(),
        "{first_key}"
    );
    // At most one wave (30 frames, 1 s) to the next recovery point, one more to the whole
    // picture.
    assert!(wait_secs < 2.5, "waited {wait_secs:.2} s");
    assert!(
        after_key_secs <= 1.1,
        "{after_key_secs:.2} s of stream after the recovery point"
    );
    check_decoded_video("ffmpeg", &messages, &|| logs(&node, &sim));
}

#[test]
fn nothing_is_encoded_or_published_without_subscribers() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim)).start();
    // image_raw is subscribed, so pictures are decoded: JPEG could be made from them.
    let _images = common::node::subscribe("image", "image_raw", 100_000, domain);
    let mut stats = StatsWatcher::start(domain);
    let idle = stats
        .wait_for(Duration::from_secs(60), |s| {
            counter(s, "frames_published") >= 90
        })
        .unwrap_or_else(|| panic!("no pictures\n{}", logs(&node, &sim)));
    for key in [
        "jpeg_encoded",
        "jpeg_published",
        "ffmpeg_published",
        "foxglove_published",
    ] {
        assert_eq!(counter(&idle, key), 0, "{key} without a subscriber: {idle}");
    }

    // A JPEG subscriber makes JPEG (and only JPEG) flow; when it leaves, it stops.
    let received = receive(&["--jpeg", JPEG, "--duration", "4"], domain);
    assert!(
        !received.of("jpeg").is_empty(),
        "no JPEG for a subscriber\n{}",
        logs(&node, &sim)
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = stats.latest().expect("stats");
    assert!(counter(&after, "jpeg_published") > 0, "{after}");
    assert_eq!(counter(&after, "ffmpeg_published"), 0, "{after}");
    std::thread::sleep(Duration::from_secs(2));
    let later = stats.latest().expect("stats");
    assert_eq!(
        counter(&later, "jpeg_encoded"),
        counter(&after, "jpeg_encoded"),
        "JPEG still encoded after the subscriber left"
    );
}

#[test]
fn outputs_left_out_of_enable_pub_plugins_do_not_exist() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[]);
    let _node = NodeLaunch::new(domain, Some(&sim))
        .param(
            "image_raw.enable_pub_plugins",
            "[\"image_transport/raw\", \"image_transport/ffmpeg\"]",
        )
        .start();
    StatsWatcher::start(domain)
        .wait_for(Duration::from_secs(30), |s| {
            s["values"]["state"] == "streaming"
        })
        .expect("the node did not stream");
    let counter = PyProcess::start(
        "compressed_subscriber.py",
        &["--count-publishers", "/image_raw", FFMPEG, FOXGLOVE, JPEG],
        domain,
    );
    let counts = counter
        .next_json(Duration::from_secs(30))
        .expect("publisher counts");
    let publishers = &counts["publishers"];
    assert_eq!(publishers["/image_raw"], 1, "{counts}");
    assert_eq!(publishers[FFMPEG], 1, "{counts}");
    assert_eq!(publishers[FOXGLOVE], 0, "{counts}");
    assert_eq!(publishers[JPEG], 0, "{counts}");
}
