//! No damaged picture is ever published: an intra-refresh stream like the Spot CAM's (one IDR,
//! then recovery-point SEIs; made by libx264 through the ffmpeg CLI) loses access units the way
//! a link does, and every bgr8 picture the decoder thread outputs must equal, pixel for pixel,
//! the picture of the loss-free decode. Output must come back after the next refresh wave.
//! The same lossy stream through libavcodec without the guard shows the damage: the comparison
//! can fail.
#![cfg(feature = "libavcodec")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use spot_ptz_stream::media::buffer_pool::BufferPool;
use spot_ptz_stream::media::convert::{ColorSpec, i420_to_bgr8};
use spot_ptz_stream::media::decoder::{
    self, DecodedFrame, DecoderBackend, DecoderOutput, DecoderSettings,
};
use spot_ptz_stream::media::depacketizer::AccessUnit;
use spot_ptz_stream::media::handoff::{Demand, DropOldestQueue};
use spot_ptz_stream::media::libavcodec::{Decoded, LibavcodecDecoder};
use spot_ptz_stream::stats::StreamStats;

const FRAMES: usize = 150;
/// Frames between refresh waves (x264 `keyint` with `intra-refresh=1`).
const REFRESH_FRAMES: usize = 30;
/// A picture whose mean absolute difference to the reference is above this shows damage.
const DAMAGED_MAE: f64 = 0.05;

/// 320x240 test pattern with motion, intra refresh, an AUD before every access unit; made
/// once per test process.
fn intra_refresh_stream() -> Vec<Vec<u8>> {
    static STREAM: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    STREAM
        .get_or_init(|| {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("intra_refresh_320x240_{}.h264", std::process::id()));
            let status = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
                .arg("testsrc2=size=320x240:rate=30")
                .args(["-frames:v", &FRAMES.to_string(), "-c:v", "libx264"])
                .args([
                    "-profile:v",
                    "baseline",
                    "-pix_fmt",
                    "yuv420p",
                    "-b:v",
                    "600k",
                ])
                .args([
                    "-x264-params",
                    &format!("intra-refresh=1:keyint={REFRESH_FRAMES}"),
                ])
                .args(["-bsf:v", "h264_metadata=aud=insert", "-f", "h264"])
                .arg(&path)
                .status()
                .expect("run ffmpeg (scripts/test-deps.sh installs it)");
            assert!(status.success(), "ffmpeg could not encode the test stream");
            let data = std::fs::read(&path).expect("read the stream");
            let _ = std::fs::remove_file(&path);
            split_at_access_unit_delimiters(&data)
        })
        .clone()
}

fn split_at_access_unit_delimiters(data: &[u8]) -> Vec<Vec<u8>> {
    let starts: Vec<usize> = (0..data.len().saturating_sub(4))
        .filter(|&i| data[i..].starts_with(&[0, 0, 0, 1, 0x09]))
        .collect();
    let aus: Vec<Vec<u8>> = starts
        .iter()
        .enumerate()
        .map(|(k, &start)| data[start..starts.get(k + 1).copied().unwrap_or(data.len())].to_vec())
        .collect();
    assert_eq!(aus.len(), FRAMES, "one access unit per frame");
    aus
}

/// How one access unit reaches the decoder.
#[derive(Clone, Copy, PartialEq)]
enum Delivery {
    Intact,
    /// Lost on the link; the depacketizer saw the sequence gap and flags the next one.
    LostAndSeen,
    /// Lost without a trace (a sender that skipped it): only the bitstream tells.
    LostSilently,
    /// Half of it arrived (a broken slice the transport could not see).
    Truncated,
}

struct Run {
    /// Access unit index → bgr8 picture.
    pictures: HashMap<usize, Vec<u8>>,
    withheld: u64,
}

/// Decodes `aus` through the real decoder thread; the access units at `affected` arrive as
/// `delivery` says, the others intact.
fn decode(backend: DecoderBackend, aus: &[Vec<u8>], affected: &[usize], delivery: Delivery) -> Run {
    let input = DropOldestQueue::new(FRAMES);
    let frames: Arc<DropOldestQueue<DecodedFrame>> = DropOldestQueue::new(FRAMES);
    let stats = Arc::new(StreamStats::default());
    let thread = decoder::spawn(
        DecoderSettings {
            backend,
            color: ColorSpec::default(),
            resync_wait: Duration::from_secs(2),
            headroom_bytes: 0,
        },
        input.clone(),
        DecoderOutput {
            frames: frames.clone(),
            buffers: Arc::new(BufferPool::new(4)),
            stats: stats.clone(),
            wanted: Demand::new(true),
            jpeg: None,
            on_keyframe_needed: Box::new(|| {}),
        },
    )
    .expect("decoder thread");
    let mut after_gap = false;
    for (index, au) in aus.iter().enumerate() {
        let arrives = if affected.contains(&index) {
            delivery
        } else {
            Delivery::Intact
        };
        let data = match arrives {
            Delivery::Intact => au.clone(),
            Delivery::Truncated => au[..au.len() / 2].to_vec(),
            Delivery::LostSilently => continue,
            Delivery::LostAndSeen => {
                after_gap = true;
                continue;
            }
        };
        input.push(AccessUnit {
            is_idr: index == 0,
            data,
            rtp_timestamp: index as u32,
            first_arrival: Instant::now(),
            after_gap: std::mem::take(&mut after_gap),
        });
    }
    input.close();
    thread.join().expect("decoder thread ended");
    let mut pictures = HashMap::new();
    while let Ok(Some(frame)) = frames.pop_blocking(Duration::ZERO) {
        assert_eq!((frame.width, frame.height), (320, 240));
        pictures.insert(frame.rtp_timestamp as usize, frame.bgr().to_vec());
    }
    Run {
        pictures,
        withheld: stats.frames_withheld.load(Ordering::Relaxed),
    }
}

