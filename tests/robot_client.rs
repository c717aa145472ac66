//! The robot client against the simulated robot, in process: `serve_grpc` on 127.0.0.1:0 with
//! freshly generated certificates, driven by `RobotClient` (and by raw tonic calls where the
//! client would hide what the server does).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use spot_ptz_stream::proto::bosdyn::api as pb;
use spot_ptz_stream::proto::bosdyn::api::spot_cam as cam;
use spot_ptz_stream::robot::{
    AwbMode, Credentials, RobotClient, RobotConfig, RobotError, SPOT_CAM_SERVICES,
    StreamParamsUpdate,
};
use spot_ptz_stream::sim::auth::{AuthLimits, AuthStore};
use spot_ptz_stream::sim::robot_services::{SimGrpcError, SimGrpcOptions, serve_grpc_with_options};
use spot_ptz_stream::sim::state::{SimState, SimStateConfig};
use spot_ptz_stream::sim::tls::{CertLayout, SimCertificates};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

const USER: &str = "operator";
const PASSWORD: &str = "correct horse battery staple";

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "spot_ptz_stream_robot_client_{}_{}_{tag}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ))
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

struct Sim {
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    auth: Arc<AuthStore>,
    state: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SimGrpcError>>>,
    cert_dir: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.cert_dir);
    }
}

impl Sim {
    fn config(&self) -> RobotConfig {
        RobotConfig {
            host: "127.0.0.1".to_string(),
            grpc_port: self.addr.port(),
            root_ca_pem: Some(self.ca_pem.clone()),
            connect_timeout: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(5),
            client_name: "robot_client_test".to_string(),
        }
    }

    fn client(&self) -> RobotClient {
        RobotClient::new(self.config()).expect("client config")
    }

    /// Signals shutdown and returns how long `serve_grpc` took to return.
    async fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve_grpc returned")
            .expect("task not panicked")
            .expect("serve_grpc ok");
        started.elapsed()
    }
}

struct SimSetup {
    options: SimGrpcOptions,
    layout: CertLayout,
    limits: AuthLimits,
}

impl Default for SimSetup {
    fn default() -> Self {
        SimSetup {
            options: SimGrpcOptions::default(),
            layout: CertLayout::Mixed,
            limits: AuthLimits::default(),
        }
    }
}

async fn start_sim(setup: SimSetup) -> Sim {
    init_tracing();
    let cert_dir = temp_dir("certs");
    let certs = SimCertificates::generate_with_layout(
        &cert_dir,
        &setup.options.authorities(),
        &["127.0.0.1".to_string(), "localhost".to_string()],
        setup.layout,
    )
    .expect("certificates");
    assert!(certs.ca_pem_path().starts_with(&cert_dir));
    let ca_pem = std::fs::read(certs.ca_pem_path()).expect("ca.pem written");
    let state = Arc::new(SimState::new(&SimStateConfig {
        width: 1280,
        height: 720,
        target_bitrate_bps: 2_000_000,
        idr_interval_frames: 30,
        resize_on_screen_change: false,
    }));
    let auth = Arc::new(AuthStore::with_limits(USER, PASSWORD, setup.limits));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_grpc_with_options(
        listener,
        certs.grpc_server_config(),
        state.clone(),
        auth.clone(),
        setup.options,
        async move {
            let _ = stop_rx.await;
        },
    ));
    Sim {
        addr,
        ca_pem,
        auth,
        state,
        stop: Some(stop_tx),
        task: Some(task),
        cert_dir,
    }
}

fn creds(password: &str) -> Credentials {
    Credentials::new(USER.to_string(), password.to_string())
}

