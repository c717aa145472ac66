//! The node's side of aiming ([`crate::aiming`] holds the geometry and policy): ROS messages in
//! and out.
//!
//! In: `detections` (`vision_msgs/Detection2DArray` from a body camera, through that camera's
//! `camera_info` on one of `detection_camera_info_topics`), `detections_3d`
//! (`vision_msgs/Detection3DArray`: box centres in any frame in TF), `~/look_at`
//! (`geometry_msgs/PointStamped`, any frame in TF), `/tf` and `/tf_static`.
//! Out: PTZ commands (through [`crate::aiming::ptz_driver`]), `~/ptz_state`
//! (`sensor_msgs/JointState`: pan and tilt in radians in the PTZ's convention, zoom as a
//! factor, velocities from consecutive measurements, stamped at measurement), `/tf`
//! (`ptz_base_frame → ptz_head_frame` from each measurement) and `/tf_static`
//! (`ptz_parent_frame → ptz_base_frame` from `ptz_mount_*`, `ptz_head_frame → frame_id`).
//!
//! Bad input (an unknown frame, no `camera_info` yet, NaN, a point behind the robot, a tilt out
//! of the PTZ's limits) is dropped with a WARN, at most one per reason every few seconds, and
//! the PTZ does not move.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use nalgebra::{Isometry3, Point3, Quaternion, Translation3, UnitQuaternion, Vector3};
use r2r::QosProfile;
use r2r::builtin_interfaces::msg::Time;
use r2r::geometry_msgs::msg::{PointStamped, Transform, TransformStamped};
use r2r::geometry_msgs::msg::{Pose, PoseWithCovariance};
use r2r::sensor_msgs::msg::{CameraInfo, JointState};
use r2r::std_msgs::msg::Header;
use r2r::tf2_msgs::msg::TFMessage;
use r2r::vision_msgs::msg::{
    BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis, ObjectHypothesisWithPose,
    Point2D, Pose2D,
};

use crate::aiming::aimer::{AimConfig, AimStatus, Aimer, ManualCommand, Sighting, frontal_area_m2};
use crate::aiming::camera_model::{CameraModelError, PinholeCamera};
use crate::aiming::lens::LensModel;
use crate::aiming::limiter::LimiterConfig;
use crate::aiming::people::{PeopleTracker, PersonInPicture, Seen, Track};
use crate::aiming::pointing::{Pointing, PtzCommand, PtzLimits, optical_in_head};
use crate::aiming::ptz_driver::{self, PtzDriverHandle, PtzState};
use crate::aiming::tf_buffer::TfBuffer;
use crate::lock;
use crate::media::handoff::DropOldestQueue;
use crate::params::{AimingParams, NodeParams};
use crate::robot::{Credentials, RobotClient};
use crate::ros::NodeError;
use crate::ros::detections::{Detections, person_score};
use crate::ros::messages::{Stamper, duration_of};
use crate::ros::recording::{Channel, Recording};
use crate::shutdown::CancellationToken;

/// How long a frame's `ptz_detections` waits for the PTZ's pose at the frame's time to be
/// measured (while the head moves the next measurement is at most
/// [`crate::aiming::ptz_driver::POLL_MOVING`] away); after that the pose is extrapolated.
const PEOPLE_POSE_WAIT: Duration = Duration::from_millis(250);
/// Frames waiting for their `ptz_detections` (about half a second at 30 fps); older ones are
/// dropped and counted (`ptz_detections_dropped` in `~/stats`).
const PEOPLE_QUEUE: usize = 16;

/// The same warning again only after this long.
const WARN_INTERVAL: Duration = Duration::from_secs(5);
/// Picture size assumed for the zoom until the stream reports its own.
const DEFAULT_IMAGE_SIZE_PX: (u32, u32) = (1920, 1080);

/// Logs each distinct warning at most once per [`WARN_INTERVAL`].
#[derive(Default)]
struct WarnThrottle(HashMap<String, Instant>);

impl WarnThrottle {
    fn warn(&mut self, what: &str, reason: &str) {
        let key = format!("{what}: {reason}");
        let now = Instant::now();
        let due = self
            .0
            .get(&key)
            .is_none_or(|at| now.duration_since(*at) >= WARN_INTERVAL);
        if due {
            tracing::warn!(reason, "{what}; the PTZ does not move for it");
            self.0.insert(key, now);
        }
    }
}

/// The settings aiming runs with; they change with the parameters.
#[derive(Clone, Debug, PartialEq)]
struct AimSettings {
    params: AimingParams,
    class_ids: Vec<String>,
    min_score: f64,
    lens: LensModel,
}

