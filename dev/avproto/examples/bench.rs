//! CPU-time benchmark (single thread): libavcodec vs openh264 decode, libx264 encode.
//!
//! cargo run --release --example bench -- STREAM.h264 [STREAM.h264 ...]
//! Streams: 1080p30 Annex-B (see REPORT.md for the ffmpeg commands).

use std::time::Instant;

use avproto::annexb;
use avproto::libavcodec_decoder::LibavcodecDecoder;
use avproto::x264_encoder::{EncoderConfig, I420, RefreshMode, X264Encoder};

/// CPU time of the calling thread in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn measure(runs: usize, frames: usize, mut f: impl FnMut() -> Res<usize>) -> Res<(f64, f64, f64)> {
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (c0, w0) = (thread_cpu(), Instant::now());
        let n = f()?;
        if n != frames {
            return Err(format!("only {n} of {frames} AUs gave a picture").into());
        }
        cpu.push((thread_cpu() - c0) * 1000.0 / frames as f64);
        wall.push(w0.elapsed().as_secs_f64() * 1000.0 / frames as f64);
    }
    let min = cpu.iter().copied().fold(f64::MAX, f64::min);
    Ok((median(cpu), min, median(wall)))
}

fn main() -> Res<()> {
    avproto::av_log::set_level(avproto::av_log::AvLogLevel::Quiet);
    let runs = 5;
    let mut first_stream_frames: Vec<Vec<u8>> = Vec::new();
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path)?;
        let aus = annexb::split_access_units(&data);
        let n = aus.len();
        let mbit = data.len() as f64 * 8.0 * 30.0 / n as f64 / 1e6;
        println!("{path}: {n} AUs, {mbit:.2} Mbit/s at 30 fps");

        let (m, lo, w) = measure(runs, n, || {
            let mut dec = LibavcodecDecoder::new()?;
            Ok(aus
                .iter()
                .filter(|au| matches!(dec.decode(au), Ok(Some(_))))
                .count())
        })?;
        println!(
            "  libavcodec (ffmpeg-next) decode: {m:.2} ms CPU/frame median (min {lo:.2}), {w:.2} ms wall"
        );

        let (m, lo, w) = measure(runs, n, || {
            let mut dec = openh264::decoder::Decoder::new()?;
            Ok(aus
                .iter()
                .filter(|au| matches!(dec.decode(au), Ok(Some(_))))
                .count())
        })?;
        println!(
            "  openh264 0.9.9 decode:           {m:.2} ms CPU/frame median (min {lo:.2}), {w:.2} ms wall"
        );

        if first_stream_frames.is_empty() {
            let mut dec = LibavcodecDecoder::new()?;
            for au in aus.iter().take(120) {
                if let Some(p) = dec.decode(au)? {
                    first_stream_frames.push(common_packed(&p));
                }
            }
        }
    }

    // Decoder (re)open cost: what the loss guard pays per loss.
    let c0 = thread_cpu();
    for _ in 0..100 {
        drop(LibavcodecDecoder::new()?);
    }
    println!(
        "LibavcodecDecoder::new() (the loss guard's restart): {:.3} ms CPU each",
        (thread_cpu() - c0) * 10.0
    );

    if first_stream_frames.is_empty() {
        return Ok(());
    }
    let (w, h) = (1920usize, 1080usize);
    let frames = &first_stream_frames;
    for (preset, mode) in [
        ("ultrafast", RefreshMode::IntraRefresh { period: 30 }),
        ("ultrafast", RefreshMode::PeriodicIdr { interval: 30 }),
        ("superfast", RefreshMode::IntraRefresh { period: 30 }),
    ] {
        for bitrate in [2_000_000u64, 8_000_000] {
            let mut cfg = EncoderConfig::new(w as u32, h as u32, 30, bitrate, mode);
            cfg.preset = preset.to_string();
            let open_c0 = thread_cpu();
            let mut enc = X264Encoder::new(cfg)?;
            let open_ms = (thread_cpu() - open_c0) * 1000.0;
            let mut cpu = Vec::new();
            let mut bytes = 0usize;
            let rounds = 2; // 240 frames
            for r in 0..rounds {
                let c0 = thread_cpu();
                for f in frames {
                    let img = I420 {
                        y: &f[..w * h],
                        u: &f[w * h..w * h * 5 / 4],
                        v: &f[w * h * 5 / 4..],
                        y_stride: w,
                        uv_stride: w / 2,
                    };
                    let au = enc.encode(&img)?.ok_or("no AU")?;
                    if r == rounds - 1 {
                        bytes += au.data.len();
                    }
                }
                cpu.push((thread_cpu() - c0) * 1000.0 / frames.len() as f64);
            }
            let kbit = bytes as f64 * 8.0 * 30.0 / frames.len() as f64 / 1000.0;
            println!(
                "libx264 {preset} zerolatency {mode:?} {} Mbit/s: {:.2} ms CPU/frame (runs {:?}), {kbit:.0} kbit/s out, open {open_ms:.1} ms",
                bitrate / 1_000_000,
                median(cpu.clone()),
                cpu.iter()
                    .map(|c| (c * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}

fn common_packed(p: &avproto::libavcodec_decoder::Picture<'_>) -> Vec<u8> {
    let (w, h) = (p.width as usize, p.height as usize);
    let mut out = Vec::with_capacity(w * h * 3 / 2);
    for r in 0..h {
        out.extend_from_slice(&p.y()[r * p.y_stride()..r * p.y_stride() + w]);
    }
    for r in 0..h / 2 {
        out.extend_from_slice(&p.u()[r * p.u_stride()..r * p.u_stride() + w / 2]);
    }
    for r in 0..h / 2 {
        out.extend_from_slice(&p.v()[r * p.v_stride()..r * p.v_stride() + w / 2]);
    }
    out
}
