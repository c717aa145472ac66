//! `sensor_msgs/Image` (bgr8) serialized in place, so the pixels are never copied to build it.
//!
//! The decoder leaves [`prefix_len`] bytes free in front of every picture
//! ([`crate::media::decoder::DecoderSettings::headroom_bytes`]); [`write_prefix`] fills them with the
//! message's serialized fields, and the whole buffer is handed to the middleware as a serialized
//! message. Publishing through r2r's typed API instead copied the 6 MB picture into a freshly
//! allocated C message before the middleware serialized (copied) it again.
//!
//! The layout is plain CDR, little endian, as every ROS 2 RMW exchanges it (`rmw_serialize`):
//! a 4-byte encapsulation header (`00 01 00 00`), then the fields in order, each aligned to its
//! size relative to the end of that header; a string is a `u32` length that counts its NUL, the
//! bytes and the NUL; a sequence is a `u32` count and the elements. The unit tests have the
//! RMW deserialize the result (`rmw_deserialize`) and compare it with the original message.

use r2r::builtin_interfaces::msg::Time;

/// The only encoding the node publishes.
pub const ENCODING: &str = "bgr8";
/// CDR little endian, no options.
const ENCAPSULATION: [u8; 4] = [0, 1, 0, 0];

/// The prefix did not fit or the picture is too large for a CDR sequence.
#[derive(Debug, thiserror::Error)]
pub enum ImageCdrError {
    #[error("the buffer ({buffer_bytes} B) is shorter than the message prefix ({prefix_bytes} B)")]
    ShortBuffer {
        buffer_bytes: usize,
        prefix_bytes: usize,
    },
    #[error("the picture ({0} B) is too large for a ROS message")]
    TooLarge(usize),
}

/// Writes CDR fields into a slice, tracking alignment.
struct CdrWriter<'a> {
    out: &'a mut [u8],
    /// Position in `out` (the encapsulation header included).
    at: usize,
}

impl CdrWriter<'_> {
    fn align(&mut self, size: usize) {
        let body = self.at - ENCAPSULATION.len();
        let padded = body.next_multiple_of(size);
        let end = ENCAPSULATION.len() + padded;
        if let Some(padding) = self.out.get_mut(self.at..end) {
            padding.fill(0);
        }
        self.at = end;
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
        }
        self.at = end;
    }

    fn u32(&mut self, value: u32) {
        self.align(4);
        self.bytes(&value.to_le_bytes());
    }

    fn i32(&mut self, value: i32) {
        self.align(4);
        self.bytes(&value.to_le_bytes());
    }

    fn string(&mut self, value: &str) {
        // Lengths here are the frame id's and "bgr8": bounded by the parameter's validation.
        self.u32(u32::try_from(value.len() + 1).unwrap_or(u32::MAX));
        self.bytes(value.as_bytes());
        self.bytes(&[0]);
    }
}

/// Writes every field of the message before the pixel bytes; returns the prefix length. With
/// `out` empty nothing is written and only the length is computed.
fn write_fields(
    out: &mut [u8],
    stamp: &Time,
    frame_id: &str,
    width: u32,
    height: u32,
    data_len: u32,
) -> usize {
    let mut w = CdrWriter { out, at: 0 };
    w.bytes(&ENCAPSULATION);
    // std_msgs/Header
    w.i32(stamp.sec);
    w.u32(stamp.nanosec);
    w.string(frame_id);
    // sensor_msgs/Image
    w.u32(height);
    w.u32(width);
    w.string(ENCODING);
    w.bytes(&[0]); // is_bigendian
    w.u32(width.saturating_mul(3)); // step
    w.u32(data_len); // data: the sequence's length, the pixels follow
    w.at
}

/// Bytes before the pixels for this frame id (the same for every frame of the node).
pub fn prefix_len(frame_id: &str) -> usize {
    write_fields(&mut [], &Time { sec: 0, nanosec: 0 }, frame_id, 0, 0, 0)
}

/// Fills the first [`prefix_len`] bytes of `message` so that the whole buffer is a serialized
/// bgr8 `sensor_msgs/Image` whose pixels are the rest of the buffer.
pub fn write_prefix(
    message: &mut [u8],
    stamp: &Time,
    frame_id: &str,
    width: u32,
    height: u32,
) -> Result<(), ImageCdrError> {
    let prefix_bytes = prefix_len(frame_id);
    let data_len = message
        .len()
        .checked_sub(prefix_bytes)
        .ok_or(ImageCdrError::ShortBuffer {
            buffer_bytes: message.len(),
            prefix_bytes,
        })?;
    let data_len = u32::try_from(data_len).map_err(|_| ImageCdrError::TooLarge(data_len))?;
    let prefix = message.get_mut(..prefix_bytes).unwrap_or_default();
    write_fields(prefix, stamp, frame_id, width, height, data_len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use r2r::WrappedTypesupport as _;
    use r2r::sensor_msgs::msg::Image;
    use r2r::std_msgs::msg::Header;

    use super::*;

    fn image(stamp: &Time, frame_id: &str, width: u32, height: u32, pixels: &[u8]) -> Image {
        Image {
            header: Header {
                stamp: stamp.clone(),
                frame_id: frame_id.to_string(),
            },
            height,
            width,
            encoding: ENCODING.to_string(),
            is_bigendian: 0,
            step: width * 3,
            data: pixels.to_vec(),
        }
    }

    #[test]
    fn the_middleware_reads_back_the_same_message() {
        let stamp = Time {
            sec: 1_700_000_123,
            nanosec: 987_654_321,
        };
        // Frame ids of every length modulo 4 exercise all paddings.
        for frame_id in [
            "",
            "a",
            "ab",
            "abc",
            "spot_cam_ptz_optical",
            "/spot/cam/ptz",
        ] {
            for (width, height) in [(1, 1), (3, 2), (640, 360)] {
                let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
                let mut message = vec![0xEE; prefix_len(frame_id)];
                message.extend_from_slice(&pixels);
                write_prefix(&mut message, &stamp, frame_id, width, height).unwrap();
                let original = image(&stamp, frame_id, width, height, &pixels);
                let context = format!("frame_id {frame_id:?}, {width}x{height}");
                // Deserialized by the RMW (rmw_deserialize): the same message.
                assert_eq!(
                    Image::from_serialized_bytes(&message).unwrap(),
                    original,
                    "{context}"
                );
                // Serialized by the RMW: the same length (it may pad the end to 4 bytes; it
                // leaves alignment padding uninitialised, so bytes are not compared).
                let expected = original.to_serialized_bytes().unwrap();
                assert!(expected.len() >= message.len() && expected.len() - message.len() < 4);
            }
        }
    }

    #[test]
    fn rejects_a_buffer_shorter_than_the_prefix() {
        let mut short = vec![0; prefix_len("cam") - 1];
        let error = write_prefix(&mut short, &Time { sec: 0, nanosec: 0 }, "cam", 1, 1);
        assert!(matches!(error, Err(ImageCdrError::ShortBuffer { .. })));
    }
}
