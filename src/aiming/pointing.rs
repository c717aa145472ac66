//! Where to point the PTZ for a point in its base frame, in the PTZ's own convention, and the
//! other way round (the pose of the camera head for a measured pan and tilt).
//!
//! Frames (REP-103): the PTZ base frame has x forward, y left, z up, its origin at the pan/tilt
//! centre; the head frame is the base frame turned by the measured pan and tilt; the optical
//! frame (`_optical`) has z forward, x right, y down.
//!
//! The Spot CAM's convention: pan 0 = forward, growing clockwise seen from above (towards the
//! robot's right, the opposite of REP-103 yaw), in [0, 360); tilt 0 = the horizon, up positive.
//! `pan_offset_deg` is the pan reading when the camera looks along the base frame's +x (a
//! per-robot calibration; 0 = the documented "forward").

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

use crate::aiming::lens::LensModel;

/// Points closer than this to the PTZ's centre cannot be aimed at meaningfully.
pub const MIN_DISTANCE_M: f64 = 0.2;

/// A PTZ position in the camera's convention.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PtzCommand {
    /// [0, 360), clockwise from forward seen from above.
    pub pan_deg: f64,
    /// Up positive.
    pub tilt_deg: f64,
    pub zoom: f64,
}

/// The limits `ListPtz` reports; `None` = unset (every value valid, e.g. the mech's pan).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PtzLimits {
    pub pan_deg: Option<(f64, f64)>,
    pub tilt_deg: Option<(f64, f64)>,
    pub zoom: Option<(f64, f64)>,
}

impl PtzLimits {
    /// From ListPtz's limits, where min = max (0/0) also means unset.
    pub fn from_reported(
        pan_deg: Option<(f32, f32)>,
        tilt_deg: Option<(f32, f32)>,
        zoom: Option<(f32, f32)>,
    ) -> Self {
        let set = |l: Option<(f32, f32)>| {
            l.filter(|(min, max)| max > min)
                .map(|(min, max)| (f64::from(min), f64::from(max)))
        };
        Self {
            pan_deg: set(pan_deg),
            tilt_deg: set(tilt_deg),
            zoom: set(zoom),
        }
    }
}

/// Why a point cannot be aimed at.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AimError {
    #[error("the point has a coordinate that is not a number")]
    NotFinite,
    #[error(
        "the point is {distance_m:.2} m from the PTZ; it must be at least {MIN_DISTANCE_M} m away"
    )]
    TooClose { distance_m: f64 },
    #[error(
        "the point is {bearing_deg:.0}° from forward, behind the robot (the PTZ aims within {max_deg:.0}° of forward; see max_pan_from_forward_deg)"
    )]
    Behind { bearing_deg: f64, max_deg: f64 },
    #[error("the point needs a tilt of {tilt_deg:.1}°, outside the PTZ's {min:.0}..{max:.0}°")]
    TiltOutOfLimits { tilt_deg: f64, min: f64, max: f64 },
    #[error("the point needs a pan of {pan_deg:.1}°, outside the PTZ's {min:.0}..{max:.0}°")]
    PanOutOfLimits { pan_deg: f64, min: f64, max: f64 },
    #[error("a zoom of {zoom:.2} is outside the PTZ's {min:.1}..{max:.1}")]
    ZoomOutOfLimits { zoom: f64, min: f64, max: f64 },
}

impl PtzLimits {
    /// Whether the PTZ can take `command` (a limit it did not report is no limit; zoom is at
    /// least 1).
    pub fn check(&self, command: &PtzCommand) -> Result<(), AimError> {
        let values = [command.pan_deg, command.tilt_deg, command.zoom];
        if !values.iter().all(|v| v.is_finite()) {
            return Err(AimError::NotFinite);
        }
        let outside = |limits: Option<(f64, f64)>, value: f64| {
            limits.filter(|(min, max)| !(*min..=*max).contains(&value))
        };
        if let Some((min, max)) = outside(self.pan_deg, command.pan_deg) {
            return Err(AimError::PanOutOfLimits {
                pan_deg: command.pan_deg,
                min,
                max,
            });
        }
        if let Some((min, max)) = outside(self.tilt_deg, command.tilt_deg) {
            return Err(AimError::TiltOutOfLimits {
                tilt_deg: command.tilt_deg,
                min,
                max,
            });
        }
        let (min, max) = self.zoom.unwrap_or((1.0, f64::MAX));
        if !(min..=max).contains(&command.zoom) {
            return Err(AimError::ZoomOutOfLimits {
                zoom: command.zoom,
                min,
                max,
            });
        }
        Ok(())
    }
}

