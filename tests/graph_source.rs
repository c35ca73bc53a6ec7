//! The Microsoft Graph source against the in-process Entra/Graph emulator, and the client's
//! parsing of bodies typed from Microsoft Graph's documentation examples.
// These tests run the emulators, which only the `emulators` feature (on by default) builds.
#![cfg(feature = "emulators")]

use std::collections::BTreeSet;
use std::time::Duration;

use dirsync::domain::EntraObjectId;
use dirsync::emulator::entra::{
    AppRegistration, ClientSecret, Directory, EntraEmulator, Fault, FaultPlan, FaultRule,
    FaultTrigger, Group, TenantDirectory,
};
use dirsync::plan::{GroupOutcome, SourceSnapshot};
use dirsync::source::graph::{
    CredentialSettings, GraphConnector, GraphSettings, GraphSource, TenantSourceOverrides, wire,
};
use dirsync::source::{DirectorySource, GroupCountOutcome, SourceError, SourceFetch, UserPresence};
use serde_json::{Value, json};

const TENANT: &str = "6babcaad-604b-40ac-a9d7-9fd97c0b779f";
const APP: &str = "a1b2c3d4-0000-4000-8000-00000000c11e";
const SECRET: &str = "emulator-secret-value";

fn guid(kind: u16, n: u32) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

fn user_id(n: u32) -> String {
    guid(0x00005e50, n)
}

fn group_id(n: u32) -> String {
    guid(0x00006900, n)
}

fn oid(text: &str) -> EntraObjectId {
    EntraObjectId::parse(text).expect("a GUID")
}

fn user(n: u32) -> Value {
    json!({
        "id": user_id(n),
        "displayName": format!("User {n}"),
        "givenName": "User",
        "surname": format!("{n}"),
        "mail": format!("user{n}@contoso.com"),
        "userPrincipalName": format!("user{n}@contoso.com"),
        "businessPhones": ["+1 425 555 0109"],
        "jobTitle": "Analyst",
        "accountEnabled": n % 7 != 0,
    })
}

/// A tenant with the consented app, `users` users, and the given groups.
fn tenant_with(users: u32, groups: Vec<Group>) -> TenantDirectory {
    let mut tenant = TenantDirectory::new(TENANT);
    tenant.apps.push(AppRegistration::consented(APP, SECRET));
    for n in 0..users {
        tenant.put_user(user(n));
    }
    tenant.groups = groups;
    tenant
}

fn group(n: u32, name: &str, members: impl IntoIterator<Item = String>) -> Group {
    Group {
        id: group_id(n),
        display_name: name.to_owned(),
        members: members.into_iter().collect(),
    }
}

fn directory(tenant: TenantDirectory) -> Directory {
    Directory {
        tenants: vec![tenant],
    }
}

/// An emulator of `tenant` that answers under `faults`.
async fn emulator_with_faults(tenant: TenantDirectory, faults: FaultPlan) -> EntraEmulator {
    EntraEmulator::start_with(directory(tenant), faults, ([127, 0, 0, 1], 0).into())
        .await
        .expect("emulator")
}

fn settings(emulator: &EntraEmulator) -> GraphSettings {
    let mut settings = GraphSettings::new(
        APP,
        CredentialSettings::ClientSecret {
            client_secret: SECRET.to_owned().into(),
        },
    );
    settings.graph_base_url = emulator.base_url().parse().expect("url");
    settings.authority_host = emulator.base_url().parse().expect("url");
    settings.extra_root_certificates_pem = vec![emulator.ca_pem().to_owned()];
    settings.backoff_base = Duration::from_millis(2);
    settings.backoff_max = Duration::from_millis(20);
    settings.max_retries = 4;
    settings.max_retry_wait = Duration::from_secs(10);
    settings
}

fn source(emulator: &EntraEmulator) -> GraphSource {
    source_with(settings(emulator))
}

fn source_with(settings: GraphSettings) -> GraphSource {
    GraphConnector::new(settings)
        .expect("valid settings")
        .source_for_tenant_id(TENANT, &TenantSourceOverrides::default())
        .expect("a source")
}

/// Why group 1 could not be read, as a read of it alone says.
async fn reason_group_one_failed(source: &GraphSource) -> String {
    let fetch = source
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");
    match outcome(&fetch.snapshot, &group_id(1)) {
        GroupOutcome::Failed { reason } => reason.clone(),
        other => panic!("group 1 must fail, not {other:?}"),
    }
}

fn outcome<'a>(snapshot: &'a SourceSnapshot, id: &str) -> &'a GroupOutcome {
    &snapshot
        .groups
        .iter()
        .find(|g| g.entra_id == oid(id))
        .expect("the group is in the snapshot")
        .outcome
}

fn member_pages(emulator: &EntraEmulator) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains("/members/microsoft.graph.user?"))
        .count()
}

