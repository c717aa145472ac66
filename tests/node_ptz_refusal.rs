//! A PTZ that refuses a position (a stop it does not report in its limits): aiming counts the
//! refusal in `~/stats` and does not chase a target near the refused position with a command
//! per point or detection, while somebody just past the stop keeps moving.
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, PyProcess, StatsWatcher, counter, unique_domain_id};

#[test]
fn a_refused_position_is_not_sent_again_while_the_target_moves_near_it() {
    // The stop: pan above 30° is refused.
    let sim = Sim::start_640x360(&["--ptz-refuse-pan-above-deg", "30"]);
    let domain = unique_domain_id();
    let node = NodeLaunch::new(domain, Some(&sim)).start();
    let mut stats = StatsWatcher::start(domain);
    stats
        .wait_for_state("streaming", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("not streaming; node log:\n{}", node.log()));

    // Somebody walks from 50° to 58° right of forward (pan 50..58, past the stop), 2 s,
    // each point more than the deadband from the last.
    let points = PyProcess::start(
        "publish_points.py",
        &[
            "--frame",
            "spot_cam_ptz_base",
            "--from",
            "3.0,-3.575,0.0",
            "--to",
            "3.0,-4.8,0.0",
            "--steps",
            "10",
            "--rate-hz",
            "5",
        ],
        domain,
    );
    assert_eq!(points.wait(), Some(0));
    let refused = stats
        .wait_for(Duration::from_secs(10), |s| counter(s, "aim_rejected") >= 1)
        .unwrap_or_else(|| panic!("no refusal counted; node log:\n{}", node.log()));
    assert!(
        refused["values"]["aim_last_rejection"]
            .as_str()
            .unwrap()
            .contains("the PTZ refused"),
        "{refused}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let refusals = sim.log().matches("SetPtzPosition refused").count();
    assert_eq!(
        refusals,
        1,
        "the refused position was sent again; sim log:\n{}",
        sim.log()
    );
    assert_eq!(
        node.log().matches("the PTZ refused a position").count(),
        1,
        "{}",
        node.log()
    );

    // A point within the PTZ's reach is still aimed at.
    let reachable = PyProcess::start(
        "publish_points.py",
        &[
            "--frame",
            "spot_cam_ptz_base",
            "--from",
            "3.0,-0.5,0.0",
            "--to",
            "3.0,-0.5,0.0",
            "--steps",
            "2",
        ],
        domain,
    );
    assert_eq!(reachable.wait(), Some(0));
    let aimed = stats.wait_for(Duration::from_secs(10), |s| {
        s["values"]["ptz_pan_deg"]
            .as_str()
            .and_then(|p| p.parse::<f64>().ok())
            .is_some_and(|pan| (pan - 9.46).abs() < 1.0)
    });
    assert!(
        aimed.is_some(),
        "a reachable point was not aimed at; node log:\n{}",
        node.log()
    );
}
