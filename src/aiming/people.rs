//! The people the node knows of, and where they are in the PTZ's picture.
//!
//! Every detection message's people (points in the PTZ base frame, from
//! [`crate::aiming::camera_model`] or a 3D detector) update a short-lived track each: the same
//! person keeps the same id from message to message (nearest track within
//! [`MATCH_WITHIN_M`]), a person not seen for [`FORGET_AFTER`] is forgotten, and the one the
//! aimer chose is marked. For each published frame, [`PersonInPicture::project`] puts a track
//! into that frame's picture: the PTZ's pose when the frame was captured, its intrinsics at that
//! zoom, the person's height for the box's height and the source box's aspect for its width.
//! ROS-free; time is passed in.

use std::time::{Duration, Instant};

use nalgebra::{Isometry3, Point3, Translation3, Vector3};

use crate::aiming::camera_model::PinholeCamera;
use crate::aiming::pointing::{Pointing, optical_in_head};

/// A person not seen for this long is no longer in the picture's list.
pub const FORGET_AFTER: Duration = Duration::from_millis(1500);
/// A sighting this close to a known person (PTZ base frame) is that person again.
pub const MATCH_WITHIN_M: f64 = 1.0;

/// One person in one detection message.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// In the PTZ base frame, metres.
    pub point: Vector3<f64>,
    /// Width over height of the person's box in the source (2D box or 3D extents).
    pub aspect: f64,
    pub score: f64,
    /// The source camera's (or 3D detector's) frame id.
    pub source: String,
    /// The source message's header stamp (ROS time since the epoch).
    pub source_stamp: Duration,
}

/// A person the node knows of.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// Stable while the person is seen at least every [`FORGET_AFTER`].
    pub id: u64,
    pub last: Seen,
    pub seen_at: Instant,
    /// The aimer's target when last chosen.
    pub aimed: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct PeopleTracker {
    tracks: Vec<Track>,
    next_id: u64,
}

impl PeopleTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The people of one detection message; `aimed` is the index (into `seen`) of the one the
    /// aimer chose from it, if it chose one.
    pub fn update(&mut self, seen: Vec<Seen>, aimed: Option<usize>, now: Instant) {
        self.forget(now);
        // Nearest pairs first, each track and each sighting at most once.
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (s, sighting) in seen.iter().enumerate() {
            for (t, track) in self.tracks.iter().enumerate() {
                let distance = (track.last.point - sighting.point).norm();
                if distance <= MATCH_WITHIN_M {
                    pairs.push((distance, s, t));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut track_of: Vec<Option<usize>> = vec![None; seen.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, s, t) in pairs {
            if track_of[s].is_none() && !taken[t] {
                track_of[s] = Some(t);
                taken[t] = true;
            }
        }
        if aimed.is_some() {
            for track in &mut self.tracks {
                track.aimed = false;
            }
        }
        for (s, sighting) in seen.into_iter().enumerate() {
            let is_aimed = aimed == Some(s);
            match track_of[s] {
                Some(t) => {
                    let track = &mut self.tracks[t];
                    track.last = sighting;
                    track.seen_at = now;
                    track.aimed |= is_aimed;
                }
                None => {
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id: self.next_id,
                        last: sighting,
                        seen_at: now,
                        aimed: is_aimed,
                    });
                }
            }
        }
    }

    /// The people seen within [`FORGET_AFTER`] of `now`, oldest id first.
    pub fn current(&mut self, now: Instant) -> &[Track] {
        self.forget(now);
        &self.tracks
    }

    fn forget(&mut self, now: Instant) {
        self.tracks
            .retain(|t| now.saturating_duration_since(t.seen_at) < FORGET_AFTER);
    }
}

/// Where a person is in one frame of the PTZ.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonInPicture {
    /// Box centre and size, pixels.
    pub centre_px: (f64, f64),
    pub size_px: (f64, f64),
    /// The person's point in the PTZ's optical frame at that frame, metres.
    pub in_optical: Vector3<f64>,
}

