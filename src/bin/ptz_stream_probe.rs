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

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use spot_ptz_stream::decoder::{ColorSpec, DecodedFrame, DecoderSettings};
use spot_ptz_stream::frame_queue::DropOldestQueue;
use spot_ptz_stream::recorder::{Recorder, RecordingReport};
use spot_ptz_stream::robot::{Credentials, RobotConfig, default_client_name};
use spot_ptz_stream::shutdown;
use spot_ptz_stream::signalling::SignallingConfig;
use spot_ptz_stream::snapshot::{self, SnapshotError, SnapshotSchedule};
use spot_ptz_stream::stats::{Rates, StatsSnapshot};
use spot_ptz_stream::stream::{self, PrepareConfig, StreamConfig, StreamState};
use spot_ptz_stream::webrtc_session::{AnswererConfig, DEFAULT_UDP_RECEIVE_BUFFER_BYTES};

/// Test the Spot CAM WebRTC stream from this computer, without ROS.
#[derive(Debug, Parser)]
#[command(version)]
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

/// Access units waiting for the recorder (about 4 s at 30 fps); older ones are dropped.
const RECORDER_QUEUE_FRAMES: usize = 128;
/// Shutdown budget after Ctrl+C or the end of the run (the whole stop stays within 2 s).
const STREAM_STOP_TIMEOUT: Duration = Duration::from_millis(1000);
const CONSUMER_STOP_TIMEOUT: Duration = Duration::from_millis(400);

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
            udp_receive_buffer_bytes: args.udp_receive_buffer_bytes,
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
            headroom_bytes: 0,
        },
        queue_depth: 4,
        access_unit_tap: None,
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
    let mut config = config(&args)?;
    let recorder = match &args.save_video {
        Some(path) => {
            let tap = DropOldestQueue::new(RECORDER_QUEUE_FRAMES);
            config.access_unit_tap = Some(tap.clone());
            Some(Recorder::start(path, tap).context("--save-video")?)
        }
        None => None,
    };
    let shutdown = shutdown::on_terminate_signals().context("cannot install signal handlers")?;
    let (handle, task) = stream::spawn(config, true, shutdown.child_token())?;
    let stats = handle.stats();
    let frames = handle.frames();
    let display = if args.display && !args.no_display {
        display::start(handle.clone(), &args.robot_host, shutdown.clone())
    } else {
        None
    };
    // Consume frames as a subscriber would, measuring arrival → hand-over latency.
    let consumer = tokio::spawn(consume_frames(
        frames.clone(),
        stats.clone(),
        snapshots,
        display.as_ref().map(|d| d.frames.clone()),
    ));

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
        if recorder.as_ref().is_some_and(Recorder::has_stopped) {
            break Err(anyhow::anyhow!("the recording stopped early"));
        }
    };
    shutdown.cancel();
    if tokio::time::timeout(STREAM_STOP_TIMEOUT, task)
        .await
        .is_err()
    {
        tracing::warn!("the stream task did not stop in time");
    }
    frames.close();
    let snapshot_report = match tokio::time::timeout(CONSUMER_STOP_TIMEOUT, consumer).await {
        Ok(Ok(report)) => Some(report),
        Ok(Err(error)) => {
            tracing::error!(%error, "the frame consumer failed");
            None
        }
        Err(_) => {
            tracing::warn!("the frame consumer did not stop in time");
            None
        }
    };
    let recording = match recorder {
        Some(recorder) => Some(recorder.finish().await.map_err(anyhow::Error::from)),
        None => None,
    };
    if let Some(display) = display {
        display.stop().await;
    }
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
    let mut recording_error = None;
    if let (Some(result), Some(path)) = (recording, &args.save_video) {
        match result {
            Ok(report) => println!("{}", recording_line(path, &report)),
            Err(error) => {
                recording_error = Some(error.context(format!("recording {}", path.display())))
            }
        }
    }
    if let (Some(report), Some(dir)) = (&snapshot_report, &args.snapshot_dir) {
        println!(
            "snapshots: {} written to {}, {} failed",
            report.written,
            dir.display(),
            report.failed
        );
    }
    // A write error of the recording explains an early stop better than the stop itself.
    if let Some(error) = recording_error {
        return Err(error);
    }
    outcome?;
    if let Some(report) = snapshot_report
        && let Some(error) = report.first_error
    {
        bail!(
            "{} snapshot(s) could not be written: {error}",
            report.failed
        );
    }
    if total.frames_published == 0 {
        bail!("no frames were received");
    }
    Ok(())
}

