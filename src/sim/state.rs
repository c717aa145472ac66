//! The simulated camera's state: what the gRPC services change and the live encoder reads.
//!
//! Screens and their output sizes, stream-quality parameters, and the PTZ heads, which move
//! towards their targets at a realistic speed instead of jumping.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

/// The screens a Spot CAM+ (PTZ, no IR) lists, as the SDK's `compositor set` accepts them.
pub const SCREEN_NAMES: [&str; 12] = [
    "mech_full",
    "mech",
    "mech_overlay",
    "digi",
    "digi_overlay",
    "digi_full",
    "c0",
    "c1",
    "c2",
    "c3",
    "c4",
    "pano_full",
];

/// The screen a fresh camera shows.
pub const DEFAULT_SCREEN: &str = "mech_full";

/// Pan speed of the simulated mechanical PTZ.
pub const PAN_SPEED_DEG_PER_SEC: f32 = 60.0;
/// Tilt speed of the simulated mechanical PTZ.
pub const TILT_SPEED_DEG_PER_SEC: f32 = 45.0;
/// Zoom speed of the simulated mechanical PTZ, in zoom levels per second.
pub const ZOOM_SPEED_PER_SEC: f32 = 6.0;

/// One compositor screen and the size of the stream while it is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
}

/// The screen name was not one of [`SimState::screens`].
#[derive(Debug, thiserror::Error)]
#[error("unknown screen {name:?}; ListScreens returns the valid names")]
pub struct UnknownScreen {
    pub name: String,
}

/// Stream-quality parameters as `StreamQualityService` exposes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    pub target_bitrate_bps: i64,
    /// Frames between macroblock refreshes (0 = encoder default).
    pub refresh_interval_frames: i64,
    /// Frames between IDR pictures; 0 = an IDR only at session start and on PLI/FIR.
    pub idr_interval_frames: i64,
    /// `AwbModeEnum` value.
    pub awb_mode: i32,
}

/// Limits of one PTZ head; `None` means "unset: every value is valid", as in `ptz.proto`
/// (the client's view of the same description).
pub type PtzSpec = crate::robot::PtzInfo;

/// A PTZ position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PtzPose {
    pub pan_deg: f32,
    pub tilt_deg: f32,
    pub zoom: f32,
}

impl PtzPose {
    const HOME: PtzPose = PtzPose {
        pan_deg: 0.0,
        tilt_deg: 0.0,
        zoom: 1.0,
    };
}

/// Configuration of the state at start-up.
#[derive(Clone, Debug)]
pub struct SimStateConfig {
    pub width: u32,
    pub height: u32,
    pub target_bitrate_bps: i64,
    pub idr_interval_frames: i64,
    /// When set, `pano_full` streams at half the height, so a `SetScreen` changes the
    /// resolution mid-stream.
    pub resize_on_screen_change: bool,
}

struct PtzMotion {
    spec: PtzSpec,
    from: PtzPose,
    target: PtzPose,
    since: Instant,
}

impl PtzMotion {
    fn pose_at(&self, now: Instant) -> PtzPose {
        let elapsed_secs = now.saturating_duration_since(self.since).as_secs_f32();
        let step = |from: f32, to: f32, speed: f32| {
            let distance = to - from;
            let travelled = (speed * elapsed_secs).min(distance.abs());
            from + travelled.copysign(distance)
        };
        PtzPose {
            pan_deg: step(
                self.from.pan_deg,
                self.target.pan_deg,
                PAN_SPEED_DEG_PER_SEC,
            ),
            tilt_deg: step(
                self.from.tilt_deg,
                self.target.tilt_deg,
                TILT_SPEED_DEG_PER_SEC,
            ),
            zoom: step(self.from.zoom, self.target.zoom, ZOOM_SPEED_PER_SEC),
        }
    }
}

/// Shared, thread-safe state of the simulated camera.
pub struct SimState {
    screens: Vec<ScreenSpec>,
    screen: watch::Sender<ScreenSpec>,
    stream: watch::Sender<StreamSettings>,
    ptz: Mutex<Vec<PtzMotion>>,
}

fn clamp_to(value: f32, limits: Option<(f32, f32)>) -> f32 {
    match limits {
        Some((min, max)) if min < max => value.clamp(min, max),
        _ => value,
    }
}

impl SimState {
    pub fn new(config: &SimStateConfig) -> Self {
        let screens: Vec<ScreenSpec> = SCREEN_NAMES
            .iter()
            .map(|name| {
                let height = if config.resize_on_screen_change && name.starts_with("pano") {
                    // Half height, kept a multiple of 16 (whole macroblocks).
                    ((config.height / 2) / 16 * 16).max(64)
                } else {
                    config.height
                };
                ScreenSpec {
                    name: (*name).to_string(),
                    width: config.width,
                    height,
                }
            })
            .collect();
        let initial = screens
            .iter()
            .find(|s| s.name == DEFAULT_SCREEN)
            .cloned()
            .unwrap_or_else(|| ScreenSpec {
                name: DEFAULT_SCREEN.to_string(),
                width: config.width,
                height: config.height,
            });
        let stream = StreamSettings {
            target_bitrate_bps: config.target_bitrate_bps,
            refresh_interval_frames: 0,
            idr_interval_frames: config.idr_interval_frames,
            awb_mode: 1,
        };
        let now = Instant::now();
        let digi_like = |name: &str| PtzSpec {
            name: name.to_string(),
            pan_limits_deg: None,
            tilt_limits_deg: Some((-90.0, 90.0)),
            zoom_limits: Some((1.0, 30.0)),
        };
        let specs = vec![
            PtzSpec {
                name: "mech".to_string(),
                pan_limits_deg: Some((0.0, 360.0)),
                tilt_limits_deg: Some((-30.0, 100.0)),
                zoom_limits: Some((1.0, 30.0)),
            },
            digi_like("digi"),
            digi_like("full_digi"),
            digi_like("overlay_digi"),
            digi_like("full_pano"),
            digi_like("overlay_pano"),
        ];
        let ptz = specs
            .into_iter()
            .map(|spec| PtzMotion {
                spec,
                from: PtzPose::HOME,
                target: PtzPose::HOME,
                since: now,
            })
            .collect();
        Self {
            screens,
            screen: watch::Sender::new(initial),
            stream: watch::Sender::new(stream),
            ptz: Mutex::new(ptz),
        }
    }

