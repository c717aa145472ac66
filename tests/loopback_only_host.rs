//! A host whose only network interface is loopback (a container, a payload computer before its
//! Wi-Fi is up): the simulator and the probe stream to each other over 127.0.0.1. Nothing may
//! need multicast (the library's default mDNS mode opened a multicast socket, and creating the
//! peer connection failed with `No such device`). The host is a fresh network namespace
//! (`unshare --net`) with only `lo` up.

mod common;

use common::{probe_summary, run_in_network_namespace};

#[test]
fn streams_on_a_host_with_only_loopback() {
    let run = run_in_network_namespace(
        "",
        "--width 320 --height 240",
        "--duration 3 --first-frame-timeout 10",
        "",
    );
    assert!(
        run.success,
        "no stream on a loopback-only host:\n{}\n{}\nsimulator:\n{}",
        run.stdout, run.stderr, run.sim_log
    );
    let (summary, frames) = probe_summary(&run.stdout);
    assert!(frames > 30, "{summary}");
    assert!(!run.sim_log.contains("No such device"), "{}", run.sim_log);
}
