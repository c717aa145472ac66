//! `ptz_detections` against the simulator's ground truth: the simulator's world has two people
//! (`--person-at`), drawn as red boxes where the PTZ sees them; this test process is a person
//! detector on a simulated body camera (`sim::people::BodyCamera`, as in
//! `node_aims_at_people`) and a viewer of `image_raw` and `ptz_detections`. Every published box
//! must overlap the red box the simulator drew in the very frame with the same header (IoU from
//! the pixels), with the PTZ still and while it pans; each person keeps one id; the aimed one is
//! marked; nobody outside the picture is listed.
//!
//! One test function: r2r reads ROS_DOMAIN_ID from the environment once per process.
#![cfg(feature = "ros")]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Sim;
use common::detector::{PersonBox, person_boxes};
use common::node::{NodeLaunch, NodeProcess, unique_domain_id};
use futures::{FutureExt as _, StreamExt as _};
use nalgebra::Vector3;
use r2r::QosProfile;
use r2r::sensor_msgs::msg::Image;
use r2r::vision_msgs::msg::Detection2DArray;
use spot_ptz_stream::ros::aiming::transform_of;
use spot_ptz_stream::sim::people::{BodyCamera, Person};

const CAMERA_INFO_TOPIC: &str = "/sim_front_camera/camera_info";
const MOUNT_Z_M: f64 = 0.3;
/// A straight ahead (the PTZ's start), B to the right and further away: both in the picture.
const PERSON_A: &str = "0,0,6";
const PERSON_B: &str = "14,3,7";
const MIN_IOU: f64 = 0.5;

/// A box: left, top, right, bottom (pixels, right and bottom exclusive).
type Rect = (f64, f64, f64, f64);

fn iou(a: Rect, b: Rect) -> f64 {
    let w = (a.2.min(b.2) - a.0.max(b.0)).max(0.0);
    let h = (a.3.min(b.3) - a.1.max(b.1)).max(0.0);
    let inter = w * h;
    let area = |r: Rect| (r.2 - r.0) * (r.3 - r.1);
    inter / (area(a) + area(b) - inter)
}

/// The red boxes the simulator drew, from the pixels: runs of columns with red in them.
fn red_boxes(image: &Image) -> Vec<Rect> {
    let (w, h, step) = (
        image.width as usize,
        image.height as usize,
        image.step as usize,
    );
    let red = |x: usize, y: usize| {
        let i = y * step + x * 3;
        let (b, g, r) = (image.data[i], image.data[i + 1], image.data[i + 2]);
        r > 150 && g < 100 && b < 110
    };
    let columns: Vec<Option<(usize, usize)>> = (0..w)
        .map(|x| {
            let rows: Vec<usize> = (0..h).filter(|&y| red(x, y)).collect();
            (rows.len() >= 3).then(|| (rows[0], rows[rows.len() - 1]))
        })
        .collect();
    let mut boxes: Vec<Rect> = Vec::new();
    let mut run: Option<(usize, usize, usize)> = None; // first column, top, bottom
    for x in 0..=w {
        match (columns.get(x).copied().flatten(), run) {
            (Some((top, bottom)), Some((x0, t, b))) => run = Some((x0, t.min(top), b.max(bottom))),
            (Some((top, bottom)), None) => run = Some((x, top, bottom)),
            (None, Some((x0, t, b))) => {
                if x - x0 >= 3 {
                    boxes.push((x0 as f64, t as f64, x as f64, (b + 1) as f64));
                }
                run = None;
            }
            (None, None) => {}
        }
    }
    boxes
}

/// The part of `rect` inside a `width` x `height` picture (the simulator's boxes end at its
/// edges).
fn clipped(rect: Rect, image: &Image) -> Rect {
    let (w, h) = (f64::from(image.width), f64::from(image.height));
    (
        rect.0.clamp(0.0, w),
        rect.1.clamp(0.0, h),
        rect.2.clamp(0.0, w),
        rect.3.clamp(0.0, h),
    )
}

fn rect_of(detection: &r2r::vision_msgs::msg::Detection2D) -> Rect {
    let (c, b) = (&detection.bbox.center.position, &detection.bbox);
    (
        c.x - b.size_x / 2.0,
        c.y - b.size_y / 2.0,
        c.x + b.size_x / 2.0,
        c.y + b.size_y / 2.0,
    )
}

