//! When tenants' automatic runs are due (R20): pure time arithmetic, and the loop that fires them;
//! and what holds them back (issue 14): pauses and quarantine, decided in `quarantine.rs`.

mod midnight;
mod quarantine;
mod scheduler;
mod status;

pub use midnight::{due_midnight, next_midnight, start_of_day};
pub use quarantine::{
    MidnightDecision, Quarantine, QuarantinePolicy, assess, decide_midnight, paused_by,
};
pub use scheduler::{Clock, Scheduler, SchedulerSettings, SystemClock, Tick};
pub use status::{
    PauseChange, ScheduleStatus, lift_quarantine_after_fix, on_quarantined, pause_refusal,
    pause_service, pause_tenant, quarantine_of, resume_service, resume_tenant, scheduler_actor,
};
