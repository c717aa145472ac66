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

use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

pub use crate::camera_link::peer::PeerState;
use crate::camera_link::peer::{
    self, PeerSetupError, StateReporter, TrackHandler, watch_remote_close,
};
use crate::camera_link::port_range::{self, PortChoiceError, UdpPortRange};
use crate::camera_link::sdp::{media_sections, normalize_offer_directions};
use crate::camera_link::sockets::UdpBufferRuntime;

/// Configuration of the node-side answerer.
#[derive(Clone, Debug)]
pub struct AnswererConfig {
    /// Local UDP addresses to bind (`ip:port`). A wildcard (`0.0.0.0:0`) binds one socket per
    /// non-loopback interface; loopback tests must pass `127.0.0.1:0`.
    pub udp_bind_addrs: Vec<String>,
    /// The local UDP ports WebRTC may bind (`None`: any port the system gives). With a range,
    /// the addresses of [`udp_bind_addrs`](Self::udp_bind_addrs) must have port 0; each session
    /// binds all of them to one free port of the range ([`crate::camera_link::port_range`]).
    pub udp_port_range: Option<UdpPortRange>,
    /// Upper bound on waiting for ICE gathering to complete before the answer is returned.
    pub ice_gather_timeout: Duration,
    /// Kernel receive buffer asked for on each UDP socket (0 = system default); see
    /// [`crate::camera_link::sockets`].
    pub udp_receive_buffer_bytes: usize,
}

/// Default of [`AnswererConfig::udp_receive_buffer_bytes`]: room for the largest IDR bursts
/// at 1080p and high bitrates.
pub const DEFAULT_UDP_RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

