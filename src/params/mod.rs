//! The node's configuration: every parameter declared once ([`table`]), read into one struct
//! with the checks that span parameters ([`node_params`]), changed while the node runs
//! ([`store`]), and rclcpp's QoS overrides declared per publisher at start ([`qos`]). ROS-free: the ROS adapter serves it over the parameter services.

pub mod node_params;
pub mod qos;
pub mod store;
pub mod table;

pub use node_params::{
    AimingParams, ImageOutputs, NodeParams, ParamError, ParamSource, ParamValue, RecordingParams,
    Reliability,
};
pub use store::{Change, Changed, Declared, ParameterStore, SetOutcome};
pub use table::{Apply, Kind, PARAMETERS, ParamSpec};
