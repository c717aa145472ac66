//! The pre-roll ring: the last samples of every channel, kept while nothing is recorded, so an
//! event's file can begin before the event at a point a video decoder can start from.

use std::collections::VecDeque;

use super::{Sample, VideoKey};

/// What the ring keeps at most, whatever the pre-roll and keyframe spacing ask for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingLimits {
    /// The pre-roll wanted before an event's start.
    pub pre_roll_ns: u64,
    /// Also kept beyond the pre-roll: a start is applied a little after it was asked for (a
    /// sample or two later), and its start time is then older than the newest sample.
    pub slack_ns: u64,
    /// Log-time span kept at most (pre-roll plus up to two keyframe intervals fit under it).
    pub max_span_ns: u64,
    /// Sample payload bytes kept at most.
    pub max_bytes: usize,
}

/// Samples in arrival order, trimmed to what a clip starting now or later can need.
pub(crate) struct PreRoll {
    limits: RingLimits,
    samples: VecDeque<Sample>,
    bytes: usize,
    newest_ns: u64,
}

impl PreRoll {
    pub fn new(limits: RingLimits) -> Self {
        Self {
            limits,
            samples: VecDeque::new(),
            bytes: 0,
            newest_ns: 0,
        }
    }

    pub fn push(&mut self, sample: Sample) {
        self.newest_ns = self.newest_ns.max(sample.log_time_ns);
        self.bytes += sample.data.len();
        self.samples.push_back(sample);
        self.trim();
    }

    /// Samples held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Takes the clip for an event starting at `start_ns`, given the samples that arrived
    /// after the ring's (`later`, never trimmed away): the samples logged at or after
    /// [`clip_start_ns`] for `start_ns - pre_roll`, in arrival order; the ring is left empty.
    pub fn take_clip(&mut self, start_ns: u64, later: Vec<Sample>) -> Vec<Sample> {
        self.samples.extend(later);
        let from_ns = clip_start_ns(
            &self.samples,
            start_ns.saturating_sub(self.limits.pre_roll_ns),
        );
        self.bytes = 0;
        self.samples
            .drain(..)
            .filter(|s| s.log_time_ns >= from_ns)
            .collect()
    }

    /// Drops what no later clip needs (everything before the clip start for the earliest cut a
    /// later event can have, `newest - pre_roll`), then whatever is over the hard limits.
    fn trim(&mut self) {
        let earliest_cut_ns = self
            .newest_ns
            .saturating_sub(self.limits.pre_roll_ns.saturating_add(self.limits.slack_ns));
        let oldest_ns = self.samples.front().map_or(u64::MAX, |s| s.log_time_ns);
        if oldest_ns < earliest_cut_ns {
            let keep_from_ns = clip_start_ns(&self.samples, earliest_cut_ns);
            self.drop_front_while(|s| s.log_time_ns < keep_from_ns);
        }
        let span_floor_ns = self.newest_ns.saturating_sub(self.limits.max_span_ns);
        let max_bytes = self.limits.max_bytes;
        let mut bytes = self.bytes;
        self.drop_front_while(|s| {
            let over = s.log_time_ns < span_floor_ns || bytes > max_bytes;
            if over {
                bytes -= s.data.len();
            }
            over
        });
    }

    fn drop_front_while(&mut self, mut drop: impl FnMut(&Sample) -> bool) {
        while let Some(front) = self.samples.front() {
            if !drop(front) {
                break;
            }
            self.bytes -= front.data.len();
            self.samples.pop_front();
        }
    }
}

