//! What to notify, and how: a tenant's own choices (stored, edited by its admins and operators)
//! and the service-wide `[notify]` settings (the SMTP relay, delivery tuning, the webhook
//! address policy).

use std::fmt;
use std::net::IpAddr;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::{Email, SecretEnvPolicy, SecretSetting};

/// The events a tenant may ask to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// R18: a run would deactivate more people than the threshold and waits for approval.
    RunHeld,
    /// A run failed (nothing or not all of it applied).
    RunFailed,
    /// A run completed with more errors than the tenant's threshold.
    RunErrors,
    /// A credential (the Graph app's, the HighQ refresh token) expires within 30 days.
    CredentialExpiring,
    /// Runs failed night after night; automatic runs back off.
    Quarantined,
    /// Once a day, a summary of the day's runs (when the daily digest is on).
    DailyDigest,
    /// Sent on request, to check the settings.
    Test,
}

impl EventKind {
    /// The ones a tenant can choose (the digest has its own switch; a test is always sent).
    pub const CHOOSABLE: &'static [EventKind] = &[
        Self::RunHeld,
        Self::RunFailed,
        Self::RunErrors,
        Self::CredentialExpiring,
        Self::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunHeld => "run_held",
            Self::RunFailed => "run_failed",
            Self::RunErrors => "run_errors",
            Self::CredentialExpiring => "credential_expiring",
            Self::Quarantined => "quarantined",
            Self::DailyDigest => "daily_digest",
            Self::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::RunHeld,
            Self::RunFailed,
            Self::RunErrors,
            Self::CredentialExpiring,
            Self::Quarantined,
            Self::DailyDigest,
            Self::Test,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// For people: the console's checkboxes, email subjects.
    pub fn label(self) -> &'static str {
        match self {
            Self::RunHeld => "a run is held for approval",
            Self::RunFailed => "a run failed",
            Self::RunErrors => "a run completed with errors above the threshold",
            Self::CredentialExpiring => "a credential expires within 30 days",
            Self::Quarantined => "the tenant is quarantined",
            Self::DailyDigest => "daily digest",
            Self::Test => "test notification",
        }
    }
}

/// Where a tenant's webhook posts, with the key its payloads are signed with.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: Url,
    /// The HMAC-SHA256 key (`X-Dirsync-Signature`): a value, or `env:DIRSYNC_SECRET_…`. Shown as
    /// `[redacted]`; sent back as `[redacted]` it keeps the stored key, while the URL is unchanged.
    pub secret: SecretSetting,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("secret", &self.secret)
            .finish()
    }
}

/// A tenant's notification settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantNotifications {
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// Who gets the emails (at most [`MAX_RECIPIENTS`]).
    #[serde(default)]
    pub email_to: Vec<Email>,
    /// Which events are sent (the daily digest has its own switch).
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// A run that completed with more errors than this is notified (`run_errors`).
    #[serde(default = "default_error_threshold")]
    pub error_threshold: u64,
    /// One summary a day of the day's runs.
    #[serde(default)]
    pub daily_digest: bool,
}

pub const MAX_RECIPIENTS: usize = 20;

fn default_error_threshold() -> u64 {
    0
}

impl Default for TenantNotifications {
    fn default() -> Self {
        Self {
            webhook: None,
            email_to: Vec::new(),
            events: Vec::new(),
            error_threshold: default_error_threshold(),
            daily_digest: false,
        }
    }
}

impl TenantNotifications {
    pub fn wants(&self, kind: EventKind) -> bool {
        match kind {
            EventKind::Test => true,
            EventKind::DailyDigest => self.daily_digest,
            other => self.events.contains(&other),
        }
    }

    pub fn has_channel(&self) -> bool {
        self.webhook.is_some() || !self.email_to.is_empty()
    }

