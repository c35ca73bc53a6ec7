//! Liveness and readiness (open to anyone), and the Prometheus metrics, served on their own
//! listener (`server.metrics_listen`, off by default) so the API's port never exposes them.

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use super::{AppState, Guard, Route};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::api(Method::GET, "/healthz", Guard::Public, alive),
        Route::api(Method::GET, "/readyz", Guard::Public, ready),
    ]
}

async fn alive() -> &'static str {
    "ok"
}

/// Ready when the database answers and every migration this build knows has been applied.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store().ready().await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ready"}))),
        Err(err) => {
            // Anyone may ask; the details (hosts, database errors) go to the log only.
            tracing::warn!(%err, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "status": "not ready",
                    "reason": "the database is not reachable or not fully migrated"
                })),
            )
        }
    }
}

/// The metrics listener's app: `GET /metrics` and nothing else.
pub fn metrics_app(handle: Option<PrometheusHandle>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || async move {
            let body = handle.as_ref().map(|m| m.render()).unwrap_or_default();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
        }),
    )
}