fn recording_line(path: &Path, report: &RecordingReport) -> String {
    let summary = &report.summary;
    format!(
        "recording: {} {} frames ({} keyframes), {:.2} s, {}x{}, {} fragments, {:.2} MB, {} skipped before the first keyframe, {} lost in the recorder queue",
        path.display(),
        summary.samples,
        summary.sync_samples,
        summary.duration().as_secs_f64(),
        summary.width,
        summary.height,
        summary.fragments,
        summary.bytes_written as f64 / 1e6,
        report.skipped_waiting_for_keyframe,
        report.dropped_in_queue,
    )
}

/// What the frame consumer did.
#[derive(Debug, Default)]
struct SnapshotReport {
    written: u64,
    failed: u64,
    first_error: Option<String>,
}

/// Takes decoded frames as a subscriber would (latency, published count) and writes a PNG
/// snapshot every interval, on a blocking thread, one at a time (a due snapshot waits for the
/// next frame while the previous one is still being written).
async fn consume_frames(
    frames: Arc<DropOldestQueue<DecodedFrame>>,
    stats: Arc<spot_ptz_stream::stats::StreamStats>,
    snapshots: Option<(Duration, PathBuf)>,
    display: Option<Arc<DropOldestQueue<DecodedFrame>>>,
) -> SnapshotReport {
    type Pending = tokio::task::JoinHandle<Result<PathBuf, SnapshotError>>;
    let mut report = SnapshotReport::default();
    let mut schedule = snapshots.map(|(interval, dir)| (SnapshotSchedule::new(interval), dir));
    let mut pending: Option<Pending> = None;
    async fn collect(pending: Pending, report: &mut SnapshotReport) {
        match pending.await {
            Ok(Ok(path)) => {
                report.written += 1;
                tracing::info!(path = %path.display(), "snapshot written");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "snapshot not written");
                report.failed += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
            Err(error) => {
                tracing::warn!(%error, "snapshot writer failed");
                report.failed += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    while let Some(frame) = frames.pop().await {
        stats.record_latency(frame.first_arrival.elapsed());
        stats.frames_published.fetch_add(1, Ordering::Relaxed);
        let writing = pending.as_ref().is_some_and(|p| !p.is_finished());
        if let Some((schedule, dir)) = schedule.as_mut()
            && !writing
        {
            if let Some(done) = pending.take() {
                collect(done, &mut report).await;
            }
            if let Some(sequence) = schedule.take(frame.first_arrival) {
                let path = snapshot::snapshot_path(dir, sequence);
                let frame = frame.clone();
                pending = Some(tokio::task::spawn_blocking(move || {
                    snapshot::write_png(&path, &frame).map(|()| path)
                }));
            }
        }
        if let Some(display) = &display {
            display.push(frame);
        }
    }
    if let Some(done) = pending.take() {
        collect(done, &mut report).await;
    }
    report
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
    let result = runtime.block_on(run(args));
    // Do not wait for blocking tasks that are still running (a slow disk).
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `--display` window: a thread owning a minifb (X11) window that shows the newest frame
/// with a statistics overlay at the bottom-left (the frame-number blocks at the top-left stay
/// visible).
mod display {
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::Duration;

    use minifb::{ScaleMode, Window, WindowOptions};
    use spot_ptz_stream::decoder::DecodedFrame;
    use spot_ptz_stream::frame_queue::DropOldestQueue;
    use spot_ptz_stream::shutdown::CancellationToken;
    use spot_ptz_stream::stats::{Rates, StatsSnapshot};
    use spot_ptz_stream::stream::StreamHandle;

    /// Largest initial window; bigger streams are scaled down (the window can be resized).
    const MAX_WINDOW_PX: (usize, usize) = (1280, 720);
    /// Overlay glyphs are 5x7 pixels drawn at this scale (1 in pictures narrower than this).
    const GLYPH_SCALE: usize = 2;
    const GLYPH_SCALE_MIN_WIDTH_PX: usize = 480;
    const STATS_PERIOD: Duration = Duration::from_secs(1);
    const STOP_TIMEOUT: Duration = Duration::from_millis(300);

    pub struct Display {
        pub frames: Arc<DropOldestQueue<DecodedFrame>>,
        thread: JoinHandle<()>,
    }

    /// Starts the window thread, or returns `None` (with a warning) when there is no display.
    pub fn start(
        stream: StreamHandle,
        robot_host: &str,
        shutdown: CancellationToken,
    ) -> Option<Display> {
        if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
            eprintln!("warning: --display: no X display (DISPLAY is not set); running headless");
            return None;
        }
        let frames = DropOldestQueue::new(1);
        let input = frames.clone();
        let title = format!("ptz_stream_probe: {robot_host}");
        let spawned = std::thread::Builder::new()
            .name("display".to_string())
            .spawn(move || run(&input, &stream, &title, &shutdown));
        match spawned {
            Ok(thread) => Some(Display { frames, thread }),
            Err(error) => {
                eprintln!(
                    "warning: --display: cannot start the window thread ({error}); running headless"
                );
                None
            }
        }
    }

    impl Display {
        /// Closes the window and waits briefly for its thread.
        pub async fn stop(self) {
            self.frames.close();
            let thread = self.thread;
            let joined = tokio::time::timeout(
                STOP_TIMEOUT,
                tokio::task::spawn_blocking(move || thread.join()),
            )
            .await;
            if !matches!(joined, Ok(Ok(Ok(())))) {
                tracing::warn!("the display thread did not stop cleanly");
            }
        }
    }

    fn run(
        input: &DropOldestQueue<DecodedFrame>,
        stream: &StreamHandle,
        title: &str,
        shutdown: &CancellationToken,
    ) {
        let mut window: Option<(Window, u32, u32)> = None;
        let mut pixels: Vec<u32> = Vec::new();
        let stats = stream.stats();
        let mut previous: StatsSnapshot = stats.snapshot();
        let mut rates = Rates::default();
        let mut overlay = Vec::new();
        // Ends when the queue is closed (Err) at shutdown.
        while let Ok(frame) = input.pop_blocking(Duration::from_millis(30)) {
            let Some(frame) = frame else {
                if let Some((w, _, _)) = window.as_mut() {
                    w.update();
                }
                if window_closed(&window, shutdown) {
                    break;
                }
                continue;
            };
            let now = stats.snapshot();
            if now.taken_at.duration_since(previous.taken_at) >= STATS_PERIOD {
                rates = Rates::between(&previous, &now);
                previous = now;
                overlay = overlay_lines(&previous, rates, stream);
            } else if overlay.is_empty() {
                overlay = overlay_lines(&now, rates, stream);
            }
            if window
                .as_ref()
                .is_none_or(|(_, w, h)| (*w, *h) != (frame.width, frame.height))
            {
                // Close the old window (a resolution change) before opening the new one.
                drop(window.take());
                match open_window(title, frame.width, frame.height) {
                    Ok(w) => window = Some((w, frame.width, frame.height)),
                    Err(error) => {
                        eprintln!(
                            "warning: --display: cannot open a window ({error}); running headless"
                        );
                        input.close();
                        return;
                    }
                }
            }
            bgr_to_0rgb(frame.bgr(), &mut pixels);
            draw_overlay(
                &mut pixels,
                frame.width as usize,
                frame.height as usize,
                &overlay,
            );
            if let Some((w, width, height)) = window.as_mut()
                && let Err(error) = w.update_with_buffer(&pixels, *width as usize, *height as usize)
            {
                tracing::warn!(%error, "could not show a frame");
            }
            if window_closed(&window, shutdown) {
                break;
            }
        }
        input.close();
    }

    fn window_closed(window: &Option<(Window, u32, u32)>, shutdown: &CancellationToken) -> bool {
        if let Some((w, _, _)) = window
            && !w.is_open()
        {
            tracing::info!("the window was closed; stopping");
            shutdown.cancel();
            return true;
        }
        false
    }

    fn open_window(title: &str, width: u32, height: u32) -> Result<Window, minifb::Error> {
        let (width, height) = (width as usize, height as usize);
        let scale = (MAX_WINDOW_PX.0 as f64 / width as f64)
            .min(MAX_WINDOW_PX.1 as f64 / height as f64)
            .min(1.0);
        let size = (
            ((width as f64 * scale) as usize).max(1),
            ((height as f64 * scale) as usize).max(1),
        );
        let mut window = Window::new(
            title,
            size.0,
            size.1,
            WindowOptions {
                resize: true,
                scale_mode: ScaleMode::AspectRatioStretch,
                ..WindowOptions::default()
            },
        )?;
        // Frames pace the loop; do not sleep in minifb.
        window.set_target_fps(0);
        tracing::info!(width, height, "window opened");
        Ok(window)
    }

    fn overlay_lines(snapshot: &StatsSnapshot, rates: Rates, stream: &StreamHandle) -> Vec<String> {
        let latency = snapshot
            .latency_p50_ms
            .map_or("-".to_string(), |v| format!("{v:.1}"));
        vec![
            format!(
                "{}  {:.1} FPS  {:.2} MBIT/S",
                stream.status().state,
                rates.fps,
                rates.bitrate_bps / 1e6,
            ),
            format!(
                "{}X{}  FRAMES {}  DROPPED {}  LOST {}",
                snapshot.width,
                snapshot.height,
                snapshot.frames_received,
                snapshot.frames_dropped,
                snapshot.rtp_packets_lost,
            ),
            format!("LATENCY {latency} MS  RECONNECTS {}", snapshot.reconnects),
        ]
    }

    fn bgr_to_0rgb(bgr: &[u8], out: &mut Vec<u32>) {
        out.clear();
        out.extend(
            bgr.chunks_exact(3)
                .map(|p| (u32::from(p[2]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[0])),
        );
    }

    /// White text on a darkened box at the bottom-left; clipped to the picture.
    fn draw_overlay(pixels: &mut [u32], width: usize, height: usize, lines: &[String]) {
        let scale = if width >= GLYPH_SCALE_MIN_WIDTH_PX {
            GLYPH_SCALE
        } else {
            1
        };
        let advance = 6 * scale;
        let line_height = 9 * scale;
        let margin = 2 * scale;
        let box_width = lines
            .iter()
            .map(|l| l.chars().count() * advance)
            .max()
            .unwrap_or(0)
            + 2 * margin;
        let box_height = lines.len() * line_height + 2 * margin;
        let top = height.saturating_sub(box_height);
        for y in top..height {
            for x in 0..box_width.min(width) {
                if let Some(p) = pixels.get_mut(y * width + x) {
                    *p = (*p >> 2) & 0x003F_3F3F;
                }
            }
        }
        for (row, line) in lines.iter().enumerate() {
            let y0 = top + margin + row * line_height;
            for (col, c) in line.chars().enumerate() {
                let x0 = margin + col * advance;
                for (gy, bits) in glyph(c).iter().enumerate() {
                    for gx in 0..5 {
                        if bits & (0x10 >> gx) == 0 {
                            continue;
                        }
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let (x, y) = (x0 + gx * scale + dx, y0 + gy * scale + dy);
                                if x < width
                                    && let Some(p) = pixels.get_mut(y * width + x)
                                {
                                    *p = 0x00FF_FFFF;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A 5x7 glyph (bit 4 = leftmost column); unknown characters are blank.
    fn glyph(c: char) -> [u8; 7] {
        match c.to_ascii_uppercase() {
            '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
            '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
            '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
            '3' => [0x1E, 0x01, 0x01, 0x0E, 0x01, 0x01, 0x1E],
            '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
            '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
            '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
            '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
            '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
            '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
            'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
            'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
            'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
            'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
            'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
            'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
            'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
            'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
            'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
            'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
            'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
            'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
            'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
            'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
            'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
            'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
            'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
            'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
            'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
            'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
            'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
            'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
            'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
            'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
            'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
            'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
            '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
            '/' => [0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10],
            ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
            '-' | '_' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
            '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
            _ => [0; 7],
        }
    }
}
