//! spot_ptz_stream: stream Boston Dynamics Spot CAM (PTZ) video over WebRTC into ROS 2.
//!
//! The library is ROS-free. One frame travels through these modules, in order:
//!
//! 1. [`robot`] — gRPC/TLS login and Spot CAM setup (screen, stream quality, PTZ).
//! 2. [`signalling`] — HTTPS SDP offer/answer with the camera (`/h264.sdp`).
//! 3. [`webrtc_session`] — the WebRTC answerer; hands every video RTP packet to the stream task.
//! 4. [`depacketizer`] — RTP → Annex-B H.264 access units, gated on SPS/PPS, loss detection.
//! 5. [`decoder`] — openh264 on its own thread, I420 → bgr8 with `yuv`.
//! 6. [`frame_queue`] — the bounded, drop-oldest hand-off to whoever publishes; the pixel
//!    buffers come back through [`buffer_pool`] once published.
//! 7. [`stream`] — the state machine tying it together, with reconnects and statistics ([`stats`]).
//!
//! [`recorder`] writes the access units to MP4 without re-encoding (the probe's
//! `--save-video`). [`sim`] is the simulated robot and camera used by tests, benchmarks and
//! the demo.

pub mod buffer_pool;
pub mod camera_info;
pub mod decoder;
pub mod depacketizer;
pub mod frame_queue;
pub mod frame_tag;
pub mod mp4_writer;
pub mod node_params;
pub mod proto;
pub mod recorder;
pub mod robot;
#[cfg(feature = "ros")]
pub mod ros;
pub mod shutdown;
pub mod signalling;
pub mod sim;
pub mod snapshot;
pub mod stats;
pub mod status_report;
pub mod stream;
pub mod trigger;
pub mod udp_runtime;
pub mod webrtc_session;
