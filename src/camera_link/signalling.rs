//! WebRTC signalling with the Spot CAM: HTTPS `GET` of the offer, `POST` of the answer.
//!
//! `GET https://<robot>:<sdp_port>/<sdp_path>` with `Authorization: Bearer <user token>` returns
//! `{"id": ..., "sdp": "<base64 offer>"}`; the answer goes back as `POST` `{"id", "sdp"}` to the
//! same URL. The `id` is echoed exactly as received. The camera's certificate is not publicly
//! documented, so, like the official client, it is not verified unless a CA is given.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

/// Where and how to reach the camera's signalling endpoint.
#[derive(Clone, Debug)]
pub struct SignallingConfig {
    pub host: String,
    pub port: u16,
    /// Path without the leading slash, e.g. `h264.sdp`.
    pub path: String,
    /// PEM of a CA that signs the camera's certificate; `None` disables verification.
    pub camera_ca_pem: Option<Vec<u8>>,
    pub request_timeout: Duration,
}

/// The camera's SDP offer.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The session id, kept as the raw JSON value to echo it back unchanged.
    pub id: serde_json::Value,
    pub sdp: String,
}

/// Signalling failed.
#[derive(Debug, thiserror::Error)]
pub enum SignallingError {
    #[error("the camera CA certificate is not valid PEM: {0}; check camera_ca_path")]
    CameraCa(#[source] reqwest::Error),
    #[error("could not set up the HTTPS client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(
        "could not reach the camera's signalling endpoint {url}: {source}; check robot_host and sdp_port, and that the Spot CAM is powered"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the camera refused the user token at {url} (HTTP 401); the token is re-minted on the next attempt"
    )]
    Unauthorized { url: String },
    #[error("the camera's signalling endpoint {url} is busy (HTTP 503); retrying with backoff")]
    Busy { url: String },
    #[error("{method} {url} answered HTTP {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("the camera's offer from {url} is malformed: {reason}")]
    BadOffer { url: String, reason: String },
}

impl SignallingError {
    /// The endpoint did not answer (no connection, or a timeout): the link may be down.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Whether a fresh user token might help.
    pub fn is_auth_rejection(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }
}

#[derive(Deserialize)]
struct OfferBody {
    id: serde_json::Value,
    sdp: String,
}

/// Parses the body of the camera's `GET` answer: `{"id": ..., "sdp": "<base64 SDP>"}`.
/// Untrusted input (fuzz target `offer`): never panics.
pub fn parse_offer(url: &str, body: &str) -> Result<Offer, SignallingError> {
    let bad = |reason: String| SignallingError::BadOffer {
        url: url.to_string(),
        reason,
    };
    let offer: OfferBody = serde_json::from_str(body)
        .map_err(|e| bad(format!("not JSON with \"id\" and \"sdp\": {e}")))?;
    let sdp_bytes = base64::engine::general_purpose::STANDARD
        .decode(offer.sdp.trim())
        .map_err(|e| bad(format!("sdp is not base64: {e}")))?;
    let sdp = String::from_utf8(sdp_bytes).map_err(|_| bad("sdp is not UTF-8".to_string()))?;
    if !sdp.starts_with("v=0") {
        return Err(bad("sdp does not start with v=0".to_string()));
    }
    Ok(Offer { id: offer.id, sdp })
}

/// Talks to one camera's signalling endpoint.
#[derive(Clone)]
pub struct SignallingClient {
    client: reqwest::Client,
    url: String,
}

/// Builds `https://host:port/path`, bracketing IPv6 literals.
fn endpoint_url(host: &str, port: u16, path: &str) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("https://{host}:{port}/{}", path.trim_start_matches('/'))
}

fn excerpt(body: &str) -> String {
    body.chars().take(200).collect()
}

impl SignallingClient {
    /// Prepares the client; no I/O. Logs a warning when the camera's certificate is not verified.
    pub fn new(config: &SignallingConfig) -> Result<Self, SignallingError> {
        let builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout);
        let builder = match &config.camera_ca_pem {
            Some(pem) => {
                let certificates = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(SignallingError::CameraCa)?;
                // The camera is reached through the robot's address, which its certificate
                // does not name: verify the chain, not the host name.
                builder
                    .tls_certs_only(certificates)
                    .tls_danger_accept_invalid_hostnames(true)
            }
            None => {
                tracing::warn!(
                    "the Spot CAM signalling certificate is not verified (like the official client); set camera_ca_path to verify it"
                );
                builder.tls_danger_accept_invalid_certs(true)
            }
        };
        Ok(Self {
            client: builder.build().map_err(SignallingError::Client)?,
            url: endpoint_url(&config.host, config.port, &config.path),
        })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn check_status(
        &self,
        method: &'static str,
        status: reqwest::StatusCode,
        body: &str,
    ) -> Result<(), SignallingError> {
        match status.as_u16() {
            200 => Ok(()),
            401 | 403 => Err(SignallingError::Unauthorized {
                url: self.url.clone(),
            }),
            503 => Err(SignallingError::Busy {
                url: self.url.clone(),
            }),
            code => Err(SignallingError::Status {
                method,
                url: self.url.clone(),
                status: code,
                body: excerpt(body),
            }),
        }
    }

    /// Fetches a fresh SDP offer.
    pub async fn get_offer(&self, bearer_token: &str) -> Result<Offer, SignallingError> {
        let request = self.client.get(&self.url).bearer_auth(bearer_token);
        let (status, body) = self.send(request).await?;
        self.check_status("GET", status, &body)?;
        parse_offer(&self.url, &body)
    }

    /// Sends the complete (non-trickle) answer for the offer `id`.
    pub async fn post_answer(
        &self,
        bearer_token: &str,
        id: &serde_json::Value,
        answer_sdp: &str,
    ) -> Result<(), SignallingError> {
        let body = serde_json::json!({
            "id": id,
            "sdp": base64::engine::general_purpose::STANDARD.encode(answer_sdp),
        });
        let request = self
            .client
            .post(&self.url)
            .bearer_auth(bearer_token)
            .json(&body);
        let (status, text) = self.send(request).await?;
        self.check_status("POST", status, &text)
    }

    /// Sends a request and reads the whole response body.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, String), SignallingError> {
        let unreachable = |source| SignallingError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(unreachable)?;
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers() {
        let ok = parse_offer("u", r#"{"id": 7, "sdp": "dj0wDQpvPS0="}"#).unwrap();
        assert_eq!(ok.id, serde_json::json!(7));
        assert!(ok.sdp.starts_with("v=0"));
        for bad in [
            "",
            "{}",
            r#"{"id":1,"sdp":"!!"}"#,
            r#"{"id":1,"sdp":"aGVsbG8="}"#,
        ] {
            assert!(
                matches!(parse_offer("u", bad), Err(SignallingError::BadOffer { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            endpoint_url("192.168.80.3", 31102, "h264.sdp"),
            "https://192.168.80.3:31102/h264.sdp"
        );
        assert_eq!(
            endpoint_url("::1", 31102, "/h264.sdp"),
            "https://[::1]:31102/h264.sdp"
        );
    }
}
