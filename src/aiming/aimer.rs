//! The aiming policy in one place: sightings of people (points in the PTZ base frame) and
//! explicit look-at points in, PTZ commands out. It picks who to look at
//! ([`crate::aiming::selection`]), works out pan, tilt and zoom
//! ([`crate::aiming::pointing`]), keeps the PTZ from being flooded
//! ([`crate::aiming::limiter`]), and returns to the home pose when nobody has been seen for a
//! while. ROS-free; time is passed in.

use std::time::{Duration, Instant};

use nalgebra::Vector3;

use crate::aiming::limiter::{AimLimiter, LimiterConfig};
use crate::aiming::pointing::{AimError, Pointing, PtzCommand, angle_difference_deg};
use crate::aiming::selection::{Candidate, SelectionPolicy, TargetSelector};

/// A person seen by a camera, placed in the PTZ base frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Sighting {
    pub point: Vector3<f64>,
    /// How large the person looks from the PTZ base (their frontal area over the squared
    /// distance), steradians: comparable between cameras and between 2D and 3D detections.
    pub apparent_size_sr: f64,
    pub score: f64,
    /// The camera (or 3D detector) that saw them: its frame id.
    pub source: String,
}

/// Nearer than this, the apparent size is taken at this distance (no division by zero).
const MIN_DISTANCE_M: f64 = 0.1;

impl Sighting {
    /// A person at `point` (PTZ base frame) whose front is `frontal_area_m2`.
    pub fn new(point: Vector3<f64>, frontal_area_m2: f64, score: f64, source: &str) -> Self {
        let distance_m = point.norm().max(MIN_DISTANCE_M);
        let area = if frontal_area_m2.is_finite() {
            frontal_area_m2.abs()
        } else {
            0.0
        };
        Self {
            point,
            apparent_size_sr: area / (distance_m * distance_m),
            score,
            source: source.to_string(),
        }
    }
}

/// The frontal area of a 3D box (its full extents, metres): the product of its two largest
/// extents, whichever way the box is turned (a standing person: height times width).
pub fn frontal_area_m2(size_m: [f64; 3]) -> f64 {
    let mut extents = size_m.map(|e| if e.is_finite() { e.abs() } else { 0.0 });
    extents.sort_by(|a, b| b.total_cmp(a));
    extents[0] * extents[1]
}

/// Everything the aimer needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AimConfig {
    pub pointing: Pointing,
    pub limiter: LimiterConfig,
    pub policy: SelectionPolicy,
    /// A person seen within this angle of where the target was is the target (hysteresis).
    pub keep_within_deg: f64,
    /// Where to look when nobody has been seen for `home_after`; `None`: stay.
    pub home: Option<PtzCommand>,
    pub home_after: Duration,
    /// After a manual command, detections do not move the PTZ for this long.
    pub manual_hold: Duration,
}

/// A manual PTZ command (`~/ptz_command`): the axes given; the others stay where they are.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ManualCommand {
    pub pan_deg: Option<f64>,
    pub tilt_deg: Option<f64>,
    pub zoom: Option<f64>,
}

/// What the aimer is doing, for `~/stats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AimStatus {
    /// The last command worked out for the current target (sent or held back).
    pub target: Option<PtzCommand>,
    pub source: String,
    pub score: f64,
    /// When the target was last seen.
    pub seen_at: Option<Instant>,
    pub commands_sent: u64,
    /// Sightings and points that could not be aimed at.
    pub rejected: u64,
    pub last_rejection: Option<String>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Aimer {
    config: AimConfig,
    selector: TargetSelector,
    limiter: AimLimiter,
    last_seen: Option<Instant>,
    homed: bool,
    status: AimStatus,
    /// Detections do not move the PTZ before this (a manual command took over).
    manual_until: Option<Instant>,
    /// The last command the PTZ refused, and when.
    refused: Option<(PtzCommand, Instant)>,
    /// Which sighting of the last [`Aimer::on_sightings`] call was chosen.
    chosen: Option<usize>,
}

/// After the PTZ refused a position, commands within [`REFUSED_NEAR_DEG`] of it are not sent
/// for this long: a person just past the PTZ's stop is not chased with a command per detection.
pub const REFUSED_HOLD: Duration = Duration::from_secs(10);
/// See [`REFUSED_HOLD`].
pub const REFUSED_NEAR_DEG: f64 = 10.0;

