//! Who may use dirsync, and how they prove it (issue 8).
//!
//! - [`caller`]: the authenticated caller (a signed-in person or an API token) and their
//!   [`Access`](caller::Access): operator everywhere, or tenant admin / viewer per tenant, from
//!   grants in the database and the app roles of their ID token.
//! - [`extract`]: the one extractor family every route goes through: [`extract::TenantAccess`]
//!   resolves `{tenant}` and checks the caller's grant (anonymous → 401, no grant → 404,
//!   too low a role → 403); [`extract::Page`] turns a page's 401 into a redirect to sign-in.
//! - [`csrf`]: state-changing requests from a session carry its CSRF token and come from this
//!   service's own origin; bearer-token requests are exempt.
//! - [`credential`]: random secrets, their hashes, API tokens.
//! - [`settings`]: the `auth` section of the service settings.
//!
//! Sessions live in PostgreSQL (the [`AccessStore`]), keyed by the SHA-256 of the cookie's ID.

pub mod caller;
pub mod credential;
pub mod csrf;
pub mod extract;
pub mod manage;
pub mod oidc;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use self::caller::{Access, Caller, ClientInfo};
use self::settings::AuthSettings;
use crate::http::ApiError;
use crate::schedule::Clock;
use crate::store::access::{AccessStore, EntraIdentity, SessionRecord, SignInAttempt};
use crate::store::{Store, StoreError};

/// The session cookie: `__Host-` (Secure, Path=/, no Domain: the browser refuses it from any
/// other origin) when the service is reached over HTTPS.
const SESSION_COOKIE: &str = "dirsync_session";
const SECURE_SESSION_COOKIE: &str = "__Host-dirsync_session";

/// The cookie that ties a sign-in's callback to the browser that began it.
const SIGN_IN_COOKIE: &str = "dirsync_sign_in";
const SECURE_SIGN_IN_COOKIE: &str = "__Host-dirsync_sign_in";
/// How long a person has to sign in at Entra.
const SIGN_IN_MINUTES: i64 = 10;

/// Everything authentication and authorization need, shared by every request.
pub struct Auth {
    settings: AuthSettings,
    access: Arc<dyn AccessStore>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    oidc: Option<oidc::OidcClient>,
}

/// Why a sign-in did not end in a session.
#[derive(Debug, thiserror::Error)]
pub enum SignInRefused {
    #[error("this sign-in has expired or was already used; start again")]
    Expired,
    #[error("{0}")]
    Entra(String),
    #[error(transparent)]
    Token(#[from] oidc::SignInError),
    #[error("{name} has no access to dirsync (Entra directory {}, object {}); ask an operator for a grant", identity.tenant_id, identity.object_id)]
    NoAccess {
        name: String,
        identity: EntraIdentity,
    },
    #[error("sign-in is not configured on this service")]
    NotConfigured,
    #[error("sign-in failed: {0}")]
    Internal(String),
}

/// A completed sign-in.
#[derive(Debug)]
pub struct SignInDone {
    /// The new session's cookie value.
    pub session: String,
    pub return_to: String,
    pub person: oidc::SignedIn,
}

/// Where a person may be sent after signing in: a path on this service, never another site.
pub fn safe_return_to(text: &str) -> String {
    let local = text.starts_with('/')
        && !text.starts_with("//")
        && !text.starts_with("/\\")
        && !text.chars().any(|c| c.is_control() || c == '\\');
    if local {
        text.to_owned()
    } else {
        "/".to_owned()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(
        settings: AuthSettings,
        access: Arc<dyn AccessStore>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        settings.validate()?;
        let oidc = match (&settings.oidc, &settings.public_url) {
            (Some(oidc), Some(public_url)) => Some(oidc::OidcClient::new(
                oidc.clone(),
                public_url,
                clock.clone(),
            )?),
            _ => None,
        };
        Ok(Self {
            settings,
            access,
            store,
            clock,
            oidc,
        })
    }

    /// Whether people can sign in (with Microsoft Entra).
    pub fn can_sign_in(&self) -> bool {
        self.oidc.is_some()
    }

    pub fn sign_in_cookie_name(&self) -> &'static str {
        if self.settings.secure_cookies() {
            SECURE_SIGN_IN_COOKIE
        } else {
            SIGN_IN_COOKIE
        }
    }

    /// The `Set-Cookie` value of the sign-in attempt cookie (`None` clears it).
    pub fn sign_in_cookie(&self, id: Option<&str>) -> String {
        let name = self.sign_in_cookie_name();
        let secure = if self.settings.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        let (value, age) = match id {
            Some(id) => (id, SIGN_IN_MINUTES * 60),
            None => ("", 0),
        };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}; Max-Age={age}")
    }

