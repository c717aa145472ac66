//! `spot_ptz_stream`: the ROS 2 node streaming Spot CAM video into `image_raw`.
//!
//! Parameters come from `--ros-args` (YAML files, `-p`); credentials from
//! `BOSDYN_CLIENT_USERNAME` / `BOSDYN_CLIENT_PASSWORD`. Exits 0 on SIGINT/SIGTERM.

use std::process::ExitCode;

use spot_ptz_stream::ros::{self, logging::RosLogLayer, middleware, rosout::RosoutLayer};
use spot_ptz_stream::{logging, shutdown};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    // Before any thread and before the ROS context: large images on a stock installation.
    // SAFETY: nothing else runs yet (no runtime, no ROS context, no logging threads).
    let middleware = unsafe { middleware::configure_from_environment() };
    tracing_subscriber::registry()
        .with(logging::filter("SPOT_PTZ_STREAM_LOG", "info"))
        .with(RosLogLayer::new(ros::NODE_NAME))
        // Every line also on /rosout, once `ros::run` has created the node (queued until then).
        .with(RosoutLayer::install())
        .init();
    // One TLS crypto provider (ring) for gRPC, HTTPS and DTLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &middleware {
        Ok(decision) => middleware::log_decision(decision),
        Err(error) => tracing::warn!("{error}"),
    }

    let outcome = (|| -> anyhow::Result<()> {
        let ctx = r2r::Context::create()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let shutdown = shutdown::on_terminate_signals()?;
            ros::run(ctx, shutdown).await?;
            anyhow::Ok(())
        })?;
        // Tasks still blocked in the runtime (none expected) must not delay the exit.
        runtime.shutdown_timeout(std::time::Duration::from_millis(500));
        Ok(())
    })();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", logging::one_line(error.chain()));
            ExitCode::FAILURE
        }
    }
}
