//! LibavcodecDecoder against streams made by the ffmpeg CLI (testsrc2 → libx264 baseline).
//! Run with `cargo test -- --nocapture` to see the measured tables.

mod common;

use avproto::annexb::{self, ParamSets};
use avproto::libavcodec_decoder::{DecodeError, DecoderOptions, LibavcodecDecoder};
use common::*;

/// Largest per-picture luma+chroma MAE against the loss-free decode that still counts as
/// "clean". Clean pictures measure exactly 0 here; damaged ones from 0.3 up to tens.
const CLEAN_MAE: f64 = 0.05;

fn cached_headers(aus: &[&[u8]]) -> Vec<u8> {
    let mut ps = ParamSets::default();
    for nal in annexb::nal_units(aus[0]) {
        ps.observe(nal);
    }
    ps.annex_b_headers()
}

fn owned(aus: &[&[u8]], range: std::ops::Range<usize>) -> Vec<(usize, Vec<u8>)> {
    range.map(|i| (i, aus[i].to_vec())).collect()
}

#[test]
fn periodic_idr_every_au_gives_one_picture_with_zero_lag() {
    quiet();
    let data = stream_periodic_idr();
    let aus = annexb::split_access_units(&data);
    assert_eq!(aus.len(), 60);
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    for (i, au) in aus.iter().enumerate() {
        let p = dec
            .decode(au)
            .expect("decode")
            .unwrap_or_else(|| panic!("AU {i}: no picture"));
        assert_eq!(p.au_index, i as u64, "picture came out late");
        assert_eq!((p.width, p.height), (640, 360));
        assert!(!p.corrupt, "AU {i} corrupt");
        assert_eq!(p.keyframe, i % 30 == 0, "AU {i} keyframe flag");
        if i == 0 {
            println!(
                "colour: range {:?}, matrix {:?}, strides {}/{}/{}",
                p.color_range,
                p.color_matrix,
                p.y_stride(),
                p.u_stride(),
                p.v_stride()
            );
        }
    }
    let s = dec.stats();
    assert_eq!(
        (
            s.pictures,
            s.no_picture,
            s.extra_pictures_dropped,
            s.recovery_waits
        ),
        (60, 0, 0, 0)
    );
}

#[test]
fn intra_refresh_join_at_au5_with_cached_sps_pps_waits_for_recovery_point() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let mut join = owned(&aus, 5..aus.len());
    let mut first = cached_headers(&aus);
    first.extend_from_slice(&join[0].1);
    join[0].1 = first;

    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let out = run(&mut dec, &join);
    let first_pic = out
        .iter()
        .find(|o| o.picture.is_some())
        .map(|o| o.au)
        .expect("some picture");
    println!("joined at AU 5 with cached SPS/PPS: first picture at AU {first_pic}");
    // x264 puts a recovery point SEI (recovery_frame_cnt 29) on AU 30, so AU 59 completes it.
    assert_eq!(first_pic, 59);
    assert!(out.iter().all(|o| !o.error));
    for o in out.iter().filter(|o| o.au >= first_pic) {
        let (pic, corrupt) = o
            .picture
            .as_ref()
            .unwrap_or_else(|| panic!("AU {} withheld after recovery", o.au));
        assert!(!corrupt, "AU {} corrupt after recovery", o.au);
        let m = mae(pic, &refs[o.au]);
        assert!(
            m <= CLEAN_MAE,
            "AU {} differs from the loss-free decode: MAE {m}",
            o.au
        );
    }
    assert!(!dec.awaiting_recovery());
}

#[test]
fn intra_refresh_join_without_sps_pps_starts_at_the_next_in_band_parameter_sets() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let out = run(&mut dec, &owned(&aus, 5..aus.len()));
    let errors: Vec<_> = out.iter().filter(|o| o.error).map(|o| o.au).collect();
    let first_pic = out
        .iter()
        .find(|o| o.picture.is_some())
        .map(|o| o.au)
        .expect("some picture");
    println!(
        "joined at AU 5 without SPS/PPS: Err for AUs {errors:?}, first picture at AU {first_pic}"
    );
    // x264 repeats SPS/PPS with every recovery point SEI (AU 30, 60, 90): the decoder can start
    // at AU 30 and the recovery completes at AU 59, as with cached parameter sets.
    assert_eq!(first_pic, 59);
    for o in out.iter().filter(|o| o.au >= first_pic) {
        let (pic, corrupt) = o.picture.as_ref().expect("picture after recovery");
        assert!(!corrupt);
        assert!(mae(pic, &refs[o.au]) <= CLEAN_MAE);
    }
}

