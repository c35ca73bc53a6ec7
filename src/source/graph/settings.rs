//! Settings of the Microsoft Graph source: where Graph and the authority are, which app
//! registration signs in and how, and how hard to try; plus per-tenant overrides read from
//! `Tenant.source`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// The public cloud's authority and Graph endpoints.
pub const PUBLIC_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
pub const PUBLIC_GRAPH_BASE_URL: &str = "https://graph.microsoft.com";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("graph source setting {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("the tenant's source overrides are not valid: {0}")]
    BadOverrides(String),
}

/// How the app registration proves who it is. Selected by `kind`.
#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialSettings {
    /// The default: a client secret of the (multi-tenant) app registration.
    ClientSecret { client_secret: SecretString },
    /// A PKCS#12 certificate with its private key, base64-encoded.
    ClientCertificate {
        pkcs12_base64: SecretString,
        #[serde(default)]
        password: Option<SecretString>,
    },
    /// A Kubernetes-projected service account token exchanged through a federated credential;
    /// `token_file` defaults to `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity {
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
    /// The Azure managed identity of the host. It signs in to its own home tenant only, so it
    /// suits single-tenant deployments. `client_id` picks a user-assigned identity.
    ManagedIdentity {
        #[serde(default)]
        client_id: Option<String>,
    },
}

impl CredentialSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ClientSecret { .. } => "client_secret",
            Self::ClientCertificate { .. } => "client_certificate",
            Self::WorkloadIdentity { .. } => "workload_identity",
            Self::ManagedIdentity { .. } => "managed_identity",
        }
    }
}

impl fmt::Debug for CredentialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientSecret { .. } => f
                .debug_struct("ClientSecret")
                .field("client_secret", &"[redacted]")
                .finish(),
            Self::ClientCertificate { password, .. } => f
                .debug_struct("ClientCertificate")
                .field("pkcs12_base64", &"[redacted]")
                .field("password", &password.as_ref().map(|_| "[redacted]"))
                .finish(),
            Self::WorkloadIdentity { token_file } => f
                .debug_struct("WorkloadIdentity")
                .field("token_file", token_file)
                .finish(),
            Self::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
        }
    }
}

/// Everything the Graph source needs that is not per tenant. Built once per process.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSettings {
    /// `https://graph.microsoft.com`, or the emulator's URL.
    #[serde(default = "default_graph_base_url")]
    pub graph_base_url: url::Url,
    /// `https://login.microsoftonline.com`, or the emulator's URL; must be HTTPS.
    #[serde(default = "default_authority_host")]
    pub authority_host: url::Url,
    /// The application (client) ID of the multi-tenant app registration.
    pub client_id: String,
    pub credential: CredentialSettings,
    /// Extra PEM root certificates to trust, for a local emulator with a generated certificate.
    #[serde(default)]
    pub extra_root_certificates_pem: Vec<String>,
    /// How many of one tenant's groups are read at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_request_timeout", with = "seconds")]
    pub request_timeout: Duration,
    #[serde(default = "default_connect_timeout", with = "seconds")]
    pub connect_timeout: Duration,
    /// The most retries of one request.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The most time one group (or count, or look-up) may spend waiting between retries.
    #[serde(default = "default_max_retry_wait", with = "seconds")]
    pub max_retry_wait: Duration,
    /// The first back-off when Graph gives no `Retry-After`; doubled each retry, with jitter.
    #[serde(default = "default_backoff_base", with = "seconds")]
    pub backoff_base: Duration,
    /// The longest single back-off.
    #[serde(default = "default_backoff_max", with = "seconds")]
    pub backoff_max: Duration,
}

