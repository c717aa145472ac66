#![allow(dead_code)]
//! Shared test helpers: ffmpeg-CLI stream generation, picture copies, error measures.

use std::path::PathBuf;
use std::process::Command;

use avproto::libavcodec_decoder::{LibavcodecDecoder, Picture};

/// Generates (once per target dir) an Annex-B stream with the ffmpeg CLI:
/// testsrc2, libx264 baseline, `frames` frames of `size` at 30 fps, plus `x264_params`.
pub fn ffmpeg_stream(
    name: &str,
    size: &str,
    frames: u32,
    x264_params: &str,
    extra: &[&str],
) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("streams");
    std::fs::create_dir_all(&dir).expect("create stream dir");
    let path = dir.join(format!("{name}.h264"));
    if let Ok(data) = std::fs::read(&path)
        && !data.is_empty()
    {
        return data;
    }
    let tmp = dir.join(format!(
        "{name}.{}.{:?}.tmp.h264",
        std::process::id(),
        std::thread::current().id()
    ));
    let frames_s = frames.to_string();
    let src = format!("testsrc2=size={size}:rate=30");
    let mut args = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &src,
        "-frames:v",
        &frames_s,
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-pix_fmt",
        "yuv420p",
        "-x264-params",
        x264_params,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "h264"]);
    let tmp_s = tmp.to_string_lossy().to_string();
    args.push(&tmp_s);
    let status = Command::new("ffmpeg").args(&args).status().expect(
        "running the ffmpeg CLI failed: install it (apt-get install ffmpeg) to generate test streams",
    );
    assert!(
        status.success(),
        "ffmpeg failed generating {name}: {args:?}"
    );
    std::fs::rename(&tmp, &path).expect("rename stream");
    std::fs::read(&path).expect("read stream")
}

/// (a) periodic IDR every 30 frames.
pub fn stream_periodic_idr() -> Vec<u8> {
    ffmpeg_stream(
        "a_idr30_640x360",
        "640x360",
        60,
        "keyint=30:min-keyint=30:scenecut=0",
        &[],
    )
}

/// (b) periodic intra refresh, keyint 30, no IDR after frame 0. 120 frames so that a join or a
/// loss has a complete recovery inside the clip.
pub fn stream_intra_refresh() -> Vec<u8> {
    ffmpeg_stream(
        "b_ir30_640x360",
        "640x360",
        120,
        "intra-refresh=1:keyint=30",
        &[],
    )
}

/// Packed copy (Y then U then V, no padding) of a picture.
pub fn packed(p: &Picture<'_>) -> Vec<u8> {
    let (w, h) = (p.width as usize, p.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    for r in 0..h {
        out.extend_from_slice(&p.y()[r * p.y_stride()..r * p.y_stride() + w]);
    }
    for r in 0..ch {
        out.extend_from_slice(&p.u()[r * p.u_stride()..r * p.u_stride() + cw]);
    }
    for r in 0..ch {
        out.extend_from_slice(&p.v()[r * p.v_stride()..r * p.v_stride() + cw]);
    }
    out
}

/// Mean absolute error between two equally sized buffers.
pub fn mae(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.len() as f64
}

/// PSNR in dB (99 for identical).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// What one AU produced.
#[derive(Debug, Clone)]
pub struct Out {
    pub au: usize,
    pub picture: Option<(Vec<u8>, bool)>, // (packed I420, corrupt)
    pub error: bool,
}

/// Feeds `aus` (already selected/modified) and records what came out for each.
pub fn run(dec: &mut LibavcodecDecoder, aus: &[(usize, Vec<u8>)]) -> Vec<Out> {
    aus.iter()
        .map(|(i, au)| match dec.decode(au) {
            Ok(Some(p)) => Out {
                au: *i,
                picture: Some((packed(&p), p.corrupt)),
                error: false,
            },
            Ok(None) => Out {
                au: *i,
                picture: None,
                error: false,
            },
            Err(_) => Out {
                au: *i,
                picture: None,
                error: true,
            },
        })
        .collect()
}

/// Loss-free reference decode: one packed picture per AU (panics if any AU yields none).
pub fn reference(aus: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    aus.iter()
        .enumerate()
        .map(|(i, au)| match dec.decode(au) {
            Ok(Some(p)) => {
                assert!(!p.corrupt, "reference picture {i} corrupt");
                packed(&p)
            }
            other => panic!(
                "reference AU {i} gave no picture: {:?}",
                other.map(|o| o.is_some())
            ),
        })
        .collect()
}

pub fn quiet() {
    avproto::av_log::set_level(avproto::av_log::AvLogLevel::Quiet);
}