fn is_aimed(detection: &r2r::vision_msgs::msg::Detection2D) -> bool {
    detection
        .results
        .iter()
        .any(|r| r.hypothesis.class_id == "aim_target")
}

/// One frame: the picture and the people published with it.
struct Pair {
    image: Image,
    people: Detection2DArray,
}

type Stamp = (i32, u32);

struct Harness {
    node: r2r::Node,
    clock: r2r::Clock,
    camera: BodyCamera,
    detections: r2r::Publisher<r2r::vision_msgs::msg::Detection2DArray>,
    camera_info: r2r::Publisher<r2r::sensor_msgs::msg::CameraInfo>,
    ptz_command: r2r::Publisher<r2r::sensor_msgs::msg::JointState>,
    images: std::pin::Pin<Box<dyn futures::Stream<Item = Image>>>,
    people: std::pin::Pin<Box<dyn futures::Stream<Item = Detection2DArray>>>,
    pending_images: HashMap<Stamp, Image>,
    pending_people: HashMap<Stamp, Detection2DArray>,
    _tf_static: r2r::Publisher<r2r::tf2_msgs::msg::TFMessage>,
}

impl Harness {
    fn new() -> Self {
        let ctx = r2r::Context::create().expect("ROS context");
        let mut node = r2r::Node::create(ctx, "ptz_detections_test", "").expect("node");
        let camera = BodyCamera::front();
        let latched = QosProfile::default()
            .keep_last(10)
            .reliable()
            .transient_local();
        let tf_static = node
            .create_publisher::<r2r::tf2_msgs::msg::TFMessage>("/tf_static", latched)
            .expect("tf_static");
        let mut clock = r2r::Clock::create(r2r::ClockType::RosTime).expect("clock");
        let stamp = r2r::Clock::to_builtin_time(&clock.get_now().expect("now"));
        tf_static
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
        Self {
            detections: node
                .create_publisher("/detections", QosProfile::default())
                .expect("detections"),
            camera_info: node
                .create_publisher(CAMERA_INFO_TOPIC, QosProfile::sensor_data())
                .expect("camera_info"),
            ptz_command: node
                .create_publisher("/spot_ptz_stream/ptz_command", QosProfile::default())
                .expect("ptz_command"),
            images: Box::pin(
                node.subscribe::<Image>("/image_raw", QosProfile::sensor_data().keep_last(30))
                    .expect("images"),
            ),
            people: Box::pin(
                node.subscribe::<Detection2DArray>(
                    "/ptz_detections",
                    QosProfile::sensor_data().keep_last(30),
                )
                .expect("ptz_detections"),
            ),
            pending_images: HashMap::new(),
            pending_people: HashMap::new(),
            _tf_static: tf_static,
            camera,
            node,
            clock,
        }
    }

    fn now(&mut self) -> r2r::builtin_interfaces::msg::Time {
        r2r::Clock::to_builtin_time(&self.clock.get_now().expect("now"))
    }

    /// Both people as the body camera's detector sees them, and its camera_info.
    fn detect_both(&mut self) {
        let header = r2r::std_msgs::msg::Header {
            stamp: self.now(),
            frame_id: self.camera.frame_id.clone(),
        };
        let info = r2r::sensor_msgs::msg::CameraInfo {
            header: header.clone(),
            width: self.camera.width,
            height: self.camera.height,
            distortion_model: "plumb_bob".into(),
            d: vec![0.0; 5],
            k: self.camera.k().to_vec(),
            ..Default::default()
        };
        self.camera_info.publish(&info).expect("camera_info");
        let boxes: Vec<PersonBox> = [PERSON_A, PERSON_B]
            .iter()
            .map(|p| {
                let person: Person = p.parse().expect("a person");
                let in_body = person.position() + Vector3::new(0.0, 0.0, MOUNT_Z_M);
                let (centre, size) = self
                    .camera
                    .detect(&in_body, 1.7)
                    .expect("the body camera sees the person");
                (centre, size, 0.9)
            })
            .collect();
        self.detections
            .publish(&person_boxes(header, &boxes))
            .expect("detections");
    }

