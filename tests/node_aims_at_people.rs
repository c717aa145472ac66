//! Aiming, end to end: the simulator has people in its world (`--person-at`), drawn as red
//! boxes where the PTZ sees them; this test process is a person detector on a simulated body
//! camera (r2r: its `camera_info`, its transform on `/tf_static`, `vision_msgs` detections
//! computed with `sim::people::BodyCamera`) and a viewer of `image_raw`. The node must turn the
//! detection into pan/tilt/zoom, move the simulated PTZ, and so bring the person to the centre
//! of `image_raw` at the configured size; a 3D detection (`detections_3d`) must do the same;
//! `~/look_at` must work with points in two frames; a jittering detection must not flood the
//! PTZ; `camera_info`'s K must follow the zoom; the TF of the optical frame must match the pose;
//! bad input must be warned about and not move it. Then, one node after the other: the
//! auto-trigger starts the stream only after the aim command and, after `trigger_timeout_secs`
//! without anybody, stops it while the PTZ goes home; each selection policy chooses as it says.
//!
//! One test function: r2r reads ROS_DOMAIN_ID from the environment once per process.
#![cfg(feature = "ros")]

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use common::detector::{PersonBox, person_boxes};
use common::node::{NodeLaunch, NodeProcess, unique_domain_id};
use futures::{FutureExt as _, StreamExt as _};
use nalgebra::{Point3, Vector3};
use r2r::QosProfile;
use spot_ptz_stream::aiming::lens::LensModel;
use spot_ptz_stream::aiming::tf_buffer::TfBuffer;
use spot_ptz_stream::ros::aiming::{isometry_of, transform_of};
use spot_ptz_stream::sim::people::{BodyCamera, Person};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const TARGET_HEIGHT_FRACTION: f64 = 0.5;
const MOUNT_Z_M: f64 = 0.3;
const CAMERA_INFO_TOPIC: &str = "/sim_front_camera/camera_info";
const PERSON_A: &str = "20,5,6";
const PERSON_B: &str = "345,0,5";

/// The red box of `sim::people` nearest the picture's centre in a bgr8 image: its centre x
/// and height in pixels (boxes are told apart by the columns they cover).
fn marker(image: &r2r::sensor_msgs::msg::Image) -> Option<(f64, f64)> {
    let (w, h) = (image.width as usize, image.height as usize);
    let step = image.step as usize;
    let red = |x: usize, y: usize| {
        let i = y * step + x * 3;
        let (b, g, r) = (image.data[i], image.data[i + 1], image.data[i + 2]);
        r > 150 && g < 100 && b < 110
    };
    // Per column: (first red row, last red row, red pixels).
    let columns: Vec<Option<(usize, usize, usize)>> = (0..w)
        .map(|x| {
            let rows: Vec<usize> = (0..h).filter(|&y| red(x, y)).collect();
            (rows.len() >= 3).then(|| (rows[0], rows[rows.len() - 1], rows.len()))
        })
        .collect();
    // Runs of red columns = boxes.
    let mut boxes: Vec<(usize, usize)> = Vec::new();
    for (x, column) in columns.iter().enumerate() {
        match (column, boxes.last_mut()) {
            (Some(_), Some((_, end))) if *end + 1 == x => *end = x,
            (Some(_), _) => boxes.push((x, x)),
            (None, _) => {}
        }
    }
    let centre = w as f64 / 2.0;
    let &(x0, x1) = boxes.iter().filter(|(a, b)| b - a >= 3).min_by(|a, b| {
        let d = |r: &(usize, usize)| ((r.0 + r.1) as f64 / 2.0 - centre).abs();
        d(a).total_cmp(&d(b))
    })?;
    let spans: Vec<(usize, usize, usize)> = columns[x0..=x1].iter().flatten().copied().collect();
    let top = spans.iter().map(|s| s.0).min()?;
    let bottom = spans.iter().map(|s| s.1).max()?;
    Some(((x0 + x1) as f64 / 2.0, (bottom - top + 1) as f64))
}

