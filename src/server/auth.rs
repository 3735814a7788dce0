//! Authentication: `Authorization: Bearer <token>`, or HTTP Basic with any
//! user name and the token as password (Push API clients use Basic).
//! Checked before anything else; tokens compared in constant time.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// Routes that answer without a token.
fn is_open(path: &str) -> bool {
    matches!(path, "/health/live" | "/health/ready")
}

/// The token a request presents, if any.
fn presented(request: &Request) -> Option<Vec<u8>> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

/// The middleware: `401 unauthorized` unless the request carries the token.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let good = presented(&request).is_some_and(|token| bool::from(token.ct_eq(state.token.as_bytes())));
    if !good {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a token is required: Authorization: Bearer <token>, or Basic with the token as password",
        )
        .into_response();
    }
    next.run(request).await
}
