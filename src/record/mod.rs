//! Recording what the camera sends: [`mp4_writer`] (fragmented MP4 from the access units, no
//! re-encoding), [`recorder`] (the recording thread fed by the stream's access-unit tap) and
//! [`snapshot`] (PNG pictures of decoded frames).
//! [`events`]: event files in MCAP (pre-roll from a keyframe, one file per event, size limit).

pub mod events;
pub mod mp4_writer;
pub mod recorder;
pub mod snapshot;
