//! What the HighQ emulator holds (users, groups, OAuth2 grants) and the documented rules it
//! enforces on every change, independent of HTTP.
//!
//! Error refs 110, 122, 360, 361 and 394 are HighQ's (SPEC.md); the others (120 group not found,
//! 121 email in use, 301–306 field validation) are the emulator's own choice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::faults::{Fault, RateLimit};
use super::rate_limit::RateLimitLog;
use crate::domain::{GroupKind, Role, UserStatus};
use crate::emulator::{Latency, RequestCounts};

/// The longest text field HighQ accepts.
pub const MAX_FIELD_CHARS: usize = 512;

/// An API failure as the emulator answers it: `{"error":{"summary","ref","link"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: u16,
    pub code: Option<u32>,
    pub summary: String,
}

impl ApiFailure {
    fn new(status: u16, code: u32, summary: impl Into<String>) -> Self {
        Self {
            status,
            code: Some(code),
            summary: summary.into(),
        }
    }

    fn user_not_found(key: &str) -> Self {
        Self::new(404, 110, format!("User {key} not found"))
    }

    fn group_not_found(id: u64) -> Self {
        Self::new(404, 120, format!("Group {id} not found"))
    }
}

type Answer = Result<Value, ApiFailure>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmuUser {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub job_title: String,
    pub status: UserStatus,
    pub role: Role,
    /// The Entra object ID of a synced user; `None` for users made by hand in HighQ.
    pub external_id: Option<String>,
    pub source_type: Option<String>,
}