fn stat(status: &r2r::diagnostic_msgs::msg::DiagnosticStatus, key: &str) -> String {
    status
        .values
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.clone())
        .unwrap_or_else(|| panic!("no {key} in ~/stats"))
}

/// The test's ROS side: a detector on a body camera, a viewer, a TF listener.
struct Harness {
    node: r2r::Node,
    clock: r2r::Clock,
    detections: r2r::Publisher<r2r::vision_msgs::msg::Detection2DArray>,
    detections_3d: r2r::Publisher<r2r::vision_msgs::msg::Detection3DArray>,
    camera_info: r2r::Publisher<r2r::sensor_msgs::msg::CameraInfo>,
    look_at: r2r::Publisher<r2r::geometry_msgs::msg::PointStamped>,
    images: std::pin::Pin<Box<dyn futures::Stream<Item = r2r::sensor_msgs::msg::Image>>>,
    infos: std::pin::Pin<Box<dyn futures::Stream<Item = r2r::sensor_msgs::msg::CameraInfo>>>,
    stats:
        std::pin::Pin<Box<dyn futures::Stream<Item = r2r::diagnostic_msgs::msg::DiagnosticStatus>>>,
    tf: std::pin::Pin<Box<dyn futures::Stream<Item = r2r::tf2_msgs::msg::TFMessage>>>,
    tf_static: std::pin::Pin<Box<dyn futures::Stream<Item = r2r::tf2_msgs::msg::TFMessage>>>,
    buffer: TfBuffer,
    camera: BodyCamera,
    last_image: Option<r2r::sensor_msgs::msg::Image>,
    last_info: Option<r2r::sensor_msgs::msg::CameraInfo>,
    last_stats: Option<r2r::diagnostic_msgs::msg::DiagnosticStatus>,
    _tf_static_pub: r2r::Publisher<r2r::tf2_msgs::msg::TFMessage>,
}

impl Harness {
    fn new() -> Self {
        let ctx = r2r::Context::create().expect("ROS context");
        let mut node = r2r::Node::create(ctx, "aim_test", "").expect("node");
        let latched = QosProfile::default()
            .keep_last(100)
            .reliable()
            .transient_local();
        let camera = BodyCamera::front();
        let tf_static_pub = node
            .create_publisher::<r2r::tf2_msgs::msg::TFMessage>("/tf_static", latched.clone())
            .expect("tf_static");
        let mut clock = r2r::Clock::create(r2r::ClockType::RosTime).expect("clock");
        let stamp = r2r::Clock::to_builtin_time(&clock.get_now().expect("now"));
        tf_static_pub
            .publish(&r2r::tf2_msgs::msg::TFMessage {
                transforms: vec![r2r::geometry_msgs::msg::TransformStamped {
                    header: r2r::std_msgs::msg::Header {
                        stamp,
                        frame_id: "body".into(),
                    },
                    child_frame_id: camera.frame_id.clone(),
                    transform: transform_of(&camera.body_t_optical),
                }],
            })
            .expect("publish tf_static");
        let sub = |node: &mut r2r::Node, topic: &str, qos: QosProfile| {
            node.subscribe::<r2r::tf2_msgs::msg::TFMessage>(topic, qos)
                .expect("subscribe tf")
        };
        let tf = Box::pin(sub(&mut node, "/tf", QosProfile::default().keep_last(100)));
        let tf_static = Box::pin(sub(&mut node, "/tf_static", latched));
        Self {
            detections: node
                .create_publisher("/detections", QosProfile::default())
                .expect("detections"),
            detections_3d: node
                .create_publisher("/detections_3d", QosProfile::default())
                .expect("detections_3d"),
            camera_info: node
                .create_publisher(CAMERA_INFO_TOPIC, QosProfile::sensor_data())
                .expect("camera_info"),
            look_at: node
                .create_publisher("/spot_ptz_stream/look_at", QosProfile::default())
                .expect("look_at"),
            images: Box::pin(
                node.subscribe::<r2r::sensor_msgs::msg::Image>(
                    "/image_raw",
                    QosProfile::sensor_data(),
                )
                .expect("images"),
            ),
            infos: Box::pin(
                node.subscribe::<r2r::sensor_msgs::msg::CameraInfo>(
                    "/camera_info",
                    QosProfile::sensor_data(),
                )
                .expect("infos"),
            ),
            stats: Box::pin(
                node.subscribe::<r2r::diagnostic_msgs::msg::DiagnosticStatus>(
                    "/spot_ptz_stream/stats",
                    QosProfile::default(),
                )
                .expect("stats"),
            ),
            tf,
            tf_static,
            buffer: TfBuffer::default(),
            camera,
            last_image: None,
            last_info: None,
            last_stats: None,
            _tf_static_pub: tf_static_pub,
            node,
            clock,
        }
    }