#[tokio::test]
async fn a_group_of_2500_members_arrives_complete_across_pages() {
    let members = (0..2500).map(user_id);
    let emulator = EntraEmulator::start(directory(tenant_with(
        2500,
        vec![group(1, "Everyone", members)],
    )))
    .await
    .expect("emulator");

    let fetch = source(&emulator)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");

    let GroupOutcome::Found {
        display_name,
        members,
    } = outcome(&fetch.snapshot, &group_id(1))
    else {
        panic!("expected Found, got {:?}", fetch.snapshot);
    };
    assert_eq!(display_name, "Everyone");
    assert_eq!(members.len(), 2500);
    let ids: BTreeSet<String> = members.iter().map(|m| m.id().to_string()).collect();
    assert_eq!(ids, (0..2500).map(user_id).collect::<BTreeSet<_>>());
    assert_eq!(member_pages(&emulator), 3, "999 + 999 + 502");
    let seventh = members
        .iter()
        .find(|m| *m.id() == oid(&user_id(7)))
        .expect("user 7");
    assert_eq!(
        seventh.account_enabled(),
        Some(false),
        "accountEnabled is selected and read"
    );
    assert_eq!(seventh.phone(), Some("+1 425 555 0109"));
    assert_eq!(fetch.stats.requests, 4);
}

#[tokio::test]
async fn r16_a_group_of_50001_members_is_failed_with_the_limit_in_its_reason() {
    let emulator = EntraEmulator::start(directory(tenant_with(
        50_001,
        vec![
            group(1, "Too big", (0..50_001).map(user_id)),
            group(2, "Small", (0..3).map(user_id)),
        ],
    )))
    .await
    .expect("emulator");

    let fetch = source(&emulator)
        .fetch_groups(&[oid(&group_id(1)), oid(&group_id(2))])
        .await
        .expect("a read");

    let GroupOutcome::Failed { reason } = outcome(&fetch.snapshot, &group_id(1)) else {
        panic!("expected Failed");
    };
    assert!(
        reason.contains("more than 50000 direct user members (R16"),
        "{reason}"
    );
    assert!(reason.contains("nothing in it was changed"), "{reason}");
    assert!(
        matches!(outcome(&fetch.snapshot, &group_id(2)), GroupOutcome::Found { members, .. } if members.len() == 3)
    );
}

#[tokio::test]
async fn r16_reading_stops_at_the_first_page_past_the_limit() {
    let emulator = EntraEmulator::start(directory(tenant_with(
        53_000,
        vec![group(1, "Far too big", (0..53_000).map(user_id))],
    )))
    .await
    .expect("emulator");

    let fetch = source(&emulator)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");

    assert!(matches!(
        outcome(&fetch.snapshot, &group_id(1)),
        GroupOutcome::Failed { .. }
    ));
    assert_eq!(
        member_pages(&emulator),
        51,
        "51 pages of 999 pass 50,000; the 54th is never asked for"
    );
}

#[tokio::test]
async fn r01_nested_group_device_and_service_principal_members_are_not_synced() {
    let mut tenant = tenant_with(5, Vec::new());
    tenant.devices.push(
        json!({"id": guid(0xde, 1), "displayName": "LAPTOP-01"})
            .as_object()
            .cloned()
            .expect("object"),
    );
    tenant.service_principals.push(
        json!({"id": guid(0x5b, 1), "displayName": "Robot", "appId": APP})
            .as_object()
            .cloned()
            .expect("object"),
    );
    tenant.groups = vec![
        group(
            1,
            "Parent",
            [
                user_id(0),
                group_id(2),
                guid(0xde, 1),
                user_id(1),
                guid(0x5b, 1),
            ],
        ),
        group(2, "Nested", [user_id(2), user_id(3), user_id(4)]),
    ];
    let emulator = EntraEmulator::start(directory(tenant))
        .await
        .expect("emulator");

    let fetch = source(&emulator)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");

    let GroupOutcome::Found { members, .. } = outcome(&fetch.snapshot, &group_id(1)) else {
        panic!("expected Found");
    };
    let ids: Vec<String> = members.iter().map(|m| m.id().to_string()).collect();
    assert_eq!(
        ids,
        vec![user_id(0), user_id(1)],
        "direct users only, none of the nested group's"
    );
}

