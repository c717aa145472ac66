//! Harness of the `decode` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): arbitrary access units through the decoder
//! thread's path, openh264 behind the guard the thread uses (`Openh264Decoder`), then the planes
//! of each picture (`planes_of`), a pixel buffer from the pool with the headroom, and the I420
//! to bgr8 conversion; then (feature `libavcodec`) the same access units through libavcodec
//! with its loss guard (the H.264 syntax reader of `media::h264`, a loss reported every eighth
//! access unit) and the same conversion.
//!
//! Input: a settings byte (bit 0 full range, bit 1 BT.709, bits 2–7 headroom in 8 bytes), then
//! records of an access-unit length (u16 BE) and the Annex-B bytes.
//!
//! Properties: every picture the decoder returns has planes that convert (the decoder thread
//! would otherwise drop it as a decode error), and the bgr8 picture is exactly
//! `width * height * 3` bytes after the headroom.
#![allow(dead_code)]

use std::time::Instant;

use spot_ptz_stream::media::buffer_pool::BufferPool;
use spot_ptz_stream::media::convert::{ColorMatrix, ColorRange, ColorSpec, i420_to_bgr8};
use spot_ptz_stream::media::decoder::{DecodedFrame, planes_of};
use spot_ptz_stream::media::openh264_decoder::Openh264Decoder;

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    pub access_units: u64,
    pub decode_errors: u64,
    pub pictures: u64,
    /// Size of the last picture.
    pub last_size_px: Option<(u32, u32)>,
    /// Pictures libavcodec returned (0 without the feature).
    pub libavcodec_pictures: u64,
}

/// Splits fuzz input into the settings byte and the access units.
pub fn parse(data: &[u8]) -> (u8, Vec<&[u8]>) {
    let Some((&settings, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut units = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        units.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    (settings, units)
}

/// Writes one access unit in the input format (at most 65535 bytes of it).
pub fn encode_access_unit(out: &mut Vec<u8>, access_unit: &[u8]) {
    let len = access_unit.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&access_unit[..len]);
}

/// The fuzz target's body.
pub fn run(data: &[u8]) -> Outcome {
    let (settings, units) = parse(data);
    let color = ColorSpec {
        range: if settings & 1 != 0 {
            ColorRange::Full
        } else {
            ColorRange::Limited
        },
        matrix: if settings & 2 != 0 {
            ColorMatrix::Bt709
        } else {
            ColorMatrix::Bt601
        },
    };
    let headroom = usize::from(settings >> 2) * 8;
    let mut outcome = Outcome::default();
    let Ok(mut decoder) = Openh264Decoder::new() else {
        return outcome;
    };
    let pool = BufferPool::new(2);
    for &unit in &units {
        outcome.access_units += 1;
        let decoded = decoder.decode(unit, |yuv| {
            let planes = planes_of(yuv).expect("openh264 picture sizes fit u32");
            let mut buffer = pool.take(headroom + planes.bgr8_len());
            let bgr = buffer.get_mut(headroom..).unwrap_or_default();
            if let Err(error) = i420_to_bgr8(&planes, color, bgr) {
                panic!(
                    "a decoded {}x{} picture (strides {}/{}/{}, planes {}/{}/{} bytes) does not convert: {error:?}",
                    planes.width,
                    planes.height,
                    planes.y_stride,
                    planes.u_stride,
                    planes.v_stride,
                    planes.y.len(),
                    planes.u.len(),
                    planes.v.len()
                );
            }
            let frame = DecodedFrame {
                buffer,
                headroom,
                width: planes.width,
                height: planes.height,
                rtp_timestamp: 0,
                first_arrival: Instant::now(),
                decoded_at: Instant::now(),
            };
            assert_eq!(
                frame.bgr().len(),
                frame.width as usize * frame.height as usize * 3
            );
            outcome.pictures += 1;
            outcome.last_size_px = Some((frame.width, frame.height));
            pool.give_back(frame.buffer);
        });
        if decoded.is_err() {
            outcome.decode_errors += 1;
        }
    }
    #[cfg(feature = "libavcodec")]
    {
        outcome.libavcodec_pictures = run_libavcodec(&units, color);
    }
    outcome
}

/// The access units through libavcodec; every picture it returns must convert.
#[cfg(feature = "libavcodec")]
fn run_libavcodec(units: &[&[u8]], color: ColorSpec) -> u64 {
    use spot_ptz_stream::media::libavcodec::{Decoded, LibavcodecDecoder};
    let Ok(mut decoder) = LibavcodecDecoder::new() else {
        return 0;
    };
    let mut pictures = 0;
    for (index, unit) in units.iter().enumerate() {
        if index % 8 == 7 {
            decoder.notify_loss();
        }
        if let Ok(Decoded::Picture(planes)) = decoder.decode(unit) {
            let mut bgr = vec![0; planes.bgr8_len()];
            if let Err(error) = i420_to_bgr8(&planes, color, &mut bgr) {
                panic!(
                    "a libavcodec {}x{} picture (strides {}/{}/{}) does not convert: {error:?}",
                    planes.width, planes.height, planes.y_stride, planes.u_stride, planes.v_stride
                );
            }
            pictures += 1;
        }
    }
    pictures
}
