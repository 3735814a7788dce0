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

/// Middleware: an error response that is not JSON yet (axum's own answers:
/// `405` for a method a route does not take, a path that does not decode,
/// ...) becomes `{"error", "message"}` like every other, its headers
/// (`Allow`, `Retry-After`) kept.
pub async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if let Some(allow) = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()) {
        message = format!("{method} is not allowed here; this route takes {allow}");
    } else if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_string();
    }
    let mut answer = ApiError::new(status, code_for(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The code of HTTP.md's table for a status.
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "too_many_requests",
        503 => "unavailable",
        507 => "io",
        400..=499 => "invalid_input",
        _ => "internal",
    }
}