#[tokio::test]
async fn a_deleted_group_is_deleted_while_a_403_or_a_500_is_failed() {
    let emulator = emulator_with_faults(
        tenant_with(
            4,
            vec![
                group(1, "Fine", [user_id(0)]),
                group(3, "Forbidden", [user_id(1)]),
                group(4, "Broken", [user_id(2)]),
            ],
        ),
        FaultPlan {
            seed: 1,
            rules: vec![
                FaultRule {
                    when: FaultTrigger::Always,
                    path_contains: Some(group_id(3)),
                    fault: Fault::Status {
                        status: 403,
                        code: "Authorization_RequestDenied".into(),
                        message: "Insufficient privileges to complete the operation.".into(),
                    },
                },
                FaultRule {
                    when: FaultTrigger::Always,
                    path_contains: Some(group_id(4)),
                    fault: Fault::Status {
                        status: 500,
                        code: "InternalServerError".into(),
                        message: "An internal server error occurred.".into(),
                    },
                },
            ],
        },
    )
    .await;
    let groups = [1, 2, 3, 4].map(|n| oid(&group_id(n)));

    let fetch = source(&emulator)
        .fetch_groups(&groups)
        .await
        .expect("a read");

    assert!(matches!(
        outcome(&fetch.snapshot, &group_id(1)),
        GroupOutcome::Found { .. }
    ));
    assert_eq!(
        outcome(&fetch.snapshot, &group_id(2)),
        &GroupOutcome::Deleted
    );
    let GroupOutcome::Failed { reason } = outcome(&fetch.snapshot, &group_id(3)) else {
        panic!("a 403 is Failed");
    };
    assert!(
        reason.contains("ask a Global Administrator to grant admin consent"),
        "{reason}"
    );
    let GroupOutcome::Failed { reason } = outcome(&fetch.snapshot, &group_id(4)) else {
        panic!("a 500 is Failed");
    };
    assert!(
        reason.contains("HTTP 500 InternalServerError")
            && reason.contains("gave up after 4 retries"),
        "{reason}"
    );
    assert_eq!(fetch.stats.retries, 4);
    // The first page, asked beside each group, is dropped with a group that is not there or
    // cannot be read: once at most, never retried with it.
    for n in [2, 3, 4] {
        let members = format!("/groups/{}/members/", group_id(n));
        let asked = asked_for(&emulator, &members);
        assert!(asked <= 1, "group {n}'s members were asked {asked} times");
    }
    assert_eq!(asked_for(&emulator, &format!("{}?$select", group_id(4))), 5);
}

/// Requests the emulator served whose path and query contain `part`.
fn asked_for(emulator: &EntraEmulator, part: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains(part))
        .count()
}

/// Group 1 of 2,500 members (three pages) whose first page of members answers with `fault`.
async fn first_page_answers_with(fault: Fault) -> (EntraEmulator, SourceFetch) {
    let emulator = emulator_with_faults(
        tenant_with(2_500, vec![group(1, "Large", (0..2_500).map(user_id))]),
        FaultPlan {
            seed: 1,
            rules: vec![FaultRule {
                when: FaultTrigger::NthRequest { n: 1 },
                path_contains: Some("/members/".into()),
                fault,
            }],
        },
    )
    .await;
    let fetch = source(&emulator)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");
    match outcome(&fetch.snapshot, &group_id(1)) {
        GroupOutcome::Found { members, .. } => assert_eq!(members.len(), 2_500),
        other => panic!("expected every member, got {other:?}"),
    }
    (emulator, fetch)
}

#[tokio::test]
async fn the_next_page_is_asked_once_a_page_names_it_before_the_page_has_fully_come() {
    let stall = Duration::from_millis(800);
    let (emulator, _) = first_page_answers_with(Fault::StalledBody {
        millis: stall.as_millis() as u64,
    })
    .await;
    let log = emulator.requests();
    let pages: Vec<_> = log
        .iter()
        .filter(|r| r.path_and_query.contains("/members/"))
        .collect();
    assert_eq!(pages.len(), 3, "each page once");
    let asked_after = pages[1].asked.duration_since(pages[0].at);
    assert!(
        asked_after < stall / 2,
        "page 2 was asked {asked_after:?} after page 1's answer began, which took {stall:?} to \
         finish: its link, at the page's start, was not followed before the rest came"
    );
}

#[tokio::test]
async fn a_page_that_breaks_off_is_asked_again_whole_and_the_read_goes_on() {
    let (emulator, fetch) = first_page_answers_with(Fault::BrokenBody).await;
    let log = emulator.requests();
    let pages: Vec<&str> = log
        .iter()
        .filter(|r| r.path_and_query.contains("/members/"))
        .map(|r| r.path_and_query.as_str())
        .collect();
    let first = pages[0];
    assert_eq!(
        pages.iter().filter(|p| **p == first).count(),
        2,
        "the broken first page is asked twice: {pages:?}"
    );
    // The second page may have been asked while the first was breaking off; it is then asked
    // again after the first, so the read stays in order. Nothing else is asked twice.
    assert!(
        (4..=5).contains(&pages.len()),
        "three pages, the first again, perhaps the second again: {pages:?}"
    );
    assert_eq!(fetch.stats.retries, 1, "{:?}", fetch.stats);
}

