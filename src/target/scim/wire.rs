//! The SCIM 2.0 JSON dirsync sends and reads (RFC 7643 resources, RFC 7644 PATCH and filters),
//! as pure functions: request bodies are built here so tests can check them offline, and
//! answers are read tolerantly (numbers as strings, missing optional attributes).

use serde_json::{Map, Value, json};

pub use crate::target::lenient::{field, flex_string, flex_u64};

use super::settings::{RoleAttribute, RoleValues};
use crate::domain::{Email, EntraObjectId, GroupKind, Role, TargetUserId, UserStatus};
use crate::plan::{FieldChange, ManagedField, TargetUser, UserFields, UserState};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// How users' roles and groups' names are written for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub role_attribute: RoleAttribute,
    pub role_values: RoleValues,
    pub group_labels: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            role_attribute: RoleAttribute::Roles,
            role_values: RoleValues::default(),
            group_labels: false,
        }
    }
}

impl Shape {
    /// The `displayName` of a synced group (R2: labelled only when configured).
    pub fn group_display_name(&self, role: Role, name: &str) -> String {
        if self.group_labels {
            GroupKind::synced(role).label(name)
        } else {
            name.to_owned()
        }
    }

    /// The `displayName` of a group converted to a system group (R12).
    pub fn system_group_display_name(&self, name: &str) -> String {
        if self.group_labels {
            GroupKind::System.label(name)
        } else {
            name.to_owned()
        }
    }

    fn role_attribute_name(&self) -> &'static str {
        match self.role_attribute {
            RoleAttribute::Roles => "roles",
            RoleAttribute::UserType => "userType",
        }
    }

    fn role_value(&self, role: Role) -> Value {
        let value = self.role_values.value(role);
        match self.role_attribute {
            RoleAttribute::Roles => json!([{ "value": value, "primary": true }]),
            RoleAttribute::UserType => json!(value),
        }
    }
}

/// What a change to a user sends: everything (adopting), the changed fields (R5) with role and
/// status (R15), or the status alone (R9).
#[derive(Debug, Clone, Copy)]
pub enum UserEdit<'a> {
    Adopt {
        entra_id: &'a EntraObjectId,
        state: &'a UserState,
    },
    Update {
        changes: &'a [FieldChange],
        state: &'a UserState,
    },
    Status(UserStatus),
}

impl UserEdit<'_> {
    fn touches(&self, field: ManagedField) -> bool {
        match self {
            Self::Adopt { .. } => true,
            Self::Update { changes, .. } => {
                matches!(field, ManagedField::Role | ManagedField::Status)
                    || changes.iter().any(|c| c.field == field)
            }
            Self::Status(_) => field == ManagedField::Status,
        }
    }

    /// Whether the edit rewrites a multi-valued attribute (`emails`, `phoneNumbers`), whose other
    /// entries are kept: the user is read first.
    pub fn needs_current(&self) -> bool {
        self.touches(ManagedField::Email) || self.touches(ManagedField::Phone)
    }

    fn state(&self) -> Option<&UserState> {
        match self {
            Self::Adopt { state, .. } | Self::Update { state, .. } => Some(state),
            Self::Status(_) => None,
        }
    }

    fn status(&self) -> UserStatus {
        match self {
            Self::Adopt { state, .. } | Self::Update { state, .. } => state.status,
            Self::Status(status) => *status,
        }
    }
}

/// SCIM has no archived users: active is `true`, inactive and archived are `false`.
pub fn active_value(status: UserStatus) -> bool {
    status == UserStatus::Active
}

/// The `POST /Users` body for a new synced user.
pub fn user_resource(shape: &Shape, entra_id: &EntraObjectId, state: &UserState) -> Value {
    let fields = &state.fields;
    let mut user = Map::new();
    user.insert("schemas".into(), json!([USER_SCHEMA]));
    user.insert("externalId".into(), json!(entra_id.to_string()));
    user.insert("userName".into(), json!(fields.email.as_str()));
    user.insert("name".into(), name_value(fields));
    user.insert("displayName".into(), json!(display_name(fields)));
    user.insert("emails".into(), emails_value(&fields.email, None));
    if let Some(phones) = phones_value(fields.phone.as_deref(), None) {
        user.insert("phoneNumbers".into(), phones);
    }
    if let Some(title) = non_blank(fields.job_title.as_deref()) {
        user.insert("title".into(), json!(title));
    }
    user.insert("active".into(), json!(active_value(state.status)));
    user.insert(
        shape.role_attribute_name().into(),
        shape.role_value(state.role),
    );
    Value::Object(user)
}

