//! Scale figures for a 100,000-user tenant with 50,000-member groups: planning (initial sync,
//! no change, 1% change) and the mirror's bulk write and load on SQLite and, when PostgreSQL is
//! reachable, on PostgreSQL.
//! Prints figures; asserts only that the work was done. Run: `cargo bench --bench scale`.

use std::time::Instant;

use chrono::Utc;
use dirsync::domain::{
    DeactivationStatus, EntraObjectId, Role, TargetGroupId, TargetUserId, UserStatus,
};
use dirsync::plan::{
    EntraUser, GroupFetch, GroupKey, GroupOutcome, Mirror, MirrorGroup, MirrorUser, PlanInput,
    SelectedGroup, SourceSnapshot, TargetLookups, TenantPolicy, UserFields, UserState,
    emails_to_look_up, plan,
};
use dirsync::store::{CreatedGroup, MirrorChanges, PgStore, SqliteStore, Store};

const USERS: u128 = 100_000;
const GROUPS: u128 = 4;
const PER_GROUP: u128 = 50_000;

fn id(kind: u128, n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128((kind << 64) | n).into()
}

fn user(n: u128) -> EntraUser {
    EntraUser {
        id: id(1, n),
        given_name: Some(format!("Given{n}")),
        surname: Some(format!("Surname{n}")),
        display_name: Some(format!("Given{n} Surname{n}")),
        mail: Some(format!("user{n}@contoso.com")),
        user_principal_name: Some(format!("user{n}@contoso.com")),
        business_phones: vec!["+44 20 7946 0958".to_owned()],
        job_title: Some("Associate".to_owned()),
        account_enabled: Some(true),
    }
}

/// Group g holds users [g * 25,000, g * 25,000 + 50,000): every user is in two groups.
fn members(g: u128) -> impl Iterator<Item = u128> {
    (0..PER_GROUP).map(move |i| (g * (USERS / GROUPS) + i) % USERS)
}

fn policy() -> TenantPolicy {
    TenantPolicy {
        selected_groups: (0..GROUPS)
            .map(|g| SelectedGroup {
                entra_id: id(2, g),
                role: if g == 3 { Role::Basic } else { Role::Internal },
            })
            .collect(),
        deactivation_status: DeactivationStatus::Inactive,
        deletion_threshold: 0,
    }
}

fn snapshot(change: impl Fn(&mut EntraUser)) -> SourceSnapshot {
    SourceSnapshot {
        groups: (0..GROUPS)
            .map(|g| GroupFetch {
                entra_id: id(2, g),
                outcome: GroupOutcome::Found {
                    display_name: format!("Group {g}"),
                    members: members(g)
                        .map(|n| {
                            let mut u = user(n);
                            change(&mut u);
                            std::sync::Arc::new(u.into())
                        })
                        .collect(),
                },
            })
            .collect(),
    }
}

/// The mirror an initial sync of `snapshot(|_| {})` leaves behind.
fn settled_mirror() -> Mirror {
    let policy = policy();
    let internal: std::collections::HashSet<u128> = (0..GROUPS)
        .filter(|g| policy.selected_groups[*g as usize].role == Role::Internal)
        .flat_map(members)
        .collect();
    Mirror {
        groups: (0..GROUPS)
            .map(|g| {
                let role = policy.selected_groups[g as usize].role;
                MirrorGroup {
                    key: GroupKey {
                        entra_id: id(2, g),
                        role,
                    },
                    target_id: TargetGroupId::new(format!("g{g}")).unwrap(),
                    name: format!("Group {g}"),
                    members: members(g)
                        .filter(|n| role == Role::Internal || !internal.contains(n))
                        .map(|n| id(1, n))
                        .collect(),
                }
            })
            .collect(),
        users: (0..USERS)
            .map(|n| MirrorUser {
                entra_id: id(1, n),
                target_id: TargetUserId::new(format!("u{n}")).unwrap(),
                state: UserState {
                    fields: UserFields {
                        email: dirsync::domain::Email::parse(&format!("user{n}@contoso.com"))
                            .unwrap(),
                        first_name: format!("Given{n}").into(),
                        last_name: format!("Surname{n}").into(),
                        phone: Some("+44 20 7946 0958".into()),
                        job_title: Some("Associate".into()),
                    },
                    role: if internal.contains(&n) {
                        Role::Internal
                    } else {
                        Role::Basic
                    },
                    status: UserStatus::Active,
                },
            })
            .collect(),
        converted: Vec::new(),
    }
}

