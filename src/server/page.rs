//! `GET /`: the search page, one self-contained HTML file
//! (`page/index.html`: HTML, a little plain JavaScript and CSS, no build
//! step, nothing loaded from elsewhere). It sits behind the token like every
//! route: a browser asks for it (the 401's `WWW-Authenticate: Basic`) and
//! sends it again with the page's same-origin `fetch` calls to `/v1`.
//!
//! Its inline script and style carry a nonce made for each response, and the
//! `Content-Security-Policy` allows those two and requests to this origin
//! only: nothing else runs, loads or posts, whatever a document holds (the
//! page also renders every document text as text).

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::{ApiError, ApiResult};

/// The page, with `{{NONCE}}` where each response's nonce goes.
const PAGE: &str = include_str!("page/index.html");

/// `GET /`.
pub(super) async fn page() -> ApiResult<Response> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::invalid(format!("no randomness for the page's nonce: {e}")))?;
    let nonce = base64::engine::general_purpose::STANDARD.encode(bytes);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).expect("a nonce is base64")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
    ];
    Ok((headers, PAGE.replace("{{NONCE}}", &nonce)).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_self_contained() {
        let page = super::PAGE;
        assert_eq!(page.matches("{{NONCE}}").count(), 2, "one inline style, one inline script");
        for outside in ["src=", "href=\"http", "@import", "url("] {
            assert!(!page.contains(outside), "the page loads nothing: {outside}");
        }
    }
}
