//! Errors of the robot client, and the mapping from gRPC statuses the way the Spot SDK does it.
//!
//! Messages say what failed and what to do about it. None of them ever contains the password or
//! a token: only usernames, authorities, addresses and RPC names are interpolated.

use std::time::Duration;

use tonic::Code;

use super::tls::{ConnectFailure, TrustConfigError, tls_reason};

/// Everything [`super::RobotClient`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RobotError {
    /// `GetAuthToken` answered `STATUS_INVALID_LOGIN`.
    #[error(
        "the robot rejected the username or password (STATUS_INVALID_LOGIN); check \
         BOSDYN_CLIENT_USERNAME / BOSDYN_CLIENT_PASSWORD. Six consecutive failures lock logins \
         for one minute"
    )]
    InvalidLogin,
    /// `GetAuthToken` answered `STATUS_TEMPORARILY_LOCKED_OUT`.
    #[error(
        "the robot temporarily locked logins after repeated failures \
         (STATUS_TEMPORARILY_LOCKED_OUT); fix the credentials and wait at least one minute \
         before logging in again"
    )]
    LockedOut,
    /// `GetAuthToken{token}` answered `STATUS_INVALID_TOKEN` (expired or foreign token).
    #[error(
        "the robot rejected the token on re-mint (STATUS_INVALID_TOKEN: expired, revoked or from \
         another robot); log in again with username and password"
    )]
    InvalidToken,
    /// A call was refused for a missing or invalid token (gRPC UNAUTHENTICATED, or CANCELLED
    /// "401" from the robot's proxy).
    #[error(
        "the robot refused the call as unauthenticated (missing, expired or invalid user token); \
         log in again"
    )]
    Unauthenticated,
    /// `refresh_token` was called before `login`.
    #[error("no user token yet: call login() before refresh_token()")]
    NotLoggedIn,
    /// A credentials environment variable is missing or empty.
    #[error(
        "environment variable {variable} is not set or empty; export BOSDYN_CLIENT_USERNAME=<user> \
         and BOSDYN_CLIENT_PASSWORD=<password> with the robot's credentials"
    )]
    MissingCredentials { variable: &'static str },
    /// The client configuration is unusable (bad CA PEM, bad authority name, ...).
    #[error("invalid robot client configuration: {reason}")]
    InvalidConfig { reason: String },
    /// The root CA file given as `robot_ca_path` could not be read.
    #[error(
        "cannot read the robot root CA file {path} (robot_ca_path): {reason}; point robot_ca_path \
         at a PEM certificate, or leave it empty to use the embedded Boston Dynamics root CA"
    )]
    CaFile { path: String, reason: String },
    /// TCP connection failed, was refused, reset, or the robot's proxy is unavailable.
    #[error(
        "cannot reach the robot at {address} (authority {authority}): {reason}; check the robot's \
         host/IP and grpc_port, that it is powered on, and the network path"
    )]
    Unreachable {
        address: String,
        authority: String,
        reason: String,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    #[error(
        "TLS handshake with the robot at {address} for authority {authority} failed: {reason}. The \
         robot certificate must chain to the configured root CA (the embedded Boston Dynamics \
         root CA unless robot_ca_path points at another PEM file, e.g. the simulator's ca.pem) \
         and name the authority"
    )]
    Tls {
        address: String,
        authority: String,
        reason: String,
    },
    /// The connection, TLS handshake or RPC did not finish in time.
    #[error(
        "{what} timed out after {timeout:?}; the robot may be overloaded or the network lossy \
         (connect_timeout / rpc_timeout configure the limits)"
    )]
    Timeout { what: String, timeout: Duration },
    /// The directory does not list the service, or the robot's proxy has no such service at
    /// that authority (CANCELLED "404").
    #[error(
        "service {service} is not available{at}: {detail}; payload services such as Spot CAM \
         register late after boot, so wait for them (wait_for_services) and check that the \
         payload is attached and enabled",
        at = authority.as_deref().map(|a| format!(" at authority {a}")).unwrap_or_default()
    )]
    ServiceNotFound {
        service: String,
        authority: Option<String>,
        detail: String,
    },
    /// The response header carried `CODE_INVALID_REQUEST` (e.g. an unknown screen or PTZ name).
    #[error("the robot rejected {rpc} as an invalid request: {message}")]
    InvalidRequest { rpc: &'static str, message: String },
    /// The response header was missing or carried an error code other than CODE_OK.
    #[error("{rpc} failed on the robot: header error {code}: {message}")]
    HeaderError {
        rpc: &'static str,
        code: String,
        message: String,
    },
    /// The response was well-formed gRPC but not what the protocol promises.
    #[error("unexpected {rpc} response: {detail}")]
    UnexpectedResponse { rpc: &'static str, detail: String },
    /// Any other gRPC failure.
    #[error("{rpc} failed with gRPC status {code:?}: {message}")]
    Rpc {
        rpc: &'static str,
        code: Code,
        message: String,
    },
}

impl RobotError {
    /// True when the robot rejected the credentials or the token: retrying the same call with
    /// the same credentials will not help (and wrong passwords lead to a lockout).
    pub fn is_auth_rejection(&self) -> bool {
        matches!(
            self,
            RobotError::InvalidLogin
                | RobotError::LockedOut
                | RobotError::InvalidToken
                | RobotError::Unauthenticated
        )
    }

    /// True for transient failures worth retrying after a back-off (network, timeouts, an
    /// overloaded or restarting robot). Auth rejections, TLS and configuration errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            RobotError::Unreachable { .. } | RobotError::Timeout { .. } => true,
            RobotError::HeaderError { code, .. } => code == "CODE_INTERNAL_SERVER_ERROR",
            RobotError::Rpc { code, .. } => matches!(
                code,
                Code::Unavailable
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::Cancelled
                    | Code::Unknown
                    | Code::Internal
            ),
            _ => false,
        }
    }

    /// Maps a failed call like the SDK's `translate_exception`.
    pub(crate) fn from_status(
        status: &tonic::Status,
        rpc: &'static str,
        authority: &str,
        address: &str,
        rpc_timeout: Duration,
    ) -> RobotError {
        // A connection failure raised by our own connector keeps its cause in the source chain.
        if let Some(failure) = find_connect_failure(status) {
            return from_connect_failure(failure, authority, address);
        }
        let message = status.message().to_string();
        match status.code() {
            Code::Unauthenticated => RobotError::Unauthenticated,
            Code::Cancelled if message.contains("401") => RobotError::Unauthenticated,
            Code::Cancelled if message.contains("404") => RobotError::ServiceNotFound {
                service: rpc.to_string(),
                authority: Some(authority.to_string()),
                detail: message,
            },
            Code::Cancelled if message.contains("504") => RobotError::Timeout {
                what: format!("{rpc} (robot proxy)"),
                timeout: rpc_timeout,
            },
            Code::DeadlineExceeded => RobotError::Timeout {
                what: rpc.to_string(),
                timeout: rpc_timeout,
            },
            Code::Unavailable => RobotError::Unreachable {
                address: address.to_string(),
                authority: authority.to_string(),
                reason: describe_status(status),
            },
            code => RobotError::Rpc {
                rpc,
                code,
                message: describe_status(status),
            },
        }
    }
}

