//! Identifiers: Entra object IDs, tenant keys and the opaque IDs a target hands back.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "{0:?} is not an Entra object ID (expected a GUID such as 8f3e2c1a-0b4d-4e5f-9a6b-7c8d9e0f1a2b)"
    )]
    NotAGuid(String),
    #[error(
        "{0:?} is not a tenant key (use 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter or digit)"
    )]
    BadTenantKey(String),
    #[error("a target ID must not be empty")]
    EmptyTargetId,
}

/// An Entra (Azure AD) object ID: a GUID, held in canonical lowercase hyphenated form so
/// that IDs compare equal however Graph or an operator spelled them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntraObjectId(uuid::Uuid);

impl EntraObjectId {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let trimmed = text.trim();
        // Only the hyphenated 36-character form is accepted: it is the only one Graph uses,
        // and accepting braces or bare hex would let two spellings of one group slip in.
        if trimmed.len() != 36 {
            return Err(IdError::NotAGuid(text.to_owned()));
        }
        uuid::Uuid::parse_str(trimmed)
            .map(Self)
            .map_err(|_| IdError::NotAGuid(text.to_owned()))
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl From<uuid::Uuid> for EntraObjectId {
    fn from(value: uuid::Uuid) -> Self {
        Self(value)
    }
}

impl TryFrom<String> for EntraObjectId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EntraObjectId> for String {
    fn from(value: EntraObjectId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for EntraObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for EntraObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntraObjectId({self})")
    }
}

/// The operator-chosen short name of a tenant (`acme`, `contoso-eu`), used in URLs and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantKey(String);

impl TenantKey {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        let starts_well = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if (1..=64).contains(&text.len()) && starts_well && text.chars().all(valid_char) {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError::BadTenantKey(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantKey {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantKey> for String {
    fn from(value: TenantKey) -> Self {
        value.0
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! opaque_target_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                if text.trim().is_empty() {
                    Err(IdError::EmptyTargetId)
                } else {
                    Ok(Self(text))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_target_id!(
    /// A user's ID in the target (HighQ `userid`, SCIM `id`): opaque, whatever the target returns.
    TargetUserId
);
opaque_target_id!(
    /// A group's ID in the target (HighQ `groupID`, SCIM `id`): opaque, whatever the target returns.
    TargetGroupId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_ids_are_case_insensitive_and_canonical() {
        let upper = EntraObjectId::parse("8F3E2C1A-0B4D-4E5F-9A6B-7C8D9E0F1A2B").unwrap();
        let lower = EntraObjectId::parse("8f3e2c1a-0b4d-4e5f-9a6b-7c8d9e0f1a2b").unwrap();
        assert_eq!(upper, lower);
        assert_eq!(upper.to_string(), "8f3e2c1a-0b4d-4e5f-9a6b-7c8d9e0f1a2b");
    }

    #[test]
    fn entra_ids_reject_other_spellings_and_garbage() {
        for bad in [
            "",
            "abc",
            "8f3e2c1a0b4d4e5f9a6b7c8d9e0f1a2b",
            "{8f3e2c1a-0b4d-4e5f-9a6b-7c8d9e0f1a2b}",
        ] {
            assert!(
                EntraObjectId::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn tenant_keys_are_slugs() {
        assert!(TenantKey::parse("acme").is_ok());
        assert!(TenantKey::parse("contoso-eu_2").is_ok());
        for bad in ["", "-acme", "Acme", "ac me", "a/b", &"a".repeat(65)] {
            assert!(TenantKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn target_ids_must_not_be_blank() {
        assert!(TargetUserId::new(" ").is_err());
        assert_eq!(TargetGroupId::new("42").unwrap().as_str(), "42");
    }
}
