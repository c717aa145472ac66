//! The network between the simulated camera and its client, as the world makes it. Everything
//! here happens on the camera's UDP sockets, *below* WebRTC: after SRTP and after the NACK
//! responder's retransmission buffer, exactly where Wi-Fi loses packets. A packet this link
//! drops is still in the camera's history, so the client's NACK can get it back (and the
//! retransmission crosses the same lossy link again).
//!
//! - **Latency** ([`LinkImpairments::delay`]): every datagram the camera sends arrives this
//!   much later (the round trip a NACK has to wait for).
//! - **Loss** ([`LinkImpairments::loss_percent`], [`LinkImpairments::burst_len`]): video and
//!   audio RTP packets are lost in bursts of `burst_len` consecutive packets, bursts starting
//!   at random so that `loss_percent` of the packets are lost on average. RTCP, DTLS and ICE
//!   are not touched, so the tests measure media repair rather than handshake retries.
//! - **Reordering** ([`LinkImpairments::reorder_percent`]): that share of RTP packets is held
//!   back for [`LinkImpairments::reorder_delay`] and overtaken by the packets behind it.
//! - **Late retransmissions** ([`LinkImpairments::retransmission_delay`]): RTP packets sent
//!   again on the video stream (sequence numbers behind the newest sent: the NACK responder's
//!   answers) leave this much later, as from a busy camera. (On an RTX stream they cannot be
//!   told apart here.)
//! - **A capped link** ([`LinkImpairments::rate_bps`]): every datagram is serialised at the
//!   rate through a queue of at most [`LinkImpairments::queue_delay`]; what would wait longer is
//!   dropped (tail drop), as a Wi-Fi access point's queue does. The cap can end after
//!   [`LinkImpairments::rate_cap_until`].
//! - **Vanishing** ([`Link::vanish`]): from then on the sockets send nothing and drop what
//!   arrives: no RTP, no RTCP, no ICE consent answers, no DTLS close (power loss, a cable,
//!   Wi-Fi roaming). The TCP signalling server is not touched, so a client that notices can
//!   connect again.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::runtime::{AsyncUdpSocket, EcnCodepoint, RecvMeta, Transmit};

use crate::camera_link::sockets::SocketWrapper;

/// How the link between camera and client misbehaves (all off by default).
#[derive(Clone, Debug)]
pub struct LinkImpairments {
    /// One-way delay of everything the camera sends.
    pub delay: Duration,
    /// Share of RTP packets lost on the link, in percent (0..=100).
    pub loss_percent: f64,
    /// Consecutive RTP packets lost in each loss event (at least 1).
    pub burst_len: u32,
    /// Share of RTP packets delivered late, in percent (0..=100).
    pub reorder_percent: f64,
    /// How late a reordered packet arrives.
    pub reorder_delay: Duration,
    /// How late a retransmission on the video stream leaves (a busy camera's NACK answers).
    pub retransmission_delay: Duration,
    /// The link's capacity in bit/s; `None` = unlimited.
    pub rate_bps: Option<u64>,
    /// When the capacity limit ends; `None` = never.
    pub rate_cap_until: Option<std::time::Instant>,
    /// The longest a datagram waits in the capped link's queue before it is dropped instead.
    pub queue_delay: Duration,
}

impl Default for LinkImpairments {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            loss_percent: 0.0,
            burst_len: 1,
            reorder_percent: 0.0,
            reorder_delay: Duration::from_millis(15),
            retransmission_delay: Duration::ZERO,
            rate_bps: None,
            rate_cap_until: None,
            queue_delay: Duration::from_millis(150),
        }
    }
}

impl LinkImpairments {
    fn delays_packets(&self) -> bool {
        !self.delay.is_zero()
            || self.reorder_percent > 0.0
            || self.rate_bps.is_some()
            || !self.retransmission_delay.is_zero()
    }
}

/// What the link did, for the simulator's log.
#[derive(Debug, Default)]
pub struct LinkCounters {
    pub rtp_packets_sent: AtomicU64,
    pub rtp_packets_lost: AtomicU64,
    pub rtp_packets_reordered: AtomicU64,
    pub rtp_packets_retransmitted: AtomicU64,
    pub datagrams_dropped_by_rate_cap: AtomicU64,
}

impl LinkCounters {
    /// One line for the log: what crossed and what did not.
    pub fn summary(&self) -> String {
        format!(
            "{} RTP packets sent, {} lost on the link, {} reordered, {} retransmitted, {} datagrams dropped by the rate cap",
            self.rtp_packets_sent.load(Ordering::Relaxed),
            self.rtp_packets_lost.load(Ordering::Relaxed),
            self.rtp_packets_reordered.load(Ordering::Relaxed),
            self.rtp_packets_retransmitted.load(Ordering::Relaxed),
            self.datagrams_dropped_by_rate_cap.load(Ordering::Relaxed),
        )
    }
}

