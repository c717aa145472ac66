//! `spot_cam_sim`: a simulated Spot robot and Spot CAM for tests, benchmarks and demos.
//!
//! Speaks the robot's gRPC over TLS (auth, directory, Spot CAM compositor, stream quality,
//! PTZ), the camera's HTTPS WebRTC signalling and WebRTC itself, and streams a synthetic scene
//! encoded live (openh264 with IDRs, or libx264 with intra refresh as the Spot CAM does). Prints `ready grpc=<addr> sdp=<addr> ca=<path>` once listening.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use spot_ptz_stream::aiming::lens::{DEFAULT_HFOV_DEG_AT_ZOOM_1, LensModel};
use spot_ptz_stream::sim::encoder::EncoderKind;
use spot_ptz_stream::sim::link::LinkImpairments;
use spot_ptz_stream::sim::people::Person;
use spot_ptz_stream::sim::simulator::{self, SimConfig};
use spot_ptz_stream::{logging, shutdown};

/// A simulated Spot robot and Spot CAM (gRPC/TLS, HTTPS signalling, WebRTC H.264).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (gRPC, signalling and WebRTC).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// gRPC (robot API) port; 0 picks a free port. The real robot uses 443.
    #[arg(long, default_value_t = 0)]
    grpc_port: u16,
    /// HTTPS signalling port; 0 picks a free port. The real robot uses 31102.
    #[arg(long, default_value_t = 0)]
    sdp_port: u16,
    /// Signalling path, without the leading slash.
    #[arg(long, default_value = "h264.sdp")]
    sdp_path: String,
    /// Directory for the generated test root CA (`ca.pem`); created if missing.
    #[arg(long)]
    cert_dir: PathBuf,
    /// The robot user's name.
    #[arg(long)]
    username: String,
    /// The robot user's password.
    #[arg(long)]
    password: String,
    /// Stream width in pixels.
    #[arg(long, default_value_t = 1920)]
    width: u32,
    /// Stream height in pixels.
    #[arg(long, default_value_t = 1080)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Initial target bitrate (StreamQualityService can change it).
    #[arg(long, default_value_t = 2_000_000)]
    bitrate_bps: i64,
    /// Frames between IDR pictures; 0 = an IDR only at session start and on PLI/FIR.
    #[arg(long = "idr-interval", default_value_t = 30)]
    idr_interval_frames: i64,
    /// Write `frame_number,send_time_unix_ns` (capture time) for every frame to this CSV.
    #[arg(long)]
    frame_log: Option<PathBuf>,
    /// Fault: drop this percentage of outgoing video RTP packets *before* the retransmission
    /// buffer, so no NACK can repair them (a camera whose history is too short).
    #[arg(long, default_value_t = 0.0)]
    loss_percent: f64,
    /// Offer RTX (RFC 4588): NACKed packets are resent on a retransmission stream of their own
    /// instead of the video stream.
    #[arg(long)]
    rtx: bool,
    /// Link: one-way delay of everything the camera sends, milliseconds (a Wi-Fi round trip).
    #[arg(long, default_value_t = 0)]
    link_delay_ms: u64,
    /// Link: lose this percentage of RTP packets on the network, after the camera's
    /// retransmission buffer (NACK can repair them), as Wi-Fi does.
    #[arg(long, default_value_t = 0.0)]
    link_loss_percent: f64,
    /// Link: packets lost together in each loss event (burst loss).
    #[arg(long, default_value_t = 1)]
    link_burst_len: u32,
    /// Link: deliver this percentage of RTP packets late (--link-reorder-delay-ms), after the
    /// packets sent behind them.
    #[arg(long, default_value_t = 0.0)]
    link_reorder_percent: f64,
    /// Link: how late a reordered packet arrives.
    #[arg(long, default_value_t = 15)]
    link_reorder_delay_ms: u64,
    /// Link: retransmissions (answers to the client's NACKs, on the video stream; not with
    /// --rtx) leave this many milliseconds late, as from a busy camera.
    #[arg(long, default_value_t = 0)]
    nack_delay_ms: u64,
    /// Link: capacity in bit/s, with a 150 ms queue whose overflow is dropped.
    #[arg(long)]
    link_rate_bps: Option<u64>,
    /// Link: lift the capacity limit this many seconds after start (default: never).
    #[arg(long)]
    link_rate_duration_secs: Option<f64>,
    /// Fault: close every peer connection this many seconds after it connected.
    #[arg(long)]
    drop_after_secs: Option<f64>,
    /// Fault: this many seconds after each peer connected, vanish from the network without a
    /// goodbye (no more packets either way, no DTLS close), as a camera that loses power.
    #[arg(long)]
    vanish_after_secs: Option<f64>,
    /// Fault: answer signalling with 503 for this many seconds after start.
    #[arg(long)]
    refuse_signalling_secs: Option<f64>,
    /// Fault: start each session on a non-IDR frame and do not send an IDR when a peer joins.
    #[arg(long)]
    join_mid_stream: bool,
    /// Fault: ignore the client's keyframe requests (PLI/FIR), as the Spot CAM may; only the
    /// encoder's own IDRs (--idr-interval) make the stream decodable again.
    #[arg(long)]
    ignore_keyframe_requests: bool,
    /// Encode like the Spot CAM: periodic intra refresh (libx264) with one IDR at the start and
    /// none after it; the refresh period is the stream's `refresh_interval` (default 30 frames).
    /// Combine with --ignore-keyframe-requests for a camera that never sends another IDR.
    #[arg(long)]
    intra_refresh: bool,
    /// Send SPS/PPS before every frame (by default only with IDRs, like a bare encoder).
    #[arg(long)]
    repeat_parameter_sets: bool,
    /// Fault: `pano_full` streams at half the height, so SetScreen changes the resolution.
    #[arg(long)]
    resize_on_screen_change: bool,
    /// The Spot CAM services appear in the directory only this many seconds after start.
    #[arg(long, default_value_t = 0.0)]
    services_delay_secs: f64,
    /// `SetPtzPosition` acts and answers only this many seconds after it arrives (a slow link
    /// or a busy robot).
    #[arg(long, default_value_t = 0.0)]
    ptz_command_delay_secs: f64,
    /// Refuse `SetPtzPosition` (an invalid request) for a pan above this many degrees (the
    /// PTZ's convention): a mechanical stop the PTZ does not report in its limits.
    #[arg(long)]
    ptz_refuse_pan_above_deg: Option<f32>,
    /// A person in the world at this pan, tilt (degrees, the PTZ's convention: pan clockwise
    /// from forward, tilt up) and distance (metres) from the PTZ, drawn as a red box where the
    /// PTZ sees them. Repeat for several people.
    #[arg(long = "person-at", value_name = "PAN,TILT,DISTANCE")]
    people: Vec<Person>,
    /// Height of the simulated people, metres.
    #[arg(long, default_value_t = 1.7)]
    person_height_m: f64,
    /// The PTZ camera's horizontal field of view at zoom 1, degrees (zoom narrows it as a
    /// focal length would; the node's `hfov_deg_at_zoom_1` should match).
    #[arg(long, default_value_t = DEFAULT_HFOV_DEG_AT_ZOOM_1)]
    hfov_deg: f64,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds, got {value}"))
}

