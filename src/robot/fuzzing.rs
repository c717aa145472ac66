//! Entry points for the fuzz targets in `fuzz/` and their replay in
//! `tests/untrusted_input_regressions.rs` where the code they reach is private: the mapping of
//! a failed call, and the certificate CN fallback. (Responses are fuzzed through
//! [`super::responses`].) Not a stable API.

use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};

use super::RobotError;

/// A failed call, mapped as every RPC method maps it.
pub fn status_error(status: &tonic::Status, rpc_timeout: Duration) -> RobotError {
    RobotError::from_status(
        status,
        "Fuzz/Rpc",
        "api.spot.robot",
        "127.0.0.1:443",
        rpc_timeout,
    )
}

/// The certificate verifier's CN fallback for `der` and the DNS name `server_name`; false for
/// names rustls does not accept as DNS names.
pub fn cn_fallback_matches(der: &[u8], server_name: &str) -> bool {
    let Ok(name) = ServerName::try_from(server_name) else {
        return false;
    };
    super::tls::cn_fallback_matches(&CertificateDer::from(der), &name)
}