#[test]
fn periodic_idr_join_mid_gop_waits_for_next_idr() {
    quiet();
    let data = stream_periodic_idr();
    let aus = annexb::split_access_units(&data);
    let mut join = owned(&aus, 5..aus.len());
    let mut first = cached_headers(&aus);
    first.extend_from_slice(&join[0].1);
    join[0].1 = first;
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let out = run(&mut dec, &join);
    let first_pic = out.iter().find(|o| o.picture.is_some()).map(|o| o.au);
    println!("periodic IDR joined at AU 5: first picture at AU {first_pic:?}");
    assert_eq!(first_pic, Some(30));
}

#[test]
fn parameter_sets_in_their_own_au_are_not_an_error() {
    quiet();
    let data = stream_periodic_idr();
    let aus = annexb::split_access_units(&data);
    let headers = cached_headers(&aus);
    // AU 30 without its SPS/PPS: keep only the IDR slice.
    let idr: Vec<u8> = annexb::nal_units_with_offsets(aus[30])
        .filter(|(_, n)| annexb::nal_unit_type(n) == 5)
        .flat_map(|(_, n)| [0u8, 0, 0, 1].into_iter().chain(n.iter().copied()))
        .collect();
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    assert!(
        dec.decode(&headers)
            .expect("SPS/PPS alone is Ok(None)")
            .is_none()
    );
    let p = dec
        .decode(&idr)
        .expect("decode")
        .expect("IDR after separate SPS/PPS decodes");
    assert!(!p.corrupt && p.keyframe);
    assert_eq!(dec.stats().decode_errors, 0);
}

/// What happens to the pictures after one AU is lost, with and without the loss guard.
#[derive(Debug, Default)]
struct LossReport {
    /// Published pictures (not corrupt-flagged) whose MAE vs the loss-free decode > CLEAN_MAE.
    damaged_published: usize,
    /// Pictures flagged corrupt.
    flagged: usize,
    /// AUs after the loss that gave no picture.
    withheld: usize,
    /// Worst MAE among published pictures.
    worst_published_mae: f64,
    /// AU of the first clean published picture after the loss.
    first_clean: Option<usize>,
}

fn with_loss(
    aus: &[&[u8]],
    refs: &[Vec<u8>],
    lost: usize,
    truncate: bool,
    options: DecoderOptions,
) -> LossReport {
    let mut input = owned(aus, 0..aus.len());
    if truncate {
        // Keep the first half of the AU: the slice ends early (a lost RTP fragment).
        let len = input[lost].1.len();
        input[lost].1.truncate(len / 2);
    } else {
        input.remove(lost);
    }
    let mut dec = LibavcodecDecoder::with_options(options).expect("open decoder");
    let out = run(&mut dec, &input);
    let mut r = LossReport::default();
    for o in out.iter().filter(|o| o.au >= lost) {
        match &o.picture {
            None => r.withheld += 1,
            Some((_, true)) => r.flagged += 1,
            Some((pic, false)) => {
                let m = mae(pic, &refs[o.au]);
                r.worst_published_mae = r.worst_published_mae.max(m);
                if m > CLEAN_MAE {
                    r.damaged_published += 1;
                } else if r.first_clean.is_none() && (o.au > lost || !truncate) {
                    r.first_clean = Some(o.au);
                }
            }
        }
    }
    r
}

#[test]
fn intra_refresh_drop_one_au_libavcodec_alone_publishes_damaged_unflagged_pictures() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let raw = DecoderOptions {
        loss_guard: false,
        ..DecoderOptions::default()
    };
    let r = with_loss(&aus, &refs, 40, false, raw);
    println!("drop AU 40, libavcodec alone: {r:?}");
    // libavcodec conceals the frame_num gap with a copy of the previous reference and keeps
    // outputting, without AV_FRAME_FLAG_CORRUPT or decode_error_flags.
    assert_eq!(r.flagged, 0);
    assert_eq!(r.withheld, 0);
    assert!(r.damaged_published > 0);
}

