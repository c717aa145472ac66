//! `ptz_stream_probe --display` under Xvfb: a 640x360 window appears and screenshots of it
//! (ffmpeg x11grab) show the live stream — the simulator's frame number decodes from the
//! window and advances. Without a display the probe runs headless. Skipped (with a message)
//! when Xvfb is not installed; `source scripts/test-deps.sh` installs it.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{PASSWORD, Sim, send_signal, wait_with_timeout};
use spot_ptz_stream::sim::frame_tag;

const SCREEN: (usize, usize) = (1280, 720);
const STREAM: (usize, usize) = (640, 360);

fn probe_command(sim: &Sim, extra: &[&str]) -> Command {
    sim.probe_command(PASSWORD, extra)
}

/// A running Xvfb on a free display number, killed when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// `None` when Xvfb is not installed.
    fn start() -> Option<Xvfb> {
        let number = (60..99).find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })?;
        let display = format!(":{number}");
        let child = Command::new("Xvfb")
            .arg(&display)
            .args(["-screen", "0", &format!("{}x{}x24", SCREEN.0, SCREEN.1)])
            .args(["-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let xvfb = Xvfb { child, display };
        let socket = format!("/tmp/.X11-unix/X{number}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            assert!(
                Instant::now() < deadline,
                "Xvfb {} did not start",
                xvfb.display
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(xvfb)
    }

    /// The whole screen as packed bgr8.
    fn screenshot(&self) -> Vec<u8> {
        let output = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-f", "x11grab"])
            .args(["-video_size", &format!("{}x{}", SCREEN.0, SCREEN.1)])
            .args(["-i", &format!("{}+0,0", self.display)])
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"])
            .output()
            .expect("ffmpeg (Debian ffmpeg, installed by scripts/test-deps.sh) must be installed");
        assert!(
            output.status.success(),
            "x11grab failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout.len(), SCREEN.0 * SCREEN.1 * 3);
        output.stdout
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A window found in a screenshot: its position, size and pixels (packed bgr8).
struct WindowShot {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
    bgr: Vec<u8>,
}

/// The window in a screenshot: the bounding box of the non-black pixels (the root window of
/// Xvfb is black).
fn find_window(screen: &[u8]) -> Option<WindowShot> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, px) in screen.chunks_exact(3).enumerate() {
        if px.iter().any(|&c| c > 8) {
            let (x, y) = (i % SCREEN.0, i / SCREEN.0);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 || y0 > y1 {
        return None;
    }
    let (width, height) = (x1 - x0 + 1, y1 - y0 + 1);
    let mut crop = Vec::with_capacity(width * height * 3);
    for y in y0..=y1 {
        crop.extend_from_slice(&screen[(y * SCREEN.0 + x0) * 3..(y * SCREEN.0 + x1 + 1) * 3]);
    }
    Some(WindowShot {
        x: x0,
        y: y0,
        width,
        height,
        bgr: crop,
    })
}

/// Waits for `count` statistics lines while streaming; returns the lines read.
fn wait_streaming(lines: &mpsc::Receiver<String>, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen
        .iter()
        .filter(|l: &&String| l.starts_with("state=streaming"))
        .count()
        < count
    {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("not streaming; stdout so far:\n{}", seen.join("\n")));
        seen.push(line);
    }
    seen
}

#[test]
fn display_opens_a_window_showing_the_live_stream() {
    let Some(xvfb) = Xvfb::start() else {
        eprintln!("skipping: Xvfb is not installed (source scripts/test-deps.sh installs it)");
        return;
    };
    let sim = Sim::start_640x360(&["--fps", "30"]);
    let mut child = probe_command(&sim, &["--duration", "0", "--display"])
        .env("DISPLAY", &xvfb.display)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ptz_stream_probe");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_streaming(&rx, 2);

    let mut numbers = Vec::new();
    for _ in 0..2 {
        let screen = xvfb.screenshot();
        let WindowShot {
            x,
            y,
            width,
            height,
            bgr: window,
        } = find_window(&screen).expect("a window on the screen");
        eprintln!("window at {x},{y} size {width}x{height}");
        assert_eq!((width, height), STREAM, "the window has the stream's size");
        let number = frame_tag::read_bgr8(&window, width * 3, width as u32, height as u32)
            .expect("the window shows a frame whose frame number decodes");
        numbers.push(number);
        // The overlay: white text on a darkened box at the bottom-left.
        let white_text = window[(height - 60) * width * 3..]
            .chunks_exact(3)
            .enumerate()
            .filter(|(i, p)| i % width < 300 && p.iter().all(|&c| c == 255))
            .count();
        assert!(
            white_text > 200,
            "no statistics overlay ({white_text} white pixels)"
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    eprintln!("frame numbers on screen: {numbers:?}");
    assert!(numbers[1] > numbers[0], "the window is live: {numbers:?}");

    send_signal(&child, "INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(5)).expect("the probe exits");
    assert!(status.success());
    reader.join().expect("reader");
    assert!(rx.try_iter().any(|l| l.starts_with("summary:")));
}

#[test]
fn display_without_an_x_server_runs_headless() {
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    let output = probe_command(&sim, &["--duration", "2", "--display"])
        .env_remove("DISPLAY")
        .output()
        .expect("run ptz_stream_probe");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("running headless"), "{stderr}");
}