/// One peer connection's link; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Link {
    impairments: Arc<LinkImpairments>,
    vanished: Arc<AtomicBool>,
    counters: Arc<LinkCounters>,
}

impl Link {
    pub fn new(impairments: LinkImpairments) -> Self {
        Self {
            impairments: Arc::new(impairments),
            ..Self::default()
        }
    }

    /// From now on nothing crosses the link.
    pub fn vanish(&self) {
        self.vanished.store(true, Ordering::Relaxed);
    }

    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }

    /// For [`crate::camera_link::sockets::UdpBufferRuntime::with_socket_wrapper`].
    pub fn socket_wrapper(&self) -> SocketWrapper {
        let link = self.clone();
        Arc::new(move |inner| {
            Arc::new(LinkSocket {
                inner,
                link: link.clone(),
                shaper: Mutex::new(Shaper::default()),
                delayed_tx: OnceLock::new(),
            }) as Arc<dyn AsyncUdpSocket>
        })
    }
}

/// The loss and queue state of one socket.
#[derive(Debug, Default)]
struct Shaper {
    /// Packets still to lose in the current burst.
    burst_remaining: u32,
    /// When the capped link's queue is empty again.
    queue_free_at: Option<Instant>,
    /// The newest sequence number sent on each SSRC (to tell retransmissions).
    newest_sequence: std::collections::HashMap<u32, u16>,
}

/// What the link does with one datagram.
#[derive(Debug, PartialEq)]
enum Fate {
    Drop,
    Send,
    SendAt(Instant),
}

/// RFC 7983 / RFC 5761: RTP (not RTCP) by its first two bytes.
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(192..=223).contains(&datagram[1])
}

impl Shaper {
    /// Whether an RTP packet's sequence number is behind the newest one sent on its SSRC (the
    /// header is not encrypted by SRTP); remembers the newest.
    fn is_retransmission(&mut self, datagram: &[u8]) -> bool {
        let sequence = u16::from_be_bytes([datagram[2], datagram[3]]);
        let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
        match self.newest_sequence.get_mut(&ssrc) {
            Some(newest) if (sequence.wrapping_sub(*newest) as i16) < 0 => true,
            Some(newest) => {
                *newest = sequence;
                false
            }
            None => {
                self.newest_sequence.insert(ssrc, sequence);
                false
            }
        }
    }

    fn fate(
        &mut self,
        impairments: &LinkImpairments,
        counters: &LinkCounters,
        datagram: &[u8],
        now: Instant,
        random_percent: &mut impl FnMut() -> f64,
    ) -> Fate {
        let rtp = is_rtp(datagram);
        if rtp {
            counters.rtp_packets_sent.fetch_add(1, Ordering::Relaxed);
            if self.burst_remaining > 0 {
                self.burst_remaining -= 1;
                counters.rtp_packets_lost.fetch_add(1, Ordering::Relaxed);
                return Fate::Drop;
            }
            let burst_len = impairments.burst_len.max(1);
            if impairments.loss_percent > 0.0
                && random_percent() < impairments.loss_percent / f64::from(burst_len)
            {
                self.burst_remaining = burst_len - 1;
                counters.rtp_packets_lost.fetch_add(1, Ordering::Relaxed);
                return Fate::Drop;
            }
        }
        let mut departure = now;
        let capped = impairments.rate_bps.filter(|_| {
            impairments
                .rate_cap_until
                .is_none_or(|until| std::time::Instant::now() < until)
        });
        if let Some(rate_bps) = capped.filter(|&r| r > 0) {
            let start = self.queue_free_at.map_or(now, |free| free.max(now));
            let serialisation =
                Duration::from_secs_f64((datagram.len() as f64 * 8.0) / rate_bps as f64);
            let done = start + serialisation;
            if done.duration_since(now) > impairments.queue_delay {
                counters
                    .datagrams_dropped_by_rate_cap
                    .fetch_add(1, Ordering::Relaxed);
                return Fate::Drop;
            }
            self.queue_free_at = Some(done);
            departure = done;
        }
        if rtp && self.is_retransmission(datagram) {
            counters
                .rtp_packets_retransmitted
                .fetch_add(1, Ordering::Relaxed);
            departure += impairments.retransmission_delay;
        }
        if rtp
            && impairments.reorder_percent > 0.0
            && random_percent() < impairments.reorder_percent
        {
            counters
                .rtp_packets_reordered
                .fetch_add(1, Ordering::Relaxed);
            departure += impairments.reorder_delay;
        }
        departure += impairments.delay;
        if departure > now {
            Fate::SendAt(departure)
        } else {
            Fate::Send
        }
    }
}

