//! `~/ptz_command` (`sensor_msgs/JointState`, as a joystick or a script sends it) moves the
//! simulated PTZ directly: `~/ptz_state` follows the given axes, the others stay. A command out
//! of the PTZ's limits or with a NaN moves nothing and is refused with a WARN.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, PyProcess, unique_domain_id};
use serde_json::Value;

/// Sends a command for `secs` seconds; the last `~/ptz_state` seen (pan, tilt, zoom).
fn command(domain: u32, names: &str, positions: &str, secs: &str) -> Option<[f64; 3]> {
    let script = PyProcess::start(
        "ptz_command.py",
        &["--names", names, "--positions", positions, "--secs", secs],
        domain,
    );
    let mut last = None;
    while let Some(state) = script.next_json(Duration::from_secs(20)) {
        let position: Vec<f64> = state["position"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(
            state["name"],
            serde_json::json!(["pan", "tilt", "zoom"]),
            "{state}"
        );
        last = Some([position[0], position[1], position[2]]);
    }
    assert_eq!(script.wait(), Some(0));
    last
}

#[test]
fn ptz_command_moves_the_ptz_and_a_bad_one_moves_nothing() {
    let sim = Sim::start_640x360(&[]);
    let domain = unique_domain_id();
    let node = NodeLaunch::new(domain, Some(&sim)).start();

    // Pan 90° (π/2 rad) and zoom 3; tilt not given: it stays.
    let moved = command(
        domain,
        "pan,zoom",
        &format!("{},3.0", std::f64::consts::FRAC_PI_2),
        "6",
    )
    .unwrap_or_else(|| panic!("no ~/ptz_state; node log:\n{}", node.log()));
    assert!(
        (moved[0] - std::f64::consts::FRAC_PI_2).abs() < 0.02,
        "{moved:?}\n{}",
        node.log()
    );
    assert!(moved[1].abs() < 0.02, "{moved:?}");
    assert!((moved[2] - 3.0).abs() < 0.05, "{moved:?}");

    // A zoom beyond the PTZ's limits, and a NaN: nothing moves.
    let after_bad_zoom = command(domain, "zoom", "500.0", "2").expect("~/ptz_state");
    let after_nan = command(domain, "pan,tilt", "nan,0.1", "2").expect("~/ptz_state");
    for state in [after_bad_zoom, after_nan] {
        assert!(
            state.iter().zip(moved).all(|(a, b)| (a - b).abs() < 0.02),
            "moved by a refused command: {state:?} after {moved:?}"
        );
    }
    let log = node.log();
    assert!(
        log.contains("~/ptz_command cannot be used") && log.contains("zoom of 500.00"),
        "{log}"
    );
    assert!(log.contains("pan is not a number"), "{log}");
}
