//! The emulator's OpenID Connect provider, as Entra's v2.0 endpoints behave: discovery (the
//! multi-tenant issuer published as the literal `{tenantid}` template), `authorize` with a plain
//! sign-in form (a person types their user principal name; there is no password), the token
//! endpoint's `authorization_code` grant with PKCE (S256) and client authentication, ID tokens
//! signed RS256 with `tid`, `oid`, `name`, `preferred_username`, `nonce` and the app roles
//! assigned to the person, and the JWKS.
//!
//! Tests make the next ID token wrong in one way ([`IdTokenFault`]) to prove a client refuses it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use chrono::{Duration, Utc};
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{
    Audience, EndUserName, EndUserUsername, IssuerUrl, JsonWebKeyId, LocalizedClaim, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::EmulatorState;
use super::directory::Directory;
use crate::auth::oidc::{EntraClaims, EntraIdToken, EntraIdTokenClaims};

/// The one way the next ID token is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenFault {
    /// Signed with a key that is not in the JWKS (under the published key's ID).
    BadSignature,
    /// For another application.
    WrongAudience,
    /// Expired ten minutes ago.
    Expired,
    /// Carries this nonce instead of the one the sign-in asked for (a replayed token).
    Nonce(String),
    /// Its `tid` claim names this directory while its issuer is the person's own.
    WrongTid(String),
}

const KEY_ID: &str = "emulator-signing-key";
/// A code is good for this long, as Entra's are.
const CODE_LIFETIME_MINUTES: i64 = 10;

/// The signing key (and an impostor) as PKCS#1 PEM, generated once per process: RSA key
/// generation is slow, and every emulator in a test binary can share them.
fn keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let pem = || {
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .expect("an RSA key")
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .expect("PEM")
                .to_string()
        };
        (pem(), pem())
    })
}

fn signing_key(impostor: bool) -> CoreRsaPrivateSigningKey {
    let (real, other) = keys();
    let pem = if impostor { other } else { real };
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(KEY_ID.to_owned())))
        .expect("the generated key parses")
}

/// A person's sign-in between the form and the token request.
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    tenant_id: String,
    user: serde_json::Map<String, Value>,
    roles: Vec<String>,
    expires: chrono::DateTime<Utc>,
}

/// The provider's own state inside the emulator.
#[derive(Default)]
pub(super) struct OidcState {
    codes: Mutex<HashMap<String, PendingCode>>,
    fault: Mutex<Option<IdTokenFault>>,
}

impl OidcState {
    pub(super) fn set_fault(&self, fault: Option<IdTokenFault>) {
        if let Ok(mut slot) = self.fault.lock() {
            *slot = fault;
        }
    }

    fn take_fault(&self) -> Option<IdTokenFault> {
        self.fault.lock().ok().and_then(|mut f| f.take())
    }
}

fn is_multi_tenant(tenant: &str) -> bool {
    matches!(
        tenant.to_ascii_lowercase().as_str(),
        "organizations" | "common"
    )
}

fn error_page(status: StatusCode, code: u64, text: &str) -> Response {
    let text = crate::http::escape_html(text);
    (
        status,
        Html(format!(
            "<!doctype html><html><head><title>Sign in to your account</title></head><body>\
             <h1>Sign in</h1><p>AADSTS{code}: {text}</p></body></html>"
        )),
    )
        .into_response()
}

pub(super) async fn discovery(
    State(state): State<std::sync::Arc<EmulatorState>>,
    UrlPath(tenant): UrlPath<String>,
) -> Response {
    let base = &state.base_url;
    let issuer = if is_multi_tenant(&tenant) {
        format!("{base}/{{tenantid}}/v2.0")
    } else {
        let known = read(&state.directory).tenant(&tenant).is_some();
        if !known {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_tenant",
                    "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")})),
            )
                .into_response();
        }
        format!("{base}/{}/v2.0", tenant.to_ascii_lowercase())
    };
    state.log(
        "GET",
        format!("/{tenant}/v2.0/.well-known/openid-configuration"),
        200,
        None,
    );
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name",
            "preferred_username", "oid", "tid", "roles"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "tenant_region_scope": null,
    }))
    .into_response()
}

