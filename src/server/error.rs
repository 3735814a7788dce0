//! Errors as every dialect answers them: `{"error": CODE, "message": TEXT}`
//! with the status of HTTP.md's table. The one place where library errors
//! become status codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::Error;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The code of HTTP.md's table (`invalid_input`, `not_found`, ...).
    pub code: &'static str,
    /// What went wrong, in words a client can act on.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// `400 invalid_input`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `413 payload_too_large`, stating the limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes (--max-body-bytes)"),
        )
    }

    /// `409 session_mismatch`.
    pub fn session(expected: u64, given: &str) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            "session_mismatch",
            format!("push session {given} is not the index's current session {expected}: the server restarted"),
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let (status, code) = match &e {
            Error::InvalidUri { .. } => (StatusCode::BAD_REQUEST, "invalid_uri"),
            Error::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
            Error::NotFound { .. } | Error::ConnectorNotFound { .. } | Error::NoIndex { .. } => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            Error::SessionMismatch { .. } => (StatusCode::CONFLICT, "session_mismatch"),
            Error::Locked { .. } | Error::Closed | Error::Poisoned { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Error::Corrupt { .. } | Error::UnsupportedVersion { .. } | Error::BadRecord { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "corrupt")
            }
            Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "io"),
            Error::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"pushdex\", Bearer"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;
