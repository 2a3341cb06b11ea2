//! Authentication and authorization of every request.
//!
//! A caller presents an API token (`Authorization: Bearer tth_...`). The store
//! finds it by hash; the token's scope must cover the scope the request touches
//! and its role must be high enough for the action. Both checks happen in the
//! handler through [`Caller::require`], so no route can forget the scope: a
//! handler cannot reach the store for a scope without passing one.
//!
//! The web UI's browser sends no token: its session cookie stands for one
//! (see `tether_ui::session`), with a CSRF token on every mutation.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tether_domain::Scope;
use tether_store::{Role, TokenRecord};

use super::error::ApiError;
use super::AppState;

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller(pub TokenRecord);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// Authenticates once per request: the body extractor asks again (to
    /// authorize before reading the body) and gets the same caller.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = authenticate(parts, state).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        return from_session(parts, state).await;
    };
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

/// A request without `Authorization`: the web UI's session cookie, which must
/// come with the session's CSRF token on anything but GET/HEAD/OPTIONS.
async fn from_session(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let no_token = || {
        ApiError::unauthorized(
            "no API token: send 'Authorization: Bearer <token>' (the first admin token is in <data-dir>/admin-token), or sign in to the web UI",
        )
    };
    let Some(sessions) = parts.extensions.get::<tether_ui::Sessions>() else {
        return Err(no_token());
    };
    match sessions.authenticate_api(&parts.method, &parts.headers) {
        tether_ui::ApiSession::None => Err(no_token()),
        tether_ui::ApiSession::CsrfRejected => Err(ApiError::forbidden(tether_ui::CSRF_MESSAGE)),
        tether_ui::ApiSession::Authenticated { token_id } => {
            match state.store.get_token(&token_id).await {
                Ok(record) if record.revoked_at.is_none() => Ok(Caller(record)),
                _ => {
                    sessions.remove_token(&token_id);
                    Err(ApiError::unauthorized(
                        "your session's API token was revoked or deleted; sign in again with a valid token",
                    ))
                }
            }
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

    /// An entity addressed by id alone (an API or delegate token, a task), as
    /// this caller may know it: an unknown id and one out of reach get the same
    /// 404, so ids of other scopes reveal nothing. Other store failures stay
    /// what they are rather than turning into "not found".
    pub fn reach<T>(
        &self,
        found: Result<T, tether_store::StoreError>,
        scope_of: impl Fn(&T) -> &Scope,
        what: &str,
    ) -> Result<T, ApiError> {
        let not_found = || ApiError::not_found(format!("{what} not found"));
        match found {
            Ok(t) if self.can_see(scope_of(&t)) => Ok(t),
            Ok(_) | Err(tether_store::StoreError::NotFound { .. }) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// True when the caller could read `scope` (used to filter lists).
    pub fn can_see(&self, scope: &Scope) -> bool {
        self.0.scope.covers(scope)
    }
}
