//! Replays the fuzz targets' inputs under plain `cargo test`, through the same harness code the
//! targets run (`fuzz/harness/<target>.rs`, included below): every seed in `fuzz/corpus/<target>/`
//! and every input in `fuzz/regressions/<target>/` — crashers found by fuzzing and the inputs
//! found by hand for issue 16. A harness asserts its target's properties, so a replay fails
//! when an input panics or breaks a property again.
//!
//! The hand-found inputs also have tests of their own below, checking what the fix
//! promised. Their unit-level counterparts (the same scenarios, built in code) are in
//! `src/media/depacketizer.rs` (`a_forward_sequence_jump_resynchronises_after_two_packets`,
//! `a_sender_restarting_its_sequence_backwards_is_followed`,
//! `an_access_unit_past_the_limit_is_dropped_counted_and_a_keyframe_asked_for`),
//! `src/record/mp4_writer.rs` (`a_parameter_set_too_large_for_avcc_is_an_error_not_a_broken_file`)
//! and `src/camera_link/sdp.rs` (`media_lines_split_on_the_space_only`,
//! `bare_carriage_returns_normalise_idempotently`).

#[path = "../fuzz/harness/camera_info.rs"]
mod camera_info;
#[path = "../fuzz/harness/cert_cn.rs"]
mod cert_cn;
#[path = "../fuzz/harness/decode.rs"]
mod decode;
#[path = "../fuzz/harness/depacketize.rs"]
mod depacketize;
#[path = "../fuzz/harness/mp4_writer.rs"]
mod mp4_writer;
#[path = "../fuzz/harness/offer.rs"]
mod offer;
#[path = "../fuzz/harness/passthrough.rs"]
mod passthrough;
#[path = "../fuzz/harness/robot_responses.rs"]
mod robot_responses;
#[path = "../fuzz/harness/sdp_directions.rs"]
mod sdp_directions;
#[path = "../fuzz/harness/sps.rs"]
mod sps;
#[path = "../fuzz/harness/webrtc_offer.rs"]
mod webrtc_offer;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use spot_ptz_stream::media::depacketizer::{DEFAULT_MAX_ACCESS_UNIT_BYTES, RtpInfo};
use spot_ptz_stream::record::mp4_writer::Mp4Error;

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");

