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

/// What an emulator adds to each request's answer time, so a benchmark sees a target and a Graph
/// that answer like services across a network: `base` ± `jitter` (a fraction, 0.25 = ±25%),
/// uniformly. The Entra emulator answers that long after the request arrived, building its
/// answer meanwhile (a page of 999 members is the emulator's largest work); the HighQ emulator
/// waits first, then carries the request out, so a caller that gives up while it waits changed
/// nothing. [`Latency::NONE`] (the in-process constructors' default, so tests stay fast) adds
/// nothing; `dirsync emulate` and `cargo bench --bench e2e` use [`Latency::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub base: std::time::Duration,
    pub jitter: f64,
}

impl Latency {
    pub const NONE: Self = Self {
        base: std::time::Duration::ZERO,
        jitter: 0.0,
    };
    /// 20 ms ± 25%.
    pub const DEFAULT: Self = Self::millis(20);

    /// `millis` ms ± 25%; 0 is [`Latency::NONE`].
    pub const fn millis(millis: u64) -> Self {
        Self {
            base: std::time::Duration::from_millis(millis),
            jitter: 0.25,
        }
    }

    /// This request's delay, drawn afresh.
    pub fn draw(&self) -> std::time::Duration {
        if self.base.is_zero() {
            return std::time::Duration::ZERO;
        }
        let spread = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + rand::random_range(-spread..=spread);
        self.base.mul_f64(factor)
    }

    /// Sleeps for one draw (not at all when there is no latency).
    pub async fn wait(&self) {
        let delay = self.draw();
        if !delay.is_zero() {
            sleep_until_precisely(tokio::time::Instant::now() + delay).await;
        }
    }
}

/// Sleeps until `deadline`, to within a fraction of a millisecond, so an emulator's latency is
/// the one it was set to. tokio's timer wakes at the first millisecond tick after a deadline,
/// and later on a busy machine: a 20 ms latency came to 21.4 ms on average. The timer sleeps to
/// just short of the deadline, and the blocking pool's `thread::sleep` the rest.
pub async fn sleep_until_precisely(deadline: tokio::time::Instant) {
    const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(2);
    if let Some(early) = deadline.checked_sub(TIMER_SLACK) {
        tokio::time::sleep_until(early).await;
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        // A failed join is a panic in `thread::sleep`: there is nothing left to wait for.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::NONE
    }
}

/// Requests an emulator served, by kind (`"graph.members_page"`, `"highq.create_user"` …), so a
/// benchmark can compare them with their lower bounds. Read through the emulator's handle
/// (`request_counts`) or `GET /_emulator/requests`.
#[derive(Debug, Default)]
pub struct RequestCounts(std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>);

impl RequestCounts {
    pub fn count(&self, kind: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(kind).or_default() += 1;
    }

    /// Every kind counted so far, by name.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    /// Starts counting from zero (between a benchmark's scenarios).
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// `GET /_emulator/requests`: the counts as a JSON object.
pub(crate) fn counts_json(counts: &RequestCounts) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!(counts.snapshot()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_precise_sleep_never_answers_before_its_deadline() {
        for millis in [0, 1, 3, 7] {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(millis);
            sleep_until_precisely(deadline).await;
            assert!(tokio::time::Instant::now() >= deadline, "{millis} ms");
        }
    }

    #[test]
    fn a_latency_is_drawn_within_its_jitter() {
        let latency = Latency::millis(20);
        for _ in 0..1000 {
            let delay = latency.draw();
            assert!(delay >= std::time::Duration::from_millis(15), "{delay:?}");
            assert!(delay <= std::time::Duration::from_millis(25), "{delay:?}");
        }
        assert_eq!(Latency::NONE.draw(), std::time::Duration::ZERO);
    }
}