impl Aimer {
    pub fn new(config: AimConfig) -> Self {
        Self {
            config,
            selector: TargetSelector::new(config.policy, config.keep_within_deg),
            limiter: AimLimiter::new(config.limiter),
            last_seen: None,
            homed: true,
            status: AimStatus::default(),
            manual_until: None,
            refused: None,
            chosen: None,
        }
    }

    /// The index (into its `sightings`) of the person the last [`Self::on_sightings`] chose to
    /// aim at, if it chose one.
    pub fn chosen_sighting(&self) -> Option<usize> {
        self.chosen
    }

    /// The PTZ refused `command` (a position it cannot take): counted as a rejection, the
    /// target dropped, and nothing near it sent again for [`REFUSED_HOLD`].
    pub fn on_refused(&mut self, command: PtzCommand, reason: &str, now: Instant) {
        self.status.rejected += 1;
        self.status.last_rejection = Some(format!("the PTZ refused {command:?}: {reason}"));
        self.status.target = None;
        self.selector.reset();
        self.limiter.reset();
        self.refused = Some((command, now));
    }

    /// A manual command (a joystick, a script): the given axes replace those of `current`
    /// (where the PTZ is); checked against the PTZ's limits and sent through the same limiter
    /// as aiming. Detections then leave the PTZ alone for `manual_hold`, and it does not go
    /// home: it stays where it was put until somebody is seen after the hold.
    pub fn manual(
        &mut self,
        command: ManualCommand,
        current: PtzCommand,
        now: Instant,
    ) -> Result<Option<PtzCommand>, AimError> {
        let wanted = PtzCommand {
            pan_deg: command.pan_deg.unwrap_or(current.pan_deg),
            tilt_deg: command.tilt_deg.unwrap_or(current.tilt_deg),
            zoom: command.zoom.unwrap_or(current.zoom),
        };
        self.config
            .pointing
            .limits
            .check(&wanted)
            .inspect_err(|e| self.reject(e))?;
        self.manual_until = Some(now + self.config.manual_hold);
        // Somebody asks for this position: what the PTZ refused before does not hold it back.
        self.refused = None;
        self.selector.reset();
        self.homed = true;
        self.status.target = Some(wanted);
        self.status.source = "~/ptz_command".to_string();
        self.status.score = 1.0;
        self.status.seen_at = Some(now);
        Ok(self.send(wanted, now))
    }

    /// Whether a manual command holds detections off now.
    pub fn is_manual(&self, now: Instant) -> bool {
        self.manual_until.is_some_and(|until| now < until)
    }

    /// New PTZ limits (from `ListPtz`).
    pub fn set_pointing(&mut self, pointing: Pointing) {
        self.config.pointing = pointing;
    }

    /// New settings (parameters changed while the node runs); the current target, the last
    /// command sent and the counters are kept.
    pub fn set_config(&mut self, config: AimConfig) {
        self.selector
            .set_policy(config.policy, config.keep_within_deg);
        self.limiter.set_config(config.limiter);
        self.config = config;
    }

    pub fn config(&self) -> &AimConfig {
        &self.config
    }

    pub fn pointing(&self) -> &Pointing {
        &self.config.pointing
    }

    /// The people one detection message saw; returns the command to send now, if any, and
    /// why each sighting that could not be used was refused.
    pub fn on_sightings(
        &mut self,
        sightings: &[Sighting],
        now: Instant,
    ) -> (Option<PtzCommand>, Vec<AimError>) {
        self.chosen = None;
        if self.is_manual(now) {
            return (None, Vec::new());
        }
        let mut refused = Vec::new();
        let mut candidates = Vec::new();
        let mut sources = Vec::new();
        for (index, sighting) in sightings.iter().enumerate() {
            match self.config.pointing.command_for(&sighting.point) {
                Ok(command) => {
                    candidates.push(Candidate {
                        command,
                        apparent_size_sr: sighting.apparent_size_sr,
                        score: sighting.score,
                    });
                    sources.push((index, sighting));
                }
                Err(error) => {
                    self.reject(&error);
                    refused.push(error);
                }
            }
        }
        let Some(chosen) = self.selector.choose(&candidates, now) else {
            return (None, refused);
        };
        let command = candidates[chosen].command;
        self.last_seen = Some(now);
        self.homed = false;
        self.status.target = Some(command);
        let (index, sighting) = sources[chosen];
        self.chosen = Some(index);
        self.status.source = sighting.source.clone();
        self.status.score = sighting.score;
        self.status.seen_at = Some(now);
        (self.send(command, now), refused)
    }

