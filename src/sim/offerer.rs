//! The simulated Spot CAM's WebRTC offerer (webrtc 0.21): one per signalling session.
//!
//! Like the real camera it offers a `sendrecv` H.264 video m-line (packetization-mode=1,
//! profile-level-id 42e01f, nack / nack pli / ccm fir) and an Opus audio m-line, gathers every
//! ICE candidate before it returns the offer (non-trickle), packetizes H.264 itself so tests can
//! inject RTP loss, sends Opus silence, and counts the keyframe requests (PLI/FIR) it receives.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{Interceptor, Packet as InterceptorPacket, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use crate::camera_link::peer::{
    self, PeerSetupError, PeerState, StateReporter, TrackHandler, watch_remote_close,
};
use crate::camera_link::sockets::UdpBufferRuntime;
use crate::sim::link::{Link, LinkImpairments};

/// Payload type offered for H.264 (pm=1, 42e01f).
const H264_PAYLOAD_TYPE: u8 = 102;
/// Payload type offered for Opus.
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Size of the fixed RTP header, subtracted from the MTU to get the payload budget.
const RTP_HEADER_BYTES: usize = 12;
/// One 20 ms Opus frame of silence (TOC 0xF8: CELT FB 20 ms, mono, one frame).
const OPUS_SILENCE_FRAME: [u8; 3] = [0xF8, 0xFF, 0xFE];
/// Opus frame duration and its length in 48 kHz RTP ticks.
const OPUS_FRAME_MS: u64 = 20;
const OPUS_FRAME_TICKS: u32 = 960;
/// How long `create` waits for ICE gathering.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// Configuration of one simulated-camera peer.
#[derive(Clone, Debug)]
pub struct OffererConfig {
    /// Local UDP addresses to bind (`ip:port`); tests use `127.0.0.1:0`.
    pub udp_bind_addrs: Vec<String>,
    /// Probability in percent (0..=100) that each video RTP packet is dropped before sending
    /// (before the retransmission buffer: unrepairable).
    pub loss_percent: f64,
    /// What the network does to the packets after they are sent.
    pub link: LinkImpairments,
    /// Offer RTX (RFC 4588): retransmissions on a stream of their own.
    pub rtx: bool,
    /// Maximum RTP packet size (header + payload) for video.
    pub mtu_bytes: usize,
}

impl Default for OffererConfig {
    fn default() -> Self {
        Self {
            udp_bind_addrs: vec!["0.0.0.0:0".to_owned()],
            loss_percent: 0.0,
            link: LinkImpairments::default(),
            rtx: false,
            mtu_bytes: 1200,
        }
    }
}

/// Failures of the simulated camera's peer.
#[derive(Debug, thiserror::Error)]
pub enum OffererError {
    /// The media engine or the peer connection could not be set up.
    #[error(transparent)]
    Setup(#[from] PeerSetupError),
    /// A track could not be added.
    #[error("failed to add the simulated camera's {0} track; this is a bug, report it")]
    AddTrack(String),
    /// Creating or applying the offer failed.
    #[error("failed to create the simulated camera's SDP offer: {0}; retry the request")]
    Offer(String),
    /// ICE gathering did not finish.
    #[error(
        "the simulated camera gathered no ICE candidate within {timeout_ms} ms; check the bind addresses"
    )]
    GatherTimeout {
        /// The timeout applied.
        timeout_ms: u128,
    },
    /// The client's answer was rejected.
    #[error(
        "the client's SDP answer was rejected: {0}; the client must answer this session's offer"
    )]
    InvalidAnswer(String),
    /// Media was sent before the answer was applied.
    #[error("cannot send video before the client's answer has been applied; call set_answer first")]
    NotNegotiated,
    /// The access unit could not be packetized.
    #[error("failed to packetize the H.264 access unit: {0}; pass Annex-B data")]
    Packetize(String),
    /// The peer connection is closed or failed.
    #[error("the WebRTC session is closed or failed; the client must fetch a new offer")]
    Closed,
    /// Writing to the track failed (peer connection closed).
    #[error("failed to send video RTP: {0}; the peer connection is closed, create a new session")]
    Send(String),
}

