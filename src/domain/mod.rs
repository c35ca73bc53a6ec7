//! Validated domain types, parsed once at the boundary so the rest of dirsync can trust them.

mod email;
mod ids;
mod kinds;
mod secret;

pub use email::{Email, EmailError};
pub use ids::{EntraObjectId, IdError, TargetGroupId, TargetUserId, TenantKey};
pub use kinds::{AccessRole, DeactivationStatus, GroupKind, Role, UnknownVariant, UserStatus};
pub use secret::{
    DEFAULT_ENV_PREFIX, REDACTED, SecretEnvPolicy, SecretSetting, expose_for_storage,
};
