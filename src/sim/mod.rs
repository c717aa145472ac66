//! `spot_cam_sim`: a simulated Spot robot and Spot CAM speaking the real protocols.
//!
//! - [`tls`]: a test root CA and per-authority server certificates.
//! - [`auth`] and [`robot_services`]: the robot's gRPC services (auth, directory, Spot CAM).
//! - [`signalling_server`]: the camera's HTTPS `/h264.sdp` offer/answer endpoint.
//! - [`offerer`] and [`session`]: one WebRTC offerer peer per signalling session, streaming;
//!   [`link`]: the network between it and the client, with the faults the world has.
//! - [`scene`] and [`camera`]: the synthetic scene, encoded live and fanned out; [`encoder`]:
//!   openh264 with IDRs, or ([`x264_encoder`]) libx264 with intra refresh like the Spot CAM;
//!   [`frame_tag`]: the frame number drawn into every picture (tests and benchmarks read it).
//! - [`state`]: what the gRPC services change and the camera reads (screen, stream params, PTZ).

pub mod auth;
pub mod camera;
pub mod encoder;
pub mod frame_tag;
pub mod link;
pub mod offerer;
pub mod people;
pub mod robot_services;
pub mod scene;
pub mod session;
pub mod signalling_server;
pub mod simulator;
pub mod state;
pub mod tls;
#[cfg(feature = "libavcodec")]
pub mod x264_encoder;