/// The files of `fuzz/<kind>/<target>/`, sorted (none if the folder does not exist).
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(FUZZ_DIR).join(kind).join(target);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    paths.sort();
    paths
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `harness` on every corpus and regression input of `target`; fails naming every input
/// that panicked. Returns how many inputs were replayed.
fn replay(target: &str, harness: impl Fn(&[u8])) -> usize {
    let paths: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .flat_map(|kind| files(kind, target))
        .collect();
    let failures: Vec<String> = paths
        .iter()
        .filter(|path| {
            let data = read(path);
            catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failures.is_empty(), "inputs that fail: {failures:#?}");
    assert!(!paths.is_empty(), "no seed corpus for {target}");
    paths.len()
}

#[test]
fn depacketize_inputs_replay() {
    replay("depacketize", |data| {
        depacketize::run(data);
    });
}

#[test]
fn offer_inputs_replay() {
    replay("offer", offer::run);
}

#[test]
fn sdp_directions_inputs_replay() {
    replay("sdp_directions", sdp_directions::run);
}

#[test]
fn passthrough_inputs_replay() {
    replay("passthrough", |data| {
        passthrough::run(data);
    });
}

#[test]
fn sps_inputs_replay() {
    replay("sps", sps::run);
}

#[test]
fn decode_inputs_replay() {
    replay("decode", |data| {
        decode::run(data);
    });
}

/// The crasher the `decode` fuzz target found in openh264 (a heap read past its per-macroblock
/// buffers, upstream cisco/openh264 #3925): an access unit whose second SPS changes the size
/// after the first picture's slices. The guard in front of openh264 must split it there and
/// give the new sequence a new decoder (ASan in `scripts/fuzz-smoke` checks the memory side).
#[test]
fn an_sps_that_changes_the_size_mid_access_unit_gets_a_new_openh264_decoder() {
    use spot_ptz_stream::media::openh264_decoder::Openh264Decoder;
    let data =
        read(&Path::new(FUZZ_DIR).join("regressions/decode/openh264_sps_change_mid_access_unit"));
    let (_, units) = decode::parse(&data);
    let mut decoder = Openh264Decoder::new().expect("decoder");
    for unit in units {
        let _ = decoder.decode(unit, |_| ());
    }
    assert!(
        decoder.restarts() >= 1,
        "the changed SPS did not restart openh264"
    );
}

#[test]
fn mp4_writer_inputs_replay() {
    replay("mp4_writer", |data| {
        mp4_writer::run(data);
    });
}

#[test]
fn webrtc_offer_inputs_replay() {
    replay("webrtc_offer", |data| {
        webrtc_offer::run(data);
    });
}

#[test]
fn robot_responses_inputs_replay() {
    replay("robot_responses", robot_responses::run);
}

#[test]
fn cert_cn_inputs_replay() {
    replay("cert_cn", |data| {
        cert_cn::run(data);
    });
}

#[test]
fn camera_info_inputs_replay() {
    replay("camera_info", camera_info::run);
}

/// The seeds reach the deep paths they are there for (a seed that stopped parsing would leave
/// its target fuzzing only the input checks).
#[test]
fn seeds_reach_the_deep_paths() {
    for path in files("corpus", "passthrough") {
        let outcome = passthrough::run(&read(&path));
        assert!(
            outcome.keyframes > 0 && outcome.frames > outcome.keyframes,
            "{}: {outcome:?}",
            path.display()
        );
    }
    for path in files("corpus", "depacketize") {
        let outcome = depacketize::run(&read(&path)).outcome;
        assert!(outcome.access_units > 0, "{}", path.display());
    }
    for path in files("corpus", "decode") {
        let outcome = decode::run(&read(&path));
        assert!(outcome.pictures > 0, "{}: {outcome:?}", path.display());
        if cfg!(feature = "libavcodec") {
            assert!(
                outcome.libavcodec_pictures > 0,
                "{}: {outcome:?}",
                path.display()
            );
        }
    }
    for path in files("corpus", "mp4_writer") {
        let outcome = mp4_writer::run(&read(&path));
        let summary = outcome.summary.expect("a finished recording");
        assert!(summary.fragments > 0, "{}: {outcome:?}", path.display());
    }
    for path in files("corpus", "webrtc_offer") {
        let reached = webrtc_offer::run(&read(&path));
        assert_eq!(
            reached,
            webrtc_offer::Reached::Applied {
                answered: true,
                sends_video: false
            },
            "{}",
            path.display()
        );
    }
    for path in files("corpus", "cert_cn") {
        let data = read(&path);
        let expected = path.ends_with("cn_only.der") || path.ends_with("ip_san.der");
        assert_eq!(cert_cn::run(&data), expected, "{}", path.display());
    }
}

/// The packets of a depacketize input, with the index of the first one whose sequence number
/// does not follow its predecessor.
fn jump_index(packets: &[depacketize::Packet<'_>]) -> usize {
    packets
        .windows(2)
        .position(|w| w[1].rtp.sequence_number != w[0].rtp.sequence_number.wrapping_add(1))
        .map(|i| i + 1)
        .expect("an input with a sequence jump")
}

/// Issue 16, finding 1: after a +40000 or a backward sequence jump the stream resumes within a
/// few packets (instead of 25,537 packets later), and the resync is counted.
#[test]
fn sequence_jumps_resume_within_a_few_packets() {
    for name in ["sequence_jump_forward_40000", "sequence_jump_backward"] {
        let data = read(
            &Path::new(FUZZ_DIR)
                .join("regressions/depacketize")
                .join(name),
        );
        let (config, packets) = depacketize::parse(&data);
        let jump = jump_index(&packets);
        let mut harness = depacketize::Harness::new(config);
        let mut first_after_jump = None;
        for (i, packet) in packets.iter().enumerate() {
            if harness.push(packet).is_some() && i >= jump && first_after_jump.is_none() {
                first_after_jump = Some(i);
            }
        }
        let resumed_at =
            first_after_jump.unwrap_or_else(|| panic!("{name}: no frame after the jump"));
        assert!(
            resumed_at <= jump + 3,
            "{name}: resumed {} packets after the jump",
            resumed_at - jump
        );
        let counters = harness.depacketizer().counters();
        assert_eq!(counters.sequence_resyncs, 1, "{name}: {counters:?}");
        assert_eq!(counters.packets_lost, 0, "{name}: {counters:?}");
    }
}

thread_local! {
    static LIVE_BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Counts the bytes each thread holds, for the memory bound below.
struct CountingAllocator;

fn count_alloc(bytes: usize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn count_free(bytes: usize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every call forwards to the system allocator with the same arguments.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_free(layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_free(layout.size());
        count_alloc(new_size);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Issue 16, finding 2: 200,000 packets of 1200 B with one timestamp and no marker bit (231 MB
/// held before the fix) are dropped as one oversized frame, with memory bounded by the limit;
/// a keyframe is asked for and the next frame comes through.
#[test]
fn an_endless_access_unit_is_dropped_with_bounded_memory() {
    const SPS_PPS_IDR: &[u8] = &[
        0x78, 0x00, 0x05, 0x67, 0x42, 0xE0, 0x1F, 0xAA, 0x00, 0x04, 0x68, 0xCE, 0x38, 0x80, 0x00,
        0x05, 0x65, 0x88, 0x84, 0x00, 0x33,
    ];
    let slice: Vec<u8> = std::iter::once(0x41)
        .chain(std::iter::repeat_n(7, 1199))
        .collect();
    let packet =
        |sequence_number: u16, timestamp: u32, marker: bool, payload| depacketize::Packet {
            rtp: RtpInfo {
                sequence_number,
                timestamp,
                marker,
            },
            payload,
            arrival_advance: Duration::from_micros(100),
            reset_before: false,
            take_keyframe_request_after: false,
        };
    let mut harness = depacketize::Harness::new(depacketize::Config {
        keyframe_wait: Duration::from_secs(2),
        max_access_unit_bytes: DEFAULT_MAX_ACCESS_UNIT_BYTES,
    });
    assert!(harness.push(&packet(0, 0, true, SPS_PPS_IDR)).is_some());
    let _ = harness.push(&depacketize::Packet {
        take_keyframe_request_after: true,
        ..packet(1, 3000, true, &slice)
    });
    let baseline = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(baseline));
    let mut sequence = 2u16;
    for _ in 0..200_000 {
        assert!(
            harness
                .push(&packet(sequence, 6000, false, &slice))
                .is_none()
        );
        sequence = sequence.wrapping_add(1);
    }
    let peak = PEAK_BYTES.with(Cell::get) - baseline;
    // The frame's buffer grows by doubling up to the limit: at most twice the limit.
    assert!(
        peak <= 2 * DEFAULT_MAX_ACCESS_UNIT_BYTES + 64 * 1024,
        "{peak} bytes held for an endless access unit"
    );
    assert!(
        harness
            .push(&packet(sequence, 6000, true, &slice))
            .is_none()
    );
    let next = harness.push(&depacketize::Packet {
        take_keyframe_request_after: true,
        ..packet(sequence.wrapping_add(1), 9000, true, &slice)
    });
    assert!(next.is_some_and(|au| au.after_gap));
    let counters = harness.depacketizer().counters();
    assert_eq!(counters.frames_oversized, 1, "{counters:?}");
    assert_eq!(harness.outcome.keyframe_requests_answered_true, 2);
}

/// Issue 16, finding 2, as a committed input: the same with a 4 KiB limit.
#[test]
fn the_endless_access_unit_input_is_counted_as_oversized() {
    let data =
        read(&Path::new(FUZZ_DIR).join("regressions/depacketize/endless_access_unit_4k_limit"));
    let harness = depacketize::run(&data);
    assert_eq!(harness.depacketizer().counters().frames_oversized, 1);
}

/// Issue 16, finding 3: an SPS over 64 KiB is a clear error, and nothing is written.
#[test]
fn an_sps_over_64_kib_is_an_error_and_no_file() {
    let data = read(&Path::new(FUZZ_DIR).join("regressions/mp4_writer/sps_over_64_kib"));
    let outcome = mp4_writer::run(&data);
    match &outcome.error {
        Some(
            error @ Mp4Error::ParameterSetTooLarge {
                which: "SPS",
                size_bytes,
            },
        ) => {
            assert!(*size_bytes > 65_535);
            assert!(error.to_string().contains("65535"), "{error}");
        }
        other => panic!("expected ParameterSetTooLarge, got {other:?}"),
    }
    assert_eq!(outcome.file_bytes, 0);
}

/// Issue 16, finding 4: `m=\u{85}video` is no video section, and text with bare CRs
/// normalises idempotently (the harness asserts idempotence).
#[test]
fn sdp_with_unicode_whitespace_and_bare_carriage_returns_normalises_idempotently() {
    let dir = Path::new(FUZZ_DIR).join("regressions/sdp_directions");
    let nel = String::from_utf8(read(&dir.join("m_nel_video.sdp"))).expect("UTF-8");
    assert!(nel.contains("m=\u{85}video"));
    let normalized = sdp_directions::check(&nel);
    assert!(!normalized.contains("a=sendrecv"), "{normalized:?}");
    let bare_cr = String::from_utf8(read(&dir.join("bare_cr.sdp"))).expect("UTF-8");
    assert!(bare_cr.contains('\r') && !bare_cr.contains("\r\n"));
    sdp_directions::check(&bare_cr);
}

/// Two offers the `webrtc_offer` target found that make webrtc 0.21 write an answer the
/// answerer must refuse: `a=recvonly` before `a=sendrecv` in the video section is answered
/// `sendonly` (the answerer's `WouldSendVideo`), and an `a=rtpmap` that does not parse gets the
/// video section rejected (port 0, the answerer's `NoCompatibleVideo`). Neither panics.
#[test]
fn offers_the_answerer_must_refuse_are_told_apart() {
    let dir = Path::new(FUZZ_DIR).join("regressions/webrtc_offer");
    assert_eq!(
        webrtc_offer::run(&read(
            &dir.join("recvonly_before_sendrecv_answered_sendonly.sdp")
        )),
        webrtc_offer::Reached::Applied {
            answered: true,
            sends_video: true
        }
    );
    assert_eq!(
        webrtc_offer::run(&read(
            &dir.join("unparsable_rtpmap_rejected_without_direction.sdp")
        )),
        webrtc_offer::Reached::Applied {
            answered: true,
            sends_video: false
        }
    );
}
