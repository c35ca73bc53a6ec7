//! Cross-site request forgery: a state-changing request made with a session cookie must come from
//! this service's own pages (`Sec-Fetch-Site`, `Origin`) and carry the session's CSRF token, in
//! the `X-CSRF-Token` header or, from a plain HTML form, the `csrf_token` field. Requests with a
//! bearer token are exempt: a browser never attaches one by itself. The session cookie is also
//! `SameSite=Lax`, so a cross-site POST arrives without it in current browsers anyway.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::caller::Caller;
use super::credential::same_secret;
use super::settings::AuthSettings;
use crate::http::ApiError;

pub const CSRF_HEADER: &str = "x-csrf-token";
/// The hidden field a form carries the token in.
pub const CSRF_FIELD: &str = "csrf_token";
/// The largest form body read to find the token.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Whether a request can change anything (everything but GET, HEAD and OPTIONS).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a state-changing session request without this session's token, or from elsewhere.
pub fn check(parts: &Parts, caller: &Caller, settings: &AuthSettings) -> Result<(), ApiError> {
    let Some(expected) = caller.csrf_token() else {
        return Ok(());
    };
    if !changes_state(&parts.method) {
        return Ok(());
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" {
            return Err(ApiError::Forbidden(format!(
                "a {site} request may not change anything with this session"
            )));
        }
    }
    if let Some(origin) = header("origin") {
        if !same_origin(origin, parts, settings) {
            return Err(ApiError::Forbidden(format!(
                "a request from {origin} may not change anything with this session"
            )));
        }
    }
    match header(CSRF_HEADER) {
        Some(sent) if same_secret(sent, expected) => Ok(()),
        Some(_) => Err(ApiError::Forbidden(
            "the CSRF token does not belong to this session; reload the page".to_owned(),
        )),
        None => Err(ApiError::Forbidden(
            "a request that changes something needs the session's CSRF token (the X-CSRF-Token \
             header, or the csrf_token field of a form)"
                .to_owned(),
        )),
    }
}

/// `origin` is this service: its configured public URL, or the host the request was sent to.
fn same_origin(origin: &str, parts: &Parts, settings: &AuthSettings) -> bool {
    match &settings.public_url {
        Some(public) => origin == public.origin().ascii_serialization(),
        None => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok());
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            host.is_some() && origin_host == host
        }
    }
}

/// Middleware: a form post's `csrf_token` field becomes the `X-CSRF-Token` header, so the one
/// check above serves HTML forms (which cannot set headers) and scripts alike.
pub async fn lift_form_token(request: Request, next: Next) -> Response {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !changes_state(request.method()) || !is_form || request.headers().contains_key(CSRF_HEADER) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_FORM_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge(format!(
                "a form may be at most {} KiB",
                MAX_FORM_BYTES / 1024
            ))
            .into_response();
        }
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        parts
            .headers
            .insert(HeaderName::from_static(CSRF_HEADER), value);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
