//! The local UDP ports WebRTC may use, for a payload computer behind a firewall (Spot CORE I/O
//! admits inbound UDP on 21000–22000 only).
//!
//! webrtc 0.21 has no port-range setting (its `SettingEngine` lists a UDP network option as
//! "todo"); it binds exactly the addresses it is given, one socket per address, and a wildcard
//! (`0.0.0.0:port`) becomes one socket per interface address, every one with that port. So a
//! session needs **one** port: [`choose_bind_addrs`] picks a port of the range that is free on
//! every configured address and writes it into the bind addresses. The chosen port rotates
//! through the range, so a new session does not wait for the previous one's socket to close.
//! [`crate::camera_link::sockets::UdpBufferRuntime`] checks every socket webrtc creates against
//! the range as well, so a socket outside it fails the session instead of going unnoticed.

use std::net::{SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Ports one session binds: every socket of a session (one per bound interface address)
/// shares one port number.
pub const PORTS_PER_SESSION: u32 = 1;

/// How long [`choose_bind_addrs`] waits for a port of the range to become free (the previous
/// session's sockets close within a second).
const WAIT_FOR_FREE_PORT: Duration = Duration::from_millis(1500);
/// Between two looks through the range while every port is taken.
const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// Where the next search through a range starts (rotates through it, process-wide).
static NEXT_OFFSET: AtomicU32 = AtomicU32::new(0);

/// The local UDP ports `min..=max` (both at least 1, `min <= max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpPortRange {
    min: u16,
    max: u16,
}

/// A port range that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UdpPortRangeError {
    #[error(
        "udp_port_min is {min} and udp_port_max is {max}: set both (ports 1 to 65535, e.g. 21000 and 22000 for a Spot CORE I/O) or leave both 0 for any port"
    )]
    OnlyOneSet { min: i64, max: i64 },
    #[error(
        "{name} is {value}: accepted are ports 1 to 65535 (both udp_port_min and udp_port_max 0 = any port)"
    )]
    OutOfRange { name: &'static str, value: i64 },
    #[error(
        "udp_port_min ({min}) is above udp_port_max ({max}): the range is empty; swap the two values"
    )]
    Reversed { min: u16, max: u16 },
    #[error(
        "udp_port_min..udp_port_max ({min}..{max}) has {ports} port(s) but one WebRTC session needs {needed}; widen the range"
    )]
    TooSmall {
        min: u16,
        max: u16,
        ports: u32,
        needed: u32,
    },
}

/// No port of the range could be bound.
#[derive(Debug, thiserror::Error)]
pub enum PortChoiceError {
    #[error(
        "no UDP port of udp_port_min..udp_port_max ({min}..{max}) is free on {addrs:?} (last error on port {port}: {error}); another program (or node) uses them: stop it or widen the range"
    )]
    NoFreePort {
        min: u16,
        max: u16,
        addrs: Vec<String>,
        port: u16,
        error: String,
    },
    #[error(
        "UDP bind address {addr:?} is not an ip:port address ({error}); use e.g. 0.0.0.0:0 or 192.168.50.3:0"
    )]
    BadAddress { addr: String, error: String },
    #[error(
        "UDP bind address {addr} has a port of its own while udp_port_min..udp_port_max ({min}..{max}) is set; give the address with port 0"
    )]
    PortInAddress { addr: String, min: u16, max: u16 },
}

impl UdpPortRange {
    /// `min..=max`; both at least 1 and `min <= max`.
    pub fn new(min: u16, max: u16) -> Result<Self, UdpPortRangeError> {
        if min == 0 {
            return Err(UdpPortRangeError::OutOfRange {
                name: "udp_port_min",
                value: 0,
            });
        }
        if max == 0 {
            return Err(UdpPortRangeError::OutOfRange {
                name: "udp_port_max",
                value: 0,
            });
        }
        if min > max {
            return Err(UdpPortRangeError::Reversed { min, max });
        }
        let range = Self { min, max };
        if range.len() < PORTS_PER_SESSION {
            return Err(UdpPortRangeError::TooSmall {
                min,
                max,
                ports: range.len(),
                needed: PORTS_PER_SESSION,
            });
        }
        Ok(range)
    }

    /// From the node's two integer parameters: both 0 = any port (`None`), otherwise both must
    /// be ports (1 to 65535) with `min <= max`.
    pub fn from_params(min: i64, max: i64) -> Result<Option<Self>, UdpPortRangeError> {
        match (min, max) {
            (0, 0) => return Ok(None),
            (0, _) | (_, 0) => return Err(UdpPortRangeError::OnlyOneSet { min, max }),
            _ => {}
        }
        let port = |name: &'static str, value: i64| {
            u16::try_from(value)
                .ok()
                .filter(|p| *p >= 1)
                .ok_or(UdpPortRangeError::OutOfRange { name, value })
        };
        Self::new(port("udp_port_min", min)?, port("udp_port_max", max)?).map(Some)
    }

    pub fn min(&self) -> u16 {
        self.min
    }

    pub fn max(&self) -> u16 {
        self.max
    }

    /// Ports in the range.
    pub fn len(&self) -> u32 {
        u32::from(self.max) - u32::from(self.min) + 1
    }

    /// Never: a range has at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.min..=self.max).contains(&port)
    }
}