/// A datagram waiting for its departure time.
#[derive(Debug)]
struct Delayed {
    departure: Instant,
    /// Arrival order, so that equal departure times keep it.
    order: u64,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    contents: Vec<u8>,
    segment_size: Option<usize>,
    src_ip: Option<IpAddr>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.departure, self.order) == (other.departure, other.order)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    /// Reversed: the earliest departure is the heap's top.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.departure, other.order).cmp(&(self.departure, self.order))
    }
}

#[derive(Debug)]
struct LinkSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    link: Link,
    shaper: Mutex<Shaper>,
    /// Feeds the task that sends delayed datagrams at their time; started with the first one.
    /// The task ends when this socket is dropped.
    delayed_tx: OnceLock<mpsc::UnboundedSender<Delayed>>,
}

impl LinkSocket {
    fn vanished(&self) -> bool {
        self.link.vanished.load(Ordering::Relaxed)
    }

    fn delayed_sender(&self) -> Option<&mpsc::UnboundedSender<Delayed>> {
        if let Some(tx) = self.delayed_tx.get() {
            return Some(tx);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::unbounded_channel();
        if self.delayed_tx.set(tx).is_ok() {
            runtime.spawn(send_delayed(
                Arc::clone(&self.inner),
                Arc::clone(&self.link.vanished),
                rx,
            ));
        }
        self.delayed_tx.get()
    }
}

/// Sends each delayed datagram at its departure time, until the socket is gone.
async fn send_delayed(
    inner: Arc<dyn AsyncUdpSocket>,
    vanished: Arc<AtomicBool>,
    mut rx: mpsc::UnboundedReceiver<Delayed>,
) {
    let mut waiting = BinaryHeap::new();
    loop {
        let next_departure = waiting.peek().map(|d: &Delayed| d.departure);
        tokio::select! {
            received = rx.recv() => match received {
                Some(delayed) => waiting.push(delayed),
                None => return,
            },
            () = tokio::time::sleep_until(next_departure.unwrap_or_else(Instant::now)),
                if next_departure.is_some() =>
            {
                let now = Instant::now();
                while waiting.peek().is_some_and(|d| d.departure <= now) {
                    let Some(d) = waiting.pop() else { break };
                    if vanished.load(Ordering::Relaxed) {
                        continue;
                    }
                    let transmit = Transmit {
                        destination: d.destination,
                        ecn: d.ecn,
                        contents: &d.contents,
                        segment_size: d.segment_size,
                        src_ip: d.src_ip,
                    };
                    // UDP: a send error is one more lost datagram.
                    let _ = std::future::poll_fn(|cx| inner.poll_send(cx, &transmit)).await;
                }
            }
        }
    }
}

impl AsyncUdpSocket for LinkSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let sent = Poll::Ready(Ok(transmit.contents.len()));
        if self.vanished() {
            // Gone without a trace: the datagram is "sent" and never arrives.
            return sent;
        }
        let impairments = &self.link.impairments;
        if impairments.loss_percent <= 0.0 && !impairments.delays_packets() {
            return self.inner.poll_send(cx, transmit);
        }
        let fate = {
            let mut shaper = match self.shaper.lock() {
                Ok(shaper) => shaper,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut rng = rand::rng();
            shaper.fate(
                impairments,
                &self.link.counters,
                transmit.contents,
                Instant::now(),
                &mut || rng.random_range(0.0..100.0),
            )
        };
        match fate {
            Fate::Drop => sent,
            Fate::Send => self.inner.poll_send(cx, transmit),
            Fate::SendAt(departure) => {
                let Some(tx) = self.delayed_sender() else {
                    return self.inner.poll_send(cx, transmit);
                };
                static ORDER: AtomicU64 = AtomicU64::new(0);
                let delayed = Delayed {
                    departure,
                    order: ORDER.fetch_add(1, Ordering::Relaxed),
                    destination: transmit.destination,
                    ecn: transmit.ecn,
                    contents: transmit.contents.to_vec(),
                    segment_size: transmit.segment_size,
                    src_ip: transmit.src_ip,
                };
                // The task only ends with this socket; a failed send is a lost datagram.
                let _ = tx.send(delayed);
                sent
            }
        }
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
        // One datagram per transmit, so that loss and delay apply to each packet.
        1
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp() -> Vec<u8> {
        let mut packet = vec![0u8; 100];
        packet[0] = 0x80;
        packet[1] = 102;
        packet
    }

    fn rtcp() -> Vec<u8> {
        let mut packet = vec![0u8; 40];
        packet[0] = 0x80;
        packet[1] = 200;
        packet
    }

    /// A fixed sequence of "random" draws.
    fn draws(values: Vec<f64>) -> impl FnMut() -> f64 {
        let mut values = values.into_iter().cycle();
        move || values.next().unwrap_or(100.0)
    }

    #[tokio::test]
    async fn loss_comes_in_bursts_and_spares_rtcp() {
        let impairments = LinkImpairments {
            loss_percent: 10.0,
            burst_len: 3,
            ..LinkImpairments::default()
        };
        let counters = LinkCounters::default();
        let mut shaper = Shaper::default();
        // 10 % / 3 per packet: a draw of 1.0 starts a burst, 50.0 does not.
        let mut random = draws(vec![50.0, 1.0, 50.0, 50.0, 50.0, 50.0]);
        let now = Instant::now();
        let fates: Vec<_> = (0..6)
            .map(|_| shaper.fate(&impairments, &counters, &rtp(), now, &mut random))
            .collect();
        assert_eq!(
            fates,
            [
                Fate::Send,
                Fate::Drop,
                Fate::Drop,
                Fate::Drop,
                Fate::Send,
                Fate::Send
            ]
        );
        let mut always = draws(vec![0.0]);
        assert_eq!(
            shaper.fate(&impairments, &counters, &rtcp(), now, &mut always),
            Fate::Send
        );
        assert_eq!(counters.rtp_packets_lost.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_capped_link_paces_then_drops_what_would_wait_too_long() {
        let impairments = LinkImpairments {
            rate_bps: Some(800_000), // 100 bytes = 1 ms
            queue_delay: Duration::from_millis(5),
            ..LinkImpairments::default()
        };
        let counters = LinkCounters::default();
        let mut shaper = Shaper::default();
        let mut random = draws(vec![50.0]);
        let now = Instant::now();
        let fates: Vec<_> = (0..7)
            .map(|_| shaper.fate(&impairments, &counters, &rtp(), now, &mut random))
            .collect();
        for (i, fate) in fates.iter().take(5).enumerate() {
            assert_eq!(
                *fate,
                Fate::SendAt(now + Duration::from_millis(i as u64 + 1))
            );
        }
        assert_eq!(fates[5..], [Fate::Drop, Fate::Drop]);
        assert_eq!(
            counters
                .datagrams_dropped_by_rate_cap
                .load(Ordering::Relaxed),
            2
        );
        // Once the queue has drained, packets pass again.
        let later = now + Duration::from_millis(10);
        assert_eq!(
            shaper.fate(&impairments, &counters, &rtp(), later, &mut random),
            Fate::SendAt(later + Duration::from_millis(1))
        );
    }

    #[tokio::test]
    async fn retransmissions_leave_late() {
        let impairments = LinkImpairments {
            retransmission_delay: Duration::from_millis(120),
            ..LinkImpairments::default()
        };
        let counters = LinkCounters::default();
        let mut shaper = Shaper::default();
        let now = Instant::now();
        let packet = |sequence: u16| {
            let mut p = rtp();
            p[2..4].copy_from_slice(&sequence.to_be_bytes());
            p
        };
        let mut never = || 100.0;
        for sequence in [65534, 65535, 0, 1] {
            let fate = shaper.fate(&impairments, &counters, &packet(sequence), now, &mut never);
            assert_eq!(fate, Fate::Send, "new packet {sequence}");
        }
        // Sent again (behind the newest, across the wrap): a NACK's answer, late.
        let fate = shaper.fate(&impairments, &counters, &packet(65535), now, &mut never);
        assert_eq!(fate, Fate::SendAt(now + Duration::from_millis(120)));
        assert_eq!(
            counters.rtp_packets_retransmitted.load(Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn reordered_packets_leave_late() {
        let impairments = LinkImpairments {
            reorder_percent: 50.0,
            ..LinkImpairments::default()
        };
        let counters = LinkCounters::default();
        let mut shaper = Shaper::default();
        let mut random = draws(vec![10.0, 90.0]);
        let now = Instant::now();
        assert_eq!(
            shaper.fate(&impairments, &counters, &rtp(), now, &mut random),
            Fate::SendAt(now + impairments.reorder_delay)
        );
        assert_eq!(
            shaper.fate(&impairments, &counters, &rtp(), now, &mut random),
            Fate::Send
        );
    }
}
