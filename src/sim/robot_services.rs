//! The simulated robot's gRPC side: Auth, Directory and the Spot CAM Compositor, StreamQuality,
//! Ptz and Network services, behind a TLS listener that routes like the robot's proxy.
//!
//! Fidelity rules (see `shared/reference/spot-protocol.md` §2 and §5.4):
//!
//! - Every response header echoes the request header, sets the received/response timestamps and
//!   `error.code = CODE_OK`; invalid arguments (unknown screen or PTZ, AWB off, bad numbers) are
//!   answered with header `CODE_INVALID_REQUEST`, which the SDK raises as `InvalidRequestError`
//!   (this is how the CAM reportedly rejects AWB off).
//! - Routing by `:authority`, like the robot's proxy: a call whose service type the directory
//!   does not list at that authority (or not *yet*, for late Spot CAM services) is answered with
//!   gRPC `CANCELLED` and a message starting with `404`, which the SDK maps to `NotFoundError`.
//!   A `:authority` different from the TLS SNI is answered `CANCELLED` "421 Misdirected
//!   Request" (a client bug only; grpc-core always sends both the same).
//! - Calls to services with `user_token_required` (everything but auth) without a valid
//!   `authorization: Bearer <token>` are answered gRPC `UNAUTHENTICATED` ("401 ..."); the auth
//!   call accepts anything, including the SDK's `Bearer None`.
//! - Spot CAM services are on `api.spot.robot` by default, like spot_wrapper's mock directory
//!   (the real authority is unknown); [`SimGrpcOptions::spot_cam_authority`] changes it and
//!   [`SimGrpcOptions::services_delay`] makes them register late, like a payload after boot.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tonic::codegen::http;
use tonic::transport::Server;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};
use tower::{Layer, Service};

use super::auth::{AuthOutcome, AuthStore};
use super::state::{ScreenSpec, SimState};
use crate::proto::bosdyn::api as pb;
use crate::proto::bosdyn::api::spot_cam as cam;

/// Directory names and service types of everything the simulator serves.
pub const AUTH_SERVICE: (&str, &str) = ("auth", "bosdyn.api.AuthService");
pub const DIRECTORY_SERVICE: (&str, &str) = ("directory", "bosdyn.api.DirectoryService");
pub const COMPOSITOR_SERVICE: (&str, &str) = (
    "spot-cam-compositor",
    "bosdyn.api.spot_cam.CompositorService",
);
pub const STREAM_QUALITY_SERVICE: (&str, &str) = (
    "spot-cam-stream-quality",
    "bosdyn.api.spot_cam.StreamQualityService",
);
pub const PTZ_SERVICE: (&str, &str) = ("spot-cam-ptz", "bosdyn.api.spot_cam.PtzService");
pub const NETWORK_SERVICE: (&str, &str) =
    ("spot-cam-network", "bosdyn.api.spot_cam.NetworkService");

/// Authority of the auth service (hard-coded in the SDK).
pub const AUTH_AUTHORITY: &str = "auth.spot.robot";
/// Authority of the directory (hard-coded in the SDK).
pub const API_AUTHORITY: &str = "api.spot.robot";

/// A payload GUID for the simulated Spot CAM's directory entries.
const SPOT_CAM_PAYLOAD_GUID: &str = "5a1b0c2d-3e4f-4a5b-8c6d-7e8f90a1b2c3";
/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After shutdown is signalled, open connections get this long to finish before we return.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(700);

/// Options of the simulated gRPC robot.
#[derive(Clone, Debug)]
pub struct SimGrpcOptions {
    /// Authority the directory lists for the `spot-cam-*` services.
    pub spot_cam_authority: String,
    /// The `spot-cam-*` services register this long after start-up (0 = at once).
    pub services_delay: Duration,
    /// `SetPtzPosition` acts (and answers) only this long after it arrives: a slow link or a
    /// busy robot (0 = at once).
    pub ptz_command_delay: Duration,
    /// `SetPtzPosition` is refused (an invalid request) for a pan above this (degrees, the
    /// PTZ's convention): a stop the PTZ does not report in its limits.
    pub ptz_refuse_pan_above_deg: Option<f32>,
}

impl Default for SimGrpcOptions {
    fn default() -> Self {
        SimGrpcOptions {
            spot_cam_authority: API_AUTHORITY.to_string(),
            services_delay: Duration::ZERO,
            ptz_command_delay: Duration::ZERO,
            ptz_refuse_pan_above_deg: None,
        }
    }
}

impl SimGrpcOptions {
    /// Every authority the directory lists: pass these to `SimCertificates::generate`.
    pub fn authorities(&self) -> Vec<String> {
        let mut all = vec![
            AUTH_AUTHORITY.to_string(),
            API_AUTHORITY.to_string(),
            self.spot_cam_authority.to_ascii_lowercase(),
        ];
        all.sort();
        all.dedup();
        all
    }
}

