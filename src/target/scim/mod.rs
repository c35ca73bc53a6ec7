//! The SCIM 2.0 target: a [`TargetAdapter`] for any application that speaks RFC 7643 / 7644
//! (SPEC.md "Target: SCIM 2.0"), shaped by what the server advertises in
//! `/ServiceProviderConfig`.
//!
//! How dirsync's notions map onto SCIM:
//! - a synced user is a `User` whose `externalId` is the Entra object ID; `userName` and the
//!   primary work email are the email; the role is in `roles` or `userType` (configurable);
//!   inactive **and archived** are both `active: false`, since SCIM has no archived state;
//! - a synced group is a `Group` whose `externalId` is the Entra group ID; its `displayName` is
//!   the Entra name, or the R2 label when `group_labels` is set;
//! - converting to a system group (R12/R13) renames the group to the system name and removes its
//!   `externalId`: SCIM has no group types, and the missing link is what marks it unmanaged.
//!
//! Updates are PATCH (RFC 7644 §3.5.2; a 200 with the resource and a 204 without are both
//! success), or a read-modify-write PUT when the server does not support PATCH. Whenever a
//! resource is read before it is written, the write carries `If-Match` if the server supports
//! ETags, and is redone from a fresh read when the resource changed meanwhile (412).

mod client;
mod error;
mod settings;
pub mod wire;

use std::collections::HashSet;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

pub use self::client::ScimStats;
use self::client::{Answer, Call, Client, ClientSettings};
pub use self::error::{ERROR_SCHEMA, ScimError};
pub use self::settings::{RoleAttribute, RoleValues, ScimSettings, ScimTuning};
use self::wire::{Capabilities, Shape, UserEdit, field, flex_string, list_page, parse_user};
use super::{MembershipOutcome, TargetAdapter, TargetError};
use crate::domain::{Email, EntraObjectId, TargetGroupId, TargetUserId, UserStatus};
use crate::plan::{FieldChange, GroupKey, TargetUser, UserState};

/// How often a read-modify-write is redone when the resource keeps changing under it (412).
const MAX_VERSION_CONFLICTS: u32 = 3;

/// Why a SCIM connection could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScimConfigError {
    #[error("the SCIM connection is not valid: {0}")]
    Invalid(String),
}

/// Talks to one tenant's SCIM 2.0 application.
pub struct ScimAdapter {
    client: Client,
    settings: ScimSettings,
    shape: Shape,
    capabilities: OnceCell<Capabilities>,
}

impl std::fmt::Debug for ScimAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimAdapter")
            .field("settings", &self.settings)
            .field("capabilities", &self.capabilities.get())
            .finish_non_exhaustive()
    }
}

