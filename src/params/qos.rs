//! rclcpp's QoS overrides: read-only parameters `qos_overrides.<topic>.publisher.<policy>`
//! (`reliability`, `durability`, `history`, `depth`), one set per publisher, declared at start
//! with the publisher's own QoS as their defaults, with rclcpp's names and accepted values.
//! Where an override and `image_qos_*` both say something, the override wins (as in rclcpp, a
//! launch file's override is the last word).

use super::node_params::ParamValue;
use super::store::{Declared, ParameterStore};
use super::table::{Apply, Kind};

/// A publisher's QoS as the override parameters name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherQos {
    /// `reliable`, `best_effort` or `system_default`.
    pub reliability: String,
    /// `volatile`, `transient_local` or `system_default`.
    pub durability: String,
    /// `keep_last`, `keep_all` or `system_default`.
    pub history: String,
    pub depth: i64,
}

const RELIABILITY: &[&str] = &["reliable", "best_effort", "system_default"];
const DURABILITY: &[&str] = &["volatile", "transient_local", "system_default"];
const HISTORY: &[&str] = &["keep_last", "keep_all", "system_default"];

/// The parameter of `policy` for the publisher of `topic` (fully qualified: `/image_raw`).
pub fn name(topic: &str, policy: &str) -> String {
    format!("qos_overrides.{topic}.publisher.{policy}")
}

/// The override parameters of the publisher of `topic`, its QoS now as their defaults.
pub fn declare(topic: &str, qos: &PublisherQos) -> Vec<(Declared, ParamValue)> {
    let choice =
        |default: &'static str, choices: &'static [&'static str]| Kind::String { default, choices };
    let policies: [(&str, Kind, ParamValue); 4] = [
        (
            "reliability",
            choice("reliable", RELIABILITY),
            ParamValue::String(qos.reliability.clone()),
        ),
        (
            "durability",
            choice("volatile", DURABILITY),
            ParamValue::String(qos.durability.clone()),
        ),
        (
            "history",
            choice("keep_last", HISTORY),
            ParamValue::String(qos.history.clone()),
        ),
        (
            "depth",
            Kind::Integer {
                default: 1,
                min: 1,
                max: 10_000,
            },
            ParamValue::Integer(qos.depth),
        ),
    ];
    policies
        .into_iter()
        .map(|(policy, kind, value)| {
            let declared = Declared {
                name: name(topic, policy),
                kind,
                description: format!(
                    "QoS {policy} of the {topic} publisher (rclcpp's QoS override; read-only: set it at start)"
                ),
                apply: Apply::AtStart,
            };
            (declared, value)
        })
        .collect()
}

/// The QoS of the publisher of `topic`: `default`, with what its overrides say.
pub fn read(store: &ParameterStore, topic: &str, default: &PublisherQos) -> PublisherQos {
    let text = |policy: &str, default: &str| match store.get(&name(topic, policy)) {
        Some(ParamValue::String(s)) => s.clone(),
        _ => default.to_string(),
    };
    PublisherQos {
        reliability: text("reliability", &default.reliability),
        durability: text("durability", &default.durability),
        history: text("history", &default.history),
        depth: match store.get(&name(topic, "depth")) {
            Some(ParamValue::Integer(depth)) => *depth,
            _ => default.depth,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn overrides_are_read_only_checked_and_win() {
        let image = PublisherQos {
            reliability: "reliable".into(),
            durability: "volatile".into(),
            history: "keep_last".into(),
            depth: 1,
        };
        let given: HashMap<String, ParamValue> = [
            ("robot_host".to_string(), ParamValue::String("h".into())),
            (
                name("/image_raw", "reliability"),
                ParamValue::String("best_effort".into()),
            ),
            (name("/image_raw", "depth"), ParamValue::Integer(5)),
        ]
        .into();
        let mut store = ParameterStore::new(&given, None, declare("/image_raw", &image)).unwrap();
        let qos = read(&store, "/image_raw", &image);
        assert_eq!((qos.reliability.as_str(), qos.depth), ("best_effort", 5));
        assert_eq!(qos.durability, "volatile");
        let refused = store.set(
            &[crate::params::Change {
                name: name("/image_raw", "depth"),
                value: Some(ParamValue::Integer(3)),
            }],
            false,
        );
        assert!(
            refused.results[0]
                .as_ref()
                .unwrap_err()
                .contains("read-only")
        );
        let bad: HashMap<String, ParamValue> = [
            ("robot_host".to_string(), ParamValue::String("h".into())),
            (
                name("/image_raw", "durability"),
                ParamValue::String("forever".into()),
            ),
        ]
        .into();
        let error = ParameterStore::new(&bad, None, declare("/image_raw", &image)).unwrap_err();
        assert!(error.to_string().contains("transient_local"), "{error}");
    }
}
