//! The worlds the engine's scenario and the target contract run in: a **directory driver** (the
//! in-memory source, or the Entra emulator read through the real Graph client) and a **target**
//! (the in-memory target, the HighQ emulator through the HighQ adapter, or scim2-server through
//! the SCIM adapter) that can be seeded with what an admin made by hand and read back as one
//! [`View`] free of the target's own IDs.
//!
//! The script describes Entra as a [`MemoryDirectory`]; a driver makes its directory say exactly
//! that ([`DirectoryDriver::publish`]). Every target is read through its own API or state, never
//! through the adapter under test.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dirsync::domain::{Email, EntraObjectId, GroupKind, Role, TargetUserId, UserStatus};
use dirsync::emulator::entra::{
    AppRegistration, Directory, EntraEmulator, Fault, FaultPlan, FaultRule, FaultTrigger, Group,
    TenantDirectory,
};
use dirsync::emulator::highq::{HighQEmulator, HighQSeed};
use dirsync::plan::{EntraUser, UserFields};
use dirsync::source::DirectorySource;
use dirsync::source::graph::{CredentialSettings, GraphConnector, GraphSettings};
use dirsync::source::memory::{MemoryDirectory, MemorySource};
use dirsync::target::TargetAdapter;
use dirsync::target::highq::{HighQAdapter, HighQConfig, MemoryTokenStore};
use dirsync::target::memory::MemoryTarget;
use dirsync::target::scim::{ScimAdapter, wire};
use dirsync::tenant::Tenant;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::scim_server::{ScimServer, TOKEN};

// ---------------------------------------------------------------------------------------------
// The view
// ---------------------------------------------------------------------------------------------

/// First name, last name, job title, role, status, and whether dirsync manages the user.
pub type UserView = (String, String, Option<String>, Role, UserStatus, bool);

/// A target as the rules describe it, free of the target's own IDs: users by (lowercase) email,
/// groups by name (a system group's timestamp written as `<ms>`) with their members' emails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub users: BTreeMap<String, UserView>,
    pub groups: BTreeMap<String, (GroupKind, BTreeSet<String>)>,
}

