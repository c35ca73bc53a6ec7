//! The sign-in flow's pages, plain HTML that works without JavaScript: the sign-in page, the
//! round trip through Entra, and sign-out. The start page (`/`) is the console's Tenants page.

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::ApiResult;
use super::{AppState, Guard, Route};
use crate::audit::{self, Action, Actor};
use crate::auth::extract::{Page, SIGN_IN_PATH, Signed};
use crate::auth::oidc::CALLBACK_PATH;
use crate::auth::{SignInCallback, SignInRefused, safe_return_to};
use crate::store::access::AuditOutcome;
use serde_json::json;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::page(
            Method::GET,
            "/",
            Guard::Signed,
            super::console::tenants_page,
        ),
        Route::page(Method::GET, SIGN_IN_PATH, Guard::Public, sign_in_page),
        Route::page(Method::GET, "/auth/sign-in", Guard::Public, begin_sign_in),
        Route::page(Method::GET, CALLBACK_PATH, Guard::Public, callback),
        Route::page(Method::POST, "/sign-out", Guard::Signed, sign_out),
    ]
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already escaped).
pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · dirsync</title></head>\n<body>\n{body}\n</body></html>\n",
        escape(title)
    ))
}

#[derive(Debug, Default, Deserialize)]
struct SignInQuery {
    return_to: Option<String>,
    /// Why the last sign-in was refused.
    error: Option<String>,
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    query.finish()
}

/// The sign-in page: why the last attempt failed, if it did, and the way to sign in.
async fn sign_in_page(
    State(state): State<AppState>,
    Query(query): Query<SignInQuery>,
) -> Html<String> {
    let error = query
        .error
        .as_deref()
        .map(|e| format!("<p role=\"alert\"><strong>{}</strong></p>\n", escape(e)))
        .unwrap_or_default();
    let action = if state.auth.can_sign_in() {
        let return_to = safe_return_to(query.return_to.as_deref().unwrap_or("/"));
        format!(
            "<p><a href=\"/auth/sign-in?{}\">Sign in with Microsoft</a></p>",
            escape(&query_string(&[("return_to", &return_to)]))
        )
    } else {
        "<p>Sign-in with Microsoft Entra is not configured on this service (settings \
         <code>[auth.oidc]</code>); automation uses API tokens.</p>"
            .to_owned()
    };
    page(
        "Sign in",
        &format!("<h1>Sign in to dirsync</h1>\n{error}{action}"),
    )
}

fn back_to_sign_in(auth: &crate::auth::Auth, error: &str) -> Response {
    (
        [(header::SET_COOKIE, auth.sign_in_cookie(None))],
        Redirect::to(&format!(
            "{SIGN_IN_PATH}?{}",
            query_string(&[("error", error)])
        )),
    )
        .into_response()
}

/// Starts a sign-in: to Entra, with this browser's attempt in a cookie.
async fn begin_sign_in(
    State(state): State<AppState>,
    Query(query): Query<SignInQuery>,
) -> Response {
    match state
        .auth
        .begin_sign_in(query.return_to.as_deref().unwrap_or("/"))
        .await
    {
        Ok((authorize_url, attempt)) => (
            [(
                header::SET_COOKIE,
                state.auth.sign_in_cookie(Some(&attempt)),
            )],
            Redirect::to(authorize_url.as_str()),
        )
            .into_response(),
        Err(refused) => {
            tracing::warn!(%refused, "a sign-in could not begin");
            back_to_sign_in(&state.auth, &refused.to_string())
        }
    }
}

/// Entra sends the browser back here: a session and on to where the person was going, or back
/// to the sign-in page saying why not.
async fn callback(
    State(state): State<AppState>,
    Query(query): Query<SignInCallback>,
    parts: Parts,
) -> Response {
    let client = crate::auth::client_info(&parts);
    match state.auth.complete_sign_in(&parts, &query).await {
        Ok(done) => {
            let actor = Actor::anonymous(
                Some(&done.person.name),
                Some(format!("entra:{}", done.person.identity)),
                client,
            );
            audit::record(
                state.auth.access().as_ref(),
                state.auth.now(),
                &actor,
                Action::SignIn,
                None,
                AuditOutcome::Ok,
                json!({"username": done.person.username, "app_roles": done.person.app_roles}),
            )
            .await;
            let mut response = Redirect::to(&done.return_to).into_response();
            let headers = response.headers_mut();
            for cookie in [
                state.auth.sign_in_cookie(None),
                state.auth.session_cookie(Some(&done.session)),
            ] {
                if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                    headers.append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(refused) => {
            tracing::warn!(%refused, "a sign-in was refused");
            let (name, id) = match &refused {
                SignInRefused::NoAccess { name, identity } => {
                    (Some(name.as_str()), Some(format!("entra:{identity}")))
                }
                _ => (None, None),
            };
            audit::record(
                state.auth.access().as_ref(),
                state.auth.now(),
                &Actor::anonymous(name, id, client),
                Action::SignIn,
                None,
                AuditOutcome::Refused,
                json!({"reason": refused.to_string()}),
            )
            .await;
            back_to_sign_in(&state.auth, &refused.to_string())
        }
    }
}

/// Ends the session (server-side and the cookie) and goes back to the sign-in page.
async fn sign_out(
    State(state): State<AppState>,
    Page(Signed(caller)): Page<Signed>,
    parts: Parts,
) -> ApiResult<Response> {
    if state.auth.end_session(&parts).await? {
        state.audit(&caller, Action::SignOut, None, json!({})).await;
    }
    Ok((
        [(header::SET_COOKIE, state.auth.session_cookie(None))],
        Redirect::to(SIGN_IN_PATH),
    )
        .into_response())
}
