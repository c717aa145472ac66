//! gRPC client for the Spot robot and its Spot CAM payload (ROS-free).
//!
//! What it does, in the order the node uses it:
//!
//! 1. [`RobotClient::login`]: `AuthService/GetAuthToken` on authority `auth.spot.robot`.
//! 2. [`RobotClient::wait_for_services`]: polls `DirectoryService/ListServiceEntries` on
//!    `api.spot.robot` until the Spot CAM services are registered, remembering their authorities.
//! 3. Spot CAM calls (compositor, stream quality, PTZ) on the authorities the directory gave.
//! 4. [`RobotClient::refresh_token`] every hour (the token lives 12 h).
//!
//! Every call goes to `host:grpc_port` over TLS with SNI and HTTP/2 `:authority` set to the
//! service authority, carries `authorization: Bearer <token>` (`Bearer None` before login, as
//! the SDK does) and a filled `RequestHeader`; every response must carry `CODE_OK` in its header.
//! One HTTP/2 channel per authority is cached and reconnects by itself.

mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod responses;
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::proto::bosdyn::api as pb;
use crate::proto::bosdyn::api::spot_cam as cam;

pub use error::RobotError;
use responses::{
    HasResponseHeader, check_header, ptz_info_from, ptz_pose_from, service_info_from,
    stream_params_from, visible_camera_from,
};
pub use tls::BOSDYN_ROOT_CA_PEM;

/// White-balance modes of `StreamParams.awb` (`AwbModeEnum` in `streamquality.proto`).
pub use crate::proto::bosdyn::api::spot_cam::stream_params::AwbModeEnum as AwbMode;

/// Authority of `AuthService` (hard-coded in the SDK, never looked up).
pub const AUTH_AUTHORITY: &str = "auth.spot.robot";
/// Authority of `DirectoryService` (hard-coded in the SDK).
pub const DIRECTORY_AUTHORITY: &str = "api.spot.robot";
/// Where Spot CAM services are called when the directory was never consulted.
pub const FALLBACK_SPOT_CAM_AUTHORITY: &str = "api.spot.robot";

/// Directory name of the Spot CAM compositor service.
pub const COMPOSITOR_SERVICE: &str = "spot-cam-compositor";
/// Directory name of the Spot CAM stream-quality service.
pub const STREAM_QUALITY_SERVICE: &str = "spot-cam-stream-quality";
/// Directory name of the Spot CAM PTZ service.
pub const PTZ_SERVICE: &str = "spot-cam-ptz";
/// The Spot CAM services the node needs before streaming.
pub const SPOT_CAM_SERVICES: [&str; 3] = [COMPOSITOR_SERVICE, STREAM_QUALITY_SERVICE, PTZ_SERVICE];

/// Environment variable holding the robot username (same name as the SDK examples).
pub const USERNAME_ENV: &str = "BOSDYN_CLIENT_USERNAME";
/// Environment variable holding the robot password (same name as the SDK examples).
pub const PASSWORD_ENV: &str = "BOSDYN_CLIENT_PASSWORD";

/// Largest message accepted from the robot (the SDK uses 100 MiB too).
const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

/// How to reach the robot.
#[derive(Clone)]
pub struct RobotConfig {
    /// Robot hostname or IP (the gRPC and WebRTC signalling host).
    pub host: String,
    /// gRPC TLS port, 443 on a real robot.
    pub grpc_port: u16,
    /// PEM root CA(s) the robot certificate must chain to; `None` = the embedded Boston Dynamics
    /// root CA ([`BOSDYN_ROOT_CA_PEM`]). Load a file with [`read_root_ca_pem`].
    pub root_ca_pem: Option<Vec<u8>>,
    /// Limit for TCP connect + TLS handshake.
    pub connect_timeout: Duration,
    /// Limit for one RPC once connected.
    pub rpc_timeout: Duration,
    /// `RequestHeader.client_name`; see [`default_client_name`].
    pub client_name: String,
}

impl RobotConfig {
    /// Defaults for a real robot: port 443, BD root CA, 5 s connect, 10 s per RPC.
    pub fn new(host: impl Into<String>) -> Self {
        RobotConfig {
            host: host.into(),
            grpc_port: 443,
            root_ca_pem: None,
            connect_timeout: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(10),
            client_name: default_client_name(),
        }
    }
}

