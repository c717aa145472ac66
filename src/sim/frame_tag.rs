//! A frame number drawn into the picture, large enough to survive H.264 compression.
//!
//! The simulator draws a row of [`BLOCKS`] black/white squares at the top-left of every frame:
//! 24 bits of frame number, most significant first, then an 8-bit check. Receivers (tests, the
//! probe, the benchmark) read it back from the decoded bgr8 image to measure loss and latency.

/// Number of blocks in the tag row.
pub const BLOCKS: usize = 32;
const NUMBER_BITS: u32 = 24;
const NUMBER_MASK: u32 = (1 << NUMBER_BITS) - 1;

/// Luma of a black and of a white block (limited range).
const LUMA_BLACK: u8 = 16;
const LUMA_WHITE: u8 = 235;

/// Side of one block in pixels for a frame of this width: a multiple of 8, between 8 and 32.
pub fn block_px(width: u32) -> u32 {
    ((width / 40) / 8 * 8).clamp(8, 32)
}

fn check_byte(number: u32) -> u32 {
    let [_, a, b, c] = number.to_be_bytes();
    u32::from(a ^ b ^ c ^ 0xA5)
}

/// The 32 bits drawn for a frame number (wrapping at 2^24).
pub fn encode(frame_number: u32) -> u32 {
    let number = frame_number & NUMBER_MASK;
    (number << 8) | check_byte(number)
}

/// The frame number in a 32-bit pattern, or `None` when the check byte does not match.
pub fn decode(bits: u32) -> Option<u32> {
    let number = bits >> 8;
    (bits & 0xFF == check_byte(number)).then_some(number)
}

/// Draws the tag into an I420 luma plane (`stride` bytes per row) of a frame `width` wide.
/// The chroma under the tag should be neutral (128); the caller owns the chroma planes.
pub fn draw_luma(luma: &mut [u8], stride: usize, width: u32, height: u32, frame_number: u32) {
    let side = block_px(width) as usize;
    let bits = encode(frame_number);
    let rows = side.min(height as usize);
    let tag_width = (side * BLOCKS).min(width as usize);
    for row in luma.chunks_mut(stride).take(rows) {
        for (x, px) in row.iter_mut().take(tag_width).enumerate() {
            let bit = (bits >> (31 - x / side)) & 1;
            *px = if bit == 1 { LUMA_WHITE } else { LUMA_BLACK };
        }
    }
}

/// Reads the tag back from a packed bgr8 image (`stride` bytes per row). Samples the centre
/// of each block and thresholds its brightness. `None` when the image is too small or the
/// check byte does not match (a damaged or untagged frame).
pub fn read_bgr8(bgr: &[u8], stride: usize, width: u32, height: u32) -> Option<u32> {
    let side = block_px(width) as usize;
    if (width as usize) < side * BLOCKS || (height as usize) < side {
        return None;
    }
    let y = side / 2;
    let row = bgr.get(y * stride..y * stride + side * BLOCKS * 3)?;
    let mut bits = 0u32;
    for block in 0..BLOCKS {
        let x = block * side + side / 2;
        let px = row.get(x * 3..x * 3 + 3)?;
        let brightness = (u32::from(px[0]) + u32::from(px[1]) + u32::from(px[2])) / 3;
        bits = (bits << 1) | u32::from(brightness >= 128);
    }
    decode(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_bits() {
        for n in [0, 1, 2, 255, 65_536, NUMBER_MASK] {
            assert_eq!(decode(encode(n)), Some(n));
        }
        assert_eq!(decode(encode(5) ^ (1 << 20)), None);
    }

    #[test]
    fn round_trips_through_pixels() {
        let (width, height) = (640u32, 64u32);
        let mut luma = vec![90u8; (width * height) as usize];
        draw_luma(&mut luma, width as usize, width, height, 123_456);
        // Grey luma with neutral chroma is grey BGR.
        let bgr: Vec<u8> = luma.iter().flat_map(|&y| [y, y, y]).collect();
        assert_eq!(
            read_bgr8(&bgr, width as usize * 3, width, height),
            Some(123_456)
        );
        assert_eq!(read_bgr8(&bgr[..100], 30, 10, 1), None);
    }
}
