//! Generated Spot API types (prost) and gRPC clients/servers (tonic).
//!
//! The `.proto` sources live in `proto/bosdyn/api/` and were written for this project from the
//! public field lists; package and message names, field numbers and RPC paths match the
//! Boston Dynamics SDK (`bosdyn.api`, `bosdyn.api.spot_cam`), so the generated code talks to a
//! real robot. Module paths mirror the protobuf packages:
//!
//! - [`bosdyn::api`]: headers, auth, directory, geometry.
//! - [`bosdyn::api::spot_cam`]: compositor, stream quality, PTZ, network (ICE).

/// Protobuf package `bosdyn`; the generated code is exempt from the lints.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    rustdoc::all,
    unreachable_pub
)]
pub mod bosdyn {
    /// Protobuf package `bosdyn.api`.
    pub mod api {
        include!(concat!(env!("OUT_DIR"), "/bosdyn.api.rs"));

        /// Protobuf package `bosdyn.api.spot_cam`.
        pub mod spot_cam {
            include!(concat!(env!("OUT_DIR"), "/bosdyn.api.spot_cam.rs"));
        }
    }
}
