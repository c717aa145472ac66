//! Walking out of Wi-Fi range and back: the link to the robot goes down for 2, 8 or 30 s —
//! UDP only (the camera's HTTPS signalling still answers, ICE cannot connect), or UDP and TCP
//! — and the node must show a whole picture within 2 s of the link's return, every time,
//! whatever its reconnect attempt was doing when the link came back. The camera is like the
//! Spot CAM (intra refresh, keyframe requests ignored). While the link is down the node must
//! not hammer the robot: at most one signalling attempt per second, and no login (the token is
//! kept).
//!
//! The outage is real: the simulated robot listens on a loopback address of its own, and
//! nftables drops every packet to or from it (only UDP, or everything), as a radio link that
//! goes away does: no reset, no goodbye; TCP's SYNs go unanswered.
#![cfg(all(feature = "ros", feature = "libavcodec"))]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::node::{
    NodeLaunch, NodeProcess, StatsWatcher, counter, counters_add_up, footprint, unique_domain_id,
};
use common::{Sim, luma_error};
use futures::{FutureExt as _, StreamExt as _};
use spot_ptz_stream::sim::frame_tag;

const FPS: u32 = 30;
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
/// The robot's address: a loopback address of this test's own.
const ROBOT: &str = "127.0.0.23";
/// From the link's return to a whole picture (the target).
const BACK_WITHIN: Duration = Duration::from_secs(2);
const WORST_BLOCK_LIMIT: f64 = 12.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Udp,
    UdpAndTcp,
}

/// Every packet to or from [`ROBOT`] of `kind` is dropped while this lives.
struct Outage {
    table: String,
}

fn nft(args: &[&str]) {
    let status = Command::new("nft")
        .args(args)
        .status()
        .expect("run nft (nftables; needs root, as CI has)");
    assert!(status.success(), "nft {args:?} failed");
}

impl Outage {
    fn start(kind: Kind) -> Outage {
        let table = format!("spot_ptz_stream_outage_{}", std::process::id());
        nft(&["add", "table", "inet", &table]);
        // Dropped on the way in, after the sender's socket took them: lost in the air, not
        // refused to the sender (EPERM on output would let a sender queue and resend them).
        for hook in ["input"] {
            nft(&[
                "add",
                "chain",
                "inet",
                &table,
                hook,
                &format!("{{ type filter hook {hook} priority -10; }}"),
            ]);
            for direction in ["saddr", "daddr"] {
                let mut rule = vec!["add", "rule", "inet", &table, hook];
                if kind == Kind::Udp {
                    rule.extend(["meta", "l4proto", "udp"]);
                }
                rule.extend(["ip", direction, ROBOT, "drop"]);
                nft(&rule);
            }
        }
        Outage { table }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

/// The test's image subscriber: every picture with its arrival time.
struct Pictures {
    node: r2r::Node,
    images: std::pin::Pin<Box<dyn futures::Stream<Item = r2r::sensor_msgs::msg::Image>>>,
}

impl Pictures {
    fn new(domain: u32) -> Pictures {
        // The only test in this binary: no other thread reads the environment concurrently.
        unsafe { std::env::set_var("ROS_DOMAIN_ID", domain.to_string()) };
        let ctx = r2r::Context::create().expect("ROS context");
        let mut node = r2r::Node::create(ctx, "outage_watcher", "").expect("node");
        let images = node
            .subscribe::<r2r::sensor_msgs::msg::Image>("/image_raw", r2r::QosProfile::sensor_data())
            .expect("subscribe image_raw");
        Pictures {
            node,
            images: Box::pin(images),
        }
    }

    /// Spins for `duration`, throwing pictures away.
    fn skip(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.node.spin_once(Duration::from_millis(5));
            while let Some(Some(_)) = self.images.next().now_or_never() {}
        }
    }

    /// The first picture that arrives within `timeout`, and when.
    fn next(&mut self, timeout: Duration) -> Option<(r2r::sensor_msgs::msg::Image, Instant)> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            self.node.spin_once(Duration::from_millis(2));
            if let Some(Some(image)) = self.images.next().now_or_never() {
                return Some((image, Instant::now()));
            }
        }
        None
    }
}

fn unix_ns(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

/// When the simulated camera captured each frame (its `--frame-log`), Unix nanoseconds.
fn capture_times(frames_csv: &std::path::Path) -> HashMap<u32, u128> {
    std::fs::read_to_string(frames_csv)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (number, time) = line.split_once(',')?;
            Some((number.parse().ok()?, time.parse().ok()?))
        })
        .collect()
}

