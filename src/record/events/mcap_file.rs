//! One event file: an MCAP writer with the `ros2` profile, lz4 chunks, one `ros2msg` schema and
//! one `cdr` channel per recorded topic, and the event's Metadata record; plus the files' names.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mcap::records::{MessageHeader, Metadata};
use mcap::{Compression, WriteOptions, Writer};

use super::{Reason, Sample, VideoKey};

/// A chunk is closed at this uncompressed size at the latest (the writer also closes one each
/// second, so this matters only above ~32 Mbit/s).
const CHUNK_SIZE_BYTES: u64 = 4 * 1024 * 1024;
/// Name of the MCAP Metadata record describing the event.
pub(crate) const METADATA_NAME: &str = "spot_ptz_stream";

/// A channel ready to be added to each file: its schema resolved once.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedChannel {
    pub topic: String,
    pub type_name: String,
    pub schema: String,
    pub metadata: BTreeMap<String, String>,
    pub latched: bool,
}

/// What a file records, for its Metadata record.
#[derive(Debug, Clone)]
pub(crate) struct EventInfo {
    pub reason: Reason,
    pub start_ns: u64,
    pub pre_roll_ns: u64,
    /// 1 for the event's first file, then 2, 3… after each split.
    pub part: u32,
}

/// Why a sample was not written to the file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// Video of a channel whose first keyframe in this file has not come yet.
    BeforeKeyframe,
    /// The sample names a channel that does not exist.
    UnknownChannel,
}

/// An open event file.
pub(crate) struct EventFile {
    path: PathBuf,
    writer: Writer<BufWriter<File>>,
    /// MCAP channel id of each channel, by index.
    channel_ids: Vec<u16>,
    /// Whether each channel's video has begun (at a keyframe) in this file.
    video_started: Vec<bool>,
    /// Messages written since the last successful flush (lost if the file breaks now).
    pub unflushed: u64,
    /// Log time the file counts its age from (the event's start or the split keyframe's time).
    pub age_from_ns: u64,
}

impl EventFile {
    /// Creates `path` (never replacing a file) with every channel and the Metadata record.
    pub fn create(
        path: &Path,
        channels: &[ResolvedChannel],
        event: &EventInfo,
        age_from_ns: u64,
    ) -> Result<Self, mcap::McapError> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let options = WriteOptions::new()
            .profile("ros2")
            .library(concat!(
                "spot_ptz_stream/",
                env!("CARGO_PKG_VERSION"),
                "; ",
                "mcap-rust/0.26.0"
            ))
            .compression(Some(Compression::Lz4))
            .chunk_size(Some(CHUNK_SIZE_BYTES));
        let mut writer = options.create(BufWriter::new(file))?;
        let mut channel_ids = Vec::with_capacity(channels.len());
        for channel in channels {
            let schema_id =
                writer.add_schema(&channel.type_name, "ros2msg", channel.schema.as_bytes())?;
            channel_ids.push(writer.add_channel(
                schema_id,
                &channel.topic,
                "cdr",
                &channel.metadata,
            )?);
        }
        writer.write_metadata(&Metadata {
            name: METADATA_NAME.to_string(),
            metadata: event_metadata(event, path),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            video_started: vec![false; channel_ids.len()],
            channel_ids,
            unflushed: 0,
            age_from_ns,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the sample, unless it is video of a channel that has not reached a keyframe in
    /// this file yet.
    pub fn write(&mut self, sample: &Sample) -> Result<Result<(), Skipped>, mcap::McapError> {
        let Some(&channel_id) = self.channel_ids.get(sample.channel) else {
            return Ok(Err(Skipped::UnknownChannel));
        };
        if let Some(key) = sample.video {
            let started = &mut self.video_started[sample.channel];
            if !*started {
                if key == VideoKey::Other {
                    return Ok(Err(Skipped::BeforeKeyframe));
                }
                *started = true;
            }
        }
        self.writer.write_to_known_channel(
            &MessageHeader {
                channel_id,
                sequence: 0,
                log_time: sample.log_time_ns,
                publish_time: sample.publish_time_ns,
            },
            &sample.data,
        )?;
        self.unflushed += 1;
        Ok(Ok(()))
    }

    /// Closes the open chunk and writes it out: a crash from now on keeps it.
    pub fn flush(&mut self) -> Result<u64, mcap::McapError> {
        self.writer.flush()?;
        Ok(std::mem::take(&mut self.unflushed))
    }

    /// Writes the summary and footer and syncs the file. Answers the messages written since
    /// the last flush.
    pub fn finish(mut self) -> Result<u64, mcap::McapError> {
        self.writer.finish()?;
        let unflushed = self.unflushed;
        let file = self
            .writer
            .into_inner()
            .into_inner()
            .map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(unflushed)
    }

    /// Gives up on a broken file: tries to finish it (so the chunks written so far stay
    /// readable with an index), ignoring every error, and never panics.
    pub fn abandon(mut self) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _ = self.writer.finish();
            drop(self);
        }));
        if outcome.is_err() {
            tracing::debug!("the MCAP writer panicked while giving up on a broken file");
        }
    }
}

