//! Event recording as a user meets it: `~/start_recording` / `~/stop_recording` and
//! `record_on_detection` against the simulator, the files read back as a viewer reads them
//! (`tests/ros/read_recording.py`: the file's own schemas decode the CDR, PyAV decodes the video
//! from the file's first video message and the pictures are compared with what the simulator
//! drew).
//!
//! - a manual recording on a camera that honours keyframe requests begins with an IDR (with its
//!   SPS and PPS), holds every recorded topic, and a node killed with SIGKILL while recording
//!   leaves a file whose complete chunks read and decode;
//! - a detection recording on a camera like the Spot CAM (intra refresh, keyframe requests
//!   ignored) begins with its pre-roll at a recovery point, decodes whole from one refresh wave
//!   on, and ends `trigger_timeout_secs` after the last detection.
#![cfg(feature = "ros")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::node::{
    FrameCounter, NodeLaunch, NodeProcess, PyProcess, StatsWatcher, call_trigger, counter,
    ros_python, unique_domain_id,
};
use common::{Sim, send_signal, wait_with_timeout};
use serde_json::Value;

const START: &str = "/spot_ptz_stream/start_recording";
const STOP: &str = "/spot_ptz_stream/stop_recording";
const VIDEO: &str = "/image_raw/foxglove";
/// A picture whose worst 16x16 block is this far from what the simulator drew is damaged.
const DAMAGED_WORST_BLOCK: f64 = 12.0;
const FPS: u64 = 30;
const SEC_NS: u64 = 1_000_000_000;
const PRE_ROLL_SECS: u64 = 2;