fn mean_absolute_difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len() as f64
}

/// Indices of output pictures that differ from the loss-free decode.
fn damaged(run: &Run, reference: &Run) -> Vec<(usize, f64)> {
    let mut damaged: Vec<(usize, f64)> = run
        .pictures
        .iter()
        .map(|(index, picture)| {
            (
                *index,
                mean_absolute_difference(picture, &reference.pictures[index]),
            )
        })
        .filter(|(_, mae)| *mae > DAMAGED_MAE)
        .collect();
    damaged.sort_by_key(|(index, _)| *index);
    damaged
}

fn reference(aus: &[Vec<u8>]) -> Run {
    let run = decode(DecoderBackend::Libavcodec, aus, &[], Delivery::Intact);
    assert_eq!(
        run.pictures.len(),
        FRAMES,
        "the loss-free decode gives every picture"
    );
    run
}

/// Checks the guarded run: nothing damaged, and pictures again within two refresh waves.
fn assert_clean_and_recovered(run: &Run, reference: &Run, loss_at: usize) {
    assert_eq!(
        damaged(run, reference),
        vec![],
        "damaged pictures were output"
    );
    let first_after = run.pictures.keys().copied().filter(|i| *i > loss_at).min();
    let first_after = first_after.expect("no picture after the loss");
    assert!(
        first_after <= loss_at + 2 * REFRESH_FRAMES + 1,
        "pictures came back only at access unit {first_after} (loss at {loss_at})"
    );
    // Up to the loss everything was output.
    assert!((0..loss_at).all(|i| run.pictures.contains_key(&i)));
}

#[test]
fn a_reference_picture_lost_silently_is_never_shown_damaged() {
    let aus = intra_refresh_stream();
    let reference = reference(&aus);
    let run = decode(
        DecoderBackend::Libavcodec,
        &aus,
        &[40],
        Delivery::LostSilently,
    );
    assert_clean_and_recovered(&run, &reference, 40);

    // libavcodec without the guard shows the same loss: the comparison can fail.
    let mut unguarded = LibavcodecDecoder::with_loss_guard(false).expect("libavcodec");
    let mut damaged_pictures = 0;
    for (index, au) in aus.iter().enumerate().filter(|(i, _)| *i != 40) {
        if let Ok(Decoded::Picture(planes)) = unguarded.decode(au) {
            let mut bgr = vec![0; planes.bgr8_len()];
            i420_to_bgr8(&planes, ColorSpec::default(), &mut bgr).expect("convert");
            if mean_absolute_difference(&bgr, &reference.pictures[&index]) > DAMAGED_MAE {
                damaged_pictures += 1;
            }
        }
    }
    assert!(
        damaged_pictures > 0,
        "the lost picture left no visible damage: the test cannot fail"
    );
}

#[test]
fn a_loss_the_depacketizer_saw_withholds_until_the_refresh_wave_completes() {
    let aus = intra_refresh_stream();
    let reference = reference(&aus);
    // Inside a refresh wave, and two in a row.
    for lost in [vec![70], vec![95, 96]] {
        let run = decode(
            DecoderBackend::Libavcodec,
            &aus,
            &lost,
            Delivery::LostAndSeen,
        );
        assert_clean_and_recovered(&run, &reference, lost[0]);
    }
}

#[test]
fn a_broken_picture_is_withheld_and_so_are_those_that_predict_from_it() {
    let aus = intra_refresh_stream();
    let reference = reference(&aus);
    let run = decode(DecoderBackend::Libavcodec, &aus, &[50], Delivery::Truncated);
    assert_clean_and_recovered(&run, &reference, 50);
    assert!(
        !run.pictures.contains_key(&50),
        "the broken picture was output"
    );
    assert!(
        run.withheld >= 1,
        "the broken picture was not counted as withheld"
    );
}