/// One outage: how long after the link's return the first whole picture *captured after the
/// return* arrived. Every picture on the way must be whole (older ones, repaired by NACK from
/// the camera's history, may come first).
fn outage(
    pictures: &mut Pictures,
    frames_csv: &std::path::Path,
    process: &NodeProcess,
    stats: &mut StatsWatcher,
    kind: Kind,
    down: Duration,
) -> Duration {
    pictures
        .next(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no pictures before the outage:\n{}", process.log()));
    let cut = Outage::start(kind);
    pictures.skip(down);
    if down >= Duration::from_secs(8) {
        // Longer than the stall timeout (5 s): the status says the link is down, and since when.
        let during = stats.latest().expect("stats during the outage");
        let link_down_secs: f64 = during["values"]["link_down_secs"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no link_down_secs in {during}"));
        assert!(
            link_down_secs >= 2.0 && during["level"] == 1,
            "a {down:?} outage is not reported as a link down (WARN): {during}"
        );
    }
    drop(cut);
    let back_at = Instant::now();
    let back_at_unix_ns = unix_ns(SystemTime::now());
    loop {
        let (image, arrived) = pictures.next(Duration::from_secs(30)).unwrap_or_else(|| {
            panic!(
                "no picture within 30 s after a {down:?} {kind:?} outage:\n{}",
                process.log()
            )
        });
        let number = frame_tag::read_bgr8(&image.data, WIDTH as usize * 3, WIDTH, HEIGHT)
            .unwrap_or_else(|| panic!("a picture after the outage has no readable tag"));
        let error = luma_error(&image.data, WIDTH, HEIGHT, number, FPS);
        assert!(
            error.worst_block < WORST_BLOCK_LIMIT,
            "frame {number} after a {down:?} {kind:?} outage is damaged: {error:?}"
        );
        let captured = capture_times(frames_csv)
            .get(&number)
            .copied()
            .unwrap_or_else(|| panic!("frame {number} is not in the simulator's frame log"));
        if captured >= back_at_unix_ns {
            return arrived - back_at;
        }
    }
}

/// How often the simulator logged `text`, at what times (seconds since the first line).
fn sim_events(sim: &Sim, text: &str) -> usize {
    sim.log().lines().filter(|l| l.contains(text)).count()
}

#[test]
fn a_whole_picture_within_2_s_of_the_links_return() {
    let domain = unique_domain_id();
    // The frame log goes into the simulator's own directory once it exists: a path of ours.
    let log_dir = tempfile::tempdir().expect("dir");
    let frames_csv = log_dir.path().join("frames.csv");
    let sim = Sim::start_at(
        ROBOT,
        &[
            "--width",
            "640",
            "--height",
            "360",
            "--intra-refresh",
            "--ignore-keyframe-requests",
            "--frame-log",
            frames_csv.to_str().expect("utf-8 path"),
        ],
        Some("info,spot_ptz_stream=debug"),
    );
    let process = NodeLaunch::new(domain, Some(&sim)).start();
    let mut stats = StatsWatcher::start(domain);
    let mut pictures = Pictures::new(domain);

    let mut results = Vec::new();
    // Different lengths put the node's attempt in flight at different phases when the link
    // comes back.
    for kind in [Kind::Udp, Kind::UdpAndTcp] {
        for down_secs in [2.0, 8.0, 8.6, 30.0] {
            let offers_before = sim_events(&sim, "offer sent");
            let down = Duration::from_secs_f64(down_secs);
            let started = Instant::now();
            let back = outage(&mut pictures, &frames_csv, &process, &mut stats, kind, down);
            let offers = sim_events(&sim, "offer sent") - offers_before;
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "{kind:?} down {down_secs} s: a whole picture {:.0} ms after the return; {offers} \
                 signalling attempts in {elapsed:.1} s",
                back.as_secs_f64() * 1e3
            );
            assert!(
                offers as f64 <= elapsed + 1.0,
                "{offers} signalling attempts in {elapsed:.1} s: more than one per second"
            );
            results.push((kind, down_secs, back));
        }
    }
    // Ten more outages, each longer than the stall timeout (a new session every time):
    // nothing may leak.
    let pid = process.child.id();
    let (threads_before, fds_before, rss_before_kb) = footprint(pid);
    for _ in 0..10 {
        let back = outage(
            &mut pictures,
            &frames_csv,
            &process,
            &mut stats,
            Kind::UdpAndTcp,
            Duration::from_secs(6),
        );
        assert!(back <= BACK_WITHIN, "back after {back:?}");
    }
    let (threads, fds, rss_kb) = footprint(pid);
    eprintln!(
        "ten 6 s outages: threads {threads_before}→{threads}, fds {fds_before}→{fds}, RSS \
         {rss_before_kb}→{rss_kb} kB"
    );
    assert!(
        threads <= threads_before + 2,
        "threads {threads_before}→{threads}"
    );
    assert!(fds <= fds_before + 4, "open files {fds_before}→{fds}");
    assert!(
        rss_kb <= rss_before_kb + 40 * 1024,
        "resident memory {rss_before_kb}→{rss_kb} kB"
    );

    let logins = sim_events(&sim, "login accepted");
    assert!(
        logins <= 1,
        "the node logged in {logins} times (token kept)"
    );
    let log = process.log();
    assert!(
        log.contains("lost the camera's video") && log.contains("the camera's video is back"),
        "no WARN when the link went down or no INFO when it came back:\n{log}"
    );
    // Every access unit received across all these sessions ended in one counter.
    let status = counters_add_up(domain, &mut stats);
    eprintln!("reconnects: {}", counter(&status, "reconnects"));
    for (kind, down_secs, back) in results {
        assert!(
            back <= BACK_WITHIN,
            "after {down_secs} s of {kind:?} outage the first whole picture came {back:?} after \
             the link's return (target {BACK_WITHIN:?})"
        );
    }
}