/// Interceptor that counts inbound RTCP keyframe requests (PLI and FIR) addressed to our video
/// SSRC and passes every packet through unchanged.
struct KeyframeRequestCounter {
    video_ssrc: u32,
    count_tx: Arc<watch::Sender<u64>>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestCounter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let InterceptorPacket::Rtcp(packets) = &msg.message.packet {
            let video_ssrc = self.video_ssrc;
            // One request per RTCP compound packet, however it asks (PLI, FIR or both).
            let requests = u64::from(packets.iter().any(|p| {
                let any = p.as_any();
                if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                    pli.media_ssrc == video_ssrc
                } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                    fir.fir.iter().any(|entry| entry.ssrc == video_ssrc)
                } else {
                    false
                }
            }));
            if requests > 0 {
                debug!(requests, "keyframe request received");
                self.count_tx.send_modify(|c| *c += requests);
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestCounter {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Counts the media a client sends back.
struct ReturnMediaCounter {
    received_media_packets: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl TrackHandler for ReturnMediaCounter {
    /// The real camera offers `sendrecv`, so a client may send media back (the official aiortc
    /// client does). Count it, so tests can tell whether a client echoes media.
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        info!(?kind, "the client is sending media to the simulated camera");
        let counter = Arc::clone(&self.received_media_packets);
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(_) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

/// Small xorshift generator for loss injection (no external RNG needed).
struct XorShift(u64);

impl XorShift {
    fn seeded() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        Self(h.finish() | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [0, 100).
    fn percent(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

struct VideoSend {
    payloader: H264Payloader,
    sequence_number: u16,
    payload_type: Option<u8>,
    rng: XorShift,
}

/// The simulated camera's peer connection.
pub struct OffererPeer {
    pc: Arc<dyn PeerConnection>,
    cfg: OffererConfig,
    video_track: Arc<TrackLocalStaticRTP>,
    video_sender: Arc<dyn RtpSender>,
    video_ssrc: u32,
    audio_track: Arc<TrackLocalStaticRTP>,
    audio_sender: Arc<dyn RtpSender>,
    audio_ssrc: u32,
    video: Mutex<VideoSend>,
    audio_task: StdMutex<Option<JoinHandle<()>>>,
    watchdog: JoinHandle<()>,
    closed: AtomicBool,
    received_media_packets: Arc<AtomicU64>,
    state_tx: watch::Sender<PeerState>,
    state_rx: watch::Receiver<PeerState>,
    keyframe_rx: watch::Receiver<u64>,
    link: Link,
}

fn local_track(
    kind: RtpCodecKind,
    codec: &RTCRtpCodec,
    ssrc: u32,
    rtx_ssrc: Option<u32>,
) -> MediaStreamTrack {
    let name = match kind {
        RtpCodecKind::Video => "video",
        _ => "audio",
    };
    MediaStreamTrack::new(
        "spot-cam".to_owned(),
        format!("spot-cam-{name}"),
        format!("spot-cam-{name}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                ..Default::default()
            },
            codec: codec.clone(),
            ..Default::default()
        }],
    )
}

async fn negotiated_payload_type(sender: &Arc<dyn RtpSender>) -> Option<u8> {
    sender
        .get_parameters()
        .await
        .ok()?
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
}

async fn send_opus_silence(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    mut state_rx: watch::Receiver<PeerState>,
) {
    // Before DTLS completes there are no SRTP keys and the library would log every packet.
    if state_rx
        .wait_for(|s| *s != PeerState::New && *s != PeerState::Connecting)
        .await
        .map(|s| *s != PeerState::Connected)
        .unwrap_or(true)
    {
        return;
    }
    let mut rng = XorShift::seeded();
    let mut sequence_number = rng.next_u32() as u16;
    let mut timestamp = rng.next_u32();
    let mut ticker = tokio::time::interval(Duration::from_millis(OPUS_FRAME_MS));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type,
                sequence_number,
                timestamp,
                ssrc,
                ..Default::default()
            },
            payload: Bytes::from_static(&OPUS_SILENCE_FRAME),
        };
        if let Err(err) = track.write_rtp(packet).await {
            debug!(%err, "audio silence not sent; stopping the audio sender");
            return;
        }
        sequence_number = sequence_number.wrapping_add(1);
        timestamp = timestamp.wrapping_add(OPUS_FRAME_TICKS);
    }
}

impl OffererPeer {
    /// Builds the peer connection with a sendrecv H.264 (pm=1, 42e01f) video m-line and an audio
    /// m-line, waits for gathering to complete and returns the full offer SDP.
    pub async fn create(cfg: &OffererConfig) -> Result<(Self, String), OffererError> {
        let video_codec = peer::h264_codec("42e01f");
        let audio_codec =
            peer::audio_codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1");
        let mut codecs = vec![
            (video_codec.clone(), H264_PAYLOAD_TYPE, RtpCodecKind::Video),
            (audio_codec.clone(), OPUS_PAYLOAD_TYPE, RtpCodecKind::Audio),
        ];
        if cfg.rtx {
            codecs.push((
                peer::rtx_codec(H264_PAYLOAD_TYPE),
                H264_PAYLOAD_TYPE + 1,
                RtpCodecKind::Video,
            ));
        }
        let (me, registry) = peer::media_engine(&codecs)?;
        let mut rng = XorShift::seeded();
        let video_ssrc = rng.next_u32();
        let audio_ssrc = rng.next_u32();
        let rtx_ssrc = cfg.rtx.then(|| rng.next_u32());
        let (keyframe_tx, keyframe_rx) = watch::channel(0u64);
        let registry = registry.with(
            Slot::from(14_000usize),
            KeyframeRequestCounter {
                video_ssrc,
                count_tx: Arc::new(keyframe_tx),
                read_queue: VecDeque::new(),
                write_queue: VecDeque::new(),
            },
        );

        let (reporter, state_rx, mut gathered_rx) = StateReporter::new("simulated camera");
        let state_tx = reporter.state_tx.clone();
        let received_media_packets = Arc::new(AtomicU64::new(0));
        let tracks = ReturnMediaCounter {
            received_media_packets: Arc::clone(&received_media_packets),
        };
        let link = Link::new(cfg.link.clone());
        let runtime = Arc::new(UdpBufferRuntime::new(0).with_socket_wrapper(link.socket_wrapper()));
        let pc = peer::build(me, registry, runtime, reporter, tracks, &cfg.udp_bind_addrs).await?;

        let video_track = Arc::new(TrackLocalStaticRTP::new(local_track(
            RtpCodecKind::Video,
            &video_codec,
            video_ssrc,
            rtx_ssrc,
        )));
        let audio_track = Arc::new(TrackLocalStaticRTP::new(local_track(
            RtpCodecKind::Audio,
            &audio_codec,
            audio_ssrc,
            None,
        )));
        let video_sender = pc
            .add_track(Arc::clone(&video_track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| OffererError::AddTrack(e.to_string()))?;
        let audio_sender = pc
            .add_track(Arc::clone(&audio_track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| OffererError::AddTrack(e.to_string()))?;

        let offer = pc
            .create_offer(None)
            .await
            .map_err(|e| OffererError::Offer(e.to_string()))?;
        pc.set_local_description(offer)
            .await
            .map_err(|e| OffererError::Offer(e.to_string()))?;
        let gathered = tokio::time::timeout(GATHER_TIMEOUT, gathered_rx.wait_for(|g| *g))
            .await
            .is_ok();
        let sdp =
            pc.local_description().await.map(|d| d.sdp).ok_or_else(|| {
                OffererError::Offer("no local description after applying it".into())
            })?;
        if !gathered {
            if sdp.contains("a=candidate:") {
                warn!("simulated camera: ICE gathering incomplete; offering the candidates so far");
            } else {
                let _ = pc.close().await;
                return Err(OffererError::GatherTimeout {
                    timeout_ms: GATHER_TIMEOUT.as_millis(),
                });
            }
        }

        let watchdog = tokio::spawn(watch_remote_close(Arc::clone(&pc), state_tx.clone()));
        let peer = Self {
            watchdog,
            pc,
            cfg: cfg.clone(),
            video_track,
            video_sender,
            video_ssrc,
            audio_track,
            audio_sender,
            audio_ssrc,
            video: Mutex::new(VideoSend {
                payloader: H264Payloader::default(),
                sequence_number: rng.next_u32() as u16,
                payload_type: None,
                rng,
            }),
            audio_task: StdMutex::new(None),
            closed: AtomicBool::new(false),
            received_media_packets,
            state_tx,
            state_rx,
            keyframe_rx,
            link,
        };
        Ok((peer, sdp))
    }

    /// The camera vanishes from the network: nothing is sent or received any more (see
    /// [`Link`]); the peer connection is not closed.
    pub fn vanish(&self) {
        self.link.vanish();
    }

    /// What the link did to this peer's packets so far, for the log.
    pub fn link_summary(&self) -> String {
        self.link.counters().summary()
    }

    /// Applies the client's answer and starts the Opus silence sender.
    pub async fn set_answer(&self, answer_sdp: &str) -> Result<(), OffererError> {
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned())
            .map_err(|e| OffererError::InvalidAnswer(e.to_string()))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| OffererError::InvalidAnswer(e.to_string()))?;
        let video_pt = negotiated_payload_type(&self.video_sender)
            .await
            .unwrap_or(H264_PAYLOAD_TYPE);
        self.video.lock().await.payload_type = Some(video_pt);
        if let Some(audio_pt) = negotiated_payload_type(&self.audio_sender).await {
            let task = tokio::spawn(send_opus_silence(
                Arc::clone(&self.audio_track),
                self.audio_ssrc,
                audio_pt,
                self.state_rx.clone(),
            ));
            if let Ok(mut slot) = self.audio_task.lock()
                && let Some(old) = slot.replace(task)
            {
                old.abort();
            }
        } else {
            info!("the client rejected audio; not sending audio");
        }
        Ok(())
    }

    /// Packetizes one Annex-B access unit (FU-A / STAP-A / single NAL, marker bit on the last
    /// packet), drops each packet with probability `loss_percent/100`, and sends.
    pub async fn send_access_unit(
        &self,
        annexb: &[u8],
        rtp_timestamp_90khz: u32,
    ) -> Result<(), OffererError> {
        let state = self.state_rx.borrow().clone();
        match state {
            PeerState::New | PeerState::Connecting => {
                debug!("not connected yet; access unit not sent");
                return Ok(());
            }
            PeerState::Failed | PeerState::Closed => return Err(OffererError::Closed),
            PeerState::Connected | PeerState::Disconnected => {}
        }
        let mut video = self.video.lock().await;
        let payload_type = video.payload_type.ok_or(OffererError::NotNegotiated)?;
        let budget = self.cfg.mtu_bytes.saturating_sub(RTP_HEADER_BYTES).max(64);
        let payloads = video
            .payloader
            .payload(budget, &Bytes::copy_from_slice(annexb))
            .map_err(|e| OffererError::Packetize(e.to_string()))?;
        let last = payloads.len().saturating_sub(1);
        for (i, payload) in payloads.into_iter().enumerate() {
            let sequence_number = video.sequence_number;
            video.sequence_number = sequence_number.wrapping_add(1);
            if self.cfg.loss_percent > 0.0 && video.rng.percent() < self.cfg.loss_percent {
                debug!(sequence_number, "injected loss: RTP packet not sent");
                continue;
            }
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::Header {
                    version: 2,
                    marker: i == last,
                    payload_type,
                    sequence_number,
                    timestamp: rtp_timestamp_90khz,
                    ssrc: self.video_ssrc,
                    ..Default::default()
                },
                payload,
            };
            self.video_track
                .write_rtp(packet)
                .await
                .map_err(|e| OffererError::Send(e.to_string()))?;
        }
        Ok(())
    }

    /// Count of keyframe requests (PLI/FIR) received from the client.
    pub fn keyframe_requests(&self) -> watch::Receiver<u64> {
        self.keyframe_rx.clone()
    }

    /// RTP packets the client sent to the camera (audio or video). A well-behaved receive-only
    /// client sends none.
    pub fn received_media_packets(&self) -> u64 {
        self.received_media_packets.load(Ordering::Relaxed)
    }

    /// Peer connection state.
    pub fn state(&self) -> watch::Receiver<PeerState> {
        self.state_rx.clone()
    }

    /// Closes the peer connection (the client sees DTLS `close_notify`) and stops the audio
    /// sender. Idempotent; returns within 1 s.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.abort_tasks();
        peer::close("simulated camera", self.pc.as_ref(), &self.state_tx).await;
    }

    fn abort_tasks(&self) {
        if let Ok(mut slot) = self.audio_task.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
        self.watchdog.abort();
    }
}

impl Drop for OffererPeer {
    fn drop(&mut self) {
        self.abort_tasks();
        peer::close_unless_closed("simulated camera", &self.pc, &self.closed);
    }
}