/// Where a clip whose picture must be whole by `cut_ns` starts (log time), among `samples`:
///
/// - the newest IDR at or before `cut_ns`, or the second-newest keyframe at or before it (a
///   decoder starting at a recovery point has a whole picture by the next keyframe), whichever
///   is later;
/// - with a single recovery point at or before `cut_ns`, that one (whole a little after it);
/// - with no keyframe at or before `cut_ns`, `cut_ns` itself: the video then starts at the
///   first keyframe after it.
pub(crate) fn clip_start_ns(samples: &VecDeque<Sample>, cut_ns: u64) -> u64 {
    let mut newest_idr: Option<u64> = None;
    // The two newest keyframes of any kind at or before the cut.
    let mut newest_key: Option<u64> = None;
    let mut second_key: Option<u64> = None;
    for sample in samples {
        let Some(key) = sample.video else { continue };
        if key == VideoKey::Other || sample.log_time_ns > cut_ns {
            continue;
        }
        let t = sample.log_time_ns;
        if key == VideoKey::Idr && newest_idr.is_none_or(|n| t > n) {
            newest_idr = Some(t);
        }
        match newest_key {
            Some(n) if t <= n => {
                if second_key.is_none_or(|s| t > s) {
                    second_key = Some(t);
                }
            }
            _ => {
                second_key = newest_key;
                newest_key = Some(t);
            }
        }
    }
    match (newest_idr, second_key) {
        (Some(idr), Some(second)) => idr.max(second),
        (Some(idr), None) => idr,
        (None, Some(second)) => second,
        (None, None) => newest_key.unwrap_or(cut_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn sample(t_ms: u64, video: Option<VideoKey>) -> Sample {
        Sample {
            channel: 0,
            log_time_ns: t_ms * MS,
            publish_time_ns: t_ms * MS,
            data: vec![0; 10],
            video,
        }
    }

    fn ring(pre_roll_ms: u64) -> PreRoll {
        PreRoll::new(RingLimits {
            pre_roll_ns: pre_roll_ms * MS,
            slack_ns: 0,
            max_span_ns: 30_000 * MS,
            max_bytes: 1 << 20,
        })
    }

    /// A frame every 10 ms from `from_ms` to `to_ms`, a keyframe of `kind` every `every_ms`.
    fn video(r: &mut PreRoll, from_ms: u64, to_ms: u64, every_ms: u64, kind: VideoKey) {
        let mut t = from_ms;
        while t < to_ms {
            let key = if (t - from_ms).is_multiple_of(every_ms) {
                kind
            } else {
                VideoKey::Other
            };
            r.push(sample(t, Some(key)));
            t += 10;
        }
    }

    fn first_times(clip: &[Sample]) -> (u64, Option<VideoKey>) {
        (clip[0].log_time_ns / MS, clip[0].video)
    }

    #[test]
    fn idr_stream_starts_at_the_newest_idr_before_the_cut_and_keeps_little() {
        let mut r = ring(1_000);
        video(&mut r, 0, 10_000, 2_000, VideoKey::Idr);
        // Kept: from the IDR at 8000 (the one before newest - pre_roll = 8990).
        assert_eq!(r.len(), 200);
        let clip = r.take_clip(10_500 * MS, Vec::new());
        // Cut 9500: newest IDR at or before it is 8000.
        assert_eq!(first_times(&clip), (8_000, Some(VideoKey::Idr)));
        assert_eq!(clip.len(), 200);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn recovery_point_stream_starts_at_the_second_newest_before_the_cut() {
        let mut r = ring(1_000);
        video(&mut r, 0, 10_000, 500, VideoKey::RecoveryPoint);
        // Cut 9000 - ...: recovery points at ..., 8500, 9000 (<= 9000): second-newest 8500.
        let clip = r.take_clip(10_000 * MS, Vec::new());
        assert_eq!(first_times(&clip), (8_500, Some(VideoKey::RecoveryPoint)));
        assert_eq!(clip.len(), 150);
    }

    #[test]
    fn an_old_idr_loses_to_a_later_pair_of_recovery_points() {
        let mut r = ring(1_000);
        r.push(sample(0, Some(VideoKey::Idr)));
        video(&mut r, 10, 5_000, 1_000, VideoKey::RecoveryPoint);
        // Cut 4000: keyframes <= 4000: IDR 0, RPs 10, 1010, 2010, 3010; second-newest 2010.
        let clip = r.take_clip(5_000 * MS, Vec::new());
        assert_eq!(first_times(&clip), (2_010, Some(VideoKey::RecoveryPoint)));
    }

    #[test]
    fn no_keyframe_keeps_the_window_from_the_cut_for_every_channel() {
        let mut r = ring(1_000);
        for t in (0..3_000).step_by(100) {
            r.push(sample(t, Some(VideoKey::Other)));
            r.push(Sample {
                channel: 1,
                ..sample(t + 5, None)
            });
        }
        let clip = r.take_clip(3_000 * MS, Vec::new());
        // Cut 2000: everything logged from 2000 on, video and not.
        assert_eq!(first_times(&clip), (2_000, Some(VideoKey::Other)));
        assert_eq!(clip.len(), 20);
    }

    #[test]
    fn hard_limits_bound_the_ring_by_span_and_bytes() {
        let mut r = PreRoll::new(RingLimits {
            pre_roll_ns: 1_000 * MS,
            slack_ns: 0,
            max_span_ns: 3_000 * MS,
            max_bytes: 1_000,
        });
        // A single IDR long ago would keep everything: the span limit drops it.
        video(&mut r, 0, 10_000, 100_000, VideoKey::Idr);
        assert_eq!(r.len(), 100); // 10 bytes each, the byte limit (1000 bytes) is hit first
        let clip = r.take_clip(10_000 * MS, Vec::new());
        assert_eq!(first_times(&clip), (9_000, Some(VideoKey::Other)));
        let mut r = PreRoll::new(RingLimits {
            pre_roll_ns: 1_000 * MS,
            slack_ns: 0,
            max_span_ns: 3_000 * MS,
            max_bytes: 1 << 20,
        });
        // IDRs 5 s apart: the one at 5000 is needed (cut 8990) but older than the span.
        video(&mut r, 0, 10_000, 5_000, VideoKey::Idr);
        // Without a keyframe before the cut nothing before the cut is needed.
        assert_eq!(r.len(), 101);
        let clip = r.take_clip(10_000 * MS, vec![sample(10_000, Some(VideoKey::Other))]);
        assert_eq!(first_times(&clip), (9_000, Some(VideoKey::Other)));
        assert_eq!(clip.len(), 101);
    }

    #[test]
    fn samples_after_the_start_are_not_trimmed_and_slack_keeps_the_keyframe() {
        let mut r = PreRoll::new(RingLimits {
            pre_roll_ns: 0,
            slack_ns: 100 * MS,
            max_span_ns: 30_000 * MS,
            max_bytes: 1 << 20,
        });
        video(&mut r, 0, 1_000, 500, VideoKey::Idr);
        // The start at 950 is applied after the sample at 1000 came.
        r.push(sample(1_000, Some(VideoKey::Other)));
        let later: Vec<Sample> = (1..=5)
            .map(|i| sample(1_000 + i * 10, Some(VideoKey::Other)))
            .collect();
        let clip = r.take_clip(950 * MS, later);
        // Cut 950: the IDR at 500 starts the clip; nothing after it was lost.
        assert_eq!(first_times(&clip), (500, Some(VideoKey::Idr)));
        assert_eq!(clip.len(), 56);
    }
}