impl AimSettings {
    fn of(params: &NodeParams) -> Self {
        Self {
            params: params.aiming.clone(),
            class_ids: params.trigger_class_ids.clone(),
            min_score: params.trigger_min_score,
            lens: LensModel {
                hfov_deg_at_zoom_1: params.aiming.hfov_deg_at_zoom_1,
            },
        }
    }
}

/// What the aiming tasks share.
pub struct AimContext {
    settings: Mutex<AimSettings>,
    aimer: Mutex<Aimer>,
    tf: Mutex<TfBuffer>,
    cameras: Mutex<HashMap<String, Result<PinholeCamera, CameraModelError>>>,
    warnings: Mutex<WarnThrottle>,
    driver: PtzDriverHandle,
    /// Latched: a sample lives with its publisher. (A publisher is not `Sync`.)
    tf_static: Mutex<r2r::Publisher<TFMessage>>,
    stamper: Arc<Mutex<Stamper>>,
    frame_id: String,
    /// The people of the recent detections, for `ptz_detections`.
    people: Mutex<PeopleTracker>,
    /// Frames (their `camera_info` and arrival) waiting for their `ptz_detections`.
    people_frames: Arc<DropOldestQueue<(CameraInfo, Instant)>>,
    /// `ptz_detections`, `~/ptz_state`, `/tf` and `/tf_static` are recorded too.
    recording: Arc<Recording>,
}

/// The aimer's settings from the parameters, keeping what was measured (`pointing`'s PTZ
/// limits and picture size).
fn aim_config(params: &NodeParams, measured: Option<&Pointing>) -> AimConfig {
    let aiming = &params.aiming;
    AimConfig {
        pointing: Pointing {
            pan_offset_deg: aiming.pan_offset_deg,
            max_pan_from_forward_deg: aiming.max_pan_from_forward_deg,
            lens: LensModel {
                hfov_deg_at_zoom_1: aiming.hfov_deg_at_zoom_1,
            },
            limits: measured.map_or_else(PtzLimits::default, |p| p.limits),
            image_size_px: measured.map_or(DEFAULT_IMAGE_SIZE_PX, |p| p.image_size_px),
            person_height_m: aiming.person_height_m,
            target_height_fraction: aiming.target_height_fraction,
        },
        limiter: LimiterConfig {
            deadband_deg: aiming.deadband_deg,
            zoom_deadband_fraction: aiming.zoom_deadband_fraction,
            min_interval: Duration::from_secs_f64(1.0 / aiming.max_rate_hz),
        },
        policy: aiming.policy,
        keep_within_deg: aiming.keep_within_deg,
        home: Some(home_pose(params)),
        home_after: params.trigger_timeout,
        manual_hold: aiming.manual_hold,
    }
}

/// The initial pose: where aiming returns to when nobody is seen.
fn home_pose(params: &NodeParams) -> PtzCommand {
    PtzCommand {
        pan_deg: crate::aiming::pointing::normalize_deg(params.initial_pan_deg),
        tilt_deg: params.initial_tilt_deg,
        zoom: params.initial_zoom,
    }
}

impl AimContext {
    fn settings(&self) -> AimSettings {
        lock(&self.settings).clone()
    }

    /// Takes changed parameters: the aimer's settings at once (its target and counters kept),
    /// the lens for `camera_info`, and a moved mount re-published on `/tf_static`.
    pub fn reconfigure(&self, params: &NodeParams) {
        let wanted = AimSettings::of(params);
        let before = std::mem::replace(&mut *lock(&self.settings), wanted.clone());
        {
            let mut aimer = lock(&self.aimer);
            let config = aim_config(params, Some(aimer.pointing()));
            if *aimer.config() != config {
                aimer.set_config(config);
            }
        }
        let mount = |p: &AimingParams| (p.mount_xyz_m, p.mount_rpy_rad);
        if mount(&before.params) != mount(&wanted.params)
            && let Err(error) = self.publish_statics(&wanted.params)
        {
            tracing::warn!(%error, "could not re-publish /tf_static after ptz_mount_* changed");
        }
    }

    /// Our static frames: into our buffer, and latched on `/tf_static`.
    fn publish_statics(&self, aiming: &AimingParams) -> Result<(), r2r::Error> {
        let mount = mount_of(aiming);
        {
            let mut tf = lock(&self.tf);
            tf.insert(
                &aiming.parent_frame,
                &aiming.base_frame,
                Duration::ZERO,
                mount,
                true,
            );
            tf.insert(
                &aiming.head_frame,
                &self.frame_id,
                Duration::ZERO,
                optical_in_head(),
                true,
            );
        }
        let now = lock(&self.stamper).stamp(Instant::now());
        let stamp = now.clone();
        let statics = TFMessage {
            transforms: vec![
                stamped(
                    &aiming.parent_frame,
                    &aiming.base_frame,
                    now.clone(),
                    &mount,
                ),
                stamped(&aiming.head_frame, &self.frame_id, now, &optical_in_head()),
            ],
        };
        self.recording
            .record(Channel::TfStatic, &statics, &stamp, None);
        lock(&self.tf_static).publish(&statics)
    }