/// The RFC 7644 §3.5.2 PATCH body for `edit`. `current` is the user as last read (needed when
/// [`UserEdit::needs_current`]): other emails and phone numbers are kept, and attributes it
/// lacks are not removed.
pub fn user_patch(shape: &Shape, edit: UserEdit<'_>, current: Option<&Value>) -> Value {
    let mut ops = Vec::new();
    let replace = |path: &str, value: Value| json!({"op": "replace", "path": path, "value": value});
    let remove = |path: &str| json!({"op": "remove", "path": path});
    let has = |name: &str| current.is_none_or(|c| !field(c, name).is_null());
    if let Some(state) = edit.state() {
        let fields = &state.fields;
        if let UserEdit::Adopt { entra_id, .. } = edit {
            ops.push(replace("externalId", json!(entra_id.to_string())));
        }
        if edit.touches(ManagedField::Email) {
            ops.push(replace("userName", json!(fields.email.as_str())));
            ops.push(replace("emails", emails_value(&fields.email, current)));
        }
        if edit.touches(ManagedField::FirstName) {
            ops.push(replace("name.givenName", json!(fields.first_name)));
        }
        if edit.touches(ManagedField::LastName) {
            match non_blank(Some(&fields.last_name)) {
                Some(last) => ops.push(replace("name.familyName", json!(last))),
                None if has("name") => ops.push(remove("name.familyName")),
                None => {}
            }
        }
        if edit.touches(ManagedField::FirstName) || edit.touches(ManagedField::LastName) {
            ops.push(replace("displayName", json!(display_name(fields))));
        }
        if edit.touches(ManagedField::Phone) {
            match phones_value(fields.phone.as_deref(), current) {
                Some(phones) => ops.push(replace("phoneNumbers", phones)),
                None if has("phoneNumbers") => ops.push(remove("phoneNumbers")),
                None => {}
            }
        }
        if edit.touches(ManagedField::JobTitle) {
            match non_blank(fields.job_title.as_deref()) {
                Some(title) => ops.push(replace("title", json!(title))),
                None if has("title") => ops.push(remove("title")),
                None => {}
            }
        }
        ops.push(replace(
            shape.role_attribute_name(),
            shape.role_value(state.role),
        ));
    }
    ops.push(replace("active", json!(active_value(edit.status()))));
    patch(ops)
}

/// The RFC 7644 §3.5.1 PUT body for `edit`, for servers without PATCH: `current` with the
/// managed attributes set and the server's read-only ones (`id`, `meta`) left out.
pub fn user_replacement(shape: &Shape, edit: UserEdit<'_>, current: &Value) -> Value {
    let mut user = current.as_object().cloned().unwrap_or_default();
    user.remove("id");
    user.remove("meta");
    user.insert("schemas".into(), schemas_of(current, USER_SCHEMA));
    let mut set = |name: &str, value: Option<Value>| match value {
        Some(value) => {
            user.insert(name.to_owned(), value);
        }
        None => {
            user.remove(name);
        }
    };
    if let Some(state) = edit.state() {
        let fields = &state.fields;
        if let UserEdit::Adopt { entra_id, .. } = edit {
            set("externalId", Some(json!(entra_id.to_string())));
        }
        if edit.touches(ManagedField::Email) {
            set("userName", Some(json!(fields.email.as_str())));
            set("emails", Some(emails_value(&fields.email, Some(current))));
        }
        if edit.touches(ManagedField::FirstName) || edit.touches(ManagedField::LastName) {
            let mut name = field(current, "name")
                .as_object()
                .cloned()
                .unwrap_or_default();
            name.insert("givenName".into(), json!(fields.first_name));
            match non_blank(Some(&fields.last_name)) {
                Some(last) => name.insert("familyName".into(), json!(last)),
                None => name.remove("familyName"),
            };
            name.remove("formatted");
            set("name", Some(Value::Object(name)));
            set("displayName", Some(json!(display_name(fields))));
        }
        if edit.touches(ManagedField::Phone) {
            set(
                "phoneNumbers",
                phones_value(fields.phone.as_deref(), Some(current)),
            );
        }
        if edit.touches(ManagedField::JobTitle) {
            set(
                "title",
                non_blank(fields.job_title.as_deref()).map(|t| json!(t)),
            );
        }
        set(
            shape.role_attribute_name(),
            Some(shape.role_value(state.role)),
        );
    }
    set("active", Some(json!(active_value(edit.status()))));
    Value::Object(user)
}

