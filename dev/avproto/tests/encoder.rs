//! X264Encoder: refresh modes, IDR/SEI structure, quality through LibavcodecDecoder, live
//! bitrate changes, forced keyframes.

mod common;

use avproto::annexb::{self, nal_type};
use avproto::libavcodec_decoder::LibavcodecDecoder;
use avproto::x264_encoder::{EncodedAu, EncoderConfig, I420, RefreshMode, X264Encoder};
use common::*;

const W: usize = 640;
const H: usize = 360;

/// Synthetic moving pattern: diagonal gradient + a moving textured square + a little
/// per-frame noise (`noise` = amplitude) so that rate control has work to do.
fn pattern(t: usize, noise: u8) -> Vec<u8> {
    let (cw, ch) = (W / 2, H / 2);
    let mut img = vec![0u8; W * H + 2 * cw * ch];
    let mut seed = (t as u32).wrapping_mul(2_654_435_761) | 1;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let (sx, sy) = (40 + 4 * t % (W - 160), 60 + 2 * t % (H - 160));
    for y in 0..H {
        for x in 0..W {
            let mut v = ((x + y + 3 * t) / 3 % 200) as i32 + 20;
            if (sx..sx + 120).contains(&x) && (sy..sy + 120).contains(&y) {
                v = if ((x - sx) / 8 + (y - sy) / 8) % 2 == 0 {
                    230
                } else {
                    30
                };
            }
            if noise > 0 {
                v += (rnd() % (2 * u32::from(noise) + 1)) as i32 - i32::from(noise);
            }
            img[y * W + x] = v.clamp(0, 255) as u8;
        }
    }
    for y in 0..ch {
        for x in 0..cw {
            img[W * H + y * cw + x] = ((x + t) % 128 + 64) as u8;
            img[W * H + cw * ch + y * cw + x] = ((y + 2 * t) % 128 + 64) as u8;
        }
    }
    img
}

fn planes(img: &[u8]) -> I420<'_> {
    let (cw, ch) = (W / 2, H / 2);
    I420 {
        y: &img[..W * H],
        u: &img[W * H..W * H + cw * ch],
        v: &img[W * H + cw * ch..],
        y_stride: W,
        uv_stride: cw,
    }
}

fn encode_clip(
    mode: RefreshMode,
    frames: usize,
    force_at: Option<usize>,
) -> (Vec<Vec<u8>>, Vec<EncodedAu>) {
    quiet();
    let cfg = EncoderConfig::new(W as u32, H as u32, 30, 1_500_000, mode);
    let mut enc = X264Encoder::new(cfg).expect("open libx264");
    let mut src = Vec::new();
    let mut aus = Vec::new();
    for t in 0..frames {
        let img = pattern(t, 2);
        if force_at == Some(t) {
            enc.force_keyframe();
        }
        let au = enc
            .encode(&planes(&img))
            .expect("encode")
            .unwrap_or_else(|| panic!("frame {t}: no AU (delay)"));
        assert_eq!(au.pts, t as i64, "one frame in, one AU out");
        assert!(
            annexb::nal_units(&au.data).next().is_some(),
            "AU starts with a start code"
        );
        aus.push(au);
        src.push(img);
    }
    (src, aus)
}

fn decode_and_check(src: &[Vec<u8>], aus: &[EncodedAu]) -> f64 {
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let mut worst = f64::MAX;
    for (i, au) in aus.iter().enumerate() {
        let p = dec
            .decode(&au.data)
            .expect("decode")
            .unwrap_or_else(|| panic!("AU {i}: no picture"));
        assert!(!p.corrupt);
        assert_eq!(p.au_index, i as u64);
        let got = packed(&p);
        worst = worst.min(psnr(&got[..W * H], &src[i][..W * H]));
    }
    worst
}

fn idr_frames(aus: &[EncodedAu]) -> Vec<usize> {
    aus.iter()
        .enumerate()
        .filter(|(_, a)| a.idr)
        .map(|(i, _)| i)
        .collect()
}

fn sps_pps_before_idr(au: &EncodedAu) -> bool {
    let types = annexb::nal_types(&au.data);
    let idr = types.iter().position(|&t| t == nal_type::IDR);
    let sps = types.iter().position(|&t| t == nal_type::SPS);
    let pps = types.iter().position(|&t| t == nal_type::PPS);
    matches!((sps, pps, idr), (Some(s), Some(p), Some(i)) if s < p && p < i)
}

#[test]
fn periodic_idr_mode() {
    let (src, aus) = encode_clip(RefreshMode::PeriodicIdr { interval: 30 }, 90, None);
    assert_eq!(idr_frames(&aus), vec![0, 30, 60]);
    for i in [0, 30, 60] {
        assert!(
            sps_pps_before_idr(&aus[i]),
            "AU {i}: SPS/PPS must precede the IDR: {:?}",
            annexb::nal_types(&aus[i].data)
        );
    }
    assert!(aus.iter().all(|a| !a.recovery_point));
    let sps = annexb::nal_units(&aus[0].data)
        .find_map(annexb::parse_sps)
        .expect("sps");
    assert_eq!(sps.profile_idc, 66, "baseline");
    let psnr = decode_and_check(&src, &aus);
    let kbit: usize = aus.iter().map(|a| a.data.len()).sum::<usize>() * 8 / 3 / 1000;
    println!(
        "periodic IDR: worst luma PSNR {psnr:.1} dB, {kbit} kbit/s, IDR sizes {:?} B",
        [0, 30, 60].map(|i| aus[i].data.len())
    );
    assert!(psnr > 32.0, "PSNR {psnr}");
}

