//! The HighQ Collaborate target: a [`TargetAdapter`] over HighQ's REST API (SPEC.md "Target:
//! HighQ Collaborate REST API"), with OAuth2 rotating refresh tokens kept in a [`TokenStore`].

mod client;
mod error;
mod pacing;
mod phone;
mod token;
mod undocumented;
mod wire;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use compact_str::CompactString;
use futures::{StreamExt, TryStreamExt, stream};
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

pub use self::client::HighQStats;
use self::client::{Call, Client, ClientSettings};
pub use self::error::{HighQError, refs};
pub use self::phone::format_phone;
pub use self::token::{
    FileTokenStore, MemoryTokenStore, TokenRefresh, TokenStore, TokenStoreError,
};
pub use self::undocumented::UndocumentedCalls;
use self::wire::{field, flex_string, records};
use super::{MembershipOutcome, TargetAdapter, TargetError};
use crate::domain::{
    Email, EntraObjectId, GroupKind, SecretSetting, TargetGroupId, TargetUserId, UserStatus,
};
use crate::plan::{
    FieldChange, GroupKey, MAX_FIELD_CHARS, ManagedField, TargetUser, UserFields, UserState,
    truncate_chars,
};

/// The oldest API version with the basic-user group flag (SPEC.md).
pub const MIN_API_VERSION: u32 = 12;

/// A tenant's HighQ connection, as it appears in `Tenant.target` (`{"kind": "highq", …}`).
/// The secret is a [`SecretSetting`]: redacted in `Debug` and whenever it is serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HighQConfig {
    /// `https://{host}/{instance}`: everything before `/api/…`.
    pub base_url: String,
    #[serde(default = "default_api_version")]
    pub api_version: u32,
    pub client_id: String,
    pub client_secret: SecretSetting,
    /// The `sourcetype` written on the users and groups dirsync creates.
    #[serde(default = "default_source_type")]
    pub source_type: String,
    #[serde(default)]
    pub tuning: HighQTuning,
    #[serde(default)]
    pub undocumented: UndocumentedCalls,
}

impl HighQConfig {
    /// Where a HighQ site admin consents to dirsync's access: HighQ's OAuth authorize page,
    /// which sends the browser back to `redirect_uri` with a one-time code and `state`.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> Result<url::Url, String> {
        let mut url = url::Url::parse(&format!(
            "{}/authorize.action",
            self.base_url.trim_end_matches('/')
        ))
        .map_err(|e| format!("target.base_url {:?}: {e}", self.base_url))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        Ok(url)
    }
}

fn default_api_version() -> u32 {
    16
}

fn default_source_type() -> String {
    "synced".to_owned()
}

/// How hard and how patiently the adapter talks to HighQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HighQTuning {
    /// The most users added to a group per `POST /groups/{id}/users`. HighQ documents no maximum;
    /// the default is what the emulator accepts. A batch HighQ refuses as a whole is split.
    pub member_batch_size: usize,
    /// `DELETE /groups/{id}/users/{userid}` calls in flight at once for one group.
    pub remove_concurrency: usize,
    /// `GET /users/{email}?type=email` calls in flight at once for one look-up.
    pub lookup_concurrency: usize,
    /// Up to this many emails are looked up one by one; more, and `GET /users` is read in pages,
    /// until the pages read outnumber the emails still missing (those are then looked up one by
    /// one).
    pub lookup_one_by_one_max: usize,
    /// Users per page when paging through `GET /users`.
    pub page_size: usize,
    /// Calls in flight at once at the start of a run; more while HighQ's rate-limit headers show
    /// headroom (see `pacing.rs`).
    pub initial_concurrency: usize,
    /// Calls in flight at once at most, however much headroom HighQ shows.
    pub max_concurrency: usize,
    /// The longest total wait for 429s in one call before giving up.
    pub max_rate_limit_wait_secs: u64,
    /// Retries of a transient failure (5xx, timeout) per call.
    pub max_retries: u32,
    /// The first retry's delay; each further retry doubles it (with jitter).
    pub retry_base_ms: u64,
    pub request_timeout_secs: u64,
}

