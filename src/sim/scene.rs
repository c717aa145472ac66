//! The synthetic scene the simulated camera films, rendered straight into I420.
//!
//! A textured "world" seen through the PTZ: pan and tilt scroll it, zoom magnifies it. A bright
//! block crosses the view so there is motion even when the PTZ is still, the screen tints the
//! picture, and every frame carries its number as a [`frame_tag`](crate::sim::frame_tag).

use crate::sim::frame_tag;
use crate::sim::state::PtzPose;

/// World pixels per degree of pan or tilt at zoom 1.
const PX_PER_DEG: f32 = 24.0;
/// Side of one world tile in pixels.
const TILE_SHIFT: u32 = 6;
/// Seconds the moving block takes to cross the view.
const CROSSING_SECS: f32 = 4.0;

/// An I420 picture (Y, then U, then V; no padding).
pub struct I420Frame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl I420Frame {
    /// A picture of this size (width and height rounded down to even numbers).
    pub fn new(width: u32, height: u32) -> Self {
        let width = width & !1;
        let height = height & !1;
        let luma = width as usize * height as usize;
        Self {
            width,
            height,
            data: vec![128; luma + luma / 2],
        }
    }

    /// The three planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = self.width as usize * self.height as usize;
        let (y, chroma) = self.data.split_at(luma);
        let (u, v) = chroma.split_at(luma / 4);
        (y, u, v)
    }

    fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width as usize * self.height as usize;
        let (y, chroma) = self.data.split_at_mut(luma);
        let (u, v) = chroma.split_at_mut(luma / 4);
        (y, u, v)
    }
}

/// A small stable hash of the screen name, for its tint.
fn screen_tint(screen: &str) -> (u8, u8) {
    let hash = screen.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    let [a, b, _, _] = hash.to_le_bytes();
    (112 + a % 32, 112 + b % 32)
}

/// Renders one frame of the scene into `frame` (reusing its buffer).
pub fn render(
    frame: &mut I420Frame,
    ptz: PtzPose,
    screen: &str,
    elapsed_secs: f32,
    frame_number: u32,
) {
    let (width, height) = (frame.width, frame.height);
    let (y_plane, u_plane, v_plane) = frame.planes_mut();
    let zoom = ptz.zoom.max(0.1);
    // 16.16 fixed-point step through the world per screen pixel.
    let step = (65_536.0 / zoom) as i64;
    let origin_x = (ptz.pan_deg * PX_PER_DEG * 65_536.0) as i64 - step * i64::from(width / 2);
    let origin_y = (-ptz.tilt_deg * PX_PER_DEG * 65_536.0) as i64 - step * i64::from(height / 2);

    let block_side = (height / 5).max(8);
    let travel = (width + block_side) as f32;
    let block_x = ((elapsed_secs / CROSSING_SECS).fract() * travel) as i64 - i64::from(block_side);
    let block_y = i64::from(height / 2 - block_side / 2);

    for (row_index, row) in y_plane.chunks_exact_mut(width as usize).enumerate() {
        let world_y = (origin_y + step * row_index as i64) >> 16;
        let tile_row = (world_y >> TILE_SHIFT) & 1;
        let shade_y = world_y & 31;
        let in_block_rows =
            (row_index as i64) >= block_y && (row_index as i64) < block_y + i64::from(block_side);
        let mut world_x_fixed = origin_x;
        for (x, px) in row.iter_mut().enumerate() {
            let world_x = world_x_fixed >> 16;
            world_x_fixed += step;
            let tile = ((world_x >> TILE_SHIFT) & 1) ^ tile_row;
            let value = 48 + tile * 96 + ((world_x + shade_y) & 63);
            *px = value as u8;
            if in_block_rows {
                let x = x as i64;
                if x >= block_x && x < block_x + i64::from(block_side) {
                    *px = 225;
                }
            }
        }
    }

    let (tint_u, tint_v) = screen_tint(screen);
    u_plane.fill(tint_u);
    v_plane.fill(tint_v);
    frame_tag::draw_luma(y_plane, width as usize, width, height, frame_number);
    // Neutral chroma under the tag, so it reads back as pure black and white.
    let tag_rows = (frame_tag::block_px(width) / 2) as usize;
    let tag_cols =
        (frame_tag::block_px(width) as usize * frame_tag::BLOCKS / 2).min(width as usize / 2);
    for plane in [u_plane, v_plane] {
        for row in plane.chunks_exact_mut(width as usize / 2).take(tag_rows) {
            row[..tag_cols].fill(128);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_scrolls_and_tag_is_drawn() {
        let pose = PtzPose {
            pan_deg: 0.0,
            tilt_deg: 0.0,
            zoom: 1.0,
        };
        let mut a = I420Frame::new(640, 360);
        let mut b = I420Frame::new(640, 360);
        render(&mut a, pose, "mech_full", 0.0, 42);
        render(
            &mut b,
            PtzPose {
                pan_deg: 10.0,
                ..pose
            },
            "mech_full",
            0.0,
            42,
        );
        let (ya, _, _) = a.planes();
        let (yb, _, _) = b.planes();
        let row = 300 * 640;
        assert_ne!(
            ya[row..row + 640],
            yb[row..row + 640],
            "pan must move the view"
        );
        // The tag reads back through a plain grey → BGR mapping.
        let bgr: Vec<u8> = ya.iter().flat_map(|&y| [y, y, y]).collect();
        assert_eq!(frame_tag::read_bgr8(&bgr, 640 * 3, 640, 360), Some(42));
    }
}