fn read_recording(path: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ros/read_recording.py");
    let output = Command::new(ros_python())
        .arg(script)
        .arg(path)
        .args(["--check-pixels", "640x360@30"])
        .output()
        .expect("run read_recording.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "read_recording.py {}: {e}\nstdout: {stdout}\nstderr: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A JSON array of integers.
fn u64s(values: &Value) -> Vec<u64> {
    values
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {values}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// A JSON array of numbers.
fn f64s(values: &Value) -> Vec<f64> {
    values
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {values}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn logs(node: &NodeProcess, sim: &Sim) -> String {
    format!("node log:\n{}\nsim log:\n{}", node.log(), sim.log())
}

fn streaming(domain: u32, node: &NodeProcess, sim: &Sim) -> StatsWatcher {
    let mut stats = StatsWatcher::start(domain);
    stats
        .wait_for(Duration::from_secs(60), |s| {
            counter(s, "frames_received") >= 2 * FPS
        })
        .unwrap_or_else(|| panic!("the stream did not run\n{}", logs(node, sim)));
    stats
}

/// Every picture decoded from the first message has a readable tag and is whole from the
/// `skip`-th on; the frames follow each other. Returns how many pictures there were.
fn check_pictures(file: &Value, skip: usize, what: &str) -> usize {
    let video = &file["video"];
    assert_eq!(video["decode_errors"], 0, "{what}: {video}");
    let numbers: Vec<u64> = u64s(&video["frame_numbers"]);
    for pair in numbers.windows(2) {
        assert!(
            pair[1] > pair[0] && pair[1] - pair[0] <= 3,
            "{what}: frames {} then {}",
            pair[0],
            pair[1]
        );
    }
    let worst: Vec<f64> = f64s(&video["worst_block"]);
    let damaged: Vec<(usize, f64)> = worst
        .iter()
        .copied()
        .enumerate()
        .skip(skip)
        .filter(|&(_, w)| w >= DAMAGED_WORST_BLOCK)
        .collect();
    assert!(damaged.is_empty(), "{what}: damaged pictures {damaged:?}");
    let unreadable = video["unreadable"].as_u64().unwrap() as usize;
    assert!(
        unreadable <= skip,
        "{what}: {unreadable} pictures without a readable tag"
    );
    video["pictures"].as_u64().unwrap() as usize
}

#[test]
fn a_manual_recording_starts_at_an_idr_holds_every_topic_and_survives_sigkill() {
    let domain = unique_domain_id();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_640x360(&[]);
    let mut node = NodeLaunch::new(domain, Some(&sim))
        .param("record_dir", &dir.path().display().to_string())
        .start();
    let mut stats = streaming(domain, &node, &sim);
    let logs = |node: &NodeProcess| logs(node, &sim);

    let idle = call_trigger(STOP, domain);
    assert_eq!(idle["success"], true, "{idle}");
    assert_eq!(idle["message"], "not recording", "{idle}");
    let started = call_trigger(START, domain);
    assert_eq!(started["success"], true, "{started}\n{}", logs(&node));
    let path = started["message"].as_str().unwrap().to_string();
    assert!(
        path.starts_with(&dir.path().display().to_string()) && path.ends_with(".mcap"),
        "{path}"
    );
    let again = call_trigger(START, domain);
    assert_eq!(again["message"], path.as_str(), "start is idempotent");
    std::thread::sleep(Duration::from_secs(4));
    let stopped = call_trigger(STOP, domain);
    assert_eq!(stopped["success"], true, "{stopped}");
    assert_eq!(stopped["message"], path.as_str(), "{stopped}");
    stats
        .wait_for(Duration::from_secs(10), |s| {
            counter(s, "recording_files_written") >= 1
        })
        .unwrap_or_else(|| panic!("the file was not finished\n{}", logs(&node)));

    let file = read_recording(Path::new(&path));
    assert_eq!(file["complete"], true, "{file}");
    assert!(file["error"].is_null(), "{}", file["error"]);
    assert_eq!(file["profile"], "ros2");
    assert_eq!(file["metadata"]["spot_ptz_stream"]["reason"], "manual");
    let topics = &file["topics"];
    let total: u64 = topics
        .as_object()
        .unwrap()
        .values()
        .map(|t| t["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        file["summary_messages"], total,
        "the summary counts them all"
    );
    for (topic, type_name) in [
        (VIDEO, "foxglove_msgs/msg/CompressedVideo"),
        ("/camera_info", "sensor_msgs/msg/CameraInfo"),
        ("/spot_ptz_stream/ptz_state", "sensor_msgs/msg/JointState"),
        ("/tf", "tf2_msgs/msg/TFMessage"),
        ("/tf_static", "tf2_msgs/msg/TFMessage"),
        ("/ptz_detections", "vision_msgs/msg/Detection2DArray"),
        (
            "/spot_ptz_stream/stats",
            "diagnostic_msgs/msg/DiagnosticStatus",
        ),
    ] {
        assert_eq!(topics[topic]["type"], type_name, "{topic}: {topics}");
    }
    assert!(
        topics["/tf_static"]["qos"]
            .as_str()
            .unwrap()
            .contains("durability: transient_local"),
        "{}",
        topics["/tf_static"]
    );
    let video = &file["video"];
    let first = video["first_nal_types"].as_array().unwrap();
    assert_eq!(
        (&first[0], &first[1]),
        (&Value::from(7), &Value::from(8)),
        "SPS and PPS first: {video}"
    );
    assert!(first.contains(&Value::from(5)), "an IDR first: {first:?}");
    assert_eq!(video["format"], "h264");
    assert_eq!(video["frame_id"], "spot_cam_ptz_optical");
    let pictures = check_pictures(&file, 0, "manual");
    assert!(
        pictures as u64 >= 3 * FPS,
        "{pictures} pictures in a 4 s recording"
    );
    // The metadata of each frame carries the frame's stamp.
    let stamps = |values: &Value| -> BTreeSet<u64> { u64s(values).into_iter().collect() };
    let video_stamps = stamps(&video["stamps_ns"]);
    let info_stamps = stamps(&file["camera_info_stamps_ns"]);
    assert!(
        video_stamps.is_subset(&info_stamps),
        "a camera_info per frame, with its stamp"
    );
    // Before the first keyframe the file has the frames' metadata but not their video.
    assert!(
        info_stamps.len() <= video_stamps.len() + 15,
        "{} camera_info for {} frames",
        info_stamps.len(),
        video_stamps.len()
    );
    let people: Vec<u64> = file["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["stamp_ns"].as_u64().unwrap())
        .collect();
    assert!(
        people.iter().all(|s| info_stamps.contains(s)),
        "ptz_detections stamps that are no frame's"
    );
    assert!(
        people.len() * 10 >= video_stamps.len() * 9,
        "{} ptz_detections for {} frames",
        people.len(),
        video_stamps.len()
    );
    assert_eq!(
        (
            &file["camera_info"]["width"],
            &file["camera_info"]["height"]
        ),
        (&Value::from(640), &Value::from(360))
    );
    let children = file["tf_static_children"].as_array().unwrap();
    for frame in ["spot_cam_ptz_base", "spot_cam_ptz_optical"] {
        assert!(
            children.contains(&Value::from(frame)),
            "{frame}: {children:?}"
        );
    }
    let keys = file["stats_keys"].as_array().unwrap();
    assert!(keys.contains(&Value::from("recording_file")), "{keys:?}");

    // Killed while recording: the chunks written (one a second) stay readable.
    let second = call_trigger(START, domain);
    let second_path = second["message"].as_str().unwrap().to_string();
    assert_ne!(second_path, path);
    let recording_since = Instant::now();
    stats
        .wait_for(Duration::from_secs(20), |s| {
            recording_since.elapsed() >= Duration::from_secs(3)
                && counter(s, "recording_messages_written") > total
        })
        .unwrap_or_else(|| panic!("no chunk written\n{}", logs(&node)));
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let killed = read_recording(Path::new(&second_path));
    assert_eq!(killed["complete"], false, "{killed}");
    assert!(killed["summary_messages"].is_null());
    let pictures = check_pictures(&killed, 0, "killed");
    assert!(
        pictures as u64 >= FPS,
        "only {pictures} pictures of a 3 s recording cut by SIGKILL: {}",
        killed["video"]
    );
}

#[test]
fn a_detection_recording_begins_with_its_pre_roll_on_an_intra_refresh_camera() {
    let domain = unique_domain_id();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_640x360(&["--intra-refresh", "--ignore-keyframe-requests"]);
    let mut node = NodeLaunch::new(domain, Some(&sim))
        .param("record_dir", &dir.path().display().to_string())
        .param("record_on_detection", "true")
        .param("record_pre_roll_secs", &PRE_ROLL_SECS.to_string())
        .param("trigger_timeout_secs", "1.5")
        .start();
    let mut stats = streaming(domain, &node, &sim);
    stats
        .wait_for(Duration::from_secs(30), |s| {
            counter(s, "frames_received") >= (PRE_ROLL_SECS + 3) * FPS
        })
        .unwrap();
    let detector = PyProcess::start(
        "publish_detections.py",
        &["--rate-hz", "5", "--duration-secs", "2"],
        domain,
    );
    let closed = stats
        .wait_for(Duration::from_secs(30), |s| {
            counter(s, "recording_files_written") >= 1
        })
        .unwrap_or_else(|| panic!("no recording finished\n{}", logs(&node, &sim)));
    drop(detector);
    assert_eq!(closed["values"]["recording"], "false", "{closed}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [path] = files.as_slice() else {
        panic!("one file expected: {files:?}");
    };
    let file = read_recording(path);
    assert_eq!(file["complete"], true, "{file}");
    assert_eq!(file["metadata"]["spot_ptz_stream"]["reason"], "detection");
    let detections: Vec<u64> = u64s(&file["detections_log_ns"]);
    assert!(detections.len() >= 5, "{detections:?}");
    let (first_detection, last_detection) = (detections[0], detections[detections.len() - 1]);
    let video = &file["video"];
    // The recording starts when the first detection arrives; its picture is whole from
    // record_pre_roll_secs before (the first picture of the file that is, with every one after).
    let worst: Vec<f64> = f64s(&video["worst_block"]);
    let whole_from = worst
        .iter()
        .rposition(|&w| w >= DAMAGED_WORST_BLOCK)
        .map_or(0, |last_damaged| last_damaged + 1);
    let whole_from_ns = video["log_ns"][whole_from].as_u64().unwrap();
    assert!(
        whole_from_ns <= first_detection - PRE_ROLL_SECS * SEC_NS + SEC_NS / 20,
        "whole pictures from {} ms before the first detection; record_pre_roll_secs is {PRE_ROLL_SECS} s",
        (first_detection.saturating_sub(whole_from_ns)) / 1_000_000
    );
    let video_end = file["topics"][VIDEO]["last_log_ns"].as_u64().unwrap();
    let after_last = video_end.saturating_sub(last_detection) as f64 / SEC_NS as f64;
    assert!(
        (1.0..=2.5).contains(&after_last),
        "the recording ended {after_last:.2} s after the last detection (trigger_timeout_secs 1.5)"
    );
    // The camera sends no IDR: the file begins at a recovery point with SPS and PPS in front.
    assert_eq!(video["idr_messages"], 0, "{video}");
    let first = video["first_nal_types"].as_array().unwrap();
    assert_eq!((&first[0], &first[1]), (&Value::from(7), &Value::from(8)));
    assert!(
        first.contains(&Value::from(6)),
        "a recovery point SEI: {first:?}"
    );
    // Whole from one refresh wave on (the simulator refreshes every second).
    let pictures = check_pictures(&file, FPS as usize + 5, "detection");
    assert!(
        pictures as u64 >= 4 * FPS,
        "{pictures} pictures: pre-roll, 2 s of detections and the timeout"
    );

    // SIGTERM (what `ros2 launch` sends after SIGINT) finishes the open file.
    let manual = call_trigger(START, domain);
    let manual_path = manual["message"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(2));
    send_signal(&node.child, "TERM");
    let status = wait_with_timeout(&mut node.child, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the node did not end within 5 s of SIGTERM"));
    assert!(status.success(), "{status}\n{}", node.log());
    let finished = read_recording(Path::new(&manual_path));
    assert_eq!(finished["complete"], true, "{finished}");
    assert!(finished["video"]["messages"].as_u64().unwrap() >= FPS);
}

/// The node's ERROR lines about writing the recording.
fn write_errors(node: &NodeProcess) -> usize {
    node.log()
        .lines()
        .filter(|l| l.starts_with("[ERROR]") && l.contains("cannot write the event recording"))
        .count()
}

#[test]
fn a_full_disk_loses_recording_data_and_nothing_else() {
    let domain = unique_domain_id();
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("record_dir", &full.display().to_string())
        .with_tmpfs(&full, "200k")
        .start();
    let mut stats = streaming(domain, &node, &sim);
    let images = FrameCounter::start(domain, "reliable", 8, 60, &[]);
    let started = call_trigger(START, domain);
    assert_eq!(started["success"], true, "{started}");
    let failed = stats
        .wait_for(Duration::from_secs(30), |s| {
            counter(s, "recording_dropped_write") > 0
        })
        .unwrap_or_else(|| panic!("the full disk went unnoticed\n{}", logs(&node, &sim)));
    let error = failed["values"]["recording_last_error"].as_str().unwrap();
    assert!(
        error.contains("No space left on device") && error.contains("free disk space"),
        "{error}"
    );
    let failed_at = Instant::now();
    // image_raw goes on at the camera's rate while the recording fails.
    let received = images.received(Duration::from_secs(30), &node);
    assert!(
        received >= 8 * FPS * 85 / 100,
        "image_raw: {received} images in 8 s while the disk was full\n{}",
        node.log()
    );
    // One ERROR for the episode, though a new file is tried every 5 s.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(failed_at.elapsed()));
    let later = stats.latest().unwrap();
    assert!(
        counter(&later, "recording_dropped_write") > counter(&failed, "recording_dropped_write"),
        "{later}"
    );
    assert_eq!(write_errors(&node), 1, "{}", node.log());
    assert_eq!(later["values"]["recording"], "true");
    let stopped = call_trigger(STOP, domain);
    assert_eq!(stopped["success"], true, "{stopped}");
}

#[test]
fn the_size_cap_deletes_the_oldest_files_first() {
    let domain = unique_domain_id();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("record_dir", &dir.path().display().to_string())
        .param("record_max_file_secs", "1.0")
        .param("record_max_total_bytes", "300000")
        .start();
    let mut stats = streaming(domain, &node, &sim);
    let first = call_trigger(START, domain)["message"]
        .as_str()
        .unwrap()
        .to_string();
    // Files of about 1 s (split at the next IDR, one a second; ~70 kB at the simulator's
    // 0.55 Mbit/s): the oldest go as the directory passes 300 kB.
    let deleted = stats
        .wait_for(Duration::from_secs(60), |s| {
            counter(s, "recording_files_deleted") >= 3
        })
        .unwrap_or_else(|| panic!("nothing deleted\n{}", logs(&node, &sim)));
    let stopped = call_trigger(STOP, domain);
    let last = stopped["message"].as_str().unwrap().to_string();
    // The cap is enforced again right after the last file is finished.
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_recording(Path::new(&last))["complete"] != true {
        assert!(Instant::now() < deadline, "{last} was not finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    left.sort();
    assert!(!left.contains(&first), "the oldest file is gone: {left:?}");
    assert_eq!(left.last(), Some(&last), "the newest is kept: {left:?}");
    let written = counter(&deleted, "recording_files_written");
    assert!(written >= 4, "{deleted}");
    // What is left is under the cap, the file being written when it was checked aside.
    let sizes: Vec<u64> = left
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let closed: u64 = sizes[..sizes.len() - 1].iter().sum();
    assert!(closed <= 300_000, "{left:?} {sizes:?}");
    for path in &left[..left.len() - 1] {
        assert_eq!(read_recording(Path::new(path))["complete"], true, "{path}");
    }
}