impl ScimAdapter {
    pub fn new(settings: ScimSettings) -> Result<Self, ScimConfigError> {
        let invalid = ScimConfigError::Invalid;
        let base_url = Url::parse(settings.base_url.trim()).map_err(|err| {
            invalid(format!(
                "base_url {:?} is not a URL ({err})",
                settings.base_url
            ))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(invalid(format!(
                "base_url {:?} must be an http(s) URL",
                settings.base_url
            )));
        }
        let t = &settings.tuning;
        if t.concurrency == 0
            || t.member_batch_size == 0
            || t.lookup_batch_size == 0
            || t.page_size == 0
        {
            return Err(invalid(
                "concurrency, member_batch_size, lookup_batch_size and page_size must be at least 1"
                    .to_owned(),
            ));
        }
        let client = Client::new(ClientSettings {
            base_url,
            token: settings
                .token
                .value("target.token")
                .map_err(invalid)?
                .clone(),
            concurrency: t.concurrency,
            request_timeout: std::time::Duration::from_secs(t.request_timeout_secs.max(1)),
            connect_timeout: std::time::Duration::from_secs(t.connect_timeout_secs.max(1)),
            max_retries: t.max_retries,
            retry_base: std::time::Duration::from_millis(t.retry_base_ms),
            max_retry_wait: std::time::Duration::from_secs(t.max_retry_wait_secs),
        })
        .map_err(invalid)?;
        let shape = Shape {
            role_attribute: settings.role_attribute,
            role_values: settings.role_values.clone(),
            group_labels: settings.group_labels,
        };
        Ok(Self {
            client,
            settings,
            shape,
            capabilities: OnceCell::new(),
        })
    }

    /// Builds the adapter from a tenant's `target` JSON (`{"kind": "scim", …}`).
    pub fn from_tenant_target(target: &Value) -> Result<Self, ScimConfigError> {
        let settings: ScimSettings = serde_json::from_value(target.clone()).map_err(|err| {
            ScimConfigError::Invalid(format!("the target settings do not parse: {err}"))
        })?;
        Self::new(settings)
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn stats(&self) -> ScimStats {
        self.client.stats()
    }

    /// What the server advertises in `/ServiceProviderConfig`, read once. A server that does not
    /// publish it (404, 501, not JSON) gets the defaults of [`Capabilities`]; one that refuses
    /// our token fails here, which makes this the connection test.
    pub async fn capabilities(&self) -> Result<&Capabilities, TargetError> {
        self.capabilities
            .get_or_try_init(|| async {
                match self
                    .client
                    .send(Call::new(Method::GET, ["ServiceProviderConfig"]))
                    .await
                {
                    Ok(answer) => Ok(Capabilities::parse(&answer.body)),
                    Err(ScimError::Api {
                        status: 404 | 501, ..
                    })
                    | Err(ScimError::Protocol(_)) => Ok(Capabilities::default()),
                    Err(err) => Err(err.into_target("reading /ServiceProviderConfig")),
                }
            })
            .await
    }

    /// Every resource of `endpoint` matching `filter` (all of them without one), page by page.
    async fn list(&self, endpoint: &str, filter: Option<&str>) -> Result<Vec<Value>, ScimError> {
        let count = self
            .capabilities
            .get()
            .cloned()
            .unwrap_or_default()
            .page_size(self.settings.tuning.page_size);
        let mut found = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut start = 1u64;
        loop {
            let mut call = Call::new(Method::GET, [endpoint])
                .query("startIndex", start)
                .query("count", count);
            if let Some(filter) = filter {
                call = call.query("filter", filter);
            }
            let answer = self.client.send(call).await?;
            let (page, total) = list_page(&answer.body);
            let got = page.len() as u64;
            // Item 7: a server that ignores `startIndex` sends the same page for ever.
            let new_ids = page
                .iter()
                .filter_map(|resource| flex_string(field(resource, "id")))
                .filter(|id| seen.insert(id.clone()))
                .count();
            if got > 0 && new_ids == 0 {
                return Err(ScimError::Protocol(format!(
                    "the {endpoint} from index {start} are ones it had already listed (is \
                     startIndex ignored?); reading stopped rather than loop"
                )));
            }
            found.extend(page.into_iter().cloned());
            start += got;
            // An empty page ends the list, and so does reaching the total: a server that caps
            // `count` below ours is still paged through completely.
            if got == 0 || total.is_some_and(|total| start > total) {
                return Ok(found);
            }
            // Without `totalResults` only a short page says the list is complete.
            if total.is_none() {
                if got < count as u64 {
                    return Ok(found);
                }
                return Err(ScimError::Protocol(format!(
                    "a full page of {endpoint} came without totalResults, so whether more follow \
                     cannot be told; reading stopped rather than guess"
                )));
            }
        }
    }

    async fn find_by_filters(&self, emails: &[Email]) -> Result<Vec<Value>, TargetError> {
        let caps = self.capabilities().await?;
        let chunk = caps.lookup_batch_size(self.settings.tuning.lookup_batch_size);
        let chunks: Vec<Vec<Email>> = emails.chunks(chunk).map(<[_]>::to_vec).collect();
        let pages: Vec<Vec<Value>> = stream::iter(chunks)
            .map(|chunk| async move {
                let filter = wire::user_name_filter(&chunk);
                self.list("Users", Some(&filter)).await.map_err(|err| {
                    err.into_target(&format!("looking up {} users by userName", chunk.len()))
                })
            })
            .buffer_unordered(self.settings.tuning.concurrency)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    async fn read(&self, endpoint: &str, id: &str, doing: &str) -> Result<Answer, TargetError> {
        self.client
            .send(Call::new(Method::GET, [endpoint, id]))
            .await
            .map_err(|err| err.into_target(doing))
    }

    /// Sends `edit` to user `id`: a PATCH, after reading the user when multi-valued attributes
    /// change; a read-modify-write PUT on servers without PATCH.
    async fn edit_user(
        &self,
        id: &TargetUserId,
        edit: UserEdit<'_>,
        doing: &str,
    ) -> Result<(), TargetError> {
        let caps = self.capabilities().await?;
        let mut conflicts = 0;
        loop {
            let current = if edit.needs_current() || !caps.patch {
                Some(self.read("Users", id.as_str(), doing).await?)
            } else {
                None
            };
            let etag = current
                .as_ref()
                .and_then(|c| c.etag.clone())
                .filter(|_| caps.etag);
            let call = match &current {
                Some(current) if !caps.patch => Call::new(Method::PUT, ["Users", id.as_str()])
                    .body(wire::user_replacement(&self.shape, edit, &current.body)),
                _ => Call::new(Method::PATCH, ["Users", id.as_str()]).body(wire::user_patch(
                    &self.shape,
                    edit,
                    current.as_ref().map(|c| &c.body),
                )),
            };
            match self.client.send(call.if_match(etag)).await {
                Ok(_) => return Ok(()),
                Err(err) if err.status() == Some(412) && conflicts < MAX_VERSION_CONFLICTS => {
                    conflicts += 1;
                }
                Err(err) => return Err(err.into_target(doing)),
            }
        }
    }

    /// Renames group `id`, clearing its `externalId` when it becomes a system group.
    async fn edit_group(
        &self,
        id: &TargetGroupId,
        display_name: &str,
        to_system: bool,
        doing: &str,
    ) -> Result<(), TargetError> {
        let caps = self.capabilities().await?;
        if caps.patch {
            let body = if to_system {
                wire::group_convert_patch(display_name)
            } else {
                wire::group_rename_patch(display_name)
            };
            return self
                .client
                .send(Call::new(Method::PATCH, ["Groups", id.as_str()]).body(body))
                .await
                .map(drop)
                .map_err(|err| err.into_target(doing));
        }
        self.replace_group(id, doing, |current| {
            wire::group_replacement(current, display_name, to_system)
        })
        .await
    }

    /// A read-modify-write PUT of a group, guarded by its ETag when the server offers them.
    async fn replace_group(
        &self,
        id: &TargetGroupId,
        doing: &str,
        change: impl Fn(&Value) -> Value,
    ) -> Result<(), TargetError> {
        let caps = self.capabilities().await?;
        let mut conflicts = 0;
        loop {
            let current = self.read("Groups", id.as_str(), doing).await?;
            let call = Call::new(Method::PUT, ["Groups", id.as_str()])
                .body(change(&current.body))
                .if_match(current.etag.filter(|_| caps.etag));
            match self.client.send(call).await {
                Ok(_) => return Ok(()),
                Err(err) if err.status() == Some(412) && conflicts < MAX_VERSION_CONFLICTS => {
                    conflicts += 1;
                }
                Err(err) => return Err(err.into_target(doing)),
            }
        }
    }

    /// Adds or removes `users` in batches the server's limits allow. A batch the server refuses
    /// for its content is split in halves until the users it refuses are found one by one, so
    /// each failure is attributed to the user it belongs to.
    async fn change_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
        adding: bool,
    ) -> MembershipOutcome {
        let verb = if adding { "adding" } else { "removing" };
        let preposition = if adding { "to" } else { "from" };
        let doing = |who: &str| format!("{verb} {who} {preposition} group {group}");
        let fail_all = |users: &[TargetUserId], err: &TargetError| MembershipOutcome {
            failed: users.iter().map(|u| (u.clone(), err.clone())).collect(),
        };
        if users.is_empty() {
            return MembershipOutcome::default();
        }
        let caps = match self.capabilities().await {
            Ok(caps) => caps,
            Err(err) => return fail_all(users, &err),
        };
        if !caps.patch {
            let (add, remove) = if adding {
                (users, &[][..])
            } else {
                (&[][..], users)
            };
            let result = self
                .replace_group(
                    group,
                    &doing(&format!("{} users", users.len())),
                    |current| wire::group_with_members(current, add, remove),
                )
                .await;
            return match result {
                Ok(()) => MembershipOutcome::default(),
                Err(err) => fail_all(users, &err),
            };
        }
        let size = caps.member_batch_size(self.settings.tuning.member_batch_size);
        let mut failed = Vec::new();
        let mut pending: Vec<Vec<TargetUserId>> =
            users.chunks(size).rev().map(<[_]>::to_vec).collect();
        while let Some(batch) = pending.pop() {
            let body = if adding {
                wire::members_add_patch(&batch)
            } else {
                wire::members_remove_patch(&batch)
            };
            let call = Call::new(Method::PATCH, ["Groups", group.as_str()]).body(body);
            let Err(err) = self.client.send(call).await else {
                continue;
            };
            // A 404 may be about a member or about the group itself: only a group that is
            // still there is worth splitting the batch for.
            let group_gone = err.status() == Some(404)
                && (batch.len() == 1
                    || matches!(
                        self.client
                            .send(
                                Call::new(Method::GET, ["Groups", group.as_str()])
                                    .query("excludedAttributes", "members")
                            )
                            .await,
                        Err(ScimError::Api { status: 404, .. })
                    ));
            let splittable =
                err.is_about_the_content() || (err.status() == Some(404) && !group_gone);
            if splittable && batch.len() > 1 {
                let (first, second) = batch.split_at(batch.len() / 2);
                pending.push(second.to_vec());
                pending.push(first.to_vec());
                continue;
            }
            if group_gone {
                let target_error = err.into_target(&doing(&format!("{} users", users.len())));
                failed.extend(batch.into_iter().map(|u| (u, target_error.clone())));
                for rest in pending.drain(..) {
                    failed.extend(rest.into_iter().map(|u| (u, target_error.clone())));
                }
                break;
            }
            for user in batch {
                let target_error = err.clone().into_target(&doing(&format!("user {user}")));
                failed.push((user, target_error));
            }
        }
        MembershipOutcome { failed }
    }
}

#[async_trait]
impl TargetAdapter for ScimAdapter {
    fn kind(&self) -> &'static str {
        "scim"
    }

    async fn find_users_by_email(&self, emails: &[Email]) -> Result<Vec<TargetUser>, TargetError> {
        let unique = crate::target::lenient::unique_emails(emails);
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let caps = self.capabilities().await?;
        let resources =
            if caps.filter && unique.len() <= self.settings.tuning.lookup_paging_threshold {
                self.find_by_filters(&unique).await?
            } else {
                self.list("Users", None)
                    .await
                    .map_err(|err| err.into_target("listing all users"))?
            };
        // The server's filter matching is not trusted: a user counts when its email is one we
        // asked for, case-insensitively (R4); the same user from two pages counts once.
        let wanted: HashSet<&Email> = unique.iter().collect();
        let mut seen = HashSet::new();
        Ok(resources
            .iter()
            .filter_map(parse_user)
            .filter(|user| wanted.contains(&user.fields.email) && seen.insert(user.id.clone()))
            .collect())
    }

    async fn create_user(
        &self,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<TargetUserId, TargetError> {
        let doing = format!("creating user {}", state.fields.email);
        let body = wire::user_resource(&self.shape, entra_id, state);
        let answer = self
            .client
            .send(Call::new(Method::POST, ["Users"]).body(body))
            .await
            .map_err(|err| err.into_target(&doing))?;
        created_id(&answer)
            .and_then(|id| TargetUserId::new(id).ok())
            .ok_or_else(|| {
                TargetError::Protocol(format!(
                    "the SCIM server answered {doing} without the new user's id"
                ))
            })
    }

    async fn adopt_user(
        &self,
        id: &TargetUserId,
        entra_id: &EntraObjectId,
        state: &UserState,
    ) -> Result<(), TargetError> {
        let doing = format!("adopting user {id} as {}", state.fields.email);
        self.edit_user(id, UserEdit::Adopt { entra_id, state }, &doing)
            .await
    }

    async fn update_user(
        &self,
        id: &TargetUserId,
        changes: &[FieldChange],
        state: &UserState,
    ) -> Result<(), TargetError> {
        let doing = format!("updating user {id} ({})", state.fields.email);
        self.edit_user(id, UserEdit::Update { changes, state }, &doing)
            .await
    }

    async fn set_user_status(
        &self,
        id: &TargetUserId,
        status: UserStatus,
    ) -> Result<(), TargetError> {
        let doing = format!("setting the status of user {id} to {status}");
        self.edit_user(id, UserEdit::Status(status), &doing).await
    }

    async fn verify_access(&self) -> Result<(), TargetError> {
        // One user at most: proves the token without reading the directory.
        self.client
            .send(
                Call::new(Method::GET, ["Users"])
                    .query("startIndex", 1)
                    .query("count", 1),
            )
            .await
            .map(|_| ())
            .map_err(|err| err.into_target("checking dirsync's access to the SCIM server"))
    }

    async fn group_members(
        &self,
        id: &TargetGroupId,
    ) -> Result<Option<Vec<TargetUserId>>, TargetError> {
        let doing = format!("reading the members of group {id}");
        let answer = match self.read("Groups", id.as_str(), &doing).await {
            Ok(answer) => answer,
            Err(TargetError::NotFound(_)) => return Ok(None),
            Err(err) => return Err(err),
        };
        let members = match field(&answer.body, "members") {
            Value::Array(list) => list
                .iter()
                .filter_map(|member| flex_string(field(member, "value")))
                .filter_map(|value| TargetUserId::new(value).ok())
                .collect(),
            _ => Vec::new(),
        };
        Ok(Some(members))
    }

    async fn find_group(
        &self,
        key: &GroupKey,
        name: &str,
    ) -> Result<Option<TargetGroupId>, TargetError> {
        let display_name = self.shape.group_display_name(key.role, name);
        let doing = format!("looking for group {display_name:?} before creating it");
        let caps = self.capabilities().await?;
        let filter = caps
            .filter
            .then(|| format!("displayName eq {}", wire::filter_string(&display_name)));
        let groups = self
            .list("Groups", filter.as_deref())
            .await
            .map_err(|err| err.into_target(&doing))?;
        let external_id = key.entra_id.to_string();
        // The server's filter is not trusted: the name and the link are checked here.
        Ok(groups.iter().find_map(|group| {
            let same_name =
                flex_string(field(group, "displayName")).as_deref() == Some(display_name.as_str());
            let same_link = flex_string(field(group, "externalId"))
                .is_some_and(|id| id.eq_ignore_ascii_case(&external_id));
            (same_name && same_link)
                .then(|| flex_string(field(group, "id")))
                .flatten()
                .and_then(|id| TargetGroupId::new(id).ok())
        }))
    }

    async fn create_group(&self, key: &GroupKey, name: &str) -> Result<TargetGroupId, TargetError> {
        let display_name = self.shape.group_display_name(key.role, name);
        let doing = format!("creating group {display_name:?}");
        let answer = self
            .client
            .send(
                Call::new(Method::POST, ["Groups"])
                    .body(wire::group_resource(&display_name, &key.entra_id)),
            )
            .await
            .map_err(|err| err.into_target(&doing))?;
        created_id(&answer)
            .and_then(|id| TargetGroupId::new(id).ok())
            .ok_or_else(|| {
                TargetError::Protocol(format!(
                    "the SCIM server answered {doing} without the new group's id"
                ))
            })
    }

    async fn rename_group(
        &self,
        id: &TargetGroupId,
        key: &GroupKey,
        name: &str,
    ) -> Result<(), TargetError> {
        let display_name = self.shape.group_display_name(key.role, name);
        let doing = format!("renaming group {id} to {display_name:?}");
        self.edit_group(id, &display_name, false, &doing).await
    }

    async fn convert_to_system_group(
        &self,
        id: &TargetGroupId,
        new_name: &str,
    ) -> Result<(), TargetError> {
        let display_name = self.shape.system_group_display_name(new_name);
        let doing = format!("converting group {id} to system group {display_name:?}");
        self.edit_group(id, &display_name, true, &doing).await
    }

    async fn add_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        self.change_members(group, users, true).await
    }

    async fn remove_members(
        &self,
        group: &TargetGroupId,
        users: &[TargetUserId],
    ) -> MembershipOutcome {
        self.change_members(group, users, false).await
    }
}

/// The `id` of a created resource: from the body, or the last segment of `Location` for a
/// server that answers 201 without one.
fn created_id(answer: &Answer) -> Option<String> {
    flex_string(field(&answer.body, "id")).or_else(|| {
        answer
            .location
            .as_deref()
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_base_url_that_is_not_http_is_refused_with_the_reason() {
        let err = ScimAdapter::from_tenant_target(&json!({
            "kind": "scim", "base_url": "ftp://app.example/scim", "token": "t"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("http(s)"), "{err}");
        let err = ScimAdapter::from_tenant_target(&json!({"kind": "scim"})).unwrap_err();
        assert!(err.to_string().contains("base_url"), "{err}");
    }

    #[test]
    fn the_adapter_debug_output_hides_the_token() {
        let adapter = ScimAdapter::from_tenant_target(&json!({
            "kind": "scim", "base_url": "https://app.example/scim/v2", "token": "s3cr3t"
        }))
        .unwrap();
        assert!(!format!("{adapter:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_created_id_comes_from_the_body_or_the_location() {
        let answer = |body: Value, location: Option<&str>| Answer {
            body,
            etag: None,
            location: location.map(str::to_owned),
        };
        assert_eq!(
            created_id(&answer(json!({"id": 7}), None)).as_deref(),
            Some("7")
        );
        assert_eq!(
            created_id(&answer(Value::Null, Some("https://x/v2/Users/abc"))).as_deref(),
            Some("abc")
        );
    }
}
