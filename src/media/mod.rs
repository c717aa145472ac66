//! The media path: RTP packets in, bgr8 pictures out.
//!
//! [`reorder`] puts RTP packets back in order and waits a bounded time for retransmissions,
//! [`depacketizer`] turns RTP into Annex-B access units, [`decoder`] decodes them on its own
//! thread (FFmpeg's libavcodec through `libavcodec`, or openh264 behind the guard of
//! [`openh264_decoder`]), [`convert`] turns the
//! decoded I420 planes into bgr8, [`h264`] reads the bitstream syntax they need, [`handoff`]
//! holds the bounded drop-oldest queues between the stages, and [`buffer_pool`] recycles the
//! pixel buffers. Beside the bgr8 path: [`passthrough`] readies the camera's access units for
//! consumers that decode H.264 themselves, [`jpeg`] encodes decoded pictures as JPEG, and
//! [`capture_clock`] tells when a frame was captured from its RTP timestamp.

pub mod buffer_pool;
pub mod capture_clock;
pub mod catch_up;
pub mod convert;
pub mod decoder;
pub mod depacketizer;
pub mod h264;
pub mod handoff;
pub mod jpeg;
#[cfg(feature = "libavcodec")]
pub mod libavcodec;
pub mod openh264_decoder;
pub mod passthrough;
pub mod reorder;
#[cfg(test)]
pub(crate) mod test_stream;
