//! Saving a calibration into the node as `camera_calibration`'s cameracalibrator does:
//! `~/set_camera_info` on a node whose `camera_info_url` file does not exist yet (it streams
//! uncalibrated, with a WARN, instead of exiting). A calibration that cannot be used (a wrong
//! number of distortion coefficients, another picture size) is refused with a status message
//! and nothing is written; a good one is written as camera_calibration YAML (read back here),
//! `camera_info` carries it from the next frame, a refused one later leaves the file as it was,
//! and a restarted node loads it.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use common::node::{NodeLaunch, PyProcess, subscribe, unique_domain_id};
use serde_json::{Value, json};
use spot_ptz_stream::camera_info;

const K: [f64; 9] = [510.0, 0.0, 321.0, 0.0, 505.0, 179.0, 0.0, 0.0, 1.0];

fn calibration(width: u32, height: u32, d: &[f64]) -> Value {
    json!({
        "width": width, "height": height, "distortion_model": "plumb_bob", "d": d, "k": K,
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [510.0, 0.0, 321.0, 0.0, 0.0, 505.0, 179.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    })
}

fn set_camera_info(domain: u32, calibration: &Value) -> Value {
    let text = calibration.to_string();
    let call = PyProcess::start("set_camera_info.py", &["--calibration", &text], domain);
    let answer = call
        .next_json(Duration::from_secs(30))
        .expect("an answer from ~/set_camera_info");
    assert_eq!(call.wait(), Some(0), "{answer}");
    answer
}

/// The K of the first `camera_info` that satisfies `accept`, within 20 s.
fn camera_info_k(domain: u32, accept: impl Fn(&[f64]) -> bool) -> Option<Vec<f64>> {
    let infos = subscribe("camera_info", "camera_info", 200, domain);
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let info = infos.next_json(left)?;
        let k: Vec<f64> = info["k"]
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        if accept(&k) {
            return Some(k);
        }
    }
    None
}

#[test]
fn set_camera_info_saves_a_calibration_the_node_uses_at_once_and_after_a_restart() {
    let sim = Sim::start_640x360(&[]);
    let domain = unique_domain_id();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calibration/spot_cam_ptz.yaml");
    let url = format!("file://{}", path.display());
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("camera_info_url", &url)
        .start();

    // No file yet: the node streams, K from the lens model (aiming is on), one WARN.
    let lens_k = camera_info_k(domain, |k| k[0] > 0.0)
        .unwrap_or_else(|| panic!("no camera_info; node log:\n{}", node.log()));
    assert_ne!(lens_k, K.to_vec());
    let log = node.log();
    assert!(
        log.contains("[WARN]") && log.contains("does not exist yet"),
        "{log}"
    );

    // Refused, nothing written.
    let bad = set_camera_info(domain, &calibration(640, 360, &[0.1, 0.0, 0.0]));
    assert_eq!(bad["success"], false, "{bad}");
    assert!(
        bad["status_message"]
            .as_str()
            .unwrap()
            .contains("5 distortion coefficients"),
        "{bad}"
    );
    let other_size = set_camera_info(domain, &calibration(1280, 720, &[0.0; 5]));
    assert_eq!(other_size["success"], false, "{other_size}");
    assert!(
        other_size["status_message"]
            .as_str()
            .unwrap()
            .contains("640x360"),
        "{other_size}"
    );
    assert!(!path.exists());

    // Taken: written, read back, and in camera_info from the next frames.
    let good = set_camera_info(domain, &calibration(640, 360, &[0.1, -0.05, 0.0, 0.0, 0.0]));
    assert_eq!(good["success"], true, "{good}; node log:\n{}", node.log());
    let saved = camera_info::load(&url).expect("the saved calibration parses");
    assert_eq!(saved.camera_matrix.data, K.to_vec());
    assert_eq!(
        saved.distortion_coefficients.data,
        vec![0.1, -0.05, 0.0, 0.0, 0.0]
    );
    assert_eq!((saved.image_width, saved.image_height), (640, 360));
    assert_eq!(saved.ptz_zoom, Some(1.0), "the zoom it was taken at");
    assert!(
        camera_info_k(domain, |k| k == K).is_some(),
        "camera_info does not carry the new calibration; node log:\n{}",
        node.log()
    );
    let written = std::fs::read(&path).unwrap();
    let refused = set_camera_info(domain, &calibration(640, 360, &[0.0; 4]));
    assert_eq!(refused["success"], false, "{refused}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        written,
        "a refused calibration changed the file"
    );
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1,
        "a temporary file left"
    );
    drop(node);

    // A restarted node loads it.
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("camera_info_url", &url)
        .start();
    assert!(
        camera_info_k(domain, |k| k == K).is_some(),
        "a restarted node does not load the saved calibration; node log:\n{}",
        node.log()
    );
}
