//! The secrets dirsync hands out: session IDs, sign-in attempt IDs, CSRF tokens and API tokens.
//! Each is 256 bits from the operating system's generator, base64url; only its SHA-256 is
//! stored, and comparisons with what a client sends are constant-time.

use base64::Engine as _;
use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::access::SecretHash;

/// What every API token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const API_TOKEN_PREFIX: &str = "dsy_";

/// How many characters of a token (its `dsy_` included) are shown in lists.
pub const API_TOKEN_SHOWN_CHARS: usize = 12;

/// 32 random bytes from the OS, base64url without padding (43 characters).
pub fn random_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random generator works");
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a secret: what the store keeps and looks up by. The secrets are random and 256
/// bits long, so a plain hash suffices (no password stretching).
pub fn hash(secret: &str) -> SecretHash {
    SecretHash(Sha256::digest(secret.as_bytes()).into())
}

/// Compares a secret a client sent with the expected one in constant time.
pub fn same_secret(sent: &str, expected: &str) -> bool {
    sent.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// A new API token: the whole token (shown once), what is shown of it afterwards, its hash.
pub struct NewApiToken {
    pub token: SecretString,
    pub prefix: String,
    pub hash: SecretHash,
}

impl std::fmt::Debug for NewApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiToken")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub fn new_api_token() -> NewApiToken {
    let token = format!("{API_TOKEN_PREFIX}{}", random_secret().expose_secret());
    NewApiToken {
        prefix: token[..API_TOKEN_SHOWN_CHARS].to_owned(),
        hash: hash(&token),
        token: SecretString::from(token),
    }
}

/// Whether `text` has the shape of an API token (before looking it up).
pub fn looks_like_api_token(text: &str) -> bool {
    text.len() == API_TOKEN_PREFIX.len() + 43
        && text.starts_with(API_TOKEN_PREFIX)
        && text[API_TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_are_256_random_bits_behind_a_recognisable_prefix() {
        let a = new_api_token();
        let b = new_api_token();
        let text = a.token.expose_secret();
        assert!(looks_like_api_token(text), "{text}");
        assert_eq!(text.len(), 47);
        assert!(text.starts_with(&a.prefix) && a.prefix.starts_with("dsy_"));
        assert_ne!(a.token.expose_secret(), b.token.expose_secret());
        assert_eq!(a.hash, hash(text));
        assert_ne!(a.hash, b.hash);
        assert!(!format!("{a:?}").contains(&text[API_TOKEN_SHOWN_CHARS..]));
        assert!(!looks_like_api_token("dsy_short"));
        assert!(!looks_like_api_token(&text.replace("dsy_", "xyz_")));
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