impl fmt::Debug for RobotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotConfig")
            .field("host", &self.host)
            .field("grpc_port", &self.grpc_port)
            .field(
                "root_ca_pem",
                &match &self.root_ca_pem {
                    Some(pem) => format!("custom ({} bytes)", pem.len()),
                    None => "embedded Boston Dynamics root CA".to_string(),
                },
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("client_name", &self.client_name)
            .finish()
    }
}

/// `RequestHeader.client_name` shaped like the SDK's `<prefix><hostname>:<program>-<pid>`:
/// `spot_ptz_stream@<hostname>:<program>-<pid>`.
pub fn default_client_name() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string());
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "spot_ptz_stream".to_string());
    format!(
        "spot_ptz_stream@{hostname}:{program}-{}",
        std::process::id()
    )
}

/// Reads a PEM root CA file given as `robot_ca_path`.
pub fn read_root_ca_pem(path: &Path) -> Result<Vec<u8>, RobotError> {
    std::fs::read(path).map_err(|e| RobotError::CaFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Robot username and password. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: String, password: String) -> Self {
        Credentials { username, password }
    }

    /// Reads `BOSDYN_CLIENT_USERNAME` and `BOSDYN_CLIENT_PASSWORD`; an empty value counts as
    /// missing.
    pub fn from_env() -> Result<Self, RobotError> {
        let read = |variable: &'static str| {
            std::env::var(variable)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(RobotError::MissingCredentials { variable })
        };
        Ok(Credentials {
            username: read(USERNAME_ENV)?,
            password: read(PASSWORD_ENV)?,
        })
    }

    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A robot user token (a JWT on a real robot). `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// The raw token, e.g. for the `Authorization: Bearer` header of WebRTC signalling.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// e.g. `spot-cam-compositor`.
    pub name: String,
    /// e.g. `bosdyn.api.spot_cam.CompositorService`.
    pub service_type: String,
    /// e.g. `api.spot.robot`.
    pub authority: String,
    pub user_token_required: bool,
}

/// One camera visible in the composited stream (`GetVisibleCameras`).
#[derive(Clone, Debug, PartialEq)]
pub struct VisibleCamera {
    /// `camera:window`, e.g. `ptz:mech`.
    pub name: String,
    /// Window inside the stream frame, in stream pixels.
    pub window_x_px: i32,
    pub window_y_px: i32,
    pub window_width_px: i32,
    pub window_height_px: i32,
    /// The camera's native resolution the window scales to, when the robot reports it.
    pub resolution_px: Option<(u32, u32)>,
}

/// Stream-quality parameters as the robot reports them; `None` = not reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamParams {
    pub target_bitrate_bps: Option<i64>,
    pub refresh_interval_frames: Option<i64>,
    pub idr_interval_frames: Option<i64>,
    pub awb: Option<AwbMode>,
}

/// A partial stream-quality update: only `Some` fields are sent, the robot keeps the rest.
/// Real Spot CAMs reportedly reject `awb: Some(AwbMode::Off)` as an invalid request.
pub type StreamParamsUpdate = StreamParams;

/// One PTZ head and its limits; `None` limits mean "unset: every value valid".
#[derive(Clone, Debug, PartialEq)]
pub struct PtzInfo {
    pub name: String,
    pub pan_limits_deg: Option<(f32, f32)>,
    pub tilt_limits_deg: Option<(f32, f32)>,
    pub zoom_limits: Option<(f32, f32)>,
}

/// A PTZ position; axes the robot did not report are `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct PtzPose {
    pub name: String,
    pub pan_deg: Option<f32>,
    pub tilt_deg: Option<f32>,
    pub zoom: Option<f32>,
}

/// What the directory told us.
#[derive(Default)]
struct DirectoryCache {
    consulted: bool,
    by_name: HashMap<String, ServiceInfo>,
}

struct Inner {
    cfg: RobotConfig,
    address: String,
    tls: Arc<rustls::ClientConfig>,
    channels: Mutex<HashMap<String, Channel>>,
    token: RwLock<Option<Token>>,
    directory: RwLock<DirectoryCache>,
}

/// The robot client. Cheap to clone (an `Arc` inside); `Send + Sync`.
#[derive(Clone)]
pub struct RobotClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for RobotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotClient")
            .field("address", &self.inner.address)
            .field("logged_in", &self.token().is_some())
            .finish()
    }
}

