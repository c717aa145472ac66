//! A detection's pixel box in a body camera → a point in that camera's optical frame.
//!
//! Pinhole only: the ray through the box centre is `((u - cx)/fx, (v - cy)/fy, 1)`, as
//! image_geometry's `projectPixelTo3dRay` (it expects rectified pixels); the range comes from
//! the box height, assuming the box is a person `person_height_m` tall standing upright:
//! depth = `person_height_m * fy / box_height_px`. Fisheye models (`equidistant`,
//! `kannala_brandt`) are refused: rectify the images (or run the detector on rectified ones)
//! first. Spot's own body-camera sources report pinhole intrinsics with D = 0.

use nalgebra::Vector3;

/// The intrinsics needed to unproject a pixel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PinholeCamera {
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
}

/// A `camera_info` that cannot be used to unproject.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CameraModelError {
    #[error("its K has no focal length (an uncalibrated camera_info); calibrate the camera")]
    Uncalibrated,
    #[error(
        "its distortion model {0:?} is a fisheye model; only pinhole (rectified) cameras are supported"
    )]
    Fisheye(String),
    #[error("the box is {0} px tall; a person's box must be at least 2 px tall")]
    BoxTooSmall(f64),
    #[error("the box has a value that is not a number")]
    NotFinite,
}

impl PinholeCamera {
    /// From a `camera_info`'s row-major K and distortion model.
    pub fn from_camera_info(
        k: &[f64; 9],
        distortion_model: &str,
    ) -> Result<Self, CameraModelError> {
        let model = distortion_model.to_ascii_lowercase();
        if model == "equidistant" || model.contains("kannala") || model.contains("fisheye") {
            return Err(CameraModelError::Fisheye(distortion_model.to_string()));
        }
        let (fx, fy, cx, cy) = (k[0], k[4], k[2], k[5]);
        if !(fx > 0.0
            && fy > 0.0
            && fx.is_finite()
            && fy.is_finite()
            && cx.is_finite()
            && cy.is_finite())
        {
            return Err(CameraModelError::Uncalibrated);
        }
        Ok(Self { fx, fy, cx, cy })
    }

    /// The point of a person whose box is centred at `(u, v)` and `box_height_px` tall, in the
    /// camera's optical frame (z forward, x right, y down), metres.
    pub fn person_point(
        &self,
        (u, v): (f64, f64),
        box_height_px: f64,
        person_height_m: f64,
    ) -> Result<Vector3<f64>, CameraModelError> {
        if !(u.is_finite() && v.is_finite() && box_height_px.is_finite()) {
            return Err(CameraModelError::NotFinite);
        }
        if box_height_px < 2.0 {
            return Err(CameraModelError::BoxTooSmall(box_height_px));
        }
        let depth = person_height_m * self.fy / box_height_px;
        Ok(Vector3::new((u - self.cx) / self.fx, (v - self.cy) / self.fy, 1.0) * depth)
    }

    /// The pixel of a point in the optical frame, and the height in pixels of something
    /// `height_m` tall there (`None` behind the camera). The inverse of [`Self::person_point`].
    pub fn project(&self, point: &Vector3<f64>, height_m: f64) -> Option<((f64, f64), f64)> {
        (point.z > 0.0).then(|| {
            (
                (
                    self.cx + self.fx * point.x / point.z,
                    self.cy + self.fy * point.y / point.z,
                ),
                self.fy * height_m / point.z,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [f64; 9] = [330.0, 0.0, 320.0, 0.0, 331.0, 240.0, 0.0, 0.0, 1.0];

    #[test]
    fn a_box_becomes_the_point_it_was_projected_from() {
        let camera = PinholeCamera::from_camera_info(&K, "plumb_bob").unwrap();
        let person = Vector3::new(-0.8, 0.2, 6.0);
        let (centre, height) = camera.project(&person, 1.7).unwrap();
        let back = camera.person_point(centre, height, 1.7).unwrap();
        assert!((back - person).norm() < 1e-9, "{back:?}");
    }

    #[test]
    fn unusable_camera_info_and_boxes_are_refused() {
        assert_eq!(
            PinholeCamera::from_camera_info(&[0.0; 9], ""),
            Err(CameraModelError::Uncalibrated)
        );
        assert!(matches!(
            PinholeCamera::from_camera_info(&K, "equidistant"),
            Err(CameraModelError::Fisheye(_))
        ));
        let camera = PinholeCamera::from_camera_info(&K, "").unwrap();
        assert_eq!(
            camera.person_point((f64::NAN, 1.0), 50.0, 1.7),
            Err(CameraModelError::NotFinite)
        );
        assert!(matches!(
            camera.person_point((1.0, 1.0), 0.0, 1.7),
            Err(CameraModelError::BoxTooSmall(_))
        ));
    }
}