/// The `POST /Groups` body for a new synced group: `externalId` is the Entra group's ID.
pub fn group_resource(display_name: &str, entra_id: &EntraObjectId) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "displayName": display_name,
        "externalId": entra_id.to_string(),
    })
}

/// Renames a group.
pub fn group_rename_patch(display_name: &str) -> Value {
    patch(vec![
        json!({"op": "replace", "path": "displayName", "value": display_name}),
    ])
}

/// R12/R13 in SCIM terms: SCIM has no group types, so a system group is a group renamed to its
/// system name whose `externalId` (the Entra group's ID, the link dirsync manages it by) is
/// cleared. Its members are removed separately by the planner's operations.
pub fn group_convert_patch(display_name: &str) -> Value {
    patch(vec![
        json!({"op": "replace", "path": "displayName", "value": display_name}),
        json!({"op": "remove", "path": "externalId"}),
    ])
}

/// The PUT body equivalent of [`group_rename_patch`] / [`group_convert_patch`], for servers
/// without PATCH.
pub fn group_replacement(current: &Value, display_name: &str, clear_external_id: bool) -> Value {
    let mut group = current.as_object().cloned().unwrap_or_default();
    group.remove("id");
    group.remove("meta");
    group.insert("schemas".into(), schemas_of(current, GROUP_SCHEMA));
    group.insert("displayName".into(), json!(display_name));
    if clear_external_id {
        group.remove("externalId");
    }
    Value::Object(group)
}

/// Adds users to a group's `members`.
pub fn members_add_patch(users: &[TargetUserId]) -> Value {
    let members: Vec<Value> = users.iter().map(|u| json!({"value": u.as_str()})).collect();
    patch(vec![
        json!({"op": "add", "path": "members", "value": members}),
    ])
}

/// Removes users from a group's `members` with a value filter path (RFC 7644 §3.5.2.2).
pub fn members_remove_patch(users: &[TargetUserId]) -> Value {
    let filter = users
        .iter()
        .map(|u| format!("value eq {}", filter_string(u.as_str())))
        .collect::<Vec<_>>()
        .join(" or ");
    patch(vec![
        json!({"op": "remove", "path": format!("members[{filter}]")}),
    ])
}

/// A group's `members` with `add` users added and `remove` users removed, for a PUT.
pub fn group_with_members(current: &Value, add: &[TargetUserId], remove: &[TargetUserId]) -> Value {
    let mut group = current.as_object().cloned().unwrap_or_default();
    group.remove("id");
    group.remove("meta");
    group.insert("schemas".into(), schemas_of(current, GROUP_SCHEMA));
    let mut members: Vec<Value> = member_ids(current)
        .into_iter()
        .filter(|id| !remove.iter().any(|r| r.as_str() == id))
        .map(|id| json!({ "value": id }))
        .collect();
    for user in add {
        if !members.iter().any(|m| m["value"] == user.as_str()) {
            members.push(json!({ "value": user.as_str() }));
        }
    }
    group.insert("members".into(), Value::Array(members));
    Value::Object(group)
}

/// The IDs in a group's `members`.
pub fn member_ids(group: &Value) -> Vec<String> {
    one_or_many(field(group, "members"))
        .into_iter()
        .filter_map(|m| flex_string(field(m, "value")))
        .collect()
}

