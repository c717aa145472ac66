//! H.264 decoding on a dedicated thread, with FFmpeg's libavcodec (the default, feature
//! `libavcodec`) or openh264 (no system library needed); the pictures are converted to bgr8
//! with [`crate::media::convert`].
//!
//! The thread takes access units from one [`DropOldestQueue`] and puts decoded frames into
//! another. It never touches the network path. Loss (an access unit dropped before it, a gap
//! the depacketizer saw, a decode error) makes it ask for a keyframe through a callback the
//! caller rate-limits, and no picture that may show the damage is output:
//!
//! - libavcodec: [`crate::media::libavcodec`]'s loss guard withholds pictures until the next
//!   IDR or completed intra-refresh recovery point;
//! - openh264 ([`crate::media::openh264_decoder`], which guards it against SPS changes):
//!   access units are skipped until an IDR arrives or `resync_wait` passes.
//!
//! While nobody consumes frames ([`Demand`] false) and no JPEG pictures are wanted
//! ([`crate::media::jpeg`]), access units are not decoded: [`CatchUp`] keeps those since the
//! last complete refresh wave or IDR, and when a consumer appears they are decoded in one burst
//! and the current picture is output at once, without waiting for the camera.
//!
//! Every access unit that reaches the thread ends in exactly one counter: not decoded, awaiting
//! a keyframe, withheld, a decode error, caught up, or decoded ([`crate::stats::StreamStats`]).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openh264::formats::YUVSource as _;

use crate::media::buffer_pool::BufferPool;
use crate::media::catch_up::{self, CatchUp};
use crate::media::convert::{ColorSpec, I420Planes, i420_to_bgr8};
use crate::media::depacketizer::AccessUnit;
use crate::media::handoff::{Demand, DropOldestQueue};
use crate::media::jpeg::JpegTap;
#[cfg(feature = "libavcodec")]
use crate::media::libavcodec::{Decoded, LibavcodecDecoder, LibavcodecError};
use crate::media::openh264_decoder::Openh264Decoder;
use crate::stats::{StreamStats, bump};

/// How long the decoder thread waits for input before checking again for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Which H.264 decoder the thread uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderBackend {
    /// FFmpeg's libavcodec (needs the `libavcodec` feature and the system library).
    Libavcodec,
    /// openh264, compiled in.
    Openh264,
}

impl DecoderBackend {
    /// The accepted names, for messages.
    pub const ACCEPTED: &'static str = "libavcodec, openh264";

    /// libavcodec when this build has it, else openh264.
    pub fn default_for_build() -> Self {
        if cfg!(feature = "libavcodec") {
            Self::Libavcodec
        } else {
            Self::Openh264
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Libavcodec => "libavcodec",
            Self::Openh264 => "openh264",
        }
    }
}

impl FromStr for DecoderBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "libavcodec" if cfg!(feature = "libavcodec") => Ok(Self::Libavcodec),
            "libavcodec" => Err(
                "this build has no libavcodec (built without the `libavcodec` feature); use openh264"
                    .to_string(),
            ),
            "openh264" => Ok(Self::Openh264),
            other => Err(format!("{other:?} is not a decoder")),
        }
    }
}

/// One decoded picture, packed bgr8 without padding (`width * 3` bytes per row).
#[derive(Clone, Debug)]
pub struct DecodedFrame {
    /// `headroom` bytes for the consumer (the ROS node serializes the message header there,
    /// so the pixels are published without another copy), then the bgr8 picture.
    pub buffer: Vec<u8>,
    pub headroom: usize,
    pub width: u32,
    pub height: u32,
    pub rtp_timestamp: u32,
    /// When the frame's first RTP packet arrived.
    pub first_arrival: Instant,
    pub decoded_at: Instant,
}

impl DecodedFrame {
    /// The packed bgr8 picture.
    pub fn bgr(&self) -> &[u8] {
        self.buffer.get(self.headroom..).unwrap_or_default()
    }
}

