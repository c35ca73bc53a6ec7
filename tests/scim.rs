//! The SCIM adapter against the third-party `scim2-server` (PyPI), each test in its own tenant of
//! a shared server; the JSON it sends checked offline with `scim-sanity`; and the answers
//! scim2-server never gives (200 with a body to a PATCH, 429, refusing one member) from a tiny
//! axum stub.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use dirsync::domain::{Email, EntraObjectId, Role, TargetGroupId, TargetUserId, UserStatus};
use dirsync::plan::{FieldChange, GroupKey, ManagedField, UserFields, UserState};
use dirsync::target::scim::ScimAdapter;
use dirsync::target::scim::wire::{self, Shape, UserEdit};
use dirsync::target::{TargetAdapter, TargetError};
use serde_json::{Value, json};
use support::scim_server::{self, ScimServer, TOKEN};

/// One test's tenant of the shared scim2-server, with the adapter and a raw HTTP client to look
/// at what the server really holds.
struct Tenant {
    _server: Arc<ScimServer>,
    base: String,
    adapter: ScimAdapter,
    http: reqwest::Client,
}

impl Tenant {
    fn new(name: &str, settings: Value) -> Self {
        let server = ScimServer::shared();
        Self::on(server, name, settings)
    }

    fn on(server: Arc<ScimServer>, name: &str, settings: Value) -> Self {
        let base = server.base_url(name);
        let mut target = json!({
            "kind": "scim",
            "base_url": base,
            "token": TOKEN,
            "tuning": {"retry_base_ms": 1},
        });
        merge(&mut target, settings);
        Self {
            _server: server,
            base,
            adapter: ScimAdapter::from_tenant_target(&target).unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
        let text = response.text().await.unwrap();
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.raw(reqwest::Method::GET, path, None).await
    }

    async fn user(&self, id: &TargetUserId) -> Value {
        self.get(&format!("Users/{id}")).await
    }

    async fn group(&self, id: &TargetGroupId) -> Value {
        self.get(&format!("Groups/{id}")).await
    }

    /// A user made by hand in the application, not by dirsync.
    async fn manual_user(&self, user: Value) -> TargetUserId {
        let mut body = json!({"schemas": [wire::USER_SCHEMA]});
        merge(&mut body, user);
        let created = self.raw(reqwest::Method::POST, "Users", Some(body)).await;
        TargetUserId::new(created["id"].as_str().unwrap()).unwrap()
    }

    async fn manual_group(&self, name: &str, members: &[&TargetUserId]) -> TargetGroupId {
        let members: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": m.as_str()}))
            .collect();
        let body =
            json!({"schemas": [wire::GROUP_SCHEMA], "displayName": name, "members": members});
        let created = self.raw(reqwest::Method::POST, "Groups", Some(body)).await;
        TargetGroupId::new(created["id"].as_str().unwrap()).unwrap()
    }

    async fn create(&self, n: u8, email: &str) -> TargetUserId {
        self.adapter
            .create_user(&entra_id(n), &state(email, "First", "Last"))
            .await
            .unwrap()
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        for (key, value) in from {
            match into.get_mut(&key) {
                Some(existing @ Value::Object(_)) if value.is_object() => merge(existing, value),
                _ => {
                    into.insert(key, value);
                }
            }
        }
    }
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

fn change(field: ManagedField, old: &str, new: &str) -> FieldChange {
    FieldChange {
        field,
        old: Some(old.to_owned()),
        new: Some(new.to_owned()),
    }
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids = wire::member_ids(group);
    ids.sort();
    ids
}

fn sorted(ids: &[TargetUserId]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// Against scim2-server
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_user_is_created_with_every_managed_attribute() {
    let t = Tenant::new("create", json!({}));
    let mut jane = state("Jane.Doe@contoso.com", "Jane", "Doe");
    jane.fields.phone = Some("+44 20 7946 0958".into());
    jane.fields.job_title = Some("Partner".into());

    let id = t.adapter.create_user(&entra_id(1), &jane).await.unwrap();

    let user = t.user(&id).await;
    assert_eq!(user["userName"], "Jane.Doe@contoso.com");
    assert_eq!(user["externalId"], entra_id(1).to_string());
    assert_eq!(user["name"]["givenName"], "Jane");
    assert_eq!(user["name"]["familyName"], "Doe");
    assert_eq!(
        user["emails"],
        json!([{"value": "Jane.Doe@contoso.com", "type": "work", "primary": true}])
    );
    assert_eq!(
        user["phoneNumbers"],
        json!([{"value": "+44 20 7946 0958", "type": "work"}])
    );
    assert_eq!(user["title"], "Partner");
    assert_eq!(user["active"], true);
    assert_eq!(
        user["roles"],
        json!([{"value": "internal", "primary": true}])
    );
}

#[tokio::test]
async fn an_existing_user_is_found_by_email_case_insensitively_and_adopted() {
    let t = Tenant::new("adopt", json!({}));
    let id = t
        .manual_user(json!({
            "userName": "Jane.Doe@Contoso.com",
            "name": {"givenName": "J", "familyName": "D", "middleName": "Q"},
            "emails": [{"value": "jane@home.example", "type": "home", "primary": true}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
            "title": "Old title",
            "active": false,
        }))
        .await;
    t.manual_user(json!({"userName": "someone.else@contoso.com"}))
        .await;

    let found = t
        .adapter
        .find_users_by_email(&[
            Email::parse("jane.doe@CONTOSO.com").unwrap(),
            Email::parse("nobody@contoso.com").unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].status, UserStatus::Inactive);
    assert_eq!(found[0].fields.job_title.as_deref(), Some("Old title"));

    let mut jane = state("jane.doe@contoso.com", "Jane", "Doe");
    jane.fields.phone = Some("+1 555 0199".into());
    t.adapter
        .adopt_user(&id, &entra_id(1), &jane)
        .await
        .unwrap();

    let user = t.user(&id).await;
    assert_eq!(user["externalId"], entra_id(1).to_string());
    assert_eq!(user["userName"], "jane.doe@contoso.com");
    assert_eq!(user["name"]["givenName"], "Jane");
    assert_eq!(
        user["name"]["middleName"], "Q",
        "unmanaged parts of name stay"
    );
    assert_eq!(user["active"], true);
    assert!(
        user.get("title").is_none(),
        "no job title in Entra: removed"
    );
    assert_eq!(
        user["emails"],
        json!([
            {"value": "jane.doe@contoso.com", "type": "work", "primary": true},
            {"value": "jane@home.example", "type": "home"},
        ])
    );
    assert_eq!(
        user["phoneNumbers"],
        json!([
            {"value": "+1 555 0199", "type": "work"},
            {"value": "+1 555 0100", "type": "mobile"},
        ])
    );
}

#[tokio::test]
async fn many_emails_are_looked_up_in_chunks_or_by_paging_through_all_users() {
    let chunked = Tenant::new("lookup-chunks", json!({"tuning": {"lookup_batch_size": 3}}));
    let paged = Tenant::on(
        ScimServer::shared(),
        "lookup-chunks",
        json!({"tuning": {"lookup_paging_threshold": 2, "page_size": 4}}),
    );
    let mut emails = Vec::new();
    for n in 0..10 {
        let email = format!("User{n}@Contoso.com");
        chunked.manual_user(json!({"userName": email})).await;
        emails.push(Email::parse(&email.to_lowercase()).unwrap());
    }
    emails.push(Email::parse("absent@contoso.com").unwrap());
    emails.push(Email::parse(r#"quote"and\back@contoso.com"#).unwrap());

    for tenant in [&chunked, &paged] {
        let before = tenant.adapter.stats().requests;
        let found = tenant.adapter.find_users_by_email(&emails).await.unwrap();
        assert_eq!(found.len(), 10);
        assert!(
            tenant.adapter.stats().requests - before >= 4,
            "several requests"
        );
    }
}

#[tokio::test]
async fn an_update_sends_only_the_changed_fields_with_role_and_status() {
    let t = Tenant::new("update", json!({}));
    let mut before = state("jane@contoso.com", "Jane", "Doe");
    before.fields.job_title = Some("Associate".into());
    let id = t.adapter.create_user(&entra_id(1), &before).await.unwrap();
    // An admin edits the title and the role by hand in the application (R15).
    t.raw(
        reqwest::Method::PATCH,
        &format!("Users/{id}"),
        Some(json!({"schemas": [wire::PATCH_SCHEMA], "Operations": [
            {"op": "replace", "path": "title", "value": "Edited by hand"},
            {"op": "replace", "path": "roles", "value": [{"value": "admin"}]},
        ]})),
    )
    .await;

    let mut after = before.clone();
    after.fields.first_name = "Janet".into();
    after.fields.job_title = Some("Associate".into());
    t.adapter
        .update_user(
            &id,
            &[change(ManagedField::FirstName, "Jane", "Janet")],
            &after,
        )
        .await
        .unwrap();

    let user = t.user(&id).await;
    assert_eq!(user["name"]["givenName"], "Janet");
    assert_eq!(user["name"]["familyName"], "Doe");
    assert_eq!(
        user["title"], "Edited by hand",
        "unchanged fields are not sent"
    );
    assert_eq!(
        user["roles"],
        json!([{"value": "internal", "primary": true}]),
        "the role is always sent"
    );
}

#[tokio::test]
async fn an_email_change_renames_the_user_and_keeps_its_other_addresses() {
    let t = Tenant::new("email-change", json!({}));
    let id = t.create(1, "jane@contoso.com").await;
    t.raw(
        reqwest::Method::PATCH,
        &format!("Users/{id}"),
        Some(json!({"schemas": [wire::PATCH_SCHEMA], "Operations": [
            {"op": "add", "path": "emails", "value": [{"value": "j@home.example", "type": "home"}]},
        ]})),
    )
    .await;

    let after = state("jane.doe@contoso.com", "First", "Last");
    t.adapter
        .update_user(
            &id,
            &[change(
                ManagedField::Email,
                "jane@contoso.com",
                "jane.doe@contoso.com",
            )],
            &after,
        )
        .await
        .unwrap();

    let user = t.user(&id).await;
    assert_eq!(user["userName"], "jane.doe@contoso.com");
    assert_eq!(
        user["emails"],
        json!([
            {"value": "jane.doe@contoso.com", "type": "work", "primary": true},
            {"value": "j@home.example", "type": "home"},
        ])
    );
}

#[tokio::test]
async fn deactivating_sets_active_false_for_inactive_and_archived_and_reactivating_sets_it_back() {
    let t = Tenant::new("status", json!({}));
    let id = t.create(1, "jane@contoso.com").await;

    t.adapter
        .set_user_status(&id, UserStatus::Inactive)
        .await
        .unwrap();
    assert_eq!(t.user(&id).await["active"], false);
    t.adapter
        .set_user_status(&id, UserStatus::Active)
        .await
        .unwrap();
    assert_eq!(t.user(&id).await["active"], true);
    t.adapter
        .set_user_status(&id, UserStatus::Archived)
        .await
        .unwrap();
    assert_eq!(t.user(&id).await["active"], false);

    let found = t
        .adapter
        .find_users_by_email(&[Email::parse("jane@contoso.com").unwrap()])
        .await
        .unwrap();
    assert_eq!(found[0].status, UserStatus::Inactive);
}

#[tokio::test]
async fn members_are_added_and_removed_in_batches() {
    let t = Tenant::new("members", json!({"tuning": {"member_batch_size": 3}}));
    let mut users = Vec::new();
    for n in 0..7 {
        users.push(t.create(n, &format!("user{n}@contoso.com")).await);
    }
    let group = t
        .adapter
        .create_group(&key(50, Role::Internal), "Sales")
        .await
        .unwrap();

    t.adapter.capabilities().await.unwrap();
    let before = t.adapter.stats().requests;
    let added = t.adapter.add_members(&group, &users).await;
    assert!(added.failed.is_empty(), "{added:?}");
    assert_eq!(
        t.adapter.stats().requests - before,
        3,
        "7 members in batches of 3"
    );
    assert_eq!(member_ids(&t.group(&group).await), sorted(&users));

    let removed = t.adapter.remove_members(&group, &users[..4]).await;
    assert!(removed.failed.is_empty(), "{removed:?}");
    assert_eq!(member_ids(&t.group(&group).await), sorted(&users[4..]));
}

#[tokio::test]
async fn a_group_is_created_and_renamed_with_its_entra_name_or_its_r2_label() {
    let plain = Tenant::new("groups-plain", json!({}));
    let labelled = Tenant::new("groups-labelled", json!({"group_labels": true}));

    let id = plain
        .adapter
        .create_group(&key(50, Role::Basic), "Sales")
        .await
        .unwrap();
    let group = plain.group(&id).await;
    assert_eq!(group["displayName"], "Sales");
    assert_eq!(group["externalId"], entra_id(50).to_string());
    plain
        .adapter
        .rename_group(&id, &key(50, Role::Basic), "Sales EMEA")
        .await
        .unwrap();
    assert_eq!(plain.group(&id).await["displayName"], "Sales EMEA");

    let id = labelled
        .adapter
        .create_group(&key(50, Role::Basic), "Sales")
        .await
        .unwrap();
    assert_eq!(
        labelled.group(&id).await["displayName"],
        "Sales [Synced basic user group]"
    );
    labelled
        .adapter
        .rename_group(&id, &key(50, Role::Basic), "Sales EMEA")
        .await
        .unwrap();
    assert_eq!(
        labelled.group(&id).await["displayName"],
        "Sales EMEA [Synced basic user group]"
    );
    labelled
        .adapter
        .convert_to_system_group(&id, "Sales EMEA_1745313810193")
        .await
        .unwrap();
    assert_eq!(
        labelled.group(&id).await["displayName"],
        "Sales EMEA_1745313810193 [System group]"
    );
}

#[tokio::test]
async fn converting_a_group_renames_it_and_clears_its_external_id() {
    let t = Tenant::new("convert", json!({}));
    let user = t.create(1, "jane@contoso.com").await;
    let id = t
        .adapter
        .create_group(&key(50, Role::Internal), "abtest3")
        .await
        .unwrap();
    t.adapter
        .add_members(&id, std::slice::from_ref(&user))
        .await;

    t.adapter
        .convert_to_system_group(&id, "abtest3_1745313810193")
        .await
        .unwrap();

    let group = t.group(&id).await;
    assert_eq!(group["displayName"], "abtest3_1745313810193");
    assert!(group.get("externalId").is_none(), "{group}");
    assert_eq!(
        member_ids(&group),
        [user.to_string()],
        "members are the planner's business"
    );
}

#[tokio::test]
async fn a_role_change_converts_the_old_group_and_fills_a_new_one() {
    let t = Tenant::new("role-change", json!({"role_attribute": "userType"}));
    let users = [
        t.create(1, "a@contoso.com").await,
        t.create(2, "b@contoso.com").await,
    ];
    let old = t
        .adapter
        .create_group(&key(50, Role::Internal), "Legal")
        .await
        .unwrap();
    t.adapter.add_members(&old, &users).await;

    // R13 as the planner orders it: members out, old group converted, new group created and
    // filled, users' roles updated.
    assert!(
        t.adapter
            .remove_members(&old, &users)
            .await
            .failed
            .is_empty()
    );
    t.adapter
        .convert_to_system_group(&old, "Legal_1745313810193")
        .await
        .unwrap();
    let new = t
        .adapter
        .create_group(&key(50, Role::Basic), "Legal")
        .await
        .unwrap();
    assert!(t.adapter.add_members(&new, &users).await.failed.is_empty());
    for (n, user) in users.iter().enumerate() {
        let mut basic = state(&format!("{}@contoso.com", ["a", "b"][n]), "First", "Last");
        basic.role = Role::Basic;
        t.adapter
            .update_user(
                user,
                &[change(ManagedField::Role, "internal", "basic")],
                &basic,
            )
            .await
            .unwrap();
    }

    let old_group = t.group(&old).await;
    assert_eq!(old_group["displayName"], "Legal_1745313810193");
    assert!(old_group.get("externalId").is_none());
    assert!(member_ids(&old_group).is_empty());
    let new_group = t.group(&new).await;
    assert_eq!(new_group["displayName"], "Legal");
    assert_eq!(new_group["externalId"], entra_id(50).to_string());
    assert_eq!(member_ids(&new_group), sorted(&users));
    assert_eq!(t.user(&users[0]).await["userType"], "basic");
}

#[tokio::test]
async fn manual_groups_and_their_members_are_left_alone() {
    let t = Tenant::new("manual", json!({}));
    let synced = t.create(1, "jane@contoso.com").await;
    let manual_user = t
        .manual_user(json!({"userName": "admin@contoso.com"}))
        .await;
    let manual = t.manual_group("Partners", &[&synced, &manual_user]).await;
    let before = t.group(&manual).await;
    let group = t
        .adapter
        .create_group(&key(50, Role::Internal), "Sales")
        .await
        .unwrap();

    t.adapter
        .add_members(&group, std::slice::from_ref(&synced))
        .await;
    t.adapter
        .remove_members(&group, std::slice::from_ref(&synced))
        .await;
    t.adapter
        .convert_to_system_group(&group, "Sales_1745313810193")
        .await
        .unwrap();
    t.adapter
        .set_user_status(&synced, UserStatus::Inactive)
        .await
        .unwrap();

    let after = t.group(&manual).await;
    assert_eq!(after["displayName"], "Partners");
    assert_eq!(after["meta"]["version"], before["meta"]["version"]);
    assert_eq!(member_ids(&after), member_ids(&before));
}

#[tokio::test]
async fn the_servers_refusals_become_clear_target_errors() {
    let t = Tenant::new("errors", json!({}));
    t.create(1, "jane@contoso.com").await;

    let taken = t
        .adapter
        .create_user(&entra_id(2), &state("JANE@contoso.com", "J", "D"))
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, TargetError::Conflict(text) if text.contains("uniqueness") && text.contains("JANE@contoso.com")),
        "{taken:?}"
    );

    let missing = t
        .adapter
        .set_user_status(
            &TargetUserId::new("no-such-user").unwrap(),
            UserStatus::Inactive,
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, TargetError::NotFound(_)), "{missing:?}");

    let intruder = Tenant::new("errors", json!({"token": "wrong"}));
    let refused = intruder
        .adapter
        .find_users_by_email(&[Email::parse("jane@contoso.com").unwrap()])
        .await
        .unwrap_err();
    assert!(refused.stops_the_run(), "{refused:?}");
}

#[tokio::test]
async fn a_server_without_patch_gets_read_modify_write_puts_within_its_advertised_limits() {
    let server = Arc::new(ScimServer::with_config(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": false},
        "bulk": {"supported": true, "maxOperations": 2, "maxPayloadSize": 1048576},
        "filter": {"supported": true, "maxResults": 3},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [],
    })));
    let t = Tenant::on(server, "limited", json!({}));
    let caps = t.adapter.capabilities().await.unwrap().clone();
    assert!(!caps.patch && caps.etag);
    assert_eq!(caps.member_batch_size(100), 2);

    let mut users = Vec::new();
    let mut emails = Vec::new();
    for n in 0..5 {
        let email = format!("u{n}@contoso.com");
        users.push(t.create(n, &email).await);
        emails.push(Email::parse(&email).unwrap());
    }
    assert_eq!(
        t.adapter.find_users_by_email(&emails).await.unwrap().len(),
        5
    );

    let mut after = state("u0@contoso.com", "Renamed", "Last");
    after.fields.phone = Some("+1 555".into());
    t.adapter
        .update_user(
            &users[0],
            &[
                change(ManagedField::FirstName, "First", "Renamed"),
                change(ManagedField::Phone, "", "+1 555"),
            ],
            &after,
        )
        .await
        .unwrap();
    let user = t.user(&users[0]).await;
    assert_eq!(user["name"]["givenName"], "Renamed");
    assert_eq!(
        user["phoneNumbers"],
        json!([{"value": "+1 555", "type": "work"}])
    );
    t.adapter
        .set_user_status(&users[1], UserStatus::Archived)
        .await
        .unwrap();
    assert_eq!(t.user(&users[1]).await["active"], false);

    let group = t
        .adapter
        .create_group(&key(50, Role::Internal), "Sales")
        .await
        .unwrap();
    assert!(
        t.adapter
            .add_members(&group, &users)
            .await
            .failed
            .is_empty()
    );
    assert!(
        t.adapter
            .remove_members(&group, &users[..2])
            .await
            .failed
            .is_empty()
    );
    assert_eq!(member_ids(&t.group(&group).await), sorted(&users[2..]));
    t.adapter
        .convert_to_system_group(&group, "Sales_1")
        .await
        .unwrap();
    let converted = t.group(&group).await;
    assert_eq!(converted["displayName"], "Sales_1");
    assert!(converted.get("externalId").is_none());
}

// ---------------------------------------------------------------------------------------------
// Offline: the JSON the adapter builds, through scim-sanity
// ---------------------------------------------------------------------------------------------

#[test]
fn the_json_the_adapter_sends_passes_scim_sanity() {
    let mut jane = state("o'neil@contoso.com", "Jane", "");
    jane.fields.phone = Some("+1 555".into());
    jane.fields.job_title = Some("CTO".into());
    jane.role = Role::Basic;
    let current = json!({"emails": [{"value": "x@home.example", "type": "home"}], "title": "CEO",
                         "phoneNumbers": [{"value": "+9", "type": "mobile"}]});
    let user_type = Shape {
        role_attribute: dirsync::target::scim::RoleAttribute::UserType,
        ..Shape::default()
    };
    let changes = [
        change(ManagedField::Email, "a@contoso.com", "o'neil@contoso.com"),
        change(ManagedField::LastName, "Doe", ""),
        change(ManagedField::JobTitle, "CEO", "CTO"),
        change(ManagedField::Phone, "+1", "+1 555"),
    ];
    let users = [
        TargetUserId::new("u1").unwrap(),
        TargetUserId::new("u\"2").unwrap(),
    ];
    let adopt = UserEdit::Adopt {
        entra_id: &entra_id(1),
        state: &jane,
    };
    let update = UserEdit::Update {
        changes: &changes,
        state: &jane,
    };
    let resources = [
        wire::user_resource(&Shape::default(), &entra_id(1), &jane),
        wire::user_resource(&user_type, &entra_id(1), &jane),
        wire::user_replacement(&Shape::default(), adopt, &current),
        wire::group_resource("Sales [Synced Group]", &entra_id(2)),
        wire::group_replacement(
            &json!({"id": "g", "displayName": "x", "externalId": "e"}),
            "y",
            true,
        ),
        wire::group_with_members(&json!({"id": "g", "displayName": "x"}), &users, &[]),
    ];
    let patches = [
        wire::user_patch(&Shape::default(), adopt, Some(&current)),
        wire::user_patch(&user_type, update, Some(&current)),
        wire::user_patch(
            &Shape::default(),
            UserEdit::Status(UserStatus::Archived),
            None,
        ),
        wire::group_rename_patch("Sales"),
        wire::group_convert_patch("Sales_1745313810193"),
        wire::members_add_patch(&users),
        wire::members_remove_patch(&users),
    ];
    for body in &resources {
        let (ok, output) = scim_server::scim_sanity(body, false);
        assert!(ok, "{body}\n{output}");
    }
    for body in &patches {
        let (ok, output) = scim_server::scim_sanity(body, true);
        assert!(ok, "{body}\n{output}");
    }
    // The validator does catch mistakes, so a pass means something.
    let (ok, _) =
        scim_server::scim_sanity(&json!({"schemas": [wire::USER_SCHEMA], "id": "x"}), false);
    assert!(!ok);
}

// ---------------------------------------------------------------------------------------------
// Against a stub: what scim2-server never answers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Stub {
    /// Requests seen, as "METHOD path".
    seen: Arc<Mutex<Vec<String>>>,
    /// How many more times the next calls answer 429 (with `Retry-After: 0.2`).
    throttle: Arc<Mutex<u32>>,
    /// The users' version, their ETag.
    version: Arc<Mutex<u32>>,
    /// How many more reads are followed by someone else changing the user.
    changed_after_read: Arc<Mutex<u32>>,
}

