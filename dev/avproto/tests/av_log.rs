//! libav log messages arrive as `tracing` events with target "libav".

use std::sync::{Arc, Mutex};

use avproto::av_log::{self, AvLogLevel};
use avproto::libavcodec_decoder::LibavcodecDecoder;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(String, tracing::Level, String)>>>);

struct Msg(String);
impl Visit for Msg {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut m = Msg(String::new());
        e.record(&mut m);
        if let Ok(mut v) = self.0.lock() {
            v.push((
                e.metadata().target().to_string(),
                *e.metadata().level(),
                m.0,
            ));
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn libav_errors_become_tracing_warnings() {
    let c = Collect::default();
    av_log::route_to_tracing(AvLogLevel::Error);
    tracing::subscriber::with_default(c.clone(), || {
        let mut dec = LibavcodecDecoder::new().expect("open");
        // A P slice referring to a PPS that was never sent.
        let _ = dec.decode(&[0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x04, 0x08, 0x10]);
    });
    av_log::route_to_stderr();
    av_log::set_level(AvLogLevel::Quiet);
    let events = c.0.lock().expect("lock").clone();
    println!("{events:#?}");
    assert!(!events.is_empty(), "no libav message was routed");
    assert!(
        events
            .iter()
            .all(|(t, l, _)| t == "libav" && *l == tracing::Level::WARN)
    );
    assert!(
        events.iter().any(|(_, _, m)| m.contains("h264")),
        "prefix [h264 @ 0x...] expected"
    );
}
