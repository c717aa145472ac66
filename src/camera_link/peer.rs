//! The WebRTC peer-connection set-up shared by the node's answerer and the simulated camera
//! (webrtc 0.21): codecs and RTCP feedback, the media engine with the default interceptors,
//! building the peer connection, its state as a watch channel, and remote-close detection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder, Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_RTX, MediaEngine,
};
use rtc::peer_connection::transport::RTCDtlsTransportState;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, SettingEngine, SettingEngineBuilder,
};
use webrtc::runtime::Runtime;

/// How long [`close`] waits for the peer connection to shut down.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(900);
/// SRTP packets a retransmission may lag behind the newest one and still be accepted (a
/// 1080p IDR at 8 Mbit/s is several hundred packets).
const SRTP_REPLAY_WINDOW_PACKETS: usize = 2048;
/// How often the NACK generator asks for the packets still missing. The library's default
/// (100 ms) would spend much of the reorder wait before the first request; at 40 ms two
/// requests fit early in it on a Wi-Fi round trip. Shorter is worse, not better: the generator does
/// not know the round trip, so when the link queues (a capped link holds packets for 150 ms)
/// it asks again before the first retransmission can arrive, and every extra request is one
/// more copy queued on the link that is already too full.
const NACK_INTERVAL: Duration = Duration::from_millis(40);
/// NACKs per missing packet: a request and one more (the request or the retransmission may be
/// lost again), and no more: a busy camera's late answer (the default reorder wait, 250 ms,
/// covers it) must not be asked for over and over. Without a limit the generator asks again every interval for as
/// long as the packet is in its receive log (2048 packets: half a minute at a low bitrate), and
/// on a capped link those useless retransmissions take the capacity the video needs.
const NACKS_PER_PACKET: u16 = 2;
/// Packets the NACK generator tracks (a power of two): an 8 Mbit/s 1080p keyframe is several
/// hundred packets, and a loss at its start must still be asked for at its end.
const NACK_RECEIVE_LOG_PACKETS: u16 = 2048;
/// Packets the NACK responder keeps for retransmission (the simulated camera's history).
const NACK_SEND_BUFFER_PACKETS: u16 = 2048;
/// ICE consent (RFC 7675): a keepalive each second; no answer for 3 s is "disconnected",
/// 6 s more is "failed", which ends the session even when `stall_timeout_secs` is longer.
const ICE_KEEPALIVE: Duration = Duration::from_secs(1);
const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(3);
const ICE_FAILED_AFTER: Duration = Duration::from_secs(6);
/// How often [`watch_remote_close`] looks at the DTLS transport.
const REMOTE_CLOSE_POLL: Duration = Duration::from_millis(200);

/// Peer connection state, mirrored from the W3C `RTCPeerConnectionState`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Created, no connectivity attempted yet.
    New,
    /// ICE/DTLS in progress.
    Connecting,
    /// ICE and DTLS up; media can flow.
    Connected,
    /// Connectivity lost (no ICE consent for the disconnect timeout); may recover.
    Disconnected,
    /// Connectivity failed permanently; the session must be recreated.
    Failed,
    /// Closed locally or by the remote peer.
    Closed,
}

impl PeerState {
    /// Maps the library state; `None` for the library's `Unspecified`.
    pub fn from_rtc(state: RTCPeerConnectionState) -> Option<Self> {
        match state {
            RTCPeerConnectionState::New => Some(Self::New),
            RTCPeerConnectionState::Connecting => Some(Self::Connecting),
            RTCPeerConnectionState::Connected => Some(Self::Connected),
            RTCPeerConnectionState::Disconnected => Some(Self::Disconnected),
            RTCPeerConnectionState::Failed => Some(Self::Failed),
            RTCPeerConnectionState::Closed => Some(Self::Closed),
            _ => None,
        }
    }
}

/// The peer connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerSetupError {
    /// The media engine or interceptor registry could not be configured.
    #[error(
        "failed to configure the WebRTC media engine ({0}); this is a programming error, report it"
    )]
    MediaSetup(String),
    /// The peer connection could not be created (usually a socket bind failure).
    #[error(
        "failed to create the WebRTC peer connection on UDP {addrs:?}: {reason}; check that the addresses exist on this host and are not in use"
    )]
    PeerConnection {
        /// The addresses that were to be bound.
        addrs: Vec<String>,
        /// Library error text.
        reason: String,
    },
}

/// The RTCP feedback the Spot CAM offers for H.264: generic NACK, PLI and FIR.
pub fn h264_feedback() -> Vec<RTCPFeedback> {
    [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: typ.to_owned(),
            parameter: parameter.to_owned(),
        })
        .collect()
}

/// H.264, packetization-mode 1, with the given profile-level-id and [`h264_feedback`].
pub fn h264_codec(profile_level_id: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
        ),
        rtcp_feedback: h264_feedback(),
    }
}

