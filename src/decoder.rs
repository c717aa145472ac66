//! H.264 decoding (openh264) and I420 → bgr8 conversion (`yuv`), on a dedicated thread.
//!
//! The thread takes access units from one [`DropOldestQueue`] and puts decoded frames into
//! another. It never touches the network path. When an access unit was dropped before it, or
//! the decoder reports an error, it asks for a keyframe (through a callback the caller
//! rate-limits) and skips frames that reference missing pictures until an IDR arrives or
//! `resync_wait` passes.

use std::str::FromStr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource as _;
use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

use crate::buffer_pool::BufferPool;
use crate::depacketizer::AccessUnit;
use crate::frame_queue::DropOldestQueue;
use crate::stats::{StreamStats, bump};

/// How long the decoder thread waits for input before checking again for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Luma/chroma range of the stream (openh264 does not expose the VUI, so it is configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorRange {
    Limited,
    Full,
}

/// YUV → RGB matrix of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMatrix {
    Bt601,
    Bt709,
}

/// A colour parameter had a value outside its accepted set.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not one of the accepted values: {accepted}")]
pub struct UnknownColorValue {
    pub value: String,
    pub accepted: &'static str,
}

impl FromStr for ColorRange {
    type Err = UnknownColorValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "limited" => Ok(Self::Limited),
            "full" => Ok(Self::Full),
            _ => Err(UnknownColorValue {
                value: s.to_string(),
                accepted: "limited, full",
            }),
        }
    }
}

impl FromStr for ColorMatrix {
    type Err = UnknownColorValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bt601" => Ok(Self::Bt601),
            "bt709" => Ok(Self::Bt709),
            _ => Err(UnknownColorValue {
                value: s.to_string(),
                accepted: "bt601, bt709",
            }),
        }
    }
}

/// How decoded pictures are converted to bgr8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorSpec {
    pub range: ColorRange,
    pub matrix: ColorMatrix,
}

