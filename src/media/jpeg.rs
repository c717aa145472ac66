//! JPEG pictures for `image_raw/compressed`, encoded from the decoder's I420 planes with
//! libjpeg-turbo (the `turbojpeg` crate) on a thread of their own.
//!
//! The decoder thread hands pictures over through a [`JpegTap`]: only while somebody wants
//! JPEG ([`Demand`]) and at most `max_rate_hz` times per second, it copies the planes into a
//! one-slot drop-oldest queue (a copy of 1.5 bytes per pixel, no colour conversion). The
//! encoder thread ([`spawn_encoder`]) turns them into JPEG:
//! - BT.601 full range is what JPEG (JFIF) means by YCbCr: the planes are compressed as they are;
//! - BT.601 limited range (what H.264 cameras send) is stretched to full range first, through
//!   two lookup tables, in place;
//! - BT.709 goes through bgr8 (the matrix differs, a lookup table cannot fix it).
//!
//! A slow encoder never holds up decoding: the tap's slot keeps only the newest picture, and
//! pictures it replaced are counted as `jpeg_dropped`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use turbojpeg::{Compressor, Image, OutputBuf, PixelFormat, Subsamp, YuvPlanesImage};

use crate::media::convert::{ColorMatrix, ColorRange, ColorSpec, I420Planes, i420_to_bgr8};
use crate::media::handoff::{Demand, DropOldestQueue};
use crate::stats::{StreamStats, bump};

/// How long the encoder thread waits for input before checking again for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Accepted `quality` values.
pub const QUALITY_RANGE: std::ops::RangeInclusive<u8> = 1..=100;

/// How the JPEG pictures are made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JpegSettings {
    /// libjpeg quality, 1–100.
    pub quality: u8,
    /// At most this many pictures per second are encoded (a picture is taken when it is due).
    pub max_rate_hz: f64,
    /// The stream's colour (the same as for bgr8).
    pub color: ColorSpec,
}

/// A decoded picture waiting to be encoded: tightly packed planes.
#[derive(Debug)]
pub struct YuvPicture {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    width: u32,
    height: u32,
    rtp_timestamp: u32,
    first_arrival: Instant,
}

/// One JPEG picture.
#[derive(Clone, Debug)]
pub struct JpegPicture {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub rtp_timestamp: u32,
    /// When the frame's first RTP packet arrived (its stamp, as for `image_raw`).
    pub first_arrival: Instant,
}

