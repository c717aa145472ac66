//! Harness of the `webrtc_offer` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): arbitrary SDP text as the camera's offer, taken the
//! way `AnswererSession` takes it — normalised, refused without a video section, parsed by
//! `RTCSessionDescription::offer`, applied with the webrtc crate's `set_remote_description` to
//! a peer connection with the answerer's codecs, answered with `create_answer`.
//!
//! The current-thread Tokio runtime is built once per thread. The peer connection (bound to
//! 127.0.0.1, never connected: no local description is set) is built for each offer that
//! parses: one that applied an offer, even one rejected half-way, cannot take another (its ICE
//! transport has left the `new` state, and a rollback does not return it), and an input must
//! not depend on the ones before it. Inputs that stop earlier (not text, no video section, not
//! SDP) cost no peer connection.
//!
//! No property beyond "never panics, never hangs": an answer that would send video is possible
//! (webrtc 0.21 answers `sendonly` to a video section whose offer carries `a=recvonly` before
//! `a=sendrecv`, and rejects a section whose `a=rtpmap` does not parse with port 0 and no
//! direction), and the answerer refuses such answers itself (`WouldSendVideo`,
//! `NoCompatibleVideo`); [`Reached`] tells which way an input went.
//!
//! Nothing leaves this host: see [`LoopbackOnly`].
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use spot_ptz_stream::camera_link::answerer::answer_codecs;
use spot_ptz_stream::camera_link::peer;
use spot_ptz_stream::camera_link::sdp::{media_sections, normalize_offer_directions};
use spot_ptz_stream::camera_link::sockets::UdpBufferRuntime;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    Transmit,
};

/// The answerer's runtime, kept on this host: datagrams to other than loopback addresses are
/// dropped (reported as sent), TCP connects only to loopback, and only literal addresses
/// resolve. Applying an offer starts ICE at once, and a mutated offer names any address or
/// host name as a candidate: without this the fuzzer would send STUN checks and DNS queries
/// there.
#[derive(Debug)]
struct LoopbackOnly(UdpBufferRuntime);

#[derive(Debug)]
struct LoopbackOnlySocket(Arc<dyn AsyncUdpSocket>);

fn refused(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("fuzzing stays on loopback: {what}"),
    )
}

impl AsyncUdpSocket for LoopbackOnlySocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if transmit.destination.ip().is_loopback() {
            self.0.poll_send(cx, transmit)
        } else {
            Poll::Ready(Ok(transmit.contents.len()))
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn max_gro_segments(&self) -> usize {
        self.0.max_gro_segments()
    }
}

impl Runtime for LoopbackOnly {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(LoopbackOnlySocket(
            self.0.wrap_udp_socket(socket)?,
        )))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        if remote_addr.ip().is_loopback() {
            self.0.connect_tcp(remote_addr)
        } else {
            Box::pin(async move { Err(refused("TCP to a remote address")) })
        }
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move {
            host.parse::<SocketAddr>()
                .map(|addr| vec![addr])
                .map_err(|_| refused("resolving a host name"))
        })
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }
}

/// The peer connection the answerer would build (its codecs, default interceptors, its
/// runtime, bound to 127.0.0.1), kept on loopback.
async fn build_peer_connection() -> Arc<dyn PeerConnection> {
    let (media_engine, registry) =
        peer::media_engine(&answer_codecs()).expect("the answerer's media engine");
    peer::build(
        media_engine,
        registry,
        Arc::new(LoopbackOnly(UdpBufferRuntime::new(0))),
        peer::StateReporter::new("fuzzed offer").0,
        (),
        &["127.0.0.1:0".to_owned()],
    )
    .await
    .expect("a peer connection on 127.0.0.1")
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread Tokio runtime");
}

/// What one input reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    NotText,
    NoVideoSection,
    ParseError,
    Rejected,
    /// Applied; `answered`: `create_answer` succeeded; `sends_video`: the answer would send
    /// video, which the answerer refuses (`WouldSendVideo`).
    Applied {
        answered: bool,
        sends_video: bool,
    },
}

async fn apply(connection: &dyn PeerConnection, offer: RTCSessionDescription) -> Reached {
    if connection.set_remote_description(offer).await.is_err() {
        return Reached::Rejected;
    }
    match connection.create_answer(None).await {
        Ok(answer) => {
            // The answerer's own check: an accepted video section must not send.
            let sends_video =
                media_sections(&answer.sdp, "video")
                    .iter()
                    .any(|(port, direction)| {
                        *port != 0 && !matches!(direction.as_deref(), Some("recvonly" | "inactive"))
                    });
            Reached::Applied {
                answered: true,
                sends_video,
            }
        }
        Err(_) => Reached::Applied {
            answered: false,
            sends_video: false,
        },
    }
}

/// The fuzz target's body.
pub fn run(data: &[u8]) -> Reached {
    let Ok(text) = std::str::from_utf8(data) else {
        return Reached::NotText;
    };
    let offer_sdp = normalize_offer_directions(text);
    if media_sections(&offer_sdp, "video").is_empty() {
        return Reached::NoVideoSection;
    }
    let Ok(offer) = RTCSessionDescription::offer(offer_sdp) else {
        return Reached::ParseError;
    };
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let connection = build_peer_connection().await;
            let reached = apply(connection.as_ref(), offer).await;
            let _ = connection.close().await;
            reached
        })
    })
}