    fn now(&mut self) -> r2r::builtin_interfaces::msg::Time {
        r2r::Clock::to_builtin_time(&self.clock.get_now().expect("now"))
    }

    /// Spins for `duration`, publishing the body camera's camera_info, keeping the newest
    /// image, camera_info and stats, and filling the TF buffer.
    fn spin(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.node.spin_once(Duration::from_millis(10));
            let info = r2r::sensor_msgs::msg::CameraInfo {
                header: r2r::std_msgs::msg::Header {
                    stamp: self.now(),
                    frame_id: self.camera.frame_id.clone(),
                },
                width: self.camera.width,
                height: self.camera.height,
                distortion_model: "plumb_bob".into(),
                d: vec![0.0; 5],
                k: self.camera.k().to_vec(),
                ..Default::default()
            };
            self.camera_info.publish(&info).expect("camera_info");
            while let Some(Some(image)) = self.images.next().now_or_never() {
                self.last_image = Some(image);
            }
            while let Some(Some(info)) = self.infos.next().now_or_never() {
                self.last_info = Some(info);
            }
            while let Some(Some(stats)) = self.stats.next().now_or_never() {
                self.last_stats = Some(stats);
            }
            for (stream, is_static) in [(&mut self.tf, false), (&mut self.tf_static, true)] {
                while let Some(Some(message)) = stream.next().now_or_never() {
                    for t in &message.transforms {
                        let stamp =
                            Duration::new(t.header.stamp.sec as u64, t.header.stamp.nanosec);
                        self.buffer.insert(
                            &t.header.frame_id,
                            &t.child_frame_id,
                            stamp,
                            isometry_of(&t.transform).expect("a valid transform"),
                            is_static,
                        );
                    }
                }
            }
        }
    }

    /// Spins until `done` holds for the newest image (or `timeout`); how long it took.
    fn spin_until_image(
        &mut self,
        timeout: Duration,
        done: impl Fn(&r2r::sensor_msgs::msg::Image) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            self.spin(Duration::from_millis(50));
            if self.last_image.as_ref().is_some_and(&done) {
                return Some(start.elapsed());
            }
        }
        None
    }

    /// A detection of `person` (in the PTZ base frame) by the body camera, `jitter_px` off.
    fn detect(&mut self, person: &Person, frame_id: &str, jitter_px: f64) {
        let ((u, v), (w, h)) = self.box_of(person);
        self.publish_boxes(frame_id, &[((u + jitter_px, v - jitter_px), (w, h), 0.9)]);
    }

    /// Where the body camera sees `person`: box centre and size.
    fn box_of(&self, person: &Person) -> ((f64, f64), (f64, f64)) {
        let in_body = person.position() + Vector3::new(0.0, 0.0, MOUNT_Z_M);
        self.camera
            .detect(&in_body, 1.7)
            .expect("the body camera sees the person")
    }

    fn publish_box(&mut self, frame_id: &str, centre: (f64, f64), size: (f64, f64)) {
        self.publish_boxes(frame_id, &[(centre, size, 0.9)]);
    }

    /// One detection message with a box (centre, size, score) per person.
    fn publish_boxes(&mut self, frame_id: &str, boxes: &[PersonBox]) {
        let header = r2r::std_msgs::msg::Header {
            stamp: self.now(),
            frame_id: frame_id.into(),
        };
        self.detections
            .publish(&person_boxes(header, boxes))
            .expect("detections");
    }

    /// One 3D detection message: a person-sized box centred at each point of `frame_id`.
    fn publish_boxes_3d(&mut self, frame_id: &str, centres: &[Vector3<f64>]) {
        use r2r::vision_msgs::msg::{
            BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesis,
            ObjectHypothesisWithPose,
        };
        let header = r2r::std_msgs::msg::Header {
            stamp: self.now(),
            frame_id: frame_id.into(),
        };
        let detections = centres
            .iter()
            .map(|c| Detection3D {
                header: header.clone(),
                results: vec![ObjectHypothesisWithPose {
                    hypothesis: ObjectHypothesis {
                        class_id: "person".into(),
                        score: 0.9,
                    },
                    ..Default::default()
                }],
                bbox: BoundingBox3D {
                    center: r2r::geometry_msgs::msg::Pose {
                        position: r2r::geometry_msgs::msg::Point {
                            x: c.x,
                            y: c.y,
                            z: c.z,
                        },
                        orientation: r2r::geometry_msgs::msg::Quaternion {
                            w: 1.0,
                            ..Default::default()
                        },
                    },
                    size: r2r::geometry_msgs::msg::Vector3 {
                        x: 0.3,
                        y: 0.5,
                        z: 1.7,
                    },
                },
                id: String::new(),
            })
            .collect();
        self.detections_3d
            .publish(&Detection3DArray { header, detections })
            .expect("detections_3d");
    }

    fn look_at(&mut self, frame_id: &str, point: Vector3<f64>) {
        let message = r2r::geometry_msgs::msg::PointStamped {
            header: r2r::std_msgs::msg::Header {
                stamp: r2r::builtin_interfaces::msg::Time { sec: 0, nanosec: 0 },
                frame_id: frame_id.into(),
            },
            point: r2r::geometry_msgs::msg::Point {
                x: point.x,
                y: point.y,
                z: point.z,
            },
        };
        self.look_at.publish(&message).expect("look_at");
    }

    fn stat(&mut self, key: &str) -> String {
        // The newest report (published every 0.2 s here).
        self.spin(Duration::from_millis(500));
        stat(self.last_stats.as_ref().expect("~/stats"), key)
    }

    fn commands(&mut self) -> u64 {
        self.stat("aim_commands").parse().expect("a count")
    }

    /// Spins until the measured pan is within 0.5° of `pan_deg` and the head has stopped.
    fn wait_for_pan(&mut self, pan_deg: f64, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let pan: f64 = self.stat("ptz_pan_deg").parse().unwrap_or(f64::NAN);
            let off = (pan - pan_deg).rem_euclid(360.0);
            if off.min(360.0 - off) < 0.5 && self.stat("ptz_moving") == "false" {
                return true;
            }
        }
        let keys = [
            "aim_commands",
            "aim_target_pan_deg",
            "aim_source_frame",
            "aim_last_rejection",
            "ptz_pan_deg",
            "ptz_moving",
        ];
        let values: Vec<String> = keys
            .iter()
            .map(|k| format!("{k}={}", self.stat(k)))
            .collect();
        eprintln!("wait_for_pan({pan_deg}) gave up: {values:?}");
        false
    }
}

