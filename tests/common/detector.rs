//! What a person detector on a body camera publishes, for the aiming tests.

use r2r::std_msgs::msg::Header;
use r2r::vision_msgs::msg::{
    BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis, ObjectHypothesisWithPose,
    Point2D, Pose2D,
};

/// A detector's box: centre (u, v), size (width, height) in pixels, and score.
pub type PersonBox = ((f64, f64), (f64, f64), f64);

/// One detection message with a `person` box per entry of `boxes`, each with `header`.
pub fn person_boxes(header: Header, boxes: &[PersonBox]) -> Detection2DArray {
    let detections = boxes
        .iter()
        .map(|&((u, v), (w, h), score)| Detection2D {
            header: header.clone(),
            results: vec![ObjectHypothesisWithPose {
                hypothesis: ObjectHypothesis {
                    class_id: "person".into(),
                    score,
                },
                ..Default::default()
            }],
            bbox: BoundingBox2D {
                center: Pose2D {
                    position: Point2D { x: u, y: v },
                    theta: 0.0,
                },
                size_x: w,
                size_y: h,
            },
            id: String::new(),
        })
        .collect();
    Detection2DArray { header, detections }
}
