//! Mirrors `tracing` events into the ROS logger (rcutils: console and log files).

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// A `tracing` layer that logs every event through r2r under one logger name.
pub struct RosLogLayer {
    logger: String,
}

impl RosLogLayer {
    pub fn new(logger: &str) -> Self {
        Self {
            logger: logger.to_string(),
        }
    }
}

/// An event as the console shows it: the message, then ` name=value` for each field. Events
/// that come from a library's `log` records carry where they were logged as `log.*` fields;
/// those are kept apart (the ROS logger already shows where a message comes from).
#[derive(Default)]
pub(crate) struct EventText {
    text: String,
    fields: String,
    /// `log.file`, `log.line` and `log.module_path` of a `log` record.
    pub(crate) log_file: Option<String>,
    pub(crate) log_line: Option<u32>,
    pub(crate) log_module_path: Option<String>,
}

impl EventText {
    pub(crate) fn of(event: &Event<'_>) -> Self {
        let mut text = Self::default();
        event.record(&mut text);
        text
    }

    /// The message and its fields, as the console shows them.
    pub(crate) fn line(&self) -> String {
        format!("{}{}", self.text, self.fields)
    }
}

impl Visit for EventText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name().starts_with("log.") {
            return;
        }
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "log.file" => self.log_file = Some(value.to_owned()),
            "log.module_path" => self.log_module_path = Some(value.to_owned()),
            name if name.starts_with("log.") => {}
            "message" => self.text.push_str(value),
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "log.line" {
            self.log_line = u32::try_from(value).ok();
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl<S: Subscriber> Layer<S> for RosLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let message = EventText::of(event);
        let metadata = event.metadata();
        let severity = match *metadata.level() {
            Level::ERROR => r2r::LogSeverity::Error,
            Level::WARN => r2r::LogSeverity::Warn,
            Level::INFO => r2r::LogSeverity::Info,
            Level::DEBUG | Level::TRACE => r2r::LogSeverity::Debug,
        };
        r2r::log(
            &message.line(),
            &self.logger,
            metadata.file().unwrap_or(""),
            metadata.line().unwrap_or(0),
            severity,
        );
    }
}
