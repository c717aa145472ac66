//! spot_ptz_stream: stream Boston Dynamics Spot CAM (PTZ) video over WebRTC into ROS 2.
//!
//! The library is ROS-free; each folder is one room with one job, and the arrows point one way
//! (robot and camera link → media → whoever consumes frames). One frame travels through:
//!
//! 1. [`robot`] — gRPC/TLS login and Spot CAM setup (screen, stream quality, PTZ).
//! 2. [`camera_link`] — the link to the camera: [`camera_link::signalling`] (HTTPS SDP
//!    offer/answer on `/h264.sdp`), [`camera_link::answerer`] (the WebRTC answerer that hands
//!    every video RTP packet to the stream task), [`camera_link::sockets`] (the UDP sockets
//!    WebRTC uses), [`camera_link::port_range`] (the local UDP ports they may bind, for a
//!    firewall) and [`camera_link::peer`] (the peer-connection set-up shared with the
//!    simulated camera).
//! 3. [`media`] — the media path: [`media::depacketizer`] (RTP → Annex-B access units, loss
//!    detection), [`media::decoder`] (H.264 on its own thread; [`media::catch_up`] keeps what a
//!    new consumer's first picture needs while nobody watches), [`media::convert`] (I420 →
//!    bgr8), [`media::handoff`] (bounded drop-oldest queues between the stages) and
//!    [`media::buffer_pool`] (pixel buffers that come back once published).
//! 4. [`stream`] — the state machine tying the rooms together, with reconnects and
//!    statistics ([`stats`], [`status_report`]).
//!
//! Beside the path: [`record`] (MP4 without re-encoding, PNG snapshots, and the MCAP event
//! recorder in `record::events`, which the node feeds from `ros::recording`), [`probe`] (the
//! `ptz_stream_probe` CLI's run loop and window), [`params`] and [`trigger`] (the node's
//! configuration and detection trigger), [`camera_info`] (calibration), [`logging`] (what the binaries log by default), [`sim`] (the simulated
//! robot and camera used by tests, benchmarks and the demo), and `ros` (the only r2r code,
//! behind the default `ros` feature; `ros::logging` and `ros::rosout` take the log lines to
//! the ROS console and on `/rosout`).

pub mod adaptive_bitrate;
pub mod aiming;
pub mod camera_info;
pub mod camera_link;
pub mod logging;
pub mod media;
pub mod params;
pub mod probe;
pub mod proto;
pub mod record;
pub mod robot;
#[cfg(feature = "ros")]
pub mod ros;
pub mod shutdown;
pub mod sim;
pub mod stats;
pub mod status_report;
pub mod stream;
pub mod trigger;

/// Locks a mutex, also after a holder panicked: every mutex of the crate guards state that a
/// panic cannot leave half-changed, so the data stays usable.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
