//! When tenants' automatic runs are due (R20): pure time arithmetic, and the loop that fires them.

mod midnight;
mod scheduler;

pub use midnight::{due_midnight, next_midnight, start_of_day};
pub use scheduler::{Clock, Scheduler, SchedulerSettings, SystemClock, Tick};