/// A plain tonic channel with a standard (webpki, SAN-only) verifier: SNI `sni`, `:authority`
/// `authority`.
fn raw_channel(sim: &Sim, sni: &str, authority: &str) -> Channel {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&sim.ca_pem) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let addr = sim.addr;
    let sni = sni.to_string();
    Endpoint::from_shared(format!("https://{authority}"))
        .expect("uri")
        .connect_with_connector_lazy(tower::service_fn(move |_| {
            let config = config.clone();
            let sni = sni.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let name = ServerName::try_from(sni).map_err(std::io::Error::other)?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
}

fn request_header() -> Option<pb::RequestHeader> {
    Some(pb::RequestHeader {
        request_timestamp: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        client_name: "raw_test_client".to_string(),
        disable_rpc_logging: false,
    })
}

fn with_bearer<T>(message: T, bearer: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(bearer) = bearer {
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().expect("ascii"));
    }
    request
}

/// The SDK's login call: user and password, `Bearer None` before there is a token.
fn login_request() -> tonic::Request<pb::GetAuthTokenRequest> {
    let request = pb::GetAuthTokenRequest {
        header: request_header(),
        username: USER.to_string(),
        password: PASSWORD.to_string(),
        ..Default::default()
    };
    with_bearer(request, Some("Bearer None"))
}

#[tokio::test]
async fn login_refresh_and_token_handling() {
    let sim = start_sim(SimSetup::default()).await;
    let client = sim.client();
    assert!(client.token().is_none());
    let token = client.login(&creds(PASSWORD)).await.expect("login");
    assert!(sim.auth.is_valid_token(token.expose()));
    assert_eq!(client.token(), Some(token.clone()));
    assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    assert_eq!(format!("{token}"), "<redacted>");
    assert!(!format!("{client:?}").contains(token.expose()));

    let fresh = client.refresh_token().await.expect("refresh");
    assert_ne!(fresh.expose(), token.expose());
    assert!(sim.auth.is_valid_token(fresh.expose()));
    assert_eq!(client.token(), Some(fresh));
    assert_eq!(sim.auth.failed_login_attempts(), 0);

    let shown = format!("{:?}", creds(PASSWORD));
    assert!(shown.contains(USER) && shown.contains("<redacted>") && !shown.contains(PASSWORD));
}

#[tokio::test]
async fn refresh_needs_login_and_expired_tokens_are_rejected() {
    let sim = start_sim(SimSetup {
        limits: AuthLimits {
            token_lifetime: Duration::from_millis(800),
            ..AuthLimits::default()
        },
        ..SimSetup::default()
    })
    .await;
    let client = sim.client();
    assert!(matches!(
        client.refresh_token().await,
        Err(RobotError::NotLoggedIn)
    ));
    client.login(&creds(PASSWORD)).await.expect("login");
    client.list_screens().await.expect("token accepted");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let err = client.list_screens().await.expect_err("expired token");
    assert!(matches!(err, RobotError::Unauthenticated), "{err:?}");
    assert!(err.is_auth_rejection());
    let err = client.refresh_token().await.expect_err("expired token");
    assert!(matches!(err, RobotError::InvalidToken), "{err:?}");
}

#[tokio::test]
async fn wrong_password_is_invalid_login() {
    let sim = start_sim(SimSetup::default()).await;
    let client = sim.client();
    let err = client
        .login(&creds("not the password"))
        .await
        .expect_err("must fail");
    assert!(matches!(err, RobotError::InvalidLogin), "{err:?}");
    assert!(err.is_auth_rejection());
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("not the password"));
    assert!(client.token().is_none());
    assert_eq!(sim.auth.failed_login_attempts(), 1);
}

#[tokio::test]
async fn six_failures_lock_logins_out() {
    let sim = start_sim(SimSetup {
        limits: AuthLimits {
            lockout: Duration::from_millis(1500),
            ..AuthLimits::default()
        },
        ..SimSetup::default()
    })
    .await;
    let client = sim.client();
    for attempt in 1..=6 {
        let err = client.login(&creds("wrong")).await.expect_err("wrong");
        assert!(
            matches!(err, RobotError::InvalidLogin),
            "attempt {attempt}: {err:?}"
        );
    }
    // Locked: even the right password is refused.
    let err = client.login(&creds(PASSWORD)).await.expect_err("locked");
    assert!(matches!(err, RobotError::LockedOut), "{err:?}");
    assert!(err.is_auth_rejection());
    assert!(err.to_string().contains("minute"));
    assert_eq!(sim.auth.failed_login_attempts(), 7);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    client.login(&creds(PASSWORD)).await.expect("unlocked");
}