impl EmuUser {
    /// Made by hand in HighQ, not by dirsync.
    pub fn is_manual(&self) -> bool {
        self.external_id.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmuGroup {
    pub id: u64,
    pub name: String,
    pub description: String,
    /// The Entra group ID of a synced group; `None` for groups made by hand in HighQ.
    pub guid: Option<String>,
    pub source_type: Option<String>,
    pub kind: GroupKind,
    pub members: BTreeSet<u64>,
}

impl EmuGroup {
    pub fn is_manual(&self) -> bool {
        self.guid.is_none()
    }
}

/// The OAuth2 side: one client, one live refresh token (rotated on every use), any number of
/// unexpired access tokens.
#[derive(Debug)]
pub struct OAuth {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub access_ttl: Duration,
    pub access_tokens: HashMap<String, Instant>,
    pub codes: HashSet<String>,
    /// Refresh tokens handed out and since rotated away: using one is `invalid_grant`.
    pub retired: HashSet<String>,
    pub grants: u32,
}

/// Everything the emulator knows; tests read and change it through the handle.
///
/// Every API request costs the same whatever the number of users and groups held: users are
/// indexed by lowercase email, groups by lowercase name, and user listings by status. The
/// indexes follow the API's own changes; a change made to `users` or `groups` directly (through
/// the handle's `with`) marks them stale, and they are rebuilt once, at the next API request.
#[derive(Debug)]
pub struct HighQState {
    pub users: BTreeMap<u64, EmuUser>,
    pub groups: BTreeMap<u64, EmuGroup>,
    /// Added to every request (the token endpoint's too).
    pub latency: Latency,
    /// Requests served, by kind (`highq.create_user` …), the token endpoint's included.
    pub requests: RequestCounts,
    pub oauth: OAuth,
    pub faults: Vec<Fault>,
    pub rate_limit: Option<RateLimit>,
    /// API requests received (the token endpoint excluded).
    pub api_requests: u64,
    /// 429 answers sent.
    pub rate_limited: u64,
    /// Every successful change, in order (`"PUT /users/3 firstname,status"`).
    pub writes: Vec<String>,
    /// The most users `GET /users` returns per page, whatever `limit` asks.
    pub max_page_size: usize,
    pub(super) limited_until: Option<u64>,
    /// What the window limit let through (`rate_limit.rs`).
    pub rate_limit_log: RateLimitLog,
    next_id: u64,
    indexes: Indexes,
}

/// Look-ups that would otherwise scan every user or group.
#[derive(Debug, Default)]
struct Indexes {
    /// Set when the state may have been changed behind the API's back.
    stale: bool,
    /// `users.len()` and `groups.len()` when the indexes were last right.
    users: usize,
    groups: usize,
    /// Lowercase email → the IDs with it, lowest first (more than one only for users made by
    /// hand: the API refuses a taken address).
    email: MultiIndex,
    /// Lowercase group name → the IDs with it, lowest first.
    name: MultiIndex,
    /// `GET /users` listings, by status filter, in ID order; dropped at any user change.
    listings: HashMap<Option<UserStatus>, Vec<u64>>,
}

/// A lowercase key → IDs map, lowest ID first.
#[derive(Debug, Default)]
struct MultiIndex(HashMap<String, Vec<u64>>);

impl MultiIndex {
    fn first(&self, key: &str) -> Option<u64> {
        self.0
            .get(&key.to_ascii_lowercase())
            .and_then(|ids| ids.first().copied())
    }

    fn insert(&mut self, key: &str, id: u64) {
        let ids = self.0.entry(key.to_ascii_lowercase()).or_default();
        if let Err(at) = ids.binary_search(&id) {
            ids.insert(at, id);
        }
    }

    fn remove(&mut self, key: &str, id: u64) {
        let key = key.to_ascii_lowercase();
        if let Some(ids) = self.0.get_mut(&key) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.0.remove(&key);
            }
        }
    }
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl HighQState {
    pub fn new(
        client_id: &str,
        client_secret: &str,
        refresh_token: Option<String>,
        access_ttl: Duration,
    ) -> Self {
        Self {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            latency: Latency::NONE,
            requests: RequestCounts::default(),
            oauth: OAuth {
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
                refresh_token: refresh_token.unwrap_or_else(new_token),
                access_ttl,
                access_tokens: HashMap::new(),
                codes: HashSet::new(),
                retired: HashSet::new(),
                grants: 0,
            },
            faults: Vec::new(),
            rate_limit: None,
            api_requests: 0,
            rate_limited: 0,
            writes: Vec::new(),
            max_page_size: 100,
            limited_until: None,
            rate_limit_log: RateLimitLog::default(),
            next_id: 100,
            indexes: Indexes::default(),
        }
    }

    /// Says that `users` or `groups` may have been changed directly (the handle's `with` does).
    pub fn mark_changed(&mut self) {
        self.indexes.stale = true;
    }

    fn indexes_fresh(&self) -> bool {
        !self.indexes.stale
            && self.indexes.users == self.users.len()
            && self.indexes.groups == self.groups.len()
    }

    /// Rebuilds the indexes if anything changed behind the API's back: O(users + groups) once,
    /// then every look-up is constant time again.
    pub(super) fn refresh_indexes(&mut self) {
        if self.indexes_fresh() {
            return;
        }
        let mut indexes = Indexes {
            users: self.users.len(),
            groups: self.groups.len(),
            ..Indexes::default()
        };
        for user in self.users.values() {
            indexes.email.insert(&user.email, user.id);
        }
        for group in self.groups.values() {
            indexes.name.insert(&group.name, group.id);
        }
        self.indexes = indexes;
    }

    /// User `id` was added or changed; its email was `old` (if it had one before).
    fn index_user(&mut self, id: u64, old: Option<&str>) {
        self.indexes.listings.clear();
        if let Some(old) = old {
            self.indexes.email.remove(old, id);
        }
        self.indexes.email.insert(&self.users[&id].email, id);
        self.indexes.users = self.users.len();
    }

    /// Group `id` was added or renamed; its name was `old` (if it had one before).
    fn index_group(&mut self, id: u64, old: Option<&str>) {
        if let Some(old) = old {
            self.indexes.name.remove(old, id);
        }
        self.indexes.name.insert(&self.groups[&id].name, id);
        self.indexes.groups = self.groups.len();
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    // ----------------------------------------------------------------------------------------
    // Admin actions (the handle), outside the API
    // ----------------------------------------------------------------------------------------

    /// A user made by hand in HighQ.
    pub fn add_manual_user(
        &mut self,
        email: &str,
        first_name: &str,
        last_name: &str,
        status: UserStatus,
    ) -> u64 {
        self.refresh_indexes();
        let id = self.next_id();
        self.users.insert(
            id,
            EmuUser {
                id,
                email: email.to_owned(),
                first_name: first_name.to_owned(),
                last_name: last_name.to_owned(),
                phone: String::new(),
                job_title: String::new(),
                status,
                role: Role::Internal,
                external_id: None,
                source_type: None,
            },
        );
        self.index_user(id, None);
        id
    }

    /// A (system) group made by hand in HighQ.
    pub fn add_manual_group(&mut self, name: &str, members: impl IntoIterator<Item = u64>) -> u64 {
        self.refresh_indexes();
        let id = self.next_id();
        self.groups.insert(
            id,
            EmuGroup {
                id,
                name: name.to_owned(),
                description: String::new(),
                guid: None,
                source_type: None,
                kind: GroupKind::System,
                members: members.into_iter().collect(),
            },
        );
        self.index_group(id, None);
        id
    }

    pub fn issue_authorization_code(&mut self) -> String {
        let code = new_token();
        self.oauth.codes.insert(code.clone());
        code
    }

    /// Constant time while the indexes are fresh (always, between API requests); a scan
    /// otherwise.
    pub fn user_by_email(&self, email: &str) -> Option<&EmuUser> {
        if self.indexes_fresh() {
            let found = self
                .indexes
                .email
                .first(email)
                .and_then(|id| self.users.get(&id));
            if found.is_none_or(|u| u.email.eq_ignore_ascii_case(email)) {
                return found;
            }
        }
        self.users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    pub fn group_by_name(&self, name: &str) -> Option<&EmuGroup> {
        if self.indexes_fresh() {
            let found = self
                .indexes
                .name
                .first(name)
                .and_then(|id| self.groups.get(&id));
            if found.is_none_or(|g| g.name.eq_ignore_ascii_case(name)) {
                return found;
            }
        }
        self.groups
            .values()
            .find(|g| g.name.eq_ignore_ascii_case(name))
    }

    // ----------------------------------------------------------------------------------------
    // OAuth2
    // ----------------------------------------------------------------------------------------

    /// `POST /api/oauth2/token`: `Ok(body)` or `Err((status, body))` in OAuth2's error shape.
    pub fn token(&mut self, form: &HashMap<String, String>) -> Result<Value, (u16, Value)> {
        let oauth_error = |status: u16, error: &str, description: &str| {
            Err((
                status,
                json!({"error": error, "error_description": description}),
            ))
        };
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if get("client_id") != self.oauth.client_id
            || get("client_secret") != self.oauth.client_secret
        {
            return oauth_error(
                401,
                "invalid_client",
                "Unknown client or wrong client secret",
            );
        }
        match get("grant_type") {
            "refresh_token" => {
                let presented = get("refresh_token");
                if presented != self.oauth.refresh_token {
                    let why = if self.oauth.retired.contains(presented) {
                        "The refresh token was already used and has been replaced"
                    } else {
                        "Unknown refresh token"
                    };
                    return oauth_error(400, "invalid_grant", why);
                }
            }
            "authorization_code" => {
                if !self.oauth.codes.remove(get("code")) {
                    return oauth_error(400, "invalid_grant", "Unknown or used authorization code");
                }
            }
            other => {
                return oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!("grant_type {other:?}"),
                );
            }
        }
        let old = std::mem::replace(&mut self.oauth.refresh_token, new_token());
        self.oauth.retired.insert(old);
        let access = new_token();
        self.oauth
            .access_tokens
            .insert(access.clone(), Instant::now() + self.oauth.access_ttl);
        self.oauth.grants += 1;
        Ok(json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.oauth.access_ttl.as_secs().to_string(),
            "refresh_token": self.oauth.refresh_token,
            "refresh_token_expires_in": 7_776_000,
        }))
    }