/// Errors of [`serve_grpc`].
#[derive(Debug, thiserror::Error)]
pub enum SimGrpcError {
    #[error("the simulated robot's gRPC server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// Per-connection facts the handlers and the router can see (request extension).
#[derive(Clone, Debug)]
pub struct SimConnectInfo {
    pub remote_addr: Option<std::net::SocketAddr>,
    /// TLS SNI the client sent.
    pub sni: Option<String>,
}

/// A server-side TLS connection, with [`SimConnectInfo`] for tonic.
struct SimTlsIo {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: SimConnectInfo,
}

impl Connected for SimTlsIo {
    type ConnectInfo = SimConnectInfo;
    fn connect_info(&self) -> SimConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for SimTlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimTlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// ---------------------------------------------------------------------------------------------
// Directory
// ---------------------------------------------------------------------------------------------

struct Directory {
    started: Instant,
    services_delay: Duration,
    /// (entry, registers late)
    entries: Vec<(pb::ServiceEntry, bool)>,
}

impl Directory {
    fn new(options: &SimGrpcOptions) -> Self {
        let entry =
            |(name, service_type): (&str, &str), authority: &str, token: bool| pb::ServiceEntry {
                name: name.to_string(),
                service_type: Some(pb::service_entry::ServiceType::Type(
                    service_type.to_string(),
                )),
                authority: authority.to_string(),
                last_update: None,
                user_token_required: token,
                permission_required: String::new(),
                liveness_timeout_secs: 0.0,
                host_payload_guid: String::new(),
            };
        let cam_authority = options.spot_cam_authority.to_ascii_lowercase();
        let cam_entry = |service: (&str, &str)| {
            let mut e = entry(service, &cam_authority, true);
            e.host_payload_guid = SPOT_CAM_PAYLOAD_GUID.to_string();
            (e, true)
        };
        Directory {
            started: Instant::now(),
            services_delay: options.services_delay,
            entries: vec![
                (entry(AUTH_SERVICE, AUTH_AUTHORITY, false), false),
                (entry(DIRECTORY_SERVICE, API_AUTHORITY, true), false),
                cam_entry(COMPOSITOR_SERVICE),
                cam_entry(STREAM_QUALITY_SERVICE),
                cam_entry(PTZ_SERVICE),
                cam_entry(NETWORK_SERVICE),
            ],
        }
    }

    fn late_registered(&self) -> bool {
        self.started.elapsed() >= self.services_delay
    }

    /// Entries registered by now, with `last_update` = now.
    fn visible(&self) -> Vec<pb::ServiceEntry> {
        let late_ok = self.late_registered();
        let now = prost_types::Timestamp::from(SystemTime::now());
        self.entries
            .iter()
            .filter(|(_, late)| late_ok || !late)
            .map(|(e, _)| pb::ServiceEntry {
                last_update: Some(now),
                ..e.clone()
            })
            .collect()
    }

