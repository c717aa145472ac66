//! `ptz_stream_probe --save-video` against the simulator: the MP4 is read by `ffprobe` (Debian
//! `ffmpeg`, installed by scripts/test-deps.sh) with the right codec, size, frame count and
//! duration, decodes without errors, and holds the simulator's frames in order (the frame
//! numbers drawn into the picture are consecutive) with RTP-derived timestamps — after a timed
//! run and after SIGINT mid-run.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{PASSWORD, Sim, send_signal, wait_with_timeout};
use spot_ptz_stream::sim::frame_tag;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FPS: f64 = 30.0;

fn start_sim() -> Sim {
    Sim::start_640x360(&["--fps", "30"])
}

fn probe_command(sim: &Sim, extra: &[&str]) -> Command {
    sim.probe_command(PASSWORD, extra)
}

fn tool(name: &str) -> Command {
    let found = Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} not found: it comes with the Debian package ffmpeg, which `source scripts/test-deps.sh` installs"
    );
    Command::new(name)
}

/// `ffprobe` of the video stream: (codec, width, height, frames read, duration in seconds).
fn ffprobe_stream(path: &Path) -> (String, u32, u32, u64, f64) {
    let output = tool("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames:format=duration",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in ffprobe output:\n{text}"))
            .to_string()
    };
    (
        field("codec_name"),
        field("width").parse().expect("width"),
        field("height").parse().expect("height"),
        field("nb_read_frames").parse().expect("nb_read_frames"),
        field("duration").parse().expect("duration"),
    )
}

/// Presentation times (s) and keyframe flags of the packets, in file order.
fn ffprobe_packets(path: &Path) -> Vec<(f64, bool)> {
    let output = tool("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let (pts, flags) = l.split_once(',').expect("pts_time,flags");
            (pts.parse().expect("pts_time"), flags.starts_with('K'))
        })
        .collect()
}

/// Decodes every frame with ffmpeg (no frame-rate conversion) and reads the frame number
/// drawn by the simulator into each. Fails on any decoder message.
fn decoded_frame_numbers(path: &Path) -> Vec<Option<u32>> {
    let output = tool("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "ffmpeg decode errors: {stderr}"
    );
    let frame_bytes = (WIDTH * HEIGHT * 3) as usize;
    assert_eq!(output.stdout.len() % frame_bytes, 0);
    output
        .stdout
        .chunks_exact(frame_bytes)
        .map(|f| frame_tag::read_bgr8(f, WIDTH as usize * 3, WIDTH, HEIGHT))
        .collect()
}

/// The probe's `recording:` line: (frames, seconds).
fn recording_line(stdout: &str) -> (u64, f64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("recording:"))
        .unwrap_or_else(|| panic!("no recording line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let frames = words
        .iter()
        .position(|w| *w == "frames")
        .and_then(|i| words.get(i - 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("frame count in {line}"));
    let secs = words
        .iter()
        .position(|w| *w == "s,")
        .and_then(|i| words.get(i - 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("duration in {line}"));
    (frames, secs)
}

fn within(actual: f64, expected: f64, fraction: f64) -> bool {
    (actual - expected).abs() <= expected * fraction
}

/// Everything a recording must satisfy; `min_secs..max_secs` bounds its duration.
fn check_recording(path: &Path, stdout: &str, min_secs: f64, max_secs: f64) {
    let size = std::fs::metadata(path).expect("the MP4 exists").len();
    let (recorded_frames, recorded_secs) = recording_line(stdout);
    let (codec, width, height, frames, duration) = ffprobe_stream(path);
    eprintln!(
        "{}: {size} bytes, ffprobe codec={codec} {width}x{height} frames={frames} duration={duration:.3} s; probe: {recorded_frames} frames {recorded_secs:.2} s",
        path.display()
    );
    assert_eq!(codec, "h264");
    assert_eq!((width, height), (WIDTH, HEIGHT));
    assert!(
        (min_secs..=max_secs).contains(&duration),
        "duration {duration} not in {min_secs}..{max_secs}"
    );
    // The container's frame count matches what the probe recorded and what 30 fps over the
    // container's duration gives.
    assert!(within(frames as f64, recorded_frames as f64, 0.02));
    assert!(
        within(frames as f64, duration * FPS, 0.02),
        "{frames} frames in {duration} s"
    );
    assert!(within(duration, recorded_secs, 0.02));

    // Sync samples: the first packet is a keyframe, and keyframes are marked as such.
    let packets = ffprobe_packets(path);
    assert_eq!(packets.len() as u64, frames);
    assert!(packets[0].1, "the first sample must be a sync sample");
    assert!(packets.iter().filter(|p| p.1).count() >= 2);

    // Every frame decodes, in the simulator's order, with none missing or repeated, and the
    // timestamps follow the RTP clock (the simulator's frame number / 30 fps).
    let numbers = decoded_frame_numbers(path);
    assert_eq!(numbers.len() as u64, frames);
    let numbers: Vec<u32> = numbers
        .into_iter()
        .map(|n| n.expect("every decoded frame carries a readable frame number"))
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "frame numbers not consecutive: {numbers:?}"
    );
    for ((pts, _), number) in packets.iter().zip(&numbers) {
        let expected = f64::from(number - numbers[0]) / FPS;
        assert!(
            (pts - packets[0].0 - expected).abs() < 0.05,
            "frame {number} at {pts} s, expected {expected} s after the first"
        );
    }
}

#[test]
fn a_five_second_run_records_a_playable_mp4() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.mp4");
    let output: Output = probe_command(&sim, &["--duration", "5", "--save-video"])
        .arg(&path)
        .output()
        .expect("run ptz_stream_probe");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The run lasts 5 s; connecting takes some of it.
    check_recording(&path, &stdout, 3.0, 5.1);
}

#[test]
fn sigint_mid_run_stops_within_two_seconds_with_a_finalized_mp4() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("interrupted.mp4");
    let mut child = probe_command(&sim, &["--duration", "0", "--save-video"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ptz_stream_probe");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Interrupt after three statistics lines while streaming (about 3 s of video).
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with("state=streaming"))
        .count()
        < 3
    {
        let line = lines_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("not streaming; stdout so far:\n{}", lines.join("\n")));
        lines.push(line);
    }
    let interrupted = Instant::now();
    send_signal(&child, "INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(5)).expect("the probe exits");
    let stop_secs = interrupted.elapsed().as_secs_f64();
    reader.join().expect("reader");
    lines.extend(lines_rx.try_iter());
    let stdout = lines.join("\n");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    eprintln!("stopped {stop_secs:.3} s after SIGINT");
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stop_secs < 2.0, "took {stop_secs} s to stop");
    assert!(stdout.contains("\nsummary: "), "{stdout}");
    check_recording(&path, &stdout, 1.5, 10.0);
}

#[test]
fn an_unwritable_video_path_fails_with_a_clear_reason() {
    let sim = start_sim();
    let output = probe_command(
        &sim,
        &["--duration", "2", "--save-video", "/nonexistent-dir/x.mp4"],
    )
    .output()
    .expect("run ptz_stream_probe");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("--save-video")
            && errors[0].contains("cannot create /nonexistent-dir/x.mp4"),
        "{}",
        errors[0]
    );
}
