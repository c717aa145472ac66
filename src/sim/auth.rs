//! The simulated robot's user accounts and tokens (`AuthService` semantics).
//!
//! - One user (username + password).
//! - Tokens are JWT-shaped (`header.claims.signature`, base64url) with `iss`, `sub`, `iat`, `exp`
//!   and a random `jti`; they are opaque to clients and validated by lookup. Lifetime 12 h.
//! - Re-mint (`GetAuthToken{token}`) of a valid token returns a fresh token for the same user;
//!   the old one stays valid until it expires. An unknown or expired token is
//!   `STATUS_INVALID_TOKEN`.
//! - Six consecutive failed password logins (each answered `STATUS_INVALID_LOGIN`) lock logins
//!   for 60 s: every login during the lockout, even with the right password, is answered
//!   `STATUS_TEMPORARILY_LOCKED_OUT` and does not extend it. A successful login resets the count.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// Limits of the simulated authentication (the robot's values by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthLimits {
    /// Lifetime of a minted token (12 h on the robot).
    pub token_lifetime: Duration,
    /// Consecutive failed logins that trigger a lockout (6 on the robot).
    pub max_consecutive_failures: u32,
    /// How long logins stay locked (1 min on the robot).
    pub lockout: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            token_lifetime: Duration::from_secs(12 * 3600),
            max_consecutive_failures: 6,
            lockout: Duration::from_secs(60),
        }
    }
}

/// Result of one `GetAuthToken`.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// `STATUS_OK` with this token.
    Token(String),
    /// `STATUS_INVALID_LOGIN`.
    InvalidLogin,
    /// `STATUS_INVALID_TOKEN`.
    InvalidToken,
    /// `STATUS_TEMPORARILY_LOCKED_OUT`.
    LockedOut,
}

impl fmt::Debug for AuthOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthOutcome::Token(_) => f.write_str("Token(<redacted>)"),
            AuthOutcome::InvalidLogin => f.write_str("InvalidLogin"),
            AuthOutcome::InvalidToken => f.write_str("InvalidToken"),
            AuthOutcome::LockedOut => f.write_str("LockedOut"),
        }
    }
}

struct TokenInfo {
    username: String,
    expires_at: Instant,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, TokenInfo>,
    consecutive_failures: u32,
    locked_until: Option<Instant>,
    failed_login_attempts: u64,
}

/// Accounts and tokens of the simulated robot. Thread-safe; share it in an `Arc`.
pub struct AuthStore {
    username: String,
    password: String,
    limits: AuthLimits,
    inner: Mutex<Inner>,
}

