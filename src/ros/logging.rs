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

#[derive(Default)]
struct Message {
    text: String,
    fields: String,
}

/// Fields the `log` → `tracing` bridge adds to a library's `log` records (`log.target`,
/// `log.file`, ...): the ROS logger already shows where a message comes from.
fn is_bridge_field(field: &Field) -> bool {
    field.name().starts_with("log.")
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if is_bridge_field(field) {
            return;
        }
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if is_bridge_field(field) {
            return;
        }
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for RosLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let metadata = event.metadata();
        let severity = match *metadata.level() {
            Level::ERROR => r2r::LogSeverity::Error,
            Level::WARN => r2r::LogSeverity::Warn,
            Level::INFO => r2r::LogSeverity::Info,
            Level::DEBUG | Level::TRACE => r2r::LogSeverity::Debug,
        };
        let text = format!("{}{}", message.text, message.fields);
        r2r::log(
            &text,
            &self.logger,
            metadata.file().unwrap_or(""),
            metadata.line().unwrap_or(0),
            severity,
        );
    }
}