    /// Spins for `duration`, detecting both people every 100 ms; returns the frames whose
    /// picture and people both arrived.
    fn collect(&mut self, duration: Duration) -> Vec<Pair> {
        let deadline = Instant::now() + duration;
        let mut next_detection = Instant::now();
        let mut pairs = Vec::new();
        while Instant::now() < deadline {
            if Instant::now() >= next_detection {
                self.detect_both();
                next_detection += Duration::from_millis(100);
            }
            self.node.spin_once(Duration::from_millis(5));
            let stamp = |h: &r2r::std_msgs::msg::Header| (h.stamp.sec, h.stamp.nanosec);
            while let Some(Some(image)) = self.images.next().now_or_never() {
                self.pending_images.insert(stamp(&image.header), image);
            }
            while let Some(Some(people)) = self.people.next().now_or_never() {
                self.pending_people.insert(stamp(&people.header), people);
            }
            let matched: Vec<Stamp> = self
                .pending_images
                .keys()
                .filter(|s| self.pending_people.contains_key(s))
                .copied()
                .collect();
            for s in matched {
                let image = self.pending_images.remove(&s).expect("image");
                let people = self.pending_people.remove(&s).expect("people");
                pairs.push(Pair { image, people });
            }
        }
        pairs
    }

    fn pan_to(&mut self, pan_deg: f64) {
        let message = r2r::sensor_msgs::msg::JointState {
            name: vec!["pan".into()],
            position: vec![pan_deg.to_radians()],
            ..Default::default()
        };
        self.ptz_command.publish(&message).expect("ptz_command");
    }
}

/// Checks one frame: every red box wholly inside the picture has a published box on it, and
/// each published box (clipped to the picture, as the simulator's are) overlaps a red box by at
/// least [`MIN_IOU`]. Returns each published box's IoU; `what` and `logs` make the message.
fn check_boxes(pair: &Pair, what: &str, logs: impl Fn(&str) -> String) -> Vec<f64> {
    let red = red_boxes(&pair.image);
    let published: Vec<Rect> = pair
        .people
        .detections
        .iter()
        .map(|d| clipped(rect_of(d), &pair.image))
        .collect();
    let scene = format!("{what}: published {published:?}, drawn {red:?}");
    let width = f64::from(pair.image.width);
    let missed = red
        .iter()
        .filter(|r| r.0 > 1.0 && r.2 < width - 1.0)
        .filter(|r| published.iter().all(|p| iou(*p, **r) < 0.1))
        .count();
    assert_eq!(
        missed,
        0,
        "{}",
        logs(&format!("a person not listed, {scene}"))
    );
    let ious: Vec<f64> = published
        .iter()
        .map(|p| red.iter().map(|r| iou(*p, *r)).fold(0.0, f64::max))
        .collect();
    for &iou in &ious {
        assert!(
            iou >= MIN_IOU,
            "{}",
            logs(&format!("a box off its person (IoU {iou:.2}), {scene}"))
        );
        if iou < 0.75 {
            eprintln!("low IoU {iou:.2} at {:?}, {scene}", pair.image.header.stamp);
        }
    }
    ious
}

/// Mean and worst of `values`.
fn mean_and_worst(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    (mean, values.iter().copied().fold(f64::MAX, f64::min))
}

fn failure(node: &NodeProcess, sim: &Sim, what: &str) -> String {
    format!("{what}\nnode log:\n{}\nsim log:\n{}", node.log(), sim.log())
}

/// With `SPOT_PTZ_STREAM_AIM_PICTURES=<dir>`, saves the frame with the published boxes drawn
/// in green as `<dir>/<name>.png` (how the README's picture was made).
fn save_picture(pair: &Pair, name: &str) {
    let Ok(dir) = std::env::var("SPOT_PTZ_STREAM_AIM_PICTURES") else {
        return;
    };
    let (w, h) = (pair.image.width as usize, pair.image.height as usize);
    let mut rgb: Vec<u8> = pair
        .image
        .data
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    for detection in &pair.people.detections {
        let (l, t, r, b) = rect_of(detection);
        let colour = if is_aimed(detection) {
            [0, 255, 0]
        } else {
            [255, 255, 0]
        };
        let clamp = |v: f64, max: usize| (v.round().max(0.0) as usize).min(max - 1);
        let (l, t, r, b) = (clamp(l, w), clamp(t, h), clamp(r, w), clamp(b, h));
        for thickness in 0..2 {
            for x in l..=r {
                for y in [t + thickness, b.saturating_sub(thickness)] {
                    rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&colour);
                }
            }
            for y in t..=b {
                for x in [l + thickness, r.saturating_sub(thickness)] {
                    rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&colour);
                }
            }
        }
    }
    let file = std::fs::File::create(std::path::Path::new(&dir).join(format!("{name}.png")))
        .expect("picture file");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&rgb))
        .expect("png");
}

