//! Email addresses: the identity by which dirsync matches Entra users to target users.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the email address is empty")]
    Empty,
    #[error("{0:?} is not an email address (expected exactly one '@' with text on both sides)")]
    Malformed(String),
    #[error("{0:?} contains white space or control characters")]
    BadCharacters(String),
    #[error(
        "{text:?} contains the invisible character U+{code:04X}, which would make it look like another address"
    )]
    InvisibleCharacter { text: String, code: u32 },
    #[error("{start:?}… is {bytes} bytes long; at most {MAX_EMAIL_BYTES} are allowed (RFC 5321)")]
    TooLong { start: String, bytes: usize },
    #[error(
        "{text:?} has a local part (before '@') of {bytes} bytes; at most {MAX_LOCAL_PART_BYTES} are allowed (RFC 5321)"
    )]
    LocalPartTooLong { text: String, bytes: usize },
    #[error("{0:?} is a guest (#EXT#) user principal name, not a mailbox")]
    GuestPrincipalName(String),
}

/// RFC 5321: a path holds at most 256 octets, the brackets included.
pub const MAX_EMAIL_BYTES: usize = 254;
/// RFC 5321: a local part holds at most 64 octets.
pub const MAX_LOCAL_PART_BYTES: usize = 64;

/// An email address as Entra spelled it. Two emails are the same identity when they are equal
/// once case is folded and Unicode is normalized (R4, R8): `Jane@x.com` and `jane@x.com`, but
/// also `ÉMILE@x.com` and `émile@x.com`, or an `é` typed as one character or as `e` with a
/// combining accent. `Eq` and `Hash` use that identity; `Display` keeps the spelling that is
/// sent to the target.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email {
    /// The spelling, then the identity (NFC-normalized, then lowercased) when it is spelled
    /// differently: one allocation, and none more for an address already in lower case. A
    /// tenant's emails are held once per user in the mirror and again in an initial sync's
    /// plan (issue 13: 64 bytes and two allocations before, 24 bytes and one now).
    text: Box<str>,
    /// Where the spelling ends and the identity starts (the whole text when they are alike).
    spelling_end: u16,
    /// The `@` in the spelling, and in the identity (from the identity's start).
    at: u16,
    key_at: u16,
}

/// Characters that are never part of a usable address: white space, controls, and invisible
/// formatting characters (zero-width spaces and joiners, bidirectional overrides, the BOM…),
/// which would let two different addresses look the same.
fn unusable(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
    if c.is_ascii() {
        // No ASCII character is a format character: this is the whole test, without the table.
        return !c.is_ascii_graphic();
    }
    c.is_whitespace() || c.is_control() || c.general_category() == GeneralCategory::Format
}

/// Whether `text` contains `needle` (ASCII), ignoring ASCII case, without copying `text`.
fn contains_ignoring_ascii_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