impl Args {
    fn into_config(self) -> anyhow::Result<SimConfig> {
        if self.width < 64 || self.height < 64 || self.width > 4096 || self.height > 2304 {
            bail!(
                "--width/--height must be between 64x64 and 4096x2304, got {}x{}",
                self.width,
                self.height
            );
        }
        if !(1..=120).contains(&self.fps) {
            bail!("--fps must be between 1 and 120, got {}", self.fps);
        }
        if !(0.0..=100.0).contains(&self.loss_percent) {
            bail!(
                "--loss-percent must be between 0 and 100, got {}",
                self.loss_percent
            );
        }
        for (name, value) in [
            ("link-loss-percent", self.link_loss_percent),
            ("link-reorder-percent", self.link_reorder_percent),
        ] {
            if !(0.0..=100.0).contains(&value) {
                bail!("--{name} must be between 0 and 100, got {value}");
            }
        }
        if !(1..=100).contains(&self.link_burst_len) {
            bail!(
                "--link-burst-len must be between 1 and 100 packets, got {}",
                self.link_burst_len
            );
        }
        if self.link_delay_ms > 2000
            || self.link_reorder_delay_ms > 2000
            || self.nack_delay_ms > 2000
        {
            bail!(
                "--link-delay-ms, --link-reorder-delay-ms and --nack-delay-ms must be at most 2000"
            );
        }
        if self.link_rate_bps.is_some_and(|rate| rate < 10_000) {
            bail!("--link-rate-bps must be at least 10000 (10 kbit/s)");
        }
        if !(1.0..=170.0).contains(&self.hfov_deg) {
            bail!(
                "--hfov-deg must be between 1 and 170 degrees, got {}",
                self.hfov_deg
            );
        }
        if !(0.1..=5.0).contains(&self.person_height_m) {
            bail!(
                "--person-height-m must be between 0.1 and 5, got {}",
                self.person_height_m
            );
        }
        if self.idr_interval_frames < 0 {
            bail!("--idr-interval must be 0 (only on request) or a positive number of frames");
        }
        Ok(SimConfig {
            bind: self.bind,
            grpc_port: self.grpc_port,
            sdp_port: self.sdp_port,
            sdp_path: self.sdp_path,
            cert_dir: self.cert_dir,
            username: self.username,
            password: self.password,
            width: self.width,
            height: self.height,
            fps: self.fps,
            bitrate_bps: self.bitrate_bps,
            idr_interval_frames: self.idr_interval_frames,
            frame_log: self.frame_log,
            loss_percent: self.loss_percent,
            link: LinkImpairments {
                delay: Duration::from_millis(self.link_delay_ms),
                loss_percent: self.link_loss_percent,
                burst_len: self.link_burst_len,
                reorder_percent: self.link_reorder_percent,
                reorder_delay: Duration::from_millis(self.link_reorder_delay_ms),
                retransmission_delay: Duration::from_millis(self.nack_delay_ms),
                rate_bps: self.link_rate_bps,
                rate_cap_until: self
                    .link_rate_duration_secs
                    .map(|s| seconds("link-rate-duration-secs", s))
                    .transpose()?
                    .map(|d| std::time::Instant::now() + d),
                ..LinkImpairments::default()
            },
            rtx: self.rtx,
            drop_after: self
                .drop_after_secs
                .map(|s| seconds("drop-after-secs", s))
                .transpose()?,
            vanish_after: self
                .vanish_after_secs
                .map(|s| seconds("vanish-after-secs", s))
                .transpose()?,
            refuse_signalling_for: self
                .refuse_signalling_secs
                .map(|s| seconds("refuse-signalling-secs", s))
                .transpose()?,
            join_mid_stream: self.join_mid_stream,
            ignore_keyframe_requests: self.ignore_keyframe_requests,
            repeat_parameter_sets: self.repeat_parameter_sets,
            people: self.people,
            lens: LensModel {
                hfov_deg_at_zoom_1: self.hfov_deg,
            },
            person_height_m: self.person_height_m,
            encoder: if self.intra_refresh {
                EncoderKind::IntraRefresh
            } else {
                EncoderKind::PeriodicIdr
            },
            resize_on_screen_change: self.resize_on_screen_change,
            services_delay: seconds("services-delay-secs", self.services_delay_secs)?,
            ptz_command_delay: seconds("ptz-command-delay-secs", self.ptz_command_delay_secs)?,
            ptz_refuse_pan_above_deg: self.ptz_refuse_pan_above_deg,
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logging::init_stderr("RUST_LOG", "info");
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", logging::one_line(error.chain()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    // One crypto provider for TLS everywhere (gRPC, HTTPS, DTLS use ring).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let config = Args::parse().into_config()?;
    tracing::info!(
        bind = %config.bind, width = config.width, height = config.height, fps = config.fps,
        bitrate_bps = config.bitrate_bps, idr_interval_frames = config.idr_interval_frames,
        loss_percent = config.loss_percent, drop_after = ?config.drop_after,
        vanish_after = ?config.vanish_after, link = ?config.link, rtx = config.rtx,
        refuse_signalling_for = ?config.refuse_signalling_for, join_mid_stream = config.join_mid_stream,
        ignore_keyframe_requests = config.ignore_keyframe_requests, encoder = ?config.encoder,
        resize_on_screen_change = config.resize_on_screen_change, username = %config.username,
        people = ?config.people, hfov_deg = config.lens.hfov_deg_at_zoom_1,
        "starting spot_cam_sim"
    );
    let shutdown = shutdown::on_terminate_signals().context("could not install signal handlers")?;
    let running = simulator::start(config, shutdown.clone()).await?;
    println!(
        "ready grpc={} sdp={} ca={}",
        running.grpc_addr,
        running.sdp_addr,
        running.ca_path.display()
    );
    shutdown.cancelled().await;
    let stopped = tokio::time::timeout(Duration::from_secs(2), running.wait()).await;
    match stopped {
        Ok(result) => result.context("the simulator failed")?,
        Err(_) => tracing::warn!("some simulator tasks did not stop within 2 s"),
    }
    Ok(())
}
