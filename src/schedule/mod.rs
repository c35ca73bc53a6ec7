//! When tenants' automatic runs are due (R20): pure time arithmetic that the scheduler loop calls.

mod midnight;

pub use midnight::{due_midnight, next_midnight, start_of_day};
