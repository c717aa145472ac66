//! The link to the camera: HTTPS signalling, the WebRTC answerer and the sockets under it.
//!
//! Nothing here knows about H.264: video RTP packets leave this room as they arrived (SRTP
//! removed) for the media path.

pub mod answerer;
pub mod peer;
pub mod port_range;
pub mod sdp;
pub mod signalling;
pub mod sockets;
