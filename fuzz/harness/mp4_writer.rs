//! Harness of the `mp4_writer` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): arbitrary access units, SPS and PPS included, into
//! the fragmented-MP4 writer, then `finish`.
//!
//! Input: a byte choosing the fragment duration ((b % 8 + 1) * 250 ms), then records of flags
//! (u8, bit 0: the access unit is an IDR), decode-time step in 90 kHz ticks (u16 BE), length
//! (u24 BE: parameter sets over 64 KiB must fit) and the Annex-B bytes.
//!
//! Properties:
//! - an error before the recording started leaves the output empty (no broken file);
//! - when every push and `finish` succeed, the output parses back: top-level boxes whose sizes
//!   add up to the file length (`ftyp`, `moov`, then `moof`/`mdat` pairs, one per fragment),
//!   nested boxes that fill their parents exactly, an `avcC` with one SPS and one PPS that fit
//!   it, and per fragment a `trun` whose data offset lands on the `mdat` payload, whose sample
//!   sizes add up to it, and whose samples are 4-byte length-prefixed NAL units filling each
//!   sample exactly; the summary's samples, fragments and bytes match what was pushed and
//!   parsed; `mehd` holds the summary's duration.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{Cursor, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::time::Duration;

use spot_ptz_stream::record::mp4_writer::{Mp4Error, Mp4Summary, Mp4Writer, PushOutcome};

const RECORD_HEADER_BYTES: usize = 6;

/// An output the harness can still read after the writer failed.
#[derive(Clone, Default)]
struct SharedOutput(Rc<RefCell<Cursor<Vec<u8>>>>);

impl Write for SharedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for SharedOutput {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.borrow_mut().seek(pos)
    }
}

/// One access unit of the input.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    pub annex_b: &'a [u8],
    pub decode_time_step_ticks: u16,
    pub is_idr: bool,
}

/// Splits fuzz input into the fragment duration and the access units.
pub fn parse(data: &[u8]) -> (Duration, Vec<Sample<'_>>) {
    let Some((&duration, mut rest)) = data.split_first() else {
        return (Duration::from_secs(1), Vec::new());
    };
    let fragment = Duration::from_millis((u64::from(duration) % 8 + 1) * 250);
    let mut samples = Vec::new();
    while rest.len() >= RECORD_HEADER_BYTES {
        let step = u16::from_be_bytes([rest[1], rest[2]]);
        let len = u32::from_be_bytes([0, rest[3], rest[4], rest[5]]) as usize;
        let len = len.min(rest.len() - RECORD_HEADER_BYTES);
        let (annex_b, tail) = rest[RECORD_HEADER_BYTES..].split_at(len);
        samples.push(Sample {
            annex_b,
            decode_time_step_ticks: step,
            is_idr: rest[0] & 1 != 0,
        });
        rest = tail;
    }
    (fragment, samples)
}

/// Writes one sample in the input format (at most 16 MiB of it).
pub fn encode_sample(out: &mut Vec<u8>, sample: &Sample<'_>) {
    let len = sample.annex_b.len().min(0xFF_FFFF);
    out.push(u8::from(sample.is_idr));
    out.extend_from_slice(&sample.decode_time_step_ticks.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&sample.annex_b[..len]);
}

/// What one run did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The first error, if any (the run stops there).
    pub error: Option<Mp4Error>,
    pub queued: u64,
    pub summary: Option<Mp4Summary>,
    pub file_bytes: usize,
}

/// The fuzz target's body.
pub fn run(data: &[u8]) -> Outcome {
    let (fragment, samples) = parse(data);
    run_samples(fragment, &samples)
}

/// Pushes `samples`, finishes, and checks the properties.
pub fn run_samples(fragment: Duration, samples: &[Sample<'_>]) -> Outcome {
    let output = SharedOutput::default();
    let mut writer = Mp4Writer::new(output.clone(), fragment);
    let mut outcome = Outcome::default();
    let mut decode_time_ticks = 0u64;
    for sample in samples {
        decode_time_ticks += u64::from(sample.decode_time_step_ticks);
        let was_started = writer.started();
        match writer.push(sample.annex_b, decode_time_ticks, sample.is_idr) {
            Ok(PushOutcome::Queued) => outcome.queued += 1,
            Ok(PushOutcome::WaitingForKeyframe) => {}
            Err(error) => {
                let written = output.0.borrow().get_ref().len();
                if !was_started {
                    assert_eq!(written, 0, "{error} after writing {written} bytes");
                    assert!(!writer.started());
                }
                outcome.error = Some(error);
                outcome.file_bytes = written;
                return outcome;
            }
        }
    }
    let (summary, _) = match writer.finish() {
        Ok(done) => done,
        Err(error) => {
            outcome.error = Some(error);
            return outcome;
        }
    };
    let file = output.0.borrow().get_ref().clone();
    outcome.file_bytes = file.len();
    outcome.summary = Some(summary);
    check_file(&file, &summary, outcome.queued);
    outcome
}

/// A box: its type, and its payload's range in the file.
#[derive(Clone, Copy, Debug)]
struct Mp4Box {
    kind: [u8; 4],
    start: usize,
    end: usize,
}

impl Mp4Box {
    fn payload<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.start..self.end]
    }
    fn total_bytes(&self) -> usize {
        self.end - self.start + 8
    }
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    let bytes = data.get(at..at + 4).expect("field inside its box");
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn read_u64(data: &[u8], at: usize) -> u64 {
    (u64::from(read_u32(data, at)) << 32) | u64::from(read_u32(data, at + 4))
}

