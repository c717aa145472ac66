//! Node-side WebRTC answerer for the Spot CAM H.264 stream (webrtc 0.21).
//!
//! The camera sends a complete (non-trickle) SDP offer with a `sendrecv` H.264 video m-line and
//! an audio m-line. [`AnswererSession::start`] applies it, answers with video and audio
//! `recvonly` (we never send media back), waits until ICE gathering is complete so every
//! candidate is inline, and hands back the complete answer SDP.
//!
//! Received video RTP goes to the caller's channel with `try_send`: the network path never
//! waits for the consumer. Audio is received (so the camera's audio sender is satisfied) and
//! dropped.

use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MediaEngine,
};
use rtc::peer_connection::transport::RTCDtlsTransportState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};

use crate::udp_runtime::UdpBufferRuntime;

/// How long [`AnswererSession::close`] waits for the peer connection to shut down.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(900);

/// Configuration of the node-side answerer.
#[derive(Clone, Debug)]
pub struct AnswererConfig {
    /// Local UDP addresses to bind (`ip:port`). A wildcard (`0.0.0.0:0`) binds one socket per
    /// non-loopback interface; loopback tests must pass `127.0.0.1:0`.
    pub udp_bind_addrs: Vec<String>,
    /// Upper bound on waiting for ICE gathering to complete before the answer is returned.
    pub ice_gather_timeout: Duration,
    /// Kernel receive buffer asked for on each UDP socket (0 = system default); see
    /// [`crate::udp_runtime`].
    pub udp_receive_buffer_bytes: usize,
}

/// Default of [`AnswererConfig::udp_receive_buffer_bytes`]: room for the largest IDR bursts
/// at 1080p and high bitrates.
pub const DEFAULT_UDP_RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

impl Default for AnswererConfig {
    fn default() -> Self {
        Self {
            udp_bind_addrs: vec!["0.0.0.0:0".to_owned()],
            ice_gather_timeout: Duration::from_secs(5),
            udp_receive_buffer_bytes: DEFAULT_UDP_RECEIVE_BUFFER_BYTES,
        }
    }
}

/// One received video RTP packet with the time it was taken off the peer connection.
#[derive(Debug, Clone)]
pub struct ReceivedRtp {
    /// The RTP packet (header + H.264 RTP payload, SRTP already removed).
    pub packet: rtc::rtp::Packet,
    /// Local monotonic time at which the packet was handed to this session.
    pub arrival: Instant,
}

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

/// Failures of the node-side WebRTC session.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
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
    /// The camera's offer was not valid SDP or could not be applied.
    #[error(
        "the camera's SDP offer could not be applied: {0}; check the signalling payload (base64-decoded SDP expected)"
    )]
    InvalidOffer(String),
    /// The offer has no H.264 video we can receive.
    #[error(
        "the camera's offer has no acceptable H.264 video (packetization-mode=1, Baseline/Constrained Baseline expected): {0}; check the camera stream settings"
    )]
    NoCompatibleVideo(String),
    /// Creating or applying the local answer failed.
    #[error("failed to create/apply the SDP answer: {0}; retry with a fresh offer")]
    Answer(String),
    /// ICE gathering did not complete in time.
    #[error(
        "ICE gathering did not complete within {timeout_ms} ms and no local candidate was gathered; check the UDP bind addresses / network interfaces"
    )]
    GatherTimeout {
        /// The configured timeout.
        timeout_ms: u128,
    },
    /// The generated answer would make us send media, which we must never do.
    #[error(
        "the generated answer would send video back to the camera (direction {0}); this is a bug in the answerer, report it"
    )]
    WouldSendVideo(String),
}

/// Shared counters of the session.
#[derive(Default, Debug)]
struct Counters {
    video_packets: AtomicU64,
    rtp_dropped: AtomicU64,
    audio_packets: AtomicU64,
}

/// The current video track and its SSRC, set once video RTP starts to flow.
type VideoSlot = Arc<StdMutex<Option<(Arc<dyn TrackRemote>, u32)>>>;

/// Handle for requesting a keyframe (RTCP PLI) from the camera.
#[derive(Clone, Debug)]
pub struct KeyframeRequester {
    notify: Arc<Notify>,
}

impl KeyframeRequester {
    /// Asks for a PLI to be sent for the current video SSRC. Never blocks; requests made while
    /// one is pending coalesce. A no-op until the video track exists.
    pub fn request(&self) {
        self.notify.notify_one();
    }
}