#[test]
fn the_people_in_the_ptz_picture_match_what_the_camera_shows() {
    let domain = unique_domain_id();
    // The only test in this binary: no other thread reads the environment concurrently.
    unsafe { std::env::set_var("ROS_DOMAIN_ID", domain.to_string()) };
    let sim = Sim::start_640x360(&["--person-at", PERSON_A, "--person-at", PERSON_B]);
    let node = NodeLaunch::new(domain, Some(&sim))
        .param(
            "detection_camera_info_topics",
            &format!("[\"{CAMERA_INFO_TOPIC}\"]"),
        )
        .param("ptz_mount_xyz", &format!("[0.0, 0.0, {MOUNT_Z_M}]"))
        // Small enough that aiming at A keeps zoom 1 and B in the picture.
        .param("target_height_fraction", "0.2")
        .param("ptz_command_hold_secs", "60.0")
        .param("trigger_timeout_secs", "600.0")
        .start();
    let mut h = Harness::new();

    // 1. The PTZ still: both people, each box on its red box, headers those of the image.
    let mut still = h.collect(Duration::from_secs(8));
    // The first frames come before the first detection message reached the node.
    still.retain(|p| p.people.detections.len() == 2);
    assert!(
        still.len() >= 30,
        "{}",
        failure(
            &node,
            &sim,
            &format!("only {} frames with both people in 8 s", still.len())
        )
    );
    let mut ids: Vec<String> = still[0]
        .people
        .detections
        .iter()
        .map(|d| d.id.clone())
        .collect();
    ids.sort();
    let logs = |what: &str| failure(&node, &sim, what);
    let mut ious_still = Vec::new();
    for pair in &still {
        assert_eq!(pair.people.header, pair.image.header, "same header");
        let mut these: Vec<String> = pair
            .people
            .detections
            .iter()
            .map(|d| d.id.clone())
            .collect();
        these.sort();
        assert_eq!(these, ids, "each person keeps one id");
        let aimed: Vec<&r2r::vision_msgs::msg::Detection2D> = pair
            .people
            .detections
            .iter()
            .filter(|d| is_aimed(d))
            .collect();
        assert_eq!(aimed.len(), 1, "one aim target: {:?}", pair.people);
        // A (nearer, larger) is the one aimed at, straight ahead in the middle.
        assert!(
            (aimed[0].bbox.center.position.x - 320.0).abs() < 20.0,
            "the aim target is the person ahead: {:?}",
            aimed[0].bbox
        );
        for d in &pair.people.detections {
            assert_eq!(d.header.frame_id, h.camera.frame_id, "the source camera");
            assert_eq!(d.results[0].hypothesis.class_id, "person");
        }
        ious_still.extend(check_boxes(pair, "PTZ still", logs));
    }
    save_picture(&still[still.len() - 1], "ptz-detections");

    // 2. While the PTZ pans (60°/s in the simulator) from 0° to 40° and back.
    let mut moving = Vec::new();
    for pan_deg in [40.0, 0.0] {
        h.pan_to(pan_deg);
        moving.extend(h.collect(Duration::from_millis(1500)));
    }
    let mut ious_moving = Vec::new();
    let mut left_out = 0;
    for pair in &moving {
        ious_moving.extend(check_boxes(pair, "PTZ panning", logs));
        left_out += 2 - pair.people.detections.len();
    }
    assert!(
        left_out > 0,
        "at 40° person A is outside the picture and must be left out"
    );
    assert!(
        ious_moving.len() >= 40,
        "{} boxes while panning",
        ious_moving.len()
    );
    let (still_mean, still_worst) = mean_and_worst(&ious_still);
    let (moving_mean, moving_worst) = mean_and_worst(&ious_moving);
    eprintln!(
        "IoU still: mean {still_mean:.3}, worst {still_worst:.3} over {} frames; panning: mean {moving_mean:.3}, worst {moving_worst:.3} over {} boxes ({} frames)",
        still.len(),
        ious_moving.len(),
        moving.len()
    );
}