#[tokio::test]
async fn list_services_reports_the_directory() {
    let sim = start_sim(SimSetup::default()).await;
    let client = sim.client();
    client.login(&creds(PASSWORD)).await.expect("login");
    let services = client.list_services().await.expect("list");
    let find = |name: &str| {
        services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {services:?}"))
    };
    let auth = find("auth");
    assert_eq!(auth.service_type, "bosdyn.api.AuthService");
    assert_eq!(auth.authority, "auth.spot.robot");
    assert!(!auth.user_token_required);
    assert_eq!(find("directory").authority, "api.spot.robot");
    let compositor = find("spot-cam-compositor");
    assert_eq!(
        compositor.service_type,
        "bosdyn.api.spot_cam.CompositorService"
    );
    assert_eq!(compositor.authority, "api.spot.robot");
    assert!(compositor.user_token_required);
    assert_eq!(
        find("spot-cam-stream-quality").service_type,
        "bosdyn.api.spot_cam.StreamQualityService"
    );
    assert_eq!(
        find("spot-cam-ptz").service_type,
        "bosdyn.api.spot_cam.PtzService"
    );
}

#[tokio::test]
async fn wait_for_services_follows_a_late_directory_and_its_authority() {
    let sim = start_sim(SimSetup {
        options: SimGrpcOptions {
            spot_cam_authority: "spot-cam.spot.robot".to_string(),
            services_delay: Duration::from_millis(1500),
            ..SimGrpcOptions::default()
        },
        ..SimSetup::default()
    })
    .await;
    let client = sim.client();
    client.login(&creds(PASSWORD)).await.expect("login");

    // Directory not consulted: the client falls back to api.spot.robot, where this robot has
    // no Spot CAM service, so the proxy answers 404.
    let err = client.list_screens().await.expect_err("fallback authority");
    match &err {
        RobotError::ServiceNotFound {
            authority, detail, ..
        } => {
            assert_eq!(authority.as_deref(), Some("api.spot.robot"));
            assert!(detail.contains("404"), "{detail}");
        }
        other => panic!("expected ServiceNotFound, got {other:?}"),
    }

    // Consulted but not registered yet.
    let early = client.list_services().await.expect("list");
    assert!(!early.iter().any(|s| s.name.starts_with("spot-cam")));
    assert!(matches!(
        client.get_screen().await,
        Err(RobotError::ServiceNotFound {
            authority: None,
            ..
        })
    ));

    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(10),
        client.wait_for_services(&SPOT_CAM_SERVICES, Duration::from_millis(200)),
    )
    .await
    .expect("services appeared in time")
    .expect("wait ok");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "returned before the services registered: {:?}",
        started.elapsed()
    );
    // Now routed to spot-cam.spot.robot, as the directory says.
    assert_eq!(client.get_screen().await.expect("screen"), "mech_full");
}

#[tokio::test]
async fn wait_for_services_stops_on_auth_errors() {
    let sim = start_sim(SimSetup {
        options: SimGrpcOptions {
            services_delay: Duration::from_secs(3600),
            ..SimGrpcOptions::default()
        },
        ..SimSetup::default()
    })
    .await;
    let client = sim.client();
    // Not logged in: the directory needs a token.
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        client.wait_for_services(&SPOT_CAM_SERVICES, Duration::from_millis(50)),
    )
    .await
    .expect("returned early")
    .expect_err("unauthenticated");
    assert!(matches!(err, RobotError::Unauthenticated), "{err:?}");
}

