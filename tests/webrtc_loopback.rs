//! Loopback test of the WebRTC layer: the simulated camera's offerer and the node's answerer in
//! one process on 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openh264::OpenH264API;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, IntraFramePeriod, Profile};
use openh264::formats::YUVBuffer;
use spot_ptz_stream::camera_link::answerer::{
    AnswererConfig, AnswererSession, PeerState, ReceivedRtp,
};
use spot_ptz_stream::camera_link::sdp::media_sections;
use spot_ptz_stream::sim::offerer::{OffererConfig, OffererPeer};
use tokio::sync::{mpsc, watch};

const WIDTH: usize = 320;
const HEIGHT: usize = 240;
const FRAMES: usize = 60;
const TICKS_PER_FRAME: u32 = 3000; // 30 fps at 90 kHz

fn loopback() -> Vec<String> {
    vec!["127.0.0.1:0".to_owned()]
}

/// A moving gradient, encoded as Annex-B access units (SPS/PPS + IDR first, IDR every 30).
fn encode_stream() -> Vec<Vec<u8>> {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(800_000))
        .skip_frames(false)
        .profile(Profile::Baseline)
        .intra_frame_period(IntraFramePeriod::from_num_frames(30))
        .num_threads(1);
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), config).expect("openh264 encoder");
    (0..FRAMES)
        .map(|i| {
            let mut yuv = vec![128u8; WIDTH * HEIGHT * 3 / 2];
            for y in 0..HEIGHT {
                for x in 0..WIDTH {
                    yuv[y * WIDTH + x] = ((x + 2 * y + 5 * i) % 256) as u8;
                }
            }
            let buffer = YUVBuffer::from_vec(yuv, WIDTH, HEIGHT);
            encoder.encode(&buffer).expect("encode").to_vec()
        })
        .collect()
}

async fn wait_for_state(
    rx: &mut watch::Receiver<PeerState>,
    timeout: Duration,
    pred: impl FnMut(&PeerState) -> bool,
) -> Option<PeerState> {
    match tokio::time::timeout(timeout, rx.wait_for(pred)).await {
        Ok(Ok(state)) => Some(state.clone()),
        _ => None,
    }
}