    pub fn access_token_valid(&self, token: &str) -> bool {
        self.oauth
            .access_tokens
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    /// Makes every access token expire now, so the next call must refresh.
    pub fn expire_access_tokens(&mut self) {
        self.oauth.access_tokens.clear();
    }

    // ----------------------------------------------------------------------------------------
    // Users
    // ----------------------------------------------------------------------------------------

    fn user_json(user: &EmuUser) -> Value {
        let status = match user.status {
            UserStatus::Active => "Active",
            UserStatus::Inactive => "Inactive",
            UserStatus::Archived => "Archived",
        };
        json!({
            "userid": user.id.to_string(),
            "email": user.email,
            "firstname": user.first_name,
            "lastname": user.last_name,
            "phone": user.phone,
            "jobtitle": user.job_title,
            "status": status,
            "role": user.role.as_str(),
            "externalid": user.external_id.clone().unwrap_or_default(),
            "sourcetype": user.source_type.clone().unwrap_or_default(),
        })
    }

    /// `GET /users/{key}`: by email with `type=email`, else by ID.
    pub fn get_user(&self, key: &str, by_email: bool) -> Answer {
        let user = if by_email {
            self.user_by_email(key)
        } else {
            key.parse().ok().and_then(|id: u64| self.users.get(&id))
        };
        user.map(Self::user_json)
            .ok_or_else(|| ApiFailure::user_not_found(key))
    }

    /// `GET /users?status=&limit=&offset=`; the page size is capped at `max_page_size`, and a
    /// page of one is a bare object, as HighQ does.
    pub fn list_users(
        &mut self,
        status: Option<&str>,
        limit: Option<usize>,
        offset: usize,
    ) -> Answer {
        let status = match status.filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.parse::<UserStatus>()
                    .map_err(|_| ApiFailure::new(400, 304, format!("Invalid status {s:?}")))?,
            ),
            None => None,
        };
        let limit = limit.unwrap_or(self.max_page_size).min(self.max_page_size);
        self.refresh_indexes();
        let users = &self.users;
        let listing = self.indexes.listings.entry(status).or_insert_with(|| {
            users
                .values()
                .filter(|u| status.is_none_or(|s| u.status == s))
                .map(|u| u.id)
                .collect()
        });
        let page: Vec<Value> = listing
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|id| users.get(id))
            .map(Self::user_json)
            .collect();
        Ok(json!({ "user": list_quirk(page) }))
    }

    pub fn create_user(&mut self, body: &Value) -> Answer {
        self.refresh_indexes();
        let email = required_text(body, "email")?;
        check_email(&email)?;
        if self.user_by_email(&email).is_some() {
            return Err(ApiFailure::new(
                409,
                121,
                format!("Email {email} is already in use"),
            ));
        }
        let mut user = EmuUser {
            id: 0,
            email,
            first_name: required_text(body, "firstname")?,
            last_name: required_text(body, "lastname")?,
            phone: String::new(),
            job_title: String::new(),
            status: UserStatus::Active,
            role: Role::Internal,
            external_id: None,
            source_type: None,
        };
        apply_user_fields(&mut user, body)?;
        user.id = self.next_id();
        let answer = json!({
            "userid": user.id,
            "firstname": user.first_name,
            "lastname": user.last_name,
            "link": format!("/users/{}", user.id),
        });
        self.writes.push(format!("POST /users {}", user.email));
        let id = user.id;
        self.users.insert(id, user);
        self.index_user(id, None);
        Ok(answer)
    }

    pub fn update_user(&mut self, key: &str, body: &Value) -> Answer {
        self.refresh_indexes();
        let id: u64 = key.parse().map_err(|_| ApiFailure::user_not_found(key))?;
        let mut user = self
            .users
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiFailure::user_not_found(key))?;
        if let Some(email) = text(body, "email") {
            check_email(&email)?;
            if self.user_by_email(&email).is_some_and(|u| u.id != id) {
                return Err(ApiFailure::new(
                    409,
                    121,
                    format!("Email {email} is already in use"),
                ));
            }
            user.email = email;
        }
        for required in ["firstname", "lastname"] {
            if body.get(required).is_some() && text(body, required).is_none_or(|t| t.is_empty()) {
                return Err(ApiFailure::new(
                    400,
                    302,
                    format!("{required} must not be empty"),
                ));
            }
        }
        if let Some(first) = text(body, "firstname") {
            user.first_name = first;
        }
        if let Some(last) = text(body, "lastname") {
            user.last_name = last;
        }
        check_lengths(&user)?;
        apply_user_fields(&mut user, body)?;
        let mut fields: Vec<&str> = body
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        fields.sort_unstable();
        self.writes
            .push(format!("PUT /users/{id} {}", fields.join(",")));
        let old = self.users.insert(id, user).map(|u| u.email);
        self.index_user(id, old.as_deref());
        Ok(json!({}))
    }

    // ----------------------------------------------------------------------------------------
    // Groups
    // ----------------------------------------------------------------------------------------

    fn group_json(group: &EmuGroup) -> Value {
        json!({
            "groupid": group.id.to_string(),
            "name": group.name,
            "description": group.description,
            "guid": group.guid.clone().unwrap_or_default(),
            "sourcetype": group.source_type.clone().unwrap_or_default(),
            "type": group_type_text(group.kind),
        })
    }

    /// `GET /groups?type=system|synced` (synced includes basic synced groups).
    pub fn list_groups(&self, group_type: Option<&str>) -> Answer {
        let wanted = |g: &EmuGroup| match group_type.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => true,
            Some("system") => g.kind == GroupKind::System,
            Some("synced") => g.kind != GroupKind::System,
            Some(_) => false,
        };
        let list: Vec<Value> = self
            .groups
            .values()
            .filter(|g| wanted(g))
            .map(Self::group_json)
            .collect();
        Ok(json!({ "group": list_quirk(list) }))
    }

    fn check_group_name(&self, name: &str, except: Option<u64>) -> Result<(), ApiFailure> {
        if name.trim().is_empty() {
            return Err(ApiFailure::new(400, 302, "name must not be empty"));
        }
        if name.chars().count() > MAX_FIELD_CHARS {
            return Err(ApiFailure::new(
                400,
                303,
                "name is longer than 512 characters",
            ));
        }
        match self.group_by_name(name) {
            Some(g) if Some(g.id) != except => Err(ApiFailure::new(
                400,
                122,
                format!("Group name {name:?} already exists"),
            )),
            _ => Ok(()),
        }
    }

    pub fn create_group(&mut self, body: &Value) -> Answer {
        self.refresh_indexes();
        let name = required_text(body, "name")?;
        self.check_group_name(&name, None)?;
        let kind = match text(body, "type") {
            Some(t) => parse_group_type(&t)?,
            None => GroupKind::System,
        };
        let id = self.next_id();
        self.groups.insert(
            id,
            EmuGroup {
                id,
                name: name.clone(),
                description: text(body, "description").unwrap_or_default(),
                guid: text(body, "guid").filter(|g| !g.is_empty()),
                source_type: text(body, "sourcetype"),
                kind,
                members: BTreeSet::new(),
            },
        );
        self.writes.push(format!("POST /groups {name}"));
        self.index_group(id, None);
        Ok(json!({ "groupID": id, "link": format!("/groups/{id}") }))
    }

    /// `PUT /groups/{id}`: name and description (documented) and `type` (undocumented).
    pub fn update_group(&mut self, id: u64, body: &Value) -> Answer {
        self.refresh_indexes();
        let mut group = self
            .groups
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiFailure::group_not_found(id))?;
        if let Some(name) = text(body, "name") {
            self.check_group_name(&name, Some(id))?;
            group.name = name;
        }
        if let Some(description) = text(body, "description") {
            group.description = description;
        }
        if let Some(t) = text(body, "type") {
            group.kind = parse_group_type(&t)?;
        }
        let mut fields: Vec<&str> = body
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        fields.sort_unstable();
        self.writes
            .push(format!("PUT /groups/{id} {}", fields.join(",")));
        let old = self.groups.insert(id, group).map(|g| g.name);
        self.index_group(id, old.as_deref());
        Ok(json!({}))
    }

    /// `POST /groups/{id}/users` with `{"userid": …}`: all or nothing, like HighQ.
    pub fn add_members(&mut self, id: u64, body: &Value) -> Answer {
        if !self.groups.contains_key(&id) {
            return Err(ApiFailure::group_not_found(id));
        }
        let ids = body.get("userid").map(one_or_many).unwrap_or_default();
        if ids.is_empty() {
            return Err(ApiFailure::new(
                400,
                302,
                "userid must list at least one user",
            ));
        }
        let mut users = Vec::new();
        for raw in ids {
            let key = flex_text(raw).unwrap_or_default();
            let user = key
                .parse::<u64>()
                .ok()
                .and_then(|uid| self.users.get(&uid))
                .ok_or_else(|| ApiFailure::user_not_found(&key))?;
            if user.status == UserStatus::Archived {
                return Err(ApiFailure::new(
                    400,
                    394,
                    format!("Archived user {key} cannot be added to a group"),
                ));
            }
            users.push(user.id);
        }
        let group = self.groups.get_mut(&id).expect("checked above");
        group.members.extend(users.iter().copied());
        self.writes
            .push(format!("POST /groups/{id}/users {}", users.len()));
        Ok(json!({ "userid": list_quirk(users.iter().map(|u| json!(u.to_string())).collect()) }))
    }

    pub fn remove_member(&mut self, id: u64, user: &str) -> Answer {
        let uid: u64 = user.parse().map_err(|_| ApiFailure::user_not_found(user))?;
        if !self.users.contains_key(&uid) {
            return Err(ApiFailure::user_not_found(user));
        }
        let group = self
            .groups
            .get_mut(&id)
            .ok_or_else(|| ApiFailure::group_not_found(id))?;
        group.members.remove(&uid);
        self.writes.push(format!("DELETE /groups/{id}/users/{uid}"));
        Ok(Value::Null)
    }

    /// `GET /groups/{id}/users` (undocumented).
    /// A group's members as HighQ lists them (`{"user": [...]}`, a lone member not in a list),
    /// written straight to JSON text under the lock: a 40,000-member group is answered without
    /// a `Value` for each member, so the emulator's other requests, Graph's pages among them in
    /// the e2e bench, do not wait on it (issue 13).
    pub fn list_members(&self, id: u64) -> Result<Vec<u8>, ApiFailure> {
        #[derive(serde::Serialize)]
        struct Member<'a> {
            userid: String,
            email: &'a str,
        }
        #[derive(serde::Serialize)]
        #[serde(untagged)]
        enum OneOrMany<'a> {
            One(Member<'a>),
            Many(Vec<Member<'a>>),
        }
        let group = self
            .groups
            .get(&id)
            .ok_or_else(|| ApiFailure::group_not_found(id))?;
        let mut members: Vec<Member<'_>> = group
            .members
            .iter()
            .filter_map(|uid| self.users.get(uid))
            .map(|u| Member {
                userid: u.id.to_string(),
                email: &u.email,
            })
            .collect();
        let user = match members.len() {
            1 => OneOrMany::One(members.remove(0)),
            _ => OneOrMany::Many(members),
        };
        #[derive(serde::Serialize)]
        struct Listing<'a> {
            user: OneOrMany<'a>,
        }
        Ok(serde_json::to_vec(&Listing { user }).expect("a member listing serializes"))
    }
}

