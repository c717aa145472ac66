//! End-to-end tests of the event recorder: samples in, files read back with the `mcap` crate.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcap::MessageStream;
use mcap::read::Options;
use mcap::records::Record;

use super::*;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

/// A log time a minute ago (so `stop()`'s wall-clock time is after every sample).
fn base_ns() -> u64 {
    (unix_ns(SystemTime::now()) - 60 * SEC) / SEC * SEC
}

fn at(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn fast() -> Tuning {
    Tuning {
        flush_interval: Duration::from_millis(20),
        retry_interval: Duration::from_millis(300),
        retention_interval: Duration::from_millis(20),
        poll: Duration::from_millis(5),
        idle_poll: Duration::from_millis(5),
        ..Tuning::default()
    }
}

/// Fake `.msg` files: a video type using `builtin_interfaces/Time`, and a text type.
fn fake_schemas(root: &Path) -> SchemaSource {
    for (package, name, text) in [
        (
            "test_msgs",
            "Video",
            "builtin_interfaces/Time timestamp\nuint8[] data\n",
        ),
        ("test_msgs", "Note", "string text\n"),
        ("builtin_interfaces", "Time", "int32 sec\nuint32 nanosec\n"),
    ] {
        let dir = root.join("share").join(package).join("msg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.msg")), text).unwrap();
    }
    SchemaSource::new(vec![root.to_path_buf()])
}

const QOS: &str = "- history: keep_last\n  depth: 1\n";

fn channels() -> Vec<ChannelSpec> {
    vec![
        ChannelSpec {
            topic: "/cam/video".to_string(),
            type_name: "test_msgs/msg/Video".to_string(),
            offered_qos_yaml: Some(QOS.to_string()),
            latched: false,
        },
        ChannelSpec {
            topic: "/cam/note".to_string(),
            type_name: "test_msgs/msg/Note".to_string(),
            offered_qos_yaml: None,
            latched: false,
        },
        ChannelSpec {
            topic: "/cam/x_static".to_string(),
            type_name: "test_msgs/msg/Note".to_string(),
            offered_qos_yaml: None,
            latched: true,
        },
    ]
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    recorder: EventRecorder,
}

fn setup(pre_roll_ms: u64, max_file_ms: u64, max_total_bytes: u64, tuning: Tuning) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let schemas = fake_schemas(&tmp.path().join("prefix"));
    let dir = tmp.path().join("events");
    let config = EventRecorderConfig {
        dir: dir.clone(),
        pre_roll: Duration::from_millis(pre_roll_ms),
        max_file: Duration::from_millis(max_file_ms),
        max_total_bytes,
        file_prefix: "ev".to_string(),
    };
    let recorder = EventRecorder::spawn_tuned(config, channels(), &schemas, tuning).unwrap();
    Setup {
        _tmp: tmp,
        dir,
        recorder,
    }
}

fn video(t_ns: u64, key: VideoKey) -> Sample {
    Sample {
        channel: 0,
        log_time_ns: t_ns,
        publish_time_ns: t_ns - MS,
        data: t_ns.to_le_bytes().to_vec(),
        video: Some(key),
    }
}

fn note(t_ns: u64) -> Sample {
    Sample {
        channel: 1,
        log_time_ns: t_ns,
        publish_time_ns: t_ns,
        data: t_ns.to_le_bytes().to_vec(),
        video: None,
    }
}

/// Video every `frame_ms` from `from_ms` to before `to_ms` (after `base`), a keyframe of
/// `kind` every `key_every_ms` (counted from 0), and a note every 100 ms at +20 ms; in log-time
/// order.
fn push_stream(
    r: &EventRecorder,
    base: u64,
    (from_ms, to_ms): (u64, u64),
    frame_ms: u64,
    key_every_ms: u64,
    kind: VideoKey,
) {
    for t in (from_ms..to_ms).step_by(10) {
        if t.is_multiple_of(frame_ms) {
            let key = if t.is_multiple_of(key_every_ms) {
                kind
            } else {
                VideoKey::Other
            };
            r.push(video(base + t * MS, key));
        }
        if t % 100 == 20 {
            r.push(note(base + t * MS));
        }
    }
}

/// A message read back: its topic and log time after `base` in ms.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Read {
    topic: String,
    t_ms: u64,
}