    /// The PTZ driver (commands and measurements).
    pub fn driver(&self) -> &PtzDriverHandle {
        &self.driver
    }

    /// What the aimer is doing, and the commands the deadband kept back.
    pub fn status(&self) -> (AimStatus, u64) {
        let aimer = lock(&self.aimer);
        (aimer.status().clone(), aimer.suppressed())
    }

    /// The PTZ camera's intrinsics for a `width` x `height` picture captured at `arrival`
    /// (the zoom measured then), when the zoom is known.
    pub fn k_at(&self, width: u32, height: u32, arrival: Instant) -> Option<[f64; 9]> {
        let lens = lock(&self.settings).lens;
        self.driver
            .zoom_at(arrival)
            .map(|zoom| lens.k(width, height, zoom))
    }

    /// The `aim_*` and `ptz_*` keys of `~/stats`.
    pub fn status_values(&self, now: Instant) -> Vec<(&'static str, String)> {
        let (status, suppressed) = self.status();
        let target = status.target;
        let number =
            |value: Option<f64>| value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"));
        let measured = *self.driver.state().borrow();
        vec![
            ("aim_target_pan_deg", number(target.map(|t| t.pan_deg))),
            ("aim_target_tilt_deg", number(target.map(|t| t.tilt_deg))),
            ("aim_target_zoom", number(target.map(|t| t.zoom))),
            ("aim_source_frame", status.source),
            ("aim_score", format!("{:.2}", status.score)),
            (
                "aim_age_secs",
                number(
                    status
                        .seen_at
                        .map(|at| now.saturating_duration_since(at).as_secs_f64()),
                ),
            ),
            ("aim_commands", status.commands_sent.to_string()),
            ("aim_commands_suppressed", suppressed.to_string()),
            ("aim_rejected", status.rejected.to_string()),
            (
                "aim_last_rejection",
                status.last_rejection.unwrap_or_default(),
            ),
            ("ptz_pan_deg", number(measured.map(|m| m.pan_deg))),
            ("ptz_tilt_deg", number(measured.map(|m| m.tilt_deg))),
            ("ptz_zoom", number(measured.map(|m| m.zoom))),
            ("ptz_moving", measured.is_some_and(|m| m.moving).to_string()),
            (
                "ptz_detections_dropped",
                self.people_frames.dropped().to_string(),
            ),
        ]
    }

    /// The stream's picture size, for the zoom that frames a person.
    pub fn set_image_size(&self, size: (u32, u32)) {
        let mut aimer = lock(&self.aimer);
        if aimer.pointing().image_size_px != size {
            let pointing = Pointing {
                image_size_px: size,
                ..*aimer.pointing()
            };
            aimer.set_pointing(pointing);
        }
    }

    fn warn(&self, what: &str, reason: &str) {
        lock(&self.warnings).warn(what, reason);
    }