/// Where a service's calls go.
#[derive(Clone, Copy, Debug)]
enum Route {
    /// Always this authority (auth and directory, hard-coded in the SDK).
    Fixed(&'static str),
    /// The authority the directory lists for this service name.
    Directory(&'static str),
}

/// A generated gRPC client of one Spot service, and where its calls go.
trait Service {
    const ROUTE: Route;
}

type Auth = pb::auth_service_client::AuthServiceClient<Channel>;
type Directory = pb::directory_service_client::DirectoryServiceClient<Channel>;
type Compositor = cam::compositor_service_client::CompositorServiceClient<Channel>;
type StreamQuality = cam::stream_quality_service_client::StreamQualityServiceClient<Channel>;
type Ptz = cam::ptz_service_client::PtzServiceClient<Channel>;

impl Service for Auth {
    const ROUTE: Route = Route::Fixed(AUTH_AUTHORITY);
}
impl Service for Directory {
    const ROUTE: Route = Route::Fixed(DIRECTORY_AUTHORITY);
}
impl Service for Compositor {
    const ROUTE: Route = Route::Directory(COMPOSITOR_SERVICE);
}
impl Service for StreamQuality {
    const ROUTE: Route = Route::Directory(STREAM_QUALITY_SERVICE);
}
impl Service for Ptz {
    const ROUTE: Route = Route::Directory(PTZ_SERVICE);
}

/// `rpc!(client, Compositor::set_screen, "SetScreen", request)`: one unary call of a generated
/// client through [`RobotClient::unary`], named as gRPC names it (`CompositorService/SetScreen`)
/// in logs and errors.
macro_rules! rpc {
    ($client:expr, $service:ident :: $method:ident, $name:literal, $request:expr) => {
        $client.unary(
            concat!(stringify!($service), "Service/", $name),
            <$service as Service>::ROUTE,
            $request,
            |channel, request| async move {
                $service::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .$method(request)
                    .await
            },
        )
    };
}

fn timestamp_now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

impl RobotClient {
    /// Validates the configuration and prepares TLS; does no I/O.
    pub fn new(cfg: RobotConfig) -> Result<Self, RobotError> {
        if cfg.host.trim().is_empty() {
            return Err(RobotError::InvalidConfig {
                reason: "the robot host is empty; set it to the robot's hostname or IP".to_string(),
            });
        }
        let tls = tls::client_config(cfg.root_ca_pem.as_deref().unwrap_or(BOSDYN_ROOT_CA_PEM))?;
        let host = cfg.host.trim();
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", cfg.grpc_port)
        } else {
            format!("{host}:{}", cfg.grpc_port)
        };
        Ok(RobotClient {
            inner: Arc::new(Inner {
                cfg,
                address,
                tls,
                channels: Mutex::new(HashMap::new()),
                token: RwLock::new(None),
                directory: RwLock::new(DirectoryCache::default()),
            }),
        })
    }

    /// `host:port` the client dials.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Logs in with username and password and stores the token for every later call.
    pub async fn login(&self, creds: &Credentials) -> Result<Token, RobotError> {
        let request = pb::GetAuthTokenRequest {
            header: self.header(),
            username: creds.username.clone(),
            password: creds.password.clone(),
            token: String::new(),
        };
        let token = self.get_auth_token(request).await?;
        tracing::info!(username = %creds.username, address = %self.inner.address, "logged in to the robot");
        Ok(token)
    }

    /// Re-mints the current token (`GetAuthToken{token}`), as the SDK's `TokenManager` does
    /// hourly, and stores the new one.
    pub async fn refresh_token(&self) -> Result<Token, RobotError> {
        let current = self.token().ok_or(RobotError::NotLoggedIn)?;
        let request = pb::GetAuthTokenRequest {
            header: self.header(),
            username: String::new(),
            password: String::new(),
            token: current.expose().to_string(),
        };
        let token = self.get_auth_token(request).await?;
        tracing::debug!("robot user token re-minted");
        Ok(token)
    }

    /// The current token, if logged in.
    pub fn token(&self) -> Option<Token> {
        self.inner
            .token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn get_auth_token(&self, request: pb::GetAuthTokenRequest) -> Result<Token, RobotError> {
        use pb::get_auth_token_response::Status;
        const RPC: &str = "AuthService/GetAuthToken";
        let reply = rpc!(self, Auth::get_auth_token, "GetAuthToken", request).await?;
        match Status::try_from(reply.status) {
            Ok(Status::Ok) if !reply.token.is_empty() => {
                let token = Token(Arc::from(reply.token.as_str()));
                *self.inner.token.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                Ok(token)
            }
            Ok(Status::Ok) => Err(RobotError::UnexpectedResponse {
                rpc: RPC,
                detail: "STATUS_OK without a token".to_string(),
            }),
            Ok(Status::InvalidLogin) => Err(RobotError::InvalidLogin),
            Ok(Status::InvalidToken) => Err(RobotError::InvalidToken),
            Ok(Status::TemporarilyLockedOut) => Err(RobotError::LockedOut),
            Ok(Status::Unknown) | Err(_) => Err(RobotError::UnexpectedResponse {
                rpc: RPC,
                detail: format!("unset or unknown status {}", reply.status),
            }),
        }
    }

    /// Every service in the robot's directory; also remembers their authorities.
    pub async fn list_services(&self) -> Result<Vec<ServiceInfo>, RobotError> {
        let request = pb::ListServiceEntriesRequest {
            header: self.header(),
        };
        let reply = rpc!(
            self,
            Directory::list_service_entries,
            "ListServiceEntries",
            request
        )
        .await?;
        let services: Vec<ServiceInfo> = reply
            .service_entries
            .into_iter()
            .map(service_info_from)
            .collect();
        let mut cache = self
            .inner
            .directory
            .write()
            .unwrap_or_else(|p| p.into_inner());
        cache.consulted = true;
        cache.by_name = services
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        Ok(services)
    }

    /// Polls `ListServiceEntries` every `poll_interval` until every name in `names` is listed,
    /// remembering their authorities. Logs once at INFO which services it is waiting for.
    ///
    /// Returns early with the error on auth rejections and other permanent failures (TLS,
    /// configuration); transient ones (network, timeouts) are logged and polled through.
    /// Cancel by dropping the future.
    pub async fn wait_for_services(
        &self,
        names: &[&str],
        poll_interval: Duration,
    ) -> Result<(), RobotError> {
        let mut announced = false;
        let mut polls: u64 = 0;
        loop {
            polls += 1;
            match self.list_services().await {
                Ok(services) => {
                    let missing: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| !services.iter().any(|s| s.name == *n))
                        .collect();
                    if missing.is_empty() {
                        if announced {
                            tracing::info!(services = ?names, "robot services registered");
                        }
                        return Ok(());
                    }
                    tracing::debug!(poll = polls, ?missing, "robot services still missing");
                    if !announced {
                        tracing::info!(
                            ?missing,
                            poll_interval_ms = poll_interval.as_millis() as u64,
                            "waiting for robot services to register in the directory \
                             (payloads such as Spot CAM register late after boot)"
                        );
                        announced = true;
                    }
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(poll = polls, error = %e, "listing robot services failed; retrying");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(poll_interval).await;
        }
    }

    /// Names of every compositor screen.
    pub async fn list_screens(&self) -> Result<Vec<String>, RobotError> {
        let request = cam::ListScreensRequest {
            header: self.header(),
        };
        let reply = rpc!(self, Compositor::list_screens, "ListScreens", request).await?;
        Ok(reply.screens.into_iter().map(|s| s.name).collect())
    }

    /// The screen currently composited into the stream.
    pub async fn get_screen(&self) -> Result<String, RobotError> {
        let request = cam::GetScreenRequest {
            header: self.header(),
        };
        let reply = rpc!(self, Compositor::get_screen, "GetScreen", request).await?;
        Ok(reply.name)
    }

    /// Switches the screen; returns the screen the robot actually uses. An unknown name is an
    /// [`RobotError::InvalidRequest`].
    pub async fn set_screen(&self, name: &str) -> Result<String, RobotError> {
        let request = cam::SetScreenRequest {
            header: self.header(),
            name: name.to_string(),
        };
        let reply = rpc!(self, Compositor::set_screen, "SetScreen", request).await?;
        Ok(reply.name)
    }

    /// The cameras visible in the stream and where they are drawn.
    pub async fn get_visible_cameras(&self) -> Result<Vec<VisibleCamera>, RobotError> {
        let request = cam::GetVisibleCamerasRequest {
            header: self.header(),
        };
        let reply = rpc!(
            self,
            Compositor::get_visible_cameras,
            "GetVisibleCameras",
            request
        )
        .await?;
        Ok(reply.streams.into_iter().map(visible_camera_from).collect())
    }

    /// The current stream-quality parameters.
    pub async fn get_stream_params(&self) -> Result<StreamParams, RobotError> {
        let request = cam::GetStreamParamsRequest {
            header: self.header(),
        };
        let reply = rpc!(
            self,
            StreamQuality::get_stream_params,
            "GetStreamParams",
            request
        )
        .await?;
        Ok(stream_params_from(reply.params))
    }

    /// Changes only the `Some` fields (sent as set wrapper fields, like the SDK); returns the
    /// parameters the robot reports as applied.
    pub async fn set_stream_params(
        &self,
        p: &StreamParamsUpdate,
    ) -> Result<StreamParams, RobotError> {
        let request = cam::SetStreamParamsRequest {
            header: self.header(),
            params: Some(cam::StreamParams {
                targetbitrate: p.target_bitrate_bps,
                refreshinterval: p.refresh_interval_frames,
                idrinterval: p.idr_interval_frames,
                awb: p.awb.map(|a| cam::stream_params::AwbMode { awb: a as i32 }),
                exposure: None,
            }),
        };
        let reply = rpc!(
            self,
            StreamQuality::set_stream_params,
            "SetStreamParams",
            request
        )
        .await?;
        Ok(stream_params_from(reply.params))
    }

    /// Every PTZ head and its limits.
    pub async fn list_ptz(&self) -> Result<Vec<PtzInfo>, RobotError> {
        let request = cam::ListPtzRequest {
            header: self.header(),
        };
        let reply = rpc!(self, Ptz::list_ptz, "ListPtz", request).await?;
        Ok(reply.ptzs.into_iter().map(ptz_info_from).collect())
    }

    /// Where the named PTZ head is now (it may still be moving).
    pub async fn get_ptz_position(&self, name: &str) -> Result<PtzPose, RobotError> {
        let request = cam::GetPtzPositionRequest {
            header: self.header(),
            ptz: Some(cam::PtzDescription {
                name: name.to_string(),
                ..Default::default()
            }),
        };
        let reply = rpc!(self, Ptz::get_ptz_position, "GetPtzPosition", request).await?;
        Ok(ptz_pose_from(name, reply.position))
    }

    /// Commands the named PTZ head; `None` axes are not sent. Returns the position the robot
    /// applied as its target (clamped to the limits); the head then moves there over time.
    pub async fn set_ptz_position(
        &self,
        name: &str,
        pan_deg: Option<f32>,
        tilt_deg: Option<f32>,
        zoom: Option<f32>,
    ) -> Result<PtzPose, RobotError> {
        let request = cam::SetPtzPositionRequest {
            header: self.header(),
            position: Some(cam::PtzPosition {
                ptz: Some(cam::PtzDescription {
                    name: name.to_string(),
                    ..Default::default()
                }),
                pan: pan_deg,
                tilt: tilt_deg,
                zoom,
            }),
        };
        let reply = rpc!(self, Ptz::set_ptz_position, "SetPtzPosition", request).await?;
        Ok(ptz_pose_from(name, reply.position))
    }

    /// The `RequestHeader` every request carries.
    fn header(&self) -> Option<pb::RequestHeader> {
        Some(pb::RequestHeader {
            request_timestamp: Some(timestamp_now()),
            client_name: self.inner.cfg.client_name.clone(),
            disable_rpc_logging: false,
        })
    }

    /// The authority of a directory service: as listed, or the fallback when the directory was
    /// never consulted.
    fn service_authority(&self, service: &str) -> Result<String, RobotError> {
        let cache = self
            .inner
            .directory
            .read()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(info) = cache.by_name.get(service) {
            return Ok(info.authority.clone());
        }
        if cache.consulted {
            return Err(RobotError::ServiceNotFound {
                service: service.to_string(),
                authority: None,
                detail: "the robot's directory does not list it".to_string(),
            });
        }
        tracing::debug!(
            service,
            authority = FALLBACK_SPOT_CAM_AUTHORITY,
            "directory not consulted yet; using the fallback authority"
        );
        Ok(FALLBACK_SPOT_CAM_AUTHORITY.to_string())
    }

    /// The cached channel for an authority, created lazily (no I/O until the first call).
    fn channel(&self, authority: &str) -> Result<Channel, RobotError> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(authority) {
            return Ok(channel.clone());
        }
        // The URI only sets `:scheme` and `:authority` on the wire; where we connect to is
        // decided by the connector below.
        let endpoint = Endpoint::from_shared(format!("https://{authority}")).map_err(|e| {
            RobotError::InvalidConfig {
                reason: format!("authority {authority:?} is not a valid URI host: {e}"),
            }
        })?;
        let address = self.inner.address.clone();
        let tls = self.inner.tls.clone();
        let connect_timeout = self.inner.cfg.connect_timeout;
        let dial_authority = authority.to_string();
        let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
            tls::dial(
                address.clone(),
                dial_authority.clone(),
                tls.clone(),
                connect_timeout,
            )
        });
        let channel = endpoint.connect_with_connector_lazy(connector);
        channels.insert(authority.to_string(), channel.clone());
        tracing::debug!(authority, address = %self.inner.address, "created gRPC channel");
        Ok(channel)
    }

