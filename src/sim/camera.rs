//! The simulated camera's live encoder: renders the scene at a fixed rate, encodes it (see
//! [`crate::sim::encoder`]: openh264 with IDRs, or libx264 with intra refresh) and fans the
//! access units out to every connected peer.
//!
//! It runs on its own thread and only while at least one peer listens. Stream-quality and
//! screen changes from the gRPC services are applied to the live encoder (a bitrate change in
//! place where the encoder can, otherwise a new encoder, starting with an IDR). Peers ask for
//! keyframes through [`CameraHandle::request_keyframe`]. The picture is a function of the
//! frame number and the PTZ pose alone, so a test can draw what any frame should show.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::aiming::lens::LensModel;
use crate::media::depacketizer::nal_type;
use crate::media::h264::{annex_b_nal_units, nal_kind};
use crate::shutdown::CancellationToken;
use crate::sim::encoder::{EncoderError, EncoderKind, SimEncoder};
use crate::sim::frame_tag;
use crate::sim::people::{self, Person};
use crate::sim::scene::{self, I420Frame};
use crate::sim::state::{SimState, StreamSettings};

/// Frames a slow peer may fall behind before it skips ahead.
const FAN_OUT_FRAMES: usize = 30;

/// One encoded frame as every peer receives it.
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    pub frame_number: u32,
    /// Annex-B access unit.
    pub data: Bytes,
    pub rtp_timestamp: u32,
    pub is_idr: bool,
}

/// Settings of the live encoder.
#[derive(Clone, Debug)]
pub struct CameraConfig {
    pub fps: u32,
    pub encoder: EncoderKind,
    /// Prepend SPS/PPS to every access unit instead of sending them only with IDRs.
    pub repeat_parameter_sets: bool,
    /// Write `frame_number,send_time_unix_ns` (capture time) for every frame.
    pub frame_log: Option<PathBuf>,
    /// People in the world, drawn where the PTZ sees them.
    pub people: Vec<Person>,
    /// The PTZ camera's field of view against zoom (for the people).
    pub lens: LensModel,
    pub person_height_m: f64,
}

/// The camera could not start.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("could not open the frame log {path}: {source}")]
    FrameLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start the encoder thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error("the encoder failed to encode a frame: {0}")]
    Encode(String),
}

/// Shared handle to the running camera.
#[derive(Clone)]
pub struct CameraHandle {
    frames: broadcast::Sender<Arc<EncodedFrame>>,
    keyframe_requested: Arc<AtomicBool>,
}

impl CameraHandle {
    /// Receives every frame encoded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EncodedFrame>> {
        self.frames.subscribe()
    }

    /// The next frame will be an IDR (with SPS/PPS).
    pub fn request_keyframe(&self) {
        self.keyframe_requested.store(true, Ordering::Relaxed);
    }
}

/// Starts the encoder thread; it stops when `shutdown` is cancelled.
pub fn start(
    config: CameraConfig,
    state: Arc<SimState>,
    shutdown: CancellationToken,
) -> Result<(CameraHandle, JoinHandle<()>), CameraError> {
    let frame_log = match &config.frame_log {
        Some(path) => {
            let file = File::create(path).map_err(|source| CameraError::FrameLog {
                path: path.clone(),
                source,
            })?;
            let mut log = BufWriter::new(file);
            writeln!(log, "frame_number,send_time_unix_ns").map_err(|source| {
                CameraError::FrameLog {
                    path: path.clone(),
                    source,
                }
            })?;
            Some(log)
        }
        None => None,
    };
    let (frames, _) = broadcast::channel(FAN_OUT_FRAMES);
    let handle = CameraHandle {
        frames,
        keyframe_requested: Arc::new(AtomicBool::new(false)),
    };
    let worker_handle = handle.clone();
    let thread = std::thread::Builder::new()
        .name("sim-encoder".to_string())
        .spawn(move || run(config, state, worker_handle, frame_log, shutdown))
        .map_err(CameraError::Thread)?;
    Ok((handle, thread))
}

/// Renders and encodes `count` consecutive frames of the scene (PTZ at home, frame tags
/// numbered from 0) exactly as the live camera would, the first one an IDR. For benchmarks
/// and tests that need a realistic bitstream without a running simulator.
pub fn encode_clip(
    width: u32,
    height: u32,
    fps: u32,
    settings: &StreamSettings,
    count: u32,
) -> Result<Vec<EncodedFrame>, CameraError> {
    let fps = fps.max(1);
    let mut encoder = SimEncoder::new(EncoderKind::PeriodicIdr, settings, fps, width, height)?;
    let mut picture = I420Frame::new(width, height);
    let home = crate::sim::state::PtzPose {
        pan_deg: 0.0,
        tilt_deg: 0.0,
        zoom: 1.0,
    };
    let mut clip = Vec::with_capacity(count as usize);
    for frame_number in 0..count {
        let elapsed_secs = frame_number as f32 / fps as f32;
        scene::render(&mut picture, home, "mech_full", elapsed_secs, frame_number);
        let (data, is_idr) = encoder.encode(&picture).map_err(CameraError::Encode)?;
        clip.push(EncodedFrame {
            frame_number,
            data: Bytes::from(data),
            rtp_timestamp: frame_number * (90_000 / fps),
            is_idr,
        });
    }
    Ok(clip)
}

struct ParameterSets {
    sps: Vec<u8>,
    pps: Vec<u8>,
}