fn patch(operations: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": operations })
}

/// A string literal for a SCIM filter (RFC 7644 §3.4.2.2 uses JSON strings): quotes and
/// backslashes escaped.
pub fn filter_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

/// `userName eq "a" or userName eq "b"`: one filter for a chunk of emails.
pub fn user_name_filter(emails: &[Email]) -> String {
    emails
        .iter()
        .map(|e| format!("userName eq {}", filter_string(e.as_str())))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn schemas_of(current: &Value, core: &str) -> Value {
    match field(current, "schemas") {
        Value::Array(list) if !list.is_empty() => Value::Array(list.clone()),
        _ => json!([core]),
    }
}

fn name_value(fields: &UserFields) -> Value {
    let mut name = Map::new();
    name.insert("givenName".into(), json!(fields.first_name));
    if let Some(last) = non_blank(Some(&fields.last_name)) {
        name.insert("familyName".into(), json!(last));
    }
    Value::Object(name)
}

fn display_name(fields: &UserFields) -> String {
    format!("{} {}", fields.first_name, fields.last_name)
        .trim()
        .to_owned()
}

/// `emails` with `email` as the primary work address; the other addresses of `current` stay
/// (not primary), any previous work address goes.
fn emails_value(email: &Email, current: Option<&Value>) -> Value {
    let mut emails = vec![json!({"value": email.as_str(), "type": "work", "primary": true})];
    for other in current
        .map(|c| one_or_many(field(c, "emails")))
        .unwrap_or_default()
    {
        let value = flex_string(field(other, "value")).unwrap_or_default();
        let is_work = flex_string(field(other, "type")).as_deref() == Some("work");
        if is_work || value.is_empty() || value.eq_ignore_ascii_case(email.as_str()) {
            continue;
        }
        let mut kept = other.as_object().cloned().unwrap_or_default();
        kept.remove("primary");
        emails.push(Value::Object(kept));
    }
    Value::Array(emails)
}

/// `phoneNumbers` with `phone` as the work number and the other numbers of `current` kept;
/// `None` when nothing is left.
fn phones_value(phone: Option<&str>, current: Option<&Value>) -> Option<Value> {
    let mut phones: Vec<Value> = non_blank(phone)
        .map(|p| json!({"value": p, "type": "work"}))
        .into_iter()
        .collect();
    for other in current
        .map(|c| one_or_many(field(c, "phoneNumbers")))
        .unwrap_or_default()
    {
        if flex_string(field(other, "type")).as_deref() != Some("work") {
            phones.push(other.clone());
        }
    }
    (!phones.is_empty()).then_some(Value::Array(phones))
}

fn non_blank(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// A user resource as the planner sees target users: the email is the `userName` (or, failing
/// that, the primary email); resources without an ID or a valid email are skipped.
pub fn parse_user(resource: &Value) -> Option<TargetUser> {
    let id = TargetUserId::new(flex_string(field(resource, "id"))?).ok()?;
    let emails = one_or_many(field(resource, "emails"));
    let primary_email = emails
        .iter()
        .find(|e| flex_bool(field(e, "primary")) == Some(true))
        .or(emails.first())
        .and_then(|e| flex_string(field(e, "value")));
    let email = flex_string(field(resource, "userName"))
        .and_then(|u| Email::parse(&u).ok())
        .or_else(|| primary_email.and_then(|e| Email::parse(&e).ok()))?;
    let name = field(resource, "name");
    let phones = one_or_many(field(resource, "phoneNumbers"));
    let phone = phones
        .iter()
        .find(|p| flex_string(field(p, "type")).as_deref() == Some("work"))
        .or(phones.first())
        .and_then(|p| flex_string(field(p, "value")));
    let active = flex_bool(field(resource, "active")).unwrap_or(true);
    Some(TargetUser {
        id,
        fields: UserFields {
            email,
            first_name: flex_string(field(name, "givenName"))
                .unwrap_or_default()
                .into(),
            last_name: flex_string(field(name, "familyName"))
                .unwrap_or_default()
                .into(),
            phone: phone.map(Into::into),
            job_title: flex_string(field(resource, "title")).map(Into::into),
        },
        status: if active {
            UserStatus::Active
        } else {
            UserStatus::Inactive
        },
    })
}

/// What a server says it can do in `/ServiceProviderConfig` (RFC 7643 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub patch: bool,
    pub filter: bool,
    pub filter_max_results: Option<usize>,
    pub etag: bool,
    pub bulk_max_operations: Option<usize>,
}

impl Default for Capabilities {
    /// What is assumed of a server that does not publish its configuration: PATCH and filters
    /// (what SPEC.md asks of a SCIM target), no ETags, no stated limits.
    fn default() -> Self {
        Self {
            patch: true,
            filter: true,
            filter_max_results: None,
            etag: false,
            bulk_max_operations: None,
        }
    }
}

impl Capabilities {
    pub fn parse(config: &Value) -> Self {
        let assumed = Self::default();
        let supported = |name: &str, default: bool| {
            flex_bool(field(field(config, name), "supported")).unwrap_or(default)
        };
        let limit = |name: &str, sub: &str| {
            flex_u64(field(field(config, name), sub))
                .filter(|n| *n > 0)
                .and_then(|n| usize::try_from(n).ok())
        };
        let bulk = supported("bulk", false);
        Self {
            patch: supported("patch", assumed.patch),
            filter: supported("filter", assumed.filter),
            filter_max_results: limit("filter", "maxResults"),
            etag: supported("etag", assumed.etag),
            bulk_max_operations: if bulk {
                limit("bulk", "maxOperations")
            } else {
                None
            },
        }
    }

    /// Members per PATCH: the configured size, lowered to what the server advertises for bulk
    /// operations and filter results (a member-removal filter is a filter too).
    pub fn member_batch_size(&self, configured: usize) -> usize {
        [
            Some(configured),
            self.bulk_max_operations,
            self.filter_max_results,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(configured)
        .max(1)
    }

    /// Emails per `or` filter, lowered to the server's `maxResults`.
    pub fn lookup_batch_size(&self, configured: usize) -> usize {
        self.filter_max_results
            .map_or(configured, |max| configured.min(max))
            .max(1)
    }

    /// Resources per page when listing, lowered to the server's `maxResults`.
    pub fn page_size(&self, configured: usize) -> usize {
        self.lookup_batch_size(configured)
    }
}

/// A value that should be a boolean but may arrive as `"true"` / `"False"`.
pub fn flex_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A multi-valued attribute that may arrive as a list, a single element or nothing.
pub fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The resources of a `ListResponse` and its `totalResults` (when given).
pub fn list_page(body: &Value) -> (Vec<&Value>, Option<u64>) {
    (
        one_or_many(field(body, "Resources")),
        flex_u64(field(body, "totalResults")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(phone: Option<&str>, title: Option<&str>) -> UserState {
        UserState {
            fields: UserFields {
                email: Email::parse("Jane.Doe@contoso.com").unwrap(),
                first_name: "Jane".into(),
                last_name: "Doe".into(),
                phone: phone.map(Into::into),
                job_title: title.map(Into::into),
            },
            role: Role::Basic,
            status: UserStatus::Archived,
        }
    }

    fn entra() -> EntraObjectId {
        EntraObjectId::parse("8f3e2c1a-0b4d-4e5f-9a6b-7c8d9e0f1a2b").unwrap()
    }

    #[test]
    fn filter_values_escape_quotes_and_backslashes() {
        assert_eq!(filter_string(r#"a"b\c"#), r#""a\"b\\c""#);
        let emails = [
            Email::parse("a@x.com").unwrap(),
            Email::parse(r#"o"neil@x.com"#).unwrap(),
        ];
        assert_eq!(
            user_name_filter(&emails),
            r#"userName eq "a@x.com" or userName eq "o\"neil@x.com""#
        );
    }

    #[test]
    fn a_new_user_carries_every_managed_attribute_and_archived_becomes_inactive() {
        let user = user_resource(&Shape::default(), &entra(), &state(Some("+1 555"), None));
        assert_eq!(user["userName"], "Jane.Doe@contoso.com");
        assert_eq!(user["externalId"], entra().to_string());
        assert_eq!(
            user["name"],
            json!({"givenName": "Jane", "familyName": "Doe"})
        );
        assert_eq!(
            user["emails"],
            json!([{"value": "Jane.Doe@contoso.com", "type": "work", "primary": true}])
        );
        assert_eq!(
            user["phoneNumbers"],
            json!([{"value": "+1 555", "type": "work"}])
        );
        assert!(user.get("title").is_none());
        assert_eq!(user["active"], false);
        assert_eq!(user["roles"], json!([{"value": "basic", "primary": true}]));
    }

    #[test]
    fn the_role_goes_to_user_type_when_configured() {
        let shape = Shape {
            role_attribute: RoleAttribute::UserType,
            ..Shape::default()
        };
        let user = user_resource(&shape, &entra(), &state(None, None));
        assert_eq!(user["userType"], "basic");
        assert!(user.get("roles").is_none());
    }

    #[test]
    fn an_update_patches_only_the_changed_fields_with_role_and_status() {
        let state = state(None, Some("CTO"));
        let changes = [FieldChange {
            field: ManagedField::JobTitle,
            old: Some("CEO".into()),
            new: Some("CTO".into()),
        }];
        let body = user_patch(
            &Shape::default(),
            UserEdit::Update {
                changes: &changes,
                state: &state,
            },
            None,
        );
        let paths: Vec<&str> = body["Operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["title", "roles", "active"]);
    }

    #[test]
    fn a_changed_phone_keeps_the_users_other_numbers() {
        let state = state(Some("+2"), None);
        let changes = [FieldChange {
            field: ManagedField::Phone,
            old: Some("+1".into()),
            new: Some("+2".into()),
        }];
        let current = json!({"phoneNumbers": [{"value": "+1", "type": "work"}, {"value": "+9", "type": "mobile"}]});
        let body = user_patch(
            &Shape::default(),
            UserEdit::Update {
                changes: &changes,
                state: &state,
            },
            Some(&current),
        );
        assert_eq!(
            body["Operations"][0],
            json!({"op": "replace", "path": "phoneNumbers", "value": [
                {"value": "+2", "type": "work"}, {"value": "+9", "type": "mobile"}]})
        );
    }

    #[test]
    fn removing_members_uses_a_value_filter_path() {
        let users = [
            TargetUserId::new("a1").unwrap(),
            TargetUserId::new("b\"2").unwrap(),
        ];
        assert_eq!(
            members_remove_patch(&users)["Operations"][0]["path"],
            r#"members[value eq "a1" or value eq "b\"2"]"#
        );
    }

    #[test]
    fn users_parse_tolerantly() {
        let user = parse_user(&json!({
            "id": 42, "userName": "JANE@contoso.com", "active": "False",
            "phoneNumbers": {"value": "+1", "type": "work"}
        }))
        .unwrap();
        assert_eq!(user.id.as_str(), "42");
        assert_eq!(user.fields.email, Email::parse("jane@contoso.com").unwrap());
        assert_eq!(user.fields.first_name, "");
        assert_eq!(user.fields.phone.as_deref(), Some("+1"));
        assert_eq!(user.status, UserStatus::Inactive);
        assert!(parse_user(&json!({"id": "1", "userName": "not-an-email"})).is_none());
    }

    #[test]
    fn advertised_limits_lower_the_batches_and_defaults_fill_the_gaps() {
        let caps = Capabilities::parse(&json!({
            "patch": {"supported": "true"},
            "bulk": {"supported": true, "maxOperations": "20"},
            "filter": {"supported": true, "maxResults": 200},
            "etag": {"supported": false},
        }));
        assert!(caps.patch && caps.filter && !caps.etag);
        assert_eq!(caps.member_batch_size(100), 20);
        assert_eq!(caps.lookup_batch_size(500), 200);
        let none = Capabilities::parse(&json!({}));
        assert_eq!(none, Capabilities::default());
        assert_eq!(none.member_batch_size(100), 100);
    }
}