#[test]
fn intra_refresh_drop_one_au_with_loss_guard_withholds_until_recovery() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let r = with_loss(&aus, &refs, 40, false, DecoderOptions::default());
    println!("drop AU 40, loss guard: {r:?}");
    assert_eq!(r.damaged_published, 0);
    assert_eq!(r.flagged, 0);
    // Next recovery point SEI is on AU 60; it completes on AU 89.
    assert_eq!(r.first_clean, Some(89));
}

#[test]
fn truncated_au_is_flagged_and_the_guard_withholds_what_follows() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let raw = DecoderOptions {
        loss_guard: false,
        ..DecoderOptions::default()
    };
    let r_raw = with_loss(&aus, &refs, 40, true, raw);
    let r_guard = with_loss(&aus, &refs, 40, true, DecoderOptions::default());
    println!("truncate AU 40, libavcodec alone: {r_raw:?}");
    println!("truncate AU 40, loss guard:       {r_guard:?}");
    assert!(
        r_raw.flagged >= 1,
        "the concealed picture itself carries decode_error_flags"
    );
    assert!(
        r_raw.damaged_published > 0,
        "its successors are damaged but not flagged"
    );
    assert_eq!(r_guard.damaged_published, 0);
    assert_eq!(r_guard.flagged, 1);
}

/// Every single-AU loss position (drop and truncate) in the intra-refresh and the IDR stream:
/// libavcodec's own flags vs the loss guard.
#[test]
fn loss_sweep_reliability_of_corrupt_signal() {
    quiet();
    let raw = DecoderOptions {
        loss_guard: false,
        ..DecoderOptions::default()
    };
    let guard = DecoderOptions::default();
    let showall = DecoderOptions {
        output_corrupt: true,
        ..DecoderOptions::default()
    };
    let mut failures = Vec::new();
    for (name, data) in [
        ("intra-refresh", stream_intra_refresh()),
        ("periodic IDR", stream_periodic_idr()),
    ] {
        let aus = annexb::split_access_units(&data);
        let refs = reference(&aus);
        for truncate in [false, true] {
            let positions: Vec<usize> = (1..aus.len() - 1).collect();
            let sum = |opts| {
                let (mut damaged, mut cases, mut flagged, mut withheld, mut worst) =
                    (0, 0, 0, 0, 0f64);
                for &lost in &positions {
                    let r = with_loss(&aus, &refs, lost, truncate, opts);
                    damaged += r.damaged_published;
                    cases += usize::from(r.damaged_published > 0);
                    flagged += r.flagged;
                    withheld += r.withheld;
                    worst = worst.max(r.worst_published_mae);
                }
                (damaged, cases, flagged, withheld, worst)
            };
            let r = sum(raw);
            let g = sum(guard);
            let s = sum(showall);
            let kind = if truncate { "truncate" } else { "drop" };
            println!(
                "{name:13} {kind:8} x{:3} | libavcodec alone: {} damaged-unflagged published ({} cases, worst MAE {:.2}), {} flagged, {} withheld \
                 | guard: {} damaged-unflagged, {} flagged, {} withheld | guard+showall: {} damaged-unflagged, {} flagged, {} withheld",
                positions.len(),
                r.0,
                r.1,
                r.4,
                r.2,
                r.3,
                g.0,
                g.2,
                g.3,
                s.0,
                s.2,
                s.3
            );
            if g.0 > 0 || s.0 > 0 {
                failures.push((name, kind));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the guard published damaged unflagged pictures: {failures:?}"
    );
}

/// A second loss inside the recovery sweep that libavcodec reports only for a withheld picture
/// (a truncated AU) is invisible to the decoder; the transport must report it.
#[test]
fn partial_loss_during_recovery_needs_notify_loss() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let mut input = owned(&aus, 0..aus.len());
    let len = input[70].1.len();
    input[70].1.truncate(len / 2);
    input.remove(40);
    let count_damaged = |out: &[Out]| {
        out.iter()
            .filter(|o| matches!(&o.picture, Some((p, false)) if mae(p, &refs[o.au]) > CLEAN_MAE))
            .count()
    };
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let out = run(&mut dec, &input);
    let silent = count_damaged(&out);
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let mut out = Vec::new();
    for (i, au) in &input {
        if *i == 70 {
            dec.notify_loss(); // what an RTP depacketizer does on a sequence gap
        }
        out.extend(run(&mut dec, &[(*i, au.clone())]));
    }
    let told = count_damaged(&out);
    let first = out
        .iter()
        .find(|o| o.au > 70 && o.picture.is_some())
        .map(|o| o.au);
    println!(
        "drop AU 40 + truncate AU 70: {silent} damaged published without notify_loss, {told} with it (first picture then at {first:?})"
    );
    assert_eq!(told, 0);
    assert_eq!(first, Some(119));
}

#[test]
fn output_corrupt_mode_shows_unrecovered_pictures_flagged() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let mut join = owned(&aus, 5..aus.len());
    let mut first = cached_headers(&aus);
    first.extend_from_slice(&join[0].1);
    join[0].1 = first;
    let opts = DecoderOptions {
        output_corrupt: true,
        ..DecoderOptions::default()
    };
    let mut dec = LibavcodecDecoder::with_options(opts).expect("open decoder");
    let out = run(&mut dec, &join);
    let flagged: Vec<_> = out
        .iter()
        .filter(|o| matches!(o.picture, Some((_, true))))
        .map(|o| o.au)
        .collect();
    let withheld = out.iter().filter(|o| o.picture.is_none()).count();
    let unflagged_damaged = out
        .iter()
        .filter(|o| matches!(&o.picture, Some((p, false)) if mae(p, &refs[o.au]) > CLEAN_MAE))
        .count();
    println!(
        "showall: {} flagged (AUs {:?}..{:?}), {withheld} withheld, {unflagged_damaged} unflagged damaged",
        flagged.len(),
        flagged.first(),
        flagged.last()
    );
    assert_eq!(withheld, 0);
    assert_eq!(unflagged_damaged, 0);
    assert_eq!(flagged.first(), Some(&5));
    assert_eq!(flagged.last(), Some(&58));
}

