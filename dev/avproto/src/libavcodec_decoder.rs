//! H.264 decoding through FFmpeg's libavcodec (`ffmpeg-next`), tuned for live low latency.
//!
//! * One Annex-B access unit in, at most one picture out, with no frame-threading delay
//!   (`thread_type = slice`, `thread_count = 1`, `AV_CODEC_FLAG_LOW_DELAY`).
//! * libavcodec's default recovery handling is kept: after a join (or [`LibavcodecDecoder::reset`])
//!   nothing is output until an IDR, or until the frame named by a recovery-point SEI (periodic
//!   intra refresh) has been decoded. Pictures that it would have called "not recovered" are never
//!   shown unless [`DecoderOptions::output_corrupt`] is set.
//! * **Loss guard.** libavcodec does *not* flag pictures that merely reference a lost picture: on a
//!   `frame_num` gap it silently substitutes a copy of the previous reference and later pictures
//!   come out clean-flagged but visibly damaged. So this wrapper reads `frame_num` from every
//!   slice header itself; on a gap (or when a picture comes out with decode errors, or the caller
//!   calls [`LibavcodecDecoder::notify_loss`]) it restarts libavcodec (a fresh codec context fed
//!   the cached SPS/PPS), which puts it back into the "not recovered" state: output is withheld
//!   until the next IDR or completed recovery point. A fresh context rather than
//!   `avcodec_flush_buffers`, because after a concealed picture a flushed (or unflushed) decoder
//!   mis-decoded even the next IDR in our tests.
//! * Lost *parts* of an AU are only visible to libavcodec if that picture is output; while it is
//!   withholding pictures, the transport must report them with `notify_loss` (RTP seq gaps).

use std::mem;

use ff::codec;
use ff::color;
use ff::decoder;
use ff::format::Pixel;
use ff::frame;
use ff::picture;
use ff::threading;
use ffmpeg_next as ff;

use crate::annexb::{self, ParamSets, nal_type};

/// Errors of [`LibavcodecDecoder`]. Messages say what failed and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "the system libavcodec has no H.264 decoder; install Debian's libavcodec59 \
         (apt-get install libavcodec-dev) or an FFmpeg build with the h264 decoder enabled"
    )]
    NoH264Decoder,
    #[error(
        "opening libavcodec's H.264 decoder failed ({0}); check that the libavcodec found at \
         run time is the one ffmpeg-sys-next was built against (pkg-config libavcodec)"
    )]
    Open(#[source] ff::Error),
    #[error(
        "libavcodec rejected the access unit ({0}); the decoder is still usable but withholds \
         pictures until the next IDR or recovery point: request a keyframe (PLI) if this repeats"
    )]
    Decode(#[source] ff::Error),
    #[error(
        "libavcodec failed while returning a decoded picture ({0}); call reset() and request \
         a keyframe"
    )]
    Receive(#[source] ff::Error),
    #[error(
        "decoded picture has pixel format {0}; only 8-bit 4:2:0 (yuv420p/yuvj420p) is \
         supported: configure the camera for an 8-bit 4:2:0 H.264 profile"
    )]
    UnsupportedPixelFormat(String),
    #[error(
        "decoded picture plane {plane} has an unusable layout (stride {stride}, data null: \
         {null}); this is a libavcodec/ffmpeg-next bug, please report it with the stream"
    )]
    BadPlane {
        plane: usize,
        stride: i32,
        null: bool,
    },
}

/// Colour range signalled in the stream (VUI `video_full_range_flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorRange {
    /// Not signalled; treat as limited (16..235) for H.264.
    Unspecified,
    /// Limited / "MPEG" / TV range.
    Limited,
    /// Full / "JPEG" / PC range.
    Full,
}

/// YUV→RGB matrix signalled in the stream (VUI `matrix_coefficients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMatrix {
    /// Not signalled; HD video is normally BT.709, SD BT.601.
    Unspecified,
    Bt709,
    /// BT.601 (BT.470BG or SMPTE 170M, identical matrices).
    Bt601,
    Bt2020Ncl,
    /// Anything else libavcodec reports (RGB, FCC, YCgCo, ...).
    Other,
}

