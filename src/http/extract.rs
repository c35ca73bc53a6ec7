//! `Json`, `Path` and `Query` whose rejections answer in the house error shape, naming what is
//! wrong: a bad body, a bad path segment or an unknown query parameter or value is a sentence in
//! `{"error": {"code", "message"}}`, never axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(
                "the body must be JSON (Content-Type: application/json)".to_owned(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(message),
            _ => Self::BadRequest(message),
        }
    }
}

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(format!("the URL is not valid: {}", rejection.body_text()))
    }
}

/// Query parameters: unknown parameters and values are refused, naming the parameter and the
/// values it allows (`severity: unknown variant "bogus", expected one of info, warning, error`).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let problem = err.inner().to_string().replace('`', "");
                ApiError::BadRequest(if path == "." {
                    format!("query parameters: {problem}")
                } else {
                    format!("query parameter {path}: {problem}")
                })
            })
    }
}

/// A page size asked for, clamped to `1..=max`; `note` says so when it was changed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Limit {
    /// How many at most are returned.
    pub limit: usize,
    /// The documented maximum.
    pub max_limit: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_note: Option<String>,
}

impl Limit {
    pub fn clamp(asked: Option<usize>, default: usize, max: usize) -> Self {
        let limit = asked.unwrap_or(default).clamp(1, max);
        let limit_note = match asked {
            Some(asked) if asked > max => Some(format!(
                "limit {asked} is more than the maximum of {max}; at most {max} are returned"
            )),
            Some(0) => Some("limit 0 is less than 1; 1 is returned at most".to_owned()),
            _ => None,
        };
        Self {
            limit,
            max_limit: max,
            limit_note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_above_the_maximum_is_clamped_and_says_so() {
        let limit = Limit::clamp(Some(9000), 200, 5000);
        assert_eq!(limit.limit, 5000);
        assert!(limit.limit_note.unwrap().contains("maximum of 5000"));
        assert_eq!(Limit::clamp(None, 200, 5000).limit, 200);
        assert_eq!(Limit::clamp(Some(10), 200, 5000).limit_note, None);
        assert_eq!(Limit::clamp(Some(0), 200, 5000).limit, 1);
    }
}
