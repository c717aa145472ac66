//! A short H.264 stream for unit tests, from openh264's encoder (the simulator's).

use openh264::OpenH264API;
use openh264::encoder::{Encoder, EncoderConfig, FrameType};
use openh264::formats::YUVSlices;

/// Encodes `frames` pictures of a bar moving across grey; (Annex-B access unit, is IDR) each.
pub fn encode(width: usize, height: usize, frames: usize) -> Vec<(Vec<u8>, bool)> {
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), EncoderConfig::new()).unwrap();
    let mut y = vec![128u8; width * height];
    let uv = vec![128u8; width * height / 4];
    (0..frames)
        .map(|i| {
            y.iter_mut().enumerate().for_each(|(p, v)| {
                *v = if (p % width + i * 8) % 64 < 8 {
                    235
                } else {
                    60
                };
            });
            let src = YUVSlices::new(
                (&y, &uv, &uv),
                (width, height),
                (width, width / 2, width / 2),
            );
            let bits = encoder.encode(&src).unwrap();
            (bits.to_vec(), bits.frame_type() == FrameType::IDR)
        })
        .collect()
}