/// How to aim: the PTZ's convention, optics and limits, and what to frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pointing {
    pub pan_offset_deg: f64,
    /// Points further than this from forward (either side) are refused.
    pub max_pan_from_forward_deg: f64,
    pub lens: LensModel,
    pub limits: PtzLimits,
    /// The streamed picture's size (for the zoom that frames a person).
    pub image_size_px: (u32, u32),
    pub person_height_m: f64,
    /// Of the picture's height, for a person at the aimed point.
    pub target_height_fraction: f64,
}

/// `angle` in [0, 360).
pub fn normalize_deg(angle: f64) -> f64 {
    let a = angle.rem_euclid(360.0);
    if a >= 360.0 { 0.0 } else { a }
}

/// The signed difference `a - b` of two angles, in (-180, 180].
pub fn angle_difference_deg(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    if d > 180.0 { d - 360.0 } else { d }
}

impl Pointing {
    /// Pan, tilt and the zoom that frames a person at `point` (in the PTZ base frame).
    pub fn command_for(&self, point: &Vector3<f64>) -> Result<PtzCommand, AimError> {
        if !point.iter().all(|v| v.is_finite()) {
            return Err(AimError::NotFinite);
        }
        let distance_m = point.norm();
        if distance_m < MIN_DISTANCE_M {
            return Err(AimError::TooClose { distance_m });
        }
        let horizontal = point.x.hypot(point.y);
        // Clockwise from forward (REP-103 yaw is counter-clockwise).
        let bearing_deg = -point.y.atan2(point.x).to_degrees();
        if bearing_deg.abs() > self.max_pan_from_forward_deg {
            return Err(AimError::Behind {
                bearing_deg,
                max_deg: self.max_pan_from_forward_deg,
            });
        }
        let tilt_deg = point.z.atan2(horizontal).to_degrees();
        if let Some((min, max)) = self.limits.tilt_deg
            && !(min..=max).contains(&tilt_deg)
        {
            return Err(AimError::TiltOutOfLimits { tilt_deg, min, max });
        }
        let pan_deg = normalize_deg(bearing_deg + self.pan_offset_deg);
        if let Some((min, max)) = self.limits.pan_deg
            && !(min..=max).contains(&pan_deg)
        {
            return Err(AimError::PanOutOfLimits { pan_deg, min, max });
        }
        let zoom = self.lens.zoom_to_frame(
            self.image_size_px,
            self.person_height_m,
            distance_m,
            self.target_height_fraction,
        );
        let zoom = match self.limits.zoom {
            Some((min, max)) => zoom.clamp(min, max),
            None => zoom.max(1.0),
        };
        Ok(PtzCommand {
            pan_deg,
            tilt_deg,
            zoom,
        })
    }

    /// The head frame's rotation in the base frame for a measured pan and tilt.
    pub fn head_rotation(&self, pan_deg: f64, tilt_deg: f64) -> UnitQuaternion<f64> {
        let yaw = -(angle_difference_deg(pan_deg, self.pan_offset_deg)).to_radians();
        // REP-103 pitch is positive nose-down.
        let pitch = -tilt_deg.to_radians();
        UnitQuaternion::from_euler_angles(0.0, pitch, yaw)
    }
}