fn event_metadata(event: &EventInfo, path: &Path) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    map.insert("reason".to_string(), event.reason.as_str().to_string());
    map.insert("start_time".to_string(), utc_iso(event.start_ns));
    map.insert("start_time_ns".to_string(), event.start_ns.to_string());
    map.insert(
        "pre_roll_secs".to_string(),
        format!("{:.3}", event.pre_roll_ns as f64 / 1e9),
    );
    map.insert("part".to_string(), event.part.to_string());
    if let Some(name) = path.file_name() {
        map.insert("file".to_string(), name.to_string_lossy().into_owned());
    }
    map
}

/// Nanoseconds since the UNIX epoch (0 before it).
pub fn unix_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The UTC date and time of `ns` since the epoch as its parts.
fn utc_parts(ns: u64) -> (i32, u8, u8, u8, u8, u8, u16) {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond(),
    )
}

/// `2025-01-31T12:34:56.789Z`.
pub(crate) fn utc_iso(ns: u64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Names files `<prefix>_20250131_123456.789.mcap` (UTC start time, so names sort by start) in
/// a directory; a name that exists or was handed out before gets `_1`, `_2`… before `.mcap`
/// (which still sorts after the plain name).
#[derive(Debug, Default)]
pub(crate) struct FileNamer {
    /// The stem and suffix number handed out last.
    last: Option<(String, u32)>,
}

impl FileNamer {
    pub fn next(&mut self, dir: &Path, prefix: &str, ns: u64) -> PathBuf {
        let (y, mo, d, h, mi, s, ms) = utc_parts(ns);
        let stem = format!("{prefix}_{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}.{ms:03}");
        let mut n = match &self.last {
            Some((last_stem, last_n)) if *last_stem == stem => last_n + 1,
            _ => 0,
        };
        loop {
            let name = if n == 0 {
                format!("{stem}.mcap")
            } else {
                format!("{stem}_{n}.mcap")
            };
            let path = dir.join(name);
            if !path.exists() {
                self.last = Some((stem, n));
                return path;
            }
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_utc_start_times_and_never_repeat() {
        let tmp = tempfile::tempdir().unwrap();
        // 2024-02-29 23:59:58.123456789 UTC
        let ns = 1_709_251_198_123_456_789;
        assert_eq!(utc_iso(ns), "2024-02-29T23:59:58.123Z");
        let mut namer = FileNamer::default();
        let first = namer.next(tmp.path(), "spot_ptz", ns);
        assert_eq!(first, tmp.path().join("spot_ptz_20240229_235958.123.mcap"));
        // Handed out but not created yet: still not handed out again.
        let second = namer.next(tmp.path(), "spot_ptz", ns);
        assert_eq!(
            second,
            tmp.path().join("spot_ptz_20240229_235958.123_1.mcap")
        );
        std::fs::write(tmp.path().join("spot_ptz_20240229_235958.123_2.mcap"), b"").unwrap();
        let third = namer.next(tmp.path(), "spot_ptz", ns);
        assert_eq!(
            third,
            tmp.path().join("spot_ptz_20240229_235958.123_3.mcap")
        );
        let later = namer.next(tmp.path(), "spot_ptz", ns + 1_000_000);
        assert_eq!(later, tmp.path().join("spot_ptz_20240229_235958.124.mcap"));
        let mut sorted = [later.clone(), third.clone(), second.clone(), first.clone()];
        sorted.sort();
        assert_eq!(sorted, [first, second, third, later]);
    }
}
