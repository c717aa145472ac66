//! Who to look at among several people (the original pipeline's Phase 3).
//!
//! The current target is kept while it is seen: a candidate within `keep_within_deg` (pan and
//! tilt, from where the target was last seen) is the same person (hysteresis, so two people
//! of similar size do not make the camera flip between them). Only when it is lost does the
//! policy pick another: the `largest` box or the `highest_score`. `round_robin` instead moves
//! on after `dwell` to the next person clockwise, so everybody gets looked at. Time is passed in.

use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::aiming::pointing::{PtzCommand, angle_difference_deg};

/// How the next person is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SelectionPolicy {
    Largest,
    HighestScore,
    RoundRobin { dwell: Duration },
}

impl SelectionPolicy {
    /// The accepted names, for messages.
    pub const ACCEPTED: &'static str = "largest, highest_score, round_robin";

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Largest => "largest",
            Self::HighestScore => "highest_score",
            Self::RoundRobin { .. } => "round_robin",
        }
    }
}

/// The name of a policy (round robin's dwell is set apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyName {
    Largest,
    HighestScore,
    RoundRobin,
}

impl FromStr for PolicyName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "largest" => Ok(Self::Largest),
            "highest_score" => Ok(Self::HighestScore),
            "round_robin" => Ok(Self::RoundRobin),
            _ => Err(()),
        }
    }
}

/// One person seen, with where the PTZ would look to frame them.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub command: PtzCommand,
    /// How large the person looks from the PTZ, steradians (the `largest` policy).
    pub apparent_size_sr: f64,
    pub score: f64,
}

/// See the module docs.
#[derive(Debug)]
pub struct TargetSelector {
    policy: SelectionPolicy,
    keep_within_deg: f64,
    current: Option<Current>,
}

#[derive(Clone, Copy, Debug)]
struct Current {
    /// Where the target was last seen.
    pan_deg: f64,
    tilt_deg: f64,
    /// When it became the target.
    since: Instant,
}

impl TargetSelector {
    pub fn new(policy: SelectionPolicy, keep_within_deg: f64) -> Self {
        Self {
            policy,
            keep_within_deg,
            current: None,
        }
    }

    /// Another policy or hysteresis; the current target stays the target.
    pub fn set_policy(&mut self, policy: SelectionPolicy, keep_within_deg: f64) {
        self.policy = policy;
        self.keep_within_deg = keep_within_deg;
    }

    /// The candidate to look at now, by index; `None` when there is none.
    pub fn choose(&mut self, candidates: &[Candidate], now: Instant) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let kept = self.current.and_then(|current| {
            candidates
                .iter()
                .enumerate()
                .map(|(i, c)| (i, distance_deg(&current, &c.command)))
                .filter(|&(_, d)| d <= self.keep_within_deg)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| (i, current))
        });
        let chosen = match (self.policy, kept) {
            (SelectionPolicy::RoundRobin { dwell }, Some((i, current)))
                if now.duration_since(current.since) >= dwell && candidates.len() > 1 =>
            {
                self.next_clockwise(candidates, &candidates[i].command)
            }
            (_, Some((i, current))) => {
                // The same person: follow them, keep the time they became the target.
                self.current = Some(Current {
                    pan_deg: candidates[i].command.pan_deg,
                    tilt_deg: candidates[i].command.tilt_deg,
                    since: current.since,
                });
                return Some(i);
            }
            (SelectionPolicy::Largest, None) => best_by(candidates, |c| c.apparent_size_sr),
            (SelectionPolicy::HighestScore, None) => best_by(candidates, |c| c.score),
            (SelectionPolicy::RoundRobin { .. }, None) => {
                best_by(candidates, |c| c.apparent_size_sr)
            }
        };
        self.current = Some(Current {
            pan_deg: candidates[chosen].command.pan_deg,
            tilt_deg: candidates[chosen].command.tilt_deg,
            since: now,
        });
        Some(chosen)
    }

    /// Forgets the target (nobody seen for a while).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// The first candidate clockwise of `from` (wrapping), other than the one at `from`.
    fn next_clockwise(&self, candidates: &[Candidate], from: &PtzCommand) -> usize {
        candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ahead = angle_difference_deg(c.command.pan_deg, from.pan_deg).rem_euclid(360.0);
                // The current person (0°) comes last.
                (i, if ahead < 1e-6 { 360.0 } else { ahead })
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(i, _)| i)
    }
}

fn distance_deg(current: &Current, command: &PtzCommand) -> f64 {
    angle_difference_deg(command.pan_deg, current.pan_deg)
        .abs()
        .hypot(command.tilt_deg - current.tilt_deg)
}

fn best_by(candidates: &[Candidate], key: impl Fn(&Candidate) -> f64) -> usize {
    candidates
        .iter()
        .enumerate()
        .max_by(|a, b| key(a.1).total_cmp(&key(b.1)))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(pan_deg: f64, apparent_size_sr: f64, score: f64) -> Candidate {
        Candidate {
            command: PtzCommand {
                pan_deg,
                tilt_deg: 0.0,
                zoom: 2.0,
            },
            apparent_size_sr,
            score,
        }
    }

    #[test]
    fn the_current_target_is_kept_while_seen_even_when_another_is_larger() {
        let mut s = TargetSelector::new(SelectionPolicy::Largest, 8.0);
        let t = Instant::now();
        assert_eq!(
            s.choose(&[person(10.0, 100.0, 0.9), person(40.0, 50.0, 0.9)], t),
            Some(0)
        );
        // The other one grows past it, ours moves a little: keep ours.
        assert_eq!(
            s.choose(&[person(13.0, 90.0, 0.9), person(40.0, 300.0, 0.9)], t),
            Some(0)
        );
        // Ours is gone: the largest is chosen.
        assert_eq!(
            s.choose(&[person(40.0, 300.0, 0.9), person(80.0, 10.0, 0.9)], t),
            Some(0)
        );
        assert_eq!(s.choose(&[], t), None);
    }

    #[test]
    fn highest_score_picks_the_surest_detection() {
        let mut s = TargetSelector::new(SelectionPolicy::HighestScore, 8.0);
        let t = Instant::now();
        assert_eq!(
            s.choose(&[person(10.0, 900.0, 0.6), person(40.0, 50.0, 0.95)], t),
            Some(1)
        );
    }

    #[test]
    fn round_robin_moves_on_clockwise_after_the_dwell() {
        let dwell = Duration::from_secs(3);
        let mut s = TargetSelector::new(SelectionPolicy::RoundRobin { dwell }, 8.0);
        let t = Instant::now();
        let people = [
            person(300.0, 100.0, 0.9),
            person(20.0, 400.0, 0.9),
            person(60.0, 50.0, 0.9),
        ];
        assert_eq!(s.choose(&people, t), Some(1), "starts with the largest");
        assert_eq!(s.choose(&people, t + Duration::from_secs(2)), Some(1));
        assert_eq!(
            s.choose(&people, t + Duration::from_secs(3)),
            Some(2),
            "next clockwise"
        );
        assert_eq!(
            s.choose(&people, t + Duration::from_secs(6)),
            Some(0),
            "wraps past 360"
        );
        assert_eq!(s.choose(&people, t + Duration::from_secs(9)), Some(1));
    }
}
