//! H.264 decoding with FFmpeg's libavcodec (`ffmpeg-next`), set up for live low latency, and a
//! loss guard so that no picture showing damage is ever returned.
//!
//! * One Annex-B access unit in, at most one picture out, without frame-threading delay (slice
//!   threading with one thread, `AV_CODEC_FLAG_LOW_DELAY`).
//! * libavcodec's own recovery handling is kept: after a start or a restart it outputs nothing
//!   until an IDR, or until the picture a recovery-point SEI names (periodic intra refresh, as
//!   the Spot CAM sends) has been decoded.
//! * **Loss guard.** libavcodec does not flag pictures that only *reference* a lost picture: on
//!   a `frame_num` gap it substitutes the previous reference, and the following pictures come
//!   out unflagged but visibly damaged. So this decoder reads `frame_num` from each access
//!   unit's first slice itself (H.264 §7.4.3). On a gap, on a picture with decode errors, on a
//!   rejected access unit, or when the transport reports loss ([`LibavcodecDecoder::notify_loss`]),
//!   it restarts libavcodec: a fresh codec context, fed the SPS/PPS seen so far, which withholds
//!   output until the next IDR or completed recovery point. A fresh context, not
//!   `avcodec_flush_buffers`: after a concealed picture a flushed decoder mis-decoded even the
//!   next IDR in our measurements (`dev/avproto-report.md`).
//!
//! libav's log messages go to `tracing` (target `libav`, one level below libav's own: its
//! "errors" are routine on a lossy link) through [`route_logs_to_tracing`].

use std::collections::HashMap;

use ff::codec;
use ff::decoder;
use ff::format::Pixel;
use ff::frame;
use ff::threading;
use ffmpeg_next as ff;

use crate::media::convert::I420Planes;
use crate::media::depacketizer::nal_type;
use crate::media::h264::{
    SpsInfo, UNKNOWN_PPS, annex_b_nal_units, nal_kind, parse_pps_ids, parse_slice_start, parse_sps,
};

/// Why libavcodec could not decode.
#[derive(Debug, thiserror::Error)]
pub enum LibavcodecError {
    #[error(
        "the system's libavcodec has no H.264 decoder; install one with it (Debian/Ubuntu: \
         apt-get install libavcodec-dev) or set the parameter decoder to openh264"
    )]
    NoH264Decoder,
    #[error(
        "opening libavcodec's H.264 decoder failed ({0}); check that the libavcodec found at \
         run time is the one this program was built against, or set decoder to openh264"
    )]
    Open(#[source] ff::Error),
    #[error(
        "libavcodec rejected the access unit ({0}); waiting for the next IDR or recovery point"
    )]
    Decode(#[source] ff::Error),
    #[error("libavcodec failed while returning a picture ({0}); waiting for recovery")]
    Receive(#[source] ff::Error),
    #[error(
        "the camera's pictures are {0}; only 8-bit 4:2:0 (yuv420p) is supported: configure an \
         8-bit 4:2:0 H.264 profile on the camera"
    )]
    UnsupportedPixelFormat(String),
    #[error("libavcodec returned a picture whose plane {plane} has no data or stride {stride}")]
    BadPlane { plane: usize, stride: i32 },
}

/// What one access unit gave.
pub enum Decoded<'a> {
    /// A clean picture, borrowed from the decoder until the next call.
    Picture(I420Planes<'a>),
    /// No picture: parameter sets only, or the decoder is waiting for an IDR or recovery point.
    Nothing,
    /// A picture that shows damage (decode errors, concealment): withheld, never returned.
    Withheld,
}

/// What an access unit's first slice is, to the loss guard.
enum SliceState {
    /// No slice (parameter sets, SEI, delimiters only).
    None,
    /// A slice whose parameter sets have not been seen.
    UnknownParameterSets,
    /// A slice header that could not be read (truncated, malformed).
    Unreadable,
    Readable,
}

/// The SPS and PPS seen so far, parsed (to read slice headers) and raw (to feed a restarted
/// decoder).
#[derive(Default)]
struct ParameterSetCache {
    sps: HashMap<u32, (SpsInfo, Vec<u8>)>,
    pps: HashMap<u32, (u32, Vec<u8>)>,
}

impl ParameterSetCache {
    fn observe(&mut self, nal: &[u8]) {
        match nal_kind(nal) {
            nal_type::SPS => {
                if let Ok(info) = parse_sps(nal) {
                    self.sps
                        .insert(info.seq_parameter_set_id, (info, with_start_code(nal)));
                }
            }
            nal_type::PPS => {
                if let Ok((pps_id, sps_id)) = parse_pps_ids(nal) {
                    self.pps.insert(pps_id, (sps_id, with_start_code(nal)));
                }
            }
            _ => {}
        }
    }

