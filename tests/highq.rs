//! The HighQ adapter against the HighQ emulator: each test starts its own emulator on port 0.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

use std::sync::Arc;
use std::time::Duration;

use dirsync::domain::{
    Email, EntraObjectId, GroupKind, Role, TargetGroupId, TargetUserId, UserStatus,
};
use dirsync::emulator::highq::{Fault, FaultAction, HighQEmulator, HighQSeed, RateLimit};
use dirsync::plan::{FieldChange, GroupKey, ManagedField, UserFields, UserState};
use dirsync::target::highq::{
    HighQAdapter, HighQConfig, MemoryTokenStore, TokenRefresh, TokenStore,
};
use dirsync::target::{TargetAdapter, TargetError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

struct Harness {
    emulator: HighQEmulator,
    store: MemoryTokenStore,
    adapter: HighQAdapter,
}

fn config(emulator: &HighQEmulator, tuning: serde_json::Value) -> HighQConfig {
    serde_json::from_value(json!({
        "base_url": emulator.base_url(),
        "api_version": 16,
        "client_id": emulator.client_id(),
        "client_secret": emulator.client_secret(),
        "tuning": tuning,
    }))
    .unwrap()
}

fn adapter(
    emulator: &HighQEmulator,
    store: &MemoryTokenStore,
    tuning: serde_json::Value,
) -> HighQAdapter {
    HighQAdapter::new(config(emulator, tuning), Arc::new(store.clone())).unwrap()
}

async fn harness_with(seed: HighQSeed, tuning: serde_json::Value) -> Harness {
    let emulator = HighQEmulator::start(seed).await.unwrap();
    let store = MemoryTokenStore::new(Some(SecretString::from(emulator.refresh_token())));
    let adapter = adapter(&emulator, &store, tuning);
    Harness {
        emulator,
        store,
        adapter,
    }
}

async fn harness() -> Harness {
    harness_with(HighQSeed::default(), json!({"retry_base_ms": 1})).await
}

fn entra_id(n: u8) -> EntraObjectId {
    EntraObjectId::parse(&format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
}

fn state(email: &str, first: &str, last: &str) -> UserState {
    UserState {
        fields: UserFields {
            email: Email::parse(email).unwrap(),
            first_name: first.into(),
            last_name: last.into(),
            phone: None,
            job_title: None,
        },
        role: Role::Internal,
        status: UserStatus::Active,
    }
}

fn key(n: u8, role: Role) -> GroupKey {
    GroupKey {
        entra_id: entra_id(n),
        role,
    }
}

fn uid(id: u64) -> TargetUserId {
    TargetUserId::new(id.to_string()).unwrap()
}

fn num(id: &TargetUserId) -> u64 {
    id.as_str().parse().unwrap()
}

fn gnum(id: &TargetGroupId) -> u64 {
    id.as_str().parse().unwrap()
}

fn manual_seed() -> HighQSeed {
    HighQSeed {
        manual_users: vec![
            (
                "Jane.Doe@Contoso.com".into(),
                "Jane".into(),
                "Doe".into(),
                UserStatus::Active,
            ),
            (
                "boss@contoso.com".into(),
                "The".into(),
                "Boss".into(),
                UserStatus::Active,
            ),
        ],
        manual_groups: vec![("Partners".into(), vec!["boss@contoso.com".into()])],
        ..HighQSeed::default()
    }
}

#[tokio::test]
async fn a_new_user_is_created_with_the_whole_managed_state_and_linked_to_entra() {
    let h = harness().await;
    let mut wanted = state("new.user@contoso.com", "New", "User");
    wanted.fields.phone = Some("+44 (20) 7946 0958".into());
    wanted.fields.job_title = Some("Partner".into());
    wanted.role = Role::Basic;

    let id = h.adapter.create_user(&entra_id(1), &wanted).await.unwrap();

    let user = h.emulator.user_by_email("new.user@contoso.com").unwrap();
    assert_eq!(user.id, num(&id));
    assert_eq!(
        (user.first_name.as_str(), user.last_name.as_str()),
        ("New", "User")
    );
    assert_eq!(user.phone, "+44$20$7946$0958");
    assert_eq!(user.job_title, "Partner");
    assert_eq!(user.role, Role::Basic);
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!(user.external_id, Some(entra_id(1).to_string()));
}

#[tokio::test]
async fn existing_users_are_found_by_email_case_insensitively_and_adopted() {
    let h = harness_with(manual_seed(), json!({})).await;

    let found = h
        .adapter
        .find_users_by_email(&[
            Email::parse("jane.doe@CONTOSO.COM").unwrap(),
            Email::parse("nobody@contoso.com").unwrap(),
        ])
        .await
        .unwrap();

    assert_eq!(found.len(), 1);
    assert_eq!(found[0].fields.email.as_str(), "Jane.Doe@Contoso.com");
    assert_eq!(found[0].status, UserStatus::Active);

    h.adapter
        .adopt_user(
            &found[0].id,
            &entra_id(7),
            &state("jane.doe@contoso.com", "Janet", "Doe"),
        )
        .await
        .unwrap();
    let user = h.emulator.user_by_email("jane.doe@contoso.com").unwrap();
    assert_eq!(user.external_id, Some(entra_id(7).to_string()));
    assert_eq!(user.first_name, "Janet");
    assert!(!user.is_manual());
}

#[tokio::test]
async fn many_emails_are_looked_up_by_paging_through_all_users() {
    let seed = HighQSeed {
        manual_users: (0..12)
            .map(|i| {
                (
                    format!("user{i}@contoso.com"),
                    "U".into(),
                    format!("{i}"),
                    UserStatus::Active,
                )
            })
            .collect(),
        max_page_size: 5,
        ..HighQSeed::default()
    };
    let h = harness_with(seed, json!({"lookup_one_by_one_max": 3, "page_size": 50})).await;
    let emails: Vec<Email> = [0, 4, 5, 11, 99]
        .iter()
        .map(|i| Email::parse(&format!("USER{i}@contoso.com")).unwrap())
        .collect();

    let found = h.adapter.find_users_by_email(&emails).await.unwrap();

    let mut names: Vec<String> = found
        .iter()
        .map(|u| u.fields.last_name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["0", "11", "4", "5"]);
    // 12 users in pages of at most 5: after two pages two emails are still missing, as many as
    // the pages read, so those two are asked for one by one: 4 calls, not one per email.
    assert_eq!(h.emulator.with(|s| s.api_requests), 4);
}

fn seed_with_users(n: usize, max_page_size: usize) -> HighQSeed {
    HighQSeed {
        manual_users: (0..n)
            .map(|i| {
                (
                    format!("user{i}@contoso.com"),
                    "U".into(),
                    format!("{i}"),
                    UserStatus::Active,
                )
            })
            .collect(),
        max_page_size,
        ..HighQSeed::default()
    }
}

#[tokio::test]
async fn adoption_look_ups_read_pages_when_the_emails_outnumber_them() {
    // 250 users in pages of 100: three pages, the last one short, so no empty page is asked for.
    let h = harness_with(
        seed_with_users(250, 100),
        json!({"lookup_one_by_one_max": 3}),
    )
    .await;
    let emails: Vec<Email> = (0..60)
        .map(|i| Email::parse(&format!("user{}@contoso.com", i * 5)).unwrap())
        .collect();

    let found = h.adapter.find_users_by_email(&emails).await.unwrap();

    assert_eq!(found.len(), 50);
    assert_eq!(h.emulator.with(|s| s.api_requests), 3);
}

#[tokio::test]
async fn adoption_look_ups_ask_one_by_one_once_the_pages_read_outnumber_the_emails_missing() {
    // 2,000 users in pages of 100 (20 pages) and five new emails: after five pages, the five are
    // asked for one by one, 10 calls instead of 20 pages.
    let h = harness_with(
        seed_with_users(2_000, 100),
        json!({"lookup_one_by_one_max": 3}),
    )
    .await;
    let emails: Vec<Email> = (0..5)
        .map(|i| Email::parse(&format!("new{i}@contoso.com")).unwrap())
        .collect();

    let found = h.adapter.find_users_by_email(&emails).await.unwrap();

    assert!(found.is_empty());
    assert_eq!(h.emulator.with(|s| s.api_requests), 10);
}

/// The sizes of the membership batches HighQ accepted, in the order it did.
fn accepted_batches(emulator: &HighQEmulator) -> Vec<usize> {
    emulator
        .writes()
        .iter()
        .filter(|w| w.starts_with("POST /groups/"))
        .map(|w| w.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

async fn group_and_users(h: &Harness, n: usize) -> (TargetGroupId, Vec<TargetUserId>) {
    let group = h
        .adapter
        .create_group(&key(60, Role::Internal), "Everyone")
        .await
        .unwrap();
    let users = h
        .emulator
        .users()
        .iter()
        .take(n)
        .map(|u| uid(u.id))
        .collect();
    (group, users)
}

#[tokio::test]
async fn members_are_added_in_batches_of_the_most_highq_accepts() {
    let h = harness_with(seed_with_users(1_200, 100), json!({})).await;
    let (group, users) = group_and_users(&h, 1_200).await;

    let outcome = h.adapter.add_members(&group, &users).await;

    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    let mut batches = accepted_batches(&h.emulator);
    batches.sort();
    assert_eq!(batches, [200, 500, 500]);
    assert_eq!(
        h.emulator.group_by_name("Everyone").unwrap().members.len(),
        1_200
    );
}

#[tokio::test]
async fn a_batch_larger_than_highq_accepts_is_refused_clearly_and_split() {
    let h = harness_with(
        seed_with_users(1_000, 100),
        json!({"member_batch_size": 1_000}),
    )
    .await;
    let (group, users) = group_and_users(&h, 1_000).await;
    let token = h
        .emulator
        .with(|s| s.oauth.access_tokens.keys().next().cloned().unwrap());
    let too_many: Vec<u64> = users.iter().map(num).collect();

    let refused = reqwest::Client::new()
        .post(format!(
            "{}/api/16/groups/{}/users",
            h.emulator.base_url(),
            gnum(&group)
        ))
        .bearer_auth(token)
        .header("accept", "application/json")
        .json(&json!({ "userid": too_many }))
        .send()
        .await
        .unwrap();
    let status = refused.status();
    let body = refused.text().await.unwrap();
    let outcome = h.adapter.add_members(&group, &users).await;

    assert_eq!(status, 400);
    assert!(
        body.contains("At most 500 users") && body.contains("306"),
        "{body}"
    );
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(accepted_batches(&h.emulator), [500, 500]);
}

#[tokio::test]
async fn an_update_sends_only_the_changed_fields_with_role_and_status() {
    let h = harness().await;
    let before = state("a@contoso.com", "Ann", "Smith");
    let id = h.adapter.create_user(&entra_id(1), &before).await.unwrap();
    let mut after = before.clone();
    after.fields.last_name = "Jones".into();
    after.fields.job_title = Some("x".repeat(600).into());
    let changes = [
        FieldChange {
            field: ManagedField::LastName,
            old: Some("Smith".into()),
            new: Some("Jones".into()),
        },
        FieldChange {
            field: ManagedField::JobTitle,
            old: None,
            new: after.fields.job_title.as_ref().map(ToString::to_string),
        },
    ];

    h.adapter.update_user(&id, &changes, &after).await.unwrap();

    let writes = h.emulator.writes();
    assert_eq!(
        writes.last().unwrap(),
        &format!("PUT /users/{id} jobtitle,lastname,role,status")
    );
    let user = h.emulator.user_by_email("a@contoso.com").unwrap();
    assert_eq!(user.last_name, "Jones");
    assert_eq!(user.job_title.chars().count(), 512);
}

#[tokio::test]
async fn a_user_is_deactivated_and_reactivated() {
    let h = harness().await;
    let id = h
        .adapter
        .create_user(&entra_id(1), &state("a@contoso.com", "A", "B"))
        .await
        .unwrap();

    h.adapter
        .set_user_status(&id, UserStatus::Inactive)
        .await
        .unwrap();
    assert_eq!(
        h.emulator.user_by_email("a@contoso.com").unwrap().status,
        UserStatus::Inactive
    );
    h.adapter
        .set_user_status(&id, UserStatus::Archived)
        .await
        .unwrap();
    assert_eq!(
        h.emulator.user_by_email("a@contoso.com").unwrap().status,
        UserStatus::Archived
    );
    h.adapter
        .set_user_status(&id, UserStatus::Active)
        .await
        .unwrap();

    assert_eq!(
        h.emulator.user_by_email("a@contoso.com").unwrap().status,
        UserStatus::Active
    );
}

#[tokio::test]
async fn members_are_added_in_batches_and_an_archived_user_is_refused_alone() {
    let h = harness_with(HighQSeed::default(), json!({"member_batch_size": 4})).await;
    let mut users = Vec::new();
    for i in 0..10u8 {
        let id = h
            .adapter
            .create_user(&entra_id(i), &state(&format!("u{i}@contoso.com"), "U", "N"))
            .await
            .unwrap();
        users.push(id);
    }
    h.adapter
        .set_user_status(&users[6], UserStatus::Archived)
        .await
        .unwrap();
    let group = h
        .adapter
        .create_group(&key(50, Role::Internal), "Sales")
        .await
        .unwrap();

    let outcome = h.adapter.add_members(&group, &users).await;

    assert_eq!(outcome.failed.len(), 1, "{:?}", outcome.failed);
    let (who, why) = &outcome.failed[0];
    assert_eq!(who, &users[6]);
    assert!(
        matches!(why, TargetError::Rejected(text) if text.contains("archived") && text.contains("394")),
        "{why}"
    );
    let members = h.emulator.group_by_name("Sales").unwrap().members;
    assert_eq!(members.len(), 9);
    assert!(!members.contains(&num(&users[6])));
    let batches = h
        .emulator
        .writes()
        .iter()
        .filter(|w| w.starts_with("POST /groups/"))
        .count();
    assert!(
        batches <= 6,
        "three batches of at most four, one split: {batches} calls"
    );
}

#[tokio::test]
async fn members_are_removed_and_a_missing_group_is_reported_per_user() {
    let h = harness().await;
    let a = h
        .adapter
        .create_user(&entra_id(1), &state("a@contoso.com", "A", "A"))
        .await
        .unwrap();
    let b = h
        .adapter
        .create_user(&entra_id(2), &state("b@contoso.com", "B", "B"))
        .await
        .unwrap();
    let group = h
        .adapter
        .create_group(&key(50, Role::Internal), "Sales")
        .await
        .unwrap();
    assert!(
        h.adapter
            .add_members(&group, &[a.clone(), b.clone()])
            .await
            .failed
            .is_empty()
    );

    let outcome = h
        .adapter
        .remove_members(&group, std::slice::from_ref(&a))
        .await;
    assert!(outcome.failed.is_empty());
    assert_eq!(
        h.adapter.group_members(&group).await.unwrap(),
        std::slice::from_ref(&b)
    );

    let missing = TargetGroupId::new("999999").unwrap();
    let outcome = h.adapter.remove_members(&missing, &[a, b]).await;
    assert_eq!(outcome.failed.len(), 2);
    assert!(matches!(&outcome.failed[0].1, TargetError::NotFound(_)));
}

#[tokio::test]
async fn groups_are_created_with_their_type_renamed_and_converted_to_system_groups() {
    let h = harness().await;
    let internal = h
        .adapter
        .create_group(&key(1, Role::Internal), "Sales")
        .await
        .unwrap();
    let basic = h
        .adapter
        .create_group(&key(2, Role::Basic), "Guests")
        .await
        .unwrap();
    assert_eq!(
        h.emulator.group_by_name("Sales").unwrap().kind,
        GroupKind::SyncedInternal
    );
    assert_eq!(
        h.emulator.group_by_name("Guests").unwrap().guid,
        Some(entra_id(2).to_string())
    );
    assert_eq!(
        h.emulator.group_by_name("Guests").unwrap().kind,
        GroupKind::SyncedBasic
    );

    h.adapter
        .rename_group(&internal, &key(1, Role::Internal), "Sales EMEA")
        .await
        .unwrap();
    h.adapter
        .convert_to_system_group(&basic, "Guests_1745313810193")
        .await
        .unwrap();

    assert_eq!(
        h.emulator.with(|s| s.groups[&gnum(&internal)].name.clone()),
        "Sales EMEA"
    );
    let converted = h.emulator.group_by_name("Guests_1745313810193").unwrap();
    assert_eq!(converted.kind, GroupKind::System);
    let synced = h.adapter.list_groups("synced").await.unwrap();
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!(synced[0].2, Some(GroupKind::SyncedInternal));
}

#[tokio::test]
async fn a_taken_group_name_is_a_conflict_and_manual_groups_are_left_alone() {
    let h = harness_with(manual_seed(), json!({})).await;
    let partners_before = h.emulator.group_by_name("Partners").unwrap();
    let boss_before = h.emulator.user_by_email("boss@contoso.com").unwrap();

    let err = h
        .adapter
        .create_group(&key(1, Role::Internal), "partners")
        .await
        .unwrap_err();
    let sales = h
        .adapter
        .create_group(&key(2, Role::Internal), "Sales")
        .await
        .unwrap();
    let outcome = h.adapter.add_members(&sales, &[uid(boss_before.id)]).await;
    h.adapter
        .remove_members(&sales, &[uid(boss_before.id)])
        .await;

    assert!(
        matches!(&err, TargetError::Conflict(text) if text.contains("ref 122")),
        "{err}"
    );
    assert!(outcome.failed.is_empty());
    assert_eq!(
        h.emulator.group_by_name("Partners").unwrap(),
        partners_before
    );
    assert_eq!(
        h.emulator.user_by_email("boss@contoso.com").unwrap(),
        boss_before
    );
    assert!(
        h.emulator
            .writes()
            .iter()
            .all(|w| !w.contains(&format!("/groups/{} ", partners_before.id)))
    );
}

#[tokio::test]
async fn r06_phone_numbers_reach_highq_in_its_format() {
    let h = harness().await;
    for (n, (raw, stored)) in [
        ("1-555-123456", "1$555$123456"),
        ("+44 (20) 7946 0958", "+44$20$7946$0958"),
        ("1555123456", "1555123456"),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("p{n}@contoso.com");
        let mut wanted = state(&email, "P", "Q");
        wanted.fields.phone = Some(raw.into());

        h.adapter
            .create_user(&entra_id(n as u8), &wanted)
            .await
            .unwrap();

        assert_eq!(
            h.emulator.user_by_email(&email).unwrap().phone,
            stored,
            "{raw:?}"
        );
    }
}

#[tokio::test]
async fn r06_a_phone_highq_refuses_is_an_error_telling_the_admin_to_fix_it_in_entra() {
    let h = harness().await;
    let mut wanted = state("p@contoso.com", "P", "Q");
    wanted.fields.phone = Some("+1 555 123 4567 ext. 89".into());

    let err = h
        .adapter
        .create_user(&entra_id(1), &wanted)
        .await
        .unwrap_err();

    assert!(
        matches!(&err, TargetError::Rejected(text) if text.contains("ref 360") && text.contains("Entra")),
        "{err}"
    );
    assert!(h.emulator.user_by_email("p@contoso.com").is_none());
}

#[tokio::test]
async fn error_refs_become_messages_an_admin_can_act_on() {
    let h = harness_with(manual_seed(), json!({})).await;

    let missing = h
        .adapter
        .set_user_status(&uid(424242), UserStatus::Inactive)
        .await
        .unwrap_err();
    let taken = h
        .adapter
        .create_user(&entra_id(1), &state("JANE.DOE@contoso.com", "J", "D"))
        .await
        .unwrap_err();

    assert!(
        matches!(&missing, TargetError::NotFound(text) if text.contains("ref 110") && text.contains("424242")),
        "{missing}"
    );
    assert!(
        matches!(&taken, TargetError::Conflict(text) if text.contains("JANE.DOE@contoso.com")),
        "{taken}"
    );
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_until_the_reset_time() {
    let h = harness().await;
    h.emulator.inject(Fault::on_request(
        1,
        FaultAction::RateLimit {
            reset_after: Duration::ZERO,
        },
    ));

    let found = h
        .adapter
        .find_users_by_email(&[Email::parse("x@contoso.com").unwrap()])
        .await
        .unwrap();

    assert!(found.is_empty());
    assert_eq!(h.adapter.stats().rate_limit_waits, 1);
    // Had the adapter retried before the reset time, the emulator would have answered 429 again.
    assert_eq!(h.emulator.with(|s| s.rate_limited), 1);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_cap_gives_up_with_a_clear_message() {
    let h = harness_with(HighQSeed::default(), json!({"max_rate_limit_wait_secs": 1})).await;
    h.emulator.inject(Fault::on_request(
        1,
        FaultAction::RateLimit {
            reset_after: Duration::from_secs(3600),
        },
    ));

    let err = h
        .adapter
        .create_group(&key(1, Role::Internal), "Sales")
        .await
        .unwrap_err();

    assert!(
        matches!(&err, TargetError::Unavailable(text) if text.contains("rate limiting")),
        "{err}"
    );
    assert_eq!(h.adapter.stats().rate_limit_waits, 0);
}

#[tokio::test]
async fn server_errors_are_retried_for_safe_calls() {
    let h = harness().await;
    h.emulator
        .inject(Fault::on_request(1, FaultAction::Status(503)));

    let found = h
        .adapter
        .find_users_by_email(&[Email::parse("x@contoso.com").unwrap()])
        .await
        .unwrap();

    assert!(found.is_empty());
    assert_eq!(h.adapter.stats().retries, 1);
}

#[tokio::test]
async fn a_server_error_on_create_is_not_retried_and_reads_as_unavailable() {
    let h = harness().await;
    h.emulator
        .inject(Fault::on_request(1, FaultAction::Status(500)));

    let err = h
        .adapter
        .create_user(&entra_id(1), &state("a@contoso.com", "A", "B"))
        .await
        .unwrap_err();

    assert!(matches!(err, TargetError::Unavailable(_)), "{err}");
    assert_eq!(h.adapter.stats().retries, 0);
    assert!(h.emulator.user_by_email("a@contoso.com").is_none());
}

#[tokio::test]
async fn each_refresh_saves_the_rotated_refresh_token_before_using_the_access_token() {
    let h = harness().await;
    let first = h.emulator.refresh_token();

    h.adapter
        .find_users_by_email(&[Email::parse("x@contoso.com").unwrap()])
        .await
        .unwrap();

    let stored = h.store.current().unwrap();
    assert_ne!(stored.expose_secret(), first);
    assert_eq!(stored.expose_secret(), h.emulator.refresh_token());
    assert_eq!(h.store.save_count(), 1);
}

#[tokio::test]
async fn a_tenant_still_authenticates_after_the_process_stops_between_refresh_and_the_next_call() {
    let h = harness().await;
    let original = h.emulator.refresh_token();
    // The process refreshes (HighQ rotates the refresh token) and is stopped before any call.
    h.adapter.refresh_access_token().await.unwrap();
    drop(h.adapter);
    h.emulator.with(|s| s.expire_access_tokens());

    let restarted = adapter(&h.emulator, &h.store, json!({}));
    let found = restarted
        .find_users_by_email(&[Email::parse("x@contoso.com").unwrap()])
        .await;

    assert!(found.is_ok(), "{found:?}");
    assert_eq!(h.emulator.with(|s| s.oauth.grants), 2);
    // The token the process started with was rotated away: only the stored one could work.
    let stale = MemoryTokenStore::new(Some(SecretString::from(original)));
    let err = adapter(&h.emulator, &stale, json!({}))
        .refresh_access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Unauthorized(text) if text.contains("invalid_grant") && text.contains("reconnect")),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_call_goes_through() {
    let h = harness().await;
    h.adapter.refresh_access_token().await.unwrap();
    h.emulator.with(|s| s.expire_access_tokens());

    let created = h
        .adapter
        .create_group(&key(1, Role::Internal), "Sales")
        .await;

    assert!(created.is_ok(), "{created:?}");
    assert_eq!(h.adapter.stats().token_refreshes, 2);
    assert_eq!(h.store.save_count(), 2);
}

#[tokio::test]
async fn a_tenant_without_a_stored_refresh_token_is_told_to_connect_first() {
    let emulator = HighQEmulator::start(HighQSeed::default()).await.unwrap();
    let store = MemoryTokenStore::default();

    let err = adapter(&emulator, &store, json!({}))
        .find_users_by_email(&[Email::parse("x@y.com").unwrap()])
        .await
        .unwrap_err();

    assert!(err.stops_the_run());
    assert!(err.to_string().contains("connect the tenant"), "{err}");
}

#[tokio::test]
async fn an_authorization_code_connects_a_tenant_and_stores_its_refresh_token() {
    let emulator = HighQEmulator::start(HighQSeed::default()).await.unwrap();
    let store = MemoryTokenStore::default();
    let code = emulator.with(|s| s.issue_authorization_code());
    let adapter = adapter(&emulator, &store, json!({}));

    adapter
        .connect_with_authorization_code(
            &SecretString::from(code),
            "https://dirsync.example/callback",
        )
        .await
        .unwrap();

    assert_eq!(
        store.load().await.unwrap().unwrap().expose_secret(),
        emulator.refresh_token()
    );
    assert!(
        adapter
            .create_group(&key(1, Role::Internal), "Sales")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_emulators_request_limit_is_kept_by_holding_calls_until_the_next_window() {
    let h = harness().await;
    h.emulator.set_rate_limit(Some(RateLimit {
        max_requests: 2,
        window_secs: 1,
    }));
    let emails: Vec<Email> = (0..4)
        .map(|i| Email::parse(&format!("u{i}@contoso.com")).unwrap())
        .collect();

    for email in &emails {
        h.adapter
            .find_users_by_email(std::slice::from_ref(email))
            .await
            .unwrap();
    }

    // The answers said how much of the window was left: the third call waited for the reset
    // instead of meeting a 429.
    assert!(h.adapter.stats().paced_waits >= 1);
    assert_eq!(h.emulator.rate_limited(), 0);
    assert_eq!(h.adapter.stats().rate_limit_waits, 0);
}

#[tokio::test]
async fn every_answer_under_a_rate_limit_says_what_is_left_and_when_it_resets() {
    let h = harness().await;
    h.emulator.set_rate_limit(Some(RateLimit {
        max_requests: 1,
        window_secs: 3_600,
    }));
    h.adapter.refresh_access_token().await.unwrap();
    let token = h
        .emulator
        .with(|s| s.oauth.access_tokens.keys().next().cloned().unwrap());
    let get = || {
        reqwest::Client::new()
            .get(format!(
                "{}/api/16/groups?type=system",
                h.emulator.base_url()
            ))
            .bearer_auth(&token)
            .header("accept", "application/json")
            .send()
    };

    let allowed = get().await.unwrap();
    let refused = get().await.unwrap();

    let header = |r: &reqwest::Response, name: &str| {
        r.headers()[name].to_str().unwrap().parse::<u64>().unwrap()
    };
    assert_eq!(allowed.status(), 200);
    assert_eq!(header(&allowed, "x-ratelimit-limit"), 1);
    assert_eq!(header(&allowed, "x-ratelimit-remaining"), 0);
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), 0);
    let reset = header(&refused, "x-ratelimit-reset");
    assert_eq!(reset % 3_600, 0);
    assert_eq!(reset, header(&allowed, "x-ratelimit-reset"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["summary"], "Too many requests");
    assert_eq!(h.emulator.rate_limited(), 1);
}

#[tokio::test]
async fn a_call_that_times_out_is_retried_when_it_is_safe_to() {
    let h = harness_with(
        HighQSeed::default(),
        json!({"request_timeout_secs": 1, "retry_base_ms": 1}),
    )
    .await;
    h.emulator.inject(Fault::on_request(
        1,
        FaultAction::Latency(Duration::from_secs(5)),
    ));

    let found = h
        .adapter
        .find_users_by_email(&[Email::parse("x@contoso.com").unwrap()])
        .await;

    assert!(found.is_ok(), "{found:?}");
    assert_eq!(h.adapter.stats().retries, 1);
}

/// A token store read by a connection just before another one rotated the token: its first load
/// returns the token the other connection is about to use up.
struct ReadJustBeforeRotation {
    stale: std::sync::Mutex<Option<SecretString>>,
    shared: MemoryTokenStore,
}

#[async_trait::async_trait]
impl TokenStore for ReadJustBeforeRotation {
    async fn load(&self) -> Result<Option<SecretString>, dirsync::target::highq::TokenStoreError> {
        let stale = self.stale.lock().unwrap().take();
        match stale {
            Some(stale) => Ok(Some(stale)),
            None => self.shared.load().await,
        }
    }

    async fn save(
        &self,
        token: &SecretString,
    ) -> Result<(), dirsync::target::highq::TokenStoreError> {
        self.shared.save(token).await
    }

    async fn begin_refresh(
        &self,
    ) -> Result<Box<dyn TokenRefresh>, dirsync::target::highq::TokenStoreError> {
        let inner = self.shared.begin_refresh().await?;
        let stale = self.stale.lock().unwrap().take();
        Ok(match stale {
            // Read before the other connection refreshed: no access token was shared yet.
            Some(stale) => Box::new(StaleRefresh { stale, inner }),
            None => inner,
        })
    }
}

/// A refresh that read the token the other connection was about to use up.
struct StaleRefresh {
    stale: SecretString,
    inner: Box<dyn TokenRefresh>,
}

#[async_trait::async_trait]
impl TokenRefresh for StaleRefresh {
    fn refresh_token(&self) -> Option<SecretString> {
        Some(self.stale.clone())
    }

    fn shared_access(&self) -> Option<(SecretString, chrono::DateTime<chrono::Utc>)> {
        None
    }

    async fn commit(
        self: Box<Self>,
        rotated: Option<&SecretString>,
        access: &SecretString,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), dirsync::target::highq::TokenStoreError> {
        self.inner.commit(rotated, access, expires_at).await
    }
}

#[tokio::test]
async fn two_connections_refreshing_at_once_both_authenticate_with_the_rotated_token() {
    let h = harness().await;
    let read_before = h.emulator.refresh_token();
    // A run and an API request (or two replicas) read the same refresh token; the run uses it
    // first, and HighQ rotates it for the run.
    h.adapter.refresh_access_token().await.unwrap();
    let request = HighQAdapter::new(
        config(&h.emulator, json!({"retry_base_ms": 1})),
        Arc::new(ReadJustBeforeRotation {
            stale: std::sync::Mutex::new(Some(SecretString::from(read_before))),
            shared: h.store.clone(),
        }),
    )
    .unwrap();

    let found = request
        .find_users_by_email(&[Email::parse("x@contoso.com").unwrap()])
        .await;

    assert!(found.is_ok(), "{found:?}");
    assert_eq!(
        h.store.current().unwrap().expose_secret(),
        h.emulator.refresh_token(),
        "the token HighQ rotated for the first connection is the one stored"
    );
    // Refused its stale token, the second connection read the store again and found the access
    // token the first one shared (issue 10 item 8): no second grant, no second rotation.
    assert_eq!(h.emulator.with(|s| s.oauth.grants), 1);
}
