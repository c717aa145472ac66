//! The node exits cleanly (code 0, within 2 s) on SIGINT and on SIGTERM, also while it is in
//! the middle of connecting to a robot.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::node::{NodeLaunch, subscribe, unique_domain_id};
use common::{Sim, send_signal, wait_with_timeout};

fn wait_for_stats(domain: u32) {
    let listener = subscribe("diagnostic_status", "/spot_ptz_stream/stats", 1, domain);
    assert!(
        listener.next_json(Duration::from_secs(30)).is_some(),
        "node never published ~/stats"
    );
}

fn exits_cleanly_on(signal: &str, streaming: bool) {
    let domain = unique_domain_id();
    let sim = streaming.then(|| Sim::start_640x360(&[]));
    let mut node = NodeLaunch::new(domain, sim.as_ref()).start();
    wait_for_stats(domain);
    let sent = Instant::now();
    send_signal(&node.child, signal);
    let status = wait_with_timeout(&mut node.child, Duration::from_secs(5));
    let elapsed = sent.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "node still running 5 s after SIG{signal}; log:\n{}",
            node.log()
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}; log:\n{}",
        node.log()
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "took {elapsed:?} to exit after SIG{signal}; log:\n{}",
        node.log()
    );
}

#[test]
fn sigint_while_retrying_an_unreachable_robot() {
    exits_cleanly_on("INT", false);
}

#[test]
fn sigterm_while_retrying_an_unreachable_robot() {
    exits_cleanly_on("TERM", false);
}

#[test]
fn sigint_while_streaming() {
    exits_cleanly_on("INT", true);
}

#[test]
fn sigterm_while_streaming() {
    exits_cleanly_on("TERM", true);
}

#[test]
fn sigterm_in_the_middle_of_a_negotiation() {
    let domain = unique_domain_id();
    let sim = Sim::start_640x360(&[]);
    let mut node = NodeLaunch::new(domain, Some(&sim)).start();
    // Signal as soon as the node starts WebRTC signalling, before it is connected.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.log().contains("state=signalling") {
        assert!(
            Instant::now() < deadline,
            "never reached signalling; log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = Instant::now();
    send_signal(&node.child, "TERM");
    let status = wait_with_timeout(&mut node.child, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("node still running 5 s after SIGTERM; log:\n{}", node.log()));
    assert_eq!(status.code(), Some(0), "log:\n{}", node.log());
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "took {:?}",
        sent.elapsed()
    );
}