struct Handler {
    state_tx: watch::Sender<PeerState>,
    gathered_tx: watch::Sender<bool>,
    rtp_tx: mpsc::Sender<ReceivedRtp>,
    counters: Arc<Counters>,
    video: VideoSlot,
    tasks: Arc<StdMutex<Vec<JoinHandle<()>>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        debug!(?state, "answerer ICE gathering state");
        if state == RTCIceGatheringState::Complete {
            self.gathered_tx.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if let Some(mapped) = PeerState::from_rtc(state) {
            match mapped {
                PeerState::Failed => warn!("WebRTC peer connection failed"),
                PeerState::Disconnected => warn!("WebRTC peer connection disconnected"),
                _ => info!(state = ?mapped, "WebRTC peer connection state"),
            }
            self.state_tx.send_if_modified(|current| {
                // A remote close detected by the watchdog is final.
                if *current == PeerState::Closed || *current == mapped {
                    return false;
                }
                *current = mapped;
                true
            });
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let ssrc = track.ssrcs().await.first().copied();
        let codec = match ssrc {
            Some(s) => track.codec(s).await.map(|c| c.mime_type),
            None => None,
        };
        info!(?kind, ?ssrc, ?codec, "remote track started");
        let counters = Arc::clone(&self.counters);
        let handle = match kind {
            RtpCodecKind::Video => {
                if let Some(ssrc) = ssrc
                    && let Ok(mut slot) = self.video.lock()
                {
                    *slot = Some((Arc::clone(&track), ssrc));
                }
                let rtp_tx = self.rtp_tx.clone();
                tokio::spawn(forward_video(track, rtp_tx, counters))
            }
            RtpCodecKind::Audio => tokio::spawn(drop_audio(track, counters)),
            _ => tokio::spawn(async move {
                // Drain so the driver's per-track queue never fills.
                while track.poll().await.is_some() {}
            }),
        };
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(handle);
        }
    }
}

