//! The compressed image outputs, as image_transport's plugins name them:
//!
//! - `image_raw/ffmpeg`: `ffmpeg_image_transport_msgs/FFMPEGPacket`, the camera's H.264
//!   passed through, one access unit per message ([`crate::media::passthrough`]);
//! - `image_raw/foxglove`: `foxglove_msgs/CompressedVideo`, the same access units;
//! - `image_raw/compressed`: `sensor_msgs/CompressedImage`, JPEG ([`crate::media::jpeg`]).
//!
//! Each costs nothing while nobody subscribes: [`crate::ros`] watches the subscriber counts
//! and sets the demands the stream reads. The headers are those of `image_raw` for the same
//! frame (one [`Stamper`] for all of them).

use std::sync::{Arc, Mutex};

use r2r::QosProfile;
use r2r::ffmpeg_image_transport_msgs::msg::FFMPEGPacket;
use r2r::foxglove_msgs::msg::CompressedVideo;
use r2r::sensor_msgs::msg::CompressedImage;

use crate::media::depacketizer::AccessUnit;
use crate::media::handoff::DropOldestQueue;
use crate::media::jpeg::JpegPicture;
use crate::media::passthrough::Passthrough;
use crate::ros::messages::{self, Stamper};
use crate::ros::recording::FrameRecorder;
use crate::stats::{StreamStats, bump};

/// History of the passthrough topics: about one second (one intra-refresh wave) at 30 fps, so
/// that a reliable subscriber that falls briefly behind loses nothing it needs to decode.
pub const PASSTHROUGH_QOS_DEPTH: usize = 30;
/// Access units waiting for the passthrough publisher; older ones are dropped and counted.
pub const PASSTHROUGH_QUEUE: usize = 8;
/// JPEG pictures waiting for their publisher.
pub const JPEG_QUEUE: usize = 1;

/// `FFMPEGPacket.encoding`: codec; the pixel format the camera encoded; the format a decoder
/// should convert to; the ROS encoding of the original image (ffmpeg_image_transport takes the
/// codec from the first field and its output encoding from the last).
pub const FFMPEG_ENCODING: &str = "h264;yuv420p;bgr8;bgr8";
/// `CompressedVideo.format`.
pub const FOXGLOVE_FORMAT: &str = "h264";
/// `CompressedImage.format` as image_transport's compressed plugin writes it for bgr8 images.
pub const JPEG_FORMAT: &str = "bgr8; jpeg compressed bgr8";
/// `FFMPEGPacket.flags` of a keyframe (`AV_PKT_FLAG_KEY`).
const FLAG_KEY: u8 = 1;

/// QoS of `image_raw/ffmpeg` and `image_raw/foxglove`: reliable, since a lost message breaks
/// decoding until the next keyframe.
pub fn passthrough_qos() -> QosProfile {
    QosProfile::default()
        .keep_last(PASSTHROUGH_QOS_DEPTH)
        .reliable()
}

/// Where the passed-through access units go.
pub struct PassthroughPublishers {
    pub ffmpeg: Option<r2r::Publisher<FFMPEGPacket>>,
    pub foxglove: Option<r2r::Publisher<CompressedVideo>>,
    /// The event recording (`image_raw/foxglove`'s messages, with their `camera_info`).
    pub recording: FrameRecorder,
}

/// Publishes every access unit from `access_units` on the passthrough topics that exist, and
/// records it while the event recording wants it, until the queue is closed.
pub async fn publish_passthrough(
    access_units: Arc<DropOldestQueue<AccessUnit>>,
    mut publishers: PassthroughPublishers,
    frame_id: String,
    stamper: Arc<Mutex<Stamper>>,
    stats: Arc<StreamStats>,
) {
    let mut passthrough = Passthrough::new();
    let mut warned = false;
    while let Some(au) = access_units.pop().await {
        let Some(frame) = passthrough.frame(&au) else {
            continue;
        };
        let header = messages::frame_header(&stamper, frame.first_arrival, &frame_id);
        if publishers.foxglove.is_some() || publishers.recording.recording.is_feeding() {
            let message = CompressedVideo {
                timestamp: header.stamp.clone(),
                frame_id: frame_id.clone(),
                data: frame.data.clone(),
                format: FOXGLOVE_FORMAT.to_string(),
            };
            publishers.recording.on_frame(&frame, &header, &message);
            if let Some(publisher) = &publishers.foxglove {
                match publisher.publish(&message) {
                    Ok(()) => bump(&stats.foxglove_published),
                    Err(error) => warn_once(&mut warned, "image_raw/foxglove", &error),
                }
            }
        }
        if let Some(publisher) = &publishers.ffmpeg {
            let message = FFMPEGPacket {
                header,
                width: i32::try_from(frame.width).unwrap_or(i32::MAX),
                height: i32::try_from(frame.height).unwrap_or(i32::MAX),
                encoding: FFMPEG_ENCODING.to_string(),
                pts: frame.pts_90khz,
                flags: if frame.keyframe { FLAG_KEY } else { 0 },
                is_bigendian: false,
                data: frame.data,
            };
            match publisher.publish(&message) {
                Ok(()) => bump(&stats.ffmpeg_published),
                Err(error) => warn_once(&mut warned, "image_raw/ffmpeg", &error),
            }
        }
    }
}

/// Publishes the JPEG pictures from `pictures` until the queue is closed.
pub async fn publish_jpeg(
    pictures: Arc<DropOldestQueue<JpegPicture>>,
    publisher: r2r::Publisher<CompressedImage>,
    frame_id: String,
    stamper: Arc<Mutex<Stamper>>,
    stats: Arc<StreamStats>,
) {
    let mut warned = false;
    while let Some(picture) = pictures.pop().await {
        let message = CompressedImage {
            header: messages::frame_header(&stamper, picture.first_arrival, &frame_id),
            format: JPEG_FORMAT.to_string(),
            data: picture.data,
        };
        match publisher.publish(&message) {
            Ok(()) => bump(&stats.jpeg_published),
            Err(error) => warn_once(&mut warned, "image_raw/compressed", &error),
        }
    }
}

/// A failed publish loses one message; the first is logged, all are visible as the topic's
/// published count not growing.
fn warn_once(warned: &mut bool, topic: &str, error: &r2r::Error) {
    if !std::mem::replace(warned, true) {
        tracing::error!(%error, topic, "could not publish; message lost (further failures are not logged)");
    }
}
