//! A wrong password: a clear error, the state `failed`, and at most 3 login attempts (the
//! robot locks logins after 6).
#![cfg(feature = "ros")]

mod common;

use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, StatsWatcher, call_trigger, unique_domain_id};

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
    let attempts = || {
        sim.log()
            .matches("login refused: wrong username or password")
            .count()
    };
    assert!(
        (1..=3).contains(&attempts()),
        "{} login attempts; sim log:\n{}",
        attempts(),
        sim.log()
    );

    // A start request after the failure tries exactly once more, then fails again.
    let before = attempts();
    let retry = call_trigger("/spot_ptz_stream/start_stream", domain);
    assert!(
        retry["message"]
            .as_str()
            .unwrap()
            .starts_with("retrying once"),
        "{retry}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while attempts() == before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        attempts(),
        before + 1,
        "a retry must make exactly one login attempt"
    );
    assert!(
        stats
            .wait_for_state("failed", Duration::from_secs(10))
            .is_some()
    );
}
