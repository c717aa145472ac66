//! H.264 decoding (openh264) on a dedicated thread; the pictures are converted to bgr8 with
//! [`crate::media::convert`].
//!
//! The thread takes access units from one [`DropOldestQueue`] and puts decoded frames into
//! another. It never touches the network path. When an access unit was dropped before it, or
//! the decoder reports an error, it asks for a keyframe (through a callback the caller
//! rate-limits) and skips frames that reference missing pictures until an IDR arrives or
//! `resync_wait` passes.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource as _;

use crate::media::buffer_pool::BufferPool;
use crate::media::convert::{ColorSpec, I420Planes, i420_to_bgr8};
use crate::media::depacketizer::AccessUnit;
use crate::media::handoff::DropOldestQueue;
use crate::stats::{StreamStats, bump};

/// How long the decoder thread waits for input before checking again for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

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
            Ok(Some(yuv)) => planes_of(&yuv).map(|planes| {
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
