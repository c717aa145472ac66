//! The network between the simulated camera and its client, as the world makes it: for now a
//! camera that vanishes (power loss, a cable, Wi-Fi roaming) without a goodbye. From
//! [`Link::vanish`] on, the camera's UDP sockets send nothing and drop what arrives: no RTP,
//! no RTCP, no ICE consent answers, no DTLS close; the TCP signalling server is not touched, so
//! a client that notices can connect again.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use webrtc::runtime::{AsyncUdpSocket, RecvMeta, Transmit};

use crate::camera_link::sockets::SocketWrapper;

/// One peer connection's link; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Link {
    vanished: Arc<AtomicBool>,
}

impl Link {
    /// From now on nothing crosses the link.
    pub fn vanish(&self) {
        self.vanished.store(true, Ordering::Relaxed);
    }

    /// For [`crate::camera_link::sockets::UdpBufferRuntime::with_socket_wrapper`].
    pub fn socket_wrapper(&self) -> SocketWrapper {
        let vanished = Arc::clone(&self.vanished);
        Arc::new(move |inner| {
            Arc::new(LinkSocket {
                inner,
                vanished: Arc::clone(&vanished),
            }) as Arc<dyn AsyncUdpSocket>
        })
    }
}

#[derive(Debug)]
struct LinkSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    vanished: Arc<AtomicBool>,
}

impl LinkSocket {
    fn vanished(&self) -> bool {
        self.vanished.load(Ordering::Relaxed)
    }
}

impl AsyncUdpSocket for LinkSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if self.vanished() {
            // Gone without a trace: the datagram is "sent" and never arrives.
            return Poll::Ready(Ok(transmit.contents.len()));
        }
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.inner.poll_recv(cx, bufs, meta) {
                // Read and dropped; poll again, so the waker stays registered.
                Poll::Ready(Ok(_)) if self.vanished() => continue,
                other => return other,
            }
        }
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}
