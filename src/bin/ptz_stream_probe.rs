//! `ptz_stream_probe`: does the Spot CAM stream work from this computer, and at what rate?
//!
//! Uses the same ROS-free session as the node. Credentials come from
//! `BOSDYN_CLIENT_USERNAME` / `BOSDYN_CLIENT_PASSWORD`. Prints a statistics line every
//! `--stats-interval` seconds and a summary at the end; exits 0 when frames arrived, non-zero
//! with a one-line reason otherwise.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use spot_ptz_stream::decoder::{ColorSpec, DecoderSettings};
use spot_ptz_stream::robot::{Credentials, RobotConfig, default_client_name};
use spot_ptz_stream::shutdown;
use spot_ptz_stream::signalling::SignallingConfig;
use spot_ptz_stream::stats::{Rates, StatsSnapshot};
use spot_ptz_stream::stream::{self, PrepareConfig, StreamConfig, StreamState};
use spot_ptz_stream::webrtc_session::AnswererConfig;

/// Test the Spot CAM WebRTC stream from this computer, without ROS.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
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
            ice_gather_timeout: Duration::from_secs(5),
        },
        prepare: PrepareConfig {
            screen: (!args.screen.is_empty()).then(|| args.screen.clone()),
            target_bitrate_bps: (args.bitrate_bps > 0).then_some(args.bitrate_bps),
            ..PrepareConfig::default()
        },
        connect_timeout: timeout,
        stall_timeout: Duration::from_secs(5),
        reconnect_initial: Duration::from_millis(500),
        reconnect_max: Duration::from_secs(5),
        token_refresh_interval: Duration::from_secs(3600),
        decoder: DecoderSettings {
            color: ColorSpec::default(),
            resync_wait: Duration::from_secs(2),
        },
        queue_depth: 4,
    })
}

fn stats_line(snapshot: &StatsSnapshot, rates: Rates, state: StreamState) -> String {
    format!(
        "state={state} frames received={} decoded={} published={} dropped={} incomplete={} fps={:.1} bitrate={:.2} Mbit/s latency p50/p99={}/{} ms size={}x{} reconnects={}",
        snapshot.frames_received,
        snapshot.frames_decoded,
        snapshot.frames_published,
        snapshot.frames_dropped,
        snapshot.frames_incomplete,
        rates.fps,
        rates.bitrate_bps / 1e6,
        snapshot
            .latency_p50_ms
            .map_or("-".to_string(), |v| format!("{v:.1}")),
        snapshot
            .latency_p99_ms
            .map_or("-".to_string(), |v| format!("{v:.1}")),
        snapshot.width,
        snapshot.height,
        snapshot.reconnects,
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let duration = seconds("duration", args.duration)?;
    let stats_interval =
        seconds("stats-interval", args.stats_interval)?.max(Duration::from_millis(100));
    let first_frame_timeout = seconds("first-frame-timeout", args.first_frame_timeout)?;
    let shutdown = shutdown::on_terminate_signals().context("cannot install signal handlers")?;
    let (handle, task) = stream::spawn(config(&args)?, true, shutdown.child_token())?;
    let stats = handle.stats();
    let frames = handle.frames();
    // Consume frames as a subscriber would, measuring arrival → hand-over latency.
    let consumer_stats = stats.clone();
    let consumer = tokio::spawn(async move {
        while let Some(frame) = frames.pop().await {
            consumer_stats.record_latency(frame.first_arrival.elapsed());
            consumer_stats
                .frames_published
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });

    let started = Instant::now();
    let mut previous = stats.snapshot();
    let mut tick = tokio::time::interval(stats_interval);
    tick.tick().await;
    eprintln!("connecting to {} ...", args.robot_host);
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = tick.tick() => {}
        }
        let snapshot = stats.snapshot();
        let status = handle.status();
        println!(
            "{}",
            stats_line(
                &snapshot,
                Rates::between(&previous, &snapshot),
                status.state
            )
        );
        previous = snapshot;
        if status.state == StreamState::Failed {
            break Err(anyhow::anyhow!(
                status
                    .last_error
                    .unwrap_or_else(|| "the stream failed".to_string())
            ));
        }
        if previous.frames_published == 0 && started.elapsed() >= first_frame_timeout {
            let reason = status
                .last_error
                .unwrap_or_else(|| format!("still {}", status.state));
            break Err(anyhow::anyhow!(
                "no frame within {:.0} s: {reason}",
                first_frame_timeout.as_secs_f64()
            ));
        }
        if !duration.is_zero() && started.elapsed() >= duration {
            break Ok(());
        }
    };
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), consumer).await;
    let total = stats.snapshot();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "summary: {:.1} s, {} frames ({:.1} fps), {} dropped, {} incomplete, {} decode errors, {} reconnects, {}x{}",
        secs,
        total.frames_published,
        total.frames_published as f64 / secs.max(0.001),
        total.frames_dropped,
        total.frames_incomplete,
        total.decode_errors,
        total.reconnects,
        total.width,
        total.height
    );
    outcome?;
    if total.frames_published == 0 {
        bail!("no frames were received");
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