fn centred_and_framed(image: &r2r::sensor_msgs::msg::Image) -> bool {
    marker(image).is_some_and(|(x, h)| {
        let target = TARGET_HEIGHT_FRACTION * f64::from(HEIGHT);
        (x - f64::from(WIDTH) / 2.0).abs() < 0.05 * f64::from(WIDTH)
            && (h - target).abs() < 0.25 * target
    })
}

/// With `SPOT_PTZ_STREAM_AIM_PICTURES=<dir>`, saves the newest image as `<dir>/<name>.png`
/// (how the README's pictures were made).
fn save_picture(image: Option<&r2r::sensor_msgs::msg::Image>, name: &str) {
    let (Ok(dir), Some(image)) = (std::env::var("SPOT_PTZ_STREAM_AIM_PICTURES"), image) else {
        return;
    };
    let rgb: Vec<u8> = image
        .data
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let file = std::fs::File::create(std::path::Path::new(&dir).join(format!("{name}.png")))
        .expect("picture file");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&rgb))
        .expect("png");
}

/// The node as every part of this test runs it: the simulated body camera's camera_info, the
/// PTZ mounted `MOUNT_Z_M` above the body origin, `~/stats` every 0.2 s.
fn aiming_node(domain: u32, sim: &Sim) -> NodeLaunch<'_> {
    NodeLaunch::new(domain, Some(sim))
        .param(
            "detection_camera_info_topics",
            &format!("[\"{CAMERA_INFO_TOPIC}\"]"),
        )
        .param("ptz_mount_xyz", &format!("[0.0, 0.0, {MOUNT_Z_M}]"))
        .param(
            "target_height_fraction",
            &TARGET_HEIGHT_FRACTION.to_string(),
        )
        .param("diagnostics_period_secs", "0.2")
}

