//! Harness of the `cert_cn` fuzz target (also replayed by
//! `tests/untrusted_input_regressions.rs`): arbitrary DER as the robot's certificate in the
//! TLS verifier's subject-CN fallback. Never panics.
//!
//! Input: the length of the server name (u8, 0 = `api.spot.robot`), the name, then the DER.
#![allow(dead_code)]

use spot_ptz_stream::robot::fuzzing::cn_fallback_matches;

const DEFAULT_NAME: &str = "api.spot.robot";

/// The fuzz target's body; returns whether the CN fallback accepted the certificate.
pub fn run(data: &[u8]) -> bool {
    let Some((&name_len, rest)) = data.split_first() else {
        return false;
    };
    let (name, der) = rest.split_at(usize::from(name_len).min(rest.len()));
    let name = match std::str::from_utf8(name) {
        Ok(name) if !name.is_empty() => name,
        _ => DEFAULT_NAME,
    };
    cn_fallback_matches(der, name)
}
