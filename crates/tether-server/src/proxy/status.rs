//! Failures as a Kubernetes `Status` object, which kubectl and every client
//! library print as the error ("Error from server (Forbidden): ..."), or as
//! text for discovery requests, the only form kubectl prints there.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A `Status` failure: HTTP code, Kubernetes reason, message.
#[derive(Debug, Clone)]
pub struct KubeStatus {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl KubeStatus {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        KubeStatus {
            code,
            reason,
            message: message.into(),
        }
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", m)
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", m)
    }
    pub fn bad_gateway(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "ServiceUnavailable", m)
    }

    /// The answer to a request for the Kubernetes API path `path`: a
    /// `Status`, or text kubectl prints during discovery
    /// (`tether_domain::proxy_failure`).
    pub fn answer(&self, path: &str) -> Response {
        let a = tether_domain::proxy_failure::answer(
            self.code.as_u16(),
            self.reason,
            &self.message,
            path,
        );
        let code = StatusCode::from_u16(a.code).unwrap_or(self.code);
        let mut r = (code, a.body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        );
        r
    }
}

impl IntoResponse for KubeStatus {
    fn into_response(self) -> Response {
        self.answer("")
    }
}

impl From<tether_store::StoreError> for KubeStatus {
    fn from(e: tether_store::StoreError) -> Self {
        match e {
            tether_store::StoreError::NotFound { .. } => KubeStatus::not_found(e.to_string()),
            other => {
                tracing::error!(error = %other, "store error while proxying");
                KubeStatus::internal("tether's store failed; retry, and check the manager's log")
            }
        }
    }
}
