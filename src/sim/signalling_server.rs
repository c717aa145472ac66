//! The simulated camera's WebRTC signalling endpoint: HTTPS `GET`/`POST /h264.sdp`.
//!
//! - `GET` with a valid `Authorization: Bearer <token>` creates an offerer peer and answers
//!   200 `{"id": "...", "sdp": "<base64 offer>"}`; without a valid token, 401.
//! - `POST` `{"id", "sdp": "<base64 answer>"}` completes that session: 200; an unknown or
//!   already used id, 404; malformed JSON, base64 or SDP, 400.
//! - While refusing (a fault switch), both answer 503.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::shutdown::CancellationToken;
use crate::sim::auth::AuthStore;
use crate::sim::camera::CameraHandle;
use crate::sim::offerer::{OffererConfig, OffererPeer};
use crate::sim::session::{self, SessionFaults};

/// An offer not answered within this time is withdrawn.
const PENDING_OFFER_TTL: Duration = Duration::from_secs(30);
/// Handshake and request deadline of one HTTPS connection.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the signalling endpoint and of the sessions it creates.
#[derive(Clone, Debug)]
pub struct SignallingConfig {
    /// Path of the endpoint, without the leading slash (`h264.sdp`).
    pub sdp_path: String,
    pub offerer: OffererConfig,
    pub faults: SessionFaults,
    /// Answer 503 to every request until this instant.
    pub refuse_until: Option<Instant>,
}

struct Pending {
    peer: OffererPeer,
    created: Instant,
}

struct Shared {
    config: SignallingConfig,
    auth: Arc<AuthStore>,
    camera: CameraHandle,
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
}

/// The signalling server stopped for a reason other than shutdown.
#[derive(Debug, thiserror::Error)]
pub enum SignallingServerError {
    #[error("the signalling listener failed: {0}")]
    Accept(#[source] std::io::Error),
}

#[derive(Deserialize)]
struct AnswerBody {
    id: serde_json::Value,
    sdp: String,
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

impl Shared {
    fn refusing(&self) -> bool {
        self.config
            .refuse_until
            .is_some_and(|until| Instant::now() < until)
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        bearer_token(headers).is_some_and(|token| self.auth.is_valid_token(token))
    }

    fn expire_pending(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<String> = pending
            .iter()
            .filter(|(_, p)| p.created.elapsed() > PENDING_OFFER_TTL)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(stale) = pending.remove(&id) {
                tracing::debug!(%id, "offer never answered; withdrawn");
                tokio::spawn(async move { stale.peer.close().await });
            }
        }
    }
}

impl Shared {
    /// 503 while refusing (`--refuse-signalling-secs`), 401 without a valid bearer token.
    fn admit(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        if self.refusing() {
            tracing::debug!("signalling refused (503, --refuse-signalling-secs)");
            return Err((StatusCode::SERVICE_UNAVAILABLE, "camera busy".to_string()));
        }
        if !self.authorised(headers) {
            let reason = "missing or invalid bearer token".to_string();
            return Err((StatusCode::UNAUTHORIZED, reason));
        }
        Ok(())
    }
}

async fn get_offer(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> (StatusCode, String) {
    if let Err(refusal) = shared.admit(&headers) {
        return refusal;
    }
    shared.expire_pending();
    let (peer, offer_sdp) = match OffererPeer::create(&shared.config.offerer).await {
        Ok(created) => created,
        Err(error) => {
            tracing::error!(%error, "could not create an offer");
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string());
        }
    };
    let id = format!("{}", shared.next_id.fetch_add(1, Ordering::Relaxed) + 1);
    shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            id.clone(),
            Pending {
                peer,
                created: Instant::now(),
            },
        );
    let body = serde_json::json!({
        "id": id,
        "sdp": base64::engine::general_purpose::STANDARD.encode(offer_sdp),
    });
    tracing::debug!(%id, "offer sent");
    (StatusCode::OK, body.to_string())
}

async fn post_answer(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if let Err(refusal) = shared.admit(&headers) {
        return refusal;
    }
    let Ok(answer) = serde_json::from_slice::<AnswerBody>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "body must be JSON {\"id\", \"sdp\"}".to_string(),
        );
    };
    let id = match &answer.id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let Ok(sdp_bytes) = base64::engine::general_purpose::STANDARD.decode(answer.sdp.trim()) else {
        return (
            StatusCode::BAD_REQUEST,
            "sdp is not valid base64".to_string(),
        );
    };
    let Ok(answer_sdp) = String::from_utf8(sdp_bytes) else {
        return (StatusCode::BAD_REQUEST, "sdp is not UTF-8".to_string());
    };
    if !answer_sdp.starts_with("v=0") {
        return (
            StatusCode::BAD_REQUEST,
            "sdp is not an SDP document".to_string(),
        );
    }
    let Some(pending) = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id)
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no pending offer with id {id}"),
        );
    };
    if let Err(error) = pending.peer.set_answer(&answer_sdp).await {
        tracing::warn!(%error, %id, "rejected an answer");
        pending.peer.close().await;
        return (StatusCode::BAD_REQUEST, format!("answer rejected: {error}"));
    }
    tracing::info!(%id, "WebRTC session answered; streaming once connected");
    tokio::spawn(session::run(
        id,
        pending.peer,
        shared.camera.clone(),
        shared.config.faults.clone(),
        shared.shutdown.clone(),
    ));
    (StatusCode::OK, String::new())
}

/// Serves the signalling endpoint until `shutdown` is cancelled; open sessions are closed too.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    config: SignallingConfig,
    auth: Arc<AuthStore>,
    camera: CameraHandle,
    shutdown: CancellationToken,
) -> Result<(), SignallingServerError> {
    let path = format!("/{}", config.sdp_path.trim_start_matches('/'));
    let shared = Arc::new(Shared {
        config,
        auth,
        camera,
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        shutdown: shutdown.clone(),
    });
    let router = Router::new()
        .route(&path, get(get_offer).post(post_answer))
        .with_state(shared.clone());
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted.map_err(SignallingServerError::Accept)?,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let connection_shutdown = shutdown.clone();
        tokio::spawn(with_deadline(connection_shutdown, async move {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %remote, "signalling TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, %remote, "signalling connection ended with an error");
            }
        }));
    }
    let pending: Vec<Pending> = shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .map(|(_, p)| p)
        .collect();
    for p in pending {
        p.peer.close().await;
    }
    Ok(())
}

/// Runs `task` until it ends or `shutdown` is cancelled.
async fn with_deadline(shutdown: CancellationToken, task: impl Future<Output = ()>) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        () = task => {}
    }
}
