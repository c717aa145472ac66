//! The `--display` window: a thread owning a minifb (X11) window that shows the newest frame
//! with a statistics overlay at the bottom-left (the frame-number blocks at the top-left stay
//! visible).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use minifb::{ScaleMode, Window, WindowOptions};

use super::overlay::{bgr_to_0rgb, draw_overlay};
use crate::media::decoder::DecodedFrame;
use crate::media::handoff::DropOldestQueue;
use crate::shutdown::{self, CancellationToken, ThreadEnd};
use crate::stats::{Rates, StatsSnapshot};
use crate::stream::StreamHandle;

/// Largest initial window; bigger streams are scaled down (the window can be resized).
const MAX_WINDOW_PX: (usize, usize) = (1280, 720);
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
        let end = shutdown::join_thread(self.thread, STOP_TIMEOUT).await;
        if !matches!(end, ThreadEnd::Returned(())) {
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
