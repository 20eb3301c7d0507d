//! Whom an `https://` relay client trusts, and what a failed TLS handshake tells the operator.
//!
//! A client verifies a relay's certificate chain and name against the machine's own roots (the
//! system store, read by `rustls-native-certs`: on Linux the OpenSSL locations, honouring
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus, when `WIRE_CA_FILE` names a PEM file, every
//! certificate in it. There is no way to turn verification off.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, RootCertStore};

use crate::error::NetError;

/// The variable naming an extra PEM bundle of certificate authorities to trust.
pub const CA_FILE_VAR: &str = "WIRE_CA_FILE";

/// The client configuration every `https://` relay gets unless
/// [`crate::ClientOptions::tls`] says otherwise: the system roots plus `WIRE_CA_FILE`, read
/// once per process (a daemon reads it when it starts).
pub fn default_client_config() -> Result<Arc<rustls::ClientConfig>, NetError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, NetError>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let extra = std::env::var_os(CA_FILE_VAR).filter(|v| !v.is_empty());
            client_config(extra.as_deref().map(Path::new))
        })
        .clone()
}

/// A client configuration trusting the system roots and, if given, every certificate in the
/// PEM file `extra_ca`: ring, TLS 1.2 and 1.3, HTTP/1.1 by ALPN, SNI for DNS names.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, NetError> {
    let mut roots = RootCertStore::empty();
    // Certificates in the system store that rustls cannot use (an odd legacy root) are
    // skipped; a store that cannot be read at all leaves no roots, which is reported below.
    let system = rustls_native_certs::load_native_certs();
    let (_, _) = roots.add_parsable_certificates(system.certs);
    if let Some(path) = extra_ca {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| {
                NetError::Trust(format!(
                    "{CA_FILE_VAR}={}: a certificate in it cannot be used as a root ({e}); put only CA certificates in that file",
                    path.display()
                ))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(NetError::Trust(format!(
            "this machine trusts no certificate authority, so no https:// relay can be checked: no system CA certificates were found{}; install them (Debian: `apt-get install ca-certificates`) or set {CA_FILE_VAR} to a PEM file of the CA that signed the relay's certificate",
            system
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Trust(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; an unreadable file, one that is not PEM, or one with no
/// certificate in it is an error, never an empty list.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let bad = |what: String| NetError::Trust(format!("{CA_FILE_VAR}={}: {what}", path.display()));
    let pem = std::fs::read(path).map_err(|e| {
        bad(format!(
            "cannot read it ({e}); point it at a readable PEM file of CA certificates, or unset it"
        ))
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(format!(
                "it is not a valid PEM file ({e}); it should hold `-----BEGIN CERTIFICATE-----` blocks"
            ))
        })?;
    if certs.is_empty() {
        return Err(bad(
            "it holds no certificate; it should hold the CA's `-----BEGIN CERTIFICATE-----` block(s)"
                .into(),
        ));
    }
    Ok(certs)
}

/// What a failed TLS handshake with the relay at `url` means, in the operator's words.
pub(crate) fn handshake_error(url: &str, e: &std::io::Error) -> NetError {
    let certificate = |problem: &str| NetError::Certificate {
        url: url.to_owned(),
        problem: problem.to_owned(),
    };
    let Some(tls) = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) else {
        // Not a TLS-level refusal: the connection broke during the handshake.
        return NetError::Unreachable {
            url: url.to_owned(),
            reason: format!("TLS handshake failed: {e}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => {
            match c {
                CertificateError::UnknownIssuer => certificate(&format!(
                    "is not signed by a certificate authority this machine trusts; if the relay uses your own CA, set {CA_FILE_VAR}=/path/to/ca.pem (PEM) for wire and restart its daemon (`wire daemon stop`), else ask the relay's operator for a certificate from a public CA"
                )),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => certificate(
                    "is for another name than the one in the URL; use the relay's name as its certificate states it, or ask its operator for a certificate naming this host",
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => certificate(
                    "has expired; the relay's operator must renew it (or this machine's clock is wrong)",
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    certificate(
                        "is not valid yet; this machine's clock may be behind, or the relay's operator installed it too early",
                    )
                }
                CertificateError::Revoked => {
                    certificate("has been revoked; the relay's operator must replace it")
                }
                CertificateError::BadSignature | CertificateError::BadEncoding => certificate(
                    "is malformed or its signature does not verify; the relay's operator must fix its certificate chain",
                ),
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => certificate(
                    "is not for TLS servers; the relay's operator must use a server certificate",
                ),
                other => certificate(&format!(
                    "was refused ({other}); the relay's operator must fix its certificate"
                )),
            }
        }
        rustls::Error::InvalidMessage(_) => NetError::Unreachable {
            url: url.to_owned(),
            reason: format!(
                "it does not speak TLS there ({tls}); if the relay serves plain HTTP, use its http:// URL"
            ),
        },
        other => NetError::Unreachable {
            url: url.to_owned(),
            reason: format!("TLS handshake failed: {other}"),
        },
    }
}