/// The status message plus the innermost causes (hyper/h2 errors are terse on their own).
fn describe_status(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    let mut depth = 0;
    while let Some(err) = source {
        let s = err.to_string();
        if !s.is_empty() && !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = err.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    text
}

impl From<TrustConfigError> for RobotError {
    fn from(error: TrustConfigError) -> Self {
        RobotError::InvalidConfig { reason: error.0 }
    }
}

fn from_connect_failure(failure: &ConnectFailure, authority: &str, address: &str) -> RobotError {
    match failure {
        ConnectFailure::Tcp(e) => RobotError::Unreachable {
            address: address.to_string(),
            authority: authority.to_string(),
            reason: e.to_string(),
        },
        ConnectFailure::Tls(e) => RobotError::Tls {
            address: address.to_string(),
            authority: authority.to_string(),
            reason: tls_reason(e),
        },
        ConnectFailure::Timeout(t) => RobotError::Timeout {
            what: format!("connecting to {address} for {authority}"),
            timeout: *t,
        },
    }
}

fn find_connect_failure(status: &tonic::Status) -> Option<&ConnectFailure> {
    let mut source = std::error::Error::source(status);
    let mut depth = 0;
    while let Some(err) = source {
        if let Some(failure) = err.downcast_ref::<ConnectFailure>() {
            return Some(failure);
        }
        source = err.source();
        depth += 1;
        if depth > 16 {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: tonic::Status) -> RobotError {
        RobotError::from_status(
            &status,
            "Svc/Rpc",
            "api.spot.robot",
            "10.0.0.3:443",
            Duration::from_secs(1),
        )
    }

    #[test]
    fn statuses_map_like_the_sdk() {
        assert!(matches!(
            map(tonic::Status::unauthenticated("x")),
            RobotError::Unauthenticated
        ));
        assert!(matches!(
            map(tonic::Status::cancelled("401 Unauthorized")),
            RobotError::Unauthenticated
        ));
        assert!(matches!(
            map(tonic::Status::cancelled("404 Not Found")),
            RobotError::ServiceNotFound { .. }
        ));
        assert!(matches!(
            map(tonic::Status::cancelled("504 Gateway Timeout")),
            RobotError::Timeout { .. }
        ));
        assert!(matches!(
            map(tonic::Status::deadline_exceeded("slow")),
            RobotError::Timeout { .. }
        ));
        let unavailable = map(tonic::Status::unavailable("connection reset"));
        assert!(matches!(unavailable, RobotError::Unreachable { .. }));
        assert!(unavailable.is_retryable());
        let other = map(tonic::Status::permission_denied("no"));
        assert!(matches!(
            other,
            RobotError::Rpc {
                code: Code::PermissionDenied,
                ..
            }
        ));
        assert!(!other.is_retryable());
    }

    #[test]
    fn messages_are_actionable() {
        let missing = RobotError::MissingCredentials {
            variable: "BOSDYN_CLIENT_PASSWORD",
        };
        let text = missing.to_string();
        assert!(text.contains("BOSDYN_CLIENT_PASSWORD") && text.contains("export"));
        assert!(RobotError::InvalidLogin.is_auth_rejection());
        assert!(!RobotError::InvalidLogin.is_retryable());
    }
}
