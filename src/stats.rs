//! Stream statistics: counters updated lock-free on the hot path, and a window of latencies.
//!
//! [`StreamStats`] is shared by the network task, the decoder thread and the publisher.
//! [`StatsWindow`] turns two snapshots into rates (fps, bitrate) for a report.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Latency samples kept for percentiles.
const LATENCY_SAMPLES: usize = 600;

/// Counters of one stream, across reconnects.
#[derive(Default)]
pub struct StreamStats {
    pub rtp_packets: AtomicU64,
    pub rtp_bytes: AtomicU64,
    pub rtp_packets_lost: AtomicU64,
    /// Packets that arrived late (retransmitted after a NACK, or reordered) and were in time.
    pub packets_recovered: AtomicU64,
    /// Packets that arrived after their frame had been given up on.
    pub rtp_packets_too_late: AtomicU64,
    /// The camera's current target bitrate (a gauge; 0 until the stream is prepared).
    pub target_bitrate_bps: AtomicU64,
    /// Whole access units the depacketizer assembled. Each ends in exactly one of
    /// `frames_not_decoded`, `frames_dropped_before_decoding`, `frames_awaiting_keyframe`,
    /// `frames_withheld`, `decode_errors`, `frames_caught_up` and `frames_decoded`
    /// ([`StatsSnapshot::frames_accounted`]).
    pub frames_received: AtomicU64,
    /// Frames given up on because a packet was lost or malformed.
    pub frames_incomplete: AtomicU64,
    /// Frames given up on because they grew past `max_access_unit_bytes`.
    pub frames_oversized: AtomicU64,
    /// Times the camera's RTP sequence numbers jumped and the receiver followed them.
    pub rtp_sequence_resyncs: AtomicU64,
    /// Access units that became a picture (then published, dropped by `frames_dropped`, or
    /// made into JPEG only).
    pub frames_decoded: AtomicU64,
    /// Access units that gave no picture: the decoder (or, before it, the depacketizer) was
    /// waiting for a keyframe (an IDR or a completed intra-refresh wave), or they held only
    /// parameter sets.
    pub frames_awaiting_keyframe: AtomicU64,
    /// Access units decoded only to reach the current picture for a new consumer (the
    /// pictures before it were not output; see `media::catch_up`).
    pub frames_caught_up: AtomicU64,
    /// Access units dropped because the decoder was behind (its bounded input queue).
    pub frames_dropped_before_decoding: AtomicU64,
    /// Decoded pictures not output because they may show damage (libavcodec's loss guard).
    pub frames_withheld: AtomicU64,
    /// Access units not decoded because nobody consumed frames (no `image_raw` subscriber).
    pub frames_not_decoded: AtomicU64,
    pub frames_published: AtomicU64,
    /// Decoded pictures dropped because the publisher was behind (its bounded queue).
    pub frames_dropped: AtomicU64,
    pub decode_errors: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub reconnects: AtomicU64,
    /// Access units published on `image_raw/ffmpeg`.
    pub ffmpeg_published: AtomicU64,
    /// Access units published on `image_raw/foxglove`.
    pub foxglove_published: AtomicU64,
    /// Access units the passthrough publisher fell behind on (drop-oldest).
    pub passthrough_dropped: AtomicU64,
    /// JPEG pictures encoded for `image_raw/compressed`.
    pub jpeg_encoded: AtomicU64,
    /// JPEG pictures published on `image_raw/compressed`.
    pub jpeg_published: AtomicU64,
    /// Pictures dropped because the JPEG encoder or its publisher was behind.
    pub jpeg_dropped: AtomicU64,
    /// Pictures libjpeg-turbo could not encode.
    pub jpeg_errors: AtomicU64,
    latency_ms: Mutex<VecDeque<f64>>,
    frame_size: Mutex<Option<(u32, u32)>>,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl StreamStats {
    /// Records one arrival → publish latency.
    pub fn record_latency(&self, latency: Duration) {
        let mut samples = self.latency_ms.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == LATENCY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(latency.as_secs_f64() * 1e3);
    }

    /// Records the size of the latest decoded frame.
    pub fn record_frame_size(&self, width: u32, height: u32) {
        *self.frame_size.lock().unwrap_or_else(|p| p.into_inner()) = Some((width, height));
    }

    /// A consistent-enough copy of every counter (each read is atomic on its own).
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (latency_p50_ms, latency_p95_ms, latency_p99_ms) = {
            let samples = self.latency_ms.lock().unwrap_or_else(|p| p.into_inner());
            let mut sorted: Vec<f64> = samples.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            (
                percentile(&sorted, 0.50),
                percentile(&sorted, 0.95),
                percentile(&sorted, 0.99),
            )
        };
        let size = *self.frame_size.lock().unwrap_or_else(|p| p.into_inner());
        StatsSnapshot {
            taken_at: Instant::now(),
            rtp_packets: load(&self.rtp_packets),
            rtp_bytes: load(&self.rtp_bytes),
            rtp_packets_lost: load(&self.rtp_packets_lost),
            packets_recovered: load(&self.packets_recovered),
            rtp_packets_too_late: load(&self.rtp_packets_too_late),
            target_bitrate_bps: load(&self.target_bitrate_bps),
            frames_received: load(&self.frames_received),
            frames_incomplete: load(&self.frames_incomplete),
            frames_oversized: load(&self.frames_oversized),
            rtp_sequence_resyncs: load(&self.rtp_sequence_resyncs),
            frames_decoded: load(&self.frames_decoded),
            frames_awaiting_keyframe: load(&self.frames_awaiting_keyframe),
            frames_caught_up: load(&self.frames_caught_up),
            frames_dropped_before_decoding: load(&self.frames_dropped_before_decoding),
            frames_withheld: load(&self.frames_withheld),
            frames_not_decoded: load(&self.frames_not_decoded),
            frames_published: load(&self.frames_published),
            frames_dropped: load(&self.frames_dropped),
            decode_errors: load(&self.decode_errors),
            keyframe_requests: load(&self.keyframe_requests),
            reconnects: load(&self.reconnects),
            ffmpeg_published: load(&self.ffmpeg_published),
            foxglove_published: load(&self.foxglove_published),
            passthrough_dropped: load(&self.passthrough_dropped),
            jpeg_encoded: load(&self.jpeg_encoded),
            jpeg_published: load(&self.jpeg_published),
            jpeg_dropped: load(&self.jpeg_dropped),
            jpeg_errors: load(&self.jpeg_errors),
            latency_p50_ms,
            latency_p95_ms,
            latency_p99_ms,
            width: size.map_or(0, |s| s.0),
            height: size.map_or(0, |s| s.1),
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// Every counter at one instant.
#[derive(Clone, Debug)]
pub struct StatsSnapshot {
    pub taken_at: Instant,
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
    pub rtp_packets_lost: u64,
    pub packets_recovered: u64,
    pub rtp_packets_too_late: u64,
    pub target_bitrate_bps: u64,
    pub frames_received: u64,
    pub frames_incomplete: u64,
    pub frames_oversized: u64,
    pub rtp_sequence_resyncs: u64,
    pub frames_decoded: u64,
    pub frames_awaiting_keyframe: u64,
    pub frames_caught_up: u64,
    pub frames_dropped_before_decoding: u64,
    pub frames_withheld: u64,
    pub frames_not_decoded: u64,
    pub frames_published: u64,
    pub frames_dropped: u64,
    pub decode_errors: u64,
    pub keyframe_requests: u64,
    pub reconnects: u64,
    pub ffmpeg_published: u64,
    pub foxglove_published: u64,
    pub passthrough_dropped: u64,
    pub jpeg_encoded: u64,
    pub jpeg_published: u64,
    pub jpeg_dropped: u64,
    pub jpeg_errors: u64,
    /// Arrival → publish latency percentiles over the last samples, if any.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub width: u32,
    pub height: u32,
}

impl StatsSnapshot {
    /// The received access units whose fate is known: every one ends in exactly one of these
    /// counters. While streaming, `frames_received` is ahead by the few in flight (queued for
    /// or in the decoder, or kept to catch a new consumer up); once a session has ended the
    /// two are equal.
    pub fn frames_accounted(&self) -> u64 {
        self.frames_not_decoded
            + self.frames_dropped_before_decoding
            + self.frames_awaiting_keyframe
            + self.frames_withheld
            + self.decode_errors
            + self.frames_caught_up
            + self.frames_decoded
    }
}

/// Rates between two snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Published frames per second.
    pub fps: f64,
    /// Received (whole) access units per second, published or not.
    pub received_fps: f64,
    /// Received RTP payload bits per second.
    pub bitrate_bps: f64,
}

impl Rates {
    /// Rates from `earlier` to `later`.
    pub fn between(earlier: &StatsSnapshot, later: &StatsSnapshot) -> Self {
        let secs = later
            .taken_at
            .saturating_duration_since(earlier.taken_at)
            .as_secs_f64();
        if secs <= 0.0 {
            return Self::default();
        }
        Self {
            fps: later
                .frames_published
                .saturating_sub(earlier.frames_published) as f64
                / secs,
            received_fps: later
                .frames_received
                .saturating_sub(earlier.frames_received) as f64
                / secs,
            bitrate_bps: later.rtp_bytes.saturating_sub(earlier.rtp_bytes) as f64 * 8.0 / secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates() {
        let stats = StreamStats::default();
        assert_eq!(stats.snapshot().latency_p50_ms, None);
        for ms in 1..=100 {
            stats.record_latency(Duration::from_millis(ms));
        }
        let a = stats.snapshot();
        assert_eq!(a.latency_p50_ms, Some(51.0));
        assert_eq!(a.latency_p95_ms, Some(95.0));
        assert_eq!(a.latency_p99_ms, Some(99.0));
        stats.frames_published.fetch_add(30, Ordering::Relaxed);
        stats.rtp_bytes.fetch_add(250_000, Ordering::Relaxed);
        let mut b = stats.snapshot();
        b.taken_at = a.taken_at + Duration::from_secs(1);
        let rates = Rates::between(&a, &b);
        assert_eq!(rates.fps, 30.0);
        assert_eq!(rates.bitrate_bps, 2_000_000.0);
    }
}