fn failure(node: &NodeProcess, sim: &Sim, what: &str) -> String {
    format!("{what}\nnode log:\n{}\nsim log:\n{}", node.log(), sim.log())
}

/// Spins until the PTZ has turned to `person` and stopped, then until `image_raw` shows them
/// centred and framed; fails with `what` and the logs otherwise.
fn turns_to_and_frames(
    h: &mut Harness,
    node: &NodeProcess,
    sim: &Sim,
    person: &Person,
    what: &str,
) {
    assert!(
        h.wait_for_pan(person.pan_deg, Duration::from_secs(10)),
        "{}",
        failure(
            node,
            sim,
            &format!("{what}: the PTZ did not turn to the person")
        )
    );
    assert!(
        h.spin_until_image(Duration::from_secs(3), centred_and_framed)
            .is_some(),
        "{}",
        failure(node, sim, &format!("{what}: the person is not centred"))
    );
}

#[test]
fn the_node_aims_the_ptz_at_people() {
    let domain = unique_domain_id();
    // The only test in this binary: no other thread reads the environment concurrently.
    unsafe { std::env::set_var("ROS_DOMAIN_ID", domain.to_string()) };
    // SetPtzPosition takes 0.3 s, as over a slow link: the auto-trigger must wait for it.
    let sim = Sim::start_640x360(&[
        "--person-at",
        PERSON_A,
        "--person-at",
        PERSON_B,
        "--ptz-command-delay-secs",
        "0.3",
    ]);
    let node = aiming_node(domain, &sim)
        .param("trigger_timeout_secs", "600.0")
        .start();
    let mut h = Harness::new();
    let lens = LensModel::default();
    let person_a: Person = PERSON_A.parse().unwrap();
    let person_b: Person = PERSON_B.parse().unwrap();

    // The stream runs; nobody is in the middle yet (the PTZ looks forward, zoom 1).
    assert!(
        h.spin_until_image(Duration::from_secs(30), |_| true)
            .is_some(),
        "{}",
        failure(&node, &sim, "no image_raw")
    );
    h.spin(Duration::from_secs(1));
    assert!(
        !centred_and_framed(h.last_image.as_ref().unwrap()),
        "the person is centred before aiming"
    );
    save_picture(h.last_image.as_ref(), "aim-before");
    let fx_before = h.last_info.as_ref().expect("camera_info").k[0];
    assert!(
        (fx_before - lens.focal_px(WIDTH, 1.0)).abs() < 1.0,
        "K at zoom 1: {fx_before}"
    );

    // 1. A detection in the body camera aims the PTZ at the person.
    h.detect(&person_a, &h.camera.frame_id.clone(), 0.0);
    let took = h
        .spin_until_image(Duration::from_secs(5), centred_and_framed)
        .unwrap_or_else(|| {
            panic!(
                "{}",
                failure(
                    &node,
                    &sim,
                    &format!(
                        "not centred: marker {:?}",
                        h.last_image.as_ref().and_then(marker)
                    )
                )
            )
        });
    eprintln!(
        "person A centred and framed {took:?} after the detection; marker {:?}",
        h.last_image.as_ref().and_then(marker)
    );
    h.spin(Duration::from_secs(1));
    save_picture(h.last_image.as_ref(), "aim-after");
    let zoom: f64 = h.stat("ptz_zoom").parse().unwrap();
    assert!(zoom > 1.1, "the PTZ did not zoom in: {zoom}");

    // 2. camera_info's K follows the zoom.
    let fx = h.last_info.as_ref().unwrap().k[0];
    assert!(
        (fx - lens.focal_px(WIDTH, zoom)).abs() < 0.02 * fx,
        "K {fx} at zoom {zoom}"
    );

    // 3. TF: the optical frame's z axis points at the person.
    let base_t_optical = h
        .buffer
        .lookup("spot_cam_ptz_base", "spot_cam_ptz_optical", Duration::ZERO)
        .unwrap_or_else(|e| {
            panic!(
                "{}",
                failure(&node, &sim, &format!("no optical frame in TF: {e}"))
            )
        });
    let axis = base_t_optical.rotation * Vector3::z();
    let off_deg = axis.angle(&person_a.position()).to_degrees();
    assert!(
        off_deg < 1.0,
        "the optical frame is {off_deg:.2}° off the person"
    );

    // 4. A jittering detection does not flood the PTZ.
    let before = h.commands();
    for i in 0..20 {
        let jitter = if i % 2 == 0 { 0.5 } else { -0.5 };
        h.detect(&person_a, &h.camera.frame_id.clone(), jitter);
        h.spin(Duration::from_millis(100));
    }
    let after = h.commands();
    assert_eq!(before, after, "jitter sent PTZ commands");
    assert!(h.stat("aim_commands_suppressed").parse::<u64>().unwrap() >= 20);

    // 5. ~/look_at in the body frame: person B; then in the body camera's optical frame: A.
    let b_in_body = person_b.position() + Vector3::new(0.0, 0.0, MOUNT_Z_M);
    h.look_at("body", b_in_body);
    turns_to_and_frames(&mut h, &node, &sim, &person_b, "look_at in body: B");
    let a_in_camera = h
        .camera
        .body_t_optical
        .inverse_transform_point(&Point3::from(
            person_a.position() + Vector3::new(0.0, 0.0, MOUNT_Z_M),
        ));
    h.look_at(&h.camera.frame_id.clone(), a_in_camera.coords);
    turns_to_and_frames(
        &mut h,
        &node,
        &sim,
        &person_a,
        "look_at in the camera frame: A",
    );
    let pan: f64 = h.stat("ptz_pan_deg").parse().unwrap();
    assert!((pan - person_a.pan_deg).abs() < 0.5, "pan {pan}");

    // 6. A 3D detection (a box centre in the body frame) aims at person B.
    h.publish_boxes_3d("body", &[b_in_body]);
    turns_to_and_frames(&mut h, &node, &sim, &person_b, "detections_3d: B");
    assert_eq!(h.stat("aim_source_frame"), "body");

    // 7. Bad input: a warning each, no motion, no crash.
    let before = h.commands();
    h.publish_box("nowhere_optical", (320.0, 240.0), (30.0, 90.0));
    h.publish_box(&h.camera.frame_id.clone(), (f64::NAN, 240.0), (30.0, 90.0));
    h.look_at("body", Vector3::new(-5.0, 0.0, 0.3));
    h.look_at("body", Vector3::new(1.0, 0.0, -3.0));
    h.look_at("body", Vector3::new(f64::NAN, 0.0, 0.0));
    h.look_at("no_such_frame", Vector3::new(5.0, 0.0, 0.0));
    h.publish_boxes_3d("body", &[Vector3::new(f64::NAN, 1.0, 0.0)]);
    h.publish_boxes_3d("no_such_frame", &[Vector3::new(5.0, 0.0, 0.0)]);
    h.spin(Duration::from_secs(2));
    assert_eq!(h.commands(), before, "bad input moved the PTZ");
    let log = node.log();
    for expected in [
        "no camera_info with this frame_id",
        "not a number",
        "behind the robot",
        "outside the PTZ",
        "is not in TF",
        "box centre is not a number",
        "a detection in \"no_such_frame\" cannot be used",
    ] {
        assert!(
            log.contains(expected),
            "no warning with {expected:?}\n{log}"
        );
    }
    assert!(node_alive(&node), "the node died");
    drop(node);

    auto_trigger_aims_first_and_goes_home(&mut h, &sim, domain);
    policies_choose_among_two_people(&mut h, &sim, domain);
}

