//! The simulated camera's intra-refresh encoder: libx264 through libavcodec (`ffmpeg-next`),
//! as the real Spot CAM encodes (one IDR, then waves of intra macroblocks, no IDR again).
//!
//! Constrained Baseline, `tune=zerolatency` (no B-frames, no lookahead, one frame in → one AU
//! out), in-band SPS/PPS (no global header, so x264 repeats them on every keyframe), and one of two
//! refresh modes:
//! * [`RefreshMode::PeriodicIdr`]: an IDR every `interval` frames (scene-cut detection off);
//! * [`RefreshMode::IntraRefresh`]: one IDR at frame 0, then a column of intra macroblocks sweeps
//!   the picture every `period` frames; each sweep starts with a recovery-point SEI (and SPS/PPS),
//!   like the real camera.
//!
//! The bit rate can be changed on the live encoder ([`X264Encoder::set_bitrate`]): libavcodec's
//! libx264 wrapper compares `AVCodecContext.bit_rate`/`rc_max_rate`/`rc_buffer_size` with x264's
//! parameters before every frame and calls `x264_encoder_reconfig` when they differ.

use std::collections::VecDeque;
use std::ffi::{CString, c_void};

use crate::media::depacketizer::nal_type;
use crate::media::h264::{annex_b_nal_units, nal_kind};

use ff::codec;
use ff::encoder;
use ff::format::Pixel;
use ff::frame;
use ff::threading;
use ffmpeg_next as ff;

/// Errors of [`X264Encoder`]. Messages say what failed and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "the system libavcodec has no libx264 encoder; install Debian's libavcodec59 \
         (apt-get install libavcodec-dev ffmpeg) and check `ffmpeg -encoders | grep libx264`"
    )]
    NoLibx264,
    #[error("invalid encoder configuration: {0}")]
    InvalidConfig(String),
    #[error(
        "setting libavcodec/libx264 option {name}={value} failed ({source}); the option name \
         or value is not supported by this FFmpeg build (see `ffmpeg -h encoder=libx264`)"
    )]
    SetOption {
        name: String,
        value: String,
        #[source]
        source: ff::Error,
    },
    #[error(
        "opening libx264 failed ({0}); check the configuration (even width/height, bitrate, \
         profile) and run with libav logging at warning level for x264's own message"
    )]
    Open(#[source] ff::Error),
    #[error("could not allocate a {width}x{height} yuv420p frame; out of memory?")]
    FrameAlloc { width: u32, height: u32 },
    #[error("input image does not match the encoder: {0}")]
    BadInput(String),
    #[error("libx264 failed to encode a frame ({0}); recreate the encoder")]
    Encode(#[source] ff::Error),
}

/// How the encoder makes the stream decodable for (re)joining receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    /// IDR (with SPS/PPS) every `interval` frames.
    PeriodicIdr { interval: u32 },
    /// Periodic intra refresh over `period` frames, recovery-point SEI at the start of each
    /// sweep, no IDR after frame 0 (unless forced with [`X264Encoder::force_keyframe`]).
    IntraRefresh { period: u32 },
}

/// Encoder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target (and VBV maximum) bit rate in bit/s.
    pub bitrate_bps: u64,
    /// VBV buffer in milliseconds of `bitrate_bps`; small = steadier frame sizes.
    pub vbv_buffer_ms: u32,
    pub mode: RefreshMode,
    /// x264 preset; "ultrafast" or "superfast" for the simulator.
    pub preset: String,
    /// x264 threads; 1 keeps the simulator on one core (and one slice per picture).
    pub threads: u32,
}

impl EncoderConfig {
    pub fn new(width: u32, height: u32, fps: u32, bitrate_bps: u64, mode: RefreshMode) -> Self {
        Self {
            width,
            height,
            fps,
            bitrate_bps,
            vbv_buffer_ms: 1000,
            mode,
            preset: "ultrafast".to_string(),
            threads: 1,
        }
    }
}

