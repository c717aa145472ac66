//! `udp_receive_buffer_bytes`: the WebRTC sockets of a streaming node have the receive buffer
//! asked for (read from the kernel with `ss`, as an operator would check it).
#![cfg(feature = "ros")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Sim;
use common::node::{NodeLaunch, subscribe, unique_domain_id};

/// The `rb` (receive buffer) of every UDP socket `pid` holds, from `ss -uampn`.
fn udp_receive_buffers(pid: u32) -> Vec<u64> {
    let output = Command::new("ss")
        .args(["-u", "-a", "-m", "-p", "-n"])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let owner = format!("pid={pid},");
    // Each socket is one line, then its "skmem:(r0,rb425984,...)" on the next.
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0].contains(&owner))
        .filter_map(|pair| {
            let rb = pair[1].split("rb").nth(1)?;
            rb.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect()
}

#[test]
fn webrtc_sockets_get_the_receive_buffer_asked_for() {
    let domain = unique_domain_id();
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    // 1 MiB: different from the default, below any kernel's net.core.rmem_max limit here.
    let asked: u64 = 1 << 20;
    let node = NodeLaunch::new(domain, Some(&sim))
        .param("udp_receive_buffer_bytes", &asked.to_string())
        .start();
    let images = subscribe("image", "image_raw", 100000, domain);
    images
        .next_json(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no image; log:\n{}", node.log()));

    let buffers = udp_receive_buffers(node.child.id());
    assert!(
        !buffers.is_empty(),
        "no UDP socket of the node found by ss; log:\n{}",
        node.log()
    );
    // Linux reports twice the size set. DDS sockets of the node keep their own sizes; at
    // least the WebRTC socket must have ours.
    assert!(
        buffers.contains(&(2 * asked)),
        "receive buffers {buffers:?}, none of {} B",
        2 * asked
    );
}