/// Knobs of [`LibavcodecDecoder`]. `Default` is what the driver should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderOptions {
    /// Detect lost reference pictures (frame_num gaps) and decode errors, and then withhold
    /// output until the stream has recovered. Default `true`.
    pub loss_guard: bool,
    /// Output pictures libavcodec considers not recovered (`flags2=+showall`,
    /// `AV_CODEC_FLAG_OUTPUT_CORRUPT`); they come out with `corrupt == true`. Default `false`.
    pub output_corrupt: bool,
    /// Skip the deblocking filter (about 25% faster, visibly blockier). Default `false`.
    pub skip_loop_filter: bool,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        Self {
            loss_guard: true,
            output_corrupt: false,
            skip_loop_filter: false,
        }
    }
}

/// Counters for diagnostics / metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Access units passed to `decode`.
    pub access_units: u64,
    /// Pictures returned (including corrupt-flagged ones).
    pub pictures: u64,
    /// Pictures returned with `corrupt == true`.
    pub corrupt_pictures: u64,
    /// Access units that produced no picture.
    pub no_picture: u64,
    /// frame_num gaps found by the loss guard.
    pub frame_num_gaps: u64,
    /// Times the decoder was restarted to wait for recovery (gaps, decode errors, notify_loss).
    pub recovery_waits: u64,
    /// `send_packet` errors.
    pub decode_errors: u64,
    /// Extra pictures libavcodec returned for one AU (dropped, only the newest is kept).
    pub extra_pictures_dropped: u64,
}

/// A decoded I420 picture, borrowed from the decoder until the next `decode`/`reset`.
pub struct Picture<'a> {
    frame: &'a frame::Video,
    /// libavcodec flagged the picture as corrupt (`AV_FRAME_FLAG_CORRUPT`) or reported decode
    /// errors / error concealment for it (`decode_error_flags != 0`). Never publish such a
    /// picture.
    pub corrupt: bool,
    /// IDR or I picture (or a recovery point with recovery_frame_cnt 0).
    pub keyframe: bool,
    pub width: u32,
    pub height: u32,
    pub color_range: ColorRange,
    pub color_matrix: ColorMatrix,
    /// Index (0-based, counted since `new`) of the `decode` call whose AU produced this picture.
    pub au_index: u64,
    planes: [(*const u8, usize); 3],
}

impl Picture<'_> {
    fn plane(&self, i: usize) -> &[u8] {
        let (ptr, stride) = self.planes[i];
        let (w, h) = if i == 0 {
            (self.width as usize, self.height as usize)
        } else {
            (
                self.width.div_ceil(2) as usize,
                self.height.div_ceil(2) as usize,
            )
        };
        if h == 0 || w == 0 {
            return &[];
        }
        // SAFETY: ptr/stride come from the AVFrame borrowed for 'a (checked non-null and
        // positive when the Picture was built); libavcodec allocates at least `stride` bytes for
        // every row of the plane, so (h-1) full rows plus one row of `w` bytes are in bounds.
        unsafe { std::slice::from_raw_parts(ptr, stride * (h - 1) + w) }
    }

    /// Luma plane: `height` rows of `y_stride()` bytes (the last row only `width` bytes long).
    pub fn y(&self) -> &[u8] {
        self.plane(0)
    }
    /// Cb plane, `ceil(height/2)` rows, `ceil(width/2)` samples per row.
    pub fn u(&self) -> &[u8] {
        self.plane(1)
    }
    /// Cr plane, like `u`.
    pub fn v(&self) -> &[u8] {
        self.plane(2)
    }
    pub fn y_stride(&self) -> usize {
        self.planes[0].1
    }
    pub fn u_stride(&self) -> usize {
        self.planes[1].1
    }
    pub fn v_stride(&self) -> usize {
        self.planes[2].1
    }
    /// libavcodec's picture type (I/P/B) for diagnostics.
    pub fn picture_type(&self) -> char {
        match self.frame.kind() {
            picture::Type::I => 'I',
            picture::Type::P => 'P',
            picture::Type::B => 'B',
            _ => '?',
        }
    }
}

/// libavcodec H.264 decoder. See the module documentation for the behaviour on loss.
pub struct LibavcodecDecoder {
    decoder: decoder::Video,
    frame: frame::Video,
    spare: frame::Video,
    options: DecoderOptions,
    params: ParamSets,
    /// frame_num of the last reference picture, `None` when unknown (start, after a restart).
    prev_ref_frame_num: Option<u32>,
    awaiting_recovery: bool,
    au_counter: u64,
    stats: DecoderStats,
}

impl LibavcodecDecoder {
    /// Opens libavcodec's H.264 decoder with [`DecoderOptions::default`].
    pub fn new() -> Result<Self, DecodeError> {
        Self::with_options(DecoderOptions::default())
    }