#[tokio::test]
async fn the_first_page_is_asked_beside_the_group_and_retried_only_after_retry_after() {
    let group_path = format!("{}?$select", group_id(1));
    let emulator = emulator_with_faults(
        tenant_with(
            3,
            vec![group(1, "Slow", [user_id(0), user_id(1), user_id(2)])],
        ),
        FaultPlan {
            seed: 1,
            rules: vec![
                FaultRule {
                    when: FaultTrigger::Always,
                    path_contains: Some(group_path.clone()),
                    fault: Fault::Latency { millis: 300 },
                },
                FaultRule {
                    when: FaultTrigger::NthRequest { n: 1 },
                    path_contains: Some("/members/".into()),
                    fault: Fault::Throttle {
                        retry_after_secs: 0.4,
                    },
                },
            ],
        },
    )
    .await;

    let fetch = source(&emulator)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");

    let GroupOutcome::Found { members, .. } = outcome(&fetch.snapshot, &group_id(1)) else {
        panic!("expected Found, got {:?}", fetch.snapshot);
    };
    assert_eq!(members.len(), 3);
    let log = emulator.requests();
    let group_read = log
        .iter()
        .find(|r| r.path_and_query.contains(&group_path))
        .expect("the group was read");
    let pages: Vec<_> = log
        .iter()
        .filter(|r| r.path_and_query.contains("/members/"))
        .collect();
    assert_eq!(pages.len(), 2, "the throttled first page and its retry");
    assert_eq!((pages[0].status, pages[1].status), (429, 200));
    assert!(
        pages[0].asked < group_read.at,
        "the first page is asked while the group is being read"
    );
    let waited = pages[1].asked.duration_since(pages[0].at);
    assert!(
        waited >= Duration::from_millis(400),
        "retried after {waited:?}, before Retry-After"
    );
    assert_eq!(
        (
            fetch.stats.requests,
            fetch.stats.throttled,
            fetch.stats.retries
        ),
        (3, 1, 1)
    );
}

#[tokio::test]
async fn a_404_on_the_members_list_is_failed_not_deleted() {
    let emulator = emulator_with_faults(
        tenant_with(2, vec![group(1, "Vanishing", [user_id(0)])]),
        FaultPlan::single(FaultRule {
            when: FaultTrigger::Always,
            path_contains: Some("/members/".into()),
            fault: Fault::Status {
                status: 404,
                code: "Request_ResourceNotFound".into(),
                message: "Resource does not exist.".into(),
            },
        }),
    )
    .await;

    let fetch = source(&emulator)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");

    assert!(matches!(
        outcome(&fetch.snapshot, &group_id(1)),
        GroupOutcome::Failed { .. }
    ));
}

#[tokio::test]
async fn under_20_percent_injected_429s_the_snapshot_equals_the_fault_free_one() {
    let groups: Vec<Group> = (0..4)
        .map(|g| {
            group(
                g,
                &format!("Group {g}"),
                (g * 700..g * 700 + 1500).map(user_id),
            )
        })
        .collect();
    let emulator = EntraEmulator::start(directory(tenant_with(4000, groups)))
        .await
        .expect("emulator");
    let ids: Vec<EntraObjectId> = (0..4).map(|g| oid(&group_id(g))).collect();
    let mut settings = settings(&emulator);
    settings.max_retries = 20;
    let graph = source_with(settings);
    let fault_free = graph.fetch_groups(&ids).await.expect("a fault-free read");
    emulator.set_faults(FaultPlan {
        seed: 20,
        rules: vec![FaultRule {
            when: FaultTrigger::Rate { probability: 0.2 },
            path_contains: Some("/v1.0/".into()),
            fault: Fault::Throttle {
                retry_after_secs: 0.05,
            },
        }],
    });
    emulator.clear_requests();

    let throttled = graph.fetch_groups(&ids).await.expect("a throttled read");

    assert_eq!(throttled.snapshot, fault_free.snapshot);
    let log = emulator.requests();
    let answered_429: Vec<_> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 429)
        .collect();
    assert!(!answered_429.is_empty(), "the seed must throttle something");
    assert_eq!(throttled.stats.throttled, answered_429.len() as u64);
    assert!(throttled.stats.waited_ms >= 50 * throttled.stats.throttled);
    for (at, refused) in answered_429 {
        let retry = log[at + 1..]
            .iter()
            .find(|r| r.path_and_query == refused.path_and_query)
            .expect("every throttled request is retried");
        let gap = retry.at.duration_since(refused.at);
        assert!(
            gap >= Duration::from_millis(50),
            "retried {} after only {gap:?}",
            refused.path_and_query
        );
    }
}

#[tokio::test]
async fn a_malformed_or_truncated_page_or_one_without_value_fails_the_group_precisely() {
    for (fault, expected) in [
        (
            Fault::MalformedPage,
            "page 2 of the group's members is not the JSON Graph sends",
        ),
        (
            Fault::TruncatedPage,
            "page 2 of the group's members is not the JSON Graph sends",
        ),
        (
            Fault::MissingValue,
            "page 2 of the group's members has no \"value\" list",
        ),
    ] {
        let emulator = emulator_with_faults(
            tenant_with(1200, vec![group(1, "Paged", (0..1200).map(user_id))]),
            FaultPlan::single(FaultRule {
                when: FaultTrigger::NthRequest { n: 2 },
                path_contains: Some("/members/microsoft.graph.user?".into()),
                fault: fault.clone(),
            }),
        )
        .await;

        let reason = reason_group_one_failed(&source(&emulator)).await;
        assert!(reason.contains(expected), "{fault:?}: {reason}");
    }
}