    /// One unary call (through [`rpc!`]): the authority, bearer metadata, deadline, status
    /// mapping and header check.
    async fn unary<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        route: Route,
        message: Req,
        call: F,
    ) -> Result<Resp, RobotError>
    where
        F: FnOnce(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
        Resp: HasResponseHeader,
    {
        let authority = match route {
            Route::Fixed(authority) => authority.to_string(),
            Route::Directory(service) => self.service_authority(service)?,
        };
        let authority = authority.as_str();
        let channel = self.channel(authority)?;
        let rpc_timeout = self.inner.cfg.rpc_timeout;
        let mut request = tonic::Request::new(message);
        request.set_timeout(rpc_timeout);
        // The SDK sends the header on every call, literally "Bearer None" before login.
        let bearer = match self.token() {
            Some(token) => format!("Bearer {}", token.expose()),
            None => "Bearer None".to_string(),
        };
        let value = MetadataValue::try_from(bearer).map_err(|_| RobotError::InvalidConfig {
            reason: "the user token contains characters not allowed in a header".to_string(),
        })?;
        request.metadata_mut().insert("authorization", value);
        tracing::debug!(rpc, authority, "robot RPC");
        // The first call on a channel also connects, so allow for the connect time too.
        let limit = rpc_timeout + self.inner.cfg.connect_timeout;
        let response = match tokio::time::timeout(limit, call(channel, request)).await {
            Err(_) => {
                return Err(RobotError::Timeout {
                    what: format!("{rpc} on {authority}"),
                    timeout: limit,
                });
            }
            Ok(Err(status)) => {
                let err = RobotError::from_status(
                    &status,
                    rpc,
                    authority,
                    &self.inner.address,
                    rpc_timeout,
                );
                tracing::debug!(rpc, authority, error = %err, "robot RPC failed");
                return Err(err);
            }
            Ok(Ok(response)) => response.into_inner(),
        };
        check_header(rpc, response.response_header())?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_code(code: pb::common_error::Code) -> pb::ResponseHeader {
        pb::ResponseHeader {
            error: Some(pb::CommonError {
                code: code as i32,
                message: "why".to_string(),
                data: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn header_must_be_code_ok() {
        use pb::common_error::Code;
        assert!(check_header("R", Some(&with_code(Code::Ok))).is_ok());
        assert!(matches!(
            check_header("R", None),
            Err(RobotError::HeaderError { .. })
        ));
        assert!(matches!(
            check_header("R", Some(&pb::ResponseHeader::default())),
            Err(RobotError::HeaderError { .. })
        ));
        assert!(matches!(
            check_header("R", Some(&with_code(Code::Unspecified))),
            Err(RobotError::HeaderError { .. })
        ));
        assert!(matches!(
            check_header("R", Some(&with_code(Code::InvalidRequest))),
            Err(RobotError::InvalidRequest { .. })
        ));
        let internal = check_header("R", Some(&with_code(Code::InternalServerError)));
        assert!(matches!(&internal, Err(e) if e.is_retryable()));
    }

    #[test]
    fn secrets_are_redacted() {
        let creds = Credentials::new("user".to_string(), "hunter2".to_string());
        let shown = format!("{creds:?}");
        assert!(shown.contains("user") && !shown.contains("hunter2"));
        let token = Token(Arc::from("secret-token"));
        assert!(!format!("{token:?} {token}").contains("secret-token"));
        assert_eq!(token.expose(), "secret-token");
    }
}
