//! Failures as a Kubernetes `Status` object, which kubectl and every client
//! library print as the error ("Error from server (Forbidden): ...").

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

    pub fn body(&self) -> String {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        })
        .to_string()
    }
}

impl IntoResponse for KubeStatus {
    fn into_response(self) -> Response {
        let mut r = (self.code, self.body()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
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
