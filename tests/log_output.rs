//! What a user sees in the console by default: the simulator's and the probe's own events, no
//! INFO chatter from the WebRTC/ICE/DTLS libraries, and no colour codes when the output is a
//! file or a pipe (launch logs, CI, `2> log`).

mod common;

use common::{PASSWORD, Sim};

/// Lines of `fmt` output at INFO or below (`<time>  INFO <target>: ...`) whose target is not
/// one of this project's crates.
fn foreign_chatter(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            let level = words.nth(1).unwrap_or("");
            let target = words.next().unwrap_or("");
            matches!(level, "INFO" | "DEBUG" | "TRACE")
                && !["spot_ptz_stream", "spot_cam_sim", "ptz_stream_probe"]
                    .iter()
                    .any(|own| target.starts_with(own))
        })
        .collect()
}

#[test]
fn default_logs_show_only_our_events_and_no_colour_codes() {
    let sim = Sim::start_logging(&["--width", "320", "--height", "240"], None);
    let output = sim
        .probe_command(PASSWORD, &["--duration", "3", "--no-display"])
        .env("RUST_LOG", "info")
        .output()
        .expect("run ptz_stream_probe");
    let probe_stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{probe_stderr}");
    let sim_log = sim.log();

    assert!(
        sim_log.contains("starting spot_cam_sim"),
        "the simulator's own INFO line is missing:\n{sim_log}"
    );
    assert!(
        !sim_log.contains('\u{1b}'),
        "colour codes in a log file:\n{sim_log}"
    );
    assert!(
        !probe_stderr.contains('\u{1b}'),
        "colour codes on a pipe:\n{probe_stderr}"
    );
    // The simulator streamed a whole WebRTC session (the probe got frames), and with the
    // default filter none of the libraries' INFO events reached its log.
    let chatter = foreign_chatter(&sim_log);
    assert!(
        chatter.is_empty(),
        "library INFO events by default:\n{}",
        chatter.join("\n")
    );
}

#[test]
fn an_explicit_filter_still_shows_library_events() {
    // The check above can fail: with `info` for everything, the libraries' events appear.
    let sim = Sim::start_logging(&["--width", "320", "--height", "240"], Some("debug"));
    let output = sim
        .probe_command(PASSWORD, &["--duration", "3", "--no-display"])
        .output()
        .expect("run ptz_stream_probe");
    assert!(output.status.success());
    let sim_log = sim.log();
    assert!(
        !foreign_chatter(&sim_log).is_empty(),
        "RUST_LOG=debug shows no library events:\n{sim_log}"
    );
}