/// Spins until this node's first `~/stats`: the previous node's last ones may still be queued,
/// so it waits for one without a target (no detection was sent to this node yet).
fn wait_for_fresh_stats(h: &mut Harness, node: &NodeProcess, sim: &Sim, what: &str) {
    h.last_stats = None;
    let fresh = |h: &Harness| {
        h.last_stats
            .as_ref()
            .is_some_and(|stats| stat(stats, "aim_target_pan_deg").parse::<f64>().is_err())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fresh(h) && Instant::now() < deadline {
        h.spin(Duration::from_millis(200));
    }
    assert!(
        fresh(h),
        "{}",
        failure(node, sim, &format!("{what}: no ~/stats without a target"))
    );
}

/// With `auto_trigger` and `initial_ptz_enabled`: the PTZ goes to the initial pose at start-up
/// and no stream runs; a detection aims the PTZ and only then starts the stream (the simulator
/// takes the PTZ target, 0.3 s late, before the node asks it for the SDP offer), and the stream's set-up
/// does not turn the PTZ back; `trigger_timeout_secs` after the last detection, not before,
/// the PTZ returns to the initial pose and the stream stops.
fn auto_trigger_aims_first_and_goes_home(h: &mut Harness, sim: &Sim, domain: u32) {
    const TIMEOUT_SECS: f64 = 5.0;
    let person_b: Person = PERSON_B.parse().unwrap();
    let node = aiming_node(domain, sim)
        .param("autostart", "false")
        .param("auto_trigger", "true")
        .param("trigger_timeout_secs", &TIMEOUT_SECS.to_string())
        .param("initial_ptz_enabled", "true")
        .param("initial_pan_deg", "0.0")
        .param("initial_tilt_deg", "0.0")
        .param("initial_zoom", "1.0")
        .start();
    wait_for_fresh_stats(h, &node, sim, "auto_trigger");
    assert!(
        h.wait_for_pan(0.0, Duration::from_secs(15)),
        "{}",
        failure(
            &node,
            sim,
            "initial_ptz_enabled: the PTZ did not go to pan 0"
        )
    );
    let zoom: f64 = h.stat("ptz_zoom").parse().unwrap();
    assert!((zoom - 1.0).abs() < 0.01, "initial zoom: {zoom}");
    h.last_image = None;
    h.spin(Duration::from_secs(2));
    assert!(
        h.last_image.is_none(),
        "the stream ran before any detection"
    );
    assert_eq!(h.stat("state"), "stopped");

    // Detections of B at 5 Hz until B is centred and framed, the PTZ at rest on B (on the way,
    // the long way round from 0° to 345° at 60°/s, it passes A).
    let sim_log_start = sim.log().len();
    let start = Instant::now();
    let mut framed = false;
    let mut last_sent = Instant::now();
    while !framed && start.elapsed() < Duration::from_secs(15) {
        last_sent = Instant::now();
        h.detect(&person_b, &h.camera.frame_id.clone(), 0.0);
        h.spin(Duration::from_millis(200));
        let at_rest_on_b = h.last_stats.as_ref().is_some_and(|stats| {
            let pan: f64 = stat(stats, "ptz_pan_deg").parse().unwrap_or(f64::NAN);
            (pan - person_b.pan_deg).abs() < 0.5 && stat(stats, "ptz_moving") == "false"
        });
        framed = at_rest_on_b && h.last_image.as_ref().is_some_and(centred_and_framed);
    }
    assert!(
        framed,
        "{}",
        failure(&node, sim, "auto_trigger: person B not centred")
    );
    let sim_log = sim.log();
    let tail = &sim_log[sim_log_start..];
    let aimed_at = tail.find("PTZ target set");
    let offer_at = tail.find("offer sent");
    assert!(
        matches!((aimed_at, offer_at), (Some(a), Some(o)) if a < o),
        "{}",
        failure(
            &node,
            sim,
            &format!(
                "the stream was set up before the PTZ was aimed: PTZ target at {aimed_at:?}, offer at {offer_at:?}"
            )
        )
    );

    // Still aimed (and streaming) shortly before the timeout; home and stopped after it.
    h.spin(Duration::from_secs_f64(TIMEOUT_SECS - 2.0));
    let pan: f64 = h.stat("ptz_pan_deg").parse().unwrap();
    assert!(
        (pan - person_b.pan_deg).abs() < 0.5,
        "{}",
        failure(
            &node,
            sim,
            &format!("left B before trigger_timeout_secs: pan {pan}")
        )
    );
    assert_eq!(h.stat("state"), "streaming");
    assert!(
        h.wait_for_pan(0.0, Duration::from_secs(15)),
        "{}",
        failure(
            &node,
            sim,
            "the PTZ did not go home after trigger_timeout_secs"
        )
    );
    let home_after = last_sent.elapsed();
    assert!(
        home_after >= Duration::from_secs_f64(TIMEOUT_SECS),
        "home after only {home_after:?}"
    );
    let zoom: f64 = h.stat("ptz_zoom").parse().unwrap();
    assert!((zoom - 1.0).abs() < 0.01, "home zoom: {zoom}");
    let stopped = Instant::now();
    while h.stat("state") != "stopped" && stopped.elapsed() < Duration::from_secs(5) {}
    assert_eq!(
        h.stat("state"),
        "stopped",
        "{}",
        failure(&node, sim, "the stream kept running")
    );
    drop(node);
}

fn node_alive(node: &NodeProcess) -> bool {
    std::fs::metadata(format!("/proc/{}", node.child.id())).is_ok()
}

/// Two people seen in every detection message: each policy chooses as it says, keeps its
/// choice while that person is seen (largest, highest_score), or moves between them
/// (round_robin). A node per policy, one after the other, in this same process's domain.
fn policies_choose_among_two_people(h: &mut Harness, sim: &Sim, domain: u32) {
    let a: Person = PERSON_A.parse().unwrap();
    let b: Person = PERSON_B.parse().unwrap();
    // B is nearer (a larger box); A is the surer detection.
    let boxes = |h: &Harness| {
        let (ca, sa) = h.box_of(&a);
        let (cb, sb) = h.box_of(&b);
        [(ca, sa, 0.95), (cb, sb, 0.6)]
    };
    for (policy, expected) in [
        ("largest", &[b][..]),
        ("highest_score", &[a][..]),
        ("round_robin", &[a, b][..]),
    ] {
        let node = aiming_node(domain, sim)
            .param("aim_policy", policy)
            .param("aim_dwell_secs", "2.0")
            .param("trigger_timeout_secs", "600.0")
            .start();
        wait_for_fresh_stats(h, &node, sim, policy);
        // Detections at 5 Hz for 9 s; record where the PTZ is told to look.
        let mut targets = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(9) {
            let message = boxes(h);
            h.publish_boxes(&h.camera.frame_id.clone(), &message);
            h.spin(Duration::from_millis(200));
            if let Some(stats) = &h.last_stats
                && let Ok(pan) = stat(stats, "aim_target_pan_deg").parse::<f64>()
                && targets.last() != Some(&pan.round())
            {
                targets.push(pan.round());
            }
        }
        let pans: Vec<f64> = expected.iter().map(|p| p.pan_deg).collect();
        let log = || {
            failure(
                &node,
                sim,
                &format!("{policy}: targets {targets:?}, expected {pans:?}"),
            )
        };
        assert!(targets.iter().all(|t| pans.contains(t)), "{}", log());
        match policy {
            // The same person throughout.
            "largest" | "highest_score" => assert_eq!(targets.len(), 1, "{}", log()),
            // Dwell 2 s over 9 s: at least three changes of person.
            _ => assert!(targets.len() >= 4, "{}", log()),
        }
        drop(node);
    }
}