async fn connected_pair(
    loss_percent: f64,
    channel_capacity: usize,
) -> (
    OffererPeer,
    AnswererSession,
    String,
    mpsc::Receiver<ReceivedRtp>,
) {
    let (offerer, offer) = OffererPeer::create(&OffererConfig {
        udp_bind_addrs: loopback(),
        loss_percent,
        ..OffererConfig::default()
    })
    .await
    .expect("offerer");
    assert!(
        offer.contains("a=candidate:"),
        "offer must carry its candidates:\n{offer}"
    );
    assert!(
        offer.contains("a=end-of-candidates"),
        "offer is not complete:\n{offer}"
    );
    assert!(offer.contains("packetization-mode=1;profile-level-id=42e01f"));

    let (rtp_tx, rtp_rx) = mpsc::channel(channel_capacity);
    let cfg = AnswererConfig {
        udp_bind_addrs: loopback(),
        ..AnswererConfig::default()
    };
    let (answerer, answer) = AnswererSession::start(&offer, &cfg, rtp_tx)
        .await
        .expect("answerer");
    let started = Instant::now();
    offerer.set_answer(&answer).await.expect("set answer");

    let mut answerer_state = answerer.state();
    let mut offerer_state = offerer.state();
    assert_eq!(
        wait_for_state(&mut answerer_state, Duration::from_secs(10), |s| *s
            == PeerState::Connected)
        .await,
        Some(PeerState::Connected),
        "answerer did not connect"
    );
    assert_eq!(
        wait_for_state(&mut offerer_state, Duration::from_secs(10), |s| *s
            == PeerState::Connected)
        .await,
        Some(PeerState::Connected),
        "offerer did not connect"
    );
    eprintln!("connected after {:?}", started.elapsed());
    (offerer, answerer, answer, rtp_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_frames_audio_pli_and_close_over_loopback() {
    let access_units = encode_stream();
    let (offerer, answerer, answer, mut rtp_rx) = connected_pair(0.0, 4096).await;

    // The answer is complete and receive-only.
    assert!(
        answer.contains("a=candidate:"),
        "answer lacks candidates:\n{answer}"
    );
    let video = media_sections(&answer, "video");
    assert_eq!(video.len(), 1, "{answer}");
    assert_ne!(video[0].0, 0, "video was rejected:\n{answer}");
    assert_eq!(video[0].1.as_deref(), Some("recvonly"), "{answer}");
    let audio = media_sections(&answer, "audio");
    assert_eq!(audio.len(), 1, "{answer}");
    assert_ne!(audio[0].0, 0, "audio was rejected:\n{answer}");
    assert_eq!(audio[0].1.as_deref(), Some("recvonly"), "{answer}");

    let first_timestamp: u32 = 90_000;
    let timestamps: Vec<u32> = (0..FRAMES as u32)
        .map(|i| first_timestamp.wrapping_add(i * TICKS_PER_FRAME))
        .collect();
    for (au, ts) in access_units.iter().zip(&timestamps) {
        offerer.send_access_unit(au, *ts).await.expect("send");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Collect until every frame's marker packet has arrived (or time out).
    let mut packets: Vec<ReceivedRtp> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while packets.iter().filter(|p| p.packet.header.marker).count() < FRAMES {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rtp_rx.recv()).await {
            Ok(Some(p)) => packets.push(p),
            _ => break,
        }
    }

    // Every frame arrived complete: contiguous sequence numbers, exactly one marker per
    // timestamp, on the frame's last packet.
    assert!(packets.len() >= FRAMES, "only {} packets", packets.len());
    for pair in packets.windows(2) {
        assert_eq!(
            pair[1].packet.header.sequence_number,
            pair[0].packet.header.sequence_number.wrapping_add(1),
            "gap or reorder in video RTP"
        );
        assert!(pair[1].arrival >= pair[0].arrival);
    }
    let mut by_ts: BTreeMap<u32, Vec<&ReceivedRtp>> = BTreeMap::new();
    for p in &packets {
        by_ts.entry(p.packet.header.timestamp).or_default().push(p);
    }
    assert_eq!(
        by_ts.keys().copied().collect::<BTreeSet<_>>(),
        timestamps.iter().copied().collect::<BTreeSet<_>>(),
        "not every frame arrived"
    );
    for (ts, frame) in &by_ts {
        let markers: Vec<bool> = frame.iter().map(|p| p.packet.header.marker).collect();
        assert_eq!(
            markers.iter().filter(|m| **m).count(),
            1,
            "frame {ts}: {markers:?}"
        );
        assert!(
            markers.last().copied().unwrap_or(false),
            "frame {ts}: marker not last"
        );
    }
    // The first packet of the stream carries SPS/PPS (STAP-A, NAL type 24, holding type 7).
    let first = &packets[0].packet.payload;
    assert_eq!(first[0] & 0x1f, 24, "first packet is not STAP-A");
    assert_eq!(first[3] & 0x1f, 7, "STAP-A does not start with SPS");
    assert!(
        packets
            .iter()
            .all(|p| p.packet.header.payload_type == packets[0].packet.header.payload_type)
    );
    assert_eq!(answerer.rtp_dropped(), 0);

    // Audio arrives and is dropped.
    let deadline = Instant::now() + Duration::from_secs(3);
    while answerer.audio_packets() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answerer.audio_packets() > 0, "no audio was received");

    // A keyframe request reaches the camera.
    let mut keyframe_requests = offerer.keyframe_requests();
    let before = *keyframe_requests.borrow_and_update();
    answerer.keyframe_requester().request();
    let after = tokio::time::timeout(
        Duration::from_secs(3),
        keyframe_requests.wait_for(|n| *n > before),
    )
    .await
    .map(|r| r.map(|n| *n).unwrap_or(before))
    .unwrap_or(before);
    assert_eq!(after, before + 1, "PLI did not reach the camera");

    // We never send media back to the camera.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        offerer.received_media_packets(),
        0,
        "the answerer sent media"
    );

    // Closing the camera makes the node's session leave Connected.
    let mut answerer_state = answerer.state();
    let closed_at = Instant::now();
    offerer.close().await;
    let left = wait_for_state(&mut answerer_state, Duration::from_secs(10), |s| {
        *s != PeerState::Connected
    })
    .await;
    eprintln!(
        "answerer left Connected ({left:?}) {:?} after the camera closed",
        closed_at.elapsed()
    );
    assert!(
        matches!(
            left,
            Some(PeerState::Closed | PeerState::Disconnected | PeerState::Failed)
        ),
        "answerer still connected: {left:?}"
    );

    let closing = Instant::now();
    answerer.close().await;
    assert!(closing.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_notices_when_the_node_closes() {
    let (offerer, answerer, _answer, _rtp_rx) = connected_pair(0.0, 16).await;
    let mut offerer_state = offerer.state();
    let closing = Instant::now();
    answerer.close().await;
    assert!(
        closing.elapsed() < Duration::from_secs(1),
        "close() took too long"
    );
    let left = wait_for_state(&mut offerer_state, Duration::from_secs(10), |s| {
        *s != PeerState::Connected
    })
    .await;
    eprintln!(
        "camera saw {left:?} {:?} after the node closed",
        closing.elapsed()
    );
    // The node's DTLS close_notify is noticed well before ICE consent would expire (~5 s).
    assert_eq!(
        left,
        Some(PeerState::Closed),
        "camera did not notice the node closing"
    );
    assert!(closing.elapsed() < Duration::from_secs(2));
    assert!(
        offerer
            .send_access_unit(&[0, 0, 0, 1, 0x65, 0x88], 0)
            .await
            .is_err(),
        "sending on a closed session must fail"
    );
    offerer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_channel_drops_and_counts_instead_of_blocking() {
    let access_units = encode_stream();
    // Capacity 1 and nobody reading: everything after the first packet must be dropped.
    let (offerer, answerer, _answer, _rtp_rx) = connected_pair(0.0, 1).await;
    for (i, au) in access_units.iter().take(10).enumerate() {
        offerer
            .send_access_unit(au, i as u32 * TICKS_PER_FRAME)
            .await
            .expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while answerer.rtp_dropped() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answerer.rtp_dropped() > 0, "nothing was dropped");
    // The session keeps running: audio still flows.
    let audio_before = answerer.audio_packets();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(answerer.audio_packets() > audio_before);
    offerer.close().await;
    answerer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_without_direction_attributes_is_still_answered_recvonly() {
    let (offerer, offer) = OffererPeer::create(&OffererConfig {
        udp_bind_addrs: loopback(),
        ..OffererConfig::default()
    })
    .await
    .expect("offerer");
    let stripped: String = offer
        .split("\r\n")
        .filter(|l| *l != "a=sendrecv")
        .collect::<Vec<_>>()
        .join("\r\n");
    assert!(!stripped.contains("a=sendrecv"));
    let (tx, _rx) = mpsc::channel(8);
    let cfg = AnswererConfig {
        udp_bind_addrs: loopback(),
        ..AnswererConfig::default()
    };
    let (answerer, answer) = AnswererSession::start(&stripped, &cfg, tx)
        .await
        .expect("answerer");
    let video = media_sections(&answer, "video");
    assert_eq!(video.len(), 1);
    assert_ne!(video[0].0, 0, "video rejected:\n{answer}");
    assert_eq!(video[0].1.as_deref(), Some("recvonly"));
    answerer.close().await;
    offerer.close().await;
}
