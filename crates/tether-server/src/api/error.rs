//! One error shape for every API failure: `{code, message, field?}` with the HTTP
//! status that fits. Messages say what is wrong and how to fix it, and never carry
//! a secret value (store errors are built without them).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tether_domain::ValidationErrors;
use tether_store::StoreError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `INVALID_REQUEST`, `UNAUTHENTICATED`, `FORBIDDEN`,
    /// `NOT_FOUND`, `CONFLICT`, `PAYLOAD_TOO_LARGE`, `UNSUPPORTED_MEDIA_TYPE`,
    /// `VALIDATION_FAILED`, `SECRET_USE_DENIED`, `NO_ELIGIBLE_DELEGATE`,
    /// `MANAGER_RESTARTING`, `SHUTTING_DOWN` or `INTERNAL`.
    #[schema(value_type = String, example = "NOT_FOUND")]
    pub code: &'static str,
    /// What is wrong and how to fix it, for people.
    pub message: String,
    /// The document path of the field at fault (e.g. `spec.credential.spec.masterUrl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field error when validation found several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
    /// With NO_ELIGIBLE_DELEGATE: every delegate considered and why it could not.
    /// (A boxed slice, not a Vec: with `taskId` the error stays small.)
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<crate::delegates::eligibility::Considered>)]
    pub considered: Box<[crate::delegates::eligibility::Considered]>,
    /// With MANAGER_RESTARTING: the task that goes on without this request;
    /// ask again with `?taskId=` to get its result.
    /// (Boxed: it is rare, and every `Result<_, ApiError>` stays small.)
    #[serde(rename = "taskId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    #[allow(clippy::box_collection)]
    pub task_id: Option<Box<String>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                field: None,
                errors: Vec::new(),
                considered: Box::default(),
                task_id: None,
            },
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// The manager is stopping while the request waited for `task_id`, which
    /// goes on: the caller asks again (here after the restart, or elsewhere).
    pub fn restarting(task_id: &str) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "MANAGER_RESTARTING",
            format!(
                "the manager is restarting; the task '{task_id}' goes on and its result is kept: ask again with taskId={task_id} (`tether connector test` follows it by itself)"
            ),
        );
        e.body.task_id = Some(Box::new(task_id.to_string()));
        e
    }

    pub fn validation(errs: &ValidationErrors) -> Self {
        Self::field_errors(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED", errs)
    }

    /// 403 `SECRET_USE_DENIED`: a connector may not use a secret it references
    /// (no use grant for its scope, or a URL outside the secret's hosts).
    pub fn secret_use_denied(errs: &ValidationErrors) -> Self {
        Self::field_errors(StatusCode::FORBIDDEN, "SECRET_USE_DENIED", errs)
    }

    fn field_errors(status: StatusCode, code: &'static str, errs: &ValidationErrors) -> Self {
        let first = errs.first();
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: first
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "invalid document".into()),
                field: first.map(|e| e.field.clone()),
                errors: errs
                    .0
                    .iter()
                    .map(|e| FieldErrorBody {
                        field: e.field.clone(),
                        message: e.message.clone(),
                    })
                    .collect(),
                considered: Box::default(),
                task_id: None,
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::Conflict { .. } => ApiError::conflict(e.to_string()),
            StoreError::Validation(errs) => ApiError::validation(&errs),
            StoreError::SecretUseDenied(errs) => ApiError::secret_use_denied(&errs),
            other => {
                // Internal details go to the log (they never contain secret values);
                // the client gets a stable message.
                tracing::error!(error = %other, "store failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "the manager could not complete the request; see its log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
