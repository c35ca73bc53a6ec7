//! The HTTP API (`/api/v1`, JSON), the sign-in pages and the operational endpoints, built by
//! [`app`] apart from serving so tests can mount it on any listener.
//!
//! Every route is declared once, in [`routes`], with the [`Guard`] it requires; the router is
//! built from that table, and `tests/authorization.rs` walks the same table, so a route cannot
//! be added without its guard being tested for every kind of caller.

pub(crate) mod access;
pub(crate) mod audit_log;
mod console;
mod error;
pub mod extract;
mod health;
mod me;
pub(crate) mod notifications;
pub mod openapi;
mod pages;
pub(crate) mod pause;
pub(crate) mod people;
pub(crate) mod runs;
pub(crate) mod tenants;
pub(crate) mod tokens;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub(crate) use console::error_page;
pub use error::{ApiError, ApiResult};
pub use health::metrics_app;
pub use pages::escape as escape_html;

use crate::audit::{self, Action, Actor};
use crate::auth::Auth;
use crate::auth::caller::Caller;
use crate::domain::{AccessRole, SecretEnvPolicy, TenantKey};
use crate::store::Store;
use crate::store::access::AuditOutcome;
use crate::sync::Runner;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub runner: Runner,
    pub auth: Arc<Auth>,
    /// Which environment variables tenant settings may name (checked on `PUT`).
    pub secrets: SecretEnvPolicy,
}

impl AppState {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.runner.context().store
    }
}

impl AppState {
    /// Records an audit event for what `caller` just did.
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        action: Action,
        tenant: Option<&TenantKey>,
        detail: serde_json::Value,
    ) {
        audit::record(
            self.auth.access().as_ref(),
            self.auth.now(),
            &Actor::of(caller),
            action,
            tenant,
            AuditOutcome::Ok,
            detail,
        )
        .await;
    }
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// What a route requires of its caller. Declared in the route table, enforced by the
/// extractor its handler takes (`crate::auth::extract`), and checked for every route and every
/// kind of caller by `tests/authorization.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone: health, readiness, the sign-in flow.
    Public,
    /// Any signed-in person or API token.
    Signed,
    /// At least this role on the path's `{tenant}` (`Viewer` or `TenantAdmin`).
    Tenant(AccessRole),
    /// An operator, on a `{tenant}` that may not exist yet.
    ConfigureTenant,
    /// An operator.
    Operator,
}

/// JSON API routes answer 401; page routes send an anonymous visitor to sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Api,
    Page,
}

/// One route as declared: method, path template, guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub guard: Guard,
    pub surface: Surface,
}

/// A route and its handler.
pub struct Route {
    pub spec: RouteSpec,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new<H, T>(
        surface: Surface,
        method: Method,
        path: &'static str,
        guard: Guard,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a routable method");
        Self {
            spec: RouteSpec {
                method,
                path,
                guard,
                surface,
            },
            handler: on(filter, handler),
        }
    }

    pub(crate) fn api<H, T>(method: Method, path: &'static str, guard: Guard, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new(Surface::Api, method, path, guard, handler)
    }

    pub(crate) fn page<H, T>(method: Method, path: &'static str, guard: Guard, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self::new(Surface::Page, method, path, guard, handler)
    }
}

/// Every route of the service.
pub fn routes() -> Vec<Route> {
    [
        health::routes(),
        pages::routes(),
        console::routes(),
        me::routes(),
        tenants::routes(),
        runs::routes(),
        pause::routes(),
        people::routes(),
        notifications::routes(),
        access::routes(),
        tokens::routes(),
        audit_log::routes(),
        openapi::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The route table without handlers, for tests and documentation.
pub fn route_specs() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

/// Request latency by route template (not raw path), method and status.
async fn track(request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("dirsync_http_request_duration_seconds", "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn no_route(uri: Uri) -> Response {
    ApiError::NotFound(format!("there is nothing at {}", uri.path())).into_response()
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    ApiError::MethodNotAllowed(format!("{} does not answer {method}", uri.path())).into_response()
}

/// Headers every response carries: nothing is framed, sniffed, cached or sent on as a referrer
/// (a sign-in callback's URL holds a code; pages send one only to this service), unless a handler
/// says otherwise.
fn security_headers(router: Router<AppState>) -> Router<AppState> {
    let headers = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    // A page's own forms must carry its origin (`Origin: null` under `no-referrer` would fail
    // the CSRF check), so HTML pages send a referrer to this service and nowhere else.
    let router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::REFERRER_POLICY,
        |response: &Response| {
            let html = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/html"));
            html.then(|| HeaderValue::from_static("same-origin"))
        },
    ));
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes() {
        router = router.route(route.spec.path, route.handler);
    }
    security_headers(router.fallback(no_route).method_not_allowed_fallback(wrong_method))
        .layer(middleware::from_fn(crate::auth::csrf::lift_form_token))
        .layer(middleware::from_fn(track))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("request", method = %request.method(), route = %route_of(request))
        }))
        .with_state(state)
}
