//! Prototype of the libavcodec H.264 decoder and the libx264 simulator encoder for
//! `spot_ptz_stream`, both through `ffmpeg-next` over the system FFmpeg (Debian bookworm: 5.1).

pub mod annexb;
pub mod av_log;
pub mod libavcodec_decoder;
pub mod x264_encoder;