/// Issue 10 item 7: paging that goes round in circles ends the group's read with an error, never
/// a loop.
#[tokio::test]
async fn a_next_link_back_to_a_page_already_read_fails_the_group_instead_of_looping() {
    let emulator = emulator_with_faults(
        tenant_with(1200, vec![group(1, "Paged", (0..1200).map(user_id))]),
        FaultPlan::none(),
    )
    .await;
    // Page 2's own address, from a fault-free read; then page 2 links to itself.
    source(&emulator)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");
    let page_two = emulator
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .find(|p| p.contains("/members/microsoft.graph.user?") && p.contains("skiptoken"))
        .expect("a second page");
    let before = emulator.requests().len();
    emulator.set_faults(FaultPlan::single(FaultRule {
        when: FaultTrigger::Always,
        path_contains: Some("skiptoken".into()),
        fault: Fault::NextLinkTo {
            url: format!("{}{page_two}", emulator.base_url()),
        },
    }));

    let fetch = tokio::time::timeout(
        Duration::from_secs(30),
        source(&emulator).fetch_groups(&[oid(&group_id(1))]),
    )
    .await
    .expect("the read ends")
    .expect("a read");

    let GroupOutcome::Failed { reason } = outcome(&fetch.snapshot, &group_id(1)) else {
        panic!("a paging loop must fail the group");
    };
    assert!(
        reason.contains("links back to a page already read"),
        "{reason}"
    );
    assert!(emulator.requests().len() - before < 10, "no loop");
}

/// Issue 10 item 7: pages that bring nobody new, each linking to yet another, end the read
/// after ten in a row, before the rest are asked for.
#[tokio::test]
async fn pages_that_bring_no_new_member_fail_the_group_after_ten_in_a_row() {
    // One user listed on every entry of 15 pages of 999.
    let emulator = EntraEmulator::start(directory(tenant_with(
        1,
        vec![group(1, "Echo", std::iter::repeat_n(user_id(0), 15 * 999))],
    )))
    .await
    .expect("emulator");

    let reason = reason_group_one_failed(&source(&emulator)).await;
    assert!(
        reason.contains("10 pages in a row with no new member")
            && reason.contains("(up to page 11)"),
        "{reason}"
    );
    let pages = emulator
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.contains("/members/"))
        .count();
    assert!(pages < 15, "reading stopped early: {pages} pages asked for");
}

