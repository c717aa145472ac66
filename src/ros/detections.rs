//! The two detection inputs as one stream: `detections` (`vision_msgs/Detection2DArray`, boxes
//! in a body camera's picture) and `detections_3d` (`vision_msgs/Detection3DArray`, boxes with
//! positions in any frame in TF). Both start the stream (the auto-trigger) and aim the PTZ.

use r2r::QosProfile;
use r2r::std_msgs::msg::Header;
use r2r::vision_msgs::msg::{Detection2DArray, Detection3DArray, ObjectHypothesisWithPose};

use crate::ros::NodeError;
use crate::trigger::{Hypothesis, is_wanted};

/// One detection message, of either kind.
#[derive(Clone, Debug)]
pub enum Detections {
    Boxes2d(Detection2DArray),
    Boxes3d(Detection3DArray),
}

impl Detections {
    /// The message's header: the frame its boxes are in, and when they were seen.
    pub fn header(&self) -> &Header {
        match self {
            Self::Boxes2d(message) => &message.header,
            Self::Boxes3d(message) => &message.header,
        }
    }

    /// Each detection's class hypotheses, in message order.
    pub fn results(&self) -> Vec<&[ObjectHypothesisWithPose]> {
        match self {
            Self::Boxes2d(message) => message
                .detections
                .iter()
                .map(|d| d.results.as_slice())
                .collect(),
            Self::Boxes3d(message) => message
                .detections
                .iter()
                .map(|d| d.results.as_slice())
                .collect(),
        }
    }

    /// Every class hypothesis of the message, for the auto-trigger.
    pub fn hypotheses(&self) -> Vec<Hypothesis> {
        self.results()
            .into_iter()
            .flatten()
            .map(|r| Hypothesis {
                class_id: r.hypothesis.class_id.clone(),
                score: r.hypothesis.score,
            })
            .collect()
    }
}

/// The best score among `results` of a class in `class_ids`, when it is at least `min_score`.
pub fn person_score(
    results: &[ObjectHypothesisWithPose],
    class_ids: &[String],
    min_score: f64,
) -> Option<f64> {
    results
        .iter()
        .filter(|r| {
            is_wanted(
                class_ids,
                min_score,
                &r.hypothesis.class_id,
                r.hypothesis.score,
            )
        })
        .map(|r| r.hypothesis.score)
        .max_by(f64::total_cmp)
}

/// Subscribes to both inputs (best effort, as detectors publish) and merges them.
pub fn subscribe(
    node: &mut r2r::Node,
) -> Result<impl futures::Stream<Item = Detections> + Unpin + use<>, NodeError> {
    use futures::StreamExt as _;
    let ros = |what: &'static str| move |source| NodeError::Ros { what, source };
    let boxes_2d = node
        .subscribe::<Detection2DArray>("detections", QosProfile::sensor_data())
        .map_err(ros("subscribing to detections"))?;
    let boxes_3d = node
        .subscribe::<Detection3DArray>("detections_3d", QosProfile::sensor_data())
        .map_err(ros("subscribing to detections_3d"))?;
    Ok(futures::stream::select(
        boxes_2d.map(Detections::Boxes2d),
        boxes_3d.map(Detections::Boxes3d),
    ))
}