/// RTX (RFC 4588) for the video codec of payload type `apt`: retransmissions on a stream of
/// their own, which the library unwraps into the original packets on receipt.
pub fn rtx_codec(apt: u8) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={apt}"),
        rtcp_feedback: vec![],
    }
}

/// An audio codec without RTCP feedback.
pub fn audio_codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// A media engine with `codecs` (codec, payload type, kind) and the library's default
/// interceptors (RTCP reports, TWCC receiver side, the simulcast header extensions), with
/// NACK generation and response tuned for a lossy link ([`NACK_INTERVAL`]), returned with the
/// registry to extend.
pub fn media_engine(
    codecs: &[(RTCRtpCodec, u8, RtpCodecKind)],
) -> Result<(MediaEngine, Registry), PeerSetupError> {
    let mut me = MediaEngine::default();
    for (codec, payload_type, kind) in codecs {
        let parameters = RTCRtpCodecParameters {
            rtp_codec: codec.clone(),
            payload_type: *payload_type,
        };
        me.register_codec(parameters, *kind)
            .map_err(|e| PeerSetupError::MediaSetup(e.to_string()))?;
    }
    // What `register_default_interceptors` does, with NACK settings of our own.
    let registry = Registry::new()
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new()
                .with_size(NACK_SEND_BUFFER_PACKETS)
                .build(),
        )
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_size(NACK_RECEIVE_LOG_PACKETS)
                .with_interval(NACK_INTERVAL)
                .with_max_nacks_per_packet(NACKS_PER_PACKET)
                .build(),
        );
    configure_simulcast_extension_headers(&mut me)
        .map_err(|e| PeerSetupError::MediaSetup(e.to_string()))?;
    let registry = configure_twcc_receiver_only(registry, &mut me)
        .map_err(|e| PeerSetupError::MediaSetup(e.to_string()))?;
    Ok((me, configure_rtcp_reports(registry)))
}

/// What a peer does with the remote tracks it gets; its other events go to a
/// [`StateReporter`].
#[async_trait::async_trait]
pub trait TrackHandler: Send + Sync + 'static {
    async fn on_track(&self, track: Arc<dyn TrackRemote>);
}

/// No media wanted: remote tracks are ignored (for peers that only negotiate, as the fuzz
/// harness of the camera's offer does).
#[async_trait::async_trait]
impl TrackHandler for () {
    async fn on_track(&self, _track: Arc<dyn TrackRemote>) {}
}

/// A peer's event handler: ICE gathering and connection state to the reporter, remote tracks
/// to the peer's [`TrackHandler`].
struct Events<T> {
    reporter: StateReporter,
    tracks: T,
}