    /// Looks at a point (in the PTZ base frame) now, whoever else is seen.
    pub fn look_at(
        &mut self,
        point: &Vector3<f64>,
        source: &str,
        now: Instant,
    ) -> Result<Option<PtzCommand>, AimError> {
        let command = self
            .config
            .pointing
            .command_for(point)
            .inspect_err(|e| self.reject(e))?;
        self.selector.reset();
        self.last_seen = Some(now);
        self.homed = false;
        self.status.target = Some(command);
        self.status.source = source.to_string();
        self.status.score = 1.0;
        self.status.seen_at = Some(now);
        Ok(self.send(command, now))
    }

    /// A held-back command whose time has come, or the home pose after `home_after` without
    /// anybody seen.
    pub fn poll(&mut self, now: Instant) -> Option<PtzCommand> {
        if let Some(command) = self.limiter.poll(now) {
            self.status.commands_sent += 1;
            return Some(command);
        }
        let idle = self
            .last_seen
            .is_some_and(|seen| now.duration_since(seen) >= self.config.home_after);
        if idle && !self.homed {
            self.homed = true;
            self.selector.reset();
            self.status.target = None;
            if let Some(home) = self.config.home {
                self.limiter.reset();
                return self.send(home, now);
            }
        }
        None
    }

    /// When [`Self::poll`] may have something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let home = (!self.homed)
            .then(|| self.last_seen.map(|s| s + self.config.home_after))
            .flatten();
        match (self.limiter.deadline(), home) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn status(&self) -> &AimStatus {
        &self.status
    }

    /// Commands the deadband kept back so far.
    pub fn suppressed(&self) -> u64 {
        self.limiter.suppressed()
    }

    fn send(&mut self, command: PtzCommand, now: Instant) -> Option<PtzCommand> {
        let near_refused = self.refused.is_some_and(|(refused, at)| {
            now.duration_since(at) < REFUSED_HOLD
                && angle_difference_deg(command.pan_deg, refused.pan_deg).abs() < REFUSED_NEAR_DEG
                && (command.tilt_deg - refused.tilt_deg).abs() < REFUSED_NEAR_DEG
        });
        if near_refused {
            return None;
        }
        let sent = self.limiter.offer(command, now);
        if sent.is_some() {
            self.status.commands_sent += 1;
        }
        sent
    }

