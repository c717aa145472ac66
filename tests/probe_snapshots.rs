//! `ptz_stream_probe --snapshot-every --snapshot-dir` against the simulator: valid RGB PNGs of
//! the stream's size, one per interval, whose frame-number blocks (src/sim/frame_tag.rs) decode and
//! advance by about one interval of frames; invalid options fail with a clear reason.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{PASSWORD, Sim};
use spot_ptz_stream::sim::frame_tag;

fn probe(sim: &Sim, extra: &[&str]) -> Output {
    sim.probe_command(PASSWORD, extra)
        .output()
        .expect("run ptz_stream_probe")
}

/// Decodes a PNG; returns (width, height, packed bgr8).
fn read_png_as_bgr(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        File::open(path).expect("open snapshot"),
    ));
    let mut reader = decoder.read_info().expect("a valid PNG header");
    let mut rgb = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut rgb).expect("a valid PNG image");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let bgr = rgb[..info.buffer_size()]
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    (info.width, info.height, bgr)
}

#[test]
fn snapshots_are_pngs_whose_frame_numbers_decode() {
    let sim = Sim::start_640x360(&["--fps", "30"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let snapshots = dir.path().join("snaps");
    let output = probe(
        &sim,
        &[
            "--duration",
            "4",
            "--snapshot-every",
            "1",
            "--snapshot-dir",
            snapshots.to_str().expect("utf-8 path"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("snapshots: ")),
        "{stdout}"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .expect("snapshot dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert!(files.len() >= 3, "{names:?}\n{stdout}");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("snapshot-{:06}.png", i + 1));
    }
    let numbers: Vec<u32> = files
        .iter()
        .map(|path| {
            let (width, height, bgr) = read_png_as_bgr(path);
            assert_eq!((width, height), (640, 360));
            frame_tag::read_bgr8(&bgr, width as usize * 3, width, height)
                .unwrap_or_else(|| panic!("no frame number in {}", path.display()))
        })
        .collect();
    eprintln!("snapshot frame numbers: {numbers:?}");
    // One snapshot per second at 30 fps: about 30 frames apart.
    for pair in numbers.windows(2) {
        let step = pair[1].wrapping_sub(pair[0]);
        assert!((24..=40).contains(&step), "{numbers:?}");
    }
}

#[test]
fn snapshot_options_are_validated() {
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    // --snapshot-every needs --snapshot-dir (clap rejects it before connecting).
    let output = probe(&sim, &["--duration", "2", "--snapshot-every", "1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--snapshot-dir"));

    // A directory that cannot be created: one error line naming it.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let bad = file.join("snaps");
    let output = probe(
        &sim,
        &[
            "--duration",
            "2",
            "--snapshot-every",
            "1",
            "--snapshot-dir",
            bad.to_str().expect("utf-8 path"),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cannot create --snapshot-dir"),
        "{}",
        errors[0]
    );

    let output = probe(
        &sim,
        &[
            "--duration",
            "2",
            "--snapshot-every",
            "0",
            "--snapshot-dir",
            dir.path().to_str().expect("utf-8 path"),
        ],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--snapshot-every must be more than 0")
    );
}