/// The optical frame in the head frame (z forward, x right, y down; no translation).
pub fn optical_in_head() -> Isometry3<f64> {
    use std::f64::consts::FRAC_PI_2;
    Isometry3::from_parts(
        Translation3::identity(),
        UnitQuaternion::from_euler_angles(-FRAC_PI_2, 0.0, -FRAC_PI_2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointing() -> Pointing {
        Pointing {
            pan_offset_deg: 0.0,
            max_pan_from_forward_deg: 135.0,
            lens: LensModel::default(),
            limits: PtzLimits::from_reported(
                Some((0.0, 0.0)),
                Some((-30.0, 90.0)),
                Some((1.0, 30.0)),
            ),
            image_size_px: (1280, 720),
            person_height_m: 1.7,
            target_height_fraction: 0.5,
        }
    }

    #[test]
    fn pan_is_clockwise_from_forward_and_tilt_up_positive() {
        let p = pointing();
        let ahead = p.command_for(&Vector3::new(5.0, 0.0, 0.0)).unwrap();
        assert!(ahead.pan_deg.abs() < 1e-9 && ahead.tilt_deg.abs() < 1e-9);
        // To the right (REP-103 -y) is +90.
        let right = p.command_for(&Vector3::new(0.0, -5.0, 0.0)).unwrap();
        assert!((right.pan_deg - 90.0).abs() < 1e-9, "{right:?}");
        // To the left is 270 (normalised).
        let left = p.command_for(&Vector3::new(1.0, 1.0, 0.0)).unwrap();
        assert!((left.pan_deg - 315.0).abs() < 1e-9, "{left:?}");
        let up = p.command_for(&Vector3::new(3.0, 0.0, 3.0)).unwrap();
        assert!((up.tilt_deg - 45.0).abs() < 1e-9);
        // The offset is added.
        let offset = Pointing {
            pan_offset_deg: 40.0,
            ..p
        };
        assert!(
            (offset
                .command_for(&Vector3::new(5.0, 0.0, 0.0))
                .unwrap()
                .pan_deg
                - 40.0)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn zoom_frames_a_person_and_is_clamped() {
        let p = pointing();
        let near = p.command_for(&Vector3::new(2.0, 0.0, 0.0)).unwrap();
        assert_eq!(near.zoom, 1.0, "a near person needs less than 1x");
        let far = p.command_for(&Vector3::new(20.0, 0.0, 0.0)).unwrap();
        let expected = p.lens.zoom_to_frame((1280, 720), 1.7, 20.0, 0.5);
        assert!((far.zoom - expected).abs() < 1e-9 && far.zoom > 1.0);
        let very_far = p.command_for(&Vector3::new(2000.0, 0.0, 0.0)).unwrap();
        assert_eq!(very_far.zoom, 30.0);
    }

    #[test]
    fn bad_points_are_refused() {
        let p = pointing();
        assert_eq!(
            p.command_for(&Vector3::new(f64::NAN, 0.0, 0.0)),
            Err(AimError::NotFinite)
        );
        assert!(matches!(
            p.command_for(&Vector3::new(0.1, 0.0, 0.0)),
            Err(AimError::TooClose { .. })
        ));
        assert!(matches!(
            p.command_for(&Vector3::new(-5.0, 0.5, 0.0)),
            Err(AimError::Behind { .. })
        ));
        assert!(matches!(
            p.command_for(&Vector3::new(1.0, 0.0, -2.0)),
            Err(AimError::TiltOutOfLimits { .. })
        ));
    }

    #[test]
    fn the_head_rotation_points_the_optical_axis_where_the_command_aims() {
        let p = Pointing {
            pan_offset_deg: 30.0,
            ..pointing()
        };
        for point in [
            Vector3::new(4.0, -1.0, 0.5),
            Vector3::new(2.0, 2.0, 1.0),
            Vector3::new(6.0, 0.0, -1.0),
        ] {
            let command = p.command_for(&point).unwrap();
            let head = p.head_rotation(command.pan_deg, command.tilt_deg);
            // The optical z axis in the base frame.
            let axis = head * optical_in_head().rotation * Vector3::z();
            let angle = axis.angle(&point);
            assert!(angle < 1e-9, "{point:?}: off by {angle} rad");
        }
    }

    #[test]
    fn angles_wrap() {
        assert_eq!(normalize_deg(-10.0), 350.0);
        assert_eq!(normalize_deg(360.0), 0.0);
        assert_eq!(angle_difference_deg(5.0, 355.0), 10.0);
        assert_eq!(angle_difference_deg(355.0, 5.0), -10.0);
    }
}