/// The boxes that exactly fill `file[start..end]`, with 32-bit sizes.
fn boxes_in(file: &[u8], start: usize, end: usize) -> Vec<Mp4Box> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        assert!(end - at >= 8, "a truncated box header at {at}");
        let size = read_u32(file, at) as usize;
        assert!(
            size >= 8 && at + size <= end,
            "box at {at}: size {size} past {end}"
        );
        let mut kind = [0; 4];
        kind.copy_from_slice(&file[at + 4..at + 8]);
        out.push(Mp4Box {
            kind,
            start: at + 8,
            end: at + size,
        });
        at += size;
    }
    out
}

/// Where a container's children start after its own fields (`None`: not a container).
fn children_offset(kind: &[u8; 4]) -> Option<usize> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"dinf" | b"stbl" | b"mvex" | b"moof" | b"traf" => {
            Some(0)
        }
        // Full box header and entry count.
        b"stsd" | b"dref" => Some(8),
        // The visual sample entry's fields.
        b"avc1" => Some(78),
        _ => None,
    }
}

/// Walks every container below `parent`; collects every box.
fn walk(file: &[u8], parent: &Mp4Box, all: &mut Vec<Mp4Box>) {
    let Some(offset) = children_offset(&parent.kind) else {
        return;
    };
    assert!(parent.start + offset <= parent.end);
    for child in boxes_in(file, parent.start + offset, parent.end) {
        all.push(child);
        walk(file, &child, all);
    }
}

fn find<'a>(boxes: &'a [Mp4Box], kind: &[u8; 4]) -> Vec<&'a Mp4Box> {
    boxes.iter().filter(|b| &b.kind == kind).collect()
}

fn check_avcc(payload: &[u8]) {
    assert!(payload.len() >= 7 && payload[0] == 1, "avcC header");
    assert_eq!(payload[4], 0xFF, "4-byte NAL lengths");
    assert_eq!(payload[5], 0xE1, "one SPS");
    let sps_len = usize::from(u16::from_be_bytes([payload[6], payload[7]]));
    let at = 8 + sps_len;
    assert!(at < payload.len(), "SPS inside avcC");
    assert_eq!(payload[at], 1, "one PPS");
    let pps_len = usize::from(u16::from_be_bytes([payload[at + 1], payload[at + 2]]));
    assert_eq!(
        at + 3 + pps_len,
        payload.len(),
        "PPS fills the rest of avcC"
    );
}

fn check_file(file: &[u8], summary: &Mp4Summary, queued: u64) {
    assert_eq!(summary.bytes_written, file.len() as u64);
    assert_eq!(summary.samples, queued);
    if queued == 0 {
        assert!(file.is_empty(), "a file without samples");
        return;
    }
    let top = boxes_in(file, 0, file.len());
    let total: usize = top.iter().map(Mp4Box::total_bytes).sum();
    assert_eq!(total, file.len(), "top-level box sizes add up to the file");
    assert!(
        top.len() >= 4 && top.len().is_multiple_of(2),
        "{} top-level boxes",
        top.len()
    );
    assert_eq!(&top[0].kind, b"ftyp");
    assert_eq!(&top[1].kind, b"moov");

    let mut init = Vec::new();
    walk(file, &top[1], &mut init);
    let avcc = find(&init, b"avcC");
    assert_eq!(avcc.len(), 1);
    check_avcc(avcc[0].payload(file));
    let mehd = find(&init, b"mehd");
    assert_eq!(mehd.len(), 1);
    let movie_ms = summary.duration_ticks * 1000 / 90_000;
    assert_eq!(read_u64(mehd[0].payload(file), 4), movie_ms);

    let mut samples = 0u64;
    for (fragment, pair) in top[2..].chunks(2).enumerate() {
        let (moof, mdat) = (&pair[0], &pair[1]);
        assert_eq!(&moof.kind, b"moof");
        assert_eq!(&mdat.kind, b"mdat");
        let mut inner = Vec::new();
        walk(file, moof, &mut inner);
        let mfhd = find(&inner, b"mfhd");
        assert_eq!(mfhd.len(), 1);
        assert_eq!(read_u32(mfhd[0].payload(file), 4) as usize, fragment + 1);
        let trun = find(&inner, b"trun");
        assert_eq!(trun.len(), 1);
        let trun = trun[0].payload(file);
        assert_eq!(read_u32(trun, 0), 0x0701, "trun version and flags");
        let count = read_u32(trun, 4) as usize;
        assert_eq!(trun.len(), 12 + 12 * count, "trun entries");
        assert!(count > 0, "an empty fragment");
        let data_offset = read_u32(trun, 8) as usize;
        assert_eq!(
            data_offset,
            moof.total_bytes() + 8,
            "data offset on the mdat payload"
        );
        let mut at = mdat.start;
        for entry in 0..count {
            let size = read_u32(trun, 12 + 12 * entry + 4) as usize;
            assert!(at + size <= mdat.end, "sample past its mdat");
            let mut nal_at = at;
            while nal_at < at + size {
                let len = read_u32(file, nal_at) as usize;
                assert!(
                    len > 0 && nal_at + 4 + len <= at + size,
                    "NAL unit past its sample"
                );
                nal_at += 4 + len;
            }
            at += size;
        }
        assert_eq!(at, mdat.end, "sample sizes add up to the mdat payload");
        samples += count as u64;
    }
    assert_eq!(samples, summary.samples);
    assert_eq!(summary.fragments as usize, (top.len() - 2) / 2);
}