impl std::fmt::Display for UdpPortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.min, self.max)
    }
}

/// Resolves `addrs` (each `ip:0`, or `host:0`) and gives every one the same port of `range`,
/// one that is free on all of them now; waits up to 1.5 s for one to free up.
/// Each address is tried on its own (a wildcard covers every interface address, so it is only
/// free when no interface has the port taken).
pub async fn choose_bind_addrs(
    addrs: &[String],
    range: UdpPortRange,
) -> Result<Vec<String>, PortChoiceError> {
    let resolved = resolve(addrs, range)?;
    let deadline = Instant::now() + WAIT_FOR_FREE_PORT;
    loop {
        let start = NEXT_OFFSET.load(Ordering::Relaxed) % range.len();
        let mut last_failure = None;
        for step in 0..range.len() {
            let offset = (start + step) % range.len();
            // In range: offset < len, and min + len - 1 = max.
            let port = range.min.saturating_add(offset as u16);
            match free_on_all(&resolved, port) {
                Ok(()) => {
                    NEXT_OFFSET.store(offset + 1, Ordering::Relaxed);
                    tracing::debug!(port, %range, "WebRTC UDP port chosen");
                    return Ok(resolved
                        .iter()
                        .map(|addr| SocketAddr::new(addr.ip(), port).to_string())
                        .collect());
                }
                Err(error) => last_failure = Some((port, error)),
            }
        }
        if Instant::now() >= deadline {
            let (port, error) = last_failure.unwrap_or((range.min, "no port tried".to_owned()));
            return Err(PortChoiceError::NoFreePort {
                min: range.min,
                max: range.max,
                addrs: addrs.to_vec(),
                port,
                error,
            });
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

fn resolve(addrs: &[String], range: UdpPortRange) -> Result<Vec<SocketAddr>, PortChoiceError> {
    let mut resolved: Vec<SocketAddr> = Vec::new();
    for addr in addrs {
        let found = addr
            .to_socket_addrs()
            .map_err(|error| PortChoiceError::BadAddress {
                addr: addr.clone(),
                error: error.to_string(),
            })?;
        for socket_addr in found {
            if socket_addr.port() != 0 {
                return Err(PortChoiceError::PortInAddress {
                    addr: addr.clone(),
                    min: range.min,
                    max: range.max,
                });
            }
            if !resolved.contains(&socket_addr) {
                resolved.push(socket_addr);
            }
        }
    }
    Ok(resolved)
}

/// Whether `port` can be bound on every address (one at a time, released at once).
fn free_on_all(addrs: &[SocketAddr], port: u16) -> Result<(), String> {
    for addr in addrs {
        UdpSocket::bind(SocketAddr::new(addr.ip(), port))
            .map_err(|error| format!("{}: {error}", SocketAddr::new(addr.ip(), port)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_zero_is_any_port_and_bad_values_are_named() {
        assert_eq!(UdpPortRange::from_params(0, 0), Ok(None));
        let range = UdpPortRange::from_params(21000, 22000).unwrap().unwrap();
        assert_eq!(
            (range.min(), range.max(), range.len()),
            (21000, 22000, 1001)
        );
        assert_eq!(
            UdpPortRange::from_params(21000, 21000)
                .unwrap()
                .unwrap()
                .len(),
            1
        );
        for (min, max, names) in [
            (21000, 0, vec!["udp_port_min", "udp_port_max", "both"]),
            (0, 22000, vec!["udp_port_min", "udp_port_max", "both"]),
            (-1, 22000, vec!["udp_port_min is -1", "1 to 65535"]),
            (21000, 70000, vec!["udp_port_max is 70000", "1 to 65535"]),
            (22000, 21000, vec!["udp_port_min (22000)", "swap"]),
        ] {
            let error = UdpPortRange::from_params(min, max).unwrap_err().to_string();
            for name in names {
                assert!(error.contains(name), "{min}, {max}: {error}");
            }
        }
    }

    #[tokio::test]
    async fn every_address_gets_one_free_port_of_the_range() {
        // A port taken on 127.0.0.1 is skipped.
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let range = UdpPortRange::new(port, port.saturating_add(20)).unwrap();
        NEXT_OFFSET.store(0, Ordering::Relaxed);
        let addrs = ["127.0.0.1:0".to_owned(), "127.0.0.2:0".to_owned()];
        let chosen = choose_bind_addrs(&addrs, range).await.unwrap();
        assert_eq!(chosen.len(), 2);
        let ports: Vec<u16> = chosen
            .iter()
            .map(|a| a.parse::<SocketAddr>().unwrap().port())
            .collect();
        assert_eq!(ports[0], ports[1], "{chosen:?}");
        assert!(range.contains(ports[0]) && ports[0] != port, "{chosen:?}");
        assert!(chosen[0].starts_with("127.0.0.1:") && chosen[1].starts_with("127.0.0.2:"));
    }

    #[tokio::test]
    async fn a_range_without_a_free_port_is_reported() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let range = UdpPortRange::new(port, port).unwrap();
        let error = choose_bind_addrs(&["127.0.0.1:0".to_owned()], range)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("{port}..{port}")) && error.contains("widen the range"),
            "{error}"
        );
        let error = choose_bind_addrs(&["127.0.0.1:5000".to_owned()], range)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("port 0"), "{error}");
    }
}