impl PersonInPicture {
    /// `person` (PTZ base frame) in a `width` x `height` picture taken with the head at
    /// `pan_deg`/`tilt_deg` and intrinsics `camera`; `None` when the box's centre is outside
    /// the picture or the person is behind the camera.
    #[allow(clippy::too_many_arguments)]
    pub fn project(
        person: &Seen,
        pointing: &Pointing,
        pan_deg: f64,
        tilt_deg: f64,
        camera: &PinholeCamera,
        (width, height): (u32, u32),
        person_height_m: f64,
    ) -> Option<Self> {
        let base_t_head = Isometry3::from_parts(
            Translation3::identity(),
            pointing.head_rotation(pan_deg, tilt_deg),
        );
        let base_t_optical = base_t_head * optical_in_head();
        let in_optical = base_t_optical
            .inverse_transform_point(&Point3::from(person.point))
            .coords;
        let ((u, v), box_height) = camera.project(&in_optical, person_height_m)?;
        let inside = (0.0..f64::from(width)).contains(&u) && (0.0..f64::from(height)).contains(&v);
        let aspect = if person.aspect.is_finite() && person.aspect > 0.0 {
            person.aspect
        } else {
            DEFAULT_ASPECT
        };
        inside.then_some(Self {
            centre_px: (u, v),
            size_px: (box_height * aspect, box_height),
            in_optical,
        })
    }
}

/// Width over height of a standing person, when the source gives none.
pub const DEFAULT_ASPECT: f64 = 0.35;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aiming::lens::LensModel;
    use crate::aiming::pointing::PtzLimits;

    fn seen(x: f64, y: f64) -> Seen {
        Seen {
            point: Vector3::new(x, y, 0.0),
            aspect: 0.4,
            score: 0.9,
            source: "cam".into(),
            source_stamp: Duration::ZERO,
        }
    }

    #[test]
    fn people_keep_their_ids_while_seen_and_the_aimed_one_is_marked() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut tracker = PeopleTracker::new();
        tracker.update(vec![seen(5.0, 0.0), seen(5.0, 3.0)], Some(1), t0);
        let ids: Vec<(u64, bool)> = tracker
            .current(t0)
            .iter()
            .map(|t| (t.id, t.aimed))
            .collect();
        assert_eq!(ids, [(1, false), (2, true)]);
        // Both moved a little, listed the other way round: same ids.
        tracker.update(vec![seen(5.2, 3.1), seen(5.1, 0.2)], None, t0 + ms(200));
        let people = tracker.current(t0 + ms(200));
        assert_eq!(people[0].id, 1);
        assert!((people[0].last.point.x - 5.1).abs() < 1e-9);
        assert!(
            people[1].aimed,
            "the mark stays until the aimer chooses again"
        );
        // The aimer chooses the first; a third person appears far away.
        tracker.update(vec![seen(5.1, 0.2), seen(9.0, -4.0)], Some(0), t0 + ms(400));
        let people = tracker.current(t0 + ms(400));
        let marks: Vec<(u64, bool)> = people.iter().map(|t| (t.id, t.aimed)).collect();
        assert_eq!(marks, [(1, true), (2, false), (3, false)]);
        // Person 2 was last seen at 200 ms: forgotten at 1700 ms, the others not yet.
        let left: Vec<u64> = tracker
            .current(t0 + ms(1750))
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(left, [1, 3]);
    }

    #[test]
    fn a_person_ahead_is_in_the_middle_and_outside_the_picture_is_left_out() {
        let pointing = Pointing {
            pan_offset_deg: 0.0,
            max_pan_from_forward_deg: 180.0,
            lens: LensModel::default(),
            limits: PtzLimits::default(),
            image_size_px: (640, 360),
            person_height_m: 1.7,
            target_height_fraction: 0.5,
        };
        let k = LensModel::default().k(640, 360, 2.0);
        let camera = PinholeCamera::from_camera_info(&k, "plumb_bob").unwrap();
        let person = seen(6.0, 0.0);
        let at = PersonInPicture::project(&person, &pointing, 0.0, 0.0, &camera, (640, 360), 1.7)
            .unwrap();
        assert!((at.centre_px.0 - 320.0).abs() < 1e-6 && (at.centre_px.1 - 180.0).abs() < 1e-6);
        assert!((at.size_px.1 - camera.fy * 1.7 / 6.0).abs() < 1e-6);
        assert!((at.size_px.0 - 0.4 * at.size_px.1).abs() < 1e-9);
        assert!((at.in_optical - Vector3::new(0.0, 0.0, 6.0)).norm() < 1e-9);
        // Pan to the right (clockwise): the person moves left in the picture.
        let panned =
            PersonInPicture::project(&person, &pointing, 5.0, 0.0, &camera, (640, 360), 1.7)
                .unwrap();
        assert!(panned.centre_px.0 < 320.0);
        // Far to the side: outside the picture; behind: nothing.
        assert!(
            PersonInPicture::project(&person, &pointing, 60.0, 0.0, &camera, (640, 360), 1.7)
                .is_none()
        );
        assert!(
            PersonInPicture::project(&person, &pointing, 180.0, 0.0, &camera, (640, 360), 1.7)
                .is_none()
        );
    }
}