impl Default for ColorSpec {
    fn default() -> Self {
        Self {
            range: ColorRange::Limited,
            matrix: ColorMatrix::Bt601,
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
    #[error("could not start the decoder thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Settings of the decoder thread.
#[derive(Clone, Copy, Debug)]
pub struct DecoderSettings {
    pub color: ColorSpec,
    /// After a gap, skip frames until an IDR for at most this long, then decode anyway.
    pub resync_wait: Duration,
    /// Bytes left free before the pixels of every [`DecodedFrame`] (0 for none).
    pub headroom_bytes: usize,
}

/// Starts the decoder thread. It ends when `input` is closed and drained. Pixel buffers come
/// from `buffers` (give them back there once a frame is consumed).
pub fn spawn(
    settings: DecoderSettings,
    input: Arc<DropOldestQueue<AccessUnit>>,
    output: Arc<DropOldestQueue<DecodedFrame>>,
    buffers: Arc<BufferPool>,
    stats: Arc<StreamStats>,
    on_keyframe_needed: Box<dyn Fn() + Send>,
) -> Result<JoinHandle<()>, DecoderError> {
    let decoder = new_decoder()?;
    std::thread::Builder::new()
        .name("h264-decode".to_string())
        .spawn(move || {
            let mut worker = Worker {
                settings,
                decoder,
                output,
                buffers,
                stats,
                on_keyframe_needed,
                input_drops_seen: 0,
                resync_since: None,
            };
            while let Ok(next) = input.pop_blocking(POLL_INTERVAL) {
                if let Some(au) = next {
                    let dropped = input.dropped();
                    worker.handle(au, dropped);
                }
            }
            tracing::debug!("decoder thread finished");
        })
        .map_err(DecoderError::Thread)
}

/// An openh264 decoder configured as the decoder thread uses it (no flush after each frame).
pub fn new_decoder() -> Result<Decoder, DecoderError> {
    Decoder::with_api_config(
        OpenH264API::from_source(),
        DecoderConfig::new().flush_after_decode(Flush::NoFlush),
    )
    .map_err(|e| DecoderError::Create(e.to_string()))
}

struct Worker {
    settings: DecoderSettings,
    decoder: Decoder,
    output: Arc<DropOldestQueue<DecodedFrame>>,
    buffers: Arc<BufferPool>,
    stats: Arc<StreamStats>,
    on_keyframe_needed: Box<dyn Fn() + Send>,
    input_drops_seen: u64,
    /// Set while skipping frames after a gap, waiting for an IDR.
    resync_since: Option<Instant>,
}

impl Worker {
    fn start_resync(&mut self, now: Instant) {
        if self.resync_since.is_none() {
            self.resync_since = Some(now);
        }
        (self.on_keyframe_needed)();
    }

    fn handle(&mut self, au: AccessUnit, input_drops: u64) {
        let now = Instant::now();
        if input_drops != self.input_drops_seen {
            // Access units were dropped before this one: its references may be gone.
            self.input_drops_seen = input_drops;
            self.start_resync(now);
        }
        if au.after_gap && !au.is_idr {
            self.start_resync(now);
        }
        if let Some(since) = self.resync_since {
            if au.is_idr || now.duration_since(since) >= self.settings.resync_wait {
                self.resync_since = None;
            } else {
                return;
            }
        }

        let converted = match self.decoder.decode(&au.data) {
            Ok(Some(yuv)) => I420Planes::from_decoded(&yuv).map(|planes| {
                let headroom = self.settings.headroom_bytes;
                let mut buffer = self.buffers.take(headroom + planes.bgr8_len());
                let bgr = buffer.get_mut(headroom..).unwrap_or_default();
                let result = i420_to_bgr8(&planes, self.settings.color, bgr);
                (result, buffer, planes.width, planes.height)
            }),
            Ok(None) => return,
            Err(error) => {
                bump(&self.stats.decode_errors);
                tracing::debug!(%error, "H.264 decode error; asking for a keyframe");
                self.start_resync(now);
                return;
            }
        };
        let Some((Ok(()), buffer, width, height)) = converted else {
            bump(&self.stats.decode_errors);
            tracing::debug!("the decoded picture could not be converted to bgr8");
            return;
        };
        bump(&self.stats.frames_decoded);
        self.stats.record_frame_size(width, height);
        let frame = DecodedFrame {
            buffer,
            headroom: self.settings.headroom_bytes,
            width,
            height,
            rtp_timestamp: au.rtp_timestamp,
            first_arrival: au.first_arrival,
            decoded_at: Instant::now(),
        };
        if self.output.push(frame) {
            bump(&self.stats.frames_dropped);
            tracing::debug!("the consumer is behind: dropped the oldest decoded frame");
        }
    }
}

/// The three planes of a decoded I420 picture, with their strides.
#[derive(Clone, Copy, Debug)]
pub struct I420Planes<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: u32,
    pub u_stride: u32,
    pub v_stride: u32,
    pub width: u32,
    pub height: u32,
}

impl<'a> I420Planes<'a> {
    /// The planes of an openh264 picture; `None` if a dimension does not fit `u32`.
    pub fn from_decoded(yuv: &'a openh264::decoder::DecodedYUV<'a>) -> Option<Self> {
        let (width, height) = yuv.dimensions();
        let (y_stride, u_stride, v_stride) = yuv.strides();
        Some(Self {
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

    /// Bytes of the packed bgr8 picture.
    pub fn bgr8_len(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }
}

/// Converts an I420 picture to packed bgr8 (`width * 3` bytes per row) in `bgr`, which must
/// hold exactly [`I420Planes::bgr8_len`] bytes.
pub fn i420_to_bgr8(
    planes: &I420Planes<'_>,
    color: ColorSpec,
    bgr: &mut [u8],
) -> Result<(), yuv::YuvError> {
    let image = YuvPlanarImage {
        y_plane: planes.y,
        y_stride: planes.y_stride,
        u_plane: planes.u,
        u_stride: planes.u_stride,
        v_plane: planes.v,
        v_stride: planes.v_stride,
        width: planes.width,
        height: planes.height,
    };
    let range = match color.range {
        ColorRange::Limited => YuvRange::Limited,
        ColorRange::Full => YuvRange::Full,
    };
    let matrix = match color.matrix {
        ColorMatrix::Bt601 => YuvStandardMatrix::Bt601,
        ColorMatrix::Bt709 => YuvStandardMatrix::Bt709,
    };
    yuv::yuv420_to_bgr(&image, bgr, planes.width * 3, range, matrix)
}