/// The decoder could not be created or a picture not converted.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("could not create the openh264 decoder: {0}")]
    Create(String),
    #[cfg(feature = "libavcodec")]
    #[error(transparent)]
    Libavcodec(#[from] LibavcodecError),
    #[error("could not start the decoder thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Settings of the decoder thread.
#[derive(Clone, Copy, Debug)]
pub struct DecoderSettings {
    pub backend: DecoderBackend,
    pub color: ColorSpec,
    /// openh264: after a gap, skip frames until an IDR for at most this long, then decode
    /// anyway. (libavcodec waits for an IDR or a completed recovery point, however long.)
    pub resync_wait: Duration,
    /// Bytes left free before the pixels of every [`DecodedFrame`] (0 for none).
    pub headroom_bytes: usize,
}

/// Where the decoder thread's frames go, and what it tells its owner.
pub struct DecoderOutput {
    pub frames: Arc<DropOldestQueue<DecodedFrame>>,
    /// Pixel buffers come from here (give them back once a frame is consumed).
    pub buffers: Arc<BufferPool>,
    pub stats: Arc<StreamStats>,
    /// Whether bgr8 frames are wanted.
    pub wanted: Demand,
    /// JPEG pictures for `image_raw/compressed`, taken from the decoded planes while wanted
    /// (decoding goes on for them alone when no bgr8 frames are wanted).
    pub jpeg: Option<JpegTap>,
    /// Asks the camera for a keyframe; the caller rate-limits it.
    pub on_keyframe_needed: Box<dyn Fn() + Send>,
}

/// Starts the decoder thread. It ends when `input` is closed and drained.
pub fn spawn(
    settings: DecoderSettings,
    input: Arc<DropOldestQueue<AccessUnit>>,
    output: DecoderOutput,
) -> Result<JoinHandle<()>, DecoderError> {
    let backend = Backend::new(settings.backend)?;
    std::thread::Builder::new()
        .name("h264-decode".to_string())
        .spawn(move || {
            let mut worker = Worker {
                settings,
                backend,
                output,
                input_drops_seen: 0,
                idle: false,
                catch_up: CatchUp::new(catch_up::DEFAULT_MAX_BYTES),
                chain_broken: false,
            };
            while let Ok(next) = input.pop_blocking(POLL_INTERVAL) {
                if let Some(au) = next {
                    let dropped = input.dropped();
                    worker.handle(au, dropped);
                }
            }
            // The session ended: what was kept for a consumer was never decoded.
            let kept = worker.catch_up.clear();
            worker.count_not_decoded(kept);
            tracing::debug!("decoder thread finished");
        })
        .map_err(DecoderError::Thread)
}

/// The decoder the thread runs, with the state its loss handling needs.
enum Backend {
    Openh264 {
        decoder: Box<Openh264Decoder>,
        /// Set while skipping frames after a gap, waiting for an IDR.
        resync_since: Option<Instant>,
    },
    #[cfg(feature = "libavcodec")]
    Libavcodec(Box<LibavcodecDecoder>),
}

impl Backend {
    fn new(kind: DecoderBackend) -> Result<Self, DecoderError> {
        match kind {
            DecoderBackend::Openh264 => Ok(Self::Openh264 {
                decoder: Box::new(Openh264Decoder::new()?),
                resync_since: None,
            }),
            #[cfg(feature = "libavcodec")]
            DecoderBackend::Libavcodec => Ok(Self::Libavcodec(Box::new(LibavcodecDecoder::new()?))),
            #[cfg(not(feature = "libavcodec"))]
            DecoderBackend::Libavcodec => Err(DecoderError::Create(
                "this build has no libavcodec; set decoder to openh264".to_string(),
            )),
        }
    }
}

/// What decoding one access unit gave.
enum Outcome {
    /// A picture converted into this buffer.
    Frame {
        buffer: Vec<u8>,
        width: u32,
        height: u32,
    },
    /// A picture, but only JPEG wanted it (bgr8 was not made).
    JpegOnly { width: u32, height: u32 },
    /// No picture (parameter sets only, or waiting for a decodable start).
    Nothing,
    /// A picture that may show damage was not output (libavcodec's loss guard).
    #[cfg_attr(not(feature = "libavcodec"), allow(dead_code))]
    Withheld,
    /// The decoder or the conversion failed; already logged.
    Failed,
}

struct Worker {
    settings: DecoderSettings,
    backend: Backend,
    output: DecoderOutput,
    input_drops_seen: u64,
    /// Access units were not decoded because nobody wanted frames.
    idle: bool,
    /// While idle: what a new consumer's first picture needs.
    catch_up: CatchUp,
    /// The chain of references is broken (idle with nothing kept): the next access unit is
    /// decoded as after a loss.
    chain_broken: bool,
}

impl Worker {
    fn handle(&mut self, au: AccessUnit, input_drops: u64) {
        // Access units dropped before this one (by the queue, or by the depacketizer after a
        // packet loss): its references may be gone.
        let after_loss = input_drops != self.input_drops_seen || au.after_gap;
        self.input_drops_seen = input_drops;
        let jpeg_wanted = self.output.jpeg.as_ref().is_some_and(JpegTap::is_wanted);
        let wanted = self.output.wanted.get() || jpeg_wanted;
        let was_idle = std::mem::take(&mut self.idle);
        if !wanted || was_idle {
            let released = self.catch_up.keep(au, after_loss);
            self.count_not_decoded(released);
            if !wanted {
                self.idle = true;
            } else if !self.burst() {
                // A consumer arrived with nothing kept to start from: start again at the next
                // whole picture, and ask for one.
                self.chain_broken = true;
            }
            return;
        }
        let lost = after_loss || std::mem::take(&mut self.chain_broken);
        self.decode(au, lost);
    }

    /// Counts access units that will never be decoded (nobody wanted pictures then).
    fn count_not_decoded(&self, count: u64) {
        self.output
            .stats
            .frames_not_decoded
            .fetch_add(count, Ordering::Relaxed);
    }

    /// A consumer arrived: decodes the kept access units (the newest is the one that arrived
    /// with the consumer) as one chain from a start point, and outputs only the newest picture
    /// (the others count as `frames_caught_up`). `false` when nothing was kept.
    fn burst(&mut self) -> bool {
        let started = Instant::now();
        let catch_up::Burst {
            parameter_sets,
            units,
        } = self.catch_up.take();
        let Some(count) = units.len().checked_sub(1) else {
            return false;
        };
        self.restart_for_burst(&parameter_sets);
        let mut units = units.into_iter();
        for au in units.by_ref().take(count) {
            self.decode_silently(&au);
        }
        self.output
            .stats
            .frames_caught_up
            .fetch_add(count as u64, Ordering::Relaxed);
        if let Some(newest) = units.next() {
            self.decode(newest, false);
        }
        tracing::debug!(
            access_units = count + 1,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "a consumer arrived: decoded the kept access units up to the current picture"
        );
        true
    }

    /// Prepares the decoder for a burst that starts at a start point: a fresh start, with the
    /// parameter sets seen while idle.
    fn restart_for_burst(&mut self, parameter_sets: &[u8]) {
        match &mut self.backend {
            Backend::Openh264 {
                decoder,
                resync_since,
            } => {
                *resync_since = None;
                // A fresh decoder: the old one's references are from before the idle time.
                match Openh264Decoder::new() {
                    Ok(fresh) => **decoder = fresh,
                    Err(error) => tracing::debug!(%error, "could not renew openh264; reusing it"),
                }
                if !parameter_sets.is_empty() {
                    let _ = decoder.decode(parameter_sets, |_| ());
                }
            }
            #[cfg(feature = "libavcodec")]
            Backend::Libavcodec(decoder) => {
                decoder.notify_loss();
                if !parameter_sets.is_empty() {
                    let _ = decoder.decode(parameter_sets);
                }
            }
        }
    }

    /// Decodes `au` only to move the decoder's references on: no picture is output.
    fn decode_silently(&mut self, au: &AccessUnit) {
        match &mut self.backend {
            Backend::Openh264 { decoder, .. } => {
                let _ = decoder.decode(&au.data, |_| ());
            }
            #[cfg(feature = "libavcodec")]
            Backend::Libavcodec(decoder) => {
                let _ = decoder.decode(&au.data);
            }
        }
    }

    /// Decodes `au` and outputs its picture; `lost`: data was lost (or not decoded) before it.
    fn decode(&mut self, au: AccessUnit, lost: bool) {
        let now = Instant::now();
        let outcome = match &mut self.backend {
            Backend::Openh264 {
                decoder,
                resync_since,
            } => {
                if lost && !au.is_idr {
                    resync_since.get_or_insert(now);
                    (self.output.on_keyframe_needed)();
                }
                if let Some(since) = *resync_since {
                    if au.is_idr || now.duration_since(since) >= self.settings.resync_wait {
                        *resync_since = None;
                    } else {
                        bump(&self.output.stats.frames_awaiting_keyframe);
                        return;
                    }
                }
                let (settings, output) = (&self.settings, &mut self.output);
                let decoded = decoder.decode(&au.data, |yuv| match planes_of(yuv) {
                    Some(planes) => deliver(settings, output, &planes, &au),
                    None => Outcome::Failed,
                });
                match decoded {
                    Ok(Some(outcome)) => outcome,
                    Ok(None) => Outcome::Nothing,
                    Err(error) => {
                        tracing::debug!(%error, "H.264 decode error; asking for a keyframe");
                        resync_since.get_or_insert(now);
                        (self.output.on_keyframe_needed)();
                        Outcome::Failed
                    }
                }
            }
            #[cfg(feature = "libavcodec")]
            Backend::Libavcodec(decoder) => {
                if lost {
                    decoder.notify_loss();
                }
                let outcome = match decoder.decode(&au.data) {
                    Ok(Decoded::Picture(planes)) => {
                        deliver(&self.settings, &mut self.output, &planes, &au)
                    }
                    Ok(Decoded::Nothing) => Outcome::Nothing,
                    Ok(Decoded::Withheld) => Outcome::Withheld,
                    Err(error) => {
                        tracing::debug!(%error, "H.264 decode error");
                        Outcome::Failed
                    }
                };
                if decoder.awaiting_recovery() {
                    (self.output.on_keyframe_needed)();
                }
                outcome
            }
        };
        let stats = &self.output.stats;
        let (buffer, width, height) = match outcome {
            Outcome::Frame {
                buffer,
                width,
                height,
            } => (buffer, width, height),
            Outcome::JpegOnly { width, height } => {
                bump(&stats.frames_decoded);
                stats.record_frame_size(width, height);
                return;
            }
            Outcome::Nothing => {
                bump(&stats.frames_awaiting_keyframe);
                return;
            }
            Outcome::Withheld => {
                bump(&stats.frames_withheld);
                return;
            }
            Outcome::Failed => {
                bump(&stats.decode_errors);
                return;
            }
        };
        bump(&stats.frames_decoded);
        stats.record_frame_size(width, height);
        let frame = DecodedFrame {
            buffer,
            headroom: self.settings.headroom_bytes,
            width,
            height,
            rtp_timestamp: au.rtp_timestamp,
            first_arrival: au.first_arrival,
            decoded_at: Instant::now(),
        };
        if self.output.frames.push(frame) {
            bump(&stats.frames_dropped);
            tracing::debug!("the consumer is behind: dropped the oldest decoded frame");
        }
    }
}

/// Hands a decoded picture to the JPEG tap when a JPEG picture is due, and converts it to
/// bgr8 when frames are wanted.
fn deliver(
    settings: &DecoderSettings,
    output: &mut DecoderOutput,
    planes: &I420Planes<'_>,
    au: &AccessUnit,
) -> Outcome {
    let now = Instant::now();
    if let Some(jpeg) = output.jpeg.as_mut().filter(|tap| tap.is_due(now))
        && jpeg.take(planes, au.rtp_timestamp, au.first_arrival, now)
    {
        bump(&output.stats.jpeg_dropped);
    }
    if !output.wanted.get() {
        return Outcome::JpegOnly {
            width: planes.width,
            height: planes.height,
        };
    }
    convert(settings, output, planes)
}

/// Converts a decoded picture to bgr8 into a pooled buffer with the consumer's headroom.
fn convert(settings: &DecoderSettings, output: &DecoderOutput, planes: &I420Planes<'_>) -> Outcome {
    let headroom = settings.headroom_bytes;
    let mut buffer = output.buffers.take(headroom + planes.bgr8_len());
    let bgr = buffer.get_mut(headroom..).unwrap_or_default();
    match i420_to_bgr8(planes, settings.color, bgr) {
        Ok(()) => Outcome::Frame {
            buffer,
            width: planes.width,
            height: planes.height,
        },
        Err(error) => {
            tracing::debug!(%error, "the decoded picture could not be converted to bgr8");
            output.buffers.give_back(buffer);
            Outcome::Failed
        }
    }
}

/// The planes of an openh264 picture; `None` if a dimension does not fit `u32`.
pub fn planes_of<'a>(yuv: &'a openh264::decoder::DecodedYUV<'a>) -> Option<I420Planes<'a>> {
    let (width, height) = yuv.dimensions();
    let (y_stride, u_stride, v_stride) = yuv.strides();
    Some(I420Planes {
        y: yuv.y(),
        u: yuv.u(),
        v: yuv.v(),
        y_stride: u32::try_from(y_stride).ok()?,
        u_stride: u32::try_from(u_stride).ok()?,
        v_stride: u32::try_from(v_stride).ok()?,
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
    })
}
