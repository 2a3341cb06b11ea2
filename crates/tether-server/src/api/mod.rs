//! Routes of `/api/v1`. Each resource has its own module; the same handlers serve
//! the account, org and project scopes (`/api/v1/...`, `/api/v1/orgs/{org}/...`,
//! `/api/v1/orgs/{org}/projects/{project}/...`).

pub mod auth;
pub mod body;
pub mod builds;
pub mod connection_tests;
pub mod connectors;
pub mod delegates;
pub mod deploys;
mod doc_path;
pub mod error;
pub mod kube;
pub mod openapi;
pub mod orgs;
pub mod scope;
pub mod secrets;
pub mod test_history;
pub mod tokens;
mod yaml_depth;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

use tether_store::Store;

use crate::connectivity::{ConnectionTests, TestSettings};
use crate::delegates::Broker;
use tower_http::trace::TraceLayer;

use error::ApiError;

/// Largest request body accepted. Connector documents are a few KiB; a secret
/// value (a PEM bundle) is at most the store's limit plus JSON framing.
pub const BODY_LIMIT: usize = 1 << 20;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub broker: Arc<Broker>,
    /// Background connection tests, their settings and metrics.
    pub tests: Arc<ConnectionTests>,
    /// The Kubernetes API through delegates: tunnels, open streams.
    pub proxy: Arc<crate::proxy::Proxy>,
}

impl AppState {
    /// With the default connection test settings ([`TestSettings::default`]).
    pub fn new(store: Store, broker: Arc<Broker>) -> AppState {
        AppState::with_tests(store, broker, TestSettings::default())
    }

    pub fn with_tests(store: Store, broker: Arc<Broker>, tests: TestSettings) -> AppState {
        AppState {
            store,
            broker,
            tests: ConnectionTests::new(tests),
            proxy: crate::proxy::Proxy::new(Default::default()),
        }
    }

    /// With these proxy settings (advertised URL, audit retention).
    pub fn with_proxy(mut self, settings: crate::proxy::ProxySettings) -> AppState {
        self.proxy = crate::proxy::Proxy::new(settings);
        self
    }
}

/// Routes that exist at every scope.
fn scoped_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/connectors/{identifier}",
            get(connectors::get)
                .put(connectors::put)
                .delete(connectors::delete),
        )
        .route("/secrets", get(secrets::list).post(secrets::create))
        .route(
            "/secrets/{identifier}",
            get(secrets::get)
                .put(secrets::update)
                .delete(secrets::delete),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route(
            "/connectors/{identifier}/test",
            axum::routing::post(connection_tests::run),
        )
        .route(
            "/connectors/{identifier}/test-history",
            get(test_history::list),
        )
        .route(
            "/connectors/{identifier}/deploy",
            axum::routing::post(deploys::create),
        )
        .route("/connectors/{identifier}/releases", get(deploys::releases))
        .route(
            "/connectors/{identifier}/builds",
            get(builds::list).post(builds::create),
        )
        .route("/delegates", get(delegates::list))
        .route("/delegates/{delegate}", get(delegates::get))
        .route(
            "/delegate-tokens",
            get(delegates::list_tokens).post(delegates::create_token),
        )
        .route("/tasks", axum::routing::post(delegates::create_task))
        .route(
            "/connectors/{identifier}/kubeconfig",
            axum::routing::post(kube::kubeconfig),
        )
        .route("/audit", get(kube::audit))
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(scoped_routes())
        .nest("/orgs/{org}", scoped_routes())
        .nest("/orgs/{org}/projects/{project}", scoped_routes())
        .route("/orgs", get(orgs::list_orgs).post(orgs::create_org))
        .route("/orgs/{org}", get(orgs::get_org).delete(orgs::delete_org))
        .route(
            "/orgs/{org}/projects",
            get(orgs::list_projects).post(orgs::create_project),
        )
        .route(
            "/orgs/{org}/projects/{project}",
            get(orgs::get_project).delete(orgs::delete_project),
        )
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/whoami", get(tokens::whoami))
        .route(
            "/delegate-tokens/{id}",
            axum::routing::delete(delegates::revoke_token),
        )
        .route("/tasks/{id}", get(delegates::get_task))
        .route("/tasks/{id}/events", get(crate::task_events::events))
        .route("/tasks/{id}/cancel", axum::routing::post(builds::cancel))
        .route("/delegates/connect", get(crate::delegates::connect))
        .route("/delegates/tunnel", get(crate::proxy::tunnel));
    // The web UI (`/`, `/login`, `/connectors`, ...) answers what the API does
    // not: it is the fallback, so the API's routes stay the router's own (and
    // the OpenAPI document's). Its sessions also authenticate API calls (auth.rs).
    let sessions = tether_ui::Sessions::default();
    let ui = tether_ui::router::<()>(tether_ui::UiState::new(
        state.store.clone(),
        sessions.clone(),
    ))
    .fallback(|| async { ApiError::not_found("no such endpoint; the API lives under /api/v1") });
    Router::new()
        .nest("/api/v1", api)
        .route(openapi::PATH, get(openapi::serve))
        .route("/healthz", get(|| async { "ok" }))
        .route(crate::metrics::PATH, get(crate::metrics::serve))
        // `/k8s/...`, a connector's Kubernetes API, is the cluster's API passed
        // through (its own document is the cluster's `/openapi/v2`), not a
        // route of this API: it is served ahead of the web UI in the fallback.
        // Bodies stream, so no body limit applies.
        .fallback(
            move |state: axum::extract::State<AppState>, req: axum::extract::Request| async move {
                if req.uri().path().starts_with("/k8s/") {
                    crate::proxy::handle(state, req).await
                } else {
                    use tower::ServiceExt;
                    match ui.oneshot(req).await {
                        Ok(r) => axum::response::IntoResponse::into_response(r),
                        Err(e) => match e {},
                    }
                }
            },
        )
        .layer(axum::Extension(sessions))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Logs method, path and status; never headers or bodies, which carry
        // tokens and secret values.
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
