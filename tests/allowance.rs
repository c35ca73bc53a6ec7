//! Issue 13, item 3: a run against HighQ uses the target's allowance fully and no more. The HighQ
//! emulator limits requests per one-second window and labels its answers with `X-Ratelimit-*`;
//! the adapter paces its calls by them. The rate is measured from the emulator's own count of the
//! requests it let through per window, not from a clock in the test.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

use std::sync::Arc;
use std::time::Duration;

use dirsync::domain::{DeactivationStatus, EntraObjectId, Role, TenantKey, UserStatus};
use dirsync::emulator::highq::{HighQEmulator, HighQSeed, RateLimit};
use dirsync::plan::{EntraUser, SelectedGroup, TenantPolicy};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::store::{PgStore, RunOptions, RunStatus, Store, Trigger};
use dirsync::sync::{FixedConnector, SyncContext, SyncSettings, run_sync};
use dirsync::target::highq::{HighQAdapter, HighQConfig, MemoryTokenStore};
use dirsync::tenant::{Retention, Tenant};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;

const GROUPS: u128 = 3;
const USERS_PER_GROUP: u128 = 100;
/// Users that already exist in HighQ, made by hand: adopted by email (R4).
const EXISTING: u128 = 20;
const LIMIT: u32 = 40;

fn oid(n: u128) -> EntraObjectId {
    uuid::Uuid::from_u128(n).into()
}

fn group_oid(g: u128) -> EntraObjectId {
    oid(0x6900_0000 + g)
}

fn email(n: u128) -> String {
    format!("user{n}@contoso.com")
}

/// Three groups of a hundred users each.
fn directory() -> MemoryDirectory {
    let mut directory = MemoryDirectory::default();
    for n in 1..=GROUPS * USERS_PER_GROUP {
        directory.users.insert(
            oid(n),
            EntraUser {
                id: oid(n),
                given_name: Some(format!("User{n}")),
                surname: Some("Doe".to_owned()),
                mail: Some(email(n)),
                account_enabled: Some(true),
                ..EntraUser::default()
            },
        );
    }
    for g in 0..GROUPS {
        let members = (g * USERS_PER_GROUP + 1..=(g + 1) * USERS_PER_GROUP).map(oid);
        directory
            .groups
            .insert(group_oid(g), (format!("Team {g}"), members.collect()));
    }
    directory
}

fn tenant() -> Tenant {
    Tenant {
        key: TenantKey::parse("acme").unwrap(),
        display_name: "Acme".to_owned(),
        entra_tenant_id: oid(0xac3e),
        time_zone: chrono_tz::UTC,
        report_retention: Retention::OneMonth,
        policy: TenantPolicy {
            selected_groups: (0..GROUPS)
                .map(|g| SelectedGroup {
                    entra_id: group_oid(g),
                    role: Role::Internal,
                })
                .collect(),
            deactivation_status: DeactivationStatus::Inactive,
            deletion_threshold: 500,
        },
        source: Default::default(),
        target: None,
    }
}

async fn emulator() -> HighQEmulator {
    let emulator = HighQEmulator::start(HighQSeed {
        manual_users: (1..=EXISTING)
            .map(|n| (email(n), "Old".into(), "Name".into(), UserStatus::Active))
            .collect(),
        ..HighQSeed::default()
    })
    .await
    .unwrap();
    emulator.set_rate_limit(Some(RateLimit {
        max_requests: LIMIT,
        window_secs: 1,
    }));
    emulator
}

fn adapter(emulator: &HighQEmulator) -> HighQAdapter {
    let config: HighQConfig = serde_json::from_value(json!({
        "base_url": emulator.base_url(),
        "client_id": emulator.client_id(),
        "client_secret": emulator.client_secret(),
    }))
    .unwrap();
    let tokens = MemoryTokenStore::new(Some(SecretString::from(emulator.refresh_token())));
    HighQAdapter::new(config, Arc::new(tokens)).unwrap()
}

#[sqlx::test(migrations = "./migrations")]
async fn a_run_under_a_tight_rate_limit_uses_most_of_the_allowance_without_a_single_429(
    pool: PgPool,
) {
    let emulator = emulator().await;
    let store = Arc::new(PgStore::new(pool));
    store.upsert_tenant(&tenant()).await.unwrap();
    let ctx = SyncContext {
        store: store.clone(),
        connector: Arc::new(FixedConnector {
            source: Arc::new(MemorySource::new(directory())),
            target: Arc::new(adapter(&emulator)),
        }),
        settings: SyncSettings {
            deletion_confirm_delay: Duration::ZERO,
            ..SyncSettings::default()
        },
    };

    let outcome = run_sync(
        &ctx,
        &TenantKey::parse("acme").unwrap(),
        Trigger::manual("test"),
        RunOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(outcome.status, RunStatus::Succeeded, "{outcome:?}");
    let users = GROUPS * USERS_PER_GROUP;
    assert_eq!(emulator.users().len() as u128, users);
    assert_eq!(
        emulator.rate_limited(),
        0,
        "the pacer holds calls until the reset rather than send them into a 429"
    );
    // Every request is needed: one access check, the existing users in pages (one page holds
    // them, then the empty page), a look and a create per group, one call per user (create or
    // adopt), and one membership batch per group.
    let requests = emulator.with(|s| s.api_requests);
    assert_eq!(requests as u128, 1 + 2 + 2 * GROUPS + users + GROUPS);
    // The rate achieved, from the emulator's count per window: the first and last windows are
    // partial (the run starts and ends inside them), every window in between is a full second
    // of the run (a window with no request at all counts too).
    let windows = emulator.rate_limit_log().per_window();
    let (first, last) = (windows[0].0, windows[windows.len() - 1].0);
    let full_windows = last - first - 1;
    assert!(full_windows >= 4, "{windows:?}");
    let served: u32 = windows[1..windows.len() - 1].iter().map(|(_, n)| n).sum();
    let rate = f64::from(served) / full_windows as f64;
    println!("{requests} requests, {rate:.1} per full window of {LIMIT} allowed: {windows:?}");
    assert!(
        rate >= 0.7 * f64::from(LIMIT),
        "{rate:.1} requests per window of {LIMIT} allowed: {windows:?}"
    );
}