fn timed<T>(label: &str, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = work();
    println!(
        "{label:<58} {:>9.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    result
}

fn run_plan(label: &str, snapshot: &SourceSnapshot, mirror: &Mirror) -> dirsync::plan::Plan {
    let policy = policy();
    timed(label, || {
        let _ = emails_to_look_up(&policy, snapshot, mirror);
        plan(PlanInput {
            policy: &policy,
            snapshot,
            mirror,
            target: &TargetLookups::default(),
            now: Utc::now(),
            approved_deactivations: None,
        })
    })
}

#[tokio::main]
async fn main() {
    println!("dirsync scale figures: {USERS} users, {GROUPS} groups of {PER_GROUP} direct members");
    let fresh = timed("build the source snapshot", || snapshot(|_| {}));
    let mirror = timed("build the settled mirror", settled_mirror);

    let initial = run_plan(
        "plan: initial sync (empty mirror)",
        &fresh,
        &Mirror::default(),
    );
    let c = initial.counts();
    println!(
        "    -> {} users created, {} memberships added",
        c.users_created, c.memberships_added
    );
    assert_eq!(c.users_created, USERS as usize);

    let quiet = run_plan("plan: no change in Entra", &fresh, &mirror);
    println!("    -> {} operations", quiet.ops.len());
    assert!(quiet.ops.is_empty());

    let changed = snapshot(|u| {
        let n = u.id.as_uuid().as_u128() & u64::MAX as u128;
        if n % 100 == 0 {
            u.job_title = Some("Senior Associate".to_owned());
        }
    });
    let some = run_plan("plan: 1% of users changed", &changed, &mirror);
    println!("    -> {} users updated", some.counts().users_updated);

    let tenant = dirsync::tenant::Tenant {
        key: dirsync::domain::TenantKey::parse("bench").unwrap(),
        display_name: "Bench".to_owned(),
        entra_tenant_id: id(3, 1),
        time_zone: chrono_tz::UTC,
        report_retention: dirsync::tenant::Retention::OneMonth,
        policy: policy(),
        source: Default::default(),
        target: None,
    };
    let changes = MirrorChanges {
        groups_created: mirror
            .groups
            .iter()
            .map(|g| CreatedGroup {
                key: g.key.clone(),
                target_id: g.target_id.clone(),
                name: g.name.clone(),
            })
            .collect(),
        users: mirror.users.clone(),
        members_added: mirror
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| (g.key.clone(), m.clone())))
            .collect(),
        ..MirrorChanges::default()
    };

    // The embedded store, in a file of its own.
    let dir = std::env::temp_dir().join(format!("dirsync-bench-{}", std::process::id()));
    let sqlite = SqliteStore::open(&dir.join("dirsync.db"), 4).await.unwrap();
    store_figures("sqlite", &sqlite, &tenant, &changes).await;
    drop(sqlite);
    let _ = std::fs::remove_dir_all(&dir);

    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let Ok(admin) = sqlx::PgPool::connect(&url).await else {
        println!("(PostgreSQL not reachable at {url}: its store figures skipped)");
        return;
    };
    let db = format!("dirsync_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let base = &url[..url.rfind('/').expect("a database URL ends in /NAME")];
    let store = PgStore::open(&format!("{base}/{db}"), 4).await.unwrap();
    store_figures("postgres", &store, &tenant, &changes).await;
    drop(store);
    let _ = sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&admin)
        .await;
}

/// The mirror's bulk write and load on one store.
async fn store_figures(
    backend: &str,
    store: &dyn Store,
    tenant: &dirsync::tenant::Tenant,
    changes: &MirrorChanges,
) {
    store.upsert_tenant(tenant).await.unwrap();
    let started = Instant::now();
    store
        .apply_mirror_changes(&tenant.key, changes)
        .await
        .unwrap();
    println!(
        "{:<58} {:>9.1} ms",
        format!(
            "{backend}: write {} users, {} memberships",
            changes.users.len(),
            changes.members_added.len()
        ),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let started = Instant::now();
    let loaded = store.load_mirror(&tenant.key).await.unwrap();
    println!(
        "{:<58} {:>9.1} ms",
        format!("{backend}: load the mirror"),
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(loaded.users.len(), USERS as usize);
}