pub(super) async fn jwks() -> Response {
    let key = signing_key(false).as_verification_key();
    axum::Json(json!({ "keys": [key] })).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeQuery {
    client_id: Option<String>,
    response_type: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn read(directory: &std::sync::RwLock<Directory>) -> std::sync::RwLockReadGuard<'_, Directory> {
    match directory.read() {
        Ok(d) => d,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Checks the request as Entra does before showing the form; the client's registered redirect
/// URIs come first, so an error is never sent to an unregistered one.
#[allow(clippy::result_large_err)]
fn check_authorize(state: &EmulatorState, q: &AuthorizeQuery) -> Result<(), Response> {
    let directory = read(&state.directory);
    let client_id = q.client_id.as_deref().unwrap_or("");
    let apps: Vec<_> = directory
        .tenants
        .iter()
        .filter_map(|t| t.app(client_id))
        .collect();
    if apps.is_empty() {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            700016,
            &format!("Application with identifier '{client_id}' was not found."),
        ));
    }
    let redirect = q.redirect_uri.as_deref().unwrap_or("");
    if !apps
        .iter()
        .any(|a| a.redirect_uris.iter().any(|r| r == redirect))
    {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            50011,
            &format!(
                "The redirect URI '{redirect}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        ));
    }
    if q.response_type.as_deref() != Some("code") {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            900144,
            "The request body must contain the following parameter: 'response_type' = 'code'.",
        ));
    }
    if !q
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .any(|s| s == "openid")
    {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            900144,
            "The 'openid' scope is required for an ID token.",
        ));
    }
    if q.code_challenge.is_none() || q.code_challenge_method.as_deref() != Some("S256") {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            9002325,
            "Proof Key for Code Exchange is required (code_challenge with S256).",
        ));
    }
    Ok(())
}

/// The sign-in form: one field, the person's user principal name.
pub(super) async fn authorize_form(
    State(state): State<std::sync::Arc<EmulatorState>>,
    UrlPath(tenant): UrlPath<String>,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    state.log("GET", format!("/{tenant}/oauth2/v2.0/authorize"), 200, None);
    if let Err(page) = check_authorize(&state, &query) {
        return page;
    }
    Html(
        "<!doctype html><html><head><title>Sign in to your account</title></head><body>\
         <h1>Sign in</h1><form method=\"post\"><label>Email or user name \
         <input name=\"username\" autocomplete=\"username\" autofocus></label> \
         <button type=\"submit\">Sign in</button></form></body></html>"
            .to_owned(),
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct SignInForm {
    username: String,
}

/// The form posted: finds the person, checks the app is consented in their directory, and sends
/// the browser back with a one-time code.
pub(super) async fn authorize_submit(
    State(state): State<std::sync::Arc<EmulatorState>>,
    UrlPath(tenant): UrlPath<String>,
    Query(query): Query<AuthorizeQuery>,
    Form(form): Form<SignInForm>,
) -> Response {
    state.log(
        "POST",
        format!("/{tenant}/oauth2/v2.0/authorize"),
        302,
        None,
    );
    if let Err(page) = check_authorize(&state, &query) {
        return page;
    }
    let client_id = query.client_id.clone().unwrap_or_default();
    let wanted = form.username.trim();
    let directory = read(&state.directory);
    let found = directory
        .tenants
        .iter()
        .filter(|t| is_multi_tenant(&tenant) || t.tenant_id.eq_ignore_ascii_case(&tenant))
        .find_map(|t| {
            t.users
                .values()
                .find(|u| {
                    ["userPrincipalName", "mail"].iter().any(|field| {
                        u.get(*field)
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.eq_ignore_ascii_case(wanted))
                    })
                })
                .map(|u| (t, u.clone()))
        });
    let Some((home, user)) = found else {
        return error_page(
            StatusCode::BAD_REQUEST,
            50034,
            &format!("The user account {wanted} does not exist in the directory."),
        );
    };
    let Some(app) = home.app(&client_id) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                home.tenant_id
            ),
        );
    };
    let oid = user
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let roles = app
        .app_role_assignments
        .iter()
        .filter(|a| a.user.eq_ignore_ascii_case(&oid))
        .map(|a| a.role.clone())
        .collect();
    let code = format!("emu-code.{}", uuid::Uuid::new_v4().simple());
    let pending = PendingCode {
        client_id,
        redirect_uri: query.redirect_uri.clone().unwrap_or_default(),
        code_challenge: query.code_challenge.clone().unwrap_or_default(),
        nonce: query.nonce.clone(),
        tenant_id: home.tenant_id.to_ascii_lowercase(),
        user,
        roles,
        expires: Utc::now() + Duration::minutes(CODE_LIFETIME_MINUTES),
    };
    drop(directory);
    if let Ok(mut codes) = state.oidc.codes.lock() {
        codes.insert(code.clone(), pending);
    }
    let mut back = match url::Url::parse(&query.redirect_uri.unwrap_or_default()) {
        Ok(url) => url,
        Err(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                50011,
                "The redirect URI is not valid.",
            );
        }
    };
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = &query.state {
        back.query_pairs_mut().append_pair("state", s);
    }
    Redirect::to(back.as_str()).into_response()
}