    /// Checks settings about to be saved over `stored` and fills in a kept (`[redacted]`)
    /// webhook key. Every problem is named. A kept key is refused when the URL changed: a key
    /// given for one host is never sent to another.
    pub fn validated(
        mut self,
        stored: Option<&TenantNotifications>,
        policy: &SecretEnvPolicy,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if let Some(webhook) = &mut self.webhook {
            if let Err(problem) = check_webhook_url(&webhook.url) {
                problems.push(problem);
            }
            if webhook.secret.is_keep() {
                match stored
                    .and_then(|s| s.webhook.as_ref())
                    .filter(|old| old.url == webhook.url)
                {
                    Some(old) => webhook.secret = old.secret.clone(),
                    None => problems.push(
                        "webhook.secret: give the signing key: \"[redacted]\" keeps the stored \
                         one only while the webhook URL is unchanged"
                            .to_owned(),
                    ),
                }
            } else if let Err(problem) = webhook.secret.check("webhook.secret", policy) {
                problems.push(problem);
            }
        }
        if self.email_to.len() > MAX_RECIPIENTS {
            problems.push(format!(
                "email_to: at most {MAX_RECIPIENTS} recipients, not {}",
                self.email_to.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for email in &self.email_to {
            if !seen.insert(email.clone()) {
                problems.push(format!("email_to: {email} is listed twice"));
            }
        }
        for kind in &self.events {
            if !EventKind::CHOOSABLE.contains(kind) {
                problems.push(format!(
                    "events: {} cannot be chosen (choose from {})",
                    kind.as_str(),
                    EventKind::CHOOSABLE
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        self.events.sort();
        self.events.dedup();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

/// A webhook URL a tenant may save: `https://`, or `http://` to this machine only (a local
/// receiver); no user name or password, no fragment. Where it may be *delivered* is decided again
/// at each delivery, on the addresses the host resolves to ([`AddressPolicy`]).
pub fn check_webhook_url(url: &Url) -> Result<(), String> {
    let loopback_host = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("webhook.url {url} has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback_host => {}
        _ => {
            return Err(format!(
                "webhook.url {url} must be https:// (http:// only to this machine)"
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("webhook.url must not carry a user name or password".to_owned());
    }
    if url.fragment().is_some() {
        return Err("webhook.url must not have a #fragment".to_owned());
    }
    Ok(())
}

/// Which addresses a webhook may be delivered to. A tenant admin chooses the URL, so without
/// this rule dirsync could be made to call its own database, a cloud metadata endpoint or any
/// other internal host: loopback, private, link-local, unique-local, shared (CGNAT), multicast,
/// unspecified and documentation addresses are refused unless `notify.webhook_allow_private`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_private: bool,
}

impl AddressPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }
}

/// An address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// `[notify]`: how notifications are delivered, for every tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Turn off on replicas that should not deliver (the outbox waits for one that does).
    pub enabled: bool,
    /// How often the outbox is looked at when nothing wakes the worker.
    pub poll_interval_ms: u64,
    /// Attempts per notification before it is given up (and audited as failed).
    pub max_attempts: u32,
    /// The first retry waits about this long; each next one twice as long (with jitter).
    pub retry_base_ms: u64,
    /// No retry waits longer than this.
    pub retry_max_secs: u64,
    /// A webhook call (connect, send, answer) may take this long.
    pub webhook_timeout_secs: u64,
    /// Deliver webhooks to loopback and private addresses (a receiver inside your network).
    /// Off: such URLs are refused at delivery, so a tenant admin cannot aim dirsync at internal
    /// hosts.
    pub webhook_allow_private: bool,
    /// The hour (in the tenant's time zone) after which the previous day's digest is sent.
    pub digest_hour: u32,
    /// The mail relay; without it, email recipients get nothing (webhooks still work).
    pub smtp: Option<SmtpSettings>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval_ms: 5_000,
            max_attempts: 8,
            retry_base_ms: 30_000,
            retry_max_secs: 3_600,
            webhook_timeout_secs: 10,
            webhook_allow_private: false,
            digest_hour: 7,
            smtp: None,
        }
    }
}

impl NotifySettings {
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy {
            allow_private: self.webhook_allow_private,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return Err("notify.max_attempts must be between 1 and 100".to_owned());
        }
        if self.poll_interval_ms == 0 || self.webhook_timeout_secs == 0 {
            return Err(
                "notify.poll_interval_ms and notify.webhook_timeout_secs must be at least 1"
                    .to_owned(),
            );
        }
        if self.digest_hour > 23 {
            return Err("notify.digest_hour must be an hour, 0 to 23".to_owned());
        }
        if let Some(smtp) = &self.smtp {
            Email::parse(&smtp.from).map_err(|e| format!("notify.smtp.from: {e}"))?;
            if smtp.host.trim().is_empty() {
                return Err("notify.smtp.host must not be empty".to_owned());
            }
        }
        Ok(())
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain, then `STARTTLS`, which is required (port 587).
    Starttls,
    /// No encryption: only for a relay on this machine or a test sink.
    None,
}

/// `[notify.smtp]`: the relay emails go through.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// The sender address.
    pub from: String,
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, serialize_with = "redacted_option")]
    pub password: Option<SecretString>,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

fn redacted_option<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str("[redacted]"),
        None => serializer.serialize_none(),
    }
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn webhook_urls_are_https_or_loopback_http_without_credentials() {
        assert!(check_webhook_url(&url("https://hooks.example.com/dirsync")).is_ok());
        assert!(check_webhook_url(&url("http://127.0.0.1:9000/hook")).is_ok());
        assert!(check_webhook_url(&url("http://hooks.example.com/")).is_err());
        assert!(check_webhook_url(&url("ftp://hooks.example.com/")).is_err());
        assert!(check_webhook_url(&url("https://u:p@hooks.example.com/")).is_err());
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        let strict = AddressPolicy {
            allow_private: false,
        };
        assert!(!strict.allows("127.0.0.1".parse().unwrap()));
        let open = AddressPolicy {
            allow_private: true,
        };
        assert!(open.allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_kept_webhook_key_follows_only_an_unchanged_url() {
        let policy = SecretEnvPolicy::default();
        let stored = TenantNotifications {
            webhook: Some(Webhook {
                url: url("https://hooks.example.com/a"),
                secret: SecretSetting::from("k1"),
            }),
            ..TenantNotifications::default()
        };
        let same = TenantNotifications {
            webhook: Some(Webhook {
                url: url("https://hooks.example.com/a"),
                secret: SecretSetting::Keep,
            }),
            ..TenantNotifications::default()
        };
        let kept = same.validated(Some(&stored), &policy).unwrap();
        assert_eq!(kept.webhook.unwrap().secret, SecretSetting::from("k1"));
        let moved = TenantNotifications {
            webhook: Some(Webhook {
                url: url("https://elsewhere.example.net/a"),
                secret: SecretSetting::Keep,
            }),
            ..TenantNotifications::default()
        };
        let problems = moved.validated(Some(&stored), &policy).unwrap_err();
        assert!(problems[0].contains("unchanged"), "{problems:?}");
    }
}