fn run(
    config: CameraConfig,
    state: Arc<SimState>,
    handle: CameraHandle,
    mut frame_log: Option<BufWriter<File>>,
    shutdown: CancellationToken,
) {
    let fps = config.fps.max(1);
    let frame_interval = Duration::from_secs_f64(1.0 / f64::from(fps));
    let mut screen_rx = state.subscribe_screen();
    let mut params_rx = state.subscribe_stream_params();
    let rtp_base: u32 = rand::random();
    let started = Instant::now();
    let mut frame_number: u32 = 0;
    let mut encoder: Option<SimEncoder> = None;
    let mut applied: Option<StreamSettings> = None;
    let mut picture = I420Frame::new(2, 2);
    let mut parameter_sets: Option<ParameterSets> = None;
    let mut next_capture = Instant::now();

    while !shutdown.is_cancelled() {
        if handle.frames.receiver_count() == 0 {
            // Nobody watches: idle, and start the next session with an IDR.
            encoder = None;
            std::thread::sleep(Duration::from_millis(20));
            next_capture = Instant::now();
            continue;
        }
        let now = Instant::now();
        if now < next_capture {
            std::thread::sleep(next_capture - now);
        } else if now - next_capture > frame_interval * 5 {
            // Far behind (the machine is overloaded): skip ahead rather than burst.
            next_capture = now;
        }
        let capture = next_capture;
        next_capture += frame_interval;

        let screen_changed = screen_rx.has_changed().unwrap_or(false);
        let params_changed = params_rx.has_changed().unwrap_or(false);
        let screen = screen_rx.borrow_and_update().clone();
        let settings = *params_rx.borrow_and_update();
        if screen_changed || params_changed {
            tracing::info!(screen = %screen.name, width = screen.width, height = screen.height,
                bitrate_bps = settings.target_bitrate_bps, idr_interval_frames = settings.idr_interval_frames,
                refresh_interval_frames = settings.refresh_interval_frames,
                "applying new screen / stream parameters to the live encoder");
            let only_bitrate = !screen_changed
                && applied.is_some_and(|before| {
                    StreamSettings {
                        target_bitrate_bps: settings.target_bitrate_bps,
                        ..before
                    } == settings
                });
            let in_place = only_bitrate
                && encoder
                    .as_mut()
                    .is_some_and(|e| e.set_bitrate(settings.target_bitrate_bps));
            if !in_place {
                encoder = None;
            }
            applied = Some(settings);
        }
        if picture.width != screen.width & !1 || picture.height != screen.height & !1 {
            picture = I420Frame::new(screen.width, screen.height);
            encoder = None;
        }
        if encoder.is_none() {
            encoder = match SimEncoder::new(
                config.encoder,
                &settings,
                fps,
                picture.width,
                picture.height,
            ) {
                Ok(encoder) => Some(encoder),
                Err(error) => {
                    tracing::error!(%error, "no video until the stream parameters change");
                    None
                }
            };
            applied = Some(settings);
            parameter_sets = None;
        }
        let Some(enc) = encoder.as_mut() else {
            std::thread::sleep(frame_interval);
            continue;
        };

        let ptz = state
            .ptz_position_at("mech", capture)
            .unwrap_or(crate::sim::state::PtzPose {
                pan_deg: 0.0,
                tilt_deg: 0.0,
                zoom: 1.0,
            });
        // Scene time from the frame number, so that each frame's picture is reproducible.
        let elapsed_secs = frame_number as f32 / fps as f32;
        scene::render(&mut picture, ptz, &screen.name, elapsed_secs, frame_number);
        let tag_rows = frame_tag::block_px(picture.width);
        people::draw(
            &mut picture,
            ptz,
            &config.people,
            config.lens,
            config.person_height_m,
            tag_rows,
        );
        let capture_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .saturating_sub(capture.elapsed().as_nanos());

        if handle.keyframe_requested.swap(false, Ordering::Relaxed) {
            enc.force_idr();
        }
        let (mut data, is_idr) = match enc.encode(&picture) {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::error!(%error, frame_number, "encoding failed; frame lost");
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        if is_idr {
            let mut sps = None;
            let mut pps = None;
            for nal in annex_b_nal_units(&data) {
                match nal_kind(nal) {
                    nal_type::SPS => sps = Some(nal.to_vec()),
                    nal_type::PPS => pps = Some(nal.to_vec()),
                    _ => {}
                }
            }
            if let (Some(sps), Some(pps)) = (sps, pps) {
                parameter_sets = Some(ParameterSets { sps, pps });
            }
        } else if config.repeat_parameter_sets
            && let Some(sets) = &parameter_sets
        {
            let mut with_sets =
                Vec::with_capacity(data.len() + sets.sps.len() + sets.pps.len() + 8);
            for nal in [&sets.sps, &sets.pps] {
                with_sets.extend_from_slice(&[0, 0, 0, 1]);
                with_sets.extend_from_slice(nal);
            }
            with_sets.extend_from_slice(&data);
            data = with_sets;
        }

        let rtp_timestamp =
            rtp_base.wrapping_add((capture.duration_since(started).as_micros() * 9 / 100) as u32);
        if let Some(log) = frame_log.as_mut()
            && let Err(error) =
                writeln!(log, "{frame_number},{capture_unix_ns}").and_then(|()| log.flush())
        {
            tracing::error!(%error, "could not write the frame log; it stops here");
            frame_log = None;
        }
        let frame = EncodedFrame {
            frame_number,
            data: Bytes::from(data),
            rtp_timestamp,
            is_idr,
        };
        // An error only means every peer left between the check above and now.
        let _ = handle.frames.send(Arc::new(frame));
        frame_number = frame_number.wrapping_add(1);
    }
    tracing::debug!("encoder thread finished");
}