async fn forward_video(
    track: Arc<dyn TrackRemote>,
    rtp_tx: mpsc::Sender<ReceivedRtp>,
    counters: Arc<Counters>,
) {
    let mut dropping = false;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                counters.video_packets.fetch_add(1, Ordering::Relaxed);
                let item = ReceivedRtp {
                    packet,
                    arrival: Instant::now(),
                };
                match rtp_tx.try_send(item) {
                    Ok(()) => {
                        if dropping {
                            dropping = false;
                            warn!(
                                dropped_total = counters.rtp_dropped.load(Ordering::Relaxed),
                                "video RTP consumer caught up again"
                            );
                        }
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let total = counters.rtp_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        if !dropping {
                            dropping = true;
                            error!(
                                dropped_total = total,
                                "video RTP consumer is not keeping up; dropping packets"
                            );
                        } else {
                            debug!(dropped_total = total, "video RTP packet dropped");
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        // Nobody listens any more; keep draining so the driver does not log.
                        counters.rtp_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            TrackRemoteEvent::OnEnded => {
                info!("video track ended");
                break;
            }
            TrackRemoteEvent::OnError => {
                warn!("video track reported an error");
            }
            _ => {}
        }
    }
}

async fn drop_audio(track: Arc<dyn TrackRemote>, counters: Arc<Counters>) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(_) => {
                counters.audio_packets.fetch_add(1, Ordering::Relaxed);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

async fn send_plis(notify: Arc<Notify>, video: VideoSlot) {
    loop {
        notify.notified().await;
        let current = video.lock().ok().and_then(|slot| slot.clone());
        let Some((track, media_ssrc)) = current else {
            debug!("keyframe requested before the video track exists; ignored");
            continue;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        match track.write_rtcp(vec![Box::new(pli)]).await {
            Ok(()) => debug!(media_ssrc, "sent RTCP PLI"),
            Err(err) => {
                warn!(%err, "could not send RTCP PLI; the peer connection is gone");
                return;
            }
        }
    }
}

/// How often the DTLS transport is checked for a remote `close_notify`.
const REMOTE_CLOSE_POLL: Duration = Duration::from_millis(200);

/// Publishes [`PeerState::Closed`] when the remote peer closes the DTLS transport.
///
/// webrtc 0.21 keeps the peer connection state `Connected` after the remote's `close_notify`
/// (W3C counts a closed DTLS transport as connected) and only reports `Disconnected` once ICE
/// consent expires (~5 s). The DTLS transport state does flip to `Closed` at once, so poll it.
pub(crate) async fn watch_remote_close(
    pc: Arc<dyn PeerConnection>,
    state_tx: watch::Sender<PeerState>,
) {
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

/// Node-side answerer session; one per camera offer.
pub struct AnswererSession {
    pc: Arc<dyn PeerConnection>,
    state_rx: watch::Receiver<PeerState>,
    state_tx: watch::Sender<PeerState>,
    counters: Arc<Counters>,
    pli_notify: Arc<Notify>,
    tasks: Arc<StdMutex<Vec<JoinHandle<()>>>>,
    closed: AtomicBool,
}

fn h264(
    payload_type: u8,
    profile_level_id: &str,
    feedback: &[RTCPFeedback],
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
            ),
            rtcp_feedback: feedback.to_vec(),
        },
        payload_type,
    }
}

fn audio(
    payload_type: u8,
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

fn build_media_engine() -> Result<(MediaEngine, Registry), WebRtcError> {
    let feedback = [
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: "pli".to_owned(),
        },
        RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        },
    ];
    let mut me = MediaEngine::default();
    let codecs = [
        (h264(102, "42e01f", &feedback), RtpCodecKind::Video),
        (h264(104, "42001f", &feedback), RtpCodecKind::Video),
        (h264(106, "4d001f", &feedback), RtpCodecKind::Video),
        (h264(108, "640032", &feedback), RtpCodecKind::Video),
        (
            audio(111, MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1"),
            RtpCodecKind::Audio,
        ),
        (audio(0, MIME_TYPE_PCMU, 8_000, 0, ""), RtpCodecKind::Audio),
        (audio(8, MIME_TYPE_PCMA, 8_000, 0, ""), RtpCodecKind::Audio),
    ];
    for (codec, kind) in codecs {
        me.register_codec(codec, kind)
            .map_err(|e| WebRtcError::MediaSetup(e.to_string()))?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut me)
        .map_err(|e| WebRtcError::MediaSetup(e.to_string()))?;
    Ok((me, registry))
}

/// Adds `a=sendrecv` to audio/video m-sections that carry no direction attribute.
///
/// RFC 4566 makes `sendrecv` the default, but rtc 0.21 skips m-sections without an explicit
/// direction when it applies a remote offer, which would leave such a section unanswered.
pub fn normalize_offer_directions(sdp: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out: Vec<String> = Vec::new();
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut Vec<String>| {
        if section.is_empty() {
            return;
        }
        let is_av = section[0].starts_with("m=audio") || section[0].starts_with("m=video");
        let has_dir = section.iter().any(|l| {
            matches!(
                l.trim_end(),
                "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
            )
        });
        out.extend(section.iter().map(|l| (*l).to_owned()));
        if is_av && !has_dir {
            out.push("a=sendrecv".to_owned());
        }
        section.clear();
    };
    for line in sdp.lines() {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
            section.push(line);
        } else if section.is_empty() {
            out.push(line.to_owned());
        } else {
            section.push(line);
        }
    }
    flush(&mut section, &mut out);
    let mut joined = out
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(eol);
    joined.push_str(eol);
    joined
}

/// Direction attribute and port of each m-section of `kind` (`"video"`/`"audio"`).
pub fn media_sections(sdp: &str, kind: &str) -> Vec<(u16, Option<String>)> {
    let mut result = Vec::new();
    let mut current: Option<(u16, Option<String>)> = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            if let Some(done) = current.take() {
                result.push(done);
            }
            let mut parts = rest.split_whitespace();
            if parts.next() == Some(kind) {
                let port = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                current = Some((port, None));
            }
        } else if let Some((_, dir)) = current.as_mut()
            && let Some(d) = line.strip_prefix("a=")
            && matches!(d, "sendrecv" | "sendonly" | "recvonly" | "inactive")
        {
            *dir = Some(d.to_owned());
        }
    }
    if let Some(done) = current.take() {
        result.push(done);
    }
    result
}

