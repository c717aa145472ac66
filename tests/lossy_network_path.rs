//! Loss on a real network path, not inside the simulator: the simulator (an intra-refresh
//! camera that ignores keyframe requests) and the probe run in a network namespace of their own
//! whose kernel drops 2 % of all UDP packets on arrival (nftables `numgen random`), in both
//! directions: video, retransmissions, NACKs, ICE and DTLS alike. The stream must connect and
//! deliver nearly every frame the camera sent. "Sent" is the simulator's own frame log: on an
//! overloaded machine the simulator encodes fewer than 30 frames a second, and a wall-clock
//! expectation would then blame the receiver for frames that never existed.
#![cfg(feature = "libavcodec")]

mod common;

use common::{probe_summary, run_in_network_namespace};

const DURATION_SECS: u64 = 10;
const FPS: u64 = 30;

#[test]
fn a_network_path_that_drops_two_percent_of_udp_still_streams() {
    let dir = tempfile::tempdir().expect("temp dir");
    let frame_log = dir.path().join("frames.csv");
    let run = run_in_network_namespace(
        "nft add table inet lossy
nft add chain inet lossy input '{ type filter hook input priority 0; }'
nft add rule inet lossy input meta l4proto udp numgen random mod 100 '<' 2 counter drop",
        &format!(
            "--width 640 --height 360 --fps {FPS} --intra-refresh --ignore-keyframe-requests \
             --frame-log {}",
            frame_log.display()
        ),
        &format!("--duration {DURATION_SECS} --first-frame-timeout 15"),
        "nft list chain inet lossy input",
    );
    let stdout = &run.stdout;
    assert!(
        run.success,
        "no stream over the lossy path:\n{stdout}\n{}\nsimulator:\n{}",
        run.stderr, run.sim_log
    );
    // The kernel really dropped packets: `counter packets N bytes M drop`.
    let dropped: u64 = stdout
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no nftables counter in:\n{stdout}"));
    assert!(dropped > 20, "the path dropped only {dropped} packets");
    let (summary, frames) = probe_summary(stdout);
    let sent = std::fs::read_to_string(&frame_log)
        .expect("the simulator's frame log")
        .lines()
        .count() as u64;
    eprintln!("{summary}; the simulator sent {sent} frames, the path dropped {dropped} packets");
    assert!(
        sent >= 3 * FPS,
        "the simulator sent only {sent} frames in {DURATION_SECS} s: {summary}"
    );
    // The first picture takes connecting and one refresh wave (at most 2 s of frames); after
    // that nearly every frame the camera sent. Without repair 2 % packet loss breaks about one
    // frame in five at this size, and each break smears until the next refresh wave.
    let expected = (sent.saturating_sub(2 * FPS)) * 9 / 10;
    assert!(
        frames >= expected,
        "{frames} of {sent} sent frames over the lossy path, expected at least {expected}: {summary}"
    );
}
