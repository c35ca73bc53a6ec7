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
    #[error("{0:?} is a guest (#EXT#) user principal name, not a mailbox")]
    GuestPrincipalName(String),
}

/// An email address as Entra spelled it. Two emails are the same identity when they are equal
/// ignoring ASCII case (R4, R8), so `Eq` and `Hash` fold case while `Display` keeps the spelling
/// that is sent to the target.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email {
    text: String,
    at: usize,
}

impl Email {
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::BadCharacters(text.to_owned()));
        }
        if text.to_ascii_uppercase().contains("#EXT#") {
            return Err(EmailError::GuestPrincipalName(text.to_owned()));
        }
        let at = match text.match_indices('@').map(|(i, _)| i).collect::<Vec<_>>()[..] {
            [at] => at,
            _ => return Err(EmailError::Malformed(text.to_owned())),
        };
        let (local, domain) = (&text[..at], &text[at + 1..]);
        let domain_ok =
            !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains("..");
        if local.is_empty() || domain.is_empty() || !domain_ok {
            return Err(EmailError::Malformed(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            at,
        })
    }

    /// The part before `@`: changes here are applied (R7).
    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The part after `@`: changes here are refused (R7).
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The case-folded form used as the identity key (and stored for lookups).
    pub fn normalized(&self) -> String {
        self.text.to_ascii_lowercase()
    }

    /// Whether `other` lives in a different domain (case-insensitively), the change R7 forbids.
    pub fn domain_differs(&self, other: &Email) -> bool {
        !self.domain().eq_ignore_ascii_case(other.domain())
    }

    /// Whether the two are spelled identically, case included: a change of case in the local
    /// part is still a change worth sending to the target.
    pub fn same_spelling(&self, other: &Email) -> bool {
        self.text == other.text
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl Eq for Email {}

impl Hash for Email {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for byte in self.text.bytes() {
            state.write_u8(byte.to_ascii_lowercase());
        }
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
        value.text
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.text)
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
    fn emails_split_into_local_part_and_domain() {
        let email = Email::parse("  jane@contoso.com ").unwrap();
        assert_eq!(email.local_part(), "jane");
        assert_eq!(email.domain(), "contoso.com");
        assert!(!email.domain_differs(&Email::parse("john@CONTOSO.com").unwrap()));
        assert!(email.domain_differs(&Email::parse("jane@fabrikam.com").unwrap()));
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
