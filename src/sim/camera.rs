//! The simulated camera's live encoder: renders the scene at a fixed rate, encodes it with
//! openh264 and fans the access units out to every connected peer.
//!
//! It runs on its own thread and only while at least one peer listens. Stream-quality and
//! screen changes from the gRPC services are applied to the live encoder (a new encoder at the
//! new size or bitrate, starting with an IDR). Peers ask for keyframes through
//! [`CameraHandle::request_keyframe`].

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode,
};
use openh264::formats::YUVSlices;
use tokio::sync::broadcast;

use crate::media::depacketizer::nal_type;
use crate::shutdown::CancellationToken;
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
    /// Prepend SPS/PPS to every access unit instead of sending them only with IDRs.
    pub repeat_parameter_sets: bool,
    /// Write `frame_number,send_time_unix_ns` (capture time) for every frame.
    pub frame_log: Option<PathBuf>,
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
    #[error("could not create the openh264 encoder")]
    Encoder,
    #[error("openh264 failed to encode a frame: {0}")]
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

fn new_encoder(settings: &StreamSettings, fps: u32) -> Option<Encoder> {
    let bitrate = u32::try_from(settings.target_bitrate_bps.clamp(50_000, 50_000_000)).ok()?;
    let idr_interval = u32::try_from(settings.idr_interval_frames.max(0)).ok()?;
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .skip_frames(false)
        .profile(Profile::Baseline)
        .complexity(Complexity::Low)
        .scene_change_detect(false)
        .background_detection(false)
        .adaptive_quantization(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(idr_interval))
        .num_threads(1);
    match Encoder::with_api_config(OpenH264API::from_source(), config) {
        Ok(encoder) => Some(encoder),
        Err(error) => {
            tracing::error!(%error, "could not create the openh264 encoder; no video until the stream parameters change");
            None
        }
    }
}

/// Encodes one picture; returns the Annex-B access unit (empty when the encoder skipped it)
/// and whether it is an IDR.
fn encode_picture(
    encoder: &mut Encoder,
    picture: &I420Frame,
) -> Result<(Vec<u8>, bool), openh264::Error> {
    let (width, height) = (picture.width as usize, picture.height as usize);
    let (y, u, v) = picture.planes();
    let source = YUVSlices::new((y, u, v), (width, height), (width, width / 2, width / 2));
    let bitstream = encoder.encode(&source)?;
    Ok((bitstream.to_vec(), bitstream.frame_type() == FrameType::IDR))
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
    let mut encoder = new_encoder(settings, fps).ok_or(CameraError::Encoder)?;
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
        let (data, is_idr) = encode_picture(&mut encoder, &picture)
            .map_err(|e| CameraError::Encode(e.to_string()))?;
        clip.push(EncodedFrame {
            frame_number,
            data: Bytes::from(data),
            rtp_timestamp: frame_number * (90_000 / fps),
            is_idr,
        });
    }
    Ok(clip)
}

/// Splits an Annex-B buffer into NAL units (without start codes).
fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    openh264::nal_units(data).map(|nal| {
        let start = nal
            .iter()
            .position(|&b| b != 0)
            .map_or(nal.len(), |i| i + 1);
        &nal[start.min(nal.len())..]
    })
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
    let mut encoder: Option<Encoder> = None;
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
                "applying new screen / stream parameters to the live encoder");
            encoder = None;
        }
        if picture.width != screen.width & !1 || picture.height != screen.height & !1 {
            picture = I420Frame::new(screen.width, screen.height);
            encoder = None;
        }
        if encoder.is_none() {
            encoder = new_encoder(&settings, fps);
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
        let elapsed_secs = capture.duration_since(started).as_secs_f32();
        scene::render(&mut picture, ptz, &screen.name, elapsed_secs, frame_number);
        let capture_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .saturating_sub(capture.elapsed().as_nanos());

        if handle.keyframe_requested.swap(false, Ordering::Relaxed) {
            enc.force_intra_frame();
        }
        let (mut data, is_idr) = match encode_picture(enc, &picture) {
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
            for nal in nal_units(&data) {
                match nal.first().map(|h| h & 0x1F) {
                    Some(nal_type::SPS) => sps = Some(nal.to_vec()),
                    Some(nal_type::PPS) => pps = Some(nal.to_vec()),
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
