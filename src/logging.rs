//! Log set-up shared by the three binaries: which events are shown by default, and how.
//!
//! By default only this project's own events are shown from INFO up; the libraries underneath
//! (webrtc-rs' ICE/DTLS/SRTP layers, hyper, tonic, rustls) only from WARN, so their internal
//! state changes do not fill a user's console. An environment variable (named by each binary)
//! overrides this with any `tracing_subscriber::EnvFilter` directive, e.g.
//! `info,webrtc=debug`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The crates whose events are ours: the library and the binaries' own crates.
const OWN_TARGETS: [&str; 3] = ["spot_ptz_stream", "spot_cam_sim", "ptz_stream_probe"];

/// webrtc-rs's packet handler warns for every SRTP packet it reads twice. On a lossy link that
/// is routine: a NACK for a packet that was only late brings a second copy, which SRTP's
/// replay check then drops, per packet. Its real failures end the connection and are reported
/// by the stream, so it is shown from ERROR only.
const QUIETER_TARGETS: [(&str, &str); 1] = [("rtc::peer_connection::handler", "error")];

/// The filter from `env_var` when set and valid, else `warn` for everything and `own_level`
/// (e.g. `"info"`) for this project's crates.
pub fn filter(env_var: &str, own_level: &str) -> EnvFilter {
    EnvFilter::try_from_env(env_var).unwrap_or_else(|_| {
        let mut directives = String::from("warn");
        for target in OWN_TARGETS {
            directives.push_str(&format!(",{target}={own_level}"));
        }
        for (target, level) in QUIETER_TARGETS {
            directives.push_str(&format!(",{target}={level}"));
        }
        EnvFilter::new(directives)
    })
}

/// Plain-text events on stderr (the simulator and the probe): colour only on a terminal.
pub fn init_stderr(env_var: &str, own_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(env_var, own_level))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_events_at_the_given_level_libraries_at_warn() {
        let filter = filter("SPOT_PTZ_STREAM_TEST_UNSET_LOG_VARIABLE", "info").to_string();
        assert!(filter.contains("spot_ptz_stream=info"), "{filter}");
        assert!(filter.contains("spot_cam_sim=info"), "{filter}");
        assert!(filter.split(',').any(|d| d == "warn"), "{filter}");
    }
}

/// An error and its causes on one line, each said once: a cause that an error's own message
/// already quotes is not repeated (`anyhow`'s `{:#}` would print it twice).
pub fn one_line<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut line = String::new();
    for error in chain {
        let text = error.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod one_line_tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x.yaml: {0}")]
    struct Quotes(#[source] std::io::Error);

    #[test]
    fn a_quoted_cause_is_said_once() {
        let cause = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(Quotes(cause())).context("starting the node");
        assert_eq!(
            one_line(error.chain()),
            "starting the node: cannot read x.yaml: no such file"
        );
        let plain = anyhow::Error::new(cause()).context("reading y");
        assert_eq!(one_line(plain.chain()), "reading y: no such file");
    }
}