/// Borrowed I420 (yuv420p) input image.
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub uv_stride: usize,
}

/// One encoded access unit, Annex-B with start codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAu {
    pub data: Vec<u8>,
    /// Contains an IDR slice (NAL type 5); SPS/PPS precede it in `data`.
    pub idr: bool,
}

/// libx264 encoder through libavcodec.
pub struct X264Encoder {
    enc: encoder::Video,
    frame: frame::Video,
    packet: ff::Packet,
    config: EncoderConfig,
    next_pts: i64,
    force_next: bool,
    queued: VecDeque<EncodedAu>,
}

impl X264Encoder {
    pub fn new(config: EncoderConfig) -> Result<Self, EncodeError> {
        validate(&config)?;
        ff::init().map_err(EncodeError::Open)?;
        crate::media::libavcodec::route_logs_once();
        let codec = encoder::find_by_name("libx264").ok_or(EncodeError::NoLibx264)?;
        let mut ctx = codec::Context::new_with_codec(codec);
        ctx.set_threading(threading::Config {
            kind: threading::Type::Slice,
            count: config.threads as usize,
            ..Default::default()
        });
        // No GLOBAL_HEADER flag: x264 keeps b_repeat_headers = 1 and writes SPS/PPS in-band.
        let mut enc = ctx.encoder().video().map_err(EncodeError::Open)?;
        enc.set_width(config.width);
        enc.set_height(config.height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(ff::Rational(1, config.fps as i32));
        enc.set_frame_rate(Some(ff::Rational(config.fps as i32, 1)));
        enc.set_max_b_frames(0);
        let (gop, intra_refresh) = match config.mode {
            RefreshMode::PeriodicIdr { interval } => (interval, false),
            RefreshMode::IntraRefresh { period } => (period, true),
        };
        enc.set_gop(gop);
        apply_bitrate(&mut enc, config.bitrate_bps, config.vbv_buffer_ms);

        // Options are set one by one with av_opt_set on the context (searching the libx264
        // private options too) so that a typo is an error. A Dictionary passed to
        // open_as_with would silently ignore unknown keys: ffmpeg-next drops the leftovers.
        let gop_s = gop.to_string();
        let opts: [(&str, &str); 8] = [
            ("preset", &config.preset),
            ("tune", "zerolatency"),
            ("profile", "baseline"),
            ("keyint_min", &gop_s),
            ("sc_threshold", "0"),
            ("intra-refresh", if intra_refresh { "1" } else { "0" }),
            // force_keyframe() → pict_type I → X264_TYPE_IDR (not just a "keyframe", which in
            // intra-refresh mode would only start a new sweep).
            ("forced-idr", "1"),
            ("aud", "0"),
        ];
        for (name, value) in opts {
            set_option(&mut enc, name, value)?;
        }
        let enc = enc.open_as(codec).map_err(EncodeError::Open)?;

        let mut frame = frame::Video::new(Pixel::YUV420P, config.width, config.height);
        // frame::Video::new ignores av_frame_get_buffer's result; check the planes.
        // SAFETY: reading data pointers of the frame we own.
        if (0..3).any(|i| unsafe { (*frame.as_ptr()).data[i].is_null() }) {
            return Err(EncodeError::FrameAlloc {
                width: config.width,
                height: config.height,
            });
        }
        frame.set_kind(ff::picture::Type::None);
        Ok(Self {
            enc,
            frame,
            packet: ff::Packet::empty(),
            config,
            next_pts: 0,
            force_next: false,
            queued: VecDeque::new(),
        })
    }

    /// Makes the next encoded frame an IDR (with SPS/PPS), in either mode.
    pub fn force_keyframe(&mut self) {
        self.force_next = true;
    }

    /// Changes the target bit rate (and VBV max rate/buffer) from the next frame on, without
    /// reopening: libavcodec's libx264 wrapper calls `x264_encoder_reconfig` when it sees the
    /// new values. Takes effect within the VBV buffer's time.
    pub fn set_bitrate(&mut self, bitrate_bps: u64) -> Result<(), EncodeError> {
        if bitrate_bps < 1000 {
            return Err(EncodeError::InvalidConfig(format!(
                "bitrate {bitrate_bps} bit/s is below x264's 1 kbit/s resolution"
            )));
        }
        apply_bitrate(&mut self.enc, bitrate_bps, self.config.vbv_buffer_ms);
        self.config.bitrate_bps = bitrate_bps;
        Ok(())
    }

    /// Encodes one frame. With `tune=zerolatency` every call returns `Some(au)` for this very
    /// frame; `None` would mean the encoder buffered it (then a later call returns it).
    pub fn encode(&mut self, image: &I420<'_>) -> Result<Option<EncodedAu>, EncodeError> {
        self.fill_frame(image)?;
        self.frame.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        let kind = if std::mem::take(&mut self.force_next) {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        };
        self.frame.set_kind(kind);
        self.enc
            .send_frame(&self.frame)
            .map_err(EncodeError::Encode)?;
        self.drain()?;
        Ok(self.queued.pop_front())
    }

    fn drain(&mut self) -> Result<(), EncodeError> {
        loop {
            match self.enc.receive_packet(&mut self.packet) {
                Ok(()) => {
                    let data = self.packet.data().map(<[u8]>::to_vec).unwrap_or_default();
                    let idr =
                        annex_b_nal_units(&data).any(|nal| nal_kind(nal) == nal_type::IDR_SLICE);
                    let au = EncodedAu { data, idr };
                    self.queued.push_back(au);
                }
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => return Ok(()),
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(EncodeError::Encode(e)),
            }
        }
    }

    fn fill_frame(&mut self, img: &I420<'_>) -> Result<(), EncodeError> {
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        check_plane("Y", img.y, img.y_stride, w, h)?;
        check_plane("U", img.u, img.uv_stride, cw, ch)?;
        check_plane("V", img.v, img.uv_stride, cw, ch)?;
        // libavcodec may still hold a reference to the buffer of the previous frame; make sure
        // we write into a buffer nobody else sees.
        // SAFETY: the frame is a valid, allocated AVFrame owned by self.
        let r = unsafe { ff::ffi::av_frame_make_writable(self.frame.as_mut_ptr()) };
        if r < 0 {
            return Err(EncodeError::Encode(ff::Error::from(r)));
        }
        for (i, (src, src_stride, pw, ph)) in [
            (img.y, img.y_stride, w, h),
            (img.u, img.uv_stride, cw, ch),
            (img.v, img.uv_stride, cw, ch),
        ]
        .into_iter()
        .enumerate()
        {
            let dst_stride = self.frame.stride(i);
            let dst = self.frame.data_mut(i);
            for row in 0..ph {
                dst[row * dst_stride..row * dst_stride + pw]
                    .copy_from_slice(&src[row * src_stride..row * src_stride + pw]);
            }
        }
        Ok(())
    }
}

fn check_plane(
    name: &str,
    data: &[u8],
    stride: usize,
    w: usize,
    h: usize,
) -> Result<(), EncodeError> {
    if stride < w {
        return Err(EncodeError::BadInput(format!(
            "{name} stride {stride} is less than the plane width {w}"
        )));
    }
    let need = stride * (h - 1) + w;
    if data.len() < need {
        return Err(EncodeError::BadInput(format!(
            "{name} plane has {} bytes, {w}x{h} with stride {stride} needs {need}",
            data.len()
        )));
    }
    Ok(())
}

fn validate(c: &EncoderConfig) -> Result<(), EncodeError> {
    let bad = |m: String| Err(EncodeError::InvalidConfig(m));
    if c.width == 0 || c.height == 0 || !c.width.is_multiple_of(2) || !c.height.is_multiple_of(2) {
        return bad(format!(
            "{}x{}: width and height must be even and non-zero for 4:2:0",
            c.width, c.height
        ));
    }
    if c.fps == 0 || c.fps > 240 {
        return bad(format!("fps {} must be 1..=240", c.fps));
    }
    if c.bitrate_bps < 1000 {
        return bad(format!(
            "bitrate {} bit/s must be at least 1000",
            c.bitrate_bps
        ));
    }
    if c.threads == 0 {
        return bad("threads must be at least 1".to_string());
    }
    match c.mode {
        RefreshMode::PeriodicIdr { interval: 0 } | RefreshMode::IntraRefresh { period: 0 } => {
            bad("the IDR interval / intra refresh period must be at least 1 frame".to_string())
        }
        RefreshMode::IntraRefresh { period } if period < 2 => bad(format!(
            "intra refresh period {period} must be at least 2 frames"
        )),
        _ => Ok(()),
    }
}

fn apply_bitrate(enc: &mut encoder::video::Video, bitrate_bps: u64, vbv_ms: u32) {
    enc.set_bit_rate(bitrate_bps as usize);
    enc.set_max_bit_rate(bitrate_bps as usize);
    let buffer = (bitrate_bps * u64::from(vbv_ms) / 1000).clamp(1000, i32::MAX as u64) as i32;
    // ffmpeg-next has no setter for rc_buffer_size.
    // SAFETY: plain int field of the AVCodecContext we own.
    unsafe { (*enc.as_mut_ptr()).rc_buffer_size = buffer };
}

fn set_option(enc: &mut encoder::video::Video, name: &str, value: &str) -> Result<(), EncodeError> {
    let err = |source| EncodeError::SetOption {
        name: name.to_string(),
        value: value.to_string(),
        source,
    };
    let (Ok(cname), Ok(cvalue)) = (CString::new(name), CString::new(value)) else {
        return Err(err(ff::Error::InvalidData));
    };
    // SAFETY: the context is a valid AVCodecContext allocated with the libx264 codec, so its
    // priv_data (searched through AV_OPT_SEARCH_CHILDREN) holds libx264's options.
    let r = unsafe {
        ff::ffi::av_opt_set(
            enc.as_mut_ptr() as *mut c_void,
            cname.as_ptr(),
            cvalue.as_ptr(),
            ff::ffi::AV_OPT_SEARCH_CHILDREN,
        )
    };
    if r < 0 {
        Err(err(ff::Error::from(r)))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_send() {
        fn send<T: Send>() {}
        send::<X264Encoder>();
    }

    #[test]
    fn rejects_odd_size_and_unknown_preset() {
        let c = EncoderConfig::new(
            641,
            360,
            30,
            1_000_000,
            RefreshMode::PeriodicIdr { interval: 30 },
        );
        assert!(matches!(
            X264Encoder::new(c),
            Err(EncodeError::InvalidConfig(_))
        ));
        let mut c = EncoderConfig::new(
            640,
            360,
            30,
            1_000_000,
            RefreshMode::PeriodicIdr { interval: 30 },
        );
        c.preset = "warp9".to_string();
        assert!(matches!(X264Encoder::new(c), Err(EncodeError::Open(_))));
    }

    #[test]
    fn rejects_short_planes() {
        let c = EncoderConfig::new(
            64,
            64,
            30,
            200_000,
            RefreshMode::PeriodicIdr { interval: 30 },
        );
        let mut e = X264Encoder::new(c).expect("open");
        let y = vec![0u8; 64 * 63];
        let uv = vec![128u8; 32 * 32];
        let img = I420 {
            y: &y,
            u: &uv,
            v: &uv,
            y_stride: 64,
            uv_stride: 32,
        };
        assert!(matches!(e.encode(&img), Err(EncodeError::BadInput(_))));
    }
}