#[test]
fn intra_refresh_mode() {
    let (src, aus) = encode_clip(RefreshMode::IntraRefresh { period: 30 }, 90, None);
    assert_eq!(idr_frames(&aus), vec![0], "exactly one IDR, at frame 0");
    let sei: Vec<usize> = aus
        .iter()
        .enumerate()
        .filter(|(_, a)| a.recovery_point)
        .map(|(i, _)| i)
        .collect();
    println!(
        "intra refresh: recovery point SEI on frames {sei:?}; key_flag on {:?}",
        aus.iter()
            .enumerate()
            .filter(|(_, a)| a.key_flag)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        sei,
        vec![30, 60],
        "recovery point SEI (NAL 6, payload 6) at each sweep start"
    );
    for i in [30, 60] {
        let t = annexb::nal_types(&aus[i].data);
        assert!(
            t.contains(&nal_type::SPS) && t.contains(&nal_type::PPS),
            "SPS/PPS repeated at sweep start {i}: {t:?}"
        );
    }
    let worst = decode_and_check(&src, &aus);
    let sizes: Vec<usize> = aus.iter().map(|a| a.data.len()).collect();
    let max_p = sizes[1..].iter().max().copied().unwrap_or(0);
    println!(
        "intra refresh: worst luma PSNR {worst:.1} dB, IDR {} B, largest later AU {max_p} B",
        sizes[0]
    );
    assert!(worst > 32.0, "PSNR {worst}");

    // A receiver joining at frame 5 with cached SPS/PPS gets its first picture when the sweep
    // that starts at frame 30 completes.
    let headers = annexb::nal_units(&aus[0].data)
        .filter(|n| matches!(annexb::nal_unit_type(n), nal_type::SPS | nal_type::PPS))
        .flat_map(|n| [0u8, 0, 0, 1].into_iter().chain(n.iter().copied()))
        .collect::<Vec<u8>>();
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let mut first = None;
    for (i, au) in aus.iter().enumerate().skip(5) {
        let mut data = if i == 5 { headers.clone() } else { Vec::new() };
        data.extend_from_slice(&au.data);
        if let Some(p) = dec.decode(&data).expect("decode") {
            assert!(!p.corrupt);
            first.get_or_insert(i);
            assert!(psnr(&packed(&p)[..W * H], &src[i][..W * H]) > 32.0);
        }
    }
    println!("intra refresh: joiner at frame 5 gets its first picture at frame {first:?}");
    assert_eq!(first, Some(59));
}

#[test]
fn force_keyframe_gives_an_idr_in_both_modes() {
    for mode in [
        RefreshMode::PeriodicIdr { interval: 30 },
        RefreshMode::IntraRefresh { period: 30 },
    ] {
        let (_, aus) = encode_clip(mode, 120, Some(45));
        let idrs = idr_frames(&aus);
        let seis: Vec<usize> = aus
            .iter()
            .enumerate()
            .filter(|(_, a)| a.recovery_point)
            .map(|(i, _)| i)
            .collect();
        println!("{mode:?} with force_keyframe at 45: IDRs {idrs:?}, recovery SEIs {seis:?}");
        assert!(idrs.contains(&45), "{mode:?}: {idrs:?}");
        assert!(sps_pps_before_idr(&aus[45]));
    }
}

#[test]
fn live_bitrate_change() {
    quiet();
    let mut cfg = EncoderConfig::new(
        W as u32,
        H as u32,
        30,
        400_000,
        RefreshMode::IntraRefresh { period: 30 },
    );
    cfg.vbv_buffer_ms = 500;
    let mut enc = X264Encoder::new(cfg).expect("open libx264");
    let mut bytes = Vec::new();
    for t in 0..180 {
        if t == 60 {
            enc.set_bitrate(2_000_000).expect("raise bitrate");
        }
        if t == 120 {
            enc.set_bitrate(400_000).expect("lower bitrate");
        }
        let img = pattern(t, 12);
        let au = enc.encode(&planes(&img)).expect("encode").expect("au");
        assert!(
            !au.idr || t == 0,
            "a bitrate change must not cause an IDR (frame {t})"
        );
        bytes.push(au.data.len());
    }
    // kbit/s over the second half of each 60-frame phase (after the VBV has settled).
    let rate = |r: std::ops::Range<usize>| {
        bytes[r.clone()].iter().sum::<usize>() as f64 * 8.0 * 30.0 / r.len() as f64 / 1000.0
    };
    let (low, high, low2) = (rate(30..60), rate(90..120), rate(150..180));
    println!(
        "live bitrate change: 400 kbit/s → {low:.0}, 2000 kbit/s → {high:.0}, back to 400 → {low2:.0} kbit/s"
    );
    assert!(
        high > 3.0 * low,
        "raising the bitrate on the live encoder had no effect"
    );
    assert!(low2 < high / 3.0, "lowering it had no effect");
    assert!((low - 400.0).abs() < 150.0 && (high - 2000.0).abs() < 600.0);
}