impl Default for AnswererConfig {
    fn default() -> Self {
        Self {
            udp_bind_addrs: vec!["0.0.0.0:0".to_owned()],
            udp_port_range: None,
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

/// Failures of the node-side WebRTC session.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The media engine or the peer connection could not be set up.
    #[error(transparent)]
    Setup(#[from] PeerSetupError),
    /// No port of the configured UDP port range could be used.
    #[error(transparent)]
    Port(#[from] PortChoiceError),
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
        "the answer to the camera's offer would send video back to the camera (direction {0}), so it was not sent; the offer's video section has conflicting or unusual directions: report the offer (RUST_LOG=debug shows it) with the camera's firmware version"
    )]
    WouldSendVideo(String),
}

/// Shared counters of the session.
#[derive(Default, Debug)]
struct Counters {
    /// The answer has `ccm fir` for video: keyframe requests also carry an RTCP FIR.
    fir_negotiated: AtomicBool,
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

/// Hands the video track's packets to the stream task; drains audio.
struct TrackReceiver {
    rtp_tx: mpsc::Sender<ReceivedRtp>,
    counters: Arc<Counters>,
    video: VideoSlot,
    tasks: Arc<StdMutex<Vec<JoinHandle<()>>>>,
}

#[async_trait::async_trait]
impl TrackHandler for TrackReceiver {
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

/// Sends a keyframe request each time `notify` fires: an RTCP PLI, and in the same compound
/// packet an FIR (RFC 5104) when it was negotiated, for cameras that answer only one of them.
async fn send_plis(notify: Arc<Notify>, video: VideoSlot, counters: Arc<Counters>) {
    let mut fir_sequence_number: u8 = 0;
    loop {
        notify.notified().await;
        let current = video.lock().ok().and_then(|slot| slot.clone());
        let Some((track, media_ssrc)) = current else {
            debug!("keyframe requested before the video track exists; ignored");
            continue;
        };
        let mut requests: Vec<Box<dyn rtc::rtcp::Packet>> = vec![Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        })];
        let fir = counters.fir_negotiated.load(Ordering::Relaxed);
        if fir {
            requests.push(Box::new(FullIntraRequest {
                sender_ssrc: 0,
                media_ssrc,
                fir: vec![FirEntry {
                    ssrc: media_ssrc,
                    sequence_number: fir_sequence_number,
                }],
            }));
            fir_sequence_number = fir_sequence_number.wrapping_add(1);
        }
        match track.write_rtcp(requests).await {
            Ok(()) => debug!(media_ssrc, fir, "sent RTCP PLI (and FIR when negotiated)"),
            Err(err) => {
                warn!(%err, "could not send RTCP PLI; the peer connection is gone");
                return;
            }
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

/// What the answerer accepts: H.264 packetization-mode 1 in the profiles cameras offer, each
/// with RTX (used when the camera offers it; retransmissions then come on their own stream,
/// otherwise on the video stream itself), and the usual audio codecs (received and dropped).
pub fn answer_codecs() -> Vec<(RTCRtpCodec, u8, RtpCodecKind)> {
    let video = [
        ("42e01f", 102),
        ("42001f", 104),
        ("4d001f", 106),
        ("640032", 108),
    ];
    let mut codecs: Vec<_> = video
        .into_iter()
        .flat_map(|(profile_level_id, payload_type)| {
            [
                (
                    peer::h264_codec(profile_level_id),
                    payload_type,
                    RtpCodecKind::Video,
                ),
                (
                    peer::rtx_codec(payload_type),
                    payload_type + 1,
                    RtpCodecKind::Video,
                ),
            ]
        })
        .collect();
    codecs.extend([
        (
            peer::audio_codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1"),
            111,
            RtpCodecKind::Audio,
        ),
        (
            peer::audio_codec(MIME_TYPE_PCMU, 8_000, 0, ""),
            0,
            RtpCodecKind::Audio,
        ),
        (
            peer::audio_codec(MIME_TYPE_PCMA, 8_000, 0, ""),
            8,
            RtpCodecKind::Audio,
        ),
    ]);
    codecs
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

        let (me, registry) = peer::media_engine(&answer_codecs())?;
        let (reporter, state_rx, mut gathered_rx) = StateReporter::new("answerer");
        let state_tx = reporter.state_tx.clone();
        let counters = Arc::new(Counters::default());
        let video: VideoSlot = Arc::new(StdMutex::new(None));
        let tasks = Arc::new(StdMutex::new(Vec::new()));
        let tracks = TrackReceiver {
            rtp_tx,
            counters: Arc::clone(&counters),
            video: Arc::clone(&video),
            tasks: Arc::clone(&tasks),
        };
        let bind_addrs = match cfg.udp_port_range {
            Some(range) => port_range::choose_bind_addrs(&cfg.udp_bind_addrs, range).await?,
            None => cfg.udp_bind_addrs.clone(),
        };
        let runtime = Arc::new(
            UdpBufferRuntime::new(cfg.udp_receive_buffer_bytes).with_port_range(cfg.udp_port_range),
        );
        let pc = peer::build(me, registry, runtime, reporter, tracks, &bind_addrs).await?;

        let watchdog = tokio::spawn(watch_remote_close(Arc::clone(&pc), state_tx.clone()));
        if let Ok(mut t) = tasks.lock() {
            t.push(watchdog);
        }
        let pli_notify = Arc::new(Notify::new());
        let pli_task = tokio::spawn(send_plis(
            Arc::clone(&pli_notify),
            video,
            Arc::clone(&counters),
        ));
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

        self.counters
            .fir_negotiated
            .store(sdp.contains(" ccm fir"), Ordering::Relaxed);
        if sdp.contains(" rtx/90000") {
            info!("loss repair: NACK, with retransmissions on their own RTX stream (RFC 4588)");
        } else {
            info!("loss repair: NACK, with retransmissions on the video stream (no RTX offered)");
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
        peer::close("answerer", self.pc.as_ref(), &self.state_tx).await;
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
    fn drop(&mut self) {
        self.abort_tasks();
        peer::close_unless_closed("answerer", &self.pc, &self.closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
