//! Webhook delivery: the JSON payload POSTed to the tenant's URL, signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"` (`X-Dirsync-Signature: sha256=<hex>`, `X-Dirsync-Timestamp: <unix
//! seconds>`), so a receiver can prove it came from dirsync and refuse a replay. The host is
//! resolved here, every address checked against the [`AddressPolicy`], and the request pinned to
//! a checked address (no second lookup a rebinding DNS server could answer differently);
//! redirects are not followed.

use std::net::SocketAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

use super::settings::AddressPolicy;

pub const SIGNATURE_HEADER: &str = "X-Dirsync-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Dirsync-Timestamp";
pub const EVENT_HEADER: &str = "X-Dirsync-Event";
pub const DELIVERY_HEADER: &str = "X-Dirsync-Delivery";

/// `sha256=<hex>`: HMAC-SHA256 of `"{timestamp}.{body}"` under `key`.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// What a receiver does: the signature matches (compared in constant time) and the timestamp is
/// within `tolerance` of `now`.
pub fn verify(
    key: &[u8],
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance: i64,
) -> bool {
    use subtle::ConstantTimeEq;
    let expected = signature(key, timestamp, body);
    (now - timestamp).abs() <= tolerance && bool::from(expected.as_bytes().ct_eq(header.as_bytes()))
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Worth trying again later: a 5xx, 408, 429, a timeout, a refused connection.
    Transient(String),
    /// Trying again would not help: a 4xx, a redirect, an address the policy refuses.
    Permanent(String),
}

/// One webhook request: where, signed with what, and what.
pub struct Delivery<'a> {
    pub url: &'a Url,
    pub key: &'a SecretString,
    pub body: &'a [u8],
    /// The event's name (`X-Dirsync-Event`).
    pub event: &'a str,
    /// The payload's `id` (`X-Dirsync-Delivery`).
    pub id: &'a str,
    /// Unix seconds, signed with the body.
    pub timestamp: i64,
}

/// POSTs the delivery's body to its URL, signed with its key, if `policy` allows every address
/// the host resolves to.
pub async fn deliver(delivery: Delivery<'_>, policy: AddressPolicy, timeout: Duration) -> Attempt {
    let Delivery {
        url,
        key,
        body,
        event,
        id: delivery_id,
        timestamp,
    } = delivery;
    let Some(host) = url.host_str() else {
        return Attempt::Permanent("the webhook URL has no host".to_owned());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup_host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host((lookup_host, port))).await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(err)) => return Attempt::Transient(format!("could not resolve {host}: {err}")),
            Err(_) => return Attempt::Transient(format!("resolving {host} timed out")),
        };
    if addresses.is_empty() {
        return Attempt::Transient(format!("{host} resolved to no address"));
    }
    if let Some(refused) = addresses.iter().find(|a| !policy.allows(a.ip())) {
        return Attempt::Permanent(format!(
            "{host} resolves to {}, a loopback or private address: webhooks are delivered to \
             public addresses only (setting notify.webhook_allow_private)",
            refused.ip()
        ));
    }
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .resolve(lookup_host, addresses[0])
        .build()
    {
        Ok(client) => client,
        Err(err) => return Attempt::Transient(format!("could not build the HTTP client: {err}")),
    };
    let sent = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, "dirsync-notify/1")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(
            SIGNATURE_HEADER,
            signature(key.expose_secret().as_bytes(), timestamp, body),
        )
        .header(EVENT_HEADER, event)
        .header(DELIVERY_HEADER, delivery_id)
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(response) => classify(response.status().as_u16()),
        Err(err) if err.is_timeout() => {
            Attempt::Transient(format!("{host} did not answer in time"))
        }
        Err(err) => Attempt::Transient(format!("could not reach {host}: {err}")),
    }
}

/// 2xx delivered; 408, 429 and 5xx worth retrying; anything else refused for good.
pub fn classify(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Transient(format!("the receiver answered {status}")),
        300..=399 => Attempt::Permanent(format!(
            "the receiver answered {status} (a redirect): redirects are not followed"
        )),
        _ => Attempt::Permanent(format!("the receiver refused it with {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently:
        // (printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key).
        let sig = signature(b"key", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
        assert!(verify(
            b"key",
            1_700_000_000,
            br#"{"a":1}"#,
            &sig,
            1_700_000_100,
            300
        ));
        assert!(!verify(
            b"key",
            1_700_000_000,
            br#"{"a":2}"#,
            &sig,
            1_700_000_100,
            300
        ));
        assert!(!verify(
            b"other",
            1_700_000_000,
            br#"{"a":1}"#,
            &sig,
            1_700_000_100,
            300
        ));
        assert!(
            !verify(
                b"key",
                1_700_000_000,
                br#"{"a":1}"#,
                &sig,
                1_700_001_000,
                300
            ),
            "a replay after the tolerance is refused"
        );
    }

    #[test]
    fn server_errors_are_retried_and_client_errors_are_not() {
        assert_eq!(classify(204), Attempt::Delivered);
        assert!(matches!(classify(500), Attempt::Transient(_)));
        assert!(matches!(classify(503), Attempt::Transient(_)));
        assert!(matches!(classify(429), Attempt::Transient(_)));
        assert!(matches!(classify(400), Attempt::Permanent(_)));
        assert!(matches!(classify(404), Attempt::Permanent(_)));
        assert!(matches!(classify(302), Attempt::Permanent(_)));
    }
}