impl Email {
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        use unicode_normalization::UnicodeNormalization as _;
        let text = text.trim();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        if text.len() > MAX_EMAIL_BYTES {
            return Err(EmailError::TooLong {
                start: text.chars().take(32).collect(),
                bytes: text.len(),
            });
        }
        if let Some(c) = text.chars().find(|c| unusable(*c)) {
            return Err(if c.is_whitespace() || c.is_control() {
                EmailError::BadCharacters(text.to_owned())
            } else {
                EmailError::InvisibleCharacter {
                    text: text.to_owned(),
                    code: c as u32,
                }
            });
        }
        if contains_ignoring_ascii_case(text, "#EXT#") {
            return Err(EmailError::GuestPrincipalName(text.to_owned()));
        }
        let at = match (text.find('@'), text.rfind('@')) {
            (Some(first), Some(last)) if first == last => first,
            _ => return Err(EmailError::Malformed(text.to_owned())),
        };
        let (local, domain) = (&text[..at], &text[at + 1..]);
        let domain_ok =
            !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains("..");
        if local.is_empty() || domain.is_empty() || !domain_ok {
            return Err(EmailError::Malformed(text.to_owned()));
        }
        if local.len() > MAX_LOCAL_PART_BYTES {
            return Err(EmailError::LocalPartTooLong {
                text: text.to_owned(),
                bytes: local.len(),
            });
        }
        // ASCII is its own NFC form, and lowercases byte by byte (most addresses: no tables),
        // and an address in lower case already is its own identity (no copy to make).
        let key: Option<String> = if !text.is_ascii() {
            Some(text.nfc().collect::<String>().to_lowercase()).filter(|key| key != text)
        } else if text.bytes().any(|b| b.is_ascii_uppercase()) {
            Some(text.to_ascii_lowercase())
        } else {
            None
        };
        let key_at = key
            .as_deref()
            .map_or(Some(at), |key| key.find('@'))
            .expect("normalization keeps the one '@'");
        // Lengths fit u16: the spelling is at most 254 bytes, and folding case and normalizing
        // at most triples a character's bytes.
        let narrow = |n: usize| u16::try_from(n).expect("an address is at most 254 bytes");
        let joined = match key {
            None => Box::from(text),
            Some(key) => [text, key.as_str()].concat().into_boxed_str(),
        };
        Ok(Self {
            text: joined,
            spelling_end: narrow(text.len()),
            at: narrow(at),
            key_at: narrow(key_at),
        })
    }

    fn spelling(&self) -> &str {
        &self.text[..usize::from(self.spelling_end)]
    }

    /// The identity: the spelling itself when it is already normalized and in lower case.
    fn key(&self) -> &str {
        match &self.text[usize::from(self.spelling_end)..] {
            "" => self.spelling(),
            key => key,
        }
    }

    /// The part before `@`: changes here are applied (R7).
    pub fn local_part(&self) -> &str {
        &self.spelling()[..usize::from(self.at)]
    }

    /// The part after `@`: changes here are refused (R7).
    pub fn domain(&self) -> &str {
        &self.spelling()[usize::from(self.at) + 1..]
    }

    pub fn as_str(&self) -> &str {
        self.spelling()
    }

    /// The identity key: case-folded and Unicode-normalized (and itself a valid address).
    pub fn normalized(&self) -> String {
        self.key().to_owned()
    }

    /// Whether `other` lives in a different domain (compared as identities are), the change R7
    /// forbids.
    pub fn domain_differs(&self, other: &Email) -> bool {
        self.key()[usize::from(self.key_at) + 1..] != other.key()[usize::from(other.key_at) + 1..]
    }

    /// Whether the two are spelled identically, case included: a change of case in the local
    /// part is still a change worth sending to the target.
    pub fn same_spelling(&self, other: &Email) -> bool {
        self.spelling() == other.spelling()
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Email {}

impl Hash for Email {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.spelling().to_owned()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spelling())
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.spelling())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn emails_compare_case_insensitively_but_keep_their_spelling() {
        let a = Email::parse("Jane.Doe@Contoso.com").unwrap();
        let b = Email::parse("jane.doe@contoso.COM").unwrap();
        assert_eq!(a, b);
        assert_eq!(HashSet::from([a.clone(), b.clone()]).len(), 1);
        assert_eq!(a.to_string(), "Jane.Doe@Contoso.com");
        assert!(!a.same_spelling(&b));
    }

    #[test]
    fn an_email_is_small_and_keeps_spelling_and_identity_apart() {
        assert!(std::mem::size_of::<Email>() <= 24);
        let lower = Email::parse("jane@contoso.com").unwrap();
        assert_eq!(lower.normalized(), "jane@contoso.com");
        let accented = Email::parse("ÉMILE@Beispiel.DE").unwrap();
        assert_eq!(accented.as_str(), "ÉMILE@Beispiel.DE");
        assert_eq!(accented.normalized(), "émile@beispiel.de");
        assert_eq!(accented.local_part(), "ÉMILE");
        assert_eq!(accented.domain(), "Beispiel.DE");
        let moved = Email::parse("emile@beispiel.com").unwrap();
        assert!(accented.domain_differs(&moved));
        assert!(!accented.domain_differs(&Email::parse("x@BEISPIEL.de").unwrap()));
        assert_eq!(String::from(accented), "ÉMILE@Beispiel.DE");
    }

    #[test]
    fn emails_split_into_local_part_and_domain() {
        let email = Email::parse("  jane@contoso.com ").unwrap();
        assert_eq!(email.local_part(), "jane");
        assert_eq!(email.domain(), "contoso.com");
        assert!(!email.domain_differs(&Email::parse("john@CONTOSO.com").unwrap()));
        assert!(email.domain_differs(&Email::parse("jane@fabrikam.com").unwrap()));
    }

    #[test]
    fn emails_differing_only_in_unicode_case_or_normalization_are_one_identity() {
        let upper = Email::parse("ÉMILE@bücher.de").unwrap();
        let lower = Email::parse("émile@BÜCHER.de").unwrap();
        let decomposed = Email::parse("e\u{301}mile@bu\u{308}cher.de").unwrap();
        assert_eq!(upper, lower);
        assert_eq!(lower, decomposed);
        assert_eq!(HashSet::from([upper.clone(), lower, decomposed]).len(), 1);
        assert_eq!(upper.to_string(), "ÉMILE@bücher.de");
        assert!(!upper.domain_differs(&Email::parse("x@BU\u{308}CHER.DE").unwrap()));
        assert_eq!(
            Email::parse(&upper.normalized()).unwrap().as_str(),
            "émile@bücher.de"
        );
    }

    #[test]
    fn invisible_characters_and_overlong_addresses_are_rejected() {
        for (text, code) in [
            ("ja\u{200b}ne@contoso.com", 0x200b),
            ("jane\u{202e}moc.@contoso.com", 0x202e),
            ("\u{feff}jane@contoso.com", 0xfeff),
        ] {
            assert_eq!(
                Email::parse(text),
                Err(EmailError::InvisibleCharacter {
                    text: text.to_owned(),
                    code
                })
            );
        }
        let long_local = format!("{}@contoso.com", "a".repeat(65));
        assert!(matches!(
            Email::parse(&long_local),
            Err(EmailError::LocalPartTooLong { bytes: 65, .. })
        ));
        let long = format!("jane@{}.com", "d".repeat(300));
        assert_eq!(
            Email::parse(&long).unwrap_err().to_string(),
            format!(
                "\"jane@{}\"… is {} bytes long; at most 254 are allowed (RFC 5321)",
                "d".repeat(27),
                long.len()
            )
        );
        assert!(Email::parse(&format!("{}@contoso.com", "a".repeat(64))).is_ok());
    }

    #[test]
    fn malformed_emails_are_rejected_with_a_reason() {
        assert_eq!(Email::parse(" "), Err(EmailError::Empty));
        for bad in [
            "jane",
            "@contoso.com",
            "jane@",
            "a@b@c.com",
            "jane@.com",
            "jane@contoso..com",
        ] {
            assert!(
                matches!(Email::parse(bad), Err(EmailError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Email::parse("ja ne@contoso.com"),
            Err(EmailError::BadCharacters(_))
        ));
        assert!(matches!(
            Email::parse("jane_gmail.com#EXT#@contoso.onmicrosoft.com"),
            Err(EmailError::GuestPrincipalName(_))
        ));
    }
}
