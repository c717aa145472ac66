//! PNG snapshots of decoded frames.
//!
//! [`SnapshotSchedule`] picks one frame every interval (by the frames' arrival time) and
//! [`write_png`] writes a packed bgr8 frame as an 8-bit RGB PNG. Files are written under a
//! temporary name and renamed, so a reader never sees a half-written snapshot.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::media::decoder::DecodedFrame;

/// A snapshot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("could not write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not encode {path} as PNG: {source}")]
    Png {
        path: PathBuf,
        #[source]
        source: png::EncodingError,
    },
    #[error("the frame holds {got_bytes} bytes, not {width}x{height} bgr8")]
    BadFrame {
        width: u32,
        height: u32,
        got_bytes: usize,
    },
}

/// Decides which frames become snapshots: the first one, then the first one at least
/// `interval` after the previous snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotSchedule {
    interval: Duration,
    last: Option<Instant>,
    taken: u64,
}

impl SnapshotSchedule {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            taken: 0,
        }
    }

    /// Whether the frame that arrived at `arrival` is due; if so, counts it as taken and
    /// returns its sequence number (1, 2, ...).
    pub fn take(&mut self, arrival: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| arrival.saturating_duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        // Keep the cadence: the next one is due one interval after this one was due.
        self.last = Some(match self.last {
            Some(last) if arrival.saturating_duration_since(last) < self.interval * 2 => {
                last + self.interval
            }
            _ => arrival,
        });
        self.taken += 1;
        Some(self.taken)
    }

    /// Snapshots taken so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }
}

/// The file name of snapshot number `sequence` in `dir`: `snapshot-000001.png`, ...
pub fn snapshot_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("snapshot-{sequence:06}.png"))
}

/// Packed bgr8 (`width * 3` bytes per row) → packed rgb8.
pub fn bgr_to_rgb(bgr: &[u8]) -> Vec<u8> {
    bgr.chunks_exact(3)
        .flat_map(|px| [px[2], px[1], px[0]])
        .collect()
}

/// Writes `frame` to `path` as an RGB PNG (fast compression), atomically.
pub fn write_png(path: &Path, frame: &DecodedFrame) -> Result<(), SnapshotError> {
    let expected = frame.width as usize * frame.height as usize * 3;
    if frame.bgr().len() != expected || expected == 0 {
        return Err(SnapshotError::BadFrame {
            width: frame.width,
            height: frame.height,
            got_bytes: frame.bgr().len(),
        });
    }
    let rgb = bgr_to_rgb(frame.bgr());
    let mut partial = path.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let io_error = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let png_error = |source| SnapshotError::Png {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let file = File::create(&partial).map_err(io_error)?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), frame.width, frame.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&rgb).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
        std::fs::rename(&partial, path).map_err(io_error)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32) -> DecodedFrame {
        // Some headroom before the pixels, as the ROS node asks for: it must be skipped.
        let headroom = 5;
        let buffer = std::iter::repeat_n(77, headroom)
            .chain((0..width * height).flat_map(|i| [(i % 256) as u8, 10, 200]))
            .collect();
        DecodedFrame {
            buffer,
            headroom,
            width,
            height,
            rtp_timestamp: 0,
            first_arrival: Instant::now(),
            decoded_at: Instant::now(),
        }
    }

    #[test]
    fn writes_a_png_that_decodes_to_the_same_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let path = snapshot_path(dir.path(), 1);
        let f = frame(33, 7);
        write_png(&path, &f).unwrap();
        assert!(!dir.path().join("snapshot-000001.png.part").exists());
        let decoder = png::Decoder::new(std::io::BufReader::new(File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (33, 7));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&buf[..info.buffer_size()], bgr_to_rgb(f.bgr()).as_slice());
        assert_eq!(&buf[..3], &[200, 10, 0]);
    }

    #[test]
    fn rejects_a_short_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = frame(4, 4);
        f.buffer.pop();
        assert!(matches!(
            write_png(&dir.path().join("x.png"), &f),
            Err(SnapshotError::BadFrame { .. })
        ));
    }

    #[test]
    fn schedule_takes_one_frame_per_interval() {
        let start = Instant::now();
        let mut s = SnapshotSchedule::new(Duration::from_secs(1));
        let taken: Vec<u64> = (0..90)
            .filter_map(|i| s.take(start + Duration::from_millis(i * 33)))
            .collect();
        // Frames at 0, ~1.0 s and ~2.0 s of 2.97 s.
        assert_eq!(taken, vec![1, 2, 3]);
        assert_eq!(s.taken(), 3);
    }
}
