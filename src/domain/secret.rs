//! A secret in a tenant's source or target settings: a value, or a reference `env:NAME` to an
//! environment variable. Redacted by construction: `Debug` and `Serialize` never show a value,
//! so a setting typed as secret cannot reach the API, a log line or an audit record. Only the
//! store writes values out, inside [`expose_for_storage`].

use std::cell::Cell;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What the API and logs show in place of a secret value; sent back in a `PUT` it means "keep
/// the secret already stored".
pub const REDACTED: &str = "[redacted]";

/// The prefix of the environment variables `env:` references may name, unless configured.
pub const DEFAULT_ENV_PREFIX: &str = "DIRSYNC_SECRET_";

/// A secret setting as an operator wrote it.
#[derive(Clone)]
pub enum SecretSetting {
    /// The secret itself, stored in the database.
    Value(SecretString),
    /// `env:NAME`: read from the environment when dirsync connects, never stored.
    Env(String),
    /// `"[redacted]"` in a `PUT`: keep what is stored. Never stored itself.
    Keep,
}

/// Which environment variables `env:` references may read. Without a rule, any tenant setting
/// could read any variable of the service (the database URL with its password, say) and send it
/// to a host of the tenant's choosing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEnvPolicy {
    /// Only variables whose names start with this may be referenced (`DIRSYNC_SECRET_`).
    #[serde(default = "default_prefix")]
    pub env_prefix: String,
}

fn default_prefix() -> String {
    DEFAULT_ENV_PREFIX.to_owned()
}

impl Default for SecretEnvPolicy {
    fn default() -> Self {
        Self {
            env_prefix: default_prefix(),
        }
    }
}

impl SecretEnvPolicy {
    /// Refuses a reference to a variable outside the prefix, naming the setting.
    pub fn check(&self, setting: &str, name: &str) -> Result<(), String> {
        let prefix = self.env_prefix.as_str();
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if prefix.is_empty() || !name.starts_with(prefix) || name.len() == prefix.len() {
            return Err(format!(
                "setting {setting} refers to the environment variable {name:?}, which dirsync may \
                 not read: only variables whose names start with {prefix} can hold tenant secrets \
                 (setting secrets.env_prefix)"
            ));
        }
        if !valid_name {
            return Err(format!(
                "setting {setting} refers to {name:?}, which is not an environment variable name \
                 (letters, digits and _)"
            ));
        }
        Ok(())
    }
}

impl SecretSetting {
    /// Checks the reference (if it is one) against `policy`; a value needs no check.
    pub fn check(&self, setting: &str, policy: &SecretEnvPolicy) -> Result<(), String> {
        match self {
            Self::Env(name) => policy.check(setting, name),
            Self::Value(value) if value.expose_secret().is_empty() => {
                Err(format!("setting {setting} is empty"))
            }
            Self::Value(_) | Self::Keep => Ok(()),
        }
    }

    /// The secret to connect with: a value as it is, a reference read from the environment
    /// (only within `policy`). A missing variable is an error naming it and the setting.
    pub fn resolve(&self, setting: &str, policy: &SecretEnvPolicy) -> Result<SecretString, String> {
        match self {
            Self::Value(value) => Ok(value.clone()),
            Self::Env(name) => {
                policy.check(setting, name)?;
                std::env::var(name).map(SecretString::from).map_err(|_| {
                    format!(
                        "setting {setting} refers to the environment variable {name}, which is not set"
                    )
                })
            }
            Self::Keep => Err(format!(
                "setting {setting} has no stored secret; give it again"
            )),
        }
    }

    /// The value, for a setting that must already be resolved (an adapter being built).
    pub fn value(&self, setting: &str) -> Result<&SecretString, String> {
        match self {
            Self::Value(value) => Ok(value),
            Self::Env(name) => Err(format!(
                "setting {setting} (env:{name}) was not read from the environment"
            )),
            Self::Keep => Err(format!("setting {setting} has no stored secret")),
        }
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }
}

impl From<&str> for SecretSetting {
    fn from(text: &str) -> Self {
        parse(text)
    }
}

impl From<String> for SecretSetting {
    fn from(text: String) -> Self {
        parse(&text)
    }
}

fn parse(text: &str) -> SecretSetting {
    if text == REDACTED {
        SecretSetting::Keep
    } else if let Some(name) = text.strip_prefix("env:") {
        SecretSetting::Env(name.to_owned())
    } else {
        SecretSetting::Value(SecretString::from(text.to_owned()))
    }
}

impl fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(_) | Self::Keep => f.write_str(REDACTED),
            Self::Env(name) => write!(f, "env:{name}"),
        }
    }
}

impl PartialEq for SecretSetting {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Value(a), Self::Value(b)) => a.expose_secret() == b.expose_secret(),
            (Self::Env(a), Self::Env(b)) => a == b,
            (Self::Keep, Self::Keep) => true,
            _ => false,
        }
    }
}

thread_local! {
    static EXPOSED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `write` (a synchronous serialization for the database) with secret values serialized
/// as themselves. Everywhere else they serialize as `"[redacted]"`, so forgetting to redact is
/// impossible: the only way to get a value out is to ask for it here.
pub fn expose_for_storage<R>(write: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSED.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(EXPOSED.with(|e| e.replace(true)));
    write()
}

impl Serialize for SecretSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Env(name) => serializer.serialize_str(&format!("env:{name}")),
            Self::Value(value) if EXPOSED.with(Cell::get) => {
                serializer.serialize_str(value.expose_secret())
            }
            Self::Value(_) | Self::Keep => serializer.serialize_str(REDACTED),
        }
    }
}

impl<'de> Deserialize<'de> for SecretSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_value_never_serializes_or_debugs_outside_storage() {
        let secret = SecretSetting::from("hunter2");
        assert_eq!(
            serde_json::to_value(&secret).unwrap(),
            serde_json::json!(REDACTED)
        );
        assert!(!format!("{secret:?}").contains("hunter2"));
        let stored = expose_for_storage(|| serde_json::to_value(&secret).unwrap());
        assert_eq!(stored, serde_json::json!("hunter2"));
        assert_eq!(
            serde_json::to_value(&secret).unwrap(),
            serde_json::json!(REDACTED),
            "exposure ends with the storage call"
        );
    }

    #[test]
    fn references_keep_their_name_and_redacted_means_keep() {
        assert_eq!(
            serde_json::to_value(SecretSetting::from("env:DIRSYNC_SECRET_X")).unwrap(),
            serde_json::json!("env:DIRSYNC_SECRET_X")
        );
        assert!(SecretSetting::from(REDACTED).is_keep());
    }

    #[test]
    fn only_variables_with_the_prefix_may_be_referenced() {
        let policy = SecretEnvPolicy::default();
        let err = SecretSetting::from("env:DIRSYNC__DATABASE__URL")
            .check("target.token", &policy)
            .unwrap_err();
        assert!(
            err.contains("target.token") && err.contains("DIRSYNC_SECRET_"),
            "{err}"
        );
        assert!(
            SecretSetting::from("env:DIRSYNC_SECRET_")
                .check("t", &policy)
                .is_err()
        );
        assert!(
            SecretSetting::from("env:DIRSYNC_SECRET_A-B")
                .check("t", &policy)
                .is_err()
        );
        SecretSetting::from("env:DIRSYNC_SECRET_ACME_TOKEN")
            .check("t", &policy)
            .unwrap();
        let err = SecretSetting::from("env:PATH")
            .resolve("target.client_secret", &policy)
            .unwrap_err();
        assert!(err.contains("target.client_secret"), "{err}");
    }
}
