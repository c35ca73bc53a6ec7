//! Local stand-ins for the services dirsync talks to, so tests, the demo and `dirsync emulate`
//! run without the internet: [`entra`] emulates the Entra token endpoint and the Microsoft Graph
//! subset dirsync uses; [`highq`] emulates HighQ Collaborate's REST API.
//!
//! Each emulator serves HTTPS with a certificate generated at start (a throwaway CA and a leaf
//! for `localhost` and `127.0.0.1`); clients trust the CA's PEM, which the handle exposes.

pub mod entra;
pub mod highq;

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("generating the emulator's TLS certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("setting up TLS failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the emulator could not listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("the fixture {path} could not be read: {problem}")]
    Fixture { path: String, problem: String },
}

/// A generated CA and the server configuration whose leaf it signed.
pub struct GeneratedTls {
    /// The CA certificate, PEM: what a client adds to its trusted roots.
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Generates a CA and a leaf for `localhost` and `127.0.0.1` (plus `extra_names`), signed by it.
pub fn generate_tls(extra_names: &[String]) -> Result<GeneratedTls, EmulatorError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dirsync emulator CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(extra_names.iter().cloned());
    let mut leaf_params = CertificateParams::new(names)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "dirsync emulator");
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(GeneratedTls {
        ca_pem: ca.pem(),
        server_config: Arc::new(server_config),
    })
}