    fn reject(&mut self, error: &AimError) {
        self.status.rejected += 1;
        self.status.last_rejection = Some(error.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aiming::lens::LensModel;
    use crate::aiming::pointing::PtzLimits;

    fn config() -> AimConfig {
        AimConfig {
            pointing: Pointing {
                pan_offset_deg: 0.0,
                max_pan_from_forward_deg: 135.0,
                lens: LensModel::default(),
                limits: PtzLimits::default(),
                image_size_px: (1280, 720),
                person_height_m: 1.7,
                target_height_fraction: 0.4,
            },
            limiter: LimiterConfig {
                deadband_deg: 1.0,
                zoom_deadband_fraction: 0.1,
                min_interval: Duration::from_millis(300),
            },
            policy: SelectionPolicy::Largest,
            keep_within_deg: 8.0,
            home: Some(PtzCommand {
                pan_deg: 0.0,
                tilt_deg: 0.0,
                zoom: 1.0,
            }),
            home_after: Duration::from_secs(10),
            manual_hold: Duration::from_secs(30),
        }
    }

    fn sighting(x: f64, y: f64, area: f64) -> Sighting {
        Sighting {
            point: Vector3::new(x, y, 0.0),
            apparent_size_sr: area,
            score: 0.9,
            source: "cam".into(),
        }
    }

    #[test]
    fn aims_at_the_chosen_person_then_goes_home_when_nobody_is_seen() {
        let mut aimer = Aimer::new(config());
        let t = Instant::now();
        let (command, refused) =
            aimer.on_sightings(&[sighting(5.0, -5.0, 100.0), sighting(-5.0, 0.0, 900.0)], t);
        let command = command.expect("a command");
        assert!((command.pan_deg - 45.0).abs() < 1e-9, "{command:?}");
        assert_eq!(refused.len(), 1, "the one behind is refused");
        assert_eq!(aimer.chosen_sighting(), Some(0));
        assert_eq!(aimer.status().rejected, 1);
        assert_eq!(aimer.poll(t + Duration::from_secs(5)), None);
        assert_eq!(aimer.deadline(), Some(t + Duration::from_secs(10)));
        let home = aimer.poll(t + Duration::from_secs(10)).expect("home");
        assert_eq!(home.pan_deg, 0.0);
        assert_eq!(
            aimer.poll(t + Duration::from_secs(20)),
            None,
            "home only once"
        );
        assert_eq!(aimer.status().commands_sent, 2);
    }

    #[test]
    fn apparent_size_falls_with_the_square_of_the_distance_and_ignores_box_orientation() {
        let person = frontal_area_m2([0.3, 0.5, 1.7]);
        assert!((person - 0.85).abs() < 1e-12);
        assert_eq!(frontal_area_m2([1.7, 0.3, 0.5]), person);
        assert_eq!(frontal_area_m2([f64::NAN, -0.5, 1.7]), 0.85);
        let near = Sighting::new(Vector3::new(2.0, 0.0, 0.0), person, 0.9, "a");
        let far = Sighting::new(Vector3::new(0.0, 4.0, 0.0), person, 0.9, "a");
        assert!((near.apparent_size_sr - 4.0 * far.apparent_size_sr).abs() < 1e-12);
        assert!(
            Sighting::new(Vector3::zeros(), person, 0.9, "a")
                .apparent_size_sr
                .is_finite()
        );
        assert_eq!(
            Sighting::new(Vector3::x(), f64::NAN, 0.9, "a").apparent_size_sr,
            0.0
        );
    }

    #[test]
    fn look_at_overrides_and_refuses_bad_points() {
        let mut aimer = Aimer::new(config());
        let t = Instant::now();
        assert!(
            aimer
                .look_at(&Vector3::new(f64::NAN, 0.0, 0.0), "x", t)
                .is_err()
        );
        let sent = aimer
            .look_at(&Vector3::new(3.0, 3.0, 0.0), "map", t)
            .unwrap()
            .unwrap();
        assert!((sent.pan_deg - 315.0).abs() < 1e-9);
        assert_eq!(aimer.status().source, "map");
    }

    #[test]
    fn a_manual_command_moves_the_given_axes_and_holds_detections_off() {
        let mut aimer = Aimer::new(config());
        let t = Instant::now();
        let here = PtzCommand {
            pan_deg: 10.0,
            tilt_deg: 5.0,
            zoom: 2.0,
        };
        let manual = ManualCommand {
            pan_deg: Some(90.0),
            zoom: Some(4.0),
            ..ManualCommand::default()
        };
        let sent = aimer.manual(manual, here, t).unwrap().unwrap();
        assert_eq!(
            sent,
            PtzCommand {
                pan_deg: 90.0,
                tilt_deg: 5.0,
                zoom: 4.0
            }
        );
        // Detections wait for the hold; nobody sends the PTZ home meanwhile.
        let during = t + Duration::from_secs(5);
        assert_eq!(
            aimer.on_sightings(&[sighting(5.0, 0.0, 100.0)], during).0,
            None
        );
        assert_eq!(aimer.poll(t + Duration::from_secs(30)), None);
        let after = t + Duration::from_secs(31);
        assert!(
            aimer
                .on_sightings(&[sighting(5.0, 0.0, 100.0)], after)
                .0
                .is_some()
        );
        // Out of the limits, or not a number: refused, nothing sent.
        let bad_zoom = ManualCommand {
            zoom: Some(0.5),
            ..ManualCommand::default()
        };
        assert!(matches!(
            aimer.manual(bad_zoom, here, after),
            Err(AimError::ZoomOutOfLimits { .. })
        ));
        let nan = ManualCommand {
            tilt_deg: Some(f64::NAN),
            ..ManualCommand::default()
        };
        assert!(aimer.manual(nan, here, after).is_err());
    }

    #[test]
    fn a_refused_position_is_not_sent_again_nearby_for_a_while() {
        let mut aimer = Aimer::new(config());
        let t = Instant::now();
        let first = aimer
            .on_sightings(&[sighting(5.0, -5.0, 100.0)], t)
            .0
            .unwrap();
        aimer.on_refused(first, "past the stop", t);
        assert_eq!(aimer.status().rejected, 1);
        // The person moves a little (beyond the deadband): still not sent.
        let later = t + Duration::from_secs(2);
        assert_eq!(
            aimer.on_sightings(&[sighting(5.0, -5.3, 100.0)], later).0,
            None
        );
        // Somewhere else: sent.
        assert!(
            aimer
                .on_sightings(&[sighting(5.0, 5.0, 100.0)], later + Duration::from_secs(1))
                .0
                .is_some()
        );
        // Near it again after the hold: tried again.
        let after = t + REFUSED_HOLD + Duration::from_secs(1);
        assert!(
            aimer
                .on_sightings(&[sighting(5.0, -5.0, 100.0)], after)
                .0
                .is_some()
        );
    }
}