async fn sign_in_error(change: impl FnOnce(&mut TenantDirectory), tenant: &str) -> String {
    let mut tenant_dir = tenant_with(1, vec![group(1, "G", [user_id(0)])]);
    change(&mut tenant_dir);
    let emulator = EntraEmulator::start(directory(tenant_dir))
        .await
        .expect("emulator");
    let graph = GraphConnector::new(settings(&emulator))
        .expect("settings")
        .source_for_tenant_id(tenant, &TenantSourceOverrides::default())
        .expect("a source");
    match graph.fetch_groups(&[oid(&group_id(1))]).await {
        Err(SourceError::Authentication(sentence)) => sentence,
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

#[tokio::test]
async fn token_errors_become_actionable_sentences() {
    let wrong_secret =
        sign_in_error(|t| t.apps[0].secrets[0].value = "another".into(), TENANT).await;
    assert!(
        wrong_secret.contains("client secret of app") && wrong_secret.contains("AADSTS7000215"),
        "{wrong_secret}"
    );
    assert!(
        wrong_secret.contains("Value (not its Secret ID)"),
        "{wrong_secret}"
    );

    let expired = sign_in_error(
        |t| {
            t.apps[0].secrets[0] = ClientSecret {
                value: SECRET.into(),
                expires: Some(chrono::Utc::now() - chrono::Duration::days(1)),
            }
        },
        TENANT,
    )
    .await;
    assert!(expired.contains("has expired (AADSTS7000222)"), "{expired}");

    let not_consented = sign_in_error(|t| t.apps.clear(), TENANT).await;
    assert!(
        not_consented.starts_with(&format!(
            "the app {APP} is not consented in tenant {TENANT}"
        )),
        "{not_consented}"
    );
    assert!(
        not_consented.contains("ask a Global Administrator"),
        "{not_consented}"
    );

    let unknown_tenant = "0000dead-0000-4000-8000-000000000000";
    let not_found = sign_in_error(|_| {}, unknown_tenant).await;
    assert!(
        not_found.contains(&format!(
            "tenant {unknown_tenant} was not found (AADSTS90002)"
        )),
        "{not_found}"
    );
}

#[tokio::test]
async fn an_app_without_granted_permissions_stops_the_read_with_the_consent_sentence() {
    let mut tenant = tenant_with(
        1,
        vec![group(1, "G", [user_id(0)]), group(2, "H", [user_id(0)])],
    );
    tenant.apps[0].permissions.clear();
    let emulator = EntraEmulator::start(directory(tenant))
        .await
        .expect("emulator");

    let result = source(&emulator)
        .fetch_groups(&[oid(&group_id(1)), oid(&group_id(2))])
        .await;

    let Err(SourceError::Authentication(sentence)) = result else {
        panic!("expected an authentication error, got {result:?}");
    };
    assert!(
        sentence.contains(&format!(
            "the app {APP} lacks permission in tenant {TENANT}"
        )),
        "{sentence}"
    );
    assert!(
        sentence.contains("Group.Read.All, GroupMember.Read.All and User.Read.All"),
        "{sentence}"
    );
}

#[tokio::test]
async fn count_preview_counts_direct_user_members_and_check_flags_the_limit() {
    let mut tenant = tenant_with(50_010, Vec::new());
    tenant.groups = vec![
        group(1, "Sales", [user_id(0), user_id(1), group_id(2)]),
        group(2, "Huge", (0..50_010).map(user_id)),
    ];
    let emulator = EntraEmulator::start(directory(tenant))
        .await
        .expect("emulator");
    let ids = [1, 2, 9].map(|n| oid(&group_id(n)));

    let counts = source(&emulator).count_members(&ids).await.expect("counts");

    assert_eq!(
        counts[0].outcome,
        GroupCountOutcome::Found {
            display_name: "Sales".into(),
            direct_user_members: 2
        }
    );
    assert_eq!(
        counts[1].outcome,
        GroupCountOutcome::Found {
            display_name: "Huge".into(),
            direct_user_members: 50_010
        }
    );
    assert_eq!(counts[2].outcome, GroupCountOutcome::Deleted);
    assert_eq!(member_pages(&emulator), 0, "counting never lists members");

    let tenant: dirsync::tenant::Tenant = serde_json::from_value(json!({
        "key": "contoso",
        "display_name": "Contoso",
        "entra_tenant_id": TENANT,
        "time_zone": "Europe/London",
        "report_retention": 3,
        "policy": {"selected_groups": [], "deactivation_status": "inactive", "deletion_threshold": 500},
        "source": null,
        "target": {}
    }))
    .expect("a tenant");
    let connector = GraphConnector::new(settings(&emulator)).expect("settings");
    let report = dirsync::source::graph::check_connection(&connector, &tenant, &ids).await;
    let table = report.to_string();
    assert!(table.contains("token     ok"), "{table}");
    assert!(
        table.contains("Sales") && table.contains("OVER LIMIT") && table.contains("deleted"),
        "{table}"
    );
    assert!(!report.is_ok());
}

#[tokio::test]
async fn the_emulator_answers_bad_top_and_count_without_consistency_level_as_graph_does() {
    let emulator =
        EntraEmulator::start(directory(tenant_with(1, vec![group(1, "G", [user_id(0)])])))
            .await
            .expect("emulator");
    let graph = source(&emulator);
    let token = graph.token().await.expect("a token");
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).expect("pem"),
        )
        .build()
        .expect("client");
    let base = emulator.base_url();

    let top = http
        .get(format!(
            "{base}/v1.0/groups/{}/members/microsoft.graph.user?$top=1000",
            group_id(1)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(top.status(), 400);
    let body = top.bytes().await.expect("body");
    let error = wire::parse_graph_error(&body).expect("Graph's envelope");
    assert!(
        error.message.contains("Must be between 1 and 999"),
        "{}",
        error.message
    );

    let count = http
        .get(format!(
            "{base}/v1.0/groups/{}/members/microsoft.graph.user/$count",
            group_id(1)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(count.status(), 400);
    let error =
        wire::parse_graph_error(&count.bytes().await.expect("body")).expect("Graph's envelope");
    assert_eq!(error.code, "Request_UnsupportedQuery");

    let default_page = http
        .get(format!(
            "{base}/v1.0/groups/{}/members/microsoft.graph.user",
            group_id(1)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    let page: Value = default_page.json().await.expect("json");
    assert!(
        page["value"][0].get("accountEnabled").is_none(),
        "not selected, not returned"
    );
}

#[tokio::test]
async fn user_presence_tells_enabled_disabled_and_deleted_apart() {
    let emulator = EntraEmulator::start(directory(tenant_with(8, Vec::new())))
        .await
        .expect("emulator");
    let graph = source(&emulator);

    assert_eq!(
        graph.user_presence(&oid(&user_id(1))).await,
        Ok(UserPresence::Enabled)
    );
    assert_eq!(
        graph.user_presence(&oid(&user_id(7))).await,
        Ok(UserPresence::Disabled)
    );
    assert_eq!(
        graph.user_presence(&oid(&user_id(99))).await,
        Ok(UserPresence::Deleted)
    );
}

#[tokio::test]
async fn the_next_day_the_source_reads_the_changed_directory() {
    let emulator = EntraEmulator::start(directory(tenant_with(
        3,
        vec![group(1, "Before", [user_id(0)])],
    )))
    .await
    .expect("emulator");
    let graph = source(&emulator);
    graph
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("day one");

    emulator.edit(|d| {
        let tenant = d.tenant_mut(TENANT).expect("tenant");
        let g = tenant.group_mut(&group_id(1)).expect("group");
        g.display_name = "After".into();
        g.members = vec![user_id(1), user_id(2)];
    });
    let fetch = graph
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("day two");

    let GroupOutcome::Found {
        display_name,
        members,
    } = outcome(&fetch.snapshot, &group_id(1))
    else {
        panic!("expected Found");
    };
    assert_eq!(display_name, "After");
    assert_eq!(members.len(), 2);
    let token_requests = emulator
        .requests()
        .iter()
        .filter(|r| r.path_and_query.ends_with("/oauth2/v2.0/token"))
        .count();
    assert_eq!(token_requests, 1, "the token is cached between runs");
}

// ---------------------------------------------------------------------------------------------
// Bodies typed from Microsoft Graph's documentation examples
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/graph/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// A documented user entry: a user, with nothing to clean.
fn documented_user(entry: Result<wire::MemberEntry, String>) -> dirsync::plan::EntraUser {
    match entry {
        Ok(wire::MemberEntry::User { user, cleaned }) if cleaned.is_empty() => user,
        other => panic!("not a clean user: {other:?}"),
    }
}

#[test]
fn a_documented_members_page_parses_with_its_next_link_and_nulls() {
    let page: wire::GraphPage<serde_json::Value> =
        serde_json::from_slice(&fixture("group_members_user_cast_page.json")).expect("a page");
    assert!(
        page.next_link
            .as_deref()
            .is_some_and(|l| l.contains("$skiptoken="))
    );
    let users: Vec<_> = page
        .value
        .expect("value")
        .into_iter()
        .map(|entry| documented_user(wire::member_entry(entry)))
        .collect();
    assert_eq!(users[0].mail.as_deref(), Some("AdeleV@contoso.com"));
    assert_eq!(users[0].account_enabled, Some(true));
    assert_eq!(users[1].given_name, None);
    assert!(users[1].business_phones.is_empty());
}

#[test]
fn a_documented_page_without_account_enabled_leaves_it_unknown() {
    let page: wire::GraphPage<serde_json::Value> =
        serde_json::from_slice(&fixture("group_members_last_page_default_select.json"))
            .expect("a page");
    assert!(page.next_link.is_none());
    let user = documented_user(wire::member_entry(page.value.expect("value").remove(0)));
    assert_eq!(user.account_enabled, None);
    assert_eq!(user.job_title.as_deref(), Some("Marketing Assistant"));
}

#[test]
fn documented_groups_errors_tokens_and_counts_parse() {
    let group: wire::GraphGroup =
        serde_json::from_slice(&fixture("group_select_id_displayname.json")).expect("group");
    assert_eq!(group.display_name.as_deref(), Some("HR Taskforce"));

    let not_found = wire::parse_graph_error(&fixture("error_group_not_found.json")).expect("error");
    assert_eq!(not_found.code, "Request_ResourceNotFound");
    assert_eq!(
        not_found.request_id(),
        Some("6b2c1f0e-3f5c-4a89-9b7e-0d2f4c1a8e55")
    );

    let denied =
        wire::parse_graph_error(&fixture("error_authorization_denied_lowercase_inner.json"))
            .expect("error");
    assert_eq!(denied.code, "Authorization_RequestDenied");
    assert!(
        denied.request_id().is_some(),
        "innererror in lower case is read too"
    );

    let throttled = wire::parse_graph_error(&fixture("error_throttled.json")).expect("error");
    assert_eq!(throttled.code, "TooManyRequests");

    let token: wire::TokenErrorBody =
        serde_json::from_slice(&fixture("token_error_invalid_secret.json")).expect("token error");
    assert_eq!(token.error_codes, vec![7000215]);
    assert!(token.error_description.starts_with("AADSTS7000215"));

    assert_eq!(wire::parse_count(&fixture("count_body.txt")), Ok(893));
}

#[tokio::test]
async fn a_retry_after_beyond_the_retry_budget_fails_the_group_without_waiting_it_out() {
    let emulator = emulator_with_faults(
        tenant_with(1, vec![group(1, "Throttled", [user_id(0)])]),
        FaultPlan::single(FaultRule {
            when: FaultTrigger::Always,
            path_contains: Some("/v1.0/groups/".into()),
            fault: Fault::Throttle {
                retry_after_secs: 30.0,
            },
        }),
    )
    .await;
    let mut settings = settings(&emulator);
    settings.max_retry_wait = Duration::from_secs(1);

    let started = std::time::Instant::now();
    let fetch = source_with(settings)
        .fetch_groups(&[oid(&group_id(1))])
        .await
        .expect("a read");

    let GroupOutcome::Failed { reason } = outcome(&fetch.snapshot, &group_id(1)) else {
        panic!("expected Failed");
    };
    assert!(
        reason.contains("HTTP 429") && reason.contains("retry budget"),
        "{reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!((fetch.stats.retries, fetch.stats.waited_ms), (0, 0));
    // Nothing was asked twice: the group once, and its first page (asked beside it) at most
    // once; whether that page's 429 was read before the group's depends on which came first.
    assert_eq!(asked_for(&emulator, "?$select=id,displayName"), 1);
    assert!(asked_for(&emulator, "/members/") <= 1);
    assert!((1..=2).contains(&fetch.stats.throttled));
}

#[tokio::test]
async fn a_workload_identity_signs_in_with_its_federated_token_file() {
    let subject = "system:serviceaccount:dirsync:dirsync";
    let mut tenant = tenant_with(2, vec![group(1, "G", [user_id(0), user_id(1)])]);
    tenant.apps[0].secrets.clear();
    tenant.apps[0].federated_subjects.push(subject.into());
    let emulator = EntraEmulator::start(directory(tenant))
        .await
        .expect("emulator");
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let assertion = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "typ": "JWT"})),
        b64(json!({
            "iss": "https://oidc.cluster.local",
            "sub": subject,
            "aud": "api://AzureADTokenExchange",
            "exp": chrono::Utc::now().timestamp() + 3600
        }))
    );
    let token_file = std::env::temp_dir().join(format!("dirsync-wi-{}.jwt", uuid::Uuid::new_v4()));
    std::fs::write(&token_file, assertion).expect("token file");
    let mut settings = settings(&emulator);
    settings.credential = CredentialSettings::WorkloadIdentity {
        token_file: Some(token_file.clone()),
    };

    let fetch = source_with(settings)
        .fetch_groups(&[oid(&group_id(1))])
        .await;
    let _ = std::fs::remove_file(&token_file);

    let fetch = fetch.expect("a read");
    assert!(
        matches!(outcome(&fetch.snapshot, &group_id(1)), GroupOutcome::Found { members, .. } if members.len() == 2)
    );
}

#[tokio::test]
async fn the_demo_fixture_loads_and_serves_its_direct_users() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/entra/demo_directory.json");
    let directory = Directory::load(&path).expect("the demo fixture");
    let emulator = EntraEmulator::start(directory).await.expect("emulator");
    let mut settings = settings(&emulator);
    settings.credential = CredentialSettings::ClientSecret {
        client_secret: "demo-secret".to_owned().into(),
    };
    let group = "02bd9fd6-8f93-4758-87c3-1fb73740a315";

    let fetch = source_with(settings)
        .fetch_groups(&[oid(group)])
        .await
        .expect("a read");

    let GroupOutcome::Found {
        display_name,
        members,
    } = outcome(&fetch.snapshot, group)
    else {
        panic!("expected Found");
    };
    assert_eq!(display_name, "HR Taskforce");
    assert_eq!(members.len(), 2);
}

#[tokio::test]
async fn progress_is_reported_as_each_group_is_read_not_only_at_the_end() {
    let emulator = EntraEmulator::start(directory(tenant_with(
        2500,
        vec![
            group(1, "First", (0..2500).map(user_id)),
            group(2, "Second", (0..2500).map(user_id)),
        ],
    )))
    .await
    .expect("emulator");
    let mut settings = settings(&emulator);
    settings.concurrency = 1;
    let source = source_with(settings);
    let second_group_path = format!("/groups/{}/members", group_id(2));
    // At each report: (groups reported so far, member requests made for the second group).
    let reports = std::sync::Mutex::new(Vec::new());
    let fetch = source
        .fetch_groups_with_progress(&[oid(&group_id(1)), oid(&group_id(2))], &[], &|| {
            let second_reads = emulator
                .requests()
                .iter()
                .filter(|r| r.path_and_query.contains(&second_group_path))
                .count();
            let mut reports = reports.lock().unwrap();
            let n = reports.len() + 1;
            reports.push((n, second_reads));
        })
        .await
        .expect("a read");
    assert_eq!(fetch.snapshot.groups.len(), 2);
    assert_eq!(
        reports.into_inner().unwrap(),
        vec![(1, 0), (2, 3)],
        "the first group is reported before the second is read"
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 14 item 6: the app credential's expiry, read from its own registration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_app_credential_expiry_is_read_from_its_registration_when_permitted() {
    let expires = chrono::Utc::now() + chrono::Duration::days(29);
    let mut tenant = tenant_with(0, vec![]);
    let app = &mut tenant.apps[0];
    app.secrets[0].expires = Some(expires);
    app.secrets.push(dirsync::emulator::entra::ClientSecret {
        value: "an-old-expired-secret".to_owned(),
        expires: Some(expires - chrono::Duration::days(100)),
    });
    app.permissions.push("Application.Read.All".to_owned());
    let emulator = EntraEmulator::start(directory(tenant)).await.unwrap();

    let found = source(&emulator).app_credential_expiry().await.unwrap();

    assert_eq!(
        found.map(|t| t.timestamp()),
        Some(expires.timestamp()),
        "the latest endDateTime: until then one credential still works"
    );
    assert!(emulator.requests().iter().any(|r| {
        r.path_and_query
            .starts_with(&format!("/v1.0/applications(appId='{APP}')"))
            && r.status == 200
    }));
}

#[tokio::test]
async fn without_application_read_all_graph_answers_403_and_the_reason_names_the_fallback() {
    let emulator = EntraEmulator::start(directory(tenant_with(0, vec![])))
        .await
        .unwrap();

    let refused = source(&emulator).app_credential_expiry().await.unwrap_err();

    assert!(refused.contains("Application.Read.All"), "{refused}");
    assert!(
        refused.contains("source.credential_expires_at"),
        "{refused}"
    );
    assert!(
        emulator
            .requests()
            .iter()
            .any(|r| r.path_and_query.contains("/v1.0/applications(") && r.status == 403)
    );
}