fn group_type_text(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::SyncedInternal => "synced",
        GroupKind::SyncedBasic => "basicsynced",
        GroupKind::System => "system",
    }
}

fn parse_group_type(text: &str) -> Result<GroupKind, ApiFailure> {
    match text.to_ascii_lowercase().as_str() {
        "synced" => Ok(GroupKind::SyncedInternal),
        "basicsynced" => Ok(GroupKind::SyncedBasic),
        "system" => Ok(GroupKind::System),
        _ => Err(ApiFailure::new(
            400,
            306,
            format!("Invalid group type {text:?}"),
        )),
    }
}

/// HighQ's quirk: a list of one is sent as the element itself.
fn list_quirk(mut items: Vec<Value>) -> Value {
    if items.len() == 1 {
        items.remove(0)
    } else {
        Value::Array(items)
    }
}

fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn flex_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(flex_text)
}

fn required_text(body: &Value, name: &str) -> Result<String, ApiFailure> {
    text(body, name)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiFailure::new(400, 302, format!("{name} is required")))
}

fn check_email(email: &str) -> Result<(), ApiFailure> {
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ApiFailure::new(
            400,
            301,
            format!("Invalid email address {email:?}"),
        ))
    }
}

/// HighQ's phone rule: `{countrycode}${areacode}${number}`, digits separated by `$`, an optional
/// leading `+`. Other characters are ref 360; empty parts or excess length are ref 361.
pub fn check_phone(phone: &str) -> Result<(), ApiFailure> {
    if phone.is_empty() {
        return Ok(());
    }
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if !digits.chars().all(|c| c.is_ascii_digit() || c == '$') {
        return Err(ApiFailure::new(
            400,
            360,
            format!("Invalid phone number {phone:?}: use countrycode$areacode$number"),
        ));
    }
    if digits.split('$').any(str::is_empty) || phone.chars().count() > MAX_FIELD_CHARS {
        return Err(ApiFailure::new(
            400,
            361,
            format!("Invalid phone number {phone:?}: a part is empty or the number is too long"),
        ));
    }
    Ok(())
}