#[async_trait::async_trait]
impl<T: TrackHandler> PeerConnectionEventHandler for Events<T> {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.reporter.gathering(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.reporter.connection(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.tracks.on_track(track).await;
    }
}

/// Settings both peers share:
///
/// - no multicast DNS: the Spot CAM's candidates are plain IP addresses, and the library's
///   default (`QueryOnly`) opens a multicast socket, which fails with `ENODEV` on a host
///   whose only interface is loopback (or has no multicast route);
/// - an SRTP replay window of [`SRTP_REPLAY_WINDOW_PACKETS`]: a retransmission the NACK
///   responder sends after a loss arrives hundreds of packets late during an IDR burst, and the
///   default window (64) would discard it as a replay;
/// - ICE consent checks every [`ICE_KEEPALIVE`], failed after [`ICE_DISCONNECTED_AFTER`] +
///   [`ICE_FAILED_AFTER`] without an answer.
fn setting_engine() -> SettingEngine {
    SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_srtp_replay_protection_window(SRTP_REPLAY_WINDOW_PACKETS)
        .with_ice_timeouts(
            Some(ICE_DISCONNECTED_AFTER),
            Some(ICE_FAILED_AFTER),
            Some(ICE_KEEPALIVE),
        )
        .build()
}

/// Builds a peer connection bound to `udp_addrs` whose events go to `reporter` and `tracks`.
pub async fn build(
    me: MediaEngine,
    registry: Registry,
    runtime: Arc<dyn Runtime>,
    reporter: StateReporter,
    tracks: impl TrackHandler,
    udp_addrs: &[String],
) -> Result<Arc<dyn PeerConnection>, PeerSetupError> {
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_setting_engine(setting_engine())
        .with_interceptor_registry(registry)
        .with_runtime(runtime)
        .with_handler(Arc::new(Events { reporter, tracks }))
        .with_udp_addrs(udp_addrs.to_vec())
        .build()
        .await
        .map_err(|e| PeerSetupError::PeerConnection {
            addrs: udp_addrs.to_vec(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(pc))
}

/// Where a peer's event handler reports ICE gathering and connection state.
pub struct StateReporter {
    /// Which peer, in log messages.
    pub role: &'static str,
    pub state_tx: watch::Sender<PeerState>,
    pub gathered_tx: watch::Sender<bool>,
}

impl StateReporter {
    /// A reporter with its state receiver and its "gathering complete" receiver.
    pub fn new(role: &'static str) -> (Self, watch::Receiver<PeerState>, watch::Receiver<bool>) {
        let (state_tx, state_rx) = watch::channel(PeerState::New);
        let (gathered_tx, gathered_rx) = watch::channel(false);
        let reporter = Self {
            role,
            state_tx,
            gathered_tx,
        };
        (reporter, state_rx, gathered_rx)
    }

    /// For `PeerConnectionEventHandler::on_ice_gathering_state_change`.
    pub fn gathering(&self, state: RTCIceGatheringState) {
        debug!(role = self.role, ?state, "ICE gathering state");
        if state == RTCIceGatheringState::Complete {
            self.gathered_tx.send_replace(true);
        }
    }

    /// For `PeerConnectionEventHandler::on_connection_state_change`. A close detected by
    /// [`watch_remote_close`] is final.
    pub fn connection(&self, state: RTCPeerConnectionState) {
        let Some(mapped) = PeerState::from_rtc(state) else {
            return;
        };
        match mapped {
            PeerState::Failed => warn!(role = self.role, "WebRTC peer connection failed"),
            PeerState::Disconnected => {
                warn!(role = self.role, "WebRTC peer connection disconnected")
            }
            _ => info!(role = self.role, state = ?mapped, "WebRTC peer connection state"),
        }
        self.state_tx.send_if_modified(|current| {
            if *current == PeerState::Closed || *current == mapped {
                return false;
            }
            *current = mapped;
            true
        });
    }
}

/// Publishes [`PeerState::Closed`] when the remote peer closes the DTLS transport.
///
/// webrtc 0.21 keeps the peer connection state `Connected` after the remote's `close_notify`
/// (W3C counts a closed DTLS transport as connected) and only reports `Disconnected` once ICE
/// consent expires (~5 s). The DTLS transport state does flip to `Closed` at once, so poll it.
pub async fn watch_remote_close(pc: Arc<dyn PeerConnection>, state_tx: watch::Sender<PeerState>) {
    let mut ticker = tokio::time::interval(REMOTE_CLOSE_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut transport = None;
    loop {
        ticker.tick().await;
        let current = state_tx.borrow().clone();
        match current {
            PeerState::Closed | PeerState::Failed => return,
            PeerState::New | PeerState::Connecting => continue,
            PeerState::Connected | PeerState::Disconnected => {}
        }
        if transport.is_none() {
            for receiver in pc.get_receivers().await {
                if let Ok(Some(t)) = receiver.transport().await {
                    transport = Some(t);
                    break;
                }
            }
            if transport.is_none() {
                for sender in pc.get_senders().await {
                    if let Ok(Some(t)) = sender.transport().await {
                        transport = Some(t);
                        break;
                    }
                }
            }
        }
        let Some(t) = transport.as_ref() else {
            continue;
        };
        match t.state().await {
            Ok(RTCDtlsTransportState::Closed) => {
                info!("the remote peer closed the connection (DTLS close_notify)");
                state_tx.send_replace(PeerState::Closed);
                return;
            }
            Ok(RTCDtlsTransportState::Failed) => {
                warn!("the DTLS transport failed");
                state_tx.send_replace(PeerState::Failed);
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Closes the peer connection (the remote sees DTLS `close_notify`) within 1 s and publishes
/// [`PeerState::Closed`].
pub async fn close(
    role: &'static str,
    pc: &dyn PeerConnection,
    state_tx: &watch::Sender<PeerState>,
) {
    match tokio::time::timeout(CLOSE_TIMEOUT, pc.close()).await {
        Ok(Ok(())) => debug!(role, "peer connection closed"),
        Ok(Err(err)) => warn!(role, %err, "closing the peer connection reported an error"),
        Err(_) => warn!(role, "closing the peer connection timed out; abandoning it"),
    }
    state_tx.send_if_modified(|s| {
        let changed = *s != PeerState::Closed;
        *s = PeerState::Closed;
        changed
    });
}

/// For a session's `Drop`: a peer connection that [`close`] did not close (`closed` false)
/// would leave the library's driver task and sockets alive, so it is closed in the background.
pub fn close_unless_closed(role: &'static str, pc: &Arc<dyn PeerConnection>, closed: &AtomicBool) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let pc = Arc::clone(pc);
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, pc.close()).await;
        });
    } else {
        warn!(
            role,
            "a peer connection was dropped outside a Tokio runtime; its sockets stay open"
        );
    }
}
