//! The HTTP API (`/api/v1`, JSON) and the operational endpoints, built by [`app`] apart from
//! serving so tests can mount it on any listener. Every tenant's routes carry `{tenant}` in the
//! path, so each can be guarded per tenant.

mod error;
mod health;
mod runs;
mod tenants;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ApiResult};

use crate::service::Runner;
use crate::store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub runner: Runner,
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.runner.context().store
    }
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

pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(tenants::router())
        .merge(runs::router())
        .layer(middleware::from_fn(track))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("request", method = %request.method(), route = %route_of(request))
        }))
        .with_state(state)
}
