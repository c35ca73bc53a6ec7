//! Where a sync's memory goes, measured with a counting allocator: the source snapshot, the
//! mirror, and what planning holds at its peak, for the shape of issue 13 (100,000 users in 20
//! groups: 19 internal of ~5,263 and one basic of 40,000) and, with `-- 500000`, 500,000 users in
//! 100 groups. Prints live heap bytes after each step and the peak while planning; asserts only
//! that the work was done. Run: `cargo bench --bench memory [-- USERS]`; `DIRSYNC_MEMORY_REPEAT=N`
//! plans the no-change run N times.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::Utc;
use dirsync::domain::{
    DeactivationStatus, Email, EntraObjectId, Role, TargetGroupId, TargetUserId, UserStatus,
};
use dirsync::plan::{
    EntraUser, GroupFetch, GroupKey, GroupOutcome, Mirror, MirrorGroup, MirrorUser, Plan,
    PlanInput, SelectedGroup, SourceSnapshot, TargetLookups, TenantPolicy, UserFields, UserState,
    emails_to_look_up, plan,
};
use dirsync::source::SharedUsers;

/// The system allocator, counting the bytes live now and at most.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// Runs `work`, printing the heap it leaves behind and its peak above the heap before it.
fn measured<T>(label: &str, work: impl FnOnce() -> T) -> T {
    let before = live();
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let result = work();
    let elapsed = started.elapsed();
    let after = live();
    let peak = PEAK.load(Ordering::Relaxed);
    println!(
        "{label:<44} kept {:>7.1} MB   peak +{:>7.1} MB   {:>7.0} ms",
        mb(after.saturating_sub(before)),
        mb(peak - before),
        elapsed.as_secs_f64() * 1000.0
    );
    result
}

fn id(kind: u128, n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128((kind << 64) | n).into()
}

const TITLES: [&str; 8] = [
    "Associate",
    "Senior Associate",
    "Partner",
    "Paralegal",
    "Trainee Solicitor",
    "Legal Secretary",
    "Counsel",
    "Office Manager",
];

fn user(n: u128) -> EntraUser {
    EntraUser {
        id: id(1, n),
        given_name: Some(format!("Given{n}")),
        surname: Some(format!("Surname{n}")),
        display_name: Some(format!("Given{n} Surname{n}")),
        mail: Some(format!("user{n}@contoso-legal.com")),
        user_principal_name: Some(format!("user{n}@contoso-legal.com")),
        business_phones: vec![format!("+44 20 7946 {:04}", n % 10_000)],
        job_title: Some(TITLES[(n % 8) as usize].to_owned()),
        account_enabled: Some(true),
    }
}

/// The shape: all but the last group internal, splitting the users between them; the
/// last group basic, holding the first 40% of the users (who are therefore in two groups).
struct Shape {
    users: u128,
    groups: u128,
}

impl Shape {
    fn members(&self, g: u128) -> Vec<u128> {
        let internal = self.groups - 1;
        if g == internal {
            (0..self.users * 2 / 5).collect()
        } else {
            (0..self.users).filter(|n| n % internal == g).collect()
        }
    }

    fn role(&self, g: u128) -> Role {
        if g == self.groups - 1 {
            Role::Basic
        } else {
            Role::Internal
        }
    }

    fn policy(&self) -> TenantPolicy {
        TenantPolicy {
            selected_groups: (0..self.groups)
                .map(|g| SelectedGroup {
                    entra_id: id(2, g),
                    role: self.role(g),
                })
                .collect(),
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 0,
        }
    }

    /// The snapshot as a source builds it: each group's members read whole (Graph's pages),
    /// then shared with the groups read before (`SharedUsers`).
    fn snapshot(&self) -> SourceSnapshot {
        let shared = SharedUsers::default();
        SourceSnapshot {
            groups: (0..self.groups)
                .map(|g| GroupFetch {
                    entra_id: id(2, g),
                    outcome: GroupOutcome::Found {
                        display_name: format!("Group {g}"),
                        members: shared.share(self.members(g).into_iter().map(user).collect()),
                    },
                })
                .collect(),
        }
    }

    /// What an initial sync of `snapshot()` leaves in the mirror: every user internal, the basic
    /// group empty (R14).
    fn settled_mirror(&self) -> Mirror {
        Mirror {
            groups: (0..self.groups)
                .map(|g| MirrorGroup {
                    key: GroupKey {
                        entra_id: id(2, g),
                        role: self.role(g),
                    },
                    target_id: TargetGroupId::new(format!("g{g}")).unwrap(),
                    name: format!("Group {g}"),
                    members: if self.role(g) == Role::Basic {
                        Vec::new()
                    } else {
                        self.members(g).into_iter().map(|n| id(1, n)).collect()
                    },
                })
                .collect(),
            users: (0..self.users)
                .map(|n| {
                    let u = user(n);
                    MirrorUser {
                        entra_id: u.id.clone(),
                        target_id: TargetUserId::new(format!("{}", 100_000 + n)).unwrap(),
                        state: UserState {
                            fields: UserFields {
                                email: Email::parse(u.mail.as_deref().unwrap()).unwrap(),
                                first_name: u.given_name.unwrap().into(),
                                last_name: u.surname.unwrap().into(),
                                phone: Some(u.business_phones[0].as_str().into()),
                                job_title: u.job_title.map(Into::into),
                            },
                            role: Role::Internal,
                            status: UserStatus::Active,
                        },
                    }
                })
                .collect(),
            converted: Vec::new(),
        }
    }
}

fn run_plan(policy: &TenantPolicy, snapshot: &SourceSnapshot, mirror: &Mirror) -> Plan {
    let _ = emails_to_look_up(policy, snapshot, mirror);
    plan(PlanInput {
        policy,
        snapshot,
        mirror,
        target: &TargetLookups::default(),
        now: Utc::now(),
        approved_deactivations: None,
    })
}

fn main() {
    let users: u128 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let shape = Shape {
        users,
        groups: if users > 100_000 { 100 } else { 20 },
    };
    println!(
        "dirsync memory figures: {} users in {} groups ({} internal, one basic of {})",
        shape.users,
        shape.groups,
        shape.groups - 1,
        shape.users * 2 / 5
    );
    let policy = shape.policy();
    let snapshot = measured("source snapshot", || shape.snapshot());
    let empty = Mirror::default();
    let initial = measured("plan: initial sync (empty mirror)", || {
        run_plan(&policy, &snapshot, &empty)
    });
    assert!(!initial.ops.is_empty());
    drop(initial);
    let mirror = measured("mirror after the initial sync", || shape.settled_mirror());
    // `DIRSYNC_MEMORY_REPEAT=N` plans the no-change run N times (to profile or time it alone).
    let repeat: usize = std::env::var("DIRSYNC_MEMORY_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    for _ in 0..repeat.max(1) {
        let settled = measured("plan: no change", || run_plan(&policy, &snapshot, &mirror));
        assert!(settled.ops.is_empty(), "a settled mirror plans nothing");
    }
    println!(
        "{:<44} {:>12.1} MB",
        "heap held at the end (snapshot + mirror)",
        mb(live())
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines().filter(|l| l.starts_with("VmHWM")) {
            println!("process peak RSS ({line})");
        }
    }
}