    /// Aims at the people of one detection message; returns the command sent, if any.
    pub fn on_detections(&self, message: &Detections) -> Option<PtzCommand> {
        let settings = self.settings();
        let header = message.header();
        let frame = &header.frame_id;
        let scores: Vec<Option<f64>> = message
            .results()
            .into_iter()
            .map(|results| person_score(results, &settings.class_ids, settings.min_score))
            .collect();
        if scores.iter().all(Option::is_none) {
            return None;
        }
        let what = format!("a detection in {frame:?} cannot be used");
        // Each person's point in `frame`, frontal area, score and box aspect (width / height).
        let mut people: Vec<(Vector3<f64>, f64, f64, f64)> = Vec::new();
        match message {
            Detections::Boxes2d(message) => {
                let camera = {
                    let cameras = lock(&self.cameras);
                    cameras.get(frame).cloned()
                };
                let camera = match camera {
                    Some(Ok(camera)) => camera,
                    Some(Err(error)) => {
                        self.warn(&what, &format!("its camera_info: {error}"));
                        return None;
                    }
                    None => {
                        self.warn(
                            &what,
                            "no camera_info with this frame_id has arrived on detection_camera_info_topics",
                        );
                        return None;
                    }
                };
                let person_height_m = settings.params.person_height_m;
                for (detection, score) in message.detections.iter().zip(&scores) {
                    let Some(score) = *score else { continue };
                    let bbox = &detection.bbox;
                    let centre = (bbox.center.position.x, bbox.center.position.y);
                    match camera.person_point(centre, bbox.size_y, person_height_m) {
                        // The box's width at the person's depth, times their height.
                        Ok(point) => people.push((
                            point,
                            bbox.size_x / camera.fx * point.z * person_height_m,
                            score,
                            bbox.size_x / bbox.size_y,
                        )),
                        Err(error) => self.warn(&what, &error.to_string()),
                    }
                }
            }
            Detections::Boxes3d(message) => {
                for (detection, score) in message.detections.iter().zip(&scores) {
                    let Some(score) = *score else { continue };
                    let (p, size) = (&detection.bbox.center.position, &detection.bbox.size);
                    let point = Vector3::new(p.x, p.y, p.z);
                    if !point.iter().all(|x| x.is_finite()) {
                        self.warn(&what, "its box centre is not a number");
                        continue;
                    }
                    // Standing: the vertical extent is the height.
                    let aspect = size.x.abs().max(size.y.abs()) / size.z.abs();
                    people.push((
                        point,
                        frontal_area_m2([size.x, size.y, size.z]),
                        score,
                        aspect,
                    ));
                }
            }
        }
        let stamp = duration_of(&header.stamp);
        let base_t_frame = {
            let tf = lock(&self.tf);
            tf.lookup(&settings.params.base_frame, frame, stamp)
        };
        let base_t_frame = match base_t_frame {
            Ok(t) => t,
            Err(error) => {
                self.warn(&what, &error.to_string());
                return None;
            }
        };
        let (sightings, seen): (Vec<Sighting>, Vec<Seen>) = people
            .into_iter()
            .map(|(point, area_m2, score, aspect)| {
                let in_base = base_t_frame.transform_point(&Point3::from(point)).coords;
                let seen = Seen {
                    point: in_base,
                    aspect,
                    score,
                    source: frame.clone(),
                    source_stamp: stamp,
                };
                (Sighting::new(in_base, area_m2, score, frame), seen)
            })
            .unzip();
        let now = Instant::now();
        let (command, refused, chosen) = {
            let mut aimer = lock(&self.aimer);
            let (command, refused) = aimer.on_sightings(&sightings, now);
            (command, refused, aimer.chosen_sighting())
        };
        lock(&self.people).update(seen, chosen, now);
        for error in refused {
            self.warn(
                &format!("a person seen in {frame:?} cannot be aimed at"),
                &error.to_string(),
            );
        }
        if let Some(command) = command {
            self.driver.command(command);
        }
        command
    }

    /// `ptz_detections` for the frame whose `camera_info` is `info`, captured at `arrival`: each
    /// person known (seen within [`crate::aiming::people::FORGET_AFTER`]) whose box centre is
    /// in the picture, placed with the PTZ's pose at `arrival` and `info`'s K (see the README's
    /// "ptz_detections" for the fields).
    pub fn people_in_frame(&self, info: &CameraInfo, arrival: Instant) -> Detection2DArray {
        let mut message = Detection2DArray {
            header: info.header.clone(),
            detections: Vec::new(),
        };
        let Some(pose) = self.driver.pose_at(arrival) else {
            return message;
        };
        let Ok(k) = <[f64; 9]>::try_from(info.k.as_slice()) else {
            return message;
        };
        let Ok(camera) = PinholeCamera::from_camera_info(&k, &info.distortion_model) else {
            return message;
        };
        let pointing = *lock(&self.aimer).pointing();
        let person_height_m = lock(&self.settings).params.person_height_m;
        let people = lock(&self.people).current(Instant::now()).to_vec();
        for person in people {
            let Some(at) = PersonInPicture::project(
                &person.last,
                &pointing,
                pose.pan_deg,
                pose.tilt_deg,
                &camera,
                (info.width, info.height),
                person_height_m,
            ) else {
                continue;
            };
            message.detections.push(detection_of(&person, &at));
        }
        message
    }

    /// Queues the frame whose `camera_info` is `info` for [`publish_people`].
    pub fn queue_people_frame(&self, info: &CameraInfo, arrival: Instant) {
        self.people_frames.push((info.clone(), arrival));
    }

    /// Ends [`publish_people`] once the queued frames are out.
    pub fn close_people_frames(&self) {
        self.people_frames.close();
    }