    /// The registered entry serving `service_type` at `authority`.
    fn route(&self, authority: &str, service_type: &str) -> Option<&pb::ServiceEntry> {
        let late_ok = self.late_registered();
        self.entries
            .iter()
            .filter(|(_, late)| late_ok || !late)
            .map(|(e, _)| e)
            .find(|e| {
                e.authority == authority
                    && matches!(&e.service_type,
                        Some(pb::service_entry::ServiceType::Type(t)) if t == service_type)
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Router: authority routing + bearer token check, like the robot's proxy
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct GateLayer {
    directory: Arc<Directory>,
    auth: Arc<AuthStore>,
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            directory: self.directory.clone(),
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
struct Gate<S> {
    inner: S,
    directory: Arc<Directory>,
    auth: Arc<AuthStore>,
}

impl<S> Gate<S> {
    fn check<B>(&self, req: &http::Request<B>) -> Result<(), Status> {
        // The whole `:authority` (HTTP/1-style `Host` as a fallback), port included: grpc-core
        // sends the bare authority name, so "api.spot.robot:443" would not be routed either.
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = req.uri().path();
        let service_type = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let sni = req
            .extensions()
            .get::<SimConnectInfo>()
            .and_then(|i| i.sni.as_deref());
        if let Some(sni) = sni.filter(|sni| !sni.eq_ignore_ascii_case(&authority)) {
            tracing::debug!(sni, %authority, path, "misdirected request");
            return Err(Status::cancelled(format!(
                "421 Misdirected Request: :authority {authority:?} differs from TLS SNI {sni:?}"
            )));
        }
        let Some(entry) = self.directory.route(&authority, service_type) else {
            tracing::debug!(%authority, path, "no such service at this authority (404)");
            return Err(Status::cancelled(format!(
                "404 Not Found: no service of type {service_type:?} is registered at authority \
                 {authority:?}"
            )));
        };
        if entry.user_token_required {
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !self.auth.is_valid_token(token) {
                tracing::debug!(%authority, path, "call without a valid user token (401)");
                return Err(Status::unauthenticated(
                    "401 Unauthorized: missing, expired or invalid user token",
                ));
            }
        }
        tracing::debug!(%authority, path, "gRPC call");
        Ok(())
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> Service<http::Request<B>> for Gate<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Err(status) = self.check(&req) {
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        // The ready service is the one in `self`; keep a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(req))
    }
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

fn now_ts() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

fn header(
    request: Option<pb::RequestHeader>,
    received: prost_types::Timestamp,
    code: pb::common_error::Code,
    message: String,
) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        request_header: request,
        request_received_timestamp: Some(received),
        response_timestamp: Some(now_ts()),
        error: Some(pb::CommonError {
            code: code as i32,
            message,
            data: None,
        }),
        request: None,
    })
}

/// `CODE_OK` header echoing the request header.
fn ok_header(
    request: Option<pb::RequestHeader>,
    received: prost_types::Timestamp,
) -> Option<pb::ResponseHeader> {
    header(request, received, pb::common_error::Code::Ok, String::new())
}

/// `CODE_INVALID_REQUEST` header: the SDK raises `InvalidRequestError`.
fn invalid_header(
    request: Option<pb::RequestHeader>,
    received: prost_types::Timestamp,
    message: impl Into<String>,
) -> Option<pb::ResponseHeader> {
    let message = message.into();
    tracing::debug!(%message, "answering CODE_INVALID_REQUEST");
    header(
        request,
        received,
        pb::common_error::Code::InvalidRequest,
        message,
    )
}

/// A setting the simulated camera keeps and reports back (it does not change the video).
struct Setting<T>(Mutex<T>);

impl<T: Clone> Setting<T> {
    fn new(value: T) -> Self {
        Setting(Mutex::new(value))
    }

    fn get(&self) -> T {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the value; `None` (the field was not set in the request) keeps it.
    fn set(&self, value: Option<T>) {
        if let Some(value) = value {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = value;
        }
    }
}

/// Writes a tonic service implementation from handlers of one shape: each gets the request
/// message and the time it was received, and returns the response message. Every simulated
/// call succeeds at the gRPC level; what went wrong is in the response header, as on the robot
/// (routing and authentication failures are the [`Gate`]'s).
macro_rules! handlers {
    (
        impl $($service:ident)::+ for $svc:ident, messages in $module:ident {
            $(
                fn $name:ident(&$this:ident, $req:ident: $request:ident, $received:ident)
                    -> $response:ident $body:block
            )*
        }
    ) => {
        #[tonic::async_trait]
        impl $($service)::+ for $svc {
            $(
                async fn $name(
                    &$this,
                    request: Request<$module::$request>,
                ) -> Result<Response<$module::$response>, Status> {
                    let $received = now_ts();
                    let $req = request.into_inner();
                    Ok(Response::new($body))
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// AuthService and DirectoryService
// ---------------------------------------------------------------------------------------------

struct AuthSvc {
    auth: Arc<AuthStore>,
}

handlers! {
impl pb::auth_service_server::AuthService for AuthSvc, messages in pb {
    fn get_auth_token(&self, req: GetAuthTokenRequest, received) -> GetAuthTokenResponse {
        use pb::get_auth_token_response::Status as AuthStatus;
        let outcome = if req.username.is_empty() && req.password.is_empty() && !req.token.is_empty()
        {
            self.auth.remint(&req.token)
        } else {
            self.auth.login(&req.username, &req.password)
        };
        let (status, token) = match outcome {
            AuthOutcome::Token(t) => (AuthStatus::Ok, t),
            AuthOutcome::InvalidLogin => (AuthStatus::InvalidLogin, String::new()),
            AuthOutcome::InvalidToken => (AuthStatus::InvalidToken, String::new()),
            AuthOutcome::LockedOut => (AuthStatus::TemporarilyLockedOut, String::new()),
        };
        pb::GetAuthTokenResponse {
            header: ok_header(req.header, received),
            status: status as i32,
            token,
        }
    }
}
}

struct DirectorySvc {
    directory: Arc<Directory>,
}

handlers! {
impl pb::directory_service_server::DirectoryService for DirectorySvc, messages in pb {
    fn get_service_entry(&self, req: GetServiceEntryRequest, received) -> GetServiceEntryResponse {
        use pb::get_service_entry_response::Status as EntryStatus;
        let entry = self
            .directory
            .visible()
            .into_iter()
            .find(|e| e.name == req.service_name);
        let status = if entry.is_some() {
            EntryStatus::Ok
        } else {
            EntryStatus::NonexistentService
        };
        pb::GetServiceEntryResponse {
            header: ok_header(req.header, received),
            status: status as i32,
            service_entry: entry,
        }
    }

    fn list_service_entries(&self, req: ListServiceEntriesRequest, received)
        -> ListServiceEntriesResponse {
        pb::ListServiceEntriesResponse {
            header: ok_header(req.header, received),
            service_entries: self.directory.visible(),
        }
    }
}
}

// ---------------------------------------------------------------------------------------------
// CompositorService
// ---------------------------------------------------------------------------------------------

/// A camera as GetVisibleCameras describes it.
struct CameraModel {
    name: &'static str,
    width_px: f64,
    height_px: f64,
    spherical: bool,
}

const PTZ_CAMERA: CameraModel = CameraModel {
    name: "ptz",
    width_px: 1920.0,
    height_px: 1080.0,
    spherical: false,
};
const PANO_CAMERA: CameraModel = CameraModel {
    name: "pano",
    width_px: 4800.0,
    height_px: 1200.0,
    spherical: true,
};
const RING_CAMERA_RESOLUTION_PX: (f64, f64) = (2464.0, 2056.0);

fn stream_entry(
    camera: &CameraModel,
    window_name: &str,
    (x, y, width, height): (u32, u32, u32, u32),
) -> cam::get_visible_cameras_response::Stream {
    use cam::camera::{Intrinsics, PinholeIntrinsics, SphericalLimits};
    let vec2 = |x: f64, y: f64| Some(pb::Vec2 { x, y });
    let intrinsics = if camera.spherical {
        Intrinsics::Spherical(SphericalLimits {
            min_angle: vec2(-180.0, 90.0),
            max_angle: vec2(180.0, -90.0),
        })
    } else {
        Intrinsics::Pinhole(PinholeIntrinsics {
            focal_length: vec2(camera.width_px * 0.9, camera.width_px * 0.9),
            center_point: vec2(camera.width_px / 2.0, camera.height_px / 2.0),
            ..Default::default()
        })
    };
    let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    cam::get_visible_cameras_response::Stream {
        window: Some(cam::get_visible_cameras_response::stream::Window {
            xoffset: to_i32(x),
            yoffset: to_i32(y),
            width: to_i32(width),
            height: to_i32(height),
        }),
        camera: Some(cam::Camera {
            name: format!("{}:{window_name}", camera.name),
            resolution: vec2(camera.width_px, camera.height_px),
            intrinsics: Some(intrinsics),
            // No extrinsics: the simulator has no body frame (base_tform_sensor unset).
            ..Default::default()
        }),
    }
}

/// Which cameras a screen shows, and where (the spot_ros screen descriptions: no adjective = a
/// view on top of the stitched 360 strip; `overlay` = large view with a small panorama drawn
/// over it; `full` = one view full screen).
fn visible_streams(screen: &ScreenSpec) -> Vec<cam::get_visible_cameras_response::Stream> {
    let (w, h) = (screen.width, screen.height);
    let full = (0, 0, w, h);
    let strip_h = h / 4;
    let overlay_h = h / 6;
    let name = screen.name.as_str();
    let view = if name.starts_with("mech") {
        Some((&PTZ_CAMERA, "mech"))
    } else if name.starts_with("digi") {
        Some((&PANO_CAMERA, "digi"))
    } else {
        None
    };
    match (view, name) {
        (Some((camera, window)), n) if n.contains("full") => {
            vec![stream_entry(camera, window, full)]
        }
        (Some((camera, window)), n) if n.contains("overlay") => vec![
            stream_entry(camera, window, full),
            stream_entry(&PANO_CAMERA, "pano", (0, h - overlay_h, w, overlay_h)),
        ],
        (Some((camera, window)), _) => vec![
            stream_entry(camera, window, (0, 0, w, h - strip_h)),
            stream_entry(&PANO_CAMERA, "pano", (0, h - strip_h, w, strip_h)),
        ],
        (None, "pano_full" | "pano") => vec![stream_entry(&PANO_CAMERA, "pano", full)],
        (None, ring) => {
            let ring_camera = CameraModel {
                name: "",
                width_px: RING_CAMERA_RESOLUTION_PX.0,
                height_px: RING_CAMERA_RESOLUTION_PX.1,
                spherical: false,
            };
            let mut s = stream_entry(&ring_camera, ring, full);
            if let Some(c) = s.camera.as_mut() {
                c.name = format!("{ring}:{ring}");
            }
            vec![s]
        }
    }
}

struct CompositorSvc {
    state: Arc<SimState>,
    ir_colormap: Setting<cam::IrColorMap>,
    ir_meter_overlay: Setting<cam::IrMeterOverlay>,
}

handlers! {
impl cam::compositor_service_server::CompositorService for CompositorSvc, messages in cam {
    fn set_screen(&self, req: SetScreenRequest, received) -> SetScreenResponse {
        match self.state.set_screen(&req.name) {
            Ok(spec) => {
                tracing::debug!(screen = %spec.name, "screen changed");
                cam::SetScreenResponse {
                    header: ok_header(req.header, received),
                    name: spec.name,
                }
            }
            Err(e) => cam::SetScreenResponse {
                header: invalid_header(req.header, received, e.to_string()),
                name: String::new(),
            },
        }
    }

    fn get_screen(&self, req: GetScreenRequest, received) -> GetScreenResponse {
        cam::GetScreenResponse {
            header: ok_header(req.header, received),
            name: self.state.screen().name,
        }
    }

    fn list_screens(&self, req: ListScreensRequest, received) -> ListScreensResponse {
        cam::ListScreensResponse {
            header: ok_header(req.header, received),
            screens: self
                .state
                .screens()
                .into_iter()
                .map(|s| cam::ScreenDescription { name: s.name })
                .collect(),
        }
    }

    fn get_visible_cameras(&self, req: GetVisibleCamerasRequest, received)
        -> GetVisibleCamerasResponse {
        cam::GetVisibleCamerasResponse {
            header: ok_header(req.header, received),
            streams: visible_streams(&self.state.screen()),
        }
    }

    fn set_ir_colormap(&self, req: SetIrColormapRequest, received) -> SetIrColormapResponse {
        self.ir_colormap.set(req.map);
        cam::SetIrColormapResponse { header: ok_header(req.header, received) }
    }

    fn get_ir_colormap(&self, req: GetIrColormapRequest, received) -> GetIrColormapResponse {
        let map = Some(self.ir_colormap.get());
        cam::GetIrColormapResponse { header: ok_header(req.header, received), map }
    }

    fn set_ir_meter_overlay(&self, req: SetIrMeterOverlayRequest, received)
        -> SetIrMeterOverlayResponse {
        self.ir_meter_overlay.set(req.overlay);
        cam::SetIrMeterOverlayResponse { header: ok_header(req.header, received) }
    }

    fn get_ir_meter_overlay(&self, req: GetIrMeterOverlayRequest, received)
        -> GetIrMeterOverlayResponse {
        let overlay = Some(self.ir_meter_overlay.get());
        cam::GetIrMeterOverlayResponse { header: ok_header(req.header, received), overlay }
    }
}
}

// ---------------------------------------------------------------------------------------------
// StreamQualityService
// ---------------------------------------------------------------------------------------------

struct StreamQualitySvc {
    state: Arc<SimState>,
    exposure: Setting<cam::stream_params::Exposure>,
    congestion_control: AtomicBool,
}

impl StreamQualitySvc {
    /// Applies valid requested parameters (what is unset stays).
    fn apply(&self, params: &cam::StreamParams) {
        let applied = self.state.update_stream_params(|s| {
            if let Some(bps) = params.targetbitrate {
                s.target_bitrate_bps = bps;
            }
            if let Some(frames) = params.refreshinterval {
                s.refresh_interval_frames = frames;
            }
            if let Some(frames) = params.idrinterval {
                s.idr_interval_frames = frames;
            }
            if let Some(awb) = &params.awb {
                s.awb_mode = awb.awb;
            }
        });
        self.exposure.set(params.exposure);
        tracing::debug!(?applied, "stream parameters changed");
    }

    fn current(&self) -> cam::StreamParams {
        let s = self.state.stream_params();
        cam::StreamParams {
            targetbitrate: Some(s.target_bitrate_bps),
            refreshinterval: Some(s.refresh_interval_frames),
            idrinterval: Some(s.idr_interval_frames),
            awb: Some(cam::stream_params::AwbMode { awb: s.awb_mode }),
            exposure: Some(self.exposure.get()),
        }
    }
}

/// Why a `SetStreamParams` request is invalid, if it is.
fn validate_stream_params(p: &cam::StreamParams) -> Option<String> {
    use cam::stream_params::AwbModeEnum;
    if let Some(bps) = p.targetbitrate.filter(|bps| *bps <= 0) {
        return Some(format!("targetbitrate must be positive, got {bps}"));
    }
    if let Some(frames) = p.refreshinterval.filter(|f| *f < 0) {
        return Some(format!(
            "refreshinterval must not be negative, got {frames}"
        ));
    }
    if let Some(frames) = p.idrinterval.filter(|f| *f < 0) {
        return Some(format!("idrinterval must not be negative, got {frames}"));
    }
    if let Some(awb) = &p.awb {
        match AwbModeEnum::try_from(awb.awb) {
            Ok(AwbModeEnum::Off) => {
                return Some("auto white balance cannot be turned off".to_string());
            }
            Ok(_) => {}
            Err(_) => return Some(format!("unknown awb mode {}", awb.awb)),
        }
    }
    None
}

handlers! {
impl cam::stream_quality_service_server::StreamQualityService
    for StreamQualitySvc, messages in cam {
    fn set_stream_params(&self, req: SetStreamParamsRequest, received) -> SetStreamParamsResponse {
        let params = req.params.unwrap_or_default();
        let header = match validate_stream_params(&params) {
            Some(reason) => invalid_header(req.header, received, reason),
            None => {
                self.apply(&params);
                ok_header(req.header, received)
            }
        };
        cam::SetStreamParamsResponse {
            header,
            params: Some(self.current()),
        }
    }

    fn get_stream_params(&self, req: GetStreamParamsRequest, received) -> GetStreamParamsResponse {
        cam::GetStreamParamsResponse {
            header: ok_header(req.header, received),
            params: Some(self.current()),
        }
    }

    fn enable_congestion_control(&self, req: EnableCongestionControlRequest, received)
        -> EnableCongestionControlResponse {
        self.congestion_control
            .store(req.enable_congestion_control, Ordering::Relaxed);
        cam::EnableCongestionControlResponse {
            header: ok_header(req.header, received),
        }
    }
}
}

// ---------------------------------------------------------------------------------------------
// PtzService
// ---------------------------------------------------------------------------------------------

struct PtzSvc {
    state: Arc<SimState>,
    focus: Setting<cam::PtzFocusState>,
    command_delay: Duration,
    refuse_pan_above_deg: Option<f32>,
}

fn limits_pb(limits: Option<(f32, f32)>) -> Option<cam::ptz_description::Limits> {
    // Unset limits are sent as an empty Limits message (the SDK prints it as 0/0).
    Some(match limits {
        Some((min, max)) => cam::ptz_description::Limits {
            min: Some(min),
            max: Some(max),
        },
        None => cam::ptz_description::Limits::default(),
    })
}

impl PtzSvc {
    /// Sets the target of the named PTZ; the position it will move to, or why not.
    fn move_to(&self, position: cam::PtzPosition) -> Result<cam::PtzPosition, String> {
        let name = requested_name(position.ptz.as_ref()).to_string();
        let values = [position.pan, position.tilt, position.zoom];
        if values.iter().flatten().any(|v| !v.is_finite()) {
            return Err("PTZ values must be finite".to_string());
        }
        if let (Some(pan), Some(stop)) = (position.pan, self.refuse_pan_above_deg)
            && pan > stop
        {
            tracing::info!(pan, stop, "SetPtzPosition refused: past the pan stop");
            return Err(format!("pan {pan}° is past the PTZ's stop at {stop}°"));
        }
        let unknown = || format!("unknown ptz {name:?}");
        let description = self.description(&name).ok_or_else(unknown)?;
        let target = self
            .state
            .set_ptz_target(&name, position.pan, position.tilt, position.zoom)
            .ok_or_else(unknown)?;
        tracing::debug!(ptz = %name, ?target, "PTZ target set");
        Ok(cam::PtzPosition {
            ptz: Some(description),
            pan: Some(target.pan_deg),
            tilt: Some(target.tilt_deg),
            zoom: Some(target.zoom),
        })
    }

    fn description(&self, name: &str) -> Option<cam::PtzDescription> {
        self.state
            .ptz_list()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| cam::PtzDescription {
                name: p.name,
                pan_limit: limits_pb(p.pan_limits_deg),
                tilt_limit: limits_pb(p.tilt_limits_deg),
                zoom_limit: limits_pb(p.zoom_limits),
            })
    }
}

fn requested_name(ptz: Option<&cam::PtzDescription>) -> &str {
    ptz.map(|d| d.name.as_str()).unwrap_or("")
}

handlers! {
impl cam::ptz_service_server::PtzService for PtzSvc, messages in cam {
    fn set_ptz_position(&self, req: SetPtzPositionRequest, received) -> SetPtzPositionResponse {
        if !self.command_delay.is_zero() {
            tokio::time::sleep(self.command_delay).await;
        }
        match self.move_to(req.position.unwrap_or_default()) {
            Ok(position) => cam::SetPtzPositionResponse {
                header: ok_header(req.header, received),
                position: Some(position),
            },
            Err(reason) => cam::SetPtzPositionResponse {
                header: invalid_header(req.header, received, reason),
                position: None,
            },
        }
    }

    fn get_ptz_position(&self, req: GetPtzPositionRequest, received) -> GetPtzPositionResponse {
        let name = requested_name(req.ptz.as_ref()).to_string();
        match (self.description(&name), self.state.ptz_position(&name)) {
            (Some(description), Some(pose)) => cam::GetPtzPositionResponse {
                header: ok_header(req.header, received),
                position: Some(cam::PtzPosition {
                    ptz: Some(description),
                    pan: Some(pose.pan_deg),
                    tilt: Some(pose.tilt_deg),
                    zoom: Some(pose.zoom),
                }),
            },
            _ => cam::GetPtzPositionResponse {
                header: invalid_header(req.header, received, format!("unknown ptz {name:?}")),
                position: None,
            },
        }
    }

    fn set_ptz_velocity(&self, req: SetPtzVelocityRequest, received) -> SetPtzVelocityResponse {
        let name = requested_name(req.velocity.as_ref().and_then(|v| v.ptz.as_ref())).to_string();
        cam::SetPtzVelocityResponse {
            header: invalid_header(
                req.header,
                received,
                format!("ptz {name:?} does not support velocity control; set a position instead"),
            ),
            velocity: None,
        }
    }

    fn get_ptz_velocity(&self, req: GetPtzVelocityRequest, received) -> GetPtzVelocityResponse {
        let name = requested_name(req.ptz.as_ref()).to_string();
        match self.description(&name) {
            Some(description) => cam::GetPtzVelocityResponse {
                header: ok_header(req.header, received),
                velocity: Some(cam::PtzVelocity {
                    ptz: Some(description),
                    pan: Some(0.0),
                    tilt: Some(0.0),
                    zoom: Some(0.0),
                }),
            },
            None => cam::GetPtzVelocityResponse {
                header: invalid_header(req.header, received, format!("unknown ptz {name:?}")),
                velocity: None,
            },
        }
    }

    fn list_ptz(&self, req: ListPtzRequest, received) -> ListPtzResponse {
        let ptzs = self
            .state
            .ptz_list()
            .into_iter()
            .map(|p| cam::PtzDescription {
                name: p.name,
                pan_limit: limits_pb(p.pan_limits_deg),
                tilt_limit: limits_pb(p.tilt_limits_deg),
                zoom_limit: limits_pb(p.zoom_limits),
            })
            .collect();
        cam::ListPtzResponse {
            header: ok_header(req.header, received),
            ptzs,
        }
    }

    fn initialize_lens(&self, req: InitializeLensRequest, received) -> InitializeLensResponse {
        cam::InitializeLensResponse {
            header: ok_header(req.header, received),
        }
    }

    fn set_ptz_focus_state(&self, req: SetPtzFocusStateRequest, received)
        -> SetPtzFocusStateResponse {
        self.focus.set(req.focus_state);
        cam::SetPtzFocusStateResponse { header: ok_header(req.header, received) }
    }

    fn get_ptz_focus_state(&self, req: GetPtzFocusStateRequest, received)
        -> GetPtzFocusStateResponse {
        let focus_state = Some(self.focus.get());
        cam::GetPtzFocusStateResponse { header: ok_header(req.header, received), focus_state }
    }
}
}

// ---------------------------------------------------------------------------------------------
// NetworkService
// ---------------------------------------------------------------------------------------------

struct NetworkSvc {
    ice_servers: Setting<Vec<cam::IceServer>>,
}

handlers! {
impl cam::network_service_server::NetworkService for NetworkSvc, messages in cam {
    fn set_ice_configuration(&self, req: SetIceConfigurationRequest, received)
        -> SetIceConfigurationResponse {
        self.ice_servers.set(Some(req.servers));
        cam::SetIceConfigurationResponse { header: ok_header(req.header, received) }
    }

    fn get_ice_configuration(&self, req: GetIceConfigurationRequest, received)
        -> GetIceConfigurationResponse {
        let servers = self.ice_servers.get();
        cam::GetIceConfigurationResponse { header: ok_header(req.header, received), servers }
    }
}
}

/// The STUN servers of the SDK's example `ice.json` (the robot on the payload network).
fn default_ice_servers() -> Vec<cam::IceServer> {
    use cam::ice_server::{Icetransport, Servertype};
    [3478u32, 3479]
        .into_iter()
        .map(|port| cam::IceServer {
            r#type: Servertype::Stun as i32,
            address: "192.168.50.3".to_string(),
            port,
            transport: Icetransport::TransportUdp as i32,
            auth: None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// Resolves once `stop` becomes true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Serves the simulated robot's gRPC API on `listener` with the default options (Spot CAM on
/// `api.spot.robot`, registered at once) until `shutdown` resolves.
pub async fn serve_grpc(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<SimState>,
    auth: Arc<AuthStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimGrpcError> {
    serve_grpc_with_options(
        listener,
        tls,
        state,
        auth,
        SimGrpcOptions::default(),
        shutdown,
    )
    .await
}

/// [`serve_grpc`] with explicit options. TLS handshakes run in their own tasks (one slow or
/// failed handshake never blocks others); after `shutdown` resolves, open connections are
/// closed gracefully and the function returns within about a second.
pub async fn serve_grpc_with_options(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<SimState>,
    auth: Arc<AuthStore>,
    options: SimGrpcOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimGrpcError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown_task = tokio::spawn(async move {
        shutdown.await;
        // Ignoring the error: nobody listening means the server already stopped.
        let _ = stop_tx.send(true);
    });

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            spot_cam_authority = %options.spot_cam_authority,
            services_delay_ms = options.services_delay.as_millis() as u64,
            "simulated robot gRPC API listening"
        );
    }

    // Accept loop: TCP accept here, TLS handshakes in their own tasks.
    let (conn_tx, conn_rx) = mpsc::channel::<Result<SimTlsIo, std::io::Error>>(32);
    let acceptor = TlsAcceptor::from(tls);
    let accept_stop = stop_rx.clone();
    let accept_task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stopped(accept_stop.clone()) => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a gRPC connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let conn_tx = conn_tx.clone();
            tokio::spawn(async move {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let sni = stream.get_ref().1.server_name().map(str::to_string);
                        tracing::debug!(%peer, ?sni, "gRPC TLS connection accepted");
                        let io = SimTlsIo {
                            inner: stream,
                            info: SimConnectInfo {
                                remote_addr: Some(peer),
                                sni,
                            },
                        };
                        // A closed channel means the server is shutting down.
                        let _ = conn_tx.send(Ok(io)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "gRPC TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "gRPC TLS handshake timed out");
                    }
                }
            });
        }
    });

    let directory = Arc::new(Directory::new(&options));
    let gate = GateLayer {
        directory: directory.clone(),
        auth: auth.clone(),
    };
    let router = Server::builder()
        .layer(gate)
        .add_service(pb::auth_service_server::AuthServiceServer::new(AuthSvc {
            auth: auth.clone(),
        }))
        .add_service(pb::directory_service_server::DirectoryServiceServer::new(
            DirectorySvc { directory },
        ))
        .add_service(
            cam::compositor_service_server::CompositorServiceServer::new(CompositorSvc {
                state: state.clone(),
                ir_colormap: Setting::new(cam::IrColorMap {
                    colormap: cam::ir_color_map::ColorMap::ColormapInferno as i32,
                    scale: Some(cam::ir_color_map::ScalingPair {
                        min: 0.0,
                        max: 100.0,
                    }),
                    auto_scale: Some(true),
                }),
                ir_meter_overlay: Setting::new(cam::IrMeterOverlay::default()),
            }),
        )
        .add_service(
            cam::stream_quality_service_server::StreamQualityServiceServer::new(StreamQualitySvc {
                state: state.clone(),
                exposure: Setting::new(cam::stream_params::Exposure::AutoExposure(
                    cam::stream_params::AutoExposure {},
                )),
                congestion_control: AtomicBool::new(false),
            }),
        )
        .add_service(cam::ptz_service_server::PtzServiceServer::new(PtzSvc {
            state,
            command_delay: options.ptz_command_delay,
            refuse_pan_above_deg: options.ptz_refuse_pan_above_deg,
            focus: Setting::new(cam::PtzFocusState {
                mode: cam::ptz_focus_state::PtzFocusMode::PtzFocusAuto as i32,
                focus_position: None,
                approx_distance: None,
            }),
        }))
        .add_service(cam::network_service_server::NetworkServiceServer::new(
            NetworkSvc {
                ice_servers: Setting::new(default_ice_servers()),
            },
        ));

    let incoming = tokio_stream::wrappers::ReceiverStream::new(conn_rx);
    let serve = router.serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone()));
    tokio::pin!(serve);
    let result = tokio::select! {
        result = &mut serve => result.map_err(SimGrpcError::Serve),
        _ = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::debug!("gRPC connections still open after the shutdown grace period; dropping them");
            Ok(())
        }
    };
    accept_task.abort();
    shutdown_task.abort();
    tracing::debug!(
        failed_login_attempts = auth.failed_login_attempts(),
        "simulated robot gRPC API stopped"
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(name: &str) -> ScreenSpec {
        ScreenSpec {
            name: name.to_string(),
            width: 1280,
            height: 720,
        }
    }

    #[test]
    fn layouts_cover_the_frame() {
        let full = visible_streams(&screen("mech_full"));
        assert_eq!(full.len(), 1);
        let camera = full[0].camera.as_ref().map(|c| c.name.as_str());
        assert_eq!(camera, Some("ptz:mech"));
        let split = visible_streams(&screen("digi"));
        assert_eq!(split.len(), 2);
        let heights: i32 = split
            .iter()
            .filter_map(|s| s.window.as_ref())
            .map(|w| w.height)
            .sum();
        assert_eq!(heights, 720);
        let ring = visible_streams(&screen("c2"));
        assert_eq!(
            ring[0].camera.as_ref().map(|c| c.name.as_str()),
            Some("c2:c2")
        );
    }

    #[test]
    fn stream_params_validation() {
        let mut p = cam::StreamParams {
            targetbitrate: Some(2_000_000),
            ..Default::default()
        };
        assert!(validate_stream_params(&p).is_none());
        p.awb = Some(cam::stream_params::AwbMode { awb: 0 });
        assert!(validate_stream_params(&p).is_some());
        p.awb = None;
        p.targetbitrate = Some(0);
        assert!(validate_stream_params(&p).is_some());
    }

    #[test]
    fn late_services_are_hidden_until_registered() {
        let dir = Directory::new(&SimGrpcOptions {
            spot_cam_authority: "cam.spot.robot".to_string(),
            services_delay: Duration::from_secs(3600),
            ..SimGrpcOptions::default()
        });
        assert_eq!(dir.visible().len(), 2);
        assert!(
            dir.route("auth.spot.robot", "bosdyn.api.AuthService")
                .is_some()
        );
        assert!(
            dir.route("cam.spot.robot", "bosdyn.api.spot_cam.PtzService")
                .is_none()
        );
        let now = Directory::new(&SimGrpcOptions {
            spot_cam_authority: "cam.spot.robot".to_string(),
            services_delay: Duration::ZERO,
            ..SimGrpcOptions::default()
        });
        assert!(
            now.route("cam.spot.robot", "bosdyn.api.spot_cam.PtzService")
                .is_some()
        );
        assert!(
            now.route("api.spot.robot", "bosdyn.api.spot_cam.PtzService")
                .is_none()
        );
    }
}