fn check_lengths(user: &EmuUser) -> Result<(), ApiFailure> {
    for (name, value) in [
        ("firstname", &user.first_name),
        ("lastname", &user.last_name),
        ("jobtitle", &user.job_title),
    ] {
        if value.chars().count() > MAX_FIELD_CHARS {
            return Err(ApiFailure::new(
                400,
                303,
                format!("{name} is longer than 512 characters"),
            ));
        }
    }
    Ok(())
}

/// The optional user fields, validated, onto `user`.
fn apply_user_fields(user: &mut EmuUser, body: &Value) -> Result<(), ApiFailure> {
    if let Some(phone) = text(body, "phone") {
        check_phone(&phone)?;
        user.phone = phone;
    }
    if let Some(job_title) = text(body, "jobtitle") {
        user.job_title = job_title;
    }
    if let Some(status) = text(body, "status") {
        user.status = status
            .parse()
            .map_err(|_| ApiFailure::new(400, 304, format!("Invalid status {status:?}")))?;
    }
    if let Some(role) = text(body, "role") {
        user.role = role
            .parse()
            .map_err(|_| ApiFailure::new(400, 305, format!("Invalid role {role:?}")))?;
    }
    if let Some(external_id) = text(body, "externalid") {
        user.external_id = Some(external_id).filter(|e| !e.is_empty());
    }
    if let Some(source_type) = text(body, "sourcetype") {
        user.source_type = Some(source_type);
    }
    check_lengths(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> HighQState {
        HighQState::new("c", "s", None, Duration::from_secs(60))
    }

    #[test]
    fn phones_in_highq_format_are_accepted_and_others_refused_with_their_ref() {
        for ok in ["1$555$123456", "+44$20$7946$0958", "1555123456", ""] {
            assert!(check_phone(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(
            check_phone("+44 (20) 7946 0958").unwrap_err().code,
            Some(360)
        );
        assert_eq!(check_phone("1$$555").unwrap_err().code, Some(361));
    }

    #[test]
    fn a_rotated_refresh_token_stops_working() {
        let mut s = state();
        let first = s.oauth.refresh_token.clone();
        let form = |rt: &str| {
            HashMap::from([
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("refresh_token".to_owned(), rt.to_owned()),
                ("client_id".to_owned(), "c".to_owned()),
                ("client_secret".to_owned(), "s".to_owned()),
            ])
        };
        let answer = s.token(&form(&first)).unwrap();
        let second = answer["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(first, second);
        let (status, error) = s.token(&form(&first)).unwrap_err();
        assert_eq!(
            (status, error["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert!(s.token(&form(&second)).is_ok());
    }

    #[test]
    fn look_ups_by_email_and_name_follow_changes_made_through_the_api_and_behind_its_back() {
        let mut s = state();
        let created = s
            .create_user(&json!({"email": "Ann@X.com", "firstname": "A", "lastname": "A"}))
            .unwrap();
        let id = created["userid"].as_u64().unwrap();
        assert_eq!(s.user_by_email("ann@x.com").map(|u| u.id), Some(id));
        s.update_user(&id.to_string(), &json!({"email": "anne@x.com"}))
            .unwrap();
        assert!(s.user_by_email("ann@x.com").is_none());
        assert_eq!(s.user_by_email("ANNE@x.com").map(|u| u.id), Some(id));
        // The old address is free again; the new one is taken.
        let taken =
            s.create_user(&json!({"email": "anne@x.com", "firstname": "B", "lastname": "B"}));
        assert_eq!(taken.unwrap_err().code, Some(121));
        s.create_user(&json!({"email": "ann@x.com", "firstname": "B", "lastname": "B"}))
            .unwrap();

        // A test changes an address directly, then says so (the handle's `with` does).
        s.users.get_mut(&id).unwrap().email = "direct@x.com".to_owned();
        s.mark_changed();
        assert_eq!(s.user_by_email("direct@x.com").map(|u| u.id), Some(id));
        s.refresh_indexes();
        assert_eq!(s.user_by_email("direct@x.com").map(|u| u.id), Some(id));
        assert!(s.user_by_email("anne@x.com").is_none());

        let group = s.create_group(&json!({"name": "Sales"})).unwrap()["groupID"]
            .as_u64()
            .unwrap();
        s.update_group(group, &json!({"name": "Sales_1745313810193"}))
            .unwrap();
        assert!(s.group_by_name("sales").is_none());
        assert_eq!(
            s.group_by_name("SALES_1745313810193").map(|g| g.id),
            Some(group)
        );
        s.create_group(&json!({"name": "Sales"})).unwrap();
    }

    #[test]
    fn user_listings_by_status_follow_status_changes() {
        let mut s = state();
        let a = s.add_manual_user("a@x.com", "A", "A", UserStatus::Active);
        let b = s.add_manual_user("b@x.com", "B", "B", UserStatus::Active);
        let emails = |s: &mut HighQState, status: &str| -> Vec<String> {
            let page = s.list_users(Some(status), None, 0).unwrap()["user"].clone();
            let list = match page {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                one => vec![one],
            };
            list.iter()
                .map(|u| u["email"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(emails(&mut s, "active"), ["a@x.com", "b@x.com"]);
        s.update_user(&a.to_string(), &json!({"status": "inactive"}))
            .unwrap();
        assert_eq!(emails(&mut s, "active"), ["b@x.com"]);
        assert_eq!(emails(&mut s, "inactive"), ["a@x.com"]);
        let page = s.list_users(None, Some(1), 1).unwrap();
        assert_eq!(page["user"]["userid"], json!(b.to_string()));
    }

    #[test]
    fn adding_an_archived_user_refuses_the_whole_batch_with_ref_394() {
        let mut s = state();
        let active = s.add_manual_user("a@x.com", "A", "A", UserStatus::Active);
        let archived = s.add_manual_user("b@x.com", "B", "B", UserStatus::Archived);
        let group = s.add_manual_group("G", []);
        let err = s
            .add_members(group, &json!({"userid": [active, archived.to_string()]}))
            .unwrap_err();
        assert_eq!(err.code, Some(394));
        assert!(s.groups[&group].members.is_empty());
        s.add_members(group, &json!({"userid": active})).unwrap();
        assert_eq!(s.groups[&group].members.len(), 1);
    }
}