    /// Begins a sign-in: remembers its state, nonce and PKCE verifier under a fresh attempt ID
    /// (the cookie value returned), and gives Entra's authorize URL to send the browser to.
    pub async fn begin_sign_in(
        &self,
        return_to: &str,
    ) -> Result<(url::Url, String), SignInRefused> {
        let oidc = self.oidc.as_ref().ok_or(SignInRefused::NotConfigured)?;
        let start = oidc.start().await?;
        let id = credential::random_secret();
        let now = self.now();
        self.access
            .save_sign_in(&SignInAttempt {
                id_hash: credential::hash(id.expose_secret()),
                state: start.state,
                nonce: start.nonce,
                pkce_verifier: start.pkce_verifier,
                return_to: safe_return_to(return_to),
                created_at: now,
                expires_at: now + chrono::Duration::minutes(SIGN_IN_MINUTES),
            })
            .await
            .map_err(|e| SignInRefused::Internal(e.to_string()))?;
        Ok((start.authorize_url, id.expose_secret().to_owned()))
    }

    /// Completes a sign-in from Entra's callback: the attempt this browser began (taken, so a
    /// replayed callback finds nothing), its state, the code exchanged and the ID token
    /// verified; then a new session, replacing any the browser had (sessions rotate at
    /// sign-in). A person with no access gets no session.
    pub async fn complete_sign_in(
        &self,
        parts: &Parts,
        callback: &SignInCallback,
    ) -> Result<SignInDone, SignInRefused> {
        let oidc = self.oidc.as_ref().ok_or(SignInRefused::NotConfigured)?;
        let attempt_id = cookie(parts, self.sign_in_cookie_name()).ok_or(SignInRefused::Expired)?;
        let attempt = self
            .access
            .take_sign_in(&credential::hash(&attempt_id), self.now())
            .await
            .map_err(|e| SignInRefused::Internal(e.to_string()))?
            .ok_or(SignInRefused::Expired)?;
        if !callback
            .state
            .as_deref()
            .is_some_and(|state| credential::same_secret(state, &attempt.state))
        {
            return Err(SignInRefused::Expired);
        }
        if let Some(error) = &callback.error {
            return Err(SignInRefused::Entra(format!(
                "Microsoft Entra did not sign you in: {error}{}",
                callback
                    .error_description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )));
        }
        let code = callback.code.as_deref().ok_or(SignInRefused::Expired)?;
        let person = oidc
            .finish(code, &attempt.nonce, &attempt.pkce_verifier)
            .await?;
        let access = self
            .access_of(&person.identity, &person.app_roles)
            .await
            .map_err(|e| SignInRefused::Internal(e.to_string()))?;
        if access.is_empty() {
            return Err(SignInRefused::NoAccess {
                name: person.name.clone(),
                identity: person.identity.clone(),
            });
        }
        self.end_session(parts)
            .await
            .map_err(|e| SignInRefused::Internal(e.to_string()))?;
        let session = self
            .start_session(
                person.identity.clone(),
                person.name.clone(),
                person.username.clone(),
                person.app_roles.clone(),
            )
            .await
            .map_err(|e| SignInRefused::Internal(e.to_string()))?;
        Ok(SignInDone {
            session,
            return_to: attempt.return_to,
            person,
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub fn access(&self) -> &Arc<dyn AccessStore> {
        &self.access
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn session_cookie_name(&self) -> &'static str {
        if self.settings.secure_cookies() {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    /// Who is calling: an API token (`Authorization: Bearer dsy_…`) or a session cookie.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let client = client_info(parts);
        let now = self.now();
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::Unauthorized(
                        "the Authorization header must be \"Bearer\" and an API token (dsy_…)"
                            .to_owned(),
                    )
                })?;
            let invalid = || {
                ApiError::Unauthorized(
                    "the API token is not valid: unknown, expired or revoked".to_owned(),
                )
            };
            if !credential::looks_like_api_token(token) {
                return Err(invalid());
            }
            let record = self
                .access
                .use_token(&credential::hash(token), now)
                .await
                .map_err(internal)?
                .ok_or_else(invalid)?;
            return Ok(Caller::from_token(&record, client));
        }
        if let Some(id) = cookie(parts, self.session_cookie_name()) {
            let session = self
                .access
                .session(&credential::hash(&id), now, self.settings.session.idle())
                .await
                .map_err(internal)?
                .ok_or_else(|| {
                    ApiError::Unauthorized("your session has ended; sign in again".to_owned())
                })?;
            let access = self.person_access(&session).await?;
            return Ok(Caller::from_session(&session, access, client));
        }
        Err(ApiError::Unauthorized(
            "sign in, or send an API token (Authorization: Bearer dsy_…)".to_owned(),
        ))
    }

    /// A signed-in person's access now: grants are read at every request, so a revoked grant
    /// takes effect at once.
    async fn person_access(&self, session: &SessionRecord) -> Result<Access, ApiError> {
        self.access_of(&session.identity, &session.app_roles).await
    }

    pub async fn access_of(
        &self,
        identity: &EntraIdentity,
        app_roles: &[String],
    ) -> Result<Access, ApiError> {
        let grants = self.access.grants_of(identity).await.map_err(internal)?;
        let directory_tenants = if app_roles.is_empty() {
            Vec::new()
        } else {
            self.access
                .tenants_of_directory(&identity.tenant_id)
                .await
                .map_err(internal)?
        };
        let operator_directory = self
            .settings
            .oidc
            .as_ref()
            .and_then(|o| o.operator_tenant_id.as_ref());
        Ok(Access::of_person(
            identity,
            &grants,
            app_roles,
            &directory_tenants,
            operator_directory,
        ))
    }

    /// A new session for `identity`: a fresh random ID (a session is never carried over from
    /// before sign-in) and CSRF token. Returns the cookie value.
    pub async fn start_session(
        &self,
        identity: EntraIdentity,
        name: String,
        username: Option<String>,
        app_roles: Vec<String>,
    ) -> Result<String, StoreError> {
        let id = credential::random_secret();
        let now = self.now();
        self.access
            .create_session(&SessionRecord {
                id_hash: credential::hash(id.expose_secret()),
                identity,
                name,
                username,
                app_roles,
                csrf_token: credential::random_secret().expose_secret().to_owned(),
                created_at: now,
                last_seen_at: now,
                expires_at: now + self.settings.session.absolute(),
            })
            .await?;
        Ok(id.expose_secret().to_owned())
    }

    /// The `Set-Cookie` value of a session cookie (`None` clears it).
    pub fn session_cookie(&self, id: Option<&str>) -> String {
        let name = self.session_cookie_name();
        let secure = if self.settings.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        match id {
            Some(id) => format!(
                "{name}={id}; Path=/; HttpOnly; SameSite=Lax{secure}; Max-Age={}",
                self.settings.session.absolute().num_seconds()
            ),
            None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax{secure}; Max-Age=0"),
        }
    }

    /// Ends the session the request carries, if any.
    pub async fn end_session(&self, parts: &Parts) -> Result<bool, StoreError> {
        match cookie(parts, self.session_cookie_name()) {
            Some(id) => self.access.delete_session(&credential::hash(&id)).await,
            None => Ok(false),
        }
    }
}

/// What Entra's redirect back carries.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SignInCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|value| !value.is_empty())
}

