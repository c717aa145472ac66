//! `ptz_stream_probe`: does the Spot CAM stream work from this computer, and at what rate?
//!
//! Uses the same ROS-free session as the node. Credentials come from
//! `BOSDYN_CLIENT_USERNAME` / `BOSDYN_CLIENT_PASSWORD`. Prints a statistics line every
//! `--stats-interval` seconds and a summary at the end; exits 0 when frames arrived, non-zero
//! with a one-line reason otherwise.
//!
//! `--save-video FILE.mp4` records the received H.264 access units, as they are, into a
//! fragmented MP4 (a new fragment about every second, so an interrupted run still leaves a
//! playable file). `--snapshot-every SECS --snapshot-dir DIR` writes decoded frames as PNG.
//! `--display` shows the stream in a window with a statistics overlay when an X display is
//! available (headless otherwise); closing the window ends the run like Ctrl+C.
//!
//! `--udp-port-min 21000 --udp-port-max 22000` keeps WebRTC's UDP sockets within the ports a
//! firewall admits (Spot CORE I/O). A flag given twice takes its last value.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use spot_ptz_stream::camera_link::answerer::{AnswererConfig, DEFAULT_UDP_RECEIVE_BUFFER_BYTES};
use spot_ptz_stream::camera_link::port_range::UdpPortRange;
use spot_ptz_stream::camera_link::signalling::SignallingConfig;
use spot_ptz_stream::media::convert::ColorSpec;
use spot_ptz_stream::media::decoder::{DecoderBackend, DecoderSettings};
use spot_ptz_stream::media::depacketizer::DEFAULT_MAX_ACCESS_UNIT_BYTES;
use spot_ptz_stream::media::reorder::DEFAULT_REORDER_WAIT;
use spot_ptz_stream::probe::{self, ProbeOptions};
use spot_ptz_stream::robot::{Credentials, RobotConfig, default_client_name};
use spot_ptz_stream::stream::{PrepareConfig, StreamConfig};
use spot_ptz_stream::{logging, shutdown};

/// Test the Spot CAM WebRTC stream from this computer, without ROS.
#[derive(Debug, Parser)]
#[command(version, args_override_self = true)]
struct Args {
    /// Robot hostname or IP.
    robot_host: String,
    /// Robot gRPC port.
    #[arg(long, default_value_t = 443)]
    grpc_port: u16,
    /// Spot CAM signalling port (HTTPS).
    #[arg(long, default_value_t = 31102)]
    sdp_port: u16,
    /// Compositor screen to stream; empty leaves it unchanged.
    #[arg(long, default_value = "mech_full")]
    screen: String,
    /// Target bitrate to set on the camera; 0 leaves it unchanged.
    #[arg(long, default_value_t = 0)]
    bitrate_bps: i64,
    /// Stop after this many seconds; 0 runs until Ctrl+C.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds between statistics lines.
    #[arg(long, default_value_t = 1.0)]
    stats_interval: f64,
    /// Fail when no frame arrives within this many seconds.
    #[arg(long, default_value_t = 20.0)]
    first_frame_timeout: f64,
    /// PEM root CA of the robot (default: the embedded Boston Dynamics root CA).
    #[arg(long)]
    robot_ca: Option<PathBuf>,
    /// PEM CA of the camera's HTTPS certificate (default: not verified).
    #[arg(long)]
    camera_ca: Option<PathBuf>,
    /// Local address for the WebRTC UDP sockets.
    #[arg(long, default_value = "0.0.0.0")]
    udp_bind_address: IpAddr,
    /// Lowest local UDP port for WebRTC, with --udp-port-max (a Spot CORE I/O admits inbound
    /// UDP on 21000-22000 only); both 0: any port.
    #[arg(long, default_value_t = 0, requires = "udp_port_max")]
    udp_port_min: u16,
    /// Highest local UDP port for WebRTC, with --udp-port-min.
    #[arg(long, default_value_t = 0, requires = "udp_port_min")]
    udp_port_max: u16,
    /// H.264 decoder: libavcodec (FFmpeg, the default when built in) or openh264.
    #[arg(long, value_parser = parse_decoder)]
    decoder: Option<DecoderBackend>,
    /// Kernel receive buffer for each WebRTC UDP socket, bytes (0 = system default; the
    /// kernel caps it at net.core.rmem_max).
    #[arg(long, default_value_t = DEFAULT_UDP_RECEIVE_BUFFER_BYTES)]
    udp_receive_buffer_bytes: usize,
    /// Record the H.264 stream (not re-encoded) into this fragmented MP4 file.
    #[arg(long, value_name = "FILE")]
    save_video: Option<PathBuf>,
    /// Write a decoded PNG snapshot every this many seconds (needs --snapshot-dir).
    #[arg(long, value_name = "SECS", requires = "snapshot_dir")]
    snapshot_every: Option<f64>,
    /// Directory for the PNG snapshots (created if missing).
    #[arg(long, value_name = "DIR", requires = "snapshot_every")]
    snapshot_dir: Option<PathBuf>,
    /// Show the stream in a window with statistics (X11; ignored without a display).
    #[arg(long, overrides_with = "no_display")]
    display: bool,
    /// Run headless (the default).
    #[arg(long, overrides_with = "display")]
    no_display: bool,
}

