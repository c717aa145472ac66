//! The simulated camera's two H.264 encoders behind one type:
//!
//! - openh264 (always built): IDR pictures every `idr_interval_frames`, as a bare encoder;
//!   a bitrate change makes a new encoder, which starts with an IDR;
//! - libx264 through libavcodec (feature `libavcodec`, `--intra-refresh`): periodic intra
//!   refresh like the real Spot CAM: one IDR at the start, then a wave of intra macroblocks
//!   every `refresh_interval_frames` with a recovery-point SEI, and no IDR again unless a
//!   keyframe is forced. A bitrate change is applied to the live encoder, without an IDR.

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode,
};
use openh264::formats::YUVSlices;

use crate::sim::scene::I420Frame;
use crate::sim::state::StreamSettings;
#[cfg(feature = "libavcodec")]
use crate::sim::x264_encoder::{self, RefreshMode, X264Encoder};

/// Refresh period used when the stream parameters leave it at 0 ("encoder default").
pub const DEFAULT_REFRESH_INTERVAL_FRAMES: u32 = 30;

/// The bitrates both encoders accept; requests outside are clamped to it.
const BITRATE_RANGE_BPS: (i64, i64) = (50_000, 50_000_000);

fn clamped_bitrate_bps(bitrate_bps: i64) -> i64 {
    bitrate_bps.clamp(BITRATE_RANGE_BPS.0, BITRATE_RANGE_BPS.1)
}

/// Which encoder the camera runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncoderKind {
    /// openh264 with IDR pictures.
    #[default]
    PeriodicIdr,
    /// libx264 with periodic intra refresh (needs the `libavcodec` feature).
    IntraRefresh,
}

/// The encoder could not be created or failed.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("could not create the openh264 encoder: {0}")]
    OpenH264(String),
    #[cfg(feature = "libavcodec")]
    #[error(transparent)]
    X264(#[from] x264_encoder::EncodeError),
    #[error(
        "--intra-refresh needs libx264 through libavcodec; build with the `libavcodec` feature"
    )]
    IntraRefreshUnavailable,
}

/// One live encoder.
pub enum SimEncoder {
    OpenH264(Box<Encoder>),
    #[cfg(feature = "libavcodec")]
    X264(Box<X264Encoder>),
}

impl SimEncoder {
    /// An encoder for `width`x`height` pictures at `fps` with `settings`.
    pub fn new(
        kind: EncoderKind,
        settings: &StreamSettings,
        fps: u32,
        width: u32,
        height: u32,
    ) -> Result<Self, EncoderError> {
        let bitrate_bps = clamped_bitrate_bps(settings.target_bitrate_bps);
        match kind {
            EncoderKind::PeriodicIdr => {
                let idr_interval = u32::try_from(settings.idr_interval_frames.max(0)).unwrap_or(0);
                let config = EncoderConfig::new()
                    .bitrate(BitRate::from_bps(bitrate_bps as u32))
                    .max_frame_rate(FrameRate::from_hz(fps as f32))
                    .rate_control_mode(RateControlMode::Bitrate)
                    .skip_frames(false)
                    .profile(Profile::Baseline)
                    .complexity(Complexity::Low)
                    .scene_change_detect(false)
                    .background_detection(false)
                    .adaptive_quantization(false)
                    .intra_frame_period(IntraFramePeriod::from_num_frames(idr_interval))
                    .num_threads(1);
                Encoder::with_api_config(OpenH264API::from_source(), config)
                    .map(|encoder| Self::OpenH264(Box::new(encoder)))
                    .map_err(|e| EncoderError::OpenH264(e.to_string()))
            }
            #[cfg(feature = "libavcodec")]
            EncoderKind::IntraRefresh => {
                let period = u32::try_from(settings.refresh_interval_frames)
                    .ok()
                    .filter(|&p| p >= 2)
                    .unwrap_or(DEFAULT_REFRESH_INTERVAL_FRAMES);
                let config = x264_encoder::EncoderConfig::new(
                    width,
                    height,
                    fps,
                    bitrate_bps as u64,
                    RefreshMode::IntraRefresh { period },
                );
                Ok(Self::X264(Box::new(X264Encoder::new(config)?)))
            }
            #[cfg(not(feature = "libavcodec"))]
            EncoderKind::IntraRefresh => {
                let _ = (width, height);
                Err(EncoderError::IntraRefreshUnavailable)
            }
        }
    }

    /// The next picture is an IDR (with SPS/PPS).
    pub fn force_idr(&mut self) {
        match self {
            Self::OpenH264(encoder) => encoder.force_intra_frame(),
            #[cfg(feature = "libavcodec")]
            Self::X264(encoder) => encoder.force_keyframe(),
        }
    }

    /// Applies a new bitrate to the live encoder; `false` when this encoder cannot (make a new
    /// one).
    pub fn set_bitrate(&mut self, bitrate_bps: i64) -> bool {
        match self {
            Self::OpenH264(_) => {
                let _ = bitrate_bps;
                false
            }
            #[cfg(feature = "libavcodec")]
            Self::X264(encoder) => encoder
                .set_bitrate(clamped_bitrate_bps(bitrate_bps) as u64)
                .is_ok(),
        }
    }

    /// Encodes one picture: the Annex-B access unit (empty when the encoder skipped it) and
    /// whether it is an IDR.
    pub fn encode(&mut self, picture: &I420Frame) -> Result<(Vec<u8>, bool), String> {
        let (width, height) = (picture.width as usize, picture.height as usize);
        let (y, u, v) = picture.planes();
        match self {
            Self::OpenH264(encoder) => {
                let source =
                    YUVSlices::new((y, u, v), (width, height), (width, width / 2, width / 2));
                let bitstream = encoder.encode(&source).map_err(|e| e.to_string())?;
                Ok((bitstream.to_vec(), bitstream.frame_type() == FrameType::IDR))
            }
            #[cfg(feature = "libavcodec")]
            Self::X264(encoder) => {
                let image = x264_encoder::I420 {
                    y,
                    u,
                    v,
                    y_stride: width,
                    uv_stride: width / 2,
                };
                let au = encoder.encode(&image).map_err(|e| e.to_string())?;
                Ok(au.map_or((Vec::new(), false), |au| (au.data, au.idr)))
            }
        }
    }
}
