//! Connecting a tenant to HighQ from the console (operators): the page links to HighQ's authorize
//! page with a one-time state bound to this browser, HighQ's callback brings the code back, and
//! the code is exchanged for the first refresh token by the same library function as
//! `dirsync tenant connect-highq`. A code obtained elsewhere can be pasted instead. Audited.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::tenant::TenantSummary;
use super::{PageResult, Shell};
use crate::audit::Action;
use crate::auth::caller::Caller;
use crate::auth::extract::{ConfigureTenant, Page};
use crate::http::{ApiError, AppState, Guard, Route};
use crate::store::access::AuditOutcome;
use crate::target::highq::HighQConfig;
use crate::tenant::{TargetSettings, Tenant};

pub(super) fn routes() -> Vec<Route> {
    let op = Guard::ConfigureTenant;
    vec![
        Route::page(Method::GET, "/tenants/{tenant}/connect-highq", op, page),
        Route::page(Method::POST, "/tenants/{tenant}/connect-highq", op, paste),
        Route::page(
            Method::GET,
            "/tenants/{tenant}/connect-highq/callback",
            op,
            callback,
        ),
    ]
}

/// The cookie that binds an authorize request's `state` to the browser that started it.
const STATE_COOKIE: &str = "dirsync_highq_state";
/// How long a HighQ consent may take.
const STATE_MINUTES: i64 = 15;
/// The redirect URI a pasted code was issued for, unless the operator says otherwise (the CLI's
/// default too).
const PASTED_REDIRECT_URI: &str = "http://localhost/dirsync/highq/callback";

#[derive(Template, WebTemplate)]
#[template(path = "console/connect_highq.html")]
struct ConnectPage {
    shell: Shell,
    tenant: TenantSummary,
    /// HighQ's authorize page, with this console's callback and a fresh state.
    authorize: Option<String>,
    callback: Option<String>,
    pasted_redirect_uri: &'static str,
    /// The tenant's target is HighQ (otherwise there is nothing to connect here).
    highq: bool,
    /// Why connecting with HighQ's consent is not offered.
    problem: Option<String>,
    /// Why the last attempt failed.
    failed: Option<String>,
}

/// The tenant, which must exist.
fn existing(configure: &ConfigureTenant) -> Result<&Tenant, ApiError> {
    configure.current.as_ref().ok_or_else(|| {
        ApiError::NotFound(format!(
            "there is no tenant {}; onboard it first",
            configure.key
        ))
    })
}

/// The tenant's HighQ settings, or why it has none.
fn highq_config(tenant: &Tenant) -> Result<&HighQConfig, String> {
    match &tenant.target {
        Some(TargetSettings::Highq(config)) => Ok(config),
        _ => Err(format!(
            "tenant {}'s target is not HighQ ({}); choose HighQ in its settings first",
            tenant.key,
            tenant.target.as_ref().map_or("none", |t| t.kind())
        )),
    }
}

/// This console's callback for the tenant, when the service knows its public URL.
fn callback_uri(state: &AppState, tenant: &Tenant) -> Option<String> {
    let base = state.auth.settings().public_url.as_ref()?;
    base.join(&format!("/tenants/{}/connect-highq/callback", tenant.key))
        .ok()
        .map(String::from)
}

fn state_cookie(state: &AppState, tenant: &Tenant, value: Option<&str>) -> String {
    let secure = if state.auth.settings().secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let (value, age) = value.map_or(("", 0), |v| (v, STATE_MINUTES * 60));
    format!(
        "{STATE_COOKIE}={value}; Path=/tenants/{}/connect-highq; HttpOnly; SameSite=Lax{secure}; \
         Max-Age={age}",
        tenant.key
    )
}

/// The page: Connect with HighQ (a fresh state, remembered in this browser), or paste a code.
async fn page(State(state): State<AppState>, Page(configure): Page<ConfigureTenant>) -> PageResult {
    render(&state, &configure, None)
}

/// The page, saying what went wrong last if anything did. Every showing starts a fresh consent.
fn render(state: &AppState, configure: &ConfigureTenant, failed: Option<String>) -> PageResult {
    let tenant = existing(configure)?;
    let callback = callback_uri(state, tenant);
    let nonce = crate::auth::credential::random_secret();
    let (authorize, problem) = match (highq_config(tenant), &callback) {
        (Err(problem), _) => (None, Some(problem)),
        (Ok(config), Some(uri)) => match config.authorize_url(uri, nonce.expose_secret()) {
            Ok(url) => (Some(url.to_string()), None),
            Err(problem) => (None, Some(problem)),
        },
        (Ok(_), None) => (
            None,
            Some(
                "this service does not know its public URL ([auth] public_url), so HighQ cannot \
                 send the code back here: paste it below"
                    .to_owned(),
            ),
        ),
    };
    let highq = highq_config(tenant).is_ok();
    let cookie = state_cookie(state, tenant, Some(nonce.expose_secret()));
    let page = ConnectPage {
        shell: Shell::of(&configure.caller),
        tenant: TenantSummary::of(tenant, state.auth.now()),
        authorize,
        callback,
        pasted_redirect_uri: PASTED_REDIRECT_URI,
        highq,
        problem,
        failed,
    };
    Ok(([(header::SET_COOKIE, cookie)], page).into_response())
}

