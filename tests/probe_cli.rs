//! `ptz_stream_probe` against the simulator: statistics lines and a summary with frames, exit
//! 0; a wrong password exits non-zero with a one-line reason.

mod common;

use common::{PASSWORD, Sim};

fn probe(sim: &Sim, password: &str, extra: &[&str]) -> std::process::Output {
    sim.probe_command(password, extra)
        .output()
        .expect("run ptz_stream_probe")
}

#[test]
fn a_short_run_reports_frames_and_succeeds() {
    let sim = Sim::start_640x360(&[]);
    let output = probe(&sim, PASSWORD, &["--duration", "3", "--no-display"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.lines().filter(|l| l.starts_with("state=")).count() >= 2,
        "{stdout}"
    );
    let (summary, frames) = common::probe_summary(&stdout);
    assert!(frames > 30, "{summary}");
    assert!(summary.ends_with("640x360"), "{summary}");
}

#[test]
fn a_wrong_password_fails_with_a_clear_reason() {
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    let output = probe(&sim, "wrong", &["--duration", "20"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(reason.contains("BOSDYN_CLIENT_PASSWORD"), "{reason}");
}
