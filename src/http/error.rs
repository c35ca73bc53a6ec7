//! The API's one error type: a stable code, a sentence, one status mapping, opaque 5xx.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::store::{ApprovalRefused, StoreError};
use crate::sync::{ApproveError, SyncError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// Something upstream (Entra, the target) could not be reached or read.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(err) = &self {
            // Logged once, here; the client gets no internals.
            error!(error = format!("{err:#}"), "request failed");
        }
        (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(message) => Self::NotFound(message),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(err: SyncError) -> Self {
        match err {
            SyncError::UnknownTenant(key) => Self::NotFound(format!("no tenant with key {key:?}")),
            SyncError::Store(err) => err.into(),
            SyncError::Unreadable(message) => Self::Upstream(message),
        }
    }
}

impl From<ApproveError> for ApiError {
    fn from(err: ApproveError) -> Self {
        match err {
            ApproveError::Refused(refused @ ApprovalRefused::UnknownRun { .. }) => {
                Self::NotFound(refused.to_string())
            }
            ApproveError::Refused(refused @ ApprovalRefused::NoApprover) => {
                Self::BadRequest(refused.to_string())
            }
            ApproveError::Refused(refused) => Self::Conflict(refused.to_string()),
            ApproveError::Sync(err) => err.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
