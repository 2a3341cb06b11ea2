//! The scope a request addresses, read from the `{org}` / `{project}` path
//! segments (absent for account scope).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use tether_domain::Scope;

use super::error::ApiError;
use super::AppState;

/// The scope of the request plus the other path parameters.
pub struct ScopePath {
    pub scope: Scope,
    pub params: HashMap<String, String>,
}

impl ScopePath {
    /// A path parameter that the route guarantees.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

impl FromRequestParts<AppState> for ScopePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params): Path<HashMap<String, String>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))?;
        let scope = Scope::from_parts(
            params.get("org").map(String::as_str),
            params.get("project").map(String::as_str),
        )
        .map_err(ApiError::bad_request)?;
        Ok(ScopePath { scope, params })
    }
}