fn read_all(bytes: &[u8], base: u64) -> (Vec<Read>, Option<String>) {
    let mut out = Vec::new();
    let stream = match MessageStream::new_with_options(bytes, Options::IgnoreEndMagic.into()) {
        Ok(s) => s,
        Err(e) => return (out, Some(e.to_string())),
    };
    for message in stream {
        match message {
            Ok(m) => out.push(Read {
                topic: m.channel.topic.clone(),
                t_ms: (m.log_time - base) / MS,
            }),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

fn read_file(path: &Path, base: u64) -> Vec<Read> {
    let bytes = std::fs::read(path).unwrap();
    let summary = mcap::Summary::read(&bytes)
        .unwrap()
        .expect("a finished file");
    let (messages, error) = read_all(&bytes, base);
    assert_eq!(error, None, "{}", path.display());
    assert_eq!(
        summary.stats.unwrap().message_count,
        messages.len() as u64,
        "{}",
        path.display()
    );
    messages
}

fn times(messages: &[Read], topic: &str) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| m.t_ms)
        .collect()
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    files.sort();
    files
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn range(from_ms: u64, to_ms: u64, step_ms: u64) -> Vec<u64> {
    (from_ms..to_ms).step_by(step_ms as usize).collect()
}

#[test]
fn pre_roll_starts_at_the_newest_idr_before_the_cut_with_schemas_qos_and_event_metadata() {
    let s = setup(2_000, 60_000, u64::MAX, fast());
    let base = base_ns();
    // 20 fps, an IDR every second, notes at +20 ms every 100 ms.
    push_stream(&s.recorder, base, (0, 10_000), 50, 1_000, VideoKey::Idr);
    let path = s.recorder.start_at(Reason::Manual, at(base + 10_000 * MS));
    assert_eq!(s.recorder.start(Reason::Manual), path, "idempotent");
    push_stream(
        &s.recorder,
        base,
        (10_000, 11_000),
        50,
        1_000,
        VideoKey::Idr,
    );
    assert_eq!(s.recorder.stats().current_file.as_ref(), Some(&path));
    assert_eq!(s.recorder.stop(Reason::Manual).as_ref(), Some(&path));
    s.recorder.finish(Duration::from_secs(2)).unwrap();

    assert_eq!(event_files(&s.dir), std::slice::from_ref(&path));
    let messages = read_file(&path, base);
    // Cut at 8000 ms: the IDR at 8000 (at the cut counts) begins the file.
    assert_eq!(messages[0].t_ms, 8_000);
    assert_eq!(times(&messages, "/cam/video"), range(8_000, 11_000, 50));
    assert_eq!(times(&messages, "/cam/note"), range(8_020, 11_000, 100));

    let bytes = std::fs::read(&path).unwrap();
    let mut metadata = None;
    for record in mcap::read::LinearReader::new(&bytes).unwrap() {
        match record.unwrap() {
            Record::Header(h) => {
                assert_eq!(h.profile, "ros2");
                assert!(h.library.starts_with("spot_ptz_stream/"), "{}", h.library);
            }
            Record::Metadata(m) => metadata = Some(m),
            _ => {}
        }
    }
    let metadata = metadata.expect("an event Metadata record");
    assert_eq!(metadata.name, "spot_ptz_stream");
    assert_eq!(metadata.metadata["reason"], "manual");
    assert_eq!(
        metadata.metadata["start_time_ns"],
        (base + 10_000 * MS).to_string()
    );
    assert_eq!(metadata.metadata["part"], "1");

    let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
    let mut channels: Vec<_> = summary.channels.values().collect();
    channels.sort_by_key(|c| c.topic.clone());
    let video = channels[1];
    assert_eq!(video.topic, "/cam/video");
    assert_eq!(video.message_encoding, "cdr");
    assert_eq!(video.metadata["offered_qos_profiles"], QOS);
    assert!(!channels[0].metadata.contains_key("offered_qos_profiles"));
    let schema = video.schema.as_ref().unwrap();
    assert_eq!(schema.name, "test_msgs/msg/Video");
    assert_eq!(schema.encoding, "ros2msg");
    assert_eq!(
        std::str::from_utf8(&schema.data).unwrap(),
        format!(
            "builtin_interfaces/Time timestamp\nuint8[] data\n\n{}\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n",
            "=".repeat(80)
        )
    );
}

#[test]
fn pre_roll_from_recovery_points_starts_at_the_second_newest_before_the_cut() {
    let s = setup(1_000, 60_000, u64::MAX, fast());
    let base = base_ns();
    push_stream(
        &s.recorder,
        base,
        (0, 5_000),
        50,
        500,
        VideoKey::RecoveryPoint,
    );
    let path = s
        .recorder
        .start_at(Reason::Detection, at(base + 5_000 * MS));
    s.recorder.finish(Duration::from_secs(2)).unwrap();
    let messages = read_file(&path, base);
    // Cut at 4000: recovery points at 3500 and 4000; the picture is whole by 4000 from 3500.
    assert_eq!(times(&messages, "/cam/video"), range(3_500, 5_000, 50));
    assert_eq!(times(&messages, "/cam/note"), range(3_520, 5_000, 100));
}

#[test]
fn without_a_keyframe_video_waits_for_the_next_one_and_notes_start_at_the_cut() {
    let s = setup(1_000, 60_000, u64::MAX, fast());
    let base = base_ns();
    push_stream(&s.recorder, base, (0, 3_000), 50, 100_000, VideoKey::Other);
    let path = s.recorder.start_at(Reason::Manual, at(base + 3_000 * MS));
    // The first keyframe after the start comes at 3500.
    push_stream(&s.recorder, base, (3_000, 4_000), 50, 3_500, VideoKey::Idr);
    s.recorder.finish(Duration::from_secs(2)).unwrap();
    let messages = read_file(&path, base);
    assert_eq!(times(&messages, "/cam/video"), range(3_500, 4_000, 50));
    assert_eq!(times(&messages, "/cam/note"), range(2_020, 4_000, 100));
}

#[test]
fn long_events_split_at_the_next_idr_after_max_file() {
    let s = setup(0, 1_000, u64::MAX, fast());
    let base = base_ns();
    let first = s.recorder.start_at(Reason::Manual, at(base));
    // An IDR every 400 ms: the first file is due at 1000, split at 1200; the next due at 2200,
    // split at 2400.
    push_stream(&s.recorder, base, (0, 3_000), 50, 400, VideoKey::Idr);
    s.recorder.finish(Duration::from_secs(2)).unwrap();
    let files = event_files(&s.dir);
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[0], first);
    let parts: Vec<Vec<Read>> = files.iter().map(|f| read_file(f, base)).collect();
    assert_eq!(times(&parts[0], "/cam/video"), range(0, 1_200, 50));
    assert_eq!(times(&parts[1], "/cam/video"), range(1_200, 2_400, 50));
    assert_eq!(times(&parts[2], "/cam/video"), range(2_400, 3_000, 50));
    for part in &parts[1..] {
        assert_eq!(
            part[0].topic, "/cam/video",
            "each part starts with its keyframe"
        );
    }
    assert_eq!(times(&parts[0], "/cam/note"), range(20, 1_200, 100));
    assert_eq!(times(&parts[1], "/cam/note"), range(1_220, 2_400, 100));
}

#[test]
fn a_latched_message_begins_every_file_at_its_first_message_time() {
    let s = setup(1_000, 1_000, u64::MAX, fast());
    let base = base_ns();
    // Published once, long before the event (as /tf_static is at start-up).
    s.recorder.push(Sample {
        channel: 2,
        ..note(base + 100 * MS)
    });
    push_stream(&s.recorder, base, (0, 5_000), 50, 400, VideoKey::Idr);
    s.recorder.start_at(Reason::Manual, at(base + 5_000 * MS));
    push_stream(&s.recorder, base, (5_000, 7_000), 50, 400, VideoKey::Idr);
    s.recorder.finish(Duration::from_secs(2)).unwrap();
    let files = event_files(&s.dir);
    assert_eq!(files.len(), 2, "split once: {files:?}");
    for file in &files {
        let messages = read_file(file, base);
        let first_ms = messages.iter().map(|m| m.t_ms).min().unwrap();
        assert_eq!(
            times(&messages, "/cam/x_static"),
            vec![first_ms],
            "{}",
            file.display()
        );
    }
    // Cut at 4000: the IDR at 4000 begins the first file.
    assert_eq!(times(&read_file(&files[0], base), "/cam/x_static"), [4_000]);
}

#[test]
fn recovery_point_streams_split_at_a_recovery_point() {
    let s = setup(0, 1_000, u64::MAX, fast());
    let base = base_ns();
    s.recorder.start_at(Reason::Manual, at(base));
    push_stream(
        &s.recorder,
        base,
        (0, 2_000),
        50,
        300,
        VideoKey::RecoveryPoint,
    );
    s.recorder.finish(Duration::from_secs(2)).unwrap();
    let files = event_files(&s.dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(
        times(&read_file(&files[1], base), "/cam/video"),
        range(1_200, 2_000, 50)
    );
}

/// Bytes lz4 cannot shrink.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn retention_deletes_the_oldest_files_first_and_never_the_open_one() {
    let s = setup(0, 60_000, 25_000, fast());
    std::fs::create_dir_all(&s.dir).unwrap();
    let old: Vec<PathBuf> = (1..=3)
        .map(|i| s.dir.join(format!("ev_20000101_00000{i}.000.mcap")))
        .collect();
    for path in &old {
        std::fs::write(path, vec![0u8; 10_000]).unwrap();
    }
    std::fs::write(s.dir.join("keep.txt"), vec![0u8; 100_000]).unwrap();
    let base = base_ns();
    let open = s.recorder.start_at(Reason::Manual, at(base));
    // 30000 bytes and the new file (its header, under 5000 bytes): the oldest goes.
    wait_for("the first deletion", || {
        s.recorder.stats().files_deleted == 1
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.recorder.stats().files_deleted, 1);
    assert!(!old[0].exists() && old[1].exists() && old[2].exists());
    // The open file grows past the limit alone: every other file goes, it stays.
    for i in 0..30 {
        s.recorder.push(Sample {
            data: noise(1_000, i),
            ..note(base + i * MS)
        });
    }
    wait_for("all old files deleted", || {
        s.recorder.stats().files_deleted == 3
    });
    assert_eq!(event_files(&s.dir), std::slice::from_ref(&open));
    assert!(s.dir.join("keep.txt").exists());
    s.recorder.finish(Duration::from_secs(2)).unwrap();
    assert_eq!(read_file(&open, base).len(), 30);
    assert!(open.metadata().unwrap().len() > 25_000);
}

#[test]
fn a_sample_pushed_while_the_queue_is_full_is_counted() {
    let (commands, _receiver) = mpsc::channel();
    let recorder = EventRecorder {
        config: EventRecorderConfig {
            dir: PathBuf::from("/nonexistent"),
            pre_roll: Duration::ZERO,
            max_file: Duration::from_secs(1),
            max_total_bytes: 0,
            file_prefix: "ev".to_string(),
        },
        queue: DropOldestQueue::new(2),
        state: Arc::new(Mutex::new(State::default())),
        commands,
        thread: None,
    };
    for t in 0..5 {
        recorder.push(note(t + 1));
    }
    assert_eq!(recorder.stats().dropped_queue, 3);
    let kept: Vec<u64> =
        std::iter::from_fn(|| recorder.queue.pop_blocking(Duration::ZERO).unwrap())
            .map(|s| s.log_time_ns)
            .collect();
    assert_eq!(kept, [4, 5], "the oldest were dropped");
}

#[test]
fn a_killed_recording_keeps_every_message_of_its_closed_chunks() {
    let s = setup(0, 60_000, u64::MAX, fast());
    let base = base_ns();
    let path = s.recorder.start_at(Reason::Manual, at(base));
    for i in 0..10 {
        s.recorder.push(Sample {
            data: noise(200, i),
            ..note(base + i * MS)
        });
    }
    wait_for("10 messages flushed", || {
        s.recorder.stats().messages_written == 10
    });
    let first = std::fs::read(&path).unwrap();
    for i in 10..20 {
        s.recorder.push(note(base + i * MS));
    }
    wait_for("20 messages flushed", || {
        s.recorder.stats().messages_written == 20
    });
    let second = std::fs::read(&path).unwrap();
    assert!(second.starts_with(&first));

    // `kill -9` now: no summary, no footer; every flushed chunk reads.
    assert!(
        !matches!(mcap::Summary::read(&second), Ok(Some(_))),
        "no summary before finish"
    );
    let (messages, error) = read_all(&second, base);
    assert_eq!(messages.len(), 20);
    assert_eq!(error, None);
    // Killed with the third chunk half written: the first two chunks' messages survive.
    let (messages, _) = read_all(&first, base);
    assert_eq!(messages.len(), 10);
    let cut = first.len() + (second.len() - first.len()) / 2;
    let (messages, error) = read_all(&second[..cut], base);
    assert_eq!(
        messages.iter().map(|m| m.t_ms).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(error.is_some());
    // The sans-io reader gives the same.
    let mut reader = mcap::sans_io::LinearReader::new();
    let mut sans_io_messages = 0;
    let mut buf = &second[..cut];
    while let Some(event) = reader.next_event() {
        match event {
            Ok(mcap::sans_io::LinearReadEvent::ReadRequest(n)) => {
                let take = n.min(buf.len());
                reader.insert(take).copy_from_slice(&buf[..take]);
                reader.notify_read(take);
                buf = &buf[take..];
            }
            Ok(mcap::sans_io::LinearReadEvent::Record { opcode, .. }) => {
                if opcode == mcap::records::op::MESSAGE {
                    sans_io_messages += 1;
                }
            }
            Err(_) => break,
        }
    }
    assert_eq!(sans_io_messages, 10);

    s.recorder.finish(Duration::from_secs(2)).unwrap();
    assert_eq!(read_file(&path, base).len(), 20);
}

#[test]
fn an_unwritable_directory_counts_losses_and_recording_resumes_when_it_is_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let schemas = fake_schemas(&tmp.path().join("prefix"));
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, b"a file where the directory should be").unwrap();
    let dir = blocker.join("events");
    let config = EventRecorderConfig {
        dir: dir.clone(),
        pre_roll: Duration::from_secs(1),
        max_file: Duration::from_secs(60),
        max_total_bytes: u64::MAX,
        file_prefix: "ev".to_string(),
    };
    let recorder = EventRecorder::spawn_tuned(config, channels(), &schemas, fast()).unwrap();
    let base = base_ns();
    let announced = recorder.start_at(Reason::Manual, at(base));
    wait_for("the error", || recorder.stats().last_error.is_some());
    let error = recorder.stats().last_error.unwrap();
    assert!(error.contains(&dir.display().to_string()), "{error}");
    // Within the retry interval: even a keyframe is lost.
    recorder.push(note(base + MS));
    recorder.push(video(base + 2 * MS, VideoKey::Idr));
    recorder.push(video(base + 3 * MS, VideoKey::Other));
    wait_for("3 samples lost", || recorder.stats().dropped_write == 3);

    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::thread::sleep(Duration::from_millis(350));
    recorder.push(video(base + 4 * MS, VideoKey::Other));
    recorder.push(video(base + 5 * MS, VideoKey::Idr));
    recorder.push(video(base + 6 * MS, VideoKey::Other));
    recorder.push(note(base + 7 * MS));
    wait_for("3 messages written", || {
        recorder.stats().messages_written == 3
    });
    let stats = recorder.stats();
    assert_eq!(stats.dropped_write, 4, "{stats:?}");
    assert!(stats.recording);
    let files = event_files(&dir);
    assert_eq!(files.len(), 1);
    assert_ne!(files[0], announced, "a new file, named when it opened");
    assert_eq!(stats.current_file.as_ref(), Some(&files[0]));
    recorder.finish(Duration::from_secs(2)).unwrap();
    let messages = read_file(&files[0], base);
    assert_eq!(
        messages.iter().map(|m| m.t_ms).collect::<Vec<_>>(),
        [5, 6, 7],
        "{messages:?}"
    );
    assert_eq!(times(&messages, "/cam/video").len(), 2);
}

#[test]
fn manual_and_detection_hold_the_recording_independently() {
    let s = setup(0, 60_000, u64::MAX, fast());
    let r = &s.recorder;
    assert_eq!(r.stop(Reason::Manual), None);
    let first = r.start(Reason::Detection);
    assert_eq!(r.start(Reason::Manual), first);
    assert_eq!(r.stop(Reason::Detection), None, "manual still holds");
    assert!(r.stats().recording);
    assert_eq!(r.stop(Reason::Manual), Some(first.clone()));
    let stats = r.stats();
    assert!(!stats.recording && stats.current_file.is_none());
    let second = r.start(Reason::Manual);
    assert_ne!(second, first);
    assert_eq!(r.stop(Reason::Manual), Some(second.clone()));
    wait_for("two files", || r.stats().files_written == 2);
    s.recorder.finish(Duration::from_secs(2)).unwrap();
    assert_eq!(event_files(&s.dir), [first.clone(), second]);
    let bytes = std::fs::read(&first).unwrap();
    let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
    let index = &summary.metadata_indexes[0];
    let metadata = mcap::read::metadata(&bytes, index).unwrap();
    assert_eq!(metadata.metadata["reason"], "detection");
}

#[test]
fn unknown_types_and_bad_configuration_fail_at_spawn() {
    let tmp = tempfile::tempdir().unwrap();
    let schemas = fake_schemas(tmp.path());
    let config = EventRecorderConfig {
        dir: tmp.path().join("events"),
        pre_roll: Duration::from_secs(1),
        max_file: Duration::from_secs(60),
        max_total_bytes: u64::MAX,
        file_prefix: "ev".to_string(),
    };
    let mut unknown = channels();
    unknown[1].type_name = "foxglove_msgs/msg/CompressedVideo".to_string();
    let message = EventRecorder::spawn(config.clone(), unknown, &schemas)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("cannot record /cam/note: unknown message type"),
        "{message}"
    );
    let bad_prefix = EventRecorderConfig {
        file_prefix: "a/b".to_string(),
        ..config
    };
    assert!(matches!(
        EventRecorder::spawn(bad_prefix, channels(), &schemas),
        Err(EventRecordError::Config(_))
    ));
}

#[test]
fn the_handle_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EventRecorder>();
}