#[tokio::test]
async fn compositor_screens_and_visible_cameras() {
    let sim = start_sim(SimSetup::default()).await;
    let client = sim.client();
    client.login(&creds(PASSWORD)).await.expect("login");
    client
        .wait_for_services(&SPOT_CAM_SERVICES, Duration::from_millis(100))
        .await
        .expect("services");

    let screens = client.list_screens().await.expect("screens");
    assert!(screens.iter().any(|s| s == "mech_full"), "{screens:?}");
    assert!(screens.iter().any(|s| s == "pano_full"), "{screens:?}");
    assert_eq!(client.get_screen().await.expect("get"), "mech_full");

    let full = client.get_visible_cameras().await.expect("cameras");
    assert_eq!(full.len(), 1, "{full:?}");
    assert_eq!(full[0].name, "ptz:mech");
    assert_eq!(
        (full[0].window_width_px, full[0].window_height_px),
        (1280, 720)
    );
    assert!(full[0].resolution_px.is_some());

    assert_eq!(client.set_screen("mech").await.expect("set"), "mech");
    assert_eq!(client.get_screen().await.expect("get"), "mech");
    assert_eq!(sim.state.screen().name, "mech");
    let split = client.get_visible_cameras().await.expect("cameras");
    assert_eq!(split.len(), 2, "{split:?}");
    assert!(split.iter().any(|c| c.name.starts_with("pano:")));
    let total_height: i32 = split.iter().map(|c| c.window_height_px).sum();
    assert_eq!(total_height, 720);

    let err = client
        .set_screen("no_such_screen")
        .await
        .expect_err("unknown screen");
    match &err {
        RobotError::InvalidRequest { rpc, message } => {
            assert!(rpc.contains("SetScreen"));
            assert!(message.contains("no_such_screen"), "{message}");
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(client.get_screen().await.expect("unchanged"), "mech");
}

#[tokio::test]
async fn stream_params_partial_updates() {
    let sim = start_sim(SimSetup::default()).await;
    let client = sim.client();
    client.login(&creds(PASSWORD)).await.expect("login");

    let initial = client.get_stream_params().await.expect("get");
    assert_eq!(initial.target_bitrate_bps, Some(2_000_000));
    assert_eq!(initial.idr_interval_frames, Some(30));
    assert_eq!(initial.awb, Some(AwbMode::Auto));

    let applied = client
        .set_stream_params(&StreamParamsUpdate {
            target_bitrate_bps: Some(1_500_000),
            ..StreamParamsUpdate::default()
        })
        .await
        .expect("set bitrate");
    assert_eq!(applied.target_bitrate_bps, Some(1_500_000));
    assert_eq!(
        applied.idr_interval_frames,
        Some(30),
        "untouched field changed"
    );
    assert_eq!(sim.state.stream_params().target_bitrate_bps, 1_500_000);

    let applied = client
        .set_stream_params(&StreamParamsUpdate {
            idr_interval_frames: Some(10),
            awb: Some(AwbMode::Daylight),
            ..StreamParamsUpdate::default()
        })
        .await
        .expect("set idr");
    assert_eq!(applied.target_bitrate_bps, Some(1_500_000));
    assert_eq!(applied.idr_interval_frames, Some(10));
    assert_eq!(applied.awb, Some(AwbMode::Daylight));
    let state = sim.state.stream_params();
    assert_eq!(
        (state.idr_interval_frames, state.awb_mode),
        (10, AwbMode::Daylight as i32)
    );

    let err = client
        .set_stream_params(&StreamParamsUpdate {
            awb: Some(AwbMode::Off),
            ..StreamParamsUpdate::default()
        })
        .await
        .expect_err("awb off is rejected like on the CAM");
    assert!(matches!(err, RobotError::InvalidRequest { .. }), "{err:?}");
    assert_eq!(
        client.get_stream_params().await.expect("get").awb,
        Some(AwbMode::Daylight)
    );
}

#[tokio::test]
async fn ptz_clamps_and_moves_over_time() {
    let sim = start_sim(SimSetup::default()).await;
    let client = sim.client();
    client.login(&creds(PASSWORD)).await.expect("login");

    let ptzs = client.list_ptz().await.expect("list");
    let mech = ptzs.iter().find(|p| p.name == "mech").expect("mech listed");
    assert_eq!(mech.pan_limits_deg, Some((0.0, 360.0)));
    assert_eq!(mech.tilt_limits_deg, Some((-30.0, 100.0)));
    assert_eq!(mech.zoom_limits, Some((1.0, 30.0)));
    let digi = ptzs.iter().find(|p| p.name == "digi").expect("digi listed");
    assert_eq!(digi.pan_limits_deg, None);

    // Out-of-range target: clamped.
    let target = client
        .set_ptz_position("mech", Some(400.0), Some(-50.0), Some(2.0))
        .await
        .expect("set");
    assert_eq!(target.pan_deg, Some(360.0));
    assert_eq!(target.tilt_deg, Some(-30.0));
    assert_eq!(target.zoom, Some(2.0));

    // Back to a near target, then watch it move there at finite speed.
    client
        .set_ptz_position("mech", Some(0.0), Some(0.0), Some(1.0))
        .await
        .expect("home");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let home = client.get_ptz_position("mech").await.expect("get");
    assert!(home.pan_deg.expect("pan") < 1.0, "{home:?}");
    let target = client
        .set_ptz_position("mech", Some(45.0), None, None)
        .await
        .expect("set");
    assert_eq!(target.pan_deg, Some(45.0));
    let early = client.get_ptz_position("mech").await.expect("get");
    let early_pan = early.pan_deg.expect("pan");
    assert!(early_pan < 40.0, "jumped instantly: {early:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mid = client.get_ptz_position("mech").await.expect("get");
    let mid_pan = mid.pan_deg.expect("pan");
    assert!(mid_pan > early_pan, "did not move: {early:?} -> {mid:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let done = client.get_ptz_position("mech").await.expect("get");
    assert!((done.pan_deg.expect("pan") - 45.0).abs() < 0.01, "{done:?}");
    assert_eq!(done.name, "mech");

    let err = client
        .get_ptz_position("nope")
        .await
        .expect_err("unknown ptz");
    assert!(matches!(err, RobotError::InvalidRequest { .. }), "{err:?}");
}

#[tokio::test]
async fn raw_calls_need_a_valid_bearer_token() {
    let sim = start_sim(SimSetup::default()).await;
    let api = raw_channel(&sim, "api.spot.robot", "api.spot.robot");
    let mut compositor = cam::compositor_service_client::CompositorServiceClient::new(api.clone());

    let no_token = compositor
        .list_screens(with_bearer(
            cam::ListScreensRequest {
                header: request_header(),
            },
            None,
        ))
        .await
        .expect_err("no token");
    assert_eq!(no_token.code(), tonic::Code::Unauthenticated);
    let bad_token = compositor
        .list_screens(with_bearer(
            cam::ListScreensRequest {
                header: request_header(),
            },
            Some("Bearer not-a-token"),
        ))
        .await
        .expect_err("bad token");
    assert_eq!(bad_token.code(), tonic::Code::Unauthenticated);

    // The auth call takes the SDK's literal "Bearer None" (auth.spot.robot is CN-only here, so
    // log in through the client and reuse the token).
    let client = sim.client();
    let token = client.login(&creds(PASSWORD)).await.expect("login");
    let response = compositor
        .list_screens(with_bearer(
            cam::ListScreensRequest {
                header: request_header(),
            },
            Some(&format!("Bearer {}", token.expose())),
        ))
        .await
        .expect("valid token")
        .into_inner();
    let header = response.header.expect("header");
    assert_eq!(
        header.error.as_ref().map(|e| e.code),
        Some(pb::common_error::Code::Ok as i32)
    );
    assert_eq!(
        header
            .request_header
            .as_ref()
            .map(|h| h.client_name.as_str()),
        Some("raw_test_client"),
        "request header not echoed"
    );
    assert!(header.request_received_timestamp.is_some());
    assert!(header.response_timestamp.is_some());
    assert!(!response.screens.is_empty());

    // A service the directory does not list at this authority: the proxy's 404.
    let mut auth_on_api = pb::auth_service_client::AuthServiceClient::new(api);
    let status = auth_on_api
        .get_auth_token(login_request())
        .await
        .expect_err("auth is not on api.spot.robot");
    assert_eq!(status.code(), tonic::Code::Cancelled);
    assert!(status.message().starts_with("404"), "{}", status.message());

    // :authority must match the TLS SNI.
    let mismatched = raw_channel(&sim, "api.spot.robot", "auth.spot.robot");
    let status = pb::auth_service_client::AuthServiceClient::new(mismatched)
        .get_auth_token(login_request())
        .await
        .expect_err("misdirected");
    assert!(status.message().starts_with("421"), "{}", status.message());
}

#[tokio::test]
async fn auth_accepts_bearer_none_over_san_certificates() {
    let sim = start_sim(SimSetup {
        layout: CertLayout::SanOnly,
        ..SimSetup::default()
    })
    .await;
    let auth = raw_channel(&sim, "auth.spot.robot", "auth.spot.robot");
    let response = pb::auth_service_client::AuthServiceClient::new(auth)
        .get_auth_token(login_request())
        .await
        .expect("auth call")
        .into_inner();
    assert_eq!(
        response.status,
        pb::get_auth_token_response::Status::Ok as i32
    );
    assert!(sim.auth.is_valid_token(&response.token));
    // And the robot client works with SAN certificates everywhere.
    let client = sim.client();
    client.login(&creds(PASSWORD)).await.expect("login");
    client.list_screens().await.expect("screens");
}

#[tokio::test]
async fn cn_only_certificates_work_and_need_the_cn_fallback() {
    let sim = start_sim(SimSetup {
        layout: CertLayout::CnOnly,
        ..SimSetup::default()
    })
    .await;
    // A standard webpki verifier refuses CN-only certificates...
    let strict = raw_channel(&sim, "api.spot.robot", "api.spot.robot");
    let status = pb::directory_service_client::DirectoryServiceClient::new(strict)
        .list_service_entries(with_bearer(
            pb::ListServiceEntriesRequest {
                header: request_header(),
            },
            None,
        ))
        .await
        .expect_err("webpki rejects CN-only");
    let mut chain = format!("{status:?}");
    let mut source = std::error::Error::source(&status);
    while let Some(e) = source {
        chain.push_str(&format!(" / {e}"));
        source = e.source();
    }
    assert!(
        chain.contains("NotValidForName") || chain.contains("not valid for"),
        "{chain}"
    );
    // ...the robot client accepts them by CN, for every call.
    let client = sim.client();
    client.login(&creds(PASSWORD)).await.expect("login");
    client
        .wait_for_services(&SPOT_CAM_SERVICES, Duration::from_millis(100))
        .await
        .expect("directory");
    client.list_ptz().await.expect("ptz");
    client.refresh_token().await.expect("refresh");
}

#[tokio::test]
async fn wrong_root_ca_is_a_tls_error_naming_robot_ca_path() {
    let sim = start_sim(SimSetup::default()).await;
    // Another simulator's CA.
    let other_dir = temp_dir("other-ca");
    let other = SimCertificates::generate(&other_dir, &[], &[]).expect("other CA");
    let mut config = sim.config();
    config.root_ca_pem = Some(std::fs::read(other.ca_pem_path()).expect("read"));
    let client = RobotClient::new(config).expect("client");
    let err = client.login(&creds(PASSWORD)).await.expect_err("untrusted");
    match &err {
        RobotError::Tls {
            authority, reason, ..
        } => {
            assert_eq!(authority, "auth.spot.robot");
            assert!(
                reason.contains("not signed by the configured root CA"),
                "{reason}"
            );
        }
        other => panic!("expected Tls, got {other:?}"),
    }
    assert!(err.to_string().contains("robot_ca_path"), "{err}");
    assert!(!err.is_retryable());
    let _ = std::fs::remove_dir_all(&other_dir);

    // The embedded Boston Dynamics root does not trust the simulator either.
    let mut config = sim.config();
    config.root_ca_pem = None;
    let err = RobotClient::new(config)
        .expect("client")
        .login(&creds(PASSWORD))
        .await
        .expect_err("untrusted");
    assert!(matches!(err, RobotError::Tls { .. }), "{err:?}");
    assert_eq!(sim.auth.failed_login_attempts(), 0);
}

#[tokio::test]
async fn bad_config_and_unreachable_robot() {
    init_tracing();
    let mut config = RobotConfig::new("127.0.0.1");
    config.root_ca_pem = Some(b"not a pem".to_vec());
    assert!(matches!(
        RobotClient::new(config),
        Err(RobotError::InvalidConfig { .. })
    ));
    assert!(matches!(
        RobotClient::new(RobotConfig::new("")),
        Err(RobotError::InvalidConfig { .. })
    ));

    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut config = RobotConfig::new("127.0.0.1");
    config.grpc_port = port;
    config.connect_timeout = Duration::from_secs(2);
    let client = RobotClient::new(config).expect("client");
    assert_eq!(client.address(), format!("127.0.0.1:{port}"));
    let err = client
        .login(&creds(PASSWORD))
        .await
        .expect_err("unreachable");
    assert!(matches!(err, RobotError::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.is_auth_rejection());
}

#[tokio::test]
async fn calls_before_login_are_unauthenticated() {
    let sim = start_sim(SimSetup::default()).await;
    let client = sim.client();
    let err = client.list_services().await.expect_err("no token");
    assert!(matches!(err, RobotError::Unauthenticated), "{err:?}");
    let err = client.get_screen().await.expect_err("no token");
    assert!(matches!(err, RobotError::Unauthenticated), "{err:?}");
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_others_and_shutdown_is_prompt() {
    let sim = start_sim(SimSetup::default()).await;
    // A client that connects and never speaks TLS.
    let _stalled = TcpStream::connect(sim.addr).await.expect("connect");
    let client = sim.client();
    tokio::time::timeout(Duration::from_secs(3), client.login(&creds(PASSWORD)))
        .await
        .expect("not blocked by the stalled handshake")
        .expect("login");
    client.list_screens().await.expect("screens");
    // The client's connections stay open; shutdown must still be quick.
    let took = sim.shutdown().await;
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
}

/// The node spawns these futures on a multi-threaded runtime and shares the client.
#[allow(dead_code)]
fn client_and_futures_are_send_and_sync(client: &RobotClient, c: &Credentials) {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    send_sync(client);
    send(&client.login(c));
    send(&client.refresh_token());
    send(&client.wait_for_services(&SPOT_CAM_SERVICES, Duration::from_secs(1)));
    send(&client.list_services());
    send(&client.list_screens());
    send(&client.get_screen());
    send(&client.set_screen("mech"));
    send(&client.get_visible_cameras());
    send(&client.get_stream_params());
    send(&client.set_stream_params(&StreamParamsUpdate::default()));
    send(&client.list_ptz());
    send(&client.get_ptz_position("mech"));
    send(&client.set_ptz_position("mech", None, None, None));
}

#[tokio::test]
async fn get_service_entry_reports_known_and_unknown_services() {
    let sim = start_sim(SimSetup::default()).await;
    let token = sim.client().login(&creds(PASSWORD)).await.expect("login");
    let bearer = format!("Bearer {}", token.expose());
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(raw_channel(
        &sim,
        "api.spot.robot",
        "api.spot.robot",
    ));
    let known = directory
        .get_service_entry(with_bearer(
            pb::GetServiceEntryRequest {
                header: request_header(),
                service_name: "spot-cam-ptz".to_string(),
            },
            Some(&bearer),
        ))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(
        known.status,
        pb::get_service_entry_response::Status::Ok as i32
    );
    let entry = known.service_entry.expect("entry");
    assert_eq!(entry.authority, "api.spot.robot");
    assert!(entry.last_update.is_some());
    let unknown = directory
        .get_service_entry(with_bearer(
            pb::GetServiceEntryRequest {
                header: request_header(),
                service_name: "no-such-service".to_string(),
            },
            Some(&bearer),
        ))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(
        unknown.status,
        pb::get_service_entry_response::Status::NonexistentService as i32
    );
    assert!(unknown.service_entry.is_none());
}
