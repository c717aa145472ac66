//! Starts the whole simulated robot: certificates, gRPC services, camera and signalling.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::shutdown::CancellationToken;
use crate::sim::auth::AuthStore;
use crate::sim::camera::{self, CameraConfig};
use crate::sim::encoder::EncoderKind;
use crate::sim::link::LinkImpairments;
use crate::sim::offerer::OffererConfig;
use crate::sim::robot_services;
use crate::sim::session::SessionFaults;
use crate::sim::signalling_server::{self, SignallingConfig};
use crate::sim::state::{SimState, SimStateConfig};
use crate::sim::tls::SimCertificates;

/// Everything the simulator is configured with (the binary's flags).
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub bind: IpAddr,
    pub grpc_port: u16,
    pub sdp_port: u16,
    pub sdp_path: String,
    pub cert_dir: PathBuf,
    pub username: String,
    pub password: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: i64,
    pub idr_interval_frames: i64,
    pub frame_log: Option<PathBuf>,
    pub loss_percent: f64,
    pub link: LinkImpairments,
    pub rtx: bool,
    pub drop_after: Option<Duration>,
    pub vanish_after: Option<Duration>,
    pub refuse_signalling_for: Option<Duration>,
    pub join_mid_stream: bool,
    pub ignore_keyframe_requests: bool,
    pub repeat_parameter_sets: bool,
    pub encoder: EncoderKind,
    pub resize_on_screen_change: bool,
    pub services_delay: Duration,
    /// `SetPtzPosition` acts and answers this long after it arrives.
    pub ptz_command_delay: Duration,
    /// `SetPtzPosition` refused for a pan above this (degrees).
    pub ptz_refuse_pan_above_deg: Option<f32>,
    /// People in the world (see [`crate::sim::people`]).
    pub people: Vec<crate::sim::people::Person>,
    /// The PTZ camera's field of view against zoom.
    pub lens: crate::aiming::lens::LensModel,
    pub person_height_m: f64,
}

/// A simulator that is up and listening.
pub struct RunningSim {
    pub grpc_addr: SocketAddr,
    pub sdp_addr: SocketAddr,
    pub ca_path: PathBuf,
    tasks: Vec<JoinHandle<Result<(), String>>>,
    encoder: std::thread::JoinHandle<()>,
}

/// The simulator could not start or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not listen on {addr}: {source}; pick another port or 0 for a free one")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::sim::tls::SimTlsError),
    #[error(transparent)]
    Camera(#[from] crate::sim::camera::CameraError),
    #[error("{0}")]
    Task(String),
}

async fn bind(ip: IpAddr, port: u16) -> Result<(TcpListener, SocketAddr), SimError> {
    let addr = SocketAddr::new(ip, port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Starts every part; they run until `shutdown` is cancelled.
pub async fn start(config: SimConfig, shutdown: CancellationToken) -> Result<RunningSim, SimError> {
    let (grpc_listener, grpc_addr) = bind(config.bind, config.grpc_port).await?;
    let (sdp_listener, sdp_addr) = bind(config.bind, config.sdp_port).await?;

    let grpc_options = robot_services::SimGrpcOptions {
        services_delay: config.services_delay,
        ptz_command_delay: config.ptz_command_delay,
        ptz_refuse_pan_above_deg: config.ptz_refuse_pan_above_deg,
        ..robot_services::SimGrpcOptions::default()
    };
    let signalling_hosts = vec![config.bind.to_string(), "localhost".to_string()];
    let certificates = SimCertificates::generate(
        &config.cert_dir,
        &grpc_options.authorities(),
        &signalling_hosts,
    )?;
    let state = Arc::new(SimState::new(&SimStateConfig {
        width: config.width,
        height: config.height,
        target_bitrate_bps: config.bitrate_bps,
        idr_interval_frames: config.idr_interval_frames,
        resize_on_screen_change: config.resize_on_screen_change,
    }));
    let auth = Arc::new(AuthStore::new(&config.username, &config.password));
    let (camera, encoder) = camera::start(
        CameraConfig {
            fps: config.fps,
            encoder: config.encoder,
            repeat_parameter_sets: config.repeat_parameter_sets,
            frame_log: config.frame_log.clone(),
            people: config.people.clone(),
            lens: config.lens,
            person_height_m: config.person_height_m,
        },
        state.clone(),
        shutdown.clone(),
    )?;

    let grpc = tokio::spawn({
        let shutdown = shutdown.clone();
        let serve = robot_services::serve_grpc_with_options(
            grpc_listener,
            certificates.grpc_server_config(),
            state.clone(),
            auth.clone(),
            grpc_options,
            async move { shutdown.cancelled().await },
        );
        async move { serve.await.map_err(|e| e.to_string()) }
    });
    let signalling = tokio::spawn({
        let serve = signalling_server::serve(
            sdp_listener,
            certificates.signalling_server_config(),
            SignallingConfig {
                sdp_path: config.sdp_path.clone(),
                offerer: OffererConfig {
                    udp_bind_addrs: vec![SocketAddr::new(config.bind, 0).to_string()],
                    loss_percent: config.loss_percent,
                    link: config.link.clone(),
                    rtx: config.rtx,
                    mtu_bytes: 1200,
                },
                faults: SessionFaults {
                    join_mid_stream: config.join_mid_stream,
                    ignore_keyframe_requests: config.ignore_keyframe_requests,
                    drop_after: config.drop_after,
                    vanish_after: config.vanish_after,
                },
                refuse_until: config.refuse_signalling_for.map(|d| Instant::now() + d),
            },
            auth,
            camera,
            shutdown.clone(),
        );
        async move { serve.await.map_err(|e| e.to_string()) }
    });
    Ok(RunningSim {
        grpc_addr,
        sdp_addr,
        ca_path: certificates.ca_pem_path().to_path_buf(),
        tasks: vec![grpc, signalling],
        encoder,
    })
}

impl RunningSim {
    /// Waits until every part has stopped (after shutdown), reporting the first failure.
    pub async fn wait(self) -> Result<(), SimError> {
        let mut first_error = None;
        for task in self.tasks {
            let outcome = match task.await {
                Ok(result) => result,
                Err(join) => Err(format!("a simulator task panicked: {join}")),
            };
            if let Err(error) = outcome {
                first_error.get_or_insert(error);
            }
        }
        let encoder = self.encoder;
        // The encoder thread checks the shutdown token every frame.
        let _ = tokio::task::spawn_blocking(move || encoder.join()).await;
        match first_error {
            Some(error) => Err(SimError::Task(error)),
            None => Ok(()),
        }
    }
}