fn parse_decoder(value: &str) -> Result<DecoderBackend, String> {
    value
        .parse()
        .map_err(|problem| format!("{problem} (accepted: {})", DecoderBackend::ACCEPTED))
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds, got {value}"))
}

fn read(what: &str, path: &Option<PathBuf>) -> anyhow::Result<Option<Vec<u8>>> {
    path.as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {what} {}", p.display())))
        .transpose()
}

fn config(args: &Args) -> anyhow::Result<StreamConfig> {
    let timeout = Duration::from_secs(10);
    Ok(StreamConfig {
        robot: RobotConfig {
            host: args.robot_host.clone(),
            grpc_port: args.grpc_port,
            root_ca_pem: read("--robot-ca", &args.robot_ca)?,
            connect_timeout: timeout,
            rpc_timeout: timeout,
            client_name: default_client_name(),
        },
        credentials: Credentials::from_env()?,
        signalling: SignallingConfig {
            host: args.robot_host.clone(),
            port: args.sdp_port,
            path: "h264.sdp".to_string(),
            camera_ca_pem: read("--camera-ca", &args.camera_ca)?,
            request_timeout: timeout,
        },
        answerer: AnswererConfig {
            udp_bind_addrs: vec![format!("{}:0", args.udp_bind_address)],
            udp_port_range: UdpPortRange::from_params(
                i64::from(args.udp_port_min),
                i64::from(args.udp_port_max),
            )
            .context("--udp-port-min/--udp-port-max")?,
            ice_gather_timeout: Duration::from_secs(5),
            udp_receive_buffer_bytes: args.udp_receive_buffer_bytes,
        },
        prepare: PrepareConfig {
            screen: (!args.screen.is_empty()).then(|| args.screen.clone()),
            target_bitrate_bps: (args.bitrate_bps > 0).then_some(args.bitrate_bps),
            ..PrepareConfig::default()
        },
        connect_timeout: timeout,
        stall_timeout: Duration::from_secs(5),
        reorder_wait: DEFAULT_REORDER_WAIT,
        // A test and recording tool: the stream keeps the bitrate it was asked for.
        adaptive_bitrate: None,
        reconnect_initial: Duration::from_millis(500),
        reconnect_max: Duration::from_secs(5),
        token_refresh_interval: Duration::from_secs(3600),
        decoder: DecoderSettings {
            backend: args
                .decoder
                .unwrap_or_else(DecoderBackend::default_for_build),
            color: ColorSpec::default(),
            resync_wait: Duration::from_secs(2),
            headroom_bytes: 0,
        },
        queue_depth: 4,
        max_access_unit_bytes: DEFAULT_MAX_ACCESS_UNIT_BYTES,
        access_unit_tap: None,
        jpeg: None,
    })
}

fn options(args: &Args) -> anyhow::Result<ProbeOptions> {
    let snapshots = match (&args.snapshot_every, &args.snapshot_dir) {
        (Some(every), Some(dir)) => {
            let interval = seconds("snapshot-every", *every)?;
            if interval.is_zero() {
                bail!("--snapshot-every must be more than 0 seconds");
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --snapshot-dir {}", dir.display()))?;
            Some((interval, dir.clone()))
        }
        _ => None,
    };
    Ok(ProbeOptions {
        robot_host: args.robot_host.clone(),
        duration: seconds("duration", args.duration)?,
        stats_interval: seconds("stats-interval", args.stats_interval)?,
        first_frame_timeout: seconds("first-frame-timeout", args.first_frame_timeout)?,
        save_video: args.save_video.clone(),
        snapshots,
        display: args.display && !args.no_display,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let options = options(&args)?;
    let config = config(&args)?;
    let shutdown = shutdown::on_terminate_signals().context("cannot install signal handlers")?;
    probe::run(config, options, shutdown).await?;
    Ok(())
}

fn main() -> ExitCode {
    logging::init_stderr("RUST_LOG", "warn");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // Do not wait for blocking tasks that are still running (a slow disk).
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", logging::one_line(error.chain()));
            ExitCode::FAILURE
        }
    }
}
