//! Micro-benchmarks of the node's last step: turning a decoded 1080p bgr8 frame into
//! `image_raw` + `camera_info` messages and publishing them with r2r. Needs the `ros` feature
//! and a ROS 2 environment (`source scripts/ros-env.sh`).
//!
//! `serialized_in_place` is what the node does (the message fields are written in front of the
//! pixels and the buffer is published as a serialized message, see `src/ros/image_cdr.rs`);
//! `typed` is r2r's typed API for comparison (the pixels are copied into a new C message,
//! then serialized). Publishing is measured with no subscriber matched: the delivery to
//! another process is not counted (the end-to-end benchmark has it).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r2r::QosProfile;
use r2r::sensor_msgs::msg::{CameraInfo, Image};
use r2r::std_msgs::msg::Header;
use spot_ptz_stream::ros::{image_cdr, messages};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FRAME_ID: &str = "spot_cam_ptz_optical";

fn header() -> Header {
    Header {
        stamp: messages::Stamper::new().stamp(Instant::now()),
        frame_id: FRAME_ID.to_string(),
    }
}

fn publish(c: &mut Criterion) {
    let pixels_len = (WIDTH * HEIGHT * 3) as usize;
    let ctx = r2r::Context::create().expect("ROS context");
    let mut node = r2r::Node::create(ctx, "bench_publisher", "").expect("node");
    let qos = QosProfile::default().keep_last(1);
    let raw_pub = node
        .create_publisher_untyped("bench_image_raw", "sensor_msgs/msg/Image", qos.clone())
        .expect("untyped image publisher");
    let typed_pub = node
        .create_publisher::<Image>("bench_image_typed", qos.clone())
        .expect("image publisher");
    let info_pub = node
        .create_publisher::<CameraInfo>("bench_camera_info", qos)
        .expect("camera_info publisher");

    let mut group = c.benchmark_group("ros_message_1080p");
    group.throughput(Throughput::Elements(1));

    // The node's path: the decoder left the prefix's room in front of the pixels.
    let mut message = vec![128u8; image_cdr::prefix_len(FRAME_ID) + pixels_len];
    group.bench_function("serialized_in_place", |b| {
        b.iter(|| {
            let header = header();
            image_cdr::write_prefix(&mut message, &header.stamp, FRAME_ID, WIDTH, HEIGHT)
                .expect("prefix");
            raw_pub.publish_raw(&message).expect("publish image");
            let info = messages::camera_info(header, WIDTH, HEIGHT, None, None);
            info_pub.publish(&info).expect("publish camera_info");
        });
    });

    // r2r's typed API, as the node published before.
    let image = Image {
        header: header(),
        height: HEIGHT,
        width: WIDTH,
        encoding: image_cdr::ENCODING.to_string(),
        is_bigendian: 0,
        step: WIDTH * 3,
        data: vec![128u8; pixels_len],
    };
    group.bench_function("typed", |b| {
        b.iter(|| {
            typed_pub.publish(black_box(&image)).expect("publish image");
            let info = messages::camera_info(header(), WIDTH, HEIGHT, None, None);
            info_pub.publish(&info).expect("publish camera_info");
        });
    });
    group.finish();
    node.spin_once(Duration::ZERO);
}

criterion_group!(benches, publish);
criterion_main!(benches);