    fn sps_for_pps(&self, pps_id: u32) -> Option<SpsInfo> {
        let (sps_id, _) = self.pps.get(&pps_id)?;
        self.sps.get(sps_id).map(|(info, _)| *info)
    }

    /// Every SPS, then every PPS, as Annex-B.
    fn annex_b(&self) -> Vec<u8> {
        let mut sps: Vec<_> = self.sps.iter().collect();
        sps.sort_by_key(|(id, _)| **id);
        let mut pps: Vec<_> = self.pps.iter().collect();
        pps.sort_by_key(|(id, _)| **id);
        let mut out = Vec::new();
        for (_, (_, raw)) in sps {
            out.extend_from_slice(raw);
        }
        for (_, (_, raw)) in pps {
            out.extend_from_slice(raw);
        }
        out
    }
}

fn with_start_code(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len() + 4);
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(nal);
    out
}

/// libavcodec's H.264 decoder with the loss guard described in the module documentation.
pub struct LibavcodecDecoder {
    decoder: decoder::Video,
    frame: frame::Video,
    spare: frame::Video,
    parameter_sets: ParameterSetCache,
    /// `frame_num` of the last reference picture; `None` after a start or restart.
    previous_reference_frame_num: Option<u32>,
    awaiting_recovery: bool,
    restarts: u64,
    loss_guard: bool,
}

impl LibavcodecDecoder {
    /// Opens the decoder with its loss guard; the first one also routes libav's logs
    /// ([`route_logs_to_tracing`]).
    pub fn new() -> Result<Self, LibavcodecError> {
        Self::with_loss_guard(true)
    }

    /// `loss_guard: false` is libavcodec alone, which outputs damaged pictures after a loss:
    /// for measurements and for tests that show what the guard prevents.
    pub fn with_loss_guard(loss_guard: bool) -> Result<Self, LibavcodecError> {
        route_logs_once();
        Ok(Self {
            decoder: open_h264()?,
            frame: frame::Video::empty(),
            spare: frame::Video::empty(),
            parameter_sets: ParameterSetCache::default(),
            previous_reference_frame_num: None,
            awaiting_recovery: true,
            restarts: 0,
            loss_guard,
        })
    }