impl Default for HighQTuning {
    fn default() -> Self {
        Self {
            member_batch_size: 500,
            remove_concurrency: 16,
            lookup_concurrency: 16,
            lookup_one_by_one_max: 25,
            page_size: 500,
            initial_concurrency: 4,
            max_concurrency: 16,
            max_rate_limit_wait_secs: 120,
            max_retries: 3,
            retry_base_ms: 500,
            request_timeout_secs: 60,
        }
    }
}

/// Why a HighQ connection could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HighQConfigError {
    #[error("the HighQ connection is not valid: {0}")]
    Invalid(String),
}

/// Talks to one tenant's HighQ instance.
pub struct HighQAdapter {
    client: Client,
    config: HighQConfig,
}

impl std::fmt::Debug for HighQAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HighQAdapter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HighQAdapter {
    pub fn new(config: HighQConfig, store: Arc<dyn TokenStore>) -> Result<Self, HighQConfigError> {
        let invalid = |text: String| HighQConfigError::Invalid(text);
        let base_url = Url::parse(config.base_url.trim()).map_err(|err| {
            invalid(format!(
                "base_url {:?} is not a URL ({err})",
                config.base_url
            ))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(invalid(format!(
                "base_url {:?} must be an http(s) URL",
                config.base_url
            )));
        }
        if config.api_version < MIN_API_VERSION {
            return Err(invalid(format!(
                "api_version {} is too old: basic synced groups need version {MIN_API_VERSION} or later",
                config.api_version
            )));
        }
        let t = &config.tuning;
        if t.member_batch_size == 0
            || t.remove_concurrency == 0
            || t.lookup_concurrency == 0
            || t.page_size == 0
            || t.initial_concurrency == 0
            || t.max_concurrency == 0
        {
            return Err(invalid(
                "member_batch_size, remove_concurrency, lookup_concurrency, page_size, \
                 initial_concurrency and max_concurrency must be at least 1"
                    .to_owned(),
            ));
        }
        let settings = ClientSettings {
            base_url,
            api_version: config.api_version,
            client_id: config.client_id.clone(),
            client_secret: config
                .client_secret
                .value("target.client_secret")
                .map_err(invalid)?
                .clone(),
            max_rate_limit_wait: Duration::from_secs(t.max_rate_limit_wait_secs),
            max_retries: t.max_retries,
            retry_base: Duration::from_millis(t.retry_base_ms),
            request_timeout: Duration::from_secs(t.request_timeout_secs.max(1)),
            initial_in_flight: t.initial_concurrency,
            max_in_flight: t.max_concurrency,
        };
        let client = Client::new(settings, store).map_err(invalid)?;
        Ok(Self { client, config })
    }

    /// Builds the adapter from a tenant's `target` JSON.
    pub fn from_tenant_target(
        target: &Value,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, HighQConfigError> {
        let config: HighQConfig = serde_json::from_value(target.clone()).map_err(|err| {
            HighQConfigError::Invalid(format!("the target settings do not parse: {err}"))
        })?;
        Self::new(config, store)
    }

    pub fn stats(&self) -> HighQStats {
        self.client.stats()
    }

    /// Gets a new access token with the stored refresh token now (rotating and saving it), as a
    /// connection test does.
    pub async fn refresh_access_token(&self) -> Result<(), TargetError> {
        self.client
            .refresh_now()
            .await
            .map_err(|err| err.into_target("authenticating with HighQ"))
    }

    /// The first connection: exchanges the authorization code an admin's consent produced and
    /// stores the refresh token it yields.
    pub async fn connect_with_authorization_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<(), TargetError> {
        self.client
            .exchange_code(code, redirect_uri)
            .await
            .map_err(|err| err.into_target("connecting to HighQ with an authorization code"))
    }

    /// The members of a group, through the undocumented members call.
    pub async fn group_members(
        &self,
        group: &TargetGroupId,
    ) -> Result<Vec<TargetUserId>, TargetError> {
        let doing = format!("listing the members of group {group}");
        let body = self
            .client
            .send(Call::new(
                Method::GET,
                self.config
                    .undocumented
                    .group_members_segments(group.as_str()),
            ))
            .await
            .map_err(|err| err.into_target(&doing))?;
        Ok(records(&body, "user", "userid")
            .into_iter()
            .filter_map(|record| {
                flex_string(field(record, "userid"))
                    .or_else(|| flex_string(record))
                    .and_then(|id| TargetUserId::new(id).ok())
            })
            .collect())
    }

    /// The groups HighQ lists for `type` (`system` or `synced`), as `(id, name, kind)`.
    pub async fn list_groups(
        &self,
        group_type: &str,
    ) -> Result<Vec<(TargetGroupId, String, Option<GroupKind>)>, TargetError> {
        let body = self
            .client
            .send(Call::new(Method::GET, ["groups"]).query("type", group_type))
            .await
            .map_err(|err| err.into_target(&format!("listing {group_type} groups")))?;
        let undocumented = &self.config.undocumented;
        Ok(records(&body, "group", "groupid")
            .into_iter()
            .filter_map(|record| {
                let id = TargetGroupId::new(flex_string(field(record, "groupid"))?).ok()?;
                let name = flex_string(field(record, "name")).unwrap_or_default();
                let kind = flex_string(field(record, &undocumented.group_type_field))
                    .and_then(|value| undocumented.group_kind(&value));
                Some((id, name, kind))
            })
            .collect())
    }

    async fn find_one_by_email(&self, email: &Email) -> Result<Option<TargetUser>, TargetError> {
        let call = Call::new(Method::GET, ["users", email.as_str()]).query("type", "email");
        match self.client.send(call).await {
            Ok(body) => Ok(records(&body, "user", "userid")
                .into_iter()
                .filter_map(parse_user)
                .find(|user| &user.fields.email == email)),
            Err(err) if err.code() == Some(refs::USER_NOT_FOUND) => Ok(None),
            Err(err) => Err(err.into_target(&format!("looking up the user with email {email}"))),
        }
    }

    /// R4 in pages (issue 13, item 3): `GET /users` page by page, which costs one request per page
    /// however many emails are wanted. Where the target has more pages than emails are missing,
    /// paging on would cost more than asking: once the pages read outnumber the emails still
    /// missing, those are looked up one by one. Either way at most twice the better choice's
    /// requests, without knowing the target's size beforehand.
    async fn find_by_paging(&self, emails: Vec<Email>) -> Result<Vec<TargetUser>, TargetError> {
        let mut missing: HashSet<Email> = emails.into_iter().collect();
        let limit = self.config.tuning.page_size;
        let mut found = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut offset = 0usize;
        let mut pages = 0usize;
        let mut longest = 0usize;
        loop {
            let call = Call::new(Method::GET, ["users"])
                .query("limit", limit)
                .query("offset", offset);
            let body =
                self.client.send(call).await.map_err(|err| {
                    err.into_target(&format!("listing users from offset {offset}"))
                })?;
            let page = records(&body, "user", "userid");
            // An empty page ends the list: a server that caps `limit` below ours still gets paged
            // through completely.
            if page.is_empty() {
                return Ok(found);
            }
            // Item 7: a server that ignores the offset sends the same page for ever; a page with
            // no user not seen before ends the read with an error instead of a loop.
            let new_ids = page
                .iter()
                .filter_map(|record| flex_string(field(record, "userid")))
                .filter(|id| seen.insert(id.clone()))
                .count();
            if new_ids == 0 {
                return Err(TargetError::Protocol(format!(
                    "HighQ answered the users from offset {offset} with users it had already \
                     listed (is the offset ignored?); reading stopped rather than loop"
                )));
            }
            offset += page.len();
            pages += 1;
            // The server's page size does not change: a page shorter than an earlier one is the
            // last, and saves asking for the empty one after it.
            let last = page.len() < longest;
            longest = longest.max(page.len());
            for user in page.into_iter().filter_map(parse_user) {
                if missing.remove(&user.fields.email) {
                    found.push(user);
                }
            }
            if last || missing.is_empty() {
                return Ok(found);
            }
            if pages >= missing.len() {
                let rest: Vec<Email> = missing.into_iter().collect();
                found.extend(self.find_one_by_one(rest).await?);
                return Ok(found);
            }
        }
    }

    async fn find_one_by_one(&self, emails: Vec<Email>) -> Result<Vec<TargetUser>, TargetError> {
        let found: Vec<Option<TargetUser>> = stream::iter(emails)
            .map(|email| async move { self.find_one_by_email(&email).await })
            .buffer_unordered(self.config.tuning.lookup_concurrency)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    fn user_body(&self, entra_id: &EntraObjectId, state: &UserState) -> Value {
        let mut body = Map::new();
        let fields = &state.fields;
        body.insert("email".into(), json!(fields.email.as_str()));
        body.insert("firstname".into(), json!(limited(&fields.first_name)));
        body.insert("lastname".into(), json!(limited(&fields.last_name)));
        body.insert("phone".into(), json!(phone_value(&fields.phone)));
        body.insert("jobtitle".into(), json!(optional_value(&fields.job_title)));
        body.insert("externalid".into(), json!(entra_id.to_string()));
        body.insert("sourcetype".into(), json!(self.config.source_type));
        self.add_role_and_status(&mut body, state);
        Value::Object(body)
    }

    fn add_role_and_status(&self, body: &mut Map<String, Value>, state: &UserState) {
        body.insert("status".into(), json!(state.status.as_str()));
        let (role_field, role_value) = self.config.undocumented.role_field(state.role);
        body.insert(role_field, role_value);
    }

    async fn put_user(
        &self,
        id: &TargetUserId,
        body: Value,
        doing: &str,
    ) -> Result<(), TargetError> {
        self.client
            .send(Call::new(Method::PUT, ["users", id.as_str()]).body(body))
            .await
            .map(drop)
            .map_err(|err| err.into_target(doing))
    }

    async fn add_batch(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> Result<(), HighQError> {
        let ids: Vec<Value> = users.iter().map(|u| id_value(u.as_str())).collect();
        let call = Call::new(Method::POST, ["groups", group.as_str(), "users"])
            .body(json!({ "userid": ids }))
            .idempotent();
        self.client.send(call).await.map(drop)
    }
}

/// A text field cut to HighQ's 512 characters (R5).
fn limited(text: &str) -> String {
    truncate_chars(text, MAX_FIELD_CHARS).0
}

fn optional_value(value: &Option<CompactString>) -> String {
    value.as_deref().map(limited).unwrap_or_default()
}

/// R6 then R5: the phone as HighQ wants it, empty to clear it.
fn phone_value(phone: &Option<CompactString>) -> String {
    phone
        .as_deref()
        .map(|p| limited(&format_phone(p)))
        .unwrap_or_default()
}

/// HighQ user IDs are numbers; send them as numbers when they are.
fn id_value(id: &str) -> Value {
    id.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(id))
}

fn non_empty(value: &Value) -> Option<String> {
    flex_string(value).filter(|v| !v.is_empty())
}

/// A HighQ user record as the planner sees target users; records without an ID or a valid
/// email are skipped (they cannot match anyone).
fn parse_user(record: &Value) -> Option<TargetUser> {
    let id = TargetUserId::new(flex_string(field(record, "userid"))?).ok()?;
    let email = Email::parse(&flex_string(field(record, "email"))?).ok()?;
    let status = flex_string(field(record, "status"))
        .and_then(|s| s.parse::<UserStatus>().ok())
        .unwrap_or(UserStatus::Active);
    Some(TargetUser {
        id,
        fields: UserFields {
            email,
            first_name: flex_string(field(record, "firstname"))
                .unwrap_or_default()
                .into(),
            last_name: flex_string(field(record, "lastname"))
                .unwrap_or_default()
                .into(),
            phone: non_empty(field(record, "phone")).map(Into::into),
            job_title: non_empty(field(record, "jobtitle")).map(Into::into),
        },
        status,
    })
}

#[async_trait]
impl TargetAdapter for HighQAdapter {
    fn kind(&self) -> &'static str {
        "highq"
    }

    /// The adapter paces its calls by HighQ's rate-limit headers: the applier may keep as many
    /// operations going as the pacer lets calls be in flight.
    fn max_in_flight(&self) -> Option<usize> {
        Some(self.client.max_in_flight())
    }

    async fn find_users_by_email(&self, emails: &[Email]) -> Result<Vec<TargetUser>, TargetError> {
        let unique = crate::target::lenient::unique_emails(emails);
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        if unique.len() > self.config.tuning.lookup_one_by_one_max {
            return self.find_by_paging(unique).await;
        }
        self.find_one_by_one(unique).await
    }

    async fn create_user(
        &self,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<TargetUserId, TargetError> {
        let doing = format!("creating user {}", state.fields.email);
        let body = self
            .client
            .send(Call::new(Method::POST, ["users"]).body(self.user_body(entra_id, state)))
            .await
            .map_err(|err| err.into_target(&doing))?;
        let record = records(&body, "user", "userid")
            .into_iter()
            .next()
            .unwrap_or(&body);
        flex_string(field(record, "userid"))
            .and_then(|id| TargetUserId::new(id).ok())
            .ok_or_else(|| {
                TargetError::Protocol(format!("HighQ answered {doing} without a userid"))
            })
    }

    async fn adopt_user(
        &self,
        id: &TargetUserId,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<(), TargetError> {
        let doing = format!("adopting user {id} as {}", state.fields.email);
        self.put_user(id, self.user_body(entra_id, state), &doing)
            .await
    }

    async fn update_user(
        &self,
        id: &TargetUserId,
        changes: &[FieldChange],
        state: &UserState,
    ) -> Result<(), TargetError> {
        let fields = &state.fields;
        let mut body = Map::new();
        for change in changes {
            let (name, value) = match change.field {
                ManagedField::FirstName => ("firstname", limited(&fields.first_name)),
                ManagedField::LastName => ("lastname", limited(&fields.last_name)),
                ManagedField::Email => ("email", fields.email.to_string()),
                ManagedField::Phone => ("phone", phone_value(&fields.phone)),
                ManagedField::JobTitle => ("jobtitle", optional_value(&fields.job_title)),
                // R15: the role and status are always sent, below.
                ManagedField::Role | ManagedField::Status => continue,
            };
            body.insert(name.into(), json!(value));
        }
        self.add_role_and_status(&mut body, state);
        let doing = format!("updating user {id} ({})", fields.email);
        self.put_user(id, Value::Object(body), &doing).await
    }

    async fn set_user_status(
        &self,
        id: &TargetUserId,
        status: UserStatus,
    ) -> Result<(), TargetError> {
        let doing = format!("setting the status of user {id} to {status}");
        self.put_user(id, json!({ "status": status.as_str() }), &doing)
            .await
    }

    async fn verify_access(&self) -> Result<(), TargetError> {
        // The cheapest authenticated call HighQ has: one page of system groups.
        self.client
            .send(Call::new(Method::GET, ["groups"]).query("type", "system"))
            .await
            .map(|_| ())
            .map_err(|err| err.into_target("checking dirsync's access to HighQ"))
    }

    async fn group_members(
        &self,
        id: &TargetGroupId,
    ) -> Result<Option<Vec<TargetUserId>>, TargetError> {
        match HighQAdapter::group_members(self, id).await {
            Ok(members) => Ok(Some(members)),
            Err(TargetError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn find_group(
        &self,
        key: &GroupKey,
        name: &str,
    ) -> Result<Option<TargetGroupId>, TargetError> {
        let doing = format!("looking for group {name:?} before creating it");
        let body = self
            .client
            .send(Call::new(Method::GET, ["groups"]).query("type", "synced"))
            .await
            .map_err(|err| err.into_target(&doing))?;
        let undocumented = &self.config.undocumented;
        let wanted_kind = GroupKind::synced(key.role);
        let guid = key.entra_id.to_string();
        Ok(records(&body, "group", "groupid")
            .into_iter()
            .find_map(|record| {
                let same_name = flex_string(field(record, "name")).as_deref() == Some(name);
                let same_guid = flex_string(field(record, "guid"))
                    .is_some_and(|g| g.eq_ignore_ascii_case(&guid));
                let same_kind = flex_string(field(record, &undocumented.group_type_field))
                    .and_then(|value| undocumented.group_kind(&value))
                    == Some(wanted_kind);
                (same_name && same_guid && same_kind)
                    .then(|| flex_string(field(record, "groupid")))
                    .flatten()
                    .and_then(|id| TargetGroupId::new(id).ok())
            }))
    }

    async fn create_group(&self, key: &GroupKey, name: &str) -> Result<TargetGroupId, TargetError> {
        let doing = format!("creating group {name:?}");
        let kind = GroupKind::synced(key.role);
        let mut body = Map::new();
        body.insert("guid".into(), json!(key.entra_id.to_string()));
        body.insert("name".into(), json!(name));
        body.insert(
            "description".into(),
            json!(format!(
                "{} — synced by dirsync from Entra group {}",
                kind.label(name),
                key.entra_id
            )),
        );
        body.insert("sourcetype".into(), json!(self.config.source_type));
        let (type_field, type_value) = self.config.undocumented.group_type_field(kind);
        body.insert(type_field, type_value);
        let answer = self
            .client
            .send(Call::new(Method::POST, ["groups"]).body(Value::Object(body)))
            .await
            .map_err(|err| err.into_target(&doing))?;
        let record = records(&answer, "group", "groupid")
            .into_iter()
            .next()
            .unwrap_or(&answer);
        flex_string(field(record, "groupid"))
            .and_then(|id| TargetGroupId::new(id).ok())
            .ok_or_else(|| {
                TargetError::Protocol(format!("HighQ answered {doing} without a groupID"))
            })
    }

    async fn rename_group(
        &self,
        id: &TargetGroupId,
        _key: &GroupKey,
        name: &str,
    ) -> Result<(), TargetError> {
        self.rename_group_only(id, name).await
    }

    async fn convert_to_system_group(
        &self,
        id: &TargetGroupId,
        new_name: &str,
    ) -> Result<(), TargetError> {
        self.rename_group_only(id, new_name).await?;
        let (type_field, type_value) = self.config.undocumented.group_type_field(GroupKind::System);
        let call = Call::new(
            Method::PUT,
            self.config.undocumented.group_type_segments(id.as_str()),
        )
        .body(json!({ type_field: type_value }));
        self.client
            .send(call)
            .await
            .map(drop)
            .map_err(|err| err.into_target(&format!("making group {id} a system group")))
    }

    async fn add_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        // Issue 13, item 3: batches of the largest size HighQ accepts, sent side by side; the
        // pacer keeps them within HighQ's allowance.
        // Futures built first, then buffered: a closure inside the stream would tie its
        // lifetimes too tightly for the run to be spawned as a task.
        let batches: Vec<_> = users
            .chunks(self.config.tuning.member_batch_size)
            .map(|batch| self.add_batch_or_split(group, batch.to_vec()))
            .collect();
        let failed: Vec<Vec<(TargetUserId, TargetError)>> = stream::iter(batches)
            .buffer_unordered(self.client.max_in_flight())
            .collect()
            .await;
        MembershipOutcome {
            failed: failed.into_iter().flatten().collect(),
        }
    }

    async fn remove_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        let failed = stream::iter(users.iter().cloned())
            .map(|user| async move {
                let call = Call::new(
                    Method::DELETE,
                    ["groups", group.as_str(), "users", user.as_str()],
                );
                match self.client.send(call).await {
                    // A user HighQ no longer has is in no group: nothing left to remove.
                    Err(err) if err.code() != Some(refs::USER_NOT_FOUND) => {
                        let target_error =
                            err.into_target(&format!("removing user {user} from group {group}"));
                        Some((user, target_error))
                    }
                    _ => None,
                }
            })
            .buffer_unordered(self.config.tuning.remove_concurrency)
            .filter_map(|outcome| async move { outcome })
            .collect()
            .await;
        MembershipOutcome { failed }
    }
}

impl HighQAdapter {
    /// Adds one batch; a batch HighQ refuses as a whole is split in halves until the users it
    /// refuses are found one by one. Returns the users that could not be added.
    async fn add_batch_or_split(
        &self,
        group: &TargetGroupId,
        batch: Vec<TargetUserId>,
    ) -> Vec<(TargetUserId, TargetError)> {
        let mut failed = Vec::new();
        let mut pending = vec![batch];
        while let Some(batch) = pending.pop() {
            let Err(err) = self.add_batch(group, &batch).await else {
                continue;
            };
            let about_the_batch = matches!(&err, HighQError::Api { status, .. } if (400..500).contains(status) && *status != 401 && *status != 403);
            if about_the_batch && batch.len() > 1 {
                let (first, second) = batch.split_at(batch.len() / 2);
                pending.push(second.to_vec());
                pending.push(first.to_vec());
                continue;
            }
            for user in batch {
                let target_error = err
                    .clone()
                    .into_target(&format!("adding user {user} to group {group}"));
                failed.push((user, target_error));
            }
        }
        failed
    }

    async fn rename_group_only(&self, id: &TargetGroupId, name: &str) -> Result<(), TargetError> {
        let doing = format!("renaming group {id} to {name:?}");
        self.client
            .send(Call::new(Method::PUT, ["groups", id.as_str()]).body(json!({ "name": name })))
            .await
            .map(drop)
            .map_err(|err| err.into_target(&doing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_cut_at_512_characters_on_a_character_boundary() {
        let long = "é".repeat(600);
        assert_eq!(limited(&long).chars().count(), 512);
        assert_eq!(phone_value(&Some("1-555-123456".into())), "1$555$123456");
        assert_eq!(phone_value(&None), "");
    }

    #[test]
    fn numeric_user_ids_are_sent_as_numbers() {
        assert_eq!(id_value("42"), json!(42));
        assert_eq!(id_value("u-42"), json!("u-42"));
    }

    #[test]
    fn the_client_secret_is_hidden_from_debug_output() {
        let config: HighQConfig = serde_json::from_value(json!({
            "base_url": "https://highq.example/acme",
            "client_id": "dirsync",
            "client_secret": "s3cr3t-value",
        }))
        .unwrap();
        let adapter = HighQAdapter::new(config, Arc::new(MemoryTokenStore::default())).unwrap();
        assert!(!format!("{adapter:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn an_old_api_version_is_refused_with_the_reason() {
        let config: HighQConfig = serde_json::from_value(json!({
            "base_url": "https://highq.example/acme",
            "api_version": 11,
            "client_id": "dirsync",
            "client_secret": "x",
        }))
        .unwrap();
        let err = HighQAdapter::new(config, Arc::new(MemoryTokenStore::default())).unwrap_err();
        assert!(err.to_string().contains("version 12"), "{err}");
    }
}
