//! Validated domain types, parsed once at the boundary so the rest of dirsync can trust them.

mod email;
mod ids;
mod kinds;

pub use email::{Email, EmailError};
pub use ids::{EntraObjectId, IdError, TargetGroupId, TargetUserId, TenantKey};
pub use kinds::{DeactivationStatus, GroupKind, Role, UnknownVariant, UserStatus};