    pub fn with_options(options: DecoderOptions) -> Result<Self, DecodeError> {
        let decoder = open_h264(options)?;
        Ok(Self {
            decoder,
            frame: frame::Video::empty(),
            spare: frame::Video::empty(),
            options,
            params: ParamSets::default(),
            prev_ref_frame_num: None,
            awaiting_recovery: true,
            au_counter: 0,
            stats: DecoderStats::default(),
        })
    }

    /// Decodes one Annex-B access unit (all NAL units of one picture, with start codes).
    ///
    /// * `Ok(Some(p))`: a picture; publish it only if `!p.corrupt`.
    /// * `Ok(None)`: no picture for this AU (parameter sets only, not recovered yet, or waiting
    ///   for recovery after a loss).
    /// * `Err(_)`: libavcodec rejected the AU or failed. The decoder stays usable; it waits for
    ///   the next IDR/recovery point as after a loss.
    pub fn decode(
        &mut self,
        annex_b_access_unit: &[u8],
    ) -> Result<Option<Picture<'_>>, DecodeError> {
        let au_index = self.au_counter;
        self.au_counter += 1;
        self.stats.access_units += 1;
        if annex_b_access_unit.is_empty() {
            self.stats.no_picture += 1;
            return Ok(None);
        }
        let (has_vcl, gap) = self.scan(annex_b_access_unit);
        if gap && self.options.loss_guard {
            self.stats.frame_num_gaps += 1;
            self.wait_for_recovery();
        }

        // A refcounted, padded copy (libavcodec needs AV_INPUT_BUFFER_PADDING_SIZE zeroed bytes
        // after the data). ff::Packet::borrow would make libavcodec do the same copy.
        let mut packet = ff::Packet::new(annex_b_access_unit.len());
        match packet.data_mut() {
            Some(d) => d.copy_from_slice(annex_b_access_unit),
            None => {
                return Err(DecodeError::Decode(ff::Error::Other {
                    errno: ff::error::ENOMEM,
                }));
            }
        }
        packet.set_pts(Some(au_index as i64));
        packet.set_dts(Some(au_index as i64));

        if let Err(e) = self.send(&packet) {
            if !has_vcl {
                // An AU of only SPS/PPS/SEI (e.g. parameter sets sent in their own RTP
                // timestamp): libavcodec stores the parameter sets, then answers
                // AVERROR_INVALIDDATA ("no frame!") because there is no slice. Not an error.
                self.stats.no_picture += 1;
                return Ok(None);
            }
            self.stats.decode_errors += 1;
            self.stats.no_picture += 1;
            if self.options.loss_guard {
                self.wait_for_recovery();
            }
            return Err(DecodeError::Decode(e));
        }
        if !self.receive_latest()? {
            self.stats.no_picture += 1;
            return Ok(None);
        }

        let f = &self.frame;
        let format = f.format();
        if format != Pixel::YUV420P && format != Pixel::YUVJ420P {
            self.stats.no_picture += 1;
            return Err(DecodeError::UnsupportedPixelFormat(
                format
                    .descriptor()
                    .map_or_else(|| format!("{format:?}"), |d| d.name().to_string()),
            ));
        }
        // decode_error_flags: this picture itself was concealed (slices lost or broken).
        // AV_FRAME_FLAG_CORRUPT alone (only with output_corrupt): libavcodec has not reached an
        // IDR/recovery point yet; it already tracks that, so it is no reason to restart.
        let damaged = f.has_decode_errors();
        let corrupt = f.is_corrupt() || damaged;
        let mut planes = [(std::ptr::null::<u8>(), 0usize); 3];
        for (i, slot) in planes.iter_mut().enumerate() {
            // SAFETY: reading plain fields of the AVFrame we own.
            let (ptr, stride) = unsafe { ((*f.as_ptr()).data[i], (*f.as_ptr()).linesize[i]) };
            if ptr.is_null() || stride <= 0 {
                return Err(DecodeError::BadPlane {
                    plane: i,
                    stride,
                    null: ptr.is_null(),
                });
            }
            *slot = (ptr as *const u8, stride as usize);
        }
        let color_range = match f.color_range() {
            color::Range::MPEG => ColorRange::Limited,
            color::Range::JPEG => ColorRange::Full,
            _ if format == Pixel::YUVJ420P => ColorRange::Full,
            _ => ColorRange::Unspecified,
        };
        let color_matrix = match f.color_space() {
            color::Space::Unspecified => ColorMatrix::Unspecified,
            color::Space::BT709 => ColorMatrix::Bt709,
            color::Space::BT470BG | color::Space::SMPTE170M => ColorMatrix::Bt601,
            color::Space::BT2020NCL => ColorMatrix::Bt2020Ncl,
            _ => ColorMatrix::Other,
        };
        let keyframe = f.is_key() || f.kind() == picture::Type::I;
        let frame_au = f.pts().map_or(au_index, |p| p as u64);
        let (width, height) = (f.width(), f.height());

