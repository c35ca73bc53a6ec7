//! The admin console: server-rendered pages (askama templates in `templates/console/`) on the
//! same app and behind the same guards as the JSON API. Every action is a plain form POST with
//! the session's CSRF field, answered with a redirect, so every page works without JavaScript;
//! the vendored `assets/` (a stylesheet, htmx and a few lines of script for live progress) only
//! make it nicer.

mod admin;
mod assets;
mod connect;
mod notifications;
mod operator;
mod pause;
mod people_sync;
mod reports;
mod tenant;

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{ApiError, Route};
use crate::auth::caller::Caller;
use crate::store::{RunRecord, RunStatus};

pub(super) fn routes() -> Vec<Route> {
    [
        assets::routes(),
        tenant::routes(),
        reports::routes(),
        operator::routes(),
        connect::routes(),
        notifications::routes(),
        admin::routes(),
        pause::routes(),
        people_sync::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(super) use tenant::tenants_page;

/// What every console page shows around its content: who is signed in, the sign-out form with
/// the session's CSRF token, and the operator's menu.
#[derive(Debug, Clone)]
pub struct Shell {
    pub name: String,
    pub csrf: String,
    pub operator: bool,
}

impl Shell {
    pub fn of(caller: &Caller) -> Self {
        Self {
            name: caller.name.clone(),
            csrf: caller.csrf_token().unwrap_or_default().to_owned(),
            operator: caller.access.operator,
        }
    }
}

/// An instant in a tenant's zone, with the zone's abbreviation and offset:
/// `2026-03-29 01:30 BST (UTC+01:00)`.
pub fn local_time(zone: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %Z (UTC%:z)")
        .to_string()
}

/// A run's status as words (never colour alone) and the CSS class that colours it.
pub fn status_badge(status: RunStatus) -> (&'static str, &'static str) {
    match status {
        RunStatus::Running => ("Running", "badge running"),
        RunStatus::Succeeded => ("Succeeded", "badge ok"),
        RunStatus::CompletedWithErrors => ("Completed with errors", "badge warn"),
        RunStatus::Failed => ("Failed", "badge bad"),
        RunStatus::Interrupted => ("Interrupted", "badge bad"),
        RunStatus::Held => ("Held for approval", "badge held"),
        RunStatus::Rejected => ("Rejected (held, not applied)", "badge held"),
        RunStatus::Skipped => ("Skipped", "badge none"),
    }
}

/// "Manual (Ada Lovelace)" or "Automatic".
pub fn trigger_text(run: &RunRecord) -> String {
    match &run.trigger.by {
        Some(by) => format!("{} ({by})", run.trigger.kind.as_str()),
        None => run.trigger.kind.as_str().to_owned(),
    }
}

/// A page that could not be shown, as a page: the same status and sentence as the API's error,
/// and its code in `data-error-code` for tests and scripts.
#[derive(Template, WebTemplate)]
#[template(path = "console/error.html")]
struct ErrorPage {
    status: u16,
    title: &'static str,
    code: &'static str,
    message: String,
}

/// Renders `error` as an HTML page (the console's answer where the API answers JSON).
pub fn error_page(error: ApiError) -> Response {
    let (status, code) = error.status_and_code();
    if let ApiError::Internal(err) = &error {
        tracing::error!(error = format!("{err:#}"), "page failed");
    }
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::UNAUTHORIZED => "Sign in",
        StatusCode::CONFLICT => "Not done",
        StatusCode::BAD_REQUEST => "Not valid",
        StatusCode::BAD_GATEWAY => "Could not connect",
        _ => "Something went wrong",
    };
    let page = ErrorPage {
        status: status.as_u16(),
        title,
        code,
        message: error.to_string(),
    };
    (status, page).into_response()
}

/// A console handler's error: rendered as a page.
pub struct PageError(pub ApiError);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.0)
    }
}

impl<E> From<E> for PageError
where
    ApiError: From<E>,
{
    fn from(err: E) -> Self {
        Self(ApiError::from(err))
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;