/// `Legal_1745313810193` → `Legal_<ms>`: the R12 timestamp is the one thing a test cannot know.
pub fn timestamp_free(name: &str) -> String {
    match name.rsplit_once('_') {
        Some((base, ms)) if ms.len() == 13 && ms.chars().all(|c| c.is_ascii_digit()) => {
            format!("{base}_<ms>")
        }
        _ => name.to_owned(),
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Directory drivers
// ---------------------------------------------------------------------------------------------

/// Where Entra's directory lives for a test, and the `DirectorySource` that reads it.
pub trait DirectoryDriver: Send + Sync {
    fn source(&self) -> Arc<dyn DirectorySource>;

    /// Makes the directory say exactly what `directory` says, its failing groups included.
    fn publish(&self, directory: &MemoryDirectory);
}

/// The in-memory source: the directory is the model itself.
pub struct MemoryDriver {
    source: MemorySource,
}

impl MemoryDriver {
    pub fn new() -> Self {
        Self {
            source: MemorySource::new(MemoryDirectory::default()),
        }
    }
}

impl DirectoryDriver for MemoryDriver {
    fn source(&self) -> Arc<dyn DirectorySource> {
        Arc::new(self.source.clone())
    }

    fn publish(&self, directory: &MemoryDirectory) {
        self.source.edit(|d| *d = directory.clone());
    }
}

const APP: &str = "a1b2c3d4-0000-4000-8000-00000000c11e";
const SECRET: &str = "emulator-secret-value";
/// A group that is not selected, nested in every selected group, with one user of its own.
const NESTED_GROUP: &str = "0000beef-0000-4000-8000-000000000001";
const DEVICE: &str = "0000de71-0000-4000-8000-000000000001";
const SERVICE_PRINCIPAL: &str = "00005e21-0000-4000-8000-000000000001";
const NESTED_ONLY_USER: &str = "00000e57-0000-4000-8000-000000000001";

/// The Entra emulator over HTTPS, read by the real Graph client with a client secret.
///
/// Besides the model, every published group also holds a nested group (with a user who is in no
/// selected group), a device and a service principal: R1 says none of them is synced, so the
/// scenario's full-view assertions also prove the `microsoft.graph.user` cast. A failing group
/// answers 503 (with `Retry-After`) on every read of its members, as a Graph outage would.
pub struct EntraDriver {
    emulator: EntraEmulator,
    tenant_id: String,
    source: Arc<dyn DirectorySource>,
}

impl EntraDriver {
    pub async fn start(tenant: &Tenant) -> Self {
        let tenant_id = tenant.entra_tenant_id.to_string();
        let mut directory = TenantDirectory::new(&tenant_id);
        directory.apps.push(AppRegistration::consented(APP, SECRET));
        let emulator = EntraEmulator::start(Directory {
            tenants: vec![directory],
        })
        .await
        .expect("the Entra emulator starts");
        let mut settings = GraphSettings::new(
            APP,
            CredentialSettings::ClientSecret {
                client_secret: SECRET.to_owned().into(),
            },
        );
        settings.graph_base_url = emulator.base_url().parse().expect("url");
        settings.authority_host = emulator.base_url().parse().expect("url");
        settings.extra_root_certificates_pem = vec![emulator.ca_pem().to_owned()];
        settings.backoff_base = Duration::from_millis(1);
        settings.backoff_max = Duration::from_millis(10);
        settings.max_retries = 2;
        settings.max_retry_wait = Duration::from_secs(5);
        let source = GraphConnector::new(settings)
            .expect("valid settings")
            .source_for(tenant)
            .expect("a Graph source");
        Self {
            emulator,
            tenant_id,
            source: Arc::new(source),
        }
    }

    pub fn emulator(&self) -> &EntraEmulator {
        &self.emulator
    }
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A user as Graph sends it (`null` where Entra has nothing).
fn graph_user(user: &EntraUser) -> Value {
    json!({
        "id": user.id.to_string(),
        "givenName": user.given_name,
        "surname": user.surname,
        "displayName": user.display_name,
        "mail": user.mail,
        "userPrincipalName": user.user_principal_name,
        "businessPhones": user.business_phones,
        "jobTitle": user.job_title,
        "accountEnabled": user.account_enabled,
    })
}

impl DirectoryDriver for EntraDriver {
    fn source(&self) -> Arc<dyn DirectorySource> {
        self.source.clone()
    }

    fn publish(&self, directory: &MemoryDirectory) {
        self.emulator.edit(|d| {
            let tenant = d.tenant_mut(&self.tenant_id).expect("the tenant");
            tenant.users.clear();
            for user in directory.users.values() {
                tenant.put_user(graph_user(user));
            }
            tenant.put_user(json!({
                "id": NESTED_ONLY_USER,
                "givenName": "Nora", "surname": "Nested", "displayName": "Nora Nested",
                "mail": "nora@contoso.com", "userPrincipalName": "nora@contoso.com",
                "businessPhones": [], "jobTitle": null, "accountEnabled": true,
            }));
            tenant.devices = vec![object(json!({"id": DEVICE, "displayName": "LAPTOP-01"}))];
            tenant.service_principals = vec![object(
                json!({"id": SERVICE_PRINCIPAL, "displayName": "Robot", "appId": APP}),
            )];
            tenant.groups = directory
                .groups
                .iter()
                .map(|(id, (name, members))| Group {
                    id: id.to_string(),
                    display_name: name.clone(),
                    members: members
                        .iter()
                        .map(ToString::to_string)
                        .chain([NESTED_GROUP, DEVICE, SERVICE_PRINCIPAL].map(str::to_owned))
                        .collect(),
                })
                .chain([Group {
                    id: NESTED_GROUP.to_owned(),
                    display_name: "Alumni".to_owned(),
                    members: vec![NESTED_ONLY_USER.to_owned()],
                }])
                .collect();
        });
        let mut failing: Vec<&EntraObjectId> = directory.failing.keys().collect();
        failing.sort();
        self.emulator.set_faults(FaultPlan {
            seed: 0,
            rules: failing
                .into_iter()
                .map(|id| FaultRule {
                    when: FaultTrigger::Always,
                    path_contains: Some(format!("/groups/{id}/members")),
                    fault: Fault::Unavailable {
                        retry_after_secs: Some(0.01),
                    },
                })
                .collect(),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

/// A user an admin made by hand in the target before dirsync came along.
#[derive(Debug, Clone)]
pub struct ManualUser {
    pub email: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub job_title: Option<&'static str>,
    pub status: UserStatus,
}

/// A target application under test: the adapter dirsync writes through, and an admin's view
/// of the application beside it.
#[async_trait]
pub trait TargetWorld: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &'static str;

    fn adapter(&self) -> Arc<dyn TargetAdapter>;

    /// Everything the target holds, read from the target itself.
    async fn view(&self) -> View;

    /// The target's own record of the changes it accepted, where it keeps one.
    fn own_writes(&self) -> Option<Vec<String>>;

    async fn add_manual_user(&self, user: &ManualUser);

    /// A group made by hand, with these (manual or synced) users as members.
    async fn add_manual_group(&self, name: &str, member_emails: &[&str]);

    /// An admin edits a user's first name in the target (R15).
    async fn set_first_name_by_hand(&self, email: &str, first_name: &str);

    /// Whether the target keeps `archived` apart from `inactive` (SCIM has only `active`).
    fn has_archived(&self) -> bool {
        true
    }
}

/// The in-memory target: the reference every other target is held to.
pub struct MemoryWorld {
    pub target: MemoryTarget,
}

impl MemoryWorld {
    pub fn new() -> Self {
        Self {
            target: MemoryTarget::new(),
        }
    }
}

#[async_trait]
impl TargetWorld for MemoryWorld {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn adapter(&self) -> Arc<dyn TargetAdapter> {
        Arc::new(self.target.clone())
    }

    async fn view(&self) -> View {
        self.target.with(|s| {
            let email_of = |id| s.users[id].fields.email.normalized();
            View {
                users: s
                    .users
                    .values()
                    .map(|u| {
                        (
                            u.fields.email.normalized(),
                            (
                                u.fields.first_name.to_string(),
                                u.fields.last_name.to_string(),
                                u.fields.job_title.as_ref().map(ToString::to_string),
                                u.role,
                                u.status,
                                u.external_id.is_some(),
                            ),
                        )
                    })
                    .collect(),
                groups: s
                    .groups
                    .values()
                    .map(|g| {
                        (
                            timestamp_free(&g.name),
                            (g.kind, g.members.iter().map(email_of).collect()),
                        )
                    })
                    .collect(),
            }
        })
    }

    fn own_writes(&self) -> Option<Vec<String>> {
        Some(self.target.with(|s| s.writes.clone()))
    }

    async fn add_manual_user(&self, user: &ManualUser) {
        self.target.with(|s| {
            s.add_manual_user(
                UserFields {
                    email: Email::parse(user.email).unwrap(),
                    first_name: user.first_name.into(),
                    last_name: user.last_name.into(),
                    phone: None,
                    job_title: user.job_title.map(Into::into),
                },
                user.status,
            );
        });
    }

    async fn add_manual_group(&self, name: &str, member_emails: &[&str]) {
        self.target.with(|s| {
            let members: Vec<TargetUserId> = member_emails
                .iter()
                .map(|e| s.user_by_email(e).expect("a member").0.clone())
                .collect();
            s.add_manual_group(name, members);
        });
    }

    async fn set_first_name_by_hand(&self, email: &str, first_name: &str) {
        self.target.with(|s| {
            let id = s.user_by_email(email).expect("the user").0.clone();
            s.users.get_mut(&id).unwrap().fields.first_name = first_name.into();
        });
    }
}

/// The HighQ emulator through the HighQ adapter (OAuth2 with a rotating refresh token).
pub struct HighQWorld {
    pub emulator: HighQEmulator,
    adapter: Arc<HighQAdapter>,
}

impl HighQWorld {
    pub async fn start() -> Self {
        let emulator = HighQEmulator::start(HighQSeed::default())
            .await
            .expect("the HighQ emulator starts");
        let config: HighQConfig = serde_json::from_value(json!({
            "base_url": emulator.base_url(),
            "api_version": 16,
            "client_id": emulator.client_id(),
            "client_secret": emulator.client_secret(),
            // Small batches, so three new members already take two calls.
            "tuning": {"retry_base_ms": 1, "member_batch_size": 2},
        }))
        .expect("HighQ settings");
        let tokens = MemoryTokenStore::new(Some(SecretString::from(emulator.refresh_token())));
        let adapter = HighQAdapter::new(config, Arc::new(tokens)).expect("a HighQ adapter");
        Self {
            emulator,
            adapter: Arc::new(adapter),
        }
    }
}

#[async_trait]
impl TargetWorld for HighQWorld {
    fn name(&self) -> &'static str {
        "highq"
    }

    fn adapter(&self) -> Arc<dyn TargetAdapter> {
        self.adapter.clone()
    }

    async fn view(&self) -> View {
        self.emulator.with(|s| {
            let email_of = |id: &u64| s.users[id].email.to_ascii_lowercase();
            View {
                users: s
                    .users
                    .values()
                    .map(|u| {
                        (
                            u.email.to_ascii_lowercase(),
                            (
                                u.first_name.clone(),
                                u.last_name.clone(),
                                non_empty(&u.job_title),
                                u.role,
                                u.status,
                                u.external_id.is_some(),
                            ),
                        )
                    })
                    .collect(),
                groups: s
                    .groups
                    .values()
                    .map(|g| {
                        (
                            timestamp_free(&g.name),
                            (g.kind, g.members.iter().map(email_of).collect()),
                        )
                    })
                    .collect(),
            }
        })
    }

    fn own_writes(&self) -> Option<Vec<String>> {
        Some(self.emulator.writes())
    }

    async fn add_manual_user(&self, user: &ManualUser) {
        self.emulator.with(|s| {
            let id = s.add_manual_user(user.email, user.first_name, user.last_name, user.status);
            s.users.get_mut(&id).unwrap().job_title = user.job_title.unwrap_or("").to_owned();
        });
    }

    async fn add_manual_group(&self, name: &str, member_emails: &[&str]) {
        self.emulator.with(|s| {
            let members: Vec<u64> = member_emails
                .iter()
                .map(|e| s.user_by_email(e).expect("a member").id)
                .collect();
            s.add_manual_group(name, members);
        });
    }

    async fn set_first_name_by_hand(&self, email: &str, first_name: &str) {
        self.emulator.with(|s| {
            let id = s.user_by_email(email).expect("the user").id;
            s.users.get_mut(&id).unwrap().first_name = first_name.to_owned();
        });
    }
}

/// A tenant of the shared scim2-server through the SCIM adapter, with R2 group labels on.
///
/// SCIM has no group type and no archived state, so the view is projected: a group without
/// `externalId` is a system group (that is how the adapter marks a converted group, and how a
/// group made by hand looks); a linked group's kind is read from its R2 label, which is also
/// stripped from the name; `active: false` is `inactive`; the role is the primary `roles` value.
pub struct ScimWorld {
    _server: Arc<ScimServer>,
    base: String,
    http: reqwest::Client,
    adapter: Arc<ScimAdapter>,
}

impl ScimWorld {
    /// `tenant` names the server's tenant path; a number is added, so worlds that run at once
    /// (the same scenario on both store backends) never share one.
    pub fn new(tenant: &str) -> Self {
        static WORLDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let server = ScimServer::shared();
        let base = server.base_url(&format!("{tenant}-{n}"));
        let adapter = ScimAdapter::from_tenant_target(&json!({
            "kind": "scim",
            "base_url": base,
            "token": TOKEN,
            "group_labels": true,
            // Small batches, so three new members already take two PATCHes.
            "tuning": {"retry_base_ms": 1, "member_batch_size": 2},
        }))
        .expect("a SCIM adapter");
        Self {
            _server: server,
            base,
            http: reqwest::Client::new(),
            adapter: Arc::new(adapter),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("scim2-server answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON")
        }
    }

    /// Every resource of `endpoint`, page by page.
    async fn list(&self, endpoint: &str) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("{endpoint}?startIndex={}&count=50", all.len() + 1),
                    None,
                )
                .await;
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            let empty = resources.is_empty();
            all.extend(resources);
            if empty || all.len() >= total {
                return all;
            }
        }
    }

    async fn user_id(&self, email: &str) -> String {
        let users = self.list("Users").await;
        users
            .iter()
            .find(|u| {
                u["userName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(email))
            })
            .and_then(|u| u["id"].as_str())
            .expect("the user")
            .to_owned()
    }
}

/// `Sales [Synced basic user group]` → (`Sales`, synced basic); a group without `externalId` is a
/// system group whatever its name says.
fn scim_group_kind(display_name: &str, linked: bool) -> (String, GroupKind) {
    let labels = [
        (" [Synced Group]", GroupKind::SyncedInternal),
        (" [Synced basic user group]", GroupKind::SyncedBasic),
        (" [System group]", GroupKind::System),
    ];
    let (name, labelled) = labels
        .iter()
        .find_map(|(suffix, kind)| {
            display_name
                .strip_suffix(suffix)
                .map(|name| (name.to_owned(), Some(*kind)))
        })
        .unwrap_or((display_name.to_owned(), None));
    let kind = match (linked, labelled) {
        (false, _) => GroupKind::System,
        (true, Some(kind)) if kind != GroupKind::System => kind,
        (true, other) => panic!("a linked group labelled {other:?}: {display_name:?}"),
    };
    (name, kind)
}

#[async_trait]
impl TargetWorld for ScimWorld {
    fn name(&self) -> &'static str {
        "scim"
    }

    fn adapter(&self) -> Arc<dyn TargetAdapter> {
        self.adapter.clone()
    }

    async fn view(&self) -> View {
        let users = self.list("Users").await;
        let groups = self.list("Groups").await;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let email_by_id: HashMap<String, String> = users
            .iter()
            .map(|u| {
                (
                    text(&u["id"]).expect("an id"),
                    text(&u["userName"]).expect("a userName").to_lowercase(),
                )
            })
            .collect();
        View {
            users: users
                .iter()
                .map(|u| {
                    let role = match u["roles"][0]["value"].as_str() {
                        Some("internal") => Role::Internal,
                        Some("basic") => Role::Basic,
                        other => panic!("a user without a known role ({other:?}): {u}"),
                    };
                    let status = if u["active"] == json!(false) {
                        UserStatus::Inactive
                    } else {
                        UserStatus::Active
                    };
                    (
                        text(&u["userName"]).unwrap().to_lowercase(),
                        (
                            text(&u["name"]["givenName"]).unwrap_or_default(),
                            text(&u["name"]["familyName"]).unwrap_or_default(),
                            text(&u["title"]),
                            role,
                            status,
                            u["externalId"].as_str().is_some_and(|x| !x.is_empty()),
                        ),
                    )
                })
                .collect(),
            groups: groups
                .iter()
                .map(|g| {
                    let linked = g["externalId"].as_str().is_some_and(|x| !x.is_empty());
                    let (name, kind) =
                        scim_group_kind(g["displayName"].as_str().expect("a name"), linked);
                    let members = wire::member_ids(g)
                        .iter()
                        .map(|id| email_by_id.get(id).cloned().unwrap_or_else(|| id.clone()))
                        .collect();
                    (timestamp_free(&name), (kind, members))
                })
                .collect(),
        }
    }

    fn own_writes(&self) -> Option<Vec<String>> {
        None
    }

    async fn add_manual_user(&self, user: &ManualUser) {
        let mut body = json!({
            "schemas": [wire::USER_SCHEMA],
            "userName": user.email,
            "name": {"givenName": user.first_name, "familyName": user.last_name},
            "emails": [{"value": user.email, "type": "work", "primary": true}],
            "active": user.status == UserStatus::Active,
            "roles": [{"value": "internal", "primary": true}],
        });
        if let Some(job) = user.job_title {
            body["title"] = json!(job);
        }
        self.call(reqwest::Method::POST, "Users", Some(body)).await;
    }

    async fn add_manual_group(&self, name: &str, member_emails: &[&str]) {
        let mut members = Vec::new();
        for email in member_emails {
            members.push(json!({"value": self.user_id(email).await}));
        }
        let body = json!({
            "schemas": [wire::GROUP_SCHEMA],
            "displayName": name,
            "members": members,
        });
        self.call(reqwest::Method::POST, "Groups", Some(body)).await;
    }

    async fn set_first_name_by_hand(&self, email: &str, first_name: &str) {
        let id = self.user_id(email).await;
        let body = json!({
            "schemas": [wire::PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "name.givenName", "value": first_name}],
        });
        self.call(reqwest::Method::PATCH, &format!("Users/{id}"), Some(body))
            .await;
    }

    fn has_archived(&self) -> bool {
        false
    }
}