/// The client's ID and secret from HTTP Basic (form-encoded, then base64, as RFC 6749 §2.3.1
/// has it) or from the form.
fn client_credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> (String, String) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    basic.unwrap_or_else(|| {
        (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        )
    })
}

fn oauth_error(status: StatusCode, error: &str, code: u64, text: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}"),
            "error_codes": [code],
        })),
    )
        .into_response()
}

/// `grant_type=authorization_code`: the code once, for the same client and redirect URI, with
/// the PKCE verifier and the client's secret; answers with the ID token.
pub(super) fn exchange_code(
    state: &EmulatorState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(pending) = state
        .oidc
        .codes
        .lock()
        .ok()
        .and_then(|mut codes| codes.remove(&code))
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed or is not valid.",
        );
    };
    let (client_id, secret) = client_credentials(headers, form);
    if pending.expires <= Utc::now() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired.",
        );
    }
    if client_id != pending.client_id || form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "The provided value for the 'redirect_uri' or 'client_id' is not valid.",
        );
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if challenge != pending.code_challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        );
    }
    let secret_ok = read(&state.directory).tenants.iter().any(|t| {
        t.app(&client_id)
            .is_some_and(|a| a.secrets.iter().any(|s| s.value == secret))
    });
    if !secret_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
        );
    }
    let fault = state.oidc.take_fault();
    match id_token(state, &pending, fault.as_ref()) {
        Ok(token) => axum::Json(json!({
            "token_type": "Bearer",
            "scope": "openid profile email",
            "expires_in": 3599,
            "access_token": format!("emu.{}", uuid::Uuid::new_v4().simple()),
            "id_token": token,
        }))
        .into_response(),
        Err(err) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", 0, &err),
    }
}

fn id_token(
    state: &EmulatorState,
    pending: &PendingCode,
    fault: Option<&IdTokenFault>,
) -> Result<String, String> {
    let text = |field: &str| {
        pending
            .user
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let oid = text("id").unwrap_or_default().to_ascii_lowercase();
    let now = Utc::now();
    let (issued, expires) = match fault {
        Some(IdTokenFault::Expired) => (now - Duration::minutes(70), now - Duration::minutes(10)),
        _ => (now, now + Duration::hours(1)),
    };
    let audience = match fault {
        Some(IdTokenFault::WrongAudience) => "00000000-0000-0000-0000-0000000a11e2".to_owned(),
        _ => pending.client_id.clone(),
    };
    let tid = match fault {
        Some(IdTokenFault::WrongTid(other)) => other.clone(),
        _ => pending.tenant_id.clone(),
    };
    let nonce = match fault {
        Some(IdTokenFault::Nonce(other)) => Some(other.clone()),
        _ => pending.nonce.clone(),
    };
    // Entra's `sub` is pairwise: the same person has another one in another app.
    let sub = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(format!("{oid}:{}", pending.client_id)));
    let mut standard = StandardClaims::new(SubjectIdentifier::new(sub));
    if let Some(name) = text("displayName") {
        standard = standard.set_name(Some(LocalizedClaim::from(EndUserName::new(name))));
    }
    if let Some(upn) = text("userPrincipalName") {
        standard = standard.set_preferred_username(Some(EndUserUsername::new(upn)));
    }
    let issuer = IssuerUrl::new(format!("{}/{}/v2.0", state.base_url, pending.tenant_id))
        .map_err(|e| e.to_string())?;
    let claims = EntraIdTokenClaims::new(
        issuer,
        vec![Audience::new(audience)],
        expires,
        issued,
        standard,
        EntraClaims {
            tid,
            oid,
            roles: pending.roles.clone(),
        },
    )
    .set_nonce(nonce.map(Nonce::new));
    let key = signing_key(matches!(fault, Some(IdTokenFault::BadSignature)));
    let token = EntraIdToken::new(
        claims,
        &key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok(token.to_string())
}
