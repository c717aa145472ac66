//! People in the simulated world, drawn into the PTZ's view so that where they appear depends
//! on pan, tilt and zoom, and a simulated body camera that sees them, so that tests can publish
//! the detections and `camera_info` a person detector on Spot's body cameras would.
//!
//! A person stands at a bearing (pan, clockwise from forward), elevation (tilt, up positive)
//! and distance from the PTZ's centre, in the PTZ's own convention. The PTZ camera is a pinhole
//! with [`LensModel`]'s field of view at its zoom (the model the node uses for `camera_info`,
//! so the two agree); a person is a red box `PERSON_WIDTH_FRACTION` as wide as tall, centred
//! on their position.

use std::str::FromStr;

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};

use crate::aiming::camera_model::PinholeCamera;
use crate::aiming::lens::LensModel;
use crate::aiming::pointing::{Pointing, PtzLimits, optical_in_head};
use crate::sim::scene::I420Frame;
use crate::sim::state::PtzPose;

/// A person's box: this much as wide as tall.
pub const PERSON_WIDTH_FRACTION: f64 = 0.35;
/// The colour of a person (YUV): a saturated red, far from the scene's grey and tints.
pub const PERSON_YUV: (u8, u8, u8) = (96, 100, 220);

/// One person in the world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Person {
    pub pan_deg: f64,
    pub tilt_deg: f64,
    pub distance_m: f64,
}

impl FromStr for Person {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let values: Vec<f64> = s
            .split(',')
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{v:?} is not a number"))
            })
            .collect::<Result<_, _>>()?;
        let [pan_deg, tilt_deg, distance_m] = values[..] else {
            return Err(format!(
                "{s:?}: expected pan,tilt,distance (degrees, degrees, metres)"
            ));
        };
        if !(distance_m > 0.3
            && distance_m.is_finite()
            && pan_deg.is_finite()
            && tilt_deg.is_finite())
        {
            return Err(format!(
                "{s:?}: the distance must be more than 0.3 m, every value finite"
            ));
        }
        Ok(Self {
            pan_deg,
            tilt_deg,
            distance_m,
        })
    }
}

impl Person {
    /// Where the person is in the PTZ base frame (REP-103: x forward, y left, z up).
    pub fn position(&self) -> Vector3<f64> {
        let (pan, tilt) = (self.pan_deg.to_radians(), self.tilt_deg.to_radians());
        // Clockwise pan = negative REP-103 yaw.
        Vector3::new(tilt.cos() * pan.cos(), -tilt.cos() * pan.sin(), tilt.sin()) * self.distance_m
    }
}

/// The pointing convention of the simulated PTZ (true pan zero, no limits).
fn sim_pointing(lens: LensModel, image_size_px: (u32, u32)) -> Pointing {
    Pointing {
        pan_offset_deg: 0.0,
        max_pan_from_forward_deg: 180.0,
        lens,
        limits: PtzLimits::default(),
        image_size_px,
        person_height_m: 1.7,
        target_height_fraction: 0.5,
    }
}

/// Where a person appears in the PTZ's picture: centre (u, v) and height, pixels; `None`
/// behind the camera.
pub fn project(
    person: &Person,
    ptz: PtzPose,
    lens: LensModel,
    (width, height): (u32, u32),
    person_height_m: f64,
) -> Option<((f64, f64), f64)> {
    let pointing = sim_pointing(lens, (width, height));
    let head = pointing.head_rotation(f64::from(ptz.pan_deg), f64::from(ptz.tilt_deg));
    let base_t_optical =
        Isometry3::from_parts(Translation3::identity(), head * optical_in_head().rotation);
    let in_optical = base_t_optical.inverse_transform_point(&Point3::from(person.position()));
    let f = lens.focal_px(width, f64::from(ptz.zoom));
    let camera = PinholeCamera {
        fx: f,
        fy: f,
        cx: f64::from(width) / 2.0,
        cy: f64::from(height) / 2.0,
    };
    camera.project(&in_optical.coords, person_height_m)
}

/// Draws every person visible at this PTZ pose into `frame`, leaving the frame tag's rows
/// alone.
pub fn draw(
    frame: &mut I420Frame,
    ptz: PtzPose,
    people: &[Person],
    lens: LensModel,
    person_height_m: f64,
    keep_rows: u32,
) {
    let (width, height) = (frame.width, frame.height);
    for person in people {
        let Some(((u, v), box_height)) =
            project(person, ptz, lens, (width, height), person_height_m)
        else {
            continue;
        };
        let half_h = box_height / 2.0;
        let half_w = box_height * PERSON_WIDTH_FRACTION / 2.0;
        let clamp = |value: f64, max: u32| value.round().clamp(0.0, f64::from(max)) as u32;
        let (x0, x1) = (clamp(u - half_w, width), clamp(u + half_w, width));
        let (y0, y1) = (
            clamp(v - half_h, height).max(keep_rows),
            clamp(v + half_h, height),
        );
        // Whole chroma samples only (4:2:0), so the colour is clean to the edge.
        let (x0, x1, y0, y1) = (x0 & !1, x1 & !1, (y0 + 1) & !1, y1 & !1);
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        fill(frame, (x0, x1), (y0, y1));
    }
}