/// A JPEG picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    #[error("libjpeg-turbo failed: {0}")]
    Turbojpeg(#[from] turbojpeg::Error),
    #[error("the picture could not be converted to bgr8 for JPEG: {0}")]
    Convert(#[from] yuv::YuvError),
    #[error("could not start the JPEG encoder thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The decoder thread's side: decides which pictures are due and hands them over.
pub struct JpegTap {
    demand: Demand,
    queue: Arc<DropOldestQueue<YuvPicture>>,
    /// `max_rate_hz` may change while the stream runs.
    settings: watch::Receiver<JpegSettings>,
    interval: Duration,
    next_due: Option<Instant>,
}

fn interval_of(max_rate_hz: f64) -> Duration {
    if max_rate_hz > 0.0 {
        Duration::try_from_secs_f64(1.0 / max_rate_hz).unwrap_or(Duration::ZERO)
    } else {
        Duration::ZERO
    }
}

impl JpegTap {
    /// A tap into `queue` (capacity 1 keeps only the newest), active while `demand` is set,
    /// at most `settings.max_rate_hz` times per second.
    pub fn new(
        demand: Demand,
        queue: Arc<DropOldestQueue<YuvPicture>>,
        mut settings: watch::Receiver<JpegSettings>,
    ) -> Self {
        let interval = interval_of(settings.borrow_and_update().max_rate_hz);
        Self {
            demand,
            queue,
            settings,
            interval,
            next_due: None,
        }
    }

    /// Whether anybody wants JPEG pictures now.
    pub fn is_wanted(&self) -> bool {
        self.demand.get()
    }

    /// Whether a picture decoded at `now` should be encoded. A quarter of the interval (at most
    /// 10 ms) of slack keeps the rate at `max_rate_hz` when frames arrive with jitter.
    pub fn is_due(&self, now: Instant) -> bool {
        let slack = (self.interval / 4).min(Duration::from_millis(10));
        self.is_wanted() && self.next_due.is_none_or(|due| now + slack >= due)
    }

    /// Copies a due picture's planes for the encoder; returns whether one was dropped to make
    /// room (the encoder is behind).
    pub fn take(
        &mut self,
        planes: &I420Planes<'_>,
        rtp_timestamp: u32,
        first_arrival: Instant,
        now: Instant,
    ) -> bool {
        if self.settings.has_changed().unwrap_or(false) {
            self.interval = interval_of(self.settings.borrow_and_update().max_rate_hz);
        }
        self.next_due = Some(match self.next_due {
            Some(due) if due + self.interval > now => due + self.interval,
            _ => now + self.interval,
        });
        let (width, height) = (planes.width as usize, planes.height as usize);
        let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
        let picture = YuvPicture {
            y: packed_plane(planes.y, planes.y_stride as usize, width, height),
            u: packed_plane(
                planes.u,
                planes.u_stride as usize,
                chroma_width,
                chroma_height,
            ),
            v: packed_plane(
                planes.v,
                planes.v_stride as usize,
                chroma_width,
                chroma_height,
            ),
            width: planes.width,
            height: planes.height,
            rtp_timestamp,
            first_arrival,
        };
        self.queue.push(picture)
    }
}

/// The rows of a plane without their padding (missing bytes, which a decoder never leaves,
/// become black rather than a panic).
fn packed_plane(plane: &[u8], stride: usize, width: usize, rows: usize) -> Vec<u8> {
    let mut out = vec![0; width * rows];
    for (row, dst) in out.chunks_exact_mut(width.max(1)).enumerate() {
        let start = row * stride;
        if let Some(src) = plane.get(start..start + width) {
            dst.copy_from_slice(src);
        }
    }
    out
}

/// Makes JPEG pictures from [`YuvPicture`]s.
pub struct JpegEncoder {
    compressor: Compressor,
    color: ColorSpec,
    luma_to_full: [u8; 256],
    chroma_to_full: [u8; 256],
    bgr: Vec<u8>,
}

impl JpegEncoder {
    /// A new quality (1–100) from the next picture on.
    pub fn set_quality(&mut self, quality: u8) -> Result<(), JpegError> {
        self.compressor.set_quality(i32::from(quality))?;
        Ok(())
    }

    pub fn new(settings: &JpegSettings) -> Result<Self, JpegError> {
        let mut compressor = Compressor::new()?;
        compressor.set_quality(i32::from(settings.quality))?;
        compressor.set_subsamp(Subsamp::Sub2x2)?;
        // Limited range: luma 16–235 and chroma 16–240 (centred on 128) to 0–255.
        let stretch = |value: usize, offset: f64, scale: f64| -> u8 {
            ((value as f64 - offset) * scale + if offset == 128.0 { 128.0 } else { 0.0 })
                .round()
                .clamp(0.0, 255.0) as u8
        };
        Ok(Self {
            compressor,
            color: settings.color,
            luma_to_full: std::array::from_fn(|v| stretch(v, 16.0, 255.0 / 219.0)),
            chroma_to_full: std::array::from_fn(|v| stretch(v, 128.0, 255.0 / 224.0)),
            bgr: Vec::new(),
        })
    }

    /// Encodes one picture (its planes may be changed in place).
    pub fn encode(&mut self, picture: &mut YuvPicture) -> Result<Vec<u8>, JpegError> {
        let (width, height) = (picture.width as usize, picture.height as usize);
        let chroma_width = width.div_ceil(2);
        let mut output = OutputBuf::new_owned();
        match (self.color.matrix, self.color.range) {
            (ColorMatrix::Bt601, range) => {
                if range == ColorRange::Limited {
                    picture
                        .y
                        .iter_mut()
                        .for_each(|v| *v = self.luma_to_full[*v as usize]);
                    for plane in [&mut picture.u, &mut picture.v] {
                        plane
                            .iter_mut()
                            .for_each(|v| *v = self.chroma_to_full[*v as usize]);
                    }
                }
                let image = YuvPlanesImage {
                    y_plane: &picture.y[..],
                    u_plane: &picture.u[..],
                    v_plane: &picture.v[..],
                    width,
                    height,
                    y_stride: width,
                    u_stride: chroma_width,
                    v_stride: chroma_width,
                    subsamp: Subsamp::Sub2x2,
                };
                self.compressor.compress_yuv_planes(&image, &mut output)?;
            }
            (ColorMatrix::Bt709, _) => {
                let planes = I420Planes {
                    y: &picture.y,
                    u: &picture.u,
                    v: &picture.v,
                    y_stride: picture.width,
                    u_stride: chroma_width as u32,
                    v_stride: chroma_width as u32,
                    width: picture.width,
                    height: picture.height,
                };
                self.bgr.resize(planes.bgr8_len(), 0);
                i420_to_bgr8(&planes, self.color, &mut self.bgr)?;
                let image = Image {
                    pixels: &self.bgr[..],
                    width,
                    pitch: width * 3,
                    height,
                    format: PixelFormat::BGR,
                };
                self.compressor.compress(image, &mut output)?;
            }
        }
        Ok(output.to_vec())
    }
}

/// Starts the JPEG encoder thread: pictures from `input`, JPEG into `output`. It ends when
/// `input` is closed and drained.
pub fn spawn_encoder(
    mut settings: watch::Receiver<JpegSettings>,
    input: Arc<DropOldestQueue<YuvPicture>>,
    output: Arc<DropOldestQueue<JpegPicture>>,
    stats: Arc<StreamStats>,
) -> Result<JoinHandle<()>, JpegError> {
    let mut encoder = JpegEncoder::new(&settings.borrow_and_update())?;
    std::thread::Builder::new()
        .name("jpeg-encode".to_string())
        .spawn(move || {
            let mut warned = false;
            while let Ok(next) = input.pop_blocking(POLL_INTERVAL) {
                let Some(mut picture) = next else { continue };
                if settings.has_changed().unwrap_or(false) {
                    let quality = settings.borrow_and_update().quality;
                    if let Err(error) = encoder.set_quality(quality) {
                        tracing::warn!(%error, quality, "could not change the JPEG quality; keeping the previous one");
                    }
                }
                match encoder.encode(&mut picture) {
                    Ok(data) => {
                        bump(&stats.jpeg_encoded);
                        let jpeg = JpegPicture {
                            data,
                            width: picture.width,
                            height: picture.height,
                            rtp_timestamp: picture.rtp_timestamp,
                            first_arrival: picture.first_arrival,
                        };
                        if output.push(jpeg) {
                            bump(&stats.jpeg_dropped);
                        }
                    }
                    Err(error) => {
                        bump(&stats.jpeg_errors);
                        if !std::mem::replace(&mut warned, true) {
                            tracing::error!(%error, "a JPEG picture could not be encoded; image_raw/compressed skips such pictures (further failures are counted as jpeg_errors)");
                        }
                    }
                }
            }
            tracing::debug!("JPEG encoder thread finished");
        })
        .map_err(JpegError::Thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(range: ColorRange, matrix: ColorMatrix) -> JpegSettings {
        JpegSettings {
            quality: 90,
            max_rate_hz: 10.0,
            color: ColorSpec { range, matrix },
        }
    }

    /// A 64x32 limited-range picture: black left half, white right half, neutral chroma.
    fn picture() -> YuvPicture {
        let (width, height) = (64usize, 32usize);
        let y = (0..width * height)
            .map(|i| if i % width < width / 2 { 16 } else { 235 })
            .collect();
        YuvPicture {
            y,
            u: vec![128; 32 * 16],
            v: vec![128; 32 * 16],
            width: width as u32,
            height: height as u32,
            rtp_timestamp: 0,
            first_arrival: Instant::now(),
        }
    }

    fn decode_gray(jpeg: &[u8]) -> turbojpeg::Image<Vec<u8>> {
        turbojpeg::decompress(jpeg, PixelFormat::GRAY).expect("decodes")
    }

    #[test]
    fn limited_range_is_stretched_to_jpeg_full_range() {
        for matrix in [ColorMatrix::Bt601, ColorMatrix::Bt709] {
            let mut encoder =
                JpegEncoder::new(&settings(ColorRange::Limited, matrix)).expect("encoder");
            let jpeg = encoder.encode(&mut picture()).expect("encodes");
            let gray = decode_gray(&jpeg);
            assert_eq!((gray.width, gray.height), (64, 32));
            let (black, white) = (gray.pixels[16 * 64 + 8], gray.pixels[16 * 64 + 56]);
            assert!(black <= 4, "{matrix:?}: black came out as {black}");
            assert!(white >= 251, "{matrix:?}: white came out as {white}");
        }
    }

    #[test]
    fn full_range_planes_pass_unchanged() {
        let mut encoder =
            JpegEncoder::new(&settings(ColorRange::Full, ColorMatrix::Bt601)).expect("encoder");
        let jpeg = encoder.encode(&mut picture()).expect("encodes");
        let gray = decode_gray(&jpeg);
        let (black, white) = (gray.pixels[16 * 64 + 8], gray.pixels[16 * 64 + 56]);
        assert!(
            (14..=18).contains(&black) && (233..=237).contains(&white),
            "{black} {white}"
        );
    }

    #[test]
    fn the_tap_keeps_the_rate_with_jittery_frames() {
        let queue = DropOldestQueue::new(1);
        let rate = watch::channel(settings(ColorRange::Limited, ColorMatrix::Bt601)).1;
        let mut tap = JpegTap::new(Demand::new(true), queue.clone(), rate.clone());
        let planes = I420Planes {
            y: &[0; 64 * 32],
            u: &[128; 32 * 16],
            v: &[128; 32 * 16],
            y_stride: 64,
            u_stride: 32,
            v_stride: 32,
            width: 64,
            height: 32,
        };
        let start = Instant::now();
        let mut taken = 0;
        // 30 fps with ±3 ms of jitter for 10 s.
        for frame in 0..300u64 {
            let jitter = [0, 3, 1, 2][frame as usize % 4];
            let now = start + Duration::from_millis(frame * 100 / 3 + jitter);
            if tap.is_due(now) {
                tap.take(&planes, 0, now, now);
                queue.clear();
                taken += 1;
            }
        }
        assert!(
            (99..=101).contains(&taken),
            "{taken} pictures in 10 s at 10 Hz"
        );
        // Nobody wants JPEG: nothing is due.
        let idle = JpegTap::new(Demand::new(false), queue, rate);
        assert!(!idle.is_due(start));
    }
}