        self.stats.pictures += 1;
        if corrupt {
            self.stats.corrupt_pictures += 1;
            // Later pictures predict from this damaged one: wait for recovery. The frame we hold
            // keeps its own buffer reference, so restarting the decoder does not invalidate it.
            if damaged && self.options.loss_guard {
                self.wait_for_recovery();
            }
        } else {
            self.awaiting_recovery = false;
        }
        Ok(Some(Picture {
            frame: &self.frame,
            corrupt,
            keyframe,
            width,
            height,
            color_range,
            color_matrix,
            au_index: frame_au,
            planes,
        }))
    }

    /// Tells the decoder that data was lost before the next AU (e.g. an RTP sequence gap, or an
    /// incomplete AU the caller dropped). Output is withheld until the next IDR or completed
    /// recovery point. Catches what the frame_num check cannot: lost slices of a picture.
    pub fn notify_loss(&mut self) {
        self.wait_for_recovery();
    }

    /// Forgets all pictures and the recovery state, e.g. after a reconnect (a fresh libavcodec
    /// context). SPS/PPS already seen are fed to it again, so a stream that resumes without
    /// in-band parameter sets still decodes from the next IDR/recovery point; parameter sets
    /// that arrive later replace them. Use [`LibavcodecDecoder::with_options`] for a fresh
    /// decoder instead if the camera's configuration may have changed.
    pub fn reset(&mut self) {
        self.restart();
    }

    /// `true` from creation/reset/loss until the first clean picture.
    pub fn awaiting_recovery(&self) -> bool {
        self.awaiting_recovery
    }

    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// SPS and PPS seen so far as Annex-B (4-byte start codes), to prepend to an AU when
    /// (re)joining a stream whose parameter sets were sent earlier. Empty if none were seen.
    pub fn cached_parameter_sets(&self) -> Vec<u8> {
        self.params.annex_b_headers()
    }

    fn wait_for_recovery(&mut self) {
        self.stats.recovery_waits += 1;
        self.restart();
    }

    fn restart(&mut self) {
        // A fresh AVCodecContext, not avcodec_flush_buffers: after a concealed (truncated)
        // picture, a flushed libavcodec 5.1 h264 decoder still mis-decodes the following IDR
        // (luma off by +5/-11 everywhere; measured, see REPORT.md), and so does an unflushed one.
        // A new context starts "not recovered" (frame_recovered = 0) like a flushed one. The
        // cached SPS/PPS are fed to it at once so a stream resuming without them still decodes.
        // The Picture borrowed earlier stays valid: its buffer is refcounted.
        match open_h264(self.options) {
            Ok(fresh) => {
                self.decoder = fresh;
                let headers = self.params.annex_b_headers();
                if !headers.is_empty() {
                    let mut packet = ff::Packet::new(headers.len());
                    if let Some(d) = packet.data_mut() {
                        d.copy_from_slice(&headers);
                        // libavcodec stores the parameter sets and answers "no frame!"
                        // (AVERROR_INVALIDDATA) as there is no slice: expected.
                        let _ = self.decoder.send_packet(&packet);
                    }
                }
            }
            Err(e) => {
                tracing::warn!("reopening the H.264 decoder failed ({e}); flushing it instead");
                self.decoder.flush();
            }
        }
        self.prev_ref_frame_num = None;
        self.awaiting_recovery = true;
    }

    /// Updates the parameter-set cache and checks the AU's first slice for a frame_num gap
    /// (H.264 7.4.3: frame_num must be PrevRefFrameNum or PrevRefFrameNum + 1 unless
    /// gaps_in_frame_num_value_allowed_flag). Returns (AU has a slice, frame_num gap).
    fn scan(&mut self, au: &[u8]) -> (bool, bool) {
        let mut first_slice = None;
        for nal in annexb::nal_units(au) {
            match annexb::nal_unit_type(nal) {
                nal_type::SPS | nal_type::PPS => self.params.observe(nal),
                nal_type::SLICE | nal_type::IDR if first_slice.is_none() => {
                    first_slice = Some(self.params.parse_slice(nal));
                }
                _ => {}
            }
        }
        let Some(slice) = first_slice else {
            return (false, false);
        };
        let Some(slice) = slice else {
            // A slice we cannot parse (PPS/SPS not seen yet, or truncated): libavcodec cannot
            // decode it either; start tracking again from the next parseable slice.
            self.prev_ref_frame_num = None;
            return (true, false);
        };
        let Some(sps) = self.params.sps_for_pps(slice.pps_id).copied() else {
            return (true, false);
        };
        let max = 1u32 << sps.log2_max_frame_num;
        let gap = match (slice.idr, self.prev_ref_frame_num) {
            (true, _) | (false, None) => false,
            (false, Some(prev)) => {
                !sps.gaps_in_frame_num_allowed
                    && slice.frame_num != prev
                    && slice.frame_num != (prev + 1) % max
            }
        };
        if slice.nal_ref_idc != 0 {
            self.prev_ref_frame_num = Some(slice.frame_num);
        }
        (true, gap)
    }

    fn send(&mut self, packet: &ff::Packet) -> Result<(), ff::Error> {
        match self.decoder.send_packet(packet) {
            // EAGAIN: a picture is still waiting to be received. It cannot happen when every
            // send is followed by receiving until EAGAIN, as here; keep the newest and retry.
            Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => {
                self.receive_latest()
                    .map_err(|_| ff::Error::Other { errno })?;
                self.decoder.send_packet(packet)
            }
            other => other,
        }
    }

    /// Receives until EAGAIN; keeps the newest picture in `self.frame`. Returns whether any
    /// picture was received.
    fn receive_latest(&mut self) -> Result<bool, DecodeError> {
        let mut got = false;
        loop {
            let target = if got {
                &mut self.spare
            } else {
                &mut self.frame
            };
            match self.decoder.receive_frame(target) {
                Ok(()) => {
                    if got {
                        mem::swap(&mut self.frame, &mut self.spare);
                        self.stats.extra_pictures_dropped += 1;
                    }
                    got = true;
                }
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => return Ok(got),
                Err(ff::Error::Eof) => return Ok(got),
                Err(e) => return Err(DecodeError::Receive(e)),
            }
        }
    }
}