fn etag(version: u32) -> String {
    format!("W/\"{version}\"")
}

async fn stub_get_user(State(stub): State<Stub>, Path(id): Path<String>) -> Response {
    stub.seen.lock().unwrap().push(format!("GET Users/{id}"));
    let mut version = stub.version.lock().unwrap();
    let answer = (
        StatusCode::OK,
        [("etag", etag(*version))],
        json!({"schemas": [wire::USER_SCHEMA], "id": id, "userName": "a@b.com",
               "phoneNumbers": [{"value": "+9", "type": "mobile"}]})
        .to_string(),
    )
        .into_response();
    let mut changed = stub.changed_after_read.lock().unwrap();
    if *changed > 0 {
        *changed -= 1;
        *version += 1;
    }
    answer
}

async fn stub_patch_user(
    State(stub): State<Stub>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let if_match = headers
        .get("if-match")
        .map(|v| format!(" If-Match {}", v.to_str().unwrap()))
        .unwrap_or_default();
    stub.seen
        .lock()
        .unwrap()
        .push(format!("PATCH Users/{id}{if_match}"));
    if !if_match.is_empty()
        && if_match != format!(" If-Match {}", etag(*stub.version.lock().unwrap()))
    {
        return (StatusCode::PRECONDITION_FAILED, "").into_response();
    }
    {
        let mut throttle = stub.throttle.lock().unwrap();
        if *throttle > 0 {
            *throttle -= 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0.2")],
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429","detail":"slow down"}"#,
            )
                .into_response();
        }
    }
    match id.as_str() {
        "answers-200" => (
            StatusCode::OK,
            [("content-type", "application/scim+json")],
            json!({"schemas": [wire::USER_SCHEMA], "id": id, "userName": "a@b.com", "active": false})
                .to_string(),
        )
            .into_response(),
        "down" => (StatusCode::SERVICE_UNAVAILABLE, "").into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn stub_patch_group(State(stub): State<Stub>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap();
    let members = body["Operations"][0]["value"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    stub.seen
        .lock()
        .unwrap()
        .push(format!("PATCH Groups/g with {}", members.len()));
    if members.iter().any(|m| m["value"] == "refused") {
        return (
            StatusCode::BAD_REQUEST,
            json!({"schemas": [dirsync::target::scim::ERROR_SCHEMA], "status": 400,
                   "scimType": "invalidValue", "detail": "user refused cannot join"})
            .to_string(),
        )
            .into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn start_stub(stub: Stub) -> ScimAdapter {
    let app = Router::new()
        .route(
            "/v2/ServiceProviderConfig",
            get(|| async {
                axum::Json(json!({"patch": {"supported": true}, "etag": {"supported": true}}))
            }),
        )
        .route("/v2/Users/{id}", patch(stub_patch_user).get(stub_get_user))
        .route("/v2/Groups/g", patch(stub_patch_group))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    ScimAdapter::from_tenant_target(&json!({
        "kind": "scim",
        "base_url": format!("http://127.0.0.1:{port}/v2"),
        "token": "t",
        "tuning": {"retry_base_ms": 1, "max_retries": 2},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_patch_answered_200_with_a_body_or_204_without_one_is_success() {
    let adapter = start_stub(Stub::default()).await;
    for id in ["answers-200", "answers-204"] {
        adapter
            .set_user_status(&TargetUserId::new(id).unwrap(), UserStatus::Inactive)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_429_is_waited_out_for_as_long_as_retry_after_asks_and_a_lasting_503_is_unavailable() {
    let stub = Stub::default();
    *stub.throttle.lock().unwrap() = 1;
    let adapter = start_stub(stub.clone()).await;
    let id = TargetUserId::new("answers-204").unwrap();

    let started = Instant::now();
    adapter
        .set_user_status(&id, UserStatus::Active)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(adapter.stats().retries, 1);

    let err = adapter
        .set_user_status(&TargetUserId::new("down").unwrap(), UserStatus::Active)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Unavailable(text) if text.contains("3 attempts")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_member_is_found_by_splitting_the_batch_and_only_that_user_fails() {
    let stub = Stub::default();
    let adapter = start_stub(stub.clone()).await;
    let users: Vec<TargetUserId> = ["a", "b", "refused", "d"]
        .into_iter()
        .map(|id| TargetUserId::new(id).unwrap())
        .collect();

    let outcome = adapter
        .add_members(&TargetGroupId::new("g").unwrap(), &users)
        .await;

    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    let (user, err) = &outcome.failed[0];
    assert_eq!(user.as_str(), "refused");
    assert!(
        matches!(err, TargetError::Rejected(text) if text.contains("user refused cannot join")),
        "{err:?}"
    );
    assert_eq!(
        *stub.seen.lock().unwrap(),
        [
            "PATCH Groups/g with 4",
            "PATCH Groups/g with 2",
            "PATCH Groups/g with 2",
            "PATCH Groups/g with 1",
            "PATCH Groups/g with 1",
        ]
    );
}

#[tokio::test]
async fn a_write_after_a_read_carries_if_match_and_is_redone_when_the_user_changed_meanwhile() {
    let stub = Stub::default();
    *stub.changed_after_read.lock().unwrap() = 1;
    let adapter = start_stub(stub.clone()).await;
    let mut after = state("a@b.com", "A", "B");
    after.fields.phone = Some("+1".into());

    adapter
        .update_user(
            &TargetUserId::new("u1").unwrap(),
            &[change(ManagedField::Phone, "+0", "+1")],
            &after,
        )
        .await
        .unwrap();

    assert_eq!(
        *stub.seen.lock().unwrap(),
        [
            "GET Users/u1",
            "PATCH Users/u1 If-Match W/\"0\"",
            "GET Users/u1",
            "PATCH Users/u1 If-Match W/\"1\"",
        ]
    );
}
