//! Settings of the Microsoft Graph source: where Graph and the authority are, which app
//! registration signs in and how, and how hard to try; plus per-tenant overrides read from
//! `Tenant.source`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

use crate::domain::SecretSetting;
use crate::tenant::{SourceCredential, SourceSettings};

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

/// How the app registration proves who it is. Selected by `kind`. Secrets serialize as
/// `[redacted]` (for `dirsync config check`), by their type.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialSettings {
    /// The default: a client secret of the (multi-tenant) app registration.
    ClientSecret {
        #[serde(serialize_with = "redacted")]
        client_secret: SecretString,
    },
    /// A PKCS#12 certificate with its private key, base64-encoded.
    ClientCertificate {
        #[serde(serialize_with = "redacted")]
        pkcs12_base64: SecretString,
        #[serde(default, serialize_with = "redacted_if_set")]
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
    /// A SHA-256 of the credential (kind and secrets): equal for the same credential, different
    /// once a secret is rotated. Not reversible, so safe to keep as a cache key.
    pub fn fingerprint(&self) -> [u8; 32] {
        use secrecy::ExposeSecret;
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.kind());
        match self {
            Self::ClientSecret { client_secret } => hash.update(client_secret.expose_secret()),
            Self::ClientCertificate {
                pkcs12_base64,
                password,
            } => {
                hash.update(pkcs12_base64.expose_secret());
                hash.update([0]);
                if let Some(password) = password {
                    hash.update(password.expose_secret());
                }
            }
            Self::WorkloadIdentity { token_file } => {
                hash.update(format!("{token_file:?}"));
            }
            Self::ManagedIdentity { client_id } => hash.update(format!("{client_id:?}")),
        }
        hash.finalize().into()
    }

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

fn redacted<S: Serializer>(_: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str("[redacted]")
}

fn redacted_if_set<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str("[redacted]"),
        None => serializer.serialize_none(),
    }
}

/// Certificates are public but long: shown as how many there are.
fn certificate_count<S: Serializer>(pems: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{} PEM certificate(s)", pems.len()))
}

/// Everything the Graph source needs that is not per tenant. Built once per process.
#[derive(Clone, Serialize, Deserialize)]
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
    #[serde(default, serialize_with = "certificate_count")]
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

    /// The first of [`problems`](Self::problems), if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every setting that cannot work: URLs of the wrong scheme, an empty client, and numbers
    /// outside their ranges (a concurrency of 0 would never read a group; a timeout of 0 would
    /// fail every request).
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        let mut invalid = |field: &'static str, problem: String| {
            problems.push(SettingsError::Invalid { field, problem })
        };
        if self.authority_host.scheme() != "https" {
            invalid(
                "authority_host",
                format!("must be an https:// URL, not {}", self.authority_host),
            );
        }
        if !matches!(self.graph_base_url.scheme(), "https" | "http") {
            invalid(
                "graph_base_url",
                format!("must be an https:// URL, not {}", self.graph_base_url),
            );
        }
        if self.client_id.trim().is_empty() {
            invalid("client_id", "must not be empty".into());
        }
        if !(1..=64).contains(&self.concurrency) {
            invalid(
                "concurrency",
                format!(
                    "= {} is out of range: it must be from 1 to 64 (groups read at once)",
                    self.concurrency
                ),
            );
        }
        if self.max_retries > 20 {
            invalid(
                "max_retries",
                format!(
                    "= {} is out of range: it must be from 0 to 20",
                    self.max_retries
                ),
            );
        }
        let seconds: [(&'static str, Duration, u64); 5] = [
            ("request_timeout", self.request_timeout, 3_600),
            ("connect_timeout", self.connect_timeout, 600),
            ("max_retry_wait", self.max_retry_wait, 86_400),
            ("backoff_base", self.backoff_base, 600),
            ("backoff_max", self.backoff_max, 3_600),
        ];
        for (field, value, max_secs) in seconds {
            if value.is_zero() || value > Duration::from_secs(max_secs) {
                invalid(
                    field,
                    format!(
                        "= {} s is out of range: it must be more than 0 and at most {max_secs} seconds",
                        value.as_secs_f64()
                    ),
                );
            }
        }
        if self.backoff_max < self.backoff_base {
            invalid(
                "backoff_max",
                format!(
                    "= {} s must not be shorter than backoff_base ({} s)",
                    self.backoff_max.as_secs_f64(),
                    self.backoff_base.as_secs_f64()
                ),
            );
        }
        problems
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

    /// The overrides of a tenant's typed source settings, whose secrets must already be read
    /// (`Tenant::resolved`).
    pub fn from_settings(source: &SourceSettings) -> Result<Self, SettingsError> {
        let value = |secret: &SecretSetting, name: &str| {
            secret
                .value(name)
                .cloned()
                .map_err(SettingsError::BadOverrides)
        };
        let credential = match &source.credential {
            None => None,
            Some(SourceCredential::ClientSecret { client_secret }) => {
                Some(CredentialSettings::ClientSecret {
                    client_secret: value(client_secret, "source.credential.client_secret")?,
                })
            }
            Some(SourceCredential::ClientCertificate {
                pkcs12_base64,
                password,
            }) => Some(CredentialSettings::ClientCertificate {
                pkcs12_base64: value(pkcs12_base64, "source.credential.pkcs12_base64")?,
                password: password
                    .as_ref()
                    .map(|p| value(p, "source.credential.password"))
                    .transpose()?,
            }),
        };
        Ok(Self {
            client_id: source.client_id.clone(),
            credential,
        })
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
/// How many of one tenant's groups are read at the same time by default. Five rather than four
/// (issue 13): a tenant of one large group and many small ones then reads the small ones on four
/// slots beside the large group's chain of pages rather than finishing them after it; at Graph's
/// usual 100–300 ms a page that is 17–50 requests a second, far inside the 8,000 resource units
/// per 10 s an app has in a large tenant.
pub const DEFAULT_CONCURRENCY: usize = 5;

fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
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

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

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
    fn a_rotated_secret_changes_the_credentials_fingerprint() {
        let secret = |text: &str| CredentialSettings::ClientSecret {
            client_secret: SecretString::from(text.to_owned()),
        };
        assert_eq!(secret("a").fingerprint(), secret("a").fingerprint());
        assert_ne!(secret("a").fingerprint(), secret("b").fingerprint());
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
        assert_eq!(settings.concurrency, DEFAULT_CONCURRENCY);
        settings.validate().expect("valid");
    }
}
