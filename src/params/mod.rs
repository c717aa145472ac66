//! The node's configuration: every parameter declared once ([`table`]), read into one struct
//! with the checks that span parameters ([`node_params`]), and changed while the node runs
//! ([`store`]). ROS-free: the ROS adapter serves it over the parameter services.

pub mod node_params;
pub mod store;
pub mod table;

pub use node_params::{
    AimingParams, ImageOutputs, NodeParams, ParamError, ParamSource, ParamValue, Reliability,
};
pub use store::{Change, Changed, ParameterStore, SetOutcome};
pub use table::{Apply, Kind, PARAMETERS, ParamSpec};
