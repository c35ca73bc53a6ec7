//! The API's one error type: a stable code, a sentence, one status mapping, opaque 5xx.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::store::{ApprovalRefused, RejectionRefused, StoreError};
use crate::sync::{ApproveError, RejectError, SyncError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or ones that are not valid (any more).
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed to do this (or a request without its CSRF token).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Conflict(String),
    /// Something upstream (Entra, the target) could not be reached or read.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
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
        let body = Json(json!({"error": {"code": code, "message": self.to_string()}}));
        if matches!(self, Self::Unauthorized(_)) {
            let challenge = [(header::WWW_AUTHENTICATE, "Bearer realm=\"dirsync\"")];
            return (status, challenge, body).into_response();
        }
        (status, body).into_response()
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
            SyncError::Paused(message) => Self::Conflict(message),
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

impl From<RejectError> for ApiError {
    fn from(err: RejectError) -> Self {
        match err {
            RejectError::Refused(refused @ RejectionRefused::UnknownRun { .. }) => {
                Self::NotFound(refused.to_string())
            }
            RejectError::Refused(
                refused @ (RejectionRefused::NoRejecter | RejectionRefused::ReasonTooLong),
            ) => Self::BadRequest(refused.to_string()),
            RejectError::Refused(refused) => Self::Conflict(refused.to_string()),
            RejectError::Sync(err) => err.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
