//! `camera_info_url`: a camera_calibration YAML for the stream's size is published in
//! camera_info (K, D, R, P, distortion model), with the image's header.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, subscribe, unique_domain_id};

const CALIBRATION: &str = "image_width: 640\nimage_height: 360\ncamera_name: spot_cam_ptz\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [500.0, 0.0, 320.0, 0.0, 500.0, 180.0, 0.0, 0.0, 1.0]\ndistortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, -0.05, 0.0, 0.0, 0.0]\nrectification_matrix:\n  rows: 3\n  cols: 3\n  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]\nprojection_matrix:\n  rows: 3\n  cols: 4\n  data: [500.0, 0.0, 320.0, 0.0, 0.0, 500.0, 180.0, 0.0, 0.0, 0.0, 1.0, 0.0]\n";

#[test]
fn a_calibration_file_is_published_in_camera_info() {
    let domain = unique_domain_id();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("spot_cam_ptz.yaml");
    std::fs::write(&yaml, CALIBRATION).unwrap();
    let sim = Sim::start_640x360(&[]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("camera_info_url", &format!("file://{}", yaml.display()))
        .start();
    let infos = subscribe("camera_info", "camera_info", 3, domain);
    let info = infos
        .next_json(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no camera_info; log:\n{}", node.log()));
    let k: Vec<f64> = info["k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(
        k,
        vec![500.0, 0.0, 320.0, 0.0, 500.0, 180.0, 0.0, 0.0, 1.0],
        "{info}"
    );
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(640), Some(360))
    );
}

/// (A file that does not exist yet is no calibration, with a WARN: see
/// `node_set_camera_info.rs`.)
#[test]
fn an_invalid_calibration_stops_the_node_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("calibration.yaml");
    std::fs::write(&yaml, "image_width: [not, a, number]\n").unwrap();
    let mut node = NodeLaunch::new(unique_domain_id(), None)
        .param("camera_info_url", &format!("file://{}", yaml.display()))
        .start();
    let status = common::wait_with_timeout(&mut node.child, Duration::from_secs(20))
        .expect("node kept running");
    assert!(!status.success());
    assert!(
        node.log().contains(&format!(
            "{} is not camera_calibration YAML",
            yaml.display()
        )),
        "{}",
        node.log()
    );
}