    /// Decodes one Annex-B access unit. After an error the decoder stays usable: it waits for
    /// the next IDR or recovery point, as after a loss.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Decoded<'_>, LibavcodecError> {
        let (slice, frame_num_gap) = self.scan(access_unit);
        match slice {
            SliceState::None => {
                // Parameter sets or SEI alone: libavcodec stores them and answers "no frame".
                self.send_parameter_sets_only(access_unit);
                return Ok(Decoded::Nothing);
            }
            // Joined mid-stream before the parameter sets came: nothing can decode it yet.
            SliceState::UnknownParameterSets => return Ok(Decoded::Nothing),
            SliceState::Readable | SliceState::Unreadable => {}
        }
        if frame_num_gap && self.loss_guard {
            tracing::debug!("H.264 frame_num gap: a reference picture was lost");
            self.restart();
        }
        if let Err(error) = self.decoder.send_packet(&ff::Packet::copy(access_unit)) {
            self.restart();
            return Err(LibavcodecError::Decode(error));
        }
        if !self.receive_newest()? {
            return Ok(Decoded::Nothing);
        }
        let format = self.frame.format();
        if format != Pixel::YUV420P && format != Pixel::YUVJ420P {
            return Err(LibavcodecError::UnsupportedPixelFormat(
                format
                    .descriptor()
                    .map_or_else(|| format!("{format:?}"), |d| d.name().to_string()),
            ));
        }
        if self.loss_guard && (self.frame.has_decode_errors() || self.frame.is_corrupt()) {
            // Concealed slices: this picture is damaged, and the next ones predict from it.
            self.restart();
            return Ok(Decoded::Withheld);
        }
        self.awaiting_recovery = false;
        let frame = &self.frame;
        let mut planes: [&[u8]; 3] = [&[], &[], &[]];
        let mut strides = [0u32; 3];
        let (width, height) = (frame.width(), frame.height());
        for (plane, (data, stride)) in planes.iter_mut().zip(strides.iter_mut()).enumerate() {
            let rows = if plane == 0 {
                height
            } else {
                height.div_ceil(2)
            };
            let row_stride = frame.stride(plane);
            let plane_data = frame.data(plane);
            let needed = row_stride.saturating_mul(rows as usize);
            if row_stride == 0 || plane_data.len() < needed {
                return Err(LibavcodecError::BadPlane {
                    plane,
                    stride: i32::try_from(row_stride).unwrap_or(i32::MAX),
                });
            }
            *data = &plane_data[..needed];
            *stride = u32::try_from(row_stride).unwrap_or(u32::MAX);
        }
        Ok(Decoded::Picture(I420Planes {
            y: planes[0],
            u: planes[1],
            v: planes[2],
            y_stride: strides[0],
            u_stride: strides[1],
            v_stride: strides[2],
            width,
            height,
        }))
    }

    /// The transport lost data before the next access unit (an RTP sequence gap, an incomplete
    /// access unit it dropped): withhold pictures until the next IDR or completed recovery
    /// point. This catches what the `frame_num` check cannot: lost slices of one picture.
    pub fn notify_loss(&mut self) {
        if self.loss_guard {
            self.restart();
        }
    }

    /// `true` from the start, a restart or a loss until the first clean picture: the camera
    /// should be asked for a keyframe.
    pub fn awaiting_recovery(&self) -> bool {
        self.awaiting_recovery
    }

    /// How often the decoder restarted to wait for recovery.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    fn restart(&mut self) {
        self.restarts += 1;
        self.previous_reference_frame_num = None;
        self.awaiting_recovery = true;
        match open_h264() {
            Ok(fresh) => {
                self.decoder = fresh;
                let headers = self.parameter_sets.annex_b();
                if !headers.is_empty() {
                    // libavcodec stores them and answers "no frame" (no slice): expected.
                    let _ = self.decoder.send_packet(&ff::Packet::copy(&headers));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not reopen the H.264 decoder; flushing it instead");
                self.decoder.flush();
            }
        }
    }

    fn send_parameter_sets_only(&mut self, access_unit: &[u8]) {
        if !access_unit.is_empty() {
            let _ = self.decoder.send_packet(&ff::Packet::copy(access_unit));
        }
    }

    /// Caches the access unit's parameter sets and checks its first slice for a `frame_num`
    /// gap (H.264 §7.4.3: without `gaps_in_frame_num_value_allowed_flag`, `frame_num` is
    /// PrevRefFrameNum or PrevRefFrameNum + 1). Returns what the first slice is, and whether
    /// there is a gap.
    fn scan(&mut self, access_unit: &[u8]) -> (SliceState, bool) {
        let mut first_slice = None;
        for nal in annex_b_nal_units(access_unit) {
            match nal_kind(nal) {
                nal_type::SPS | nal_type::PPS => self.parameter_sets.observe(nal),
                nal_type::NON_IDR_SLICE | nal_type::IDR_SLICE if first_slice.is_none() => {
                    let parsed = parse_slice_start(nal, |pps| self.parameter_sets.sps_for_pps(pps));
                    if parsed == Err(UNKNOWN_PPS) {
                        return (SliceState::UnknownParameterSets, false);
                    }
                    first_slice = Some(parsed.ok());
                }
                _ => {}
            }
        }
        let Some(slice) = first_slice else {
            return (SliceState::None, false);
        };
        let Some(slice) = slice else {
            // Truncated or malformed: libavcodec may still decode (and flag) it; track frame
            // numbers again from the next readable slice.
            self.previous_reference_frame_num = None;
            return (SliceState::Unreadable, false);
        };
        let Some(sps) = self.parameter_sets.sps_for_pps(slice.pic_parameter_set_id) else {
            return (SliceState::UnknownParameterSets, false);
        };
        let frame_num_modulus = 1u32 << sps.log2_max_frame_num;
        let gap = match (slice.is_idr, self.previous_reference_frame_num) {
            (true, _) | (false, None) => false,
            (false, Some(previous)) => {
                !sps.gaps_in_frame_num_allowed
                    && slice.frame_num != previous
                    && slice.frame_num != (previous + 1) % frame_num_modulus
            }
        };
        if slice.nal_ref_idc != 0 {
            self.previous_reference_frame_num = Some(slice.frame_num);
        }
        (SliceState::Readable, gap)
    }

    /// Receives every picture libavcodec has ready, keeping the newest. With one thread and
    /// `LOW_DELAY` there is at most one per access unit.
    fn receive_newest(&mut self) -> Result<bool, LibavcodecError> {
        let mut received = false;
        loop {
            // avcodec_receive_frame empties the frame it is given before it looks for one, so
            // after the first picture receive into the spare and swap.
            let target = if received {
                &mut self.spare
            } else {
                &mut self.frame
            };
            match self.decoder.receive_frame(target) {
                Ok(()) => {
                    if received {
                        std::mem::swap(&mut self.frame, &mut self.spare);
                    }
                    received = true;
                }
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => {
                    return Ok(received);
                }
                Err(ff::Error::Eof) => return Ok(received),
                Err(error) => {
                    self.restart();
                    return Err(LibavcodecError::Receive(error));
                }
            }
        }
    }
}