/// Exchanges the code through the library's own connection, records it, and goes to the
/// connection test, which now shows HighQ connected.
async fn exchange(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
    code: &SecretString,
    redirect_uri: &str,
    how: &'static str,
) -> Result<Response, String> {
    let connected = state
        .runner
        .context()
        .connector
        .connect_target(tenant, code, redirect_uri)
        .await;
    // A refused code is recorded too, with HighQ's reason: repeated refusals are worth seeing.
    let mut detail = json!({"target": "highq", "redirect_uri": redirect_uri, "via": how});
    let outcome = match &connected {
        Ok(()) => AuditOutcome::Ok,
        Err(problem) => {
            detail["refused"] = json!(problem);
            AuditOutcome::Refused
        }
    };
    crate::audit::record(
        state.auth.access().as_ref(),
        state.auth.now(),
        &crate::audit::Actor::of(caller),
        Action::TargetConnect,
        Some(&tenant.key),
        outcome,
        detail,
    )
    .await;
    connected?;
    // Issue 14: renewed credentials are a fix: they lift a quarantine.
    if let Err(err) = crate::schedule::lift_quarantine_after_fix(
        state.store().as_ref(),
        state.auth.access().as_ref(),
        &state.runner.context().settings.quarantine,
        &crate::audit::Actor::of(caller),
        Some(tenant),
        tenant,
        true,
        state.auth.now(),
    )
    .await
    {
        tracing::error!(tenant = %tenant.key, %err, "could not lift the quarantine after a new HighQ grant");
    }
    Ok(Redirect::to(&format!("/tenants/{}/check", tenant.key)).into_response())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// HighQ sends the browser back here: the state must be the one this browser was given. Any
/// failure shows the page again, saying what went wrong, ready to start over.
async fn callback(
    State(state): State<AppState>,
    Page(configure): Page<ConfigureTenant>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> PageResult {
    let tenant = existing(&configure)?;
    let expected = cookie_value(&headers, STATE_COOKIE).filter(|v| !v.is_empty());
    let state_matches = match (expected, query.state.as_deref()) {
        (Some(expected), Some(given)) => bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            given.as_bytes(),
        )),
        _ => false,
    };
    let outcome = if let Some(error) = &query.error {
        Err(format!(
            "HighQ did not authorise dirsync: {error}{}",
            query
                .error_description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ))
    } else if !state_matches {
        Err(
            "this HighQ callback was not started from this browser, or it expired: start again"
                .to_owned(),
        )
    } else if let Err(problem) = highq_config(tenant) {
        Err(problem)
    } else {
        match (
            query.code.filter(|c| !c.is_empty()),
            callback_uri(&state, tenant),
        ) {
            (None, _) => Err("HighQ sent no authorization code".to_owned()),
            (_, None) => Err("this service does not know its public URL".to_owned()),
            (Some(code), Some(redirect_uri)) => {
                exchange(
                    &state,
                    &configure.caller,
                    tenant,
                    &SecretString::from(code),
                    &redirect_uri,
                    "callback",
                )
                .await
            }
        }
    };
    match outcome {
        Ok(mut response) => {
            if let Ok(clear) = state_cookie(&state, tenant, None).parse() {
                response.headers_mut().append(header::SET_COOKIE, clear);
            }
            Ok(response)
        }
        Err(problem) => render(&state, &configure, Some(problem)),
    }
}

#[derive(Deserialize)]
struct PasteForm {
    code: String,
    #[serde(default)]
    redirect_uri: String,
}

/// A code obtained elsewhere (HighQ's consent sent to another redirect URI), pasted.
async fn paste(
    State(state): State<AppState>,
    Page(configure): Page<ConfigureTenant>,
    Form(form): Form<PasteForm>,
) -> PageResult {
    let tenant = existing(&configure)?;
    let code = SecretString::from(form.code.trim().to_owned());
    let redirect_uri = match form.redirect_uri.trim() {
        "" => PASTED_REDIRECT_URI,
        uri => uri,
    };
    let outcome = if code.expose_secret().is_empty() {
        Err("paste the authorization code HighQ gave".to_owned())
    } else if let Err(problem) = highq_config(tenant) {
        Err(problem)
    } else {
        exchange(
            &state,
            &configure.caller,
            tenant,
            &code,
            redirect_uri,
            "pasted",
        )
        .await
    };
    match outcome {
        Ok(response) => Ok(response),
        Err(problem) => render(&state, &configure, Some(problem)),
    }
}
