//! Authentication and authorization of every request.
//!
//! A caller presents an API token (`Authorization: Bearer tth_...`). The store
//! finds it by hash; the token's scope must cover the scope the request touches
//! and its role must be high enough for the action. Both checks happen in the
//! handler through [`Caller::require`], so no route can forget the scope: a
//! handler cannot reach the store for a scope without passing one.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tether_domain::Scope;
use tether_store::{Role, TokenRecord};

use super::error::ApiError;
use super::AppState;

/// The authenticated caller of a request.
pub struct Caller(pub TokenRecord);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "no API token: send 'Authorization: Bearer <token>' (the first admin token is in <data-dir>/admin-token)",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        match state.store.authenticate(token).await? {
            Some(record) => Ok(Caller(record)),
            None => Err(ApiError::unauthorized(
                "the API token is unknown or revoked; create a new one with `tether token create`",
            )),
        }
    }
}

impl Caller {
    /// Refuses unless this caller's token covers `scope` with at least `role`.
    pub fn require(&self, scope: &Scope, role: Role) -> Result<(), ApiError> {
        let token = &self.0;
        if !token.scope.covers(scope) {
            return Err(ApiError::forbidden(format!(
                "this token belongs to {} and cannot reach {scope}",
                token.scope
            )));
        }
        if token.role < role {
            return Err(ApiError::forbidden(format!(
                "this token's role is {}; this action needs {}",
                token.role.as_str(),
                role.as_str()
            )));
        }
        Ok(())
    }

    /// [`Caller::require`], then 404 when the org or project does not exist. The
    /// order matters: a caller learns nothing about scopes it may not reach.
    pub async fn authorize(
        &self,
        state: &AppState,
        scope: &Scope,
        role: Role,
    ) -> Result<(), ApiError> {
        self.require(scope, role)?;
        match scope {
            Scope::Account => {}
            Scope::Org(o) => {
                state.store.get_org(o).await?;
            }
            Scope::Project { org, project } => {
                state.store.get_project(org, project).await?;
            }
        }
        Ok(())
    }

    /// True when the caller could read `scope` (used to filter lists).
    pub fn can_see(&self, scope: &Scope) -> bool {
        self.0.scope.covers(scope)
    }
}
