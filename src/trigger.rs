//! Detection-driven start and stop of the stream (ROS-free).
//!
//! A detection whose `class_id` is listed, with a score at least the minimum, starts the
//! stream; `timeout` without such a detection stops it again, but only a stream the trigger
//! itself started (a stream started through `~/start_stream` stays up).

use std::time::{Duration, Instant};

/// One object hypothesis of a detection.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    pub class_id: String,
    pub score: f64,
}

/// Whether a hypothesis names one of `class_ids` with a score of at least `min_score`: a
/// person, for the trigger and for aiming alike.
pub fn is_wanted(class_ids: &[String], min_score: f64, class_id: &str, score: f64) -> bool {
    score >= min_score && class_ids.iter().any(|id| id == class_id)
}

/// What the trigger wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerAction {
    Start,
    Stop,
    Nothing,
}

/// Settings of the trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerConfig {
    pub enabled: bool,
    pub class_ids: Vec<String>,
    pub min_score: f64,
    pub timeout: Duration,
}

/// Counts detections and decides when to start and stop.
#[derive(Debug)]
pub struct AutoTrigger {
    config: TriggerConfig,
    /// Set while a stream the trigger started is running.
    triggered_at: Option<Instant>,
    last_match: Option<Instant>,
    detection_messages: u64,
    last_detection: Option<(Instant, String)>,
}

impl AutoTrigger {
    pub fn new(config: TriggerConfig) -> Self {
        Self {
            config,
            triggered_at: None,
            last_match: None,
            detection_messages: 0,
            last_detection: None,
        }
    }

    /// New settings (parameters changed while the node runs). Turned off, the trigger lets go
    /// of a stream it started (it keeps running until stopped).
    pub fn set_config(&mut self, config: TriggerConfig) {
        if !config.enabled {
            self.triggered_at = None;
        }
        self.config = config;
    }

    pub fn is_enabled(&self) -> bool {
        self.config.enabled
    }

    /// The stream started with the node (`autostart`) while the trigger is on: the trigger
    /// owns it as if a person had just been seen, so it stops `timeout` after start unless
    /// somebody is seen.
    pub fn own_started_stream(&mut self, now: Instant) {
        if self.config.enabled {
            self.triggered_at = Some(now);
            self.last_match = Some(now);
        }
    }

    /// Handles one detection message (all its hypotheses).
    pub fn on_detections(&mut self, hypotheses: &[Hypothesis], now: Instant) -> TriggerAction {
        self.detection_messages += 1;
        if let Some(best) = hypotheses.iter().max_by(|a, b| a.score.total_cmp(&b.score)) {
            self.last_detection = Some((now, best.class_id.clone()));
        }
        let matched = hypotheses.iter().any(|h| {
            is_wanted(
                &self.config.class_ids,
                self.config.min_score,
                &h.class_id,
                h.score,
            )
        });
        if !(self.config.enabled && matched) {
            return TriggerAction::Nothing;
        }
        self.last_match = Some(now);
        if self.triggered_at.is_none() {
            self.triggered_at = Some(now);
            return TriggerAction::Start;
        }
        TriggerAction::Nothing
    }

    /// The stream was started or stopped by someone else (services): the trigger no longer
    /// owns it.
    pub fn release(&mut self) {
        self.triggered_at = None;
    }

    /// Checks the timeout; call periodically.
    pub fn on_tick(&mut self, now: Instant) -> TriggerAction {
        match (self.triggered_at, self.last_match) {
            (Some(_), Some(last)) if now.duration_since(last) >= self.config.timeout => {
                self.triggered_at = None;
                TriggerAction::Stop
            }
            _ => TriggerAction::Nothing,
        }
    }

    /// Detection messages received.
    pub fn detection_messages(&self) -> u64 {
        self.detection_messages
    }

    /// Age and class of the best hypothesis of the last detection message that had one.
    pub fn last_detection(&self, now: Instant) -> Option<(Duration, &str)> {
        self.last_detection
            .as_ref()
            .map(|(at, class)| (now.duration_since(*at), class.as_str()))
    }

    /// Whether a stream the trigger started is running.
    pub fn is_triggered(&self) -> bool {
        self.triggered_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(score: f64) -> Hypothesis {
        Hypothesis {
            class_id: "person".into(),
            score,
        }
    }

    /// A trigger on the class `person`.
    fn person_trigger(enabled: bool, min_score: f64, timeout: Duration) -> AutoTrigger {
        AutoTrigger::new(TriggerConfig {
            enabled,
            class_ids: vec!["person".into()],
            min_score,
            timeout,
        })
    }

    #[test]
    fn starts_on_match_and_stops_after_timeout() {
        let mut t = person_trigger(true, 0.5, Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(t.on_detections(&[person(0.4)], t0), TriggerAction::Nothing);
        let cat = Hypothesis {
            class_id: "cat".into(),
            score: 0.9,
        };
        assert_eq!(t.on_detections(&[cat], t0), TriggerAction::Nothing);
        assert_eq!(t.on_detections(&[person(0.8)], t0), TriggerAction::Start);
        assert_eq!(
            t.on_detections(&[person(0.8)], t0 + Duration::from_secs(1)),
            TriggerAction::Nothing
        );
        assert_eq!(
            t.on_tick(t0 + Duration::from_millis(2500)),
            TriggerAction::Nothing
        );
        assert_eq!(t.on_tick(t0 + Duration::from_secs(3)), TriggerAction::Stop);
        assert_eq!(
            t.on_tick(t0 + Duration::from_secs(9)),
            TriggerAction::Nothing
        );
        assert_eq!(t.detection_messages(), 4);
        assert_eq!(
            t.last_detection(t0 + Duration::from_secs(1)).map(|d| d.1),
            Some("person")
        );
    }

    #[test]
    fn disabled_only_counts() {
        let mut t = person_trigger(false, 0.0, Duration::from_secs(1));
        assert_eq!(
            t.on_detections(&[person(1.0)], Instant::now()),
            TriggerAction::Nothing
        );
        assert_eq!(t.detection_messages(), 1);
    }
}