    fn on_ptz_command(&self, message: &JointState) {
        let what = "~/ptz_command cannot be used";
        let command = match manual_command(message) {
            Ok(command) => command,
            Err(reason) => return self.warn(what, &reason),
        };
        // The axes not given stay where the PTZ is (or was last sent).
        let measured = *self.driver.state().borrow();
        let current = measured
            .map(|m| PtzCommand {
                pan_deg: m.pan_deg,
                tilt_deg: m.tilt_deg,
                zoom: m.zoom,
            })
            .or_else(|| lock(&self.aimer).status().target)
            .unwrap_or(PtzCommand {
                pan_deg: 0.0,
                tilt_deg: 0.0,
                zoom: 1.0,
            });
        let result = lock(&self.aimer).manual(command, current, Instant::now());
        match result {
            Ok(Some(command)) => {
                tracing::debug!(?command, "~/ptz_command: moving the PTZ");
                self.driver.command(command);
            }
            Ok(None) => tracing::debug!("~/ptz_command: within the deadband or rate limit"),
            Err(error) => self.warn(what, &error.to_string()),
        }
    }

    fn on_look_at(&self, message: &PointStamped) {
        let frame = &message.header.frame_id;
        let p = &message.point;
        let point = Point3::new(p.x, p.y, p.z);
        let stamp = duration_of(&message.header.stamp);
        let base_frame = lock(&self.settings).params.base_frame.clone();
        let in_base = {
            let tf = lock(&self.tf);
            tf.lookup(&base_frame, frame, stamp)
                .map(|base_t_frame| base_t_frame.transform_point(&point).coords)
        };
        let in_base = match in_base {
            Ok(point) => point,
            Err(error) => {
                return self.warn(
                    &format!("~/look_at in {frame:?} cannot be used"),
                    &error.to_string(),
                );
            }
        };
        let result = lock(&self.aimer).look_at(&in_base, frame, Instant::now());
        match result {
            Ok(Some(command)) => {
                tracing::info!(frame = %frame, ?command, "~/look_at: aiming");
                self.driver.command(command);
            }
            Ok(None) => tracing::debug!("~/look_at: within the deadband or rate limit"),
            Err(error) => self.warn(
                &format!("~/look_at in {frame:?} cannot be aimed at"),
                &error.to_string(),
            ),
        }
    }
}