#[test]
fn reset_after_reconnect_resumes_at_next_recovery_point_without_headers() {
    quiet();
    let data = stream_intra_refresh();
    let aus = annexb::split_access_units(&data);
    let refs = reference(&aus);
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    let _ = run(&mut dec, &owned(&aus, 0..45));
    assert!(!dec.awaiting_recovery());
    dec.reset();
    assert!(dec.awaiting_recovery());
    // "Reconnect": the stream continues at AU 62, past the SPS/PPS + SEI of AU 60.
    let out = run(&mut dec, &owned(&aus, 62..aus.len()));
    let first = out.iter().find(|o| o.picture.is_some()).map(|o| o.au);
    println!("reset, resumed at AU 62 (no SPS/PPS in it): first picture at {first:?}");
    // Next SEI at AU 90 → recovery at AU 119; SPS/PPS kept by libavcodec across the flush.
    assert_eq!(first, Some(119));
    let o = out.last().expect("out");
    let (pic, corrupt) = o.picture.as_ref().expect("picture");
    assert!(!corrupt && mae(pic, &refs[o.au]) <= CLEAN_MAE);
    assert_eq!(
        dec.stats().recovery_waits,
        0,
        "a reset is not counted as a loss"
    );
}

#[test]
fn decode_error_keeps_decoder_usable() {
    quiet();
    let data = stream_periodic_idr();
    let aus = annexb::split_access_units(&data);
    let mut dec = LibavcodecDecoder::new().expect("open decoder");
    for au in &aus[..10] {
        dec.decode(au).expect("decode");
    }
    let r = dec.decode(&[0, 0, 0, 1, 0x41, 0x00, 0x00, 0x00, 0x00]);
    println!(
        "garbage P slice: {:?}",
        r.as_ref()
            .map(|p| p.as_ref().map(|p| p.corrupt))
            .map_err(|e| e.to_string())
    );
    assert!(matches!(
        r,
        Ok(None) | Ok(Some(_)) | Err(DecodeError::Decode(_))
    ));
    let mut first = None;
    for (i, au) in aus.iter().enumerate().skip(10) {
        if let Ok(Some(p)) = dec.decode(au)
            && !p.corrupt
            && first.is_none()
        {
            first = Some(i);
        }
    }
    assert_eq!(first, Some(30), "usable again from the next IDR");
}
