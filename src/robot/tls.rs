//! TLS to the robot: one connection per authority, SNI = authority, ALPN h2, and a certificate
//! verifier that accepts CN-only robot certificates.
//!
//! The robot is reached at `host:grpc_port`, but the certificate is checked against the
//! *authority* (`auth.spot.robot`, `api.spot.robot`, ...), exactly like the SDK's
//! `ssl_target_name_override`. Some robot (and test) certificates carry the authority only in the
//! subject CN with no subjectAltName; webpki never looks at the CN, so [`RobotCertVerifier`]
//! first verifies the chain with webpki and then accepts the name if it matches a DNS SAN or —
//! only when the certificate has no DNS SAN at all, like OpenSSL/grpc-core — the subject CN.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The Boston Dynamics root CA that signs every robot's gRPC certificate, from the SDK's
/// `bosdyn/client/resources/robot.pem` (PyPI `bosdyn-client` 5.2.0; public data).
/// Subject and issuer `C=US, O=Boston Dynamics, CN=Boston Dynamics Root CA`, RSA 4096,
/// valid 2018-05-01 to **2029-05-01**.
pub const BOSDYN_ROOT_CA_PEM: &[u8] = include_bytes!("bosdyn_root_ca.pem");

/// The trust configuration (root CA, protocol versions) is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TrustConfigError(pub(crate) String);

/// Builds the rustls client configuration: ring provider, TLS 1.2/1.3, ALPN h2, and the
/// CN-tolerant verifier trusting only the given root(s).
pub(crate) fn client_config(root_ca_pem: &[u8]) -> Result<Arc<ClientConfig>, TrustConfigError> {
    let mut roots = RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(root_ca_pem) {
        let cert =
            cert.map_err(|e| TrustConfigError(format!("the robot root CA is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            TrustConfigError(format!(
                "the robot root CA certificate cannot be used as a trust anchor: {e}"
            ))
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(TrustConfigError(
            "the robot root CA PEM contains no CERTIFICATE block".to_string(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(RobotCertVerifier {
        roots: Arc::new(roots),
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustConfigError(format!("TLS protocol versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Chain verification by webpki, name check by SAN or (without DNS SANs) by subject CN.
#[derive(Debug)]
pub(crate) struct RobotCertVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RobotCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        match verify_server_name(&cert, server_name) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(err) => {
                if cn_fallback_matches(end_entity, server_name) {
                    tracing::debug!(
                        server_name = ?server_name,
                        "accepted a robot certificate without DNS subjectAltName by its subject CN"
                    );
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(err)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// True when the certificate has no DNS subjectAltName and one of its subject CNs equals the
/// DNS server name (ASCII case-insensitive, a trailing dot ignored; no wildcards).
pub(super) fn cn_fallback_matches(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> bool {
    let ServerName::DnsName(dns) = server_name else {
        return false;
    };
    let wanted = dns.as_ref().trim_end_matches('.');
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) else {
        return false;
    };
    match cert.subject_alternative_name() {
        Ok(Some(san)) => {
            let has_dns_san = san
                .value
                .general_names
                .iter()
                .any(|n| matches!(n, x509_parser::extensions::GeneralName::DNSName(_)));
            if has_dns_san {
                return false;
            }
        }
        Ok(None) => {}
        // A malformed or duplicated SAN extension: never fall back.
        Err(_) => return false,
    }
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .any(|cn| cn.trim_end_matches('.').eq_ignore_ascii_case(wanted))
}

/// Why dialling an authority failed; kept in the error chain tonic returns so the client can
/// report TLS problems distinctly from network ones.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    Tcp(std::io::Error),
    Tls(std::io::Error),
    Timeout(Duration),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Tcp(e) => write!(f, "TCP connect failed: {e}"),
            ConnectFailure::Tls(e) => write!(f, "TLS handshake failed: {}", tls_reason(e)),
            ConnectFailure::Timeout(t) => write!(f, "connect + TLS handshake took over {t:?}"),
        }
    }
}

impl std::error::Error for ConnectFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectFailure::Tcp(e) | ConnectFailure::Tls(e) => Some(e),
            ConnectFailure::Timeout(_) => None,
        }
    }
}

/// A readable reason for a rustls failure wrapped in an io::Error by tokio-rustls.
pub(crate) fn tls_reason(e: &std::io::Error) -> String {
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e.to_string();
    };
    match inner {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!("the robot's certificate is not signed by the configured root CA ({inner})"),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            format!("the robot's certificate does not name this authority ({inner})")
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            format!("the robot's certificate has expired; check the clock ({inner})")
        }
        other => other.to_string(),
    }
}

/// Dials `address`, then runs TLS with SNI = `authority`, all within `timeout`.
pub(crate) async fn dial(
    address: String,
    authority: String,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<TokioIo<TlsStream<TcpStream>>, ConnectFailure> {
    let server_name = ServerName::try_from(authority.clone()).map_err(|e| {
        ConnectFailure::Tls(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("authority {authority:?} is not a valid TLS server name: {e}"),
        ))
    })?;
    let attempt = async {
        let tcp = TcpStream::connect(address.as_str())
            .await
            .map_err(ConnectFailure::Tcp)?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let tls = TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(ConnectFailure::Tls)?;
        Ok::<_, ConnectFailure>(tls)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(tls)) => {
            tracing::debug!(%address, %authority, "TLS connection to the robot established");
            Ok(TokioIo::new(tls))
        }
        Ok(Err(e)) => {
            tracing::debug!(%address, %authority, error = %e, "connecting to the robot failed");
            Err(e)
        }
        Err(_) => Err(ConnectFailure::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).expect("cert").der().clone()
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_string()).expect("dns name")
    }

    #[test]
    fn cn_is_used_only_without_dns_sans() {
        let cn_only = cert("api.spot.robot", &[]);
        assert!(cn_fallback_matches(&cn_only, &name("api.spot.robot")));
        assert!(cn_fallback_matches(&cn_only, &name("API.Spot.Robot")));
        assert!(!cn_fallback_matches(&cn_only, &name("auth.spot.robot")));
        // With a DNS SAN the CN is ignored, as in OpenSSL/grpc-core.
        let with_san = cert("api.spot.robot", &["other.spot.robot"]);
        assert!(!cn_fallback_matches(&with_san, &name("api.spot.robot")));
        // IP-only SANs do not disable the CN.
        let ip_san = cert("api.spot.robot", &["127.0.0.1"]);
        assert!(cn_fallback_matches(&ip_san, &name("api.spot.robot")));
        let ip = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        assert!(!cn_fallback_matches(&ip_san, &ip));
    }

    #[test]
    fn embedded_bd_root_ca_loads() {
        assert!(client_config(BOSDYN_ROOT_CA_PEM).is_ok());
        assert!(matches!(
            client_config(b"garbage"),
            Err(TrustConfigError(_))
        ));
    }
}