/// Publishes `ptz_detections` for each queued frame, in order, once the PTZ's pose at the
/// frame's time is measured (or after [`PEOPLE_POSE_WAIT`]): while the head moves, a frame's
/// people wait for the next measurement (at most ~0.1 s) instead of being placed with a guess.
pub async fn publish_people(context: Arc<AimContext>, publisher: r2r::Publisher<Detection2DArray>) {
    let mut measurements = context.driver.state();
    while let Some((info, arrival)) = context.people_frames.pop().await {
        let deadline = tokio::time::Instant::from_std(arrival + PEOPLE_POSE_WAIT);
        while !context.driver.pose_measured_at(arrival) {
            match tokio::time::timeout_at(deadline, measurements.changed()).await {
                Ok(Ok(())) => {}
                // Waited long enough, or the driver is gone (shutdown).
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let people = context.people_in_frame(&info, arrival);
        context
            .recording
            .record(Channel::People, &people, &people.header.stamp, None);
        if let Err(error) = publisher.publish(&people) {
            tracing::warn!(%error, "could not publish ptz_detections");
        }
    }
}

/// `class_id` of the hypothesis every person has (the source's score).
pub const PERSON_CLASS: &str = "person";
/// `class_id` of the second hypothesis the aimed person has (score 1).
pub const AIM_TARGET_CLASS: &str = "aim_target";

/// One person of `ptz_detections`: `id` = the track's id; `header` = the source detection's
/// (its camera's frame id and stamp: the age is the frame's stamp minus this one); box in the
/// PTZ's pixels; a `person` hypothesis with the source's score and the person's point in the
/// PTZ optical frame as its pose; the aimed person also an `aim_target` hypothesis.
fn detection_of(person: &Track, at: &PersonInPicture) -> Detection2D {
    let hypothesis = |class_id: &str, score: f64| ObjectHypothesisWithPose {
        hypothesis: ObjectHypothesis {
            class_id: class_id.to_string(),
            score,
        },
        pose: PoseWithCovariance {
            pose: Pose {
                position: r2r::geometry_msgs::msg::Point {
                    x: at.in_optical.x,
                    y: at.in_optical.y,
                    z: at.in_optical.z,
                },
                orientation: r2r::geometry_msgs::msg::Quaternion {
                    w: 1.0,
                    ..Default::default()
                },
            },
            covariance: vec![0.0; 36],
        },
    };
    let mut results = vec![hypothesis(PERSON_CLASS, person.last.score)];
    if person.aimed {
        results.push(hypothesis(AIM_TARGET_CLASS, 1.0));
    }
    Detection2D {
        header: Header {
            stamp: r2r::Clock::to_builtin_time(&person.last.source_stamp),
            frame_id: person.last.source.clone(),
        },
        results,
        bbox: BoundingBox2D {
            center: Pose2D {
                position: Point2D {
                    x: at.centre_px.0,
                    y: at.centre_px.1,
                },
                theta: 0.0,
            },
            size_x: at.size_px.0,
            size_y: at.size_px.1,
        },
        id: person.id.to_string(),
    }
}

/// A `geometry_msgs/Transform` as an isometry; `None` when it is not a number or its rotation
/// is not a (non-zero) quaternion.
pub fn isometry_of(t: &Transform) -> Option<Isometry3<f64>> {
    let (v, q) = (&t.translation, &t.rotation);
    let values = [v.x, v.y, v.z, q.x, q.y, q.z, q.w];
    if !values.iter().all(|x| x.is_finite()) {
        return None;
    }
    let rotation = UnitQuaternion::try_new(Quaternion::new(q.w, q.x, q.y, q.z), 1e-9)?;
    Some(Isometry3::from_parts(
        Translation3::new(v.x, v.y, v.z),
        rotation,
    ))
}

/// An isometry as a `geometry_msgs/Transform`.
pub fn transform_of(iso: &Isometry3<f64>) -> Transform {
    let (t, q) = (&iso.translation.vector, iso.rotation.quaternion());
    Transform {
        translation: r2r::geometry_msgs::msg::Vector3 {
            x: t.x,
            y: t.y,
            z: t.z,
        },
        rotation: r2r::geometry_msgs::msg::Quaternion {
            x: q.i,
            y: q.j,
            z: q.k,
            w: q.w,
        },
    }
}

fn stamped(parent: &str, child: &str, stamp: Time, iso: &Isometry3<f64>) -> TransformStamped {
    TransformStamped {
        header: Header {
            stamp,
            frame_id: parent.to_string(),
        },
        child_frame_id: child.to_string(),
        transform: transform_of(iso),
    }
}

/// The mount transform from `ptz_mount_xyz` / `ptz_mount_rpy`.
fn mount_of(params: &AimingParams) -> Isometry3<f64> {
    let [x, y, z] = params.mount_xyz_m;
    let [roll, pitch, yaw] = params.mount_rpy_rad;
    Isometry3::from_parts(
        Translation3::new(x, y, z),
        UnitQuaternion::from_euler_angles(roll, pitch, yaw),
    )
}

/// Everything aiming runs: the shared context and its tasks.
pub struct Aiming {
    pub context: Arc<AimContext>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The topics aiming reads.
struct Inputs<Tf, Look, Command> {
    tf: Tf,
    tf_static: Tf,
    look_at: Look,
    ptz_command: Command,
    camera_infos: Vec<std::pin::Pin<Box<dyn futures::Stream<Item = CameraInfo> + Send>>>,
}

fn subscribe_inputs(
    node: &mut r2r::Node,
    aiming: &AimingParams,
) -> Result<
    Inputs<
        impl futures::Stream<Item = TFMessage> + Send + 'static,
        impl futures::Stream<Item = PointStamped> + Send + 'static,
        impl futures::Stream<Item = JointState> + Send + 'static,
    >,
    NodeError,
> {
    let ros = |what: &'static str| move |source| NodeError::Ros { what, source };
    let mut camera_infos: Vec<std::pin::Pin<Box<dyn futures::Stream<Item = CameraInfo> + Send>>> =
        Vec::new();
    for topic in &aiming.detection_camera_info_topics {
        camera_infos.push(Box::pin(
            node.subscribe::<CameraInfo>(topic, QosProfile::sensor_data())
                .map_err(ros("subscribing to a detection camera's camera_info"))?,
        ));
    }
    Ok(Inputs {
        tf: node
            .subscribe::<TFMessage>("/tf", QosProfile::default().keep_last(100))
            .map_err(ros("subscribing to /tf"))?,
        tf_static: node
            .subscribe::<TFMessage>("/tf_static", latched())
            .map_err(ros("subscribing to /tf_static"))?,
        look_at: node
            .subscribe::<PointStamped>("~/look_at", QosProfile::default().keep_last(10))
            .map_err(ros("subscribing to ~/look_at"))?,
        ptz_command: node
            .subscribe::<JointState>("~/ptz_command", QosProfile::default().keep_last(10))
            .map_err(ros("subscribing to ~/ptz_command"))?,
        camera_infos,
    })
}

/// `/tf_static`'s QoS: every sample kept for late subscribers.
fn latched() -> QosProfile {
    QosProfile::default()
        .keep_last(100)
        .reliable()
        .transient_local()
}

/// Creates the subscriptions and publishers and starts the tasks.
pub fn start(
    node: &mut r2r::Node,
    params: &NodeParams,
    robot: RobotClient,
    credentials: Credentials,
    stamper: Arc<Mutex<Stamper>>,
    recording: Arc<Recording>,
    shutdown: CancellationToken,
) -> Result<Aiming, NodeError> {
    let ros = |what: &'static str| move |source| NodeError::Ros { what, source };
    let (driver, driver_task) = ptz_driver::spawn(
        robot,
        credentials,
        params.initial_ptz_name.clone(),
        shutdown.clone(),
    );
    if params.initial_ptz_enabled {
        let home = home_pose(params);
        tracing::info!(
            ?home,
            "initial_ptz_enabled: moving the PTZ to the initial pose"
        );
        driver.command(home);
    }
    let context = Arc::new(AimContext {
        settings: Mutex::new(AimSettings::of(params)),
        aimer: Mutex::new(Aimer::new(aim_config(params, None))),
        tf: Mutex::new(TfBuffer::default()),
        cameras: Mutex::new(HashMap::new()),
        warnings: Mutex::new(WarnThrottle::default()),
        driver,
        tf_static: Mutex::new(
            node.create_publisher::<TFMessage>("/tf_static", latched())
                .map_err(ros("creating the /tf_static publisher"))?,
        ),
        stamper: stamper.clone(),
        frame_id: params.frame_id.clone(),
        people: Mutex::new(PeopleTracker::new()),
        people_frames: DropOldestQueue::new(PEOPLE_QUEUE),
        recording,
    });
    context
        .publish_statics(&params.aiming)
        .map_err(ros("publishing /tf_static"))?;
    let tf_pub = node
        .create_publisher::<TFMessage>("/tf", QosProfile::default().keep_last(100))
        .map_err(ros("creating the /tf publisher"))?;
    let state_pub = node
        .create_publisher::<JointState>("~/ptz_state", QosProfile::default().keep_last(10))
        .map_err(ros("creating the ~/ptz_state publisher"))?;
    let inputs = subscribe_inputs(node, &params.aiming)?;

    let mut tasks = vec![driver_task];
    for (stream, is_static) in [(inputs.tf, false), (inputs.tf_static, true)] {
        let context = context.clone();
        tasks.push(tokio::spawn(for_each_message(
            stream,
            shutdown.clone(),
            move |m| context.on_tf(&m, is_static),
        )));
    }
    for stream in inputs.camera_infos {
        let context = context.clone();
        tasks.push(tokio::spawn(for_each_message(
            stream,
            shutdown.clone(),
            move |m| context.on_camera_info(&m),
        )));
    }
    let on_look_at = context.clone();
    tasks.push(tokio::spawn(for_each_message(
        inputs.look_at,
        shutdown.clone(),
        move |m| on_look_at.on_look_at(&m),
    )));
    let on_ptz_command = context.clone();
    tasks.push(tokio::spawn(for_each_message(
        inputs.ptz_command,
        shutdown.clone(),
        move |m| on_ptz_command.on_ptz_command(&m),
    )));
    tasks.push(tokio::spawn(poll_aimer(context.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(publish_ptz_state(
        context.clone(),
        tf_pub,
        state_pub,
        stamper,
        shutdown,
    )));
    Ok(Aiming { context, tasks })
}

/// Calls `handle` with each message of `stream` until it ends or `shutdown`.
async fn for_each_message<T>(
    stream: impl futures::Stream<Item = T>,
    shutdown: CancellationToken,
    mut handle: impl FnMut(T),
) {
    let mut stream = std::pin::pin!(stream);
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            message = stream.next() => message,
        };
        let Some(message) = message else { return };
        handle(message);
    }
}

impl AimContext {
    /// Keeps the transform buffer up to date from `/tf` or `/tf_static`.
    fn on_tf(&self, message: &TFMessage, is_static: bool) {
        let mut tf = lock(&self.tf);
        for t in &message.transforms {
            match isometry_of(&t.transform) {
                Some(iso) => tf.insert(
                    &t.header.frame_id,
                    &t.child_frame_id,
                    duration_of(&t.header.stamp),
                    iso,
                    is_static,
                ),
                None => {
                    tracing::debug!(child = %t.child_frame_id, "a transform that is not a number; ignored")
                }
            }
        }
    }

    /// Keeps each detection camera's model, by frame_id.
    fn on_camera_info(&self, info: &CameraInfo) {
        let k: [f64; 9] = info.k.as_slice().try_into().unwrap_or([0.0; 9]);
        let camera = PinholeCamera::from_camera_info(&k, &info.distortion_model);
        lock(&self.cameras).insert(info.header.frame_id.clone(), camera);
    }
}

/// A `~/ptz_command` as a manual command: joints `pan`, `tilt` (radians, the PTZ's
/// convention, as `~/ptz_state`) and `zoom` (a factor), any subset, in any order.
fn manual_command(message: &JointState) -> Result<ManualCommand, String> {
    if message.name.len() != message.position.len() || message.name.is_empty() {
        return Err(format!(
            "it has {} names and {} positions; give each of pan, tilt (radians) and zoom a position",
            message.name.len(),
            message.position.len()
        ));
    }
    let mut command = ManualCommand::default();
    for (name, &position) in message.name.iter().zip(&message.position) {
        if !position.is_finite() {
            return Err(format!("{name} is not a number"));
        }
        match name.as_str() {
            "pan" => {
                command.pan_deg = Some(crate::aiming::pointing::normalize_deg(
                    position.to_degrees(),
                ));
            }
            "tilt" => command.tilt_deg = Some(position.to_degrees()),
            "zoom" => command.zoom = Some(position),
            other => {
                return Err(format!(
                    "{other:?} is not a joint of the PTZ (pan, tilt, zoom)"
                ));
            }
        }
    }
    Ok(command)
}

/// Sends held-back commands and the home pose when their time comes, and applies the PTZ's
/// limits once they are read.
async fn poll_aimer(context: Arc<AimContext>, shutdown: CancellationToken) {
    let mut limits = context.driver.limits();
    let mut refusals = context.driver.refusals();
    loop {
        let deadline = lock(&context.aimer)
            .deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(deadline.into()) => {}
            changed = refusals.changed() => {
                if changed.is_err() {
                    return;
                }
                let refusal = refusals.borrow_and_update().clone();
                if let Some(refusal) = refusal {
                    lock(&context.aimer).on_refused(refusal.command, &refusal.reason, Instant::now());
                }
                continue;
            }
            changed = limits.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Some(reported) = *limits.borrow_and_update() {
                    let mut aimer = lock(&context.aimer);
                    let pointing = Pointing { limits: reported, ..*aimer.pointing() };
                    aimer.set_pointing(pointing);
                }
                continue;
            }
        }
        let command = lock(&context.aimer).poll(Instant::now());
        if let Some(command) = command {
            tracing::debug!(?command, "PTZ command (held back or home)");
            context.driver.command(command);
        }
    }
}

/// `~/ptz_state` and the head's transform from each measurement.
async fn publish_ptz_state(
    context: Arc<AimContext>,
    tf_pub: r2r::Publisher<TFMessage>,
    state_pub: r2r::Publisher<JointState>,
    stamper: Arc<Mutex<Stamper>>,
    shutdown: CancellationToken,
) {
    let mut state = context.driver.state();
    let mut previous: Option<PtzState> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = state.changed() => if changed.is_err() { return },
        }
        let Some(now) = *state.borrow_and_update() else {
            continue;
        };
        let stamp = lock(&stamper).stamp(now.measured_at);
        let velocity = match previous {
            Some(p) if now.measured_at > p.measured_at => {
                let secs = (now.measured_at - p.measured_at).as_secs_f64();
                vec![
                    crate::aiming::pointing::angle_difference_deg(now.pan_deg, p.pan_deg)
                        .to_radians()
                        / secs,
                    (now.tilt_deg - p.tilt_deg).to_radians() / secs,
                    (now.zoom - p.zoom) / secs,
                ]
            }
            _ => vec![0.0; 3],
        };
        previous = Some(now);
        let params = context.settings().params;
        let joint_state = JointState {
            header: Header {
                stamp: stamp.clone(),
                frame_id: params.base_frame.clone(),
            },
            name: vec!["pan".into(), "tilt".into(), "zoom".into()],
            position: vec![
                now.pan_deg.to_radians(),
                now.tilt_deg.to_radians(),
                now.zoom,
            ],
            velocity,
            effort: Vec::new(),
        };
        context
            .recording
            .record(Channel::PtzState, &joint_state, &stamp, None);
        if let Err(error) = state_pub.publish(&joint_state) {
            tracing::debug!(%error, "could not publish ~/ptz_state");
        }
        let pointing = *lock(&context.aimer).pointing();
        let head = Isometry3::from_parts(
            Translation3::identity(),
            pointing.head_rotation(now.pan_deg, now.tilt_deg),
        );
        lock(&context.tf).insert(
            &params.base_frame,
            &params.head_frame,
            duration_of(&stamp),
            head,
            false,
        );
        let message = TFMessage {
            transforms: vec![stamped(
                &params.base_frame,
                &params.head_frame,
                stamp.clone(),
                &head,
            )],
        };
        context
            .recording
            .record(Channel::Tf, &message, &stamp, None);
        if let Err(error) = tf_pub.publish(&message) {
            tracing::debug!(%error, "could not publish /tf");
        }
    }
}
