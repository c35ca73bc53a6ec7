//! Small closed vocabularies: roles, group kinds and user statuses, with their stored spellings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what} (expected one of: {expected})")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vattr:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vattr])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        what: $what,
                        value: text.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The role a selected group gives its members in the target (R14: internal wins).
    Role, "role" { Internal => "internal", Basic => "basic" }
);

string_enum!(
    /// What a person or API token may do in dirsync: `operator` everywhere (tenants, their
    /// configuration, access and tokens); `tenant_admin` of a tenant (force, approve, preview,
    /// reports); `viewer` of a tenant (read only).
    AccessRole, "access role" { Operator => "operator", TenantAdmin => "tenant_admin", Viewer => "viewer" }
);

string_enum!(
    /// A user's account status in the target.
    UserStatus, "user status" { Active => "active", Inactive => "inactive", Archived => "archived" }
);

string_enum!(
    /// The status a tenant wants deactivated users to get (R9): `inactive` unless configured.
    #[derive(Default)]
    DeactivationStatus, "deactivation status" { #[default] Inactive => "inactive", Archived => "archived" }
);

string_enum!(
    /// What a target group is to dirsync (R2): a group it manages, with the role it gives, or a
    /// former synced group it converted and no longer touches.
    GroupKind, "group kind" { SyncedInternal => "synced_internal", SyncedBasic => "synced_basic", System => "system" }
);

impl From<DeactivationStatus> for UserStatus {
    fn from(value: DeactivationStatus) -> Self {
        match value {
            DeactivationStatus::Inactive => UserStatus::Inactive,
            DeactivationStatus::Archived => UserStatus::Archived,
        }
    }
}

impl GroupKind {
    pub fn synced(role: Role) -> Self {
        match role {
            Role::Internal => Self::SyncedInternal,
            Role::Basic => Self::SyncedBasic,
        }
    }

    /// The label shown in the UI, in reports, and by targets with no group type of their own (R2).
    pub fn label(self, name: &str) -> String {
        match self {
            Self::SyncedInternal => format!("{name} [Synced Group]"),
            Self::SyncedBasic => format!("{name} [Synced basic user group]"),
            Self::System => format!("{name} [System group]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r02_group_labels_follow_the_kind() {
        assert_eq!(
            GroupKind::synced(Role::Internal).label("Sales"),
            "Sales [Synced Group]"
        );
        assert_eq!(
            GroupKind::synced(Role::Basic).label("Sales"),
            "Sales [Synced basic user group]"
        );
        assert_eq!(
            GroupKind::System.label("abtest3_1745313810193"),
            "abtest3_1745313810193 [System group]"
        );
    }

    #[test]
    fn vocabularies_round_trip_through_text_and_reject_the_unknown() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        }
        assert_eq!(" Internal ".parse::<Role>().unwrap(), Role::Internal);
        let err = "external".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("internal basic"), "{err}");
        assert_eq!(
            UserStatus::from(DeactivationStatus::default()),
            UserStatus::Inactive
        );
    }
}
