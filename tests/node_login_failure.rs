//! A wrong password: a clear error, the state `failed`, and at most 3 login attempts (the
//! robot locks logins after 6).
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, unique_domain_id};

#[test]
fn a_wrong_password_fails_clearly_after_at_most_three_attempts() {
    let domain = unique_domain_id();
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    let mut launch = NodeLaunch::new(domain, Some(&sim));
    launch.credentials = Some((common::USERNAME, "wrong-password"));
    let node = launch.start();
    let mut stats = StatsWatcher::start(domain);
    let failed = stats
        .wait_for_state("failed", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("never failed; last {:?}\nlog:\n{}", stats.last, node.log()));
    assert_eq!(failed["level"], 2, "{failed}");
    let error = failed["values"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("BOSDYN_CLIENT_PASSWORD"),
        "not actionable: {error}"
    );
    assert!(
        !node.log().contains("wrong-password"),
        "the password leaked into the log"
    );
    // Stays failed: no further attempts.
    std::thread::sleep(Duration::from_secs(3));
    let attempts = sim
        .log()
        .matches("login refused: wrong username or password")
        .count();
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} login attempts; sim log:\n{}",
        sim.log()
    );
}
