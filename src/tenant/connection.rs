//! A tenant's source and target connection settings, typed: parsed and checked when a tenant is
//! applied (file or API), so a run never finds a configuration error apply could have caught.
//! Secret fields are [`SecretSetting`]s, redacted wherever they are shown.
//!
//! A stored secret, and the HighQ refresh token, belong to the connection they were given for
//! ([`SourceIdentity`], [`TargetIdentity`]): when an operator changes where a tenant connects,
//! neither is carried over, so nothing stored is ever sent to a host it was not meant for.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::{Host, Url};

use crate::domain::{EntraObjectId, SecretEnvPolicy, SecretSetting};
use crate::target::highq::{HighQAdapter, HighQConfig, MemoryTokenStore};
use crate::target::scim::{ScimAdapter, ScimSettings};

/// `[tenant.source]`: a tenant's own Entra app registration instead of the service-wide one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// The application (client) ID of the tenant's own app registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<SourceCredential>,
    /// When the app credential (the tenant's own, or the service-wide one) expires, for the
    /// expiry warnings (issue 14 item 6) when the app may not read its own registration in Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How a tenant's own app registration proves who it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceCredential {
    ClientSecret {
        client_secret: SecretSetting,
    },
    /// A PKCS#12 certificate with its private key, base64-encoded.
    ClientCertificate {
        pkcs12_base64: SecretSetting,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<SecretSetting>,
    },
}

/// `[tenant.target]`: where a tenant's users and groups are synced to, selected by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per tenant, built rarely
pub enum TargetSettings {
    Highq(HighQConfig),
    Scim(ScimSettings),
}

/// What the source's stored secrets were given for: the Entra directory and the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity {
    pub entra_tenant_id: EntraObjectId,
    pub client_id: Option<String>,
}

/// What the target's stored secrets and refresh token were given for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetIdentity {
    pub kind: &'static str,
    pub base_url: String,
    pub client_id: Option<String>,
}

/// A secret field and where it is (`target.client_secret`), for messages.
type SecretField<'a> = (String, &'a mut SecretSetting);

impl SourceSettings {
    /// Parses `[tenant.source]`, refusing unknown keys and naming the field that is wrong.
    pub fn parse(value: &Value) -> Result<Self, String> {
        if value.is_null() {
            return Ok(Self::default());
        }
        let settings: Self = strict_parse("source", value)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(client_id) = &self.client_id {
            EntraObjectId::parse(client_id).map_err(|_| {
                format!(
                    "source.client_id {client_id:?} is not an application (client) ID, a GUID \
                     such as 00000000-0000-0000-0000-000000000000"
                )
            })?;
        }
        if self.credential.is_some() && self.client_id.is_none() {
            return Err(
                "source.credential needs source.client_id: a credential belongs to one app registration"
                    .to_owned(),
            );
        }
        if self.client_id.is_some() && self.credential.is_none() {
            return Err(
                "source.client_id needs source.credential: the service-wide credential belongs to the service-wide app"
                    .to_owned(),
            );
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.client_id.is_none() && self.credential.is_none()
    }

    fn secrets_mut(&mut self) -> Vec<SecretField<'_>> {
        match &mut self.credential {
            None => Vec::new(),
            Some(SourceCredential::ClientSecret { client_secret }) => {
                vec![("source.credential.client_secret".to_owned(), client_secret)]
            }
            Some(SourceCredential::ClientCertificate {
                pkcs12_base64,
                password,
            }) => {
                let mut fields =
                    vec![("source.credential.pkcs12_base64".to_owned(), pkcs12_base64)];
                if let Some(password) = password {
                    fields.push(("source.credential.password".to_owned(), password));
                }
                fields
            }
        }
    }
}

impl TargetSettings {
    /// Parses `[tenant.target]`: the kind, every field typed, unknown keys refused, the URL's
    /// scheme and host checked, and the adapter's own checks run.
    pub fn parse(value: &Value) -> Result<Option<Self>, String> {
        let mut fields = match value {
            Value::Null => return Ok(None),
            Value::Object(map) if map.is_empty() => return Ok(None),
            Value::Object(map) => map.clone(),
            _ => return Err("target must be a table of settings".to_owned()),
        };
        // Each kind's settings are read on their own (not through the tagged enum, which would
        // buffer them and lose the field paths and unknown keys of nested tables).
        let settings = match fields.remove("kind") {
            Some(Value::String(kind)) if kind == "highq" => {
                Self::Highq(strict_parse("target", &Value::Object(fields))?)
            }
            Some(Value::String(kind)) if kind == "scim" => {
                Self::Scim(strict_parse("target", &Value::Object(fields))?)
            }
            Some(Value::String(kind)) => {
                return Err(format!(
                    "target.kind {kind:?} is not supported (supported: highq, scim)"
                ));
            }
            _ => return Err("target.kind is missing (highq or scim)".to_owned()),
        };
        settings.check()?;
        Ok(Some(settings))
    }

