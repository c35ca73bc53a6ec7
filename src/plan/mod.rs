//! The pure planner: from what Entra says, what was synced before and what the target already
//! holds, decide exactly which changes a run makes (SPEC.md R1–R18). No IO, no clock: `now` is an
//! argument, so every rule is a unit test on plain data.

mod engine;
mod fields;
mod model;
mod snapshot_user;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

pub use engine::{emails_to_look_up, emails_to_look_up_indexed, plan, plan_indexed};
pub use fields::{MAX_FIELD_CHARS, truncate_chars};
pub use model::*;
pub use snapshot_user::SnapshotUser;

/// R16: a group with more direct user members than this is Failed for the run.
pub const MAX_GROUP_MEMBERS: usize = 50_000;