fn header_text(parts: &Parts, name: header::HeaderName, max: usize) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(max).collect())
}

/// Where the request came from, for the audit log.
pub fn client_info(parts: &Parts) -> ClientInfo {
    ClientInfo {
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string()),
        forwarded_for: header_text(
            parts,
            header::HeaderName::from_static("x-forwarded-for"),
            200,
        ),
        user_agent: header_text(parts, header::USER_AGENT, 300),
    }
}

fn internal(err: StoreError) -> ApiError {
    ApiError::Internal(err.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::SystemClock;
    use crate::store::PgStore;

    fn auth(public_url: &str) -> Auth {
        let store = Arc::new(PgStore::new(
            sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
        ));
        let settings = AuthSettings {
            public_url: Some(public_url.parse().unwrap()),
            ..AuthSettings::default()
        };
        Auth::new(settings, store.clone(), store, Arc::new(SystemClock)).unwrap()
    }

    #[tokio::test]
    async fn cookies_are_http_only_lax_and_secure_with_a_host_prefix_over_https() {
        let secure = auth("https://dirsync.example.com").session_cookie(Some("abc"));
        assert!(
            secure
                .starts_with("__Host-dirsync_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure"),
            "{secure}"
        );
        let plain = auth("http://127.0.0.1:8080").session_cookie(Some("abc"));
        assert!(plain.starts_with("dirsync_session=abc;") && !plain.contains("Secure"));
        let cleared = auth("https://dirsync.example.com").session_cookie(None);
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        let attempt = auth("https://dirsync.example.com").sign_in_cookie(Some("x"));
        assert!(
            attempt.starts_with("__Host-dirsync_sign_in=x; Path=/; HttpOnly; SameSite=Lax; Secure")
        );
    }

    #[test]
    fn after_sign_in_a_person_goes_only_to_a_path_on_this_service() {
        assert_eq!(safe_return_to("/tenants/acme?x=1"), "/tenants/acme?x=1");
        for hostile in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_return_to(hostile), "/", "{hostile:?}");
        }
    }
}