    /// Every screen `ListScreens` returns.
    pub fn screens(&self) -> Vec<ScreenSpec> {
        self.screens.clone()
    }

    /// The screen currently composited into the stream.
    pub fn screen(&self) -> ScreenSpec {
        self.screen.borrow().clone()
    }

    /// Switches the screen; the encoder picks the change up on its next frame.
    pub fn set_screen(&self, name: &str) -> Result<ScreenSpec, UnknownScreen> {
        let spec = self
            .screens
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| UnknownScreen {
                name: name.to_string(),
            })?;
        self.screen.send_replace(spec.clone());
        Ok(spec)
    }

    /// Watch the current screen.
    pub fn subscribe_screen(&self) -> watch::Receiver<ScreenSpec> {
        self.screen.subscribe()
    }

    /// The current stream-quality parameters.
    pub fn stream_params(&self) -> StreamSettings {
        *self.stream.borrow()
    }

    /// Changes stream-quality parameters in place and returns the result.
    pub fn update_stream_params(&self, change: impl FnOnce(&mut StreamSettings)) -> StreamSettings {
        self.stream.send_modify(change);
        self.stream_params()
    }

    /// Watch the stream-quality parameters (the live encoder does).
    pub fn subscribe_stream_params(&self) -> watch::Receiver<StreamSettings> {
        self.stream.subscribe()
    }

    /// Every PTZ head `ListPtz` returns.
    pub fn ptz_list(&self) -> Vec<PtzSpec> {
        match self.ptz.lock() {
            Ok(heads) => heads.iter().map(|m| m.spec.clone()).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .map(|m| m.spec.clone())
                .collect(),
        }
    }

    /// Where the named head is now (it may still be moving).
    pub fn ptz_position(&self, name: &str) -> Option<PtzPose> {
        self.ptz_position_at(name, Instant::now())
    }

    /// Where the named head is at `now`.
    pub fn ptz_position_at(&self, name: &str, now: Instant) -> Option<PtzPose> {
        let heads = self.ptz.lock().unwrap_or_else(|p| p.into_inner());
        heads
            .iter()
            .find(|m| m.spec.name == name)
            .map(|m| m.pose_at(now))
    }

    /// Starts moving the named head towards a target, each axis clamped to its limits; `None`
    /// axes keep their current target. Returns the clamped target, or `None` for an unknown head.
    pub fn set_ptz_target(
        &self,
        name: &str,
        pan_deg: Option<f32>,
        tilt_deg: Option<f32>,
        zoom: Option<f32>,
    ) -> Option<PtzPose> {
        let now = Instant::now();
        let mut heads = self.ptz.lock().unwrap_or_else(|p| p.into_inner());
        let head = heads.iter_mut().find(|m| m.spec.name == name)?;
        let current = head.pose_at(now);
        let target = PtzPose {
            pan_deg: clamp_to(
                pan_deg.unwrap_or(head.target.pan_deg),
                head.spec.pan_limits_deg,
            ),
            tilt_deg: clamp_to(
                tilt_deg.unwrap_or(head.target.tilt_deg),
                head.spec.tilt_limits_deg,
            ),
            zoom: clamp_to(zoom.unwrap_or(head.target.zoom), head.spec.zoom_limits),
        };
        head.from = current;
        head.target = target;
        head.since = now;
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn state(resize: bool) -> SimState {
        SimState::new(&SimStateConfig {
            width: 1280,
            height: 720,
            target_bitrate_bps: 2_000_000,
            idr_interval_frames: 30,
            resize_on_screen_change: resize,
        })
    }

    #[test]
    fn ptz_moves_at_finite_speed_and_clamps() {
        let s = state(false);
        let target = s
            .set_ptz_target("mech", Some(400.0), Some(-50.0), None)
            .unwrap();
        assert_eq!(target.pan_deg, 360.0);
        assert_eq!(target.tilt_deg, -30.0);
        let now = Instant::now();
        let early = s.ptz_position_at("mech", now).unwrap();
        assert!(early.pan_deg < 10.0, "moved instantly: {early:?}");
        let later = s
            .ptz_position_at("mech", now + Duration::from_secs(1))
            .unwrap();
        assert!(
            (later.pan_deg - PAN_SPEED_DEG_PER_SEC).abs() < 2.0,
            "{later:?}"
        );
        let done = s
            .ptz_position_at("mech", now + Duration::from_secs(10))
            .unwrap();
        assert_eq!(done.pan_deg, 360.0);
        assert_eq!(done.tilt_deg, -30.0);
        assert!(s.set_ptz_target("nope", None, None, None).is_none());
    }

    #[test]
    fn pano_changes_size_only_when_asked() {
        assert_eq!(state(false).set_screen("pano_full").unwrap().height, 720);
        let s = state(true);
        assert_eq!(s.screen().height, 720);
        assert_eq!(s.set_screen("pano_full").unwrap().height, 352);
        assert!(s.set_screen("bogus").is_err());
    }
}
