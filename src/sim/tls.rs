//! The simulator's PKI: a throw-away test root CA and server certificates, made at start-up.
//!
//! - `<cert_dir>/ca.pem`: the root CA certificate. Give it to clients as `robot_ca_path`.
//! - gRPC: one certificate per authority (`auth.spot.robot`, `api.spot.robot`, `id.spot.robot`,
//!   `payload-registration.spot.robot` and every authority the directory lists), chosen by SNI;
//!   a handshake with an unknown or missing SNI fails, as on the robot. ALPN `h2`.
//! - Signalling (HTTPS `/h264.sdp`): one certificate naming the bind IP / `localhost`, ALPN
//!   `http/1.1`.
//!
//! Certificate names: the real robot's layout is unknown (spot_wrapper's test certificates are
//! CN-only, which webpki rejects), so both layouts are served. With the default
//! [`CertLayout::Mixed`], `auth.spot.robot` gets a **CN-only** certificate (no subjectAltName)
//! and every other authority a certificate with a DNS subjectAltName (plus the same CN), so
//! every client session exercises both paths. [`CertLayout::CnOnly`] and
//! [`CertLayout::SanOnly`] force one layout for all authorities.
//!
//! Keys are ECDSA P-256 (ring-compatible); private keys stay in memory.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Authorities the SDK uses without asking the directory; they always get a certificate.
pub const BOOTSTRAP_AUTHORITIES: [&str; 4] = [
    "auth.spot.robot",
    "api.spot.robot",
    "id.spot.robot",
    "payload-registration.spot.robot",
];

/// The authority that gets a CN-only certificate with [`CertLayout::Mixed`].
pub const CN_ONLY_AUTHORITY: &str = "auth.spot.robot";

/// Subject of the generated root CA.
pub const CA_ORGANIZATION: &str = "spot_cam_sim";
pub const CA_COMMON_NAME: &str = "spot_cam_sim test root CA";

/// How the authority certificates name their authority.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertLayout {
    /// `auth.spot.robot` CN-only, all other authorities SAN + CN (the default).
    #[default]
    Mixed,
    /// Every authority CN-only, no subjectAltName (like spot_wrapper's test certificates).
    CnOnly,
    /// Every authority with a DNS subjectAltName (and CN).
    SanOnly,
}

/// Errors while making or writing the simulator certificates.
#[derive(Debug, thiserror::Error)]
pub enum SimTlsError {
    #[error("cannot write simulator TLS files in {path}: {source}; choose a writable --cert-dir")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating the {what} certificate failed: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("building the {what} TLS configuration failed: {source}")]
    Rustls {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
    #[error("{name:?} is not a usable certificate name (needs a DNS name or an IP address)")]
    InvalidName { name: String },
}

/// The generated CA and server certificates, ready as rustls server configurations.
pub struct SimCertificates {
    ca_pem_path: PathBuf,
    ca_pem: String,
    grpc: Arc<rustls::ServerConfig>,
    signalling: Arc<rustls::ServerConfig>,
    cn_only_authorities: Vec<String>,
}

impl fmt::Debug for SimCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCertificates")
            .field("ca_pem_path", &self.ca_pem_path)
            .field("cn_only_authorities", &self.cn_only_authorities)
            .finish_non_exhaustive()
    }
}

/// Chooses the server certificate by SNI (exact, case-insensitive); `None` fails the handshake.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = client_hello.server_name() else {
            tracing::debug!("gRPC TLS handshake without SNI refused");
            return None;
        };
        let found = self.by_name.get(&sni.to_ascii_lowercase()).cloned();
        if found.is_none() {
            tracing::debug!(sni, "gRPC TLS handshake for an unknown authority refused");
        }
        found
    }
}

/// Signs a one-year TLS server certificate with these names (`params`' SANs and `common_name`)
/// by the simulator's CA; `what` names it in errors.
fn sign_server_cert(
    mut params: CertificateParams,
    common_name: &str,
    key: &KeyPair,
    issuer: &Issuer<'_, KeyPair>,
    what: &str,
) -> Result<Certificate, SimTlsError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, CA_ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 365);
    params
        .signed_by(key, issuer)
        .map_err(|source| SimTlsError::Generate {
            what: what.to_string(),
            source,
        })
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // Back-date a little so clients with a slightly slow clock accept it.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

fn generate_key(what: &str) -> Result<KeyPair, SimTlsError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| SimTlsError::Generate {
        what: what.to_string(),
        source,
    })
}

fn to_certified_key(
    provider: &CryptoProvider,
    cert: CertificateDer<'static>,
    key: &KeyPair,
    what: &'static str,
) -> Result<Arc<CertifiedKey>, SimTlsError> {
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|source| SimTlsError::Rustls { what, source })?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signing_key)))
}

impl SimCertificates {
    /// [`Self::generate_with_layout`] with [`CertLayout::Mixed`].
    pub fn generate(
        cert_dir: &Path,
        authorities: &[String],
        signalling_hosts: &[String],
    ) -> Result<Self, SimTlsError> {
        Self::generate_with_layout(cert_dir, authorities, signalling_hosts, CertLayout::Mixed)
    }