    /// Parses settings as stored, without the checks of [`parse`](Self::parse): a stored tenant
    /// is read back as it was written.
    pub fn from_stored(value: &Value) -> Result<Option<Self>, String> {
        match value {
            Value::Null => Ok(None),
            Value::Object(map) if map.is_empty() => Ok(None),
            _ => serde_json::from_value(value.clone()).map_err(|e| e.to_string()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Highq(_) => "highq",
            Self::Scim(_) => "scim",
        }
    }

    pub fn base_url(&self) -> &str {
        match self {
            Self::Highq(config) => &config.base_url,
            Self::Scim(settings) => &settings.base_url,
        }
    }

    pub fn identity(&self) -> TargetIdentity {
        TargetIdentity {
            kind: self.kind(),
            base_url: normalized_url(self.base_url()),
            client_id: match self {
                Self::Highq(config) => Some(config.client_id.clone()),
                Self::Scim(_) => None,
            },
        }
    }

    fn check(&self) -> Result<(), String> {
        check_base_url(self.base_url())?;
        // The adapter's own checks (API version, tuning), with a stand-in for the secrets: a
        // reference is read only when connecting.
        let mut probe = self.clone();
        for (_, secret) in probe.secrets_mut() {
            *secret = SecretSetting::from("probe");
        }
        match probe {
            Self::Highq(config) => {
                HighQAdapter::new(config, Arc::new(MemoryTokenStore::default()))
                    .map_err(|e| format!("target: {e}"))?;
            }
            Self::Scim(settings) => {
                ScimAdapter::new(settings).map_err(|e| format!("target: {e}"))?;
            }
        }
        Ok(())
    }

    fn secrets_mut(&mut self) -> Vec<SecretField<'_>> {
        match self {
            Self::Highq(config) => {
                vec![("target.client_secret".to_owned(), &mut config.client_secret)]
            }
            Self::Scim(settings) => vec![("target.token".to_owned(), &mut settings.token)],
        }
    }
}

/// A base URL a target may have: `https://host/…`, or `http://` to this machine only (the local
/// emulators and test servers); no user name or password in it, no query or fragment.
fn check_base_url(text: &str) -> Result<(), String> {
    let url = Url::parse(text.trim())
        .map_err(|e| format!("target.base_url {text:?} is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("target.base_url {text:?} has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "target.base_url {text:?} must use https:// (plain http is only for this machine)"
            ));
        }
        other => {
            return Err(format!(
                "target.base_url {text:?} must be an https:// URL, not {other}:"
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "target.base_url must not carry a user name or password; put secrets in their own settings"
                .to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "target.base_url {text:?} must not have a query or fragment"
        ));
    }
    Ok(())
}

fn normalized_url(text: &str) -> String {
    Url::parse(text.trim())
        .map(|u| u.as_str().trim_end_matches('/').to_ascii_lowercase())
        .unwrap_or_else(|_| text.trim().to_ascii_lowercase())
}

/// Deserializes `value` as `T`, naming the path of a field that is wrong and refusing keys `T`
/// does not know (a typo'd `client_secert` must not silently leave the secret unset).
fn strict_parse<T: serde::de::DeserializeOwned>(section: &str, value: &Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let parsed: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        value.clone(),
        &mut |path: serde_ignored::Path<'_>| unknown.push(path.to_string()),
    ));
    let parsed = parsed.map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("{section}: {}", e.inner())
        } else {
            format!("{section}.{path}: {}", e.inner())
        }
    })?;
    if let Some(key) = unknown.first() {
        return Err(format!("{section}.{key} is not a known setting"));
    }
    Ok(parsed)
}

/// The field a message of this module is about (`target.tuning.page_size`), for the tenant
/// file's line numbers: the first word naming a setting, else `section`.
pub(super) fn field_of(message: &str, section: &str) -> String {
    message
        .split_whitespace()
        .map(|word| word.trim_end_matches([':', ',']))
        .find(|word| word.starts_with("source") || word.starts_with("target"))
        .unwrap_or(section)
        .to_owned()
}

