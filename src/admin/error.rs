//! The admin routes' errors, each answered as JSON: `{ "error": <what happened, for people>,
//! "reason": <a stable snake_case code> }`, plus `"parameter"` when one query parameter is
//! to blame.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::{ErrorKind, StoreError};

/// How long a client is told to wait after a transient store failure.
const RETRY_AFTER_SECONDS: &str = "1";

/// Why an admin request failed.
#[derive(Debug)]
pub(super) enum ApiError {
    /// A query parameter is unknown, repeated or has a bad value.
    BadParameter { parameter: String, why: String },
    /// The request body (or a path segment) cannot be used.
    BadRequest(String),
    /// Nothing under that name.
    NotFound(String),
    /// No token, or a token that is not one of the configured ones.
    Unauthorized {
        /// A token was given but matched none.
        wrong: bool,
    },
    /// Refused for this caller: a read-only token on a write route, or a browser request to
    /// open admin routes.
    Forbidden(&'static str),
    /// The request clashes with the current state (another process leads the work).
    Conflict(String),
    /// The store failed.
    Store(StoreError),
}

impl ApiError {
    pub(super) fn parameter(parameter: impl Into<String>, why: impl Into<String>) -> Self {
        Self::BadParameter {
            parameter: parameter.into(),
            why: why.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

fn body(error: String, reason: &str) -> serde_json::Value {
    serde_json::json!({ "error": error, "reason": reason })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadParameter { parameter, why } => {
                let mut json = body(
                    format!("query parameter {parameter:?}: {why}"),
                    "bad_parameter",
                );
                json["parameter"] = parameter.into();
                (StatusCode::BAD_REQUEST, Json(json)).into_response()
            }
            Self::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, Json(body(why, "bad_request"))).into_response()
            }
            Self::NotFound(what) => {
                (StatusCode::NOT_FOUND, Json(body(what, "not_found"))).into_response()
            }
            Self::Unauthorized { wrong } => {
                let (challenge, error) = if wrong {
                    (
                        r#"Bearer realm="hookdock-admin", error="invalid_token""#,
                        "the admin token is not valid",
                    )
                } else {
                    (
                        r#"Bearer realm="hookdock-admin""#,
                        "an admin token is required: Authorization: Bearer <token>",
                    )
                };
                (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(challenge),
                    )],
                    Json(body(error.into(), "unauthorized")),
                )
                    .into_response()
            }
            Self::Forbidden(why) => {
                (StatusCode::FORBIDDEN, Json(body(why.into(), "forbidden"))).into_response()
            }
            Self::Conflict(why) => {
                (StatusCode::CONFLICT, Json(body(why, "conflict"))).into_response()
            }
            Self::Store(error) => store_error(error),
        }
    }
}

/// A store failure by its kind (an unknown replay job `404`): transient `503` + `Retry-After`, invalid input `400`, a lost
/// lease or claim `409`, internal `500` (details logged, not answered).
fn store_error(error: StoreError) -> Response {
    if let StoreError::UnknownReplayJob(_) = error {
        return (
            StatusCode::NOT_FOUND,
            Json(body(error.to_string(), "not_found")),
        )
            .into_response();
    }
    match error.kind() {
        ErrorKind::Transient => {
            tracing::warn!(%error, "admin request: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                )],
                Json(body(error.to_string(), "unavailable")),
            )
                .into_response()
        }
        ErrorKind::InvalidInput => {
            let reason = match &error {
                StoreError::Invalid(invalid) => invalid.reason(),
                _ => "invalid_input",
            };
            (
                StatusCode::BAD_REQUEST,
                Json(body(error.to_string(), reason)),
            )
                .into_response()
        }
        ErrorKind::Fenced => (
            StatusCode::CONFLICT,
            Json(body(error.to_string(), "conflict")),
        )
            .into_response(),
        _ => {
            tracing::error!(%error, "admin request: store internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(body(
                    "internal store error (details are in the server's log)".into(),
                    "internal",
                )),
            )
                .into_response()
        }
    }
}
