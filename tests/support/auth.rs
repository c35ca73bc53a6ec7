//! Signing callers in for tests of the HTTP API: a person's session (cookie and CSRF token)
//! created straight in the store, as the sign-in callback would, and API tokens issued as an
//! operator would. Sign-in itself is tested end to end in `tests/sign_in.rs`.
#![allow(dead_code)]

use chrono::{Duration, Utc};
use dirsync::auth::credential;
use dirsync::auth::manage::issue_token;
use dirsync::auth::settings::TokenSettings;
use dirsync::domain::{AccessRole, EntraObjectId};
use dirsync::store::access::{AccessStore, EntraIdentity, NewGrant, SessionRecord};
use secrecy::ExposeSecret;

/// The cookie a session travels in when the service is reached over plain HTTP.
pub const SESSION_COOKIE: &str = "dirsync_session";

/// A signed-in person, as a browser holds them.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf_token: String,
    pub identity: EntraIdentity,
}

impl Session {
    /// The `Cookie` header value.
    pub fn cookie_header(&self) -> String {
        format!("{SESSION_COOKIE}={}", self.cookie)
    }
}

pub fn person(n: u128) -> EntraIdentity {
    EntraIdentity {
        tenant_id: EntraObjectId::from(uuid::Uuid::from_u128(0x7e57_0000 << 64)),
        object_id: EntraObjectId::from(uuid::Uuid::from_u128(n)),
    }
}

/// Grants `role` (on `tenant`, unless an operator) to `identity`.
pub async fn grant(
    store: &dyn AccessStore,
    identity: &EntraIdentity,
    role: AccessRole,
    tenant: Option<&str>,
) {
    store
        .grant(&NewGrant {
            identity: identity.clone(),
            role,
            tenant: tenant.map(|t| dirsync::domain::TenantKey::parse(t).unwrap()),
            label: None,
            granted_by: "test".to_owned(),
        })
        .await
        .unwrap();
}

/// A session for `identity` named `name`, as the sign-in callback creates it.
pub async fn session(store: &dyn AccessStore, identity: &EntraIdentity, name: &str) -> Session {
    let cookie = credential::random_secret().expose_secret().to_owned();
    let csrf_token = credential::random_secret().expose_secret().to_owned();
    let now = Utc::now();
    store
        .create_session(&SessionRecord {
            id_hash: credential::hash(&cookie),
            identity: identity.clone(),
            name: name.to_owned(),
            username: Some(format!(
                "{}@contoso.com",
                name.split(' ').next().unwrap().to_lowercase()
            )),
            app_roles: vec![],
            csrf_token: csrf_token.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::hours(8),
        })
        .await
        .unwrap();
    Session {
        cookie,
        csrf_token,
        identity: identity.clone(),
    }
}

/// An API token with `role` (on `tenant`), as an operator issues it.
pub async fn token(
    store: &dyn AccessStore,
    name: &str,
    role: AccessRole,
    tenant: Option<&str>,
) -> String {
    let (token, _) = issue_token(
        store,
        &TokenSettings::default(),
        name,
        role,
        tenant,
        None,
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    token.expose_secret().to_owned()
}
