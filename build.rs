//! Compiles the Spot API subset in `proto/` into Rust (prost messages + tonic clients and
//! servers). `protox` parses the `.proto` files in pure Rust, so no `protoc` is needed.

use std::path::PathBuf;

/// Every `.proto` file we compile, relative to `proto/`.
const PROTO_FILES: &[&str] = &[
    "bosdyn/api/header.proto",
    "bosdyn/api/geometry.proto",
    "bosdyn/api/auth.proto",
    "bosdyn/api/auth_service.proto",
    "bosdyn/api/directory.proto",
    "bosdyn/api/directory_service.proto",
    "bosdyn/api/spot_cam/camera.proto",
    "bosdyn/api/spot_cam/compositor.proto",
    "bosdyn/api/spot_cam/network.proto",
    "bosdyn/api/spot_cam/ptz.proto",
    "bosdyn/api/spot_cam/streamquality.proto",
    "bosdyn/api/spot_cam/service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let include_dir = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=build.rs");
    for file in PROTO_FILES {
        println!(
            "cargo:rerun-if-changed={}",
            include_dir.join(file).display()
        );
    }
    let descriptors = protox::compile(PROTO_FILES, [&include_dir]).map_err(|e| {
        // miette-style errors carry the file and line; print them in full.
        format!("compiling the Spot API .proto files failed: {e:?}")
    })?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Transport helpers (`connect`) are not used: the robot client dials with its own
        // TLS connector, and the simulator serves through `tonic::transport::Server`.
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    Ok(())
}