impl GraphSettings {
    /// Public-cloud settings for a client-secret app registration, with the defaults.
    pub fn new(client_id: impl Into<String>, credential: CredentialSettings) -> Self {
        Self {
            graph_base_url: default_graph_base_url(),
            authority_host: default_authority_host(),
            client_id: client_id.into(),
            credential,
            extra_root_certificates_pem: Vec::new(),
            concurrency: default_concurrency(),
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
            max_retries: default_max_retries(),
            max_retry_wait: default_max_retry_wait(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
        }
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.authority_host.scheme() != "https" {
            return Err(SettingsError::Invalid {
                field: "authority_host",
                problem: format!("must be an https:// URL, not {}", self.authority_host),
            });
        }
        if !matches!(self.graph_base_url.scheme(), "https" | "http") {
            return Err(SettingsError::Invalid {
                field: "graph_base_url",
                problem: format!("must be an https:// URL, not {}", self.graph_base_url),
            });
        }
        if self.client_id.trim().is_empty() {
            return Err(SettingsError::Invalid {
                field: "client_id",
                problem: "must not be empty".into(),
            });
        }
        if self.concurrency == 0 {
            return Err(SettingsError::Invalid {
                field: "concurrency",
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for GraphSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphSettings")
            .field("graph_base_url", &self.graph_base_url.as_str())
            .field("authority_host", &self.authority_host.as_str())
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field(
                "extra_root_certificates",
                &self.extra_root_certificates_pem.len(),
            )
            .field("concurrency", &self.concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("max_retry_wait", &self.max_retry_wait)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .finish()
    }
}

/// A tenant's own app registration, from `Tenant.source`: `{}` or `null` uses the shared one;
/// `{"client_id": "…", "credential": {"kind": "client_secret", "client_secret": "…"}}` replaces it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSourceOverrides {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub credential: Option<CredentialSettings>,
}

impl TenantSourceOverrides {
    pub fn from_json(value: &serde_json::Value) -> Result<Self, SettingsError> {
        if value.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(value.clone())
            .map_err(|e| SettingsError::BadOverrides(e.to_string()))
    }
}

impl fmt::Debug for TenantSourceOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSourceOverrides")
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .finish()
    }
}

fn default_graph_base_url() -> url::Url {
    url::Url::parse(PUBLIC_GRAPH_BASE_URL).expect("constant URL")
}
fn default_authority_host() -> url::Url {
    url::Url::parse(PUBLIC_AUTHORITY_HOST).expect("constant URL")
}
fn default_concurrency() -> usize {
    4
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_retries() -> u32 {
    8
}
fn default_max_retry_wait() -> Duration {
    Duration::from_secs(300)
}
fn default_backoff_base() -> Duration {
    Duration::from_millis(500)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}

/// Durations in settings files are seconds, fractions allowed.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let settings = GraphSettings::new(
            "app",
            CredentialSettings::ClientSecret {
                client_secret: SecretString::from("hunter2-very-secret"),
            },
        );
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn tenant_overrides_parse_from_the_tenant_source_json() {
        let value = serde_json::json!({
            "client_id": "11111111-2222-3333-4444-555555555555",
            "credential": {"kind": "client_secret", "client_secret": "s3cret"}
        });
        let overrides = TenantSourceOverrides::from_json(&value).expect("valid overrides");
        assert_eq!(
            overrides.client_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        match overrides.credential {
            Some(CredentialSettings::ClientSecret { client_secret }) => {
                assert_eq!(client_secret.expose_secret(), "s3cret")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(TenantSourceOverrides::from_json(&serde_json::Value::Null).is_ok());
        assert!(TenantSourceOverrides::from_json(&serde_json::json!({"clientid": "x"})).is_err());
    }

    #[test]
    fn settings_deserialize_with_fractional_second_durations() {
        let settings: GraphSettings = serde_json::from_value(serde_json::json!({
            "client_id": "app",
            "credential": {"kind": "workload_identity"},
            "backoff_base": 0.25
        }))
        .expect("valid settings");
        assert_eq!(settings.backoff_base, Duration::from_millis(250));
        assert_eq!(settings.concurrency, 4);
        settings.validate().expect("valid");
    }
}