    /// Makes a fresh root CA, writes it to `<cert_dir>/ca.pem` (creating the directory), and
    /// signs a certificate for every authority in [`BOOTSTRAP_AUTHORITIES`] and `authorities`,
    /// and one for the signalling server naming `signalling_hosts` (IPs or DNS names).
    pub fn generate_with_layout(
        cert_dir: &Path,
        authorities: &[String],
        signalling_hosts: &[String],
        layout: CertLayout,
    ) -> Result<Self, SimTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        // Root CA.
        let ca_key = generate_key("root CA")?;
        let mut ca_params = CertificateParams::default();
        let mut ca_dn = DistinguishedName::new();
        ca_dn.push(DnType::OrganizationName, CA_ORGANIZATION);
        ca_dn.push(DnType::CommonName, CA_COMMON_NAME);
        ca_params.distinguished_name = ca_dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut ca_params, 3650);
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|source| SimTlsError::Generate {
                what: "root CA".to_string(),
                source,
            })?;
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca_params, ca_key);

        std::fs::create_dir_all(cert_dir).map_err(|source| SimTlsError::Io {
            path: cert_dir.to_path_buf(),
            source,
        })?;
        let ca_pem_path = cert_dir.join("ca.pem");
        std::fs::write(&ca_pem_path, &ca_pem).map_err(|source| SimTlsError::Io {
            path: ca_pem_path.clone(),
            source,
        })?;

        // One certificate per authority.
        let mut names: Vec<String> = BOOTSTRAP_AUTHORITIES
            .iter()
            .map(|a| a.to_string())
            .chain(authorities.iter().map(|a| a.to_ascii_lowercase()))
            .collect();
        names.sort();
        names.dedup();
        let mut by_name = HashMap::new();
        let mut cn_only_authorities = Vec::new();
        for authority in &names {
            let cn_only = match layout {
                CertLayout::Mixed => authority == CN_ONLY_AUTHORITY,
                CertLayout::CnOnly => true,
                CertLayout::SanOnly => false,
            };
            let key = generate_key(authority)?;
            let params = if cn_only {
                CertificateParams::default()
            } else {
                CertificateParams::new(vec![authority.clone()]).map_err(|_| {
                    SimTlsError::InvalidName {
                        name: authority.clone(),
                    }
                })?
            };
            let cert = sign_server_cert(params, authority, &key, &issuer, authority)?;
            let certified = to_certified_key(
                &provider,
                cert.der().clone(),
                &key,
                "gRPC server certificate",
            )?;
            by_name.insert(authority.clone(), certified);
            if cn_only {
                cn_only_authorities.push(authority.clone());
            }
        }
        tracing::debug!(
            authorities = ?names,
            cn_only = ?cn_only_authorities,
            "generated simulator gRPC certificates"
        );

        let mut grpc = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| SimTlsError::Rustls {
                what: "gRPC",
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SniResolver { by_name }));
        grpc.alpn_protocols = vec![b"h2".to_vec()];

        // Signalling server certificate.
        let mut sans = Vec::new();
        for host in signalling_hosts {
            let san = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.clone()
                        .try_into()
                        .map_err(|_| SimTlsError::InvalidName { name: host.clone() })?,
                ),
            };
            sans.push(san);
        }
        let signalling_key = generate_key("signalling")?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let common_name = signalling_hosts
            .first()
            .map(String::as_str)
            .unwrap_or("spot_cam_sim signalling");
        let signalling_cert =
            sign_server_cert(params, common_name, &signalling_key, &issuer, "signalling")?;
        let key_der =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signalling_key.serialize_der()));
        let mut signalling = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| SimTlsError::Rustls {
                what: "signalling",
                source,
            })?
            .with_no_client_auth()
            .with_single_cert(vec![signalling_cert.der().clone()], key_der)
            .map_err(|source| SimTlsError::Rustls {
                what: "signalling",
                source,
            })?;
        signalling.alpn_protocols = vec![b"http/1.1".to_vec()];

        Ok(SimCertificates {
            ca_pem_path,
            ca_pem,
            grpc: Arc::new(grpc),
            signalling: Arc::new(signalling),
            cn_only_authorities,
        })
    }

    /// Where the root CA certificate was written (`<cert_dir>/ca.pem`).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// The root CA certificate in PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Authorities whose certificate names them only in the subject CN.
    pub fn cn_only_authorities(&self) -> &[String] {
        &self.cn_only_authorities
    }

    /// gRPC server TLS: certificate by SNI, ALPN h2; unknown SNI fails the handshake.
    pub fn grpc_server_config(&self) -> Arc<rustls::ServerConfig> {
        self.grpc.clone()
    }

    /// Signalling server TLS: one certificate for the signalling hosts, ALPN http/1.1.
    pub fn signalling_server_config(&self) -> Arc<rustls::ServerConfig> {
        self.signalling.clone()
    }
}
