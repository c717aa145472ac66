//! webrtc-rs's tokio runtime with larger UDP receive buffers.
//!
//! The camera sends each frame as a burst of RTP packets; an IDR at 8 Mbit/s is a few hundred
//! of them at once. Linux's default socket receive buffer (`net.core.rmem_default`, 208 KiB)
//! holds fewer than that, so when the receiving task is a few milliseconds late (another
//! process on the payload computer is busy) the kernel drops the rest of the burst. webrtc-rs
//! binds its sockets itself and has no receive-buffer setting, but it creates every socket
//! through its [`Runtime`]: this one asks for `receive_buffer_bytes` (SO_RCVBUF) on each UDP
//! socket, then hands it to the stock [`TokioRuntime`].
//!
//! The kernel grants at most `net.core.rmem_max`; a smaller grant is reported once with the
//! sysctl to raise.
//!
//! With a [`UdpPortRange`] every socket is also checked against it: one bound outside the
//! range (which webrtc would only do if it opened a socket of its own, e.g. for multicast DNS)
//! fails the peer connection's set-up instead of going through a firewall that drops it.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::camera_link::port_range::UdpPortRange;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// Whether a smaller grant than asked was already reported (once per process is enough).
static REPORTED_SMALL_GRANT: AtomicBool = AtomicBool::new(false);

/// Wraps every UDP socket a [`UdpBufferRuntime`] creates (the simulator's link faults).
pub type SocketWrapper =
    Arc<dyn Fn(Arc<dyn AsyncUdpSocket>) -> Arc<dyn AsyncUdpSocket> + Send + Sync>;

/// The tokio runtime, with `SO_RCVBUF` set on every UDP socket.
pub struct UdpBufferRuntime {
    inner: TokioRuntime,
    receive_buffer_bytes: usize,
    wrap_socket: Option<SocketWrapper>,
    port_range: Option<UdpPortRange>,
}

impl fmt::Debug for UdpBufferRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpBufferRuntime")
            .field("receive_buffer_bytes", &self.receive_buffer_bytes)
            .field("wraps_sockets", &self.wrap_socket.is_some())
            .field("port_range", &self.port_range)
            .finish()
    }
}

impl UdpBufferRuntime {
    /// `receive_buffer_bytes` = 0 leaves the system default.
    pub fn new(receive_buffer_bytes: usize) -> Self {
        Self {
            inner: TokioRuntime,
            receive_buffer_bytes,
            wrap_socket: None,
            port_range: None,
        }
    }

    /// Every UDP socket must be bound to a port of `range` (`None`: any port).
    pub fn with_port_range(mut self, range: Option<UdpPortRange>) -> Self {
        self.port_range = range;
        self
    }

    /// Every UDP socket goes through `wrap` once created.
    pub fn with_socket_wrapper(mut self, wrap: SocketWrapper) -> Self {
        self.wrap_socket = Some(wrap);
        self
    }
}

/// Asks for a receive buffer of `bytes` on `socket`; returns what the kernel granted (Linux
/// reports twice the usable size, which is what it also counts against the limit).
pub fn set_receive_buffer(socket: &std::net::UdpSocket, bytes: usize) -> io::Result<usize> {
    let socket = socket2::SockRef::from(socket);
    socket.set_recv_buffer_size(bytes)?;
    socket.recv_buffer_size()
}

impl Runtime for UdpBufferRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        if let Some(range) = self.port_range {
            let local = socket.local_addr()?;
            if !range.contains(local.port()) {
                return Err(io::Error::other(format!(
                    "WebRTC opened UDP socket {local}, outside udp_port_min..udp_port_max ({range}); \
                     a firewall that admits only that range would drop its traffic. Report this \
                     with RUST_LOG=debug output"
                )));
            }
        }
        if self.receive_buffer_bytes > 0 {
            match set_receive_buffer(&socket, self.receive_buffer_bytes) {
                // Linux doubles the value it stores: compare with the request doubled.
                Ok(granted) if granted < self.receive_buffer_bytes.saturating_mul(2) => {
                    if !REPORTED_SMALL_GRANT.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            asked_bytes = self.receive_buffer_bytes,
                            granted_bytes = granted / 2,
                            "the kernel limits UDP receive buffers below udp_receive_buffer_bytes; \
                             packet bursts at high bitrates may be lost: raise the limit with \
                             `sudo sysctl -w net.core.rmem_max={}`",
                            self.receive_buffer_bytes
                        );
                    }
                }
                Ok(granted) => {
                    tracing::debug!(granted_bytes = granted / 2, "UDP receive buffer set");
                }
                Err(error) => {
                    tracing::warn!(%error, "could not set the UDP receive buffer; using the system default");
                }
            }
        }
        let socket = self.inner.wrap_udp_socket(socket)?;
        Ok(match &self.wrap_socket {
            Some(wrap) => wrap(socket),
            None => socket,
        })
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_the_buffer_and_reports_the_grant() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        // Small enough for any kernel limit, different from the default.
        let asked = default / 4;
        let granted = set_receive_buffer(&socket, asked).unwrap();
        assert!(
            granted >= asked && granted != default,
            "granted {granted} of {asked}"
        );
    }

    #[tokio::test]
    async fn wrapped_sockets_get_the_buffer() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let probe = socket.try_clone().unwrap();
        let default = socket2::SockRef::from(&probe).recv_buffer_size().unwrap();
        let asked = default / 4;
        UdpBufferRuntime::new(asked)
            .wrap_udp_socket(socket)
            .unwrap();
        let now = socket2::SockRef::from(&probe).recv_buffer_size().unwrap();
        assert!(now >= asked && now != default, "{now} after asking {asked}");
    }

    #[tokio::test]
    async fn a_socket_outside_the_port_range_is_refused() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let inside = UdpPortRange::new(port, port).unwrap();
        assert!(
            UdpBufferRuntime::new(0)
                .with_port_range(Some(inside))
                .wrap_udp_socket(socket.try_clone().unwrap())
                .is_ok()
        );
        let other = if port > 1000 { port - 1 } else { port + 1 };
        let outside = UdpPortRange::new(other, other).unwrap();
        let error = UdpBufferRuntime::new(0)
            .with_port_range(Some(outside))
            .wrap_udp_socket(socket)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("outside udp_port_min..udp_port_max"),
            "{error}"
        );
    }
}
