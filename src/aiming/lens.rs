//! The PTZ camera's optics: its field of view against zoom, and the pinhole intrinsics and
//! zoom that follow from it.
//!
//! Boston Dynamics publishes no figure. The model: zoom is linear in focal length (as the
//! ROS 1 driver assumes for its 4.3–129 mm, 30x lens), so `tan(hfov(z)/2) = tan(hfov(1)/2) / z`,
//! and `fx = fy = (width/2) / tan(hfov(z)/2)` with the principal point at the picture's centre
//! and no distortion. The one parameter, `hfov_deg_at_zoom_1`, defaults to 66.4° (a 1/2.8"
//! sensor 5.63 mm wide behind 4.3 mm); a robot's own calibration should replace it.

/// Horizontal field of view at zoom 1 of the default model, degrees.
pub const DEFAULT_HFOV_DEG_AT_ZOOM_1: f64 = 66.4;

/// Field of view against zoom (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LensModel {
    pub hfov_deg_at_zoom_1: f64,
}

impl Default for LensModel {
    fn default() -> Self {
        Self {
            hfov_deg_at_zoom_1: DEFAULT_HFOV_DEG_AT_ZOOM_1,
        }
    }
}

impl LensModel {
    /// Horizontal field of view at `zoom`, radians.
    pub fn hfov_rad(&self, zoom: f64) -> f64 {
        2.0 * (self.half_tan_at_zoom_1() / zoom.max(1e-3)).atan()
    }

    fn half_tan_at_zoom_1(&self) -> f64 {
        (self.hfov_deg_at_zoom_1.to_radians() / 2.0).tan()
    }

    /// Focal length in pixels (`fx = fy`) for a picture `width_px` wide at `zoom`.
    pub fn focal_px(&self, width_px: u32, zoom: f64) -> f64 {
        (f64::from(width_px) / 2.0) / (self.hfov_rad(zoom) / 2.0).tan()
    }

    /// The row-major camera matrix K for a `width_px` x `height_px` picture at `zoom`.
    pub fn k(&self, width_px: u32, height_px: u32, zoom: f64) -> [f64; 9] {
        let f = self.focal_px(width_px, zoom);
        let (cx, cy) = (f64::from(width_px) / 2.0, f64::from(height_px) / 2.0);
        [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    }

    /// The zoom at which something `object_height_m` tall, `distance_m` away, fills
    /// `height_fraction` of the height of a `width_px` x `height_px` picture.
    pub fn zoom_to_frame(
        &self,
        (width_px, height_px): (u32, u32),
        object_height_m: f64,
        distance_m: f64,
        height_fraction: f64,
    ) -> f64 {
        // Its height on the picture at zoom z: f(z) * object_height / distance, f(z) = f(1) * z.
        height_fraction * f64::from(height_px) * distance_m
            / (self.focal_px(width_px, 1.0) * object_height_m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_of_view_narrows_with_zoom_as_the_reference_table_says() {
        let lens = LensModel::default();
        for (zoom, hfov_deg) in [
            (1.0, 66.4),
            (2.0, 36.2),
            (5.0, 14.9),
            (10.0, 7.5),
            (30.0, 2.5),
        ] {
            let got = lens.hfov_rad(zoom).to_degrees();
            assert!(
                (got - hfov_deg).abs() < 0.1,
                "zoom {zoom}: {got:.2}°, expected {hfov_deg}°"
            );
        }
        // fx ≈ 1466·z px for 1920 wide.
        assert!((lens.focal_px(1920, 1.0) - 1466.0).abs() < 2.0);
        assert!((lens.focal_px(1920, 10.0) - 14660.0).abs() < 20.0);
    }

    #[test]
    fn the_zoom_to_frame_makes_the_object_that_tall() {
        let lens = LensModel::default();
        let (width, height) = (1280, 720);
        let zoom = lens.zoom_to_frame((width, height), 1.7, 8.0, 0.5);
        let pixels = lens.focal_px(width, zoom) * 1.7 / 8.0;
        assert!((pixels / f64::from(height) - 0.5).abs() < 1e-9, "{pixels}");
        let k = lens.k(width, height, zoom);
        assert_eq!((k[2], k[5], k[8]), (640.0, 360.0, 1.0));
        assert_eq!(k[0], k[4]);
    }
}