impl fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthStore")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AuthStore {
    /// One user with the robot's limits (12 h tokens, lockout after 6 failures for 60 s).
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::with_limits(username, password, AuthLimits::default())
    }

    /// One user with custom limits (tests use short ones).
    pub fn with_limits(
        username: impl Into<String>,
        password: impl Into<String>,
        limits: AuthLimits,
    ) -> Self {
        AuthStore {
            username: username.into(),
            password: password.into(),
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `GetAuthToken{username, password}`.
    pub fn login(&self, username: &str, password: &str) -> AuthOutcome {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(until) = inner.locked_until {
            if now < until {
                inner.failed_login_attempts += 1;
                tracing::debug!(username, "login refused: locked out");
                return AuthOutcome::LockedOut;
            }
            inner.locked_until = None;
            inner.consecutive_failures = 0;
        }
        // Compare both fields fully; no early exit on the username.
        let user_ok = constant_time_eq(username.as_bytes(), self.username.as_bytes());
        let password_ok = constant_time_eq(password.as_bytes(), self.password.as_bytes());
        if user_ok && password_ok {
            inner.consecutive_failures = 0;
            let token = self.mint(&mut inner, username, now);
            tracing::debug!(username, "login accepted");
            return AuthOutcome::Token(token);
        }
        inner.failed_login_attempts += 1;
        inner.consecutive_failures += 1;
        if inner.consecutive_failures >= self.limits.max_consecutive_failures {
            inner.locked_until = Some(now + self.limits.lockout);
            tracing::warn!(
                username,
                consecutive_failures = inner.consecutive_failures,
                lockout_secs = self.limits.lockout.as_secs(),
                "too many failed logins: logins locked"
            );
        } else {
            tracing::debug!(
                username,
                consecutive_failures = inner.consecutive_failures,
                "login refused: wrong username or password"
            );
        }
        AuthOutcome::InvalidLogin
    }

    /// `GetAuthToken{token}`: a fresh token for the same user if `token` is valid.
    pub fn remint(&self, token: &str) -> AuthOutcome {
        let now = Instant::now();
        let mut inner = self.lock();
        let username = match inner.tokens.get(token) {
            Some(info) if info.expires_at > now => info.username.clone(),
            _ => {
                tracing::debug!("token re-mint refused: unknown or expired token");
                return AuthOutcome::InvalidToken;
            }
        };
        let fresh = self.mint(&mut inner, &username, now);
        tracing::debug!(username, "token re-minted");
        AuthOutcome::Token(fresh)
    }

    /// True if `token` was minted here and has not expired (used by every authenticated gRPC
    /// call and by the signalling server).
    pub fn is_valid_token(&self, token: &str) -> bool {
        let now = Instant::now();
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|info| info.expires_at > now)
    }

    /// Total failed login attempts since start (wrong credentials and locked-out attempts).
    pub fn failed_login_attempts(&self) -> u64 {
        self.lock().failed_login_attempts
    }

    /// The configured limits.
    pub fn limits(&self) -> AuthLimits {
        self.limits
    }

    fn mint(&self, inner: &mut Inner, username: &str, now: Instant) -> String {
        inner.tokens.retain(|_, info| info.expires_at > now);
        let issued_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let mut signature = [0u8; 32];
        rand::rng().fill_bytes(&mut signature);
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
        let claims = serde_json::json!({
            "iss": "spot_cam_sim",
            "sub": username,
            "aud": "spot_cam_sim",
            "iat": issued_secs,
            "exp": issued_secs + self.limits.token_lifetime.as_secs(),
            "jti": URL_SAFE_NO_PAD.encode(random),
        });
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        inner.tokens.insert(
            token.clone(),
            TokenInfo {
                username: username.to_string(),
                expires_at: now + self.limits.token_lifetime,
            },
        );
        token
    }
}

/// Equality without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_remint_and_lockout() {
        let store = AuthStore::with_limits(
            "user",
            "pw",
            AuthLimits {
                token_lifetime: Duration::from_secs(60),
                max_consecutive_failures: 3,
                lockout: Duration::from_millis(200),
            },
        );
        let AuthOutcome::Token(token) = store.login("user", "pw") else {
            panic!("login failed");
        };
        assert!(store.is_valid_token(&token));
        assert_eq!(token.split('.').count(), 3);
        let AuthOutcome::Token(fresh) = store.remint(&token) else {
            panic!("remint failed");
        };
        assert_ne!(fresh, token);
        assert!(store.is_valid_token(&fresh));
        assert_eq!(store.remint("bogus"), AuthOutcome::InvalidToken);
        assert!(!store.is_valid_token("bogus"));

        for _ in 0..3 {
            assert_eq!(store.login("user", "wrong"), AuthOutcome::InvalidLogin);
        }
        assert_eq!(store.login("user", "pw"), AuthOutcome::LockedOut);
        assert_eq!(store.failed_login_attempts(), 4);
        std::thread::sleep(Duration::from_millis(250));
        assert!(matches!(store.login("user", "pw"), AuthOutcome::Token(_)));
        // A wrong username is as wrong as a wrong password.
        assert_eq!(store.login("other", "pw"), AuthOutcome::InvalidLogin);
    }

    #[test]
    fn tokens_expire() {
        let store = AuthStore::with_limits(
            "u",
            "p",
            AuthLimits {
                token_lifetime: Duration::from_millis(50),
                ..AuthLimits::default()
            },
        );
        let AuthOutcome::Token(token) = store.login("u", "p") else {
            panic!("login failed");
        };
        std::thread::sleep(Duration::from_millis(80));
        assert!(!store.is_valid_token(&token));
        assert_eq!(store.remint(&token), AuthOutcome::InvalidToken);
    }

    #[test]
    fn debug_is_redacted() {
        let store = AuthStore::new("u", "secret-pw");
        assert!(!format!("{store:?}").contains("secret-pw"));
        let AuthOutcome::Token(token) = store.login("u", "secret-pw") else {
            panic!("login failed");
        };
        assert!(!format!("{:?}", AuthOutcome::Token(token.clone())).contains(&token));
    }
}
