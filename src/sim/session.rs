//! One answered WebRTC session of the simulated camera: waits for the connection, then streams
//! the camera's frames to the peer until it leaves, a fault ends it, or the simulator stops.

use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;

use crate::camera_link::answerer::PeerState;
use crate::shutdown::CancellationToken;
use crate::sim::camera::CameraHandle;
use crate::sim::offerer::OffererPeer;

/// How long an answered peer may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Fault switches that change how sessions behave.
#[derive(Clone, Debug, Default)]
pub struct SessionFaults {
    /// Start each session on a non-IDR frame and do not force an IDR when a peer joins.
    pub join_mid_stream: bool,
    /// Ignore the peer's keyframe requests (PLI/FIR), as the Spot CAM may: pictures become
    /// decodable only at the encoder's own IDRs.
    pub ignore_keyframe_requests: bool,
    /// Close every peer connection after this long.
    pub drop_after: Option<Duration>,
    /// Vanish from the network this long after each peer connected: no more packets either
    /// way, no goodbye (a camera that loses power).
    pub vanish_after: Option<Duration>,
}

async fn wait_connected(peer: &OffererPeer, shutdown: &CancellationToken) -> bool {
    let mut state = peer.state();
    let connected = async {
        loop {
            match *state.borrow_and_update() {
                PeerState::Connected => return true,
                PeerState::Failed | PeerState::Closed => return false,
                _ => {}
            }
            if state.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => false,
        result = tokio::time::timeout(CONNECT_TIMEOUT, connected) => result.unwrap_or(false),
    }
}

/// Resolves at `at`, or never.
async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Streams to one peer; closes it at the end (after a vanish the goodbye goes nowhere).
pub async fn run(
    id: String,
    peer: OffererPeer,
    camera: CameraHandle,
    faults: SessionFaults,
    shutdown: CancellationToken,
) {
    // Subscribe before connecting so the encoder is already running when the peer is ready.
    let mut frames = camera.subscribe();
    if !wait_connected(&peer, &shutdown).await {
        tracing::info!(%id, "peer never connected; session closed");
        peer.close().await;
        return;
    }
    let connected_at = Instant::now();
    tracing::info!(%id, "peer connected; streaming");
    if !faults.join_mid_stream {
        camera.request_keyframe();
    }
    let mut skipping_to_non_idr = faults.join_mid_stream;
    let mut state = peer.state();
    let mut keyframe_requests = peer.keyframe_requests();
    let drop_timer = deadline(faults.drop_after.map(|d| connected_at + d));
    tokio::pin!(drop_timer);
    let vanish_timer = deadline(faults.vanish_after.map(|d| connected_at + d));
    tokio::pin!(vanish_timer);
    let mut frames_sent: u64 = 0;

    let reason = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break "simulator shutting down",
            () = &mut drop_timer => break "dropping the connection (--drop-after-secs)",
            () = &mut vanish_timer => {
                peer.vanish();
                break "vanished from the network without a goodbye (--vanish-after-secs)";
            }
            changed = state.changed() => {
                if changed.is_err() {
                    break "peer gone";
                }
                let now = state.borrow_and_update().clone();
                if matches!(now, PeerState::Failed | PeerState::Closed | PeerState::Disconnected) {
                    break "peer disconnected";
                }
            }
            changed = keyframe_requests.changed() => {
                if changed.is_ok() {
                    keyframe_requests.borrow_and_update();
                    if faults.ignore_keyframe_requests {
                        tracing::debug!(%id, "keyframe request ignored (--ignore-keyframe-requests)");
                    } else {
                        tracing::debug!(%id, "keyframe requested by the peer");
                        camera.request_keyframe();
                    }
                }
            }
            received = frames.recv() => match received {
                Ok(frame) => {
                    if skipping_to_non_idr {
                        if frame.is_idr {
                            continue;
                        }
                        skipping_to_non_idr = false;
                    }
                    if let Err(error) = peer.send_access_unit(&frame.data, frame.rtp_timestamp).await {
                        tracing::debug!(%id, %error, "could not send a frame");
                    } else {
                        frames_sent += 1;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(%id, skipped, "peer fell behind the encoder; frames skipped");
                }
                Err(RecvError::Closed) => break "camera stopped",
            },
        }
    };
    tracing::info!(%id, frames_sent, reason, link = %peer.link_summary(), "session ended");
    peer.close().await;
}