fn open_h264(options: DecoderOptions) -> Result<decoder::Video, DecodeError> {
    // ffmpeg-next's init only registers error strings on FFmpeg >= 5; harmless to repeat.
    ff::init().map_err(DecodeError::Open)?;
    let codec = decoder::find(codec::Id::H264).ok_or(DecodeError::NoH264Decoder)?;
    let mut ctx = codec::Context::new_with_codec(codec);
    // Frame threading adds one AU of latency per extra thread; slice threading with one thread
    // is plain single-threaded decoding (and keeps error resilience on: the h264 option
    // enable_er=auto turns it off only when slice threads are active).
    ctx.set_threading(threading::Config {
        kind: threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    let mut flags = codec::Flags::LOW_DELAY;
    let mut dict = ff::Dictionary::new();
    if options.output_corrupt {
        flags |= codec::Flags::OUTPUT_CORRUPT;
        // flags2 has no typed setter in ffmpeg-next.
        dict.set("flags2", "+showall");
    }
    ctx.set_flags(flags);
    let mut dec = ctx.decoder();
    if options.skip_loop_filter {
        dec.skip_loop_filter(ff::Discard::All);
    }
    let opened = dec.open_as_with(codec, dict).map_err(DecodeError::Open)?;
    opened.video().map_err(DecodeError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_send() {
        fn send<T: Send>() {}
        send::<LibavcodecDecoder>();
    }

    #[test]
    fn opens_and_ignores_empty_input() {
        let mut d = LibavcodecDecoder::new().expect("open decoder");
        assert!(d.decode(&[]).expect("empty").is_none());
        assert!(d.awaiting_recovery());
    }

    #[test]
    fn garbage_is_not_a_picture_and_decoder_stays_usable() {
        crate::av_log::set_level(crate::av_log::AvLogLevel::Quiet);
        let mut d = LibavcodecDecoder::new().expect("open decoder");
        let junk = [0u8, 0, 0, 1, 0x65, 0xff, 0x12, 0x34, 0x56, 0x78];
        let r = d.decode(&junk);
        assert!(matches!(r, Ok(None) | Err(DecodeError::Decode(_))));
        assert!(d.decode(&[0, 0, 0, 1, 0x09, 0xf0]).expect("aud").is_none());
    }
}