fn open_h264() -> Result<decoder::Video, LibavcodecError> {
    ff::init().map_err(LibavcodecError::Open)?;
    let codec = decoder::find(codec::Id::H264).ok_or(LibavcodecError::NoH264Decoder)?;
    let mut context = codec::Context::new_with_codec(codec);
    // Frame threading adds one access unit of latency per extra thread; slice threading with
    // one thread is plain single-threaded decoding, with error resilience on.
    context.set_threading(threading::Config {
        kind: threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    context.set_flags(codec::Flags::LOW_DELAY);
    context
        .decoder()
        .open_as(codec)
        .and_then(|opened| opened.video())
        .map_err(LibavcodecError::Open)
}

/// [`route_logs_to_tracing`], the first time only (every user of libav calls it).
pub fn route_logs_once() {
    static ROUTE_LOGS: std::sync::Once = std::sync::Once::new();
    ROUTE_LOGS.call_once(route_logs_to_tracing);
}

/// Sends libav's log messages to `tracing` (target `libav`) instead of stderr, from WARNING
/// up: fatal ones as errors, the rest at DEBUG and below, as its "errors" (a concealed slice,
/// a missing reference) are routine on a lossy link, per frame, and recovered from.
pub fn route_logs_to_tracing() {
    use ff::util::log;
    log::set_level(log::Level::Warning);
    // SAFETY: the callback is a plain `extern "C"` function valid for the whole program.
    unsafe { ff::ffi::av_log_set_callback(Some(log_callback)) }
}

#[cfg(target_arch = "x86_64")]
type VaList = *mut ff::ffi::__va_list_tag;
#[cfg(not(target_arch = "x86_64"))]
type VaList = ff::ffi::va_list;

unsafe extern "C" fn log_callback(
    class: *mut std::ffi::c_void,
    level: std::ffi::c_int,
    format: *const std::ffi::c_char,
    arguments: VaList,
) {
    use std::ffi::{CStr, c_char, c_int};
    // SAFETY (the whole body): libav passes a valid printf format and its arguments;
    // av_log_format_line2 writes at most `line.len()` bytes including the terminating NUL.
    unsafe {
        if level > ff::ffi::av_log_get_level() {
            return;
        }
        let mut line = [0 as c_char; 1024];
        let mut print_prefix: c_int = 1;
        let written = ff::ffi::av_log_format_line2(
            class,
            level,
            format,
            arguments,
            line.as_mut_ptr(),
            line.len() as c_int,
            &mut print_prefix,
        );
        if written < 0 {
            return;
        }
        let text = CStr::from_ptr(line.as_ptr()).to_string_lossy();
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if level <= ff::ffi::AV_LOG_FATAL {
            tracing::error!(target: "libav", "{text}");
        } else if level <= ff::ffi::AV_LOG_ERROR {
            tracing::debug!(target: "libav", "{text}");
        } else {
            tracing::trace!(target: "libav", "{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_stream::encode;

    #[test]
    fn opens_and_ignores_input_without_slices() {
        let mut decoder = LibavcodecDecoder::new().expect("open");
        assert!(matches!(decoder.decode(&[]), Ok(Decoded::Nothing)));
        assert!(matches!(
            decoder.decode(&[0, 0, 0, 1, 0x09, 0xf0]),
            Ok(Decoded::Nothing)
        ));
        assert!(decoder.awaiting_recovery());
    }

    #[test]
    fn every_access_unit_of_a_clean_stream_gives_its_picture_at_once() {
        let mut decoder = LibavcodecDecoder::new().expect("open");
        for (index, (au, _)) in encode(320, 240, 40).iter().enumerate() {
            match decoder.decode(au) {
                Ok(Decoded::Picture(planes)) => {
                    assert_eq!((planes.width, planes.height), (320, 240));
                }
                Ok(Decoded::Nothing) => panic!("no picture for access unit {index}"),
                Ok(Decoded::Withheld) => panic!("access unit {index} withheld"),
                Err(error) => panic!("access unit {index}: {error}"),
            }
        }
        assert_eq!(decoder.restarts(), 0);
    }

    #[test]
    fn garbage_is_no_picture_and_the_decoder_stays_usable() {
        let mut decoder = LibavcodecDecoder::new().expect("open");
        let junk = [0u8, 0, 0, 1, 0x65, 0xff, 0x12, 0x34, 0x56, 0x78];
        assert!(!matches!(decoder.decode(&junk), Ok(Decoded::Picture(_))));
        assert!(matches!(decoder.decode(&[]), Ok(Decoded::Nothing)));
    }
}
