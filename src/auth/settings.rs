//! `[auth]` settings: where the service is reached, sign-in with Microsoft Entra (OpenID
//! Connect), session lifetimes and API token limits.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::EntraObjectId;

/// The multi-tenant Entra authority: anyone from any organisation may sign in, and grants
/// (or app roles) decide what they may do.
pub const ENTRA_ORGANIZATIONS_AUTHORITY: &str =
    "https://login.microsoftonline.com/organizations/v2.0";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// How people reach the service (`https://dirsync.example.com`): the sign-in redirect URI is
    /// `{public_url}/auth/callback`, and session cookies are `Secure` when it is `https`.
    #[serde(default)]
    pub public_url: Option<Url>,
    /// Sign-in with Microsoft Entra; without it only API tokens authenticate.
    #[serde(default)]
    pub oidc: Option<OidcSettings>,
    #[serde(default)]
    pub session: SessionSettings,
    #[serde(default)]
    pub tokens: TokenSettings,
}

impl AuthSettings {
    /// Cookies carry `Secure` when the service is reached over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|url| url.scheme() == "https")
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.public_url {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "auth.public_url {url} must be an http(s) URL with a host"
                ));
            }
        }
        if self.oidc.is_some() && self.public_url.is_none() {
            return Err(
                "auth.oidc needs auth.public_url: the sign-in redirect URI is {public_url}/auth/callback"
                    .to_owned(),
            );
        }
        if let Some(oidc) = &self.oidc {
            if oidc.authority.scheme() != "https" {
                return Err(format!(
                    "auth.oidc.authority {} must be an https:// URL",
                    oidc.authority
                ));
            }
            if oidc.client_id.trim().is_empty() {
                return Err("auth.oidc.client_id must not be empty".to_owned());
            }
        }
        let s = &self.session;
        if s.idle_minutes == 0 || s.absolute_hours == 0 {
            return Err(
                "auth.session idle_minutes and absolute_hours must be at least 1".to_owned(),
            );
        }
        let t = &self.tokens;
        if t.default_days == 0 || t.max_days == 0 || t.default_days > t.max_days {
            return Err(
                "auth.tokens: default_days and max_days must be at least 1, default_days at most max_days"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// The Entra app registration people sign in with (a web app with a client secret). Shown by
/// `dirsync config check` with the secret redacted.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// `https://login.microsoftonline.com/organizations/v2.0` (any organisation), or one
    /// directory's `…/{tenant-id}/v2.0`; the emulator's for tests. Its
    /// `/.well-known/openid-configuration` is read at each sign-in.
    #[serde(default = "default_authority")]
    pub authority: Url,
    /// The application (client) ID of the sign-in app registration.
    pub client_id: String,
    #[serde(serialize_with = "redacted")]
    pub client_secret: SecretString,
    /// The Entra directory whose people the `DirSync.Operator` app role makes operators. An
    /// operator app role from any other directory grants nothing: otherwise any customer's
    /// Entra admin could make themselves an operator of every tenant.
    #[serde(default)]
    pub operator_tenant_id: Option<EntraObjectId>,
    /// Extra PEM root certificates to trust (the local emulator's CA).
    #[serde(default, serialize_with = "certificate_count")]
    pub extra_root_certificates_pem: Vec<String>,
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

impl fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("authority", &self.authority.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("operator_tenant_id", &self.operator_tenant_id)
            .field(
                "extra_root_certificates",
                &self.extra_root_certificates_pem.len(),
            )
            .field("request_timeout_secs", &self.request_timeout_secs)
            .finish()
    }
}

fn redacted<S: serde::Serializer>(_: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str("[redacted]")
}

fn certificate_count<S: serde::Serializer>(
    pems: &[String],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{} certificate(s)", pems.len()))
}

fn default_authority() -> Url {
    Url::parse(ENTRA_ORGANIZATIONS_AUTHORITY).expect("constant URL")
}

fn default_request_timeout_secs() -> u64 {
    15
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle_minutes: u32,
    /// A session ends this long after sign-in, however busy.
    pub absolute_hours: u32,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_minutes: 30,
            absolute_hours: 12,
        }
    }
}

impl SessionSettings {
    pub fn idle(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.idle_minutes))
    }

    pub fn absolute(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.absolute_hours))
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// A token's lifetime when none is asked for.
    pub default_days: u32,
    /// The longest lifetime a token may be given.
    pub max_days: u32,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            default_days: 90,
            max_days: 366,
        }
    }
}