fn fill(frame: &mut I420Frame, (x0, x1): (u32, u32), (y0, y1): (u32, u32)) {
    let width = frame.width as usize;
    let luma = width * frame.height as usize;
    let (y_plane, chroma) = frame.data.split_at_mut(luma);
    let (u_plane, v_plane) = chroma.split_at_mut(luma / 4);
    let (luma_value, u_value, v_value) = PERSON_YUV;
    for row in y0 as usize..y1 as usize {
        y_plane[row * width + x0 as usize..row * width + x1 as usize].fill(luma_value);
    }
    let half = width / 2;
    for row in (y0 / 2) as usize..(y1 / 2) as usize {
        let span = row * half + (x0 / 2) as usize..row * half + (x1 / 2) as usize;
        u_plane[span.clone()].fill(u_value);
        v_plane[span].fill(v_value);
    }
}

/// A simulated body camera: a pinhole with Spot's body-camera intrinsics, at a fixed pose in
/// the body frame, looking forward. Tests publish its `camera_info`, its transform and the
/// boxes a detector would find in it.
#[derive(Clone, Debug, PartialEq)]
pub struct BodyCamera {
    /// Its optical frame (z forward, x right, y down).
    pub frame_id: String,
    pub width: u32,
    pub height: u32,
    pub camera: PinholeCamera,
    /// The optical frame in the body frame.
    pub body_t_optical: Isometry3<f64>,
}

impl BodyCamera {
    /// A 640x480 camera (fx = fy = 330 px) 0.35 m in front of the body origin, looking forward.
    pub fn front() -> Self {
        use std::f64::consts::FRAC_PI_2;
        Self {
            frame_id: "sim_front_camera_optical".to_string(),
            width: 640,
            height: 480,
            camera: PinholeCamera {
                fx: 330.0,
                fy: 330.0,
                cx: 320.0,
                cy: 240.0,
            },
            body_t_optical: Isometry3::from_parts(
                Translation3::new(0.35, 0.0, 0.0),
                UnitQuaternion::from_euler_angles(-FRAC_PI_2, 0.0, -FRAC_PI_2),
            ),
        }
    }

    /// The row-major K of its `camera_info`.
    pub fn k(&self) -> [f64; 9] {
        let c = &self.camera;
        [c.fx, 0.0, c.cx, 0.0, c.fy, c.cy, 0.0, 0.0, 1.0]
    }

    /// The box (centre u, v and width, height in pixels) a detector finds around a person at
    /// `person_in_body`, or `None` when the person is not in the picture.
    pub fn detect(
        &self,
        person_in_body: &Vector3<f64>,
        person_height_m: f64,
    ) -> Option<((f64, f64), (f64, f64))> {
        let in_optical = self
            .body_t_optical
            .inverse_transform_point(&Point3::from(*person_in_body));
        let ((u, v), height) = self.camera.project(&in_optical.coords, person_height_m)?;
        let inside =
            (0.0..f64::from(self.width)).contains(&u) && (0.0..f64::from(self.height)).contains(&v);
        inside.then_some(((u, v), (height * PERSON_WIDTH_FRACTION, height)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_straight_ahead_is_in_the_middle_and_moves_with_pan() {
        let lens = LensModel::default();
        let person: Person = "10,5,6".parse().unwrap();
        let aimed = PtzPose {
            pan_deg: 10.0,
            tilt_deg: 5.0,
            zoom: 3.0,
        };
        let ((u, v), h) = project(&person, aimed, lens, (1280, 720), 1.7).unwrap();
        assert!(
            (u - 640.0).abs() < 1e-6 && (v - 360.0).abs() < 1e-6,
            "{u} {v}"
        );
        assert!((h - lens.focal_px(1280, 3.0) * 1.7 / 6.0).abs() < 1e-6);
        // Pan further right: the person moves left in the picture.
        let ((u2, _), _) = project(
            &person,
            PtzPose {
                pan_deg: 15.0,
                ..aimed
            },
            lens,
            (1280, 720),
            1.7,
        )
        .unwrap();
        assert!(u2 < u);
        // Behind the camera: not drawn.
        assert!(
            project(
                &person,
                PtzPose {
                    pan_deg: 190.0,
                    ..aimed
                },
                lens,
                (1280, 720),
                1.7
            )
            .is_none()
        );
        assert!("1,2".parse::<Person>().is_err());
        assert!("1,2,0".parse::<Person>().is_err());
    }

    #[test]
    fn the_body_camera_sees_what_the_aiming_geometry_undoes() {
        let camera = BodyCamera::front();
        let person = Vector3::new(6.0, -1.0, 0.2);
        let ((u, v), (_, h)) = camera.detect(&person, 1.7).unwrap();
        let back = camera.camera.person_point((u, v), h, 1.7).unwrap();
        let in_body = camera.body_t_optical.transform_point(&Point3::from(back));
        assert!((in_body.coords - person).norm() < 1e-9, "{in_body:?}");
    }

    #[test]
    fn a_drawn_person_is_red_where_projected() {
        let mut frame = I420Frame::new(640, 360);
        let pose = PtzPose {
            pan_deg: 0.0,
            tilt_deg: 0.0,
            zoom: 1.0,
        };
        draw(
            &mut frame,
            pose,
            &["0,0,4".parse().unwrap()],
            LensModel::default(),
            1.7,
            16,
        );
        let (_, u, v) = frame.planes();
        // The centre's chroma sample is the person's colour; a corner's is not.
        let at = |x: usize, y: usize| (u[y / 2 * 320 + x / 2], v[y / 2 * 320 + x / 2]);
        assert_eq!(at(320, 180), (PERSON_YUV.1, PERSON_YUV.2));
        assert_eq!(at(10, 350), (128, 128));
    }
}