impl AnswererSession {
    /// Applies the camera's offer, answers (video recvonly, audio accepted and dropped), waits
    /// for ICE gathering to complete, returns the complete answer SDP.
    ///
    /// Video RTP goes to `rtp_tx` via `try_send`; when the channel is full the packet is dropped
    /// and counted in [`rtp_dropped`](Self::rtp_dropped).
    pub async fn start(
        offer_sdp: &str,
        cfg: &AnswererConfig,
        rtp_tx: mpsc::Sender<ReceivedRtp>,
    ) -> Result<(Self, String), WebRtcError> {
        let offer_sdp = normalize_offer_directions(offer_sdp);
        let offered_video = media_sections(&offer_sdp, "video");
        if offered_video.is_empty() {
            return Err(WebRtcError::NoCompatibleVideo(
                "the offer has no m=video section".to_owned(),
            ));
        }

        let (me, registry) = build_media_engine()?;
        let (state_tx, state_rx) = watch::channel(PeerState::New);
        let (gathered_tx, mut gathered_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let video: VideoSlot = Arc::new(StdMutex::new(None));
        let tasks = Arc::new(StdMutex::new(Vec::new()));
        let handler = Arc::new(Handler {
            state_tx: state_tx.clone(),
            gathered_tx,
            rtp_tx,
            counters: Arc::clone(&counters),
            video: Arc::clone(&video),
            tasks: Arc::clone(&tasks),
        });

        let pc = PeerConnectionBuilder::new()
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_runtime(Arc::new(UdpBufferRuntime::new(
                cfg.udp_receive_buffer_bytes,
            )))
            .with_handler(handler)
            .with_udp_addrs(cfg.udp_bind_addrs.clone())
            .build()
            .await
            .map_err(|e| WebRtcError::PeerConnection {
                addrs: cfg.udp_bind_addrs.clone(),
                reason: e.to_string(),
            })?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let watchdog = tokio::spawn(watch_remote_close(Arc::clone(&pc), state_tx.clone()));
        if let Ok(mut t) = tasks.lock() {
            t.push(watchdog);
        }
        let pli_notify = Arc::new(Notify::new());
        let pli_task = tokio::spawn(send_plis(Arc::clone(&pli_notify), video));
        if let Ok(mut t) = tasks.lock() {
            t.push(pli_task);
        }
        let session = Self {
            pc: Arc::clone(&pc),
            state_rx,
            state_tx,
            counters,
            pli_notify,
            tasks,
            closed: AtomicBool::new(false),
        };

        let result = session.negotiate(&offer_sdp, cfg, &mut gathered_rx).await;
        match result {
            Ok(answer) => Ok((session, answer)),
            Err(err) => {
                session.close().await;
                Err(err)
            }
        }
    }

    async fn negotiate(
        &self,
        offer_sdp: &str,
        cfg: &AnswererConfig,
        gathered_rx: &mut watch::Receiver<bool>,
    ) -> Result<String, WebRtcError> {
        let offer = RTCSessionDescription::offer(offer_sdp.to_owned())
            .map_err(|e| WebRtcError::InvalidOffer(e.to_string()))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| WebRtcError::InvalidOffer(e.to_string()))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| WebRtcError::Answer(e.to_string()))?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|e| WebRtcError::Answer(e.to_string()))?;

        let gathered = tokio::time::timeout(cfg.ice_gather_timeout, gathered_rx.wait_for(|g| *g))
            .await
            .is_ok();
        let sdp = self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| WebRtcError::Answer("no local description after applying it".into()))?;
        if !gathered {
            if sdp.contains("a=candidate:") {
                warn!(
                    timeout_ms = cfg.ice_gather_timeout.as_millis(),
                    "ICE gathering did not complete in time; answering with the candidates gathered so far"
                );
            } else {
                return Err(WebRtcError::GatherTimeout {
                    timeout_ms: cfg.ice_gather_timeout.as_millis(),
                });
            }
        }

        let video = media_sections(&sdp, "video");
        if !video.iter().any(|(port, _)| *port != 0) {
            return Err(WebRtcError::NoCompatibleVideo(
                "the answer rejected every video m-line".to_owned(),
            ));
        }
        for (_, dir) in &video {
            if matches!(dir.as_deref(), Some("sendrecv") | Some("sendonly") | None) {
                return Err(WebRtcError::WouldSendVideo(
                    dir.clone()
                        .unwrap_or_else(|| "sendrecv (implicit)".to_owned()),
                ));
            }
        }
        Ok(sdp)
    }

    /// Current peer connection state (watch it to detect disconnects).
    pub fn state(&self) -> watch::Receiver<PeerState> {
        self.state_rx.clone()
    }

    /// Handle for sending RTCP PLI to the camera.
    pub fn keyframe_requester(&self) -> KeyframeRequester {
        KeyframeRequester {
            notify: Arc::clone(&self.pli_notify),
        }
    }

    /// Video RTP packets dropped because `rtp_tx` was full.
    pub fn rtp_dropped(&self) -> u64 {
        self.counters.rtp_dropped.load(Ordering::Relaxed)
    }

    /// Audio RTP packets received and dropped.
    pub fn audio_packets(&self) -> u64 {
        self.counters.audio_packets.load(Ordering::Relaxed)
    }

    /// Video RTP packets received (forwarded or dropped).
    pub fn video_packets(&self) -> u64 {
        self.counters.video_packets.load(Ordering::Relaxed)
    }

    /// Closes the peer connection (sends DTLS `close_notify`, so the camera notices at once);
    /// returns within 1 s.
    pub async fn close(self) {
        self.closed.store(true, Ordering::Relaxed);
        self.abort_tasks();
        match tokio::time::timeout(CLOSE_TIMEOUT, self.pc.close()).await {
            Ok(Ok(())) => debug!("answerer peer connection closed"),
            Ok(Err(err)) => warn!(%err, "closing the answerer peer connection reported an error"),
            Err(_) => warn!("closing the answerer peer connection timed out; abandoning it"),
        }
        self.state_tx.send_if_modified(|s| {
            let changed = *s != PeerState::Closed;
            *s = PeerState::Closed;
            changed
        });
    }

    fn abort_tasks(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

impl Drop for AnswererSession {
    /// A session dropped without [`close`](AnswererSession::close) would leave the library's
    /// driver task and sockets alive; close it in the background instead.
    fn drop(&mut self) {
        self.abort_tasks();
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, pc.close()).await;
            });
        } else {
            warn!("AnswererSession dropped outside a Tokio runtime; its sockets stay open");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER_NO_DIRECTION: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=rtpmap:102 H264/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=recvonly\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    #[test]
    fn missing_direction_becomes_sendrecv_only_for_media_sections() {
        let out = normalize_offer_directions(OFFER_NO_DIRECTION);
        assert_eq!(
            media_sections(&out, "video"),
            vec![(9, Some("sendrecv".to_owned()))]
        );
        // An explicit direction is kept, not duplicated.
        assert_eq!(
            media_sections(&out, "audio"),
            vec![(9, Some("recvonly".to_owned()))]
        );
        assert_eq!(out.matches("a=sendrecv").count(), 1);
        assert!(out.ends_with("\r\n"));
        assert!(!out.contains("\r\n\r\n"));
        // The data-channel section gets no media direction.
        let app = out.split("m=application").nth(1).unwrap_or_default();
        assert!(!app.contains("a=sendrecv"));
    }

    #[test]
    fn normalizing_is_idempotent() {
        let once = normalize_offer_directions(OFFER_NO_DIRECTION);
        assert_eq!(normalize_offer_directions(&once), once);
    }

    #[test]
    fn media_sections_reports_rejected_lines() {
        let sdp = "v=0\nm=video 0 UDP/TLS/RTP/SAVPF 0\na=inactive\nm=video 9 RTP 96\na=recvonly\n";
        assert_eq!(
            media_sections(sdp, "video"),
            vec![
                (0, Some("inactive".to_owned())),
                (9, Some("recvonly".to_owned()))
            ]
        );
        assert!(media_sections(sdp, "audio").is_empty());
    }

    #[tokio::test]
    async fn offer_without_video_is_rejected() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n";
        let (tx, _rx) = mpsc::channel(1);
        let cfg = AnswererConfig {
            udp_bind_addrs: vec!["127.0.0.1:0".to_owned()],
            ..AnswererConfig::default()
        };
        let result = AnswererSession::start(sdp, &cfg, tx).await;
        assert!(matches!(result, Err(WebRtcError::NoCompatibleVideo(_))));
    }

    #[tokio::test]
    async fn garbage_offer_is_reported_as_invalid() {
        let (tx, _rx) = mpsc::channel(1);
        let cfg = AnswererConfig {
            udp_bind_addrs: vec!["127.0.0.1:0".to_owned()],
            ..AnswererConfig::default()
        };
        let result = AnswererSession::start("m=video 9 nonsense\r\n", &cfg, tx).await;
        assert!(
            matches!(result, Err(WebRtcError::InvalidOffer(_))),
            "unexpected result: {:?}",
            result.err()
        );
    }
}