/// The secret fields of a tenant's settings, wherever they are.
pub(super) fn secrets_mut<'a>(
    source: &'a mut SourceSettings,
    target: &'a mut Option<TargetSettings>,
) -> Vec<SecretField<'a>> {
    let mut fields = source.secrets_mut();
    if let Some(target) = target {
        fields.extend(target.secrets_mut());
    }
    fields
}

/// Checks every `env:` reference against the policy.
pub(super) fn check_references(
    source: &mut SourceSettings,
    target: &mut Option<TargetSettings>,
    policy: &SecretEnvPolicy,
) -> Result<(), String> {
    for (name, secret) in secrets_mut(source, target) {
        secret.check(&name, policy)?;
    }
    Ok(())
}

/// Replaces each `"[redacted]"` (keep) with the secret stored for the same field, but only where
/// the connection it was given for is unchanged.
pub(super) fn keep_stored(
    fields: Vec<SecretField<'_>>,
    stored: HashMap<String, SecretSetting>,
    source_unchanged: bool,
    target_unchanged: bool,
) -> Result<(), String> {
    for (name, secret) in fields {
        if !secret.is_keep() {
            continue;
        }
        let unchanged = if name.starts_with("source.") {
            source_unchanged
        } else {
            target_unchanged
        };
        let what = if name.starts_with("source.") {
            "the source's Entra tenant or app"
        } else {
            "the target's kind, base_url or client"
        };
        if !unchanged {
            return Err(format!(
                "{name}: \"[redacted]\" keeps the stored secret, but {what} changed; a stored \
                 secret is only sent where it was given for, so give it again"
            ));
        }
        match stored.get(&name) {
            Some(value) if !value.is_keep() => *secret = value.clone(),
            _ => {
                return Err(format!(
                    "{name}: \"[redacted]\" keeps the stored secret, but none is stored; give it"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn target_settings_name_the_field_that_is_wrong_or_unknown() {
        let err = TargetSettings::parse(&json!({"kind": "ldap"})).unwrap_err();
        assert!(err.contains("ldap") && err.contains("highq, scim"), "{err}");
        let err = TargetSettings::parse(&json!({
            "kind": "highq", "base_url": "https://h.example/i", "client_id": "c",
            "client_secert": "x"
        }))
        .unwrap_err();
        assert!(err.contains("client_secret"), "{err}");
        let err = TargetSettings::parse(&json!({
            "kind": "scim", "base_url": "https://a.example/scim", "token": "t",
            "tuning": {"concurrency": 4, "page_sise": 3}
        }))
        .unwrap_err();
        assert_eq!(err, "target.tuning.page_sise is not a known setting");
        let err = TargetSettings::parse(&json!({
            "kind": "scim", "base_url": "not a url", "token": "t"
        }))
        .unwrap_err();
        assert!(err.starts_with("target.base_url \"not a url\""), "{err}");
    }

    #[test]
    fn a_target_url_is_https_or_local_http_without_credentials() {
        for bad in [
            "http://highq.example/acme",
            "ftp://highq.example/acme",
            "https://user:pw@highq.example/acme",
            "https://highq.example/acme?x=1",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
        for good in [
            "https://highq.example/acme",
            "http://127.0.0.1:8080/acme",
            "http://localhost/x",
        ] {
            check_base_url(good).unwrap();
        }
    }

    #[test]
    fn source_settings_pair_a_client_with_its_credential() {
        assert!(SourceSettings::parse(&json!({})).unwrap().is_empty());
        let err = SourceSettings::parse(&json!({"client_id": "not-a-guid", "credential": {"kind": "client_secret", "client_secret": "s"}})).unwrap_err();
        assert!(err.contains("source.client_id"), "{err}");
        let err = SourceSettings::parse(
            &json!({"credential": {"kind": "client_secret", "client_secret": "s"}}),
        )
        .unwrap_err();
        assert!(err.contains("needs source.client_id"), "{err}");
        let err = SourceSettings::parse(&json!({
            "client_id": "11111111-2222-3333-4444-555555555555",
            "credential": {"kind": "workload_identity"}
        }))
        .unwrap_err();
        assert!(err.contains("workload_identity"), "{err}");
    }
}
