//! The web UI of `tether server`: the connector wizard of the seed document,
//! connectors, delegates, secrets, orgs and projects (and each scope's
//! "Setup" page), served at `/` next to the REST API.
//!
//! Pages are rendered on the server (maud) and a little plain JavaScript fills
//! them from the REST API (`/api/v1`) with the browser's session: every rule
//! about who may see or change what stays in the API. Every asset is compiled
//! into the binary (no CDN, no Node build step): the UI works offline.
//!
//! Layering: this crate knows the store (to check an API token at login and to
//! re-read it on every page) and the delegate manifest, but not the server.
//! `tether-server` depends on it, mounts [`router`] and asks [`Sessions`] to
//! authenticate API requests that carry the session cookie instead of a bearer
//! token, so dependencies point one way: server -> ui -> store/domain/delegate.
#![forbid(unsafe_code)]

pub mod assets;
mod login;
mod manifest;
mod pages;
pub mod session;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tether_store::Store;

pub use session::{ApiSession, SessionInfo, Sessions, CSRF_HEADER, CSRF_MESSAGE};

/// What the UI's handlers need.
#[derive(Clone)]
pub struct UiState {
    pub store: Store,
    pub sessions: Sessions,
}

impl UiState {
    pub fn new(store: Store, sessions: Sessions) -> Self {
        UiState { store, sessions }
    }
}

/// Pages that exist at every scope, like the API's scoped routes.
fn scoped_pages() -> Router<UiState> {
    Router::new()
        .route("/connectors", get(pages::connectors))
        .route("/connectors/new", get(pages::new_connector))
        .route("/connectors/{identifier}", get(pages::connector))
        .route("/connectors/{identifier}/edit", get(pages::edit_connector))
        .route("/delegates", get(pages::delegates))
        .route("/secrets", get(pages::secrets))
        .route("/setup", get(pages::setup))
}

/// The UI's routes: `/`, `/login`, `/logout`, the pages of each scope
/// (`/connectors`, `/orgs/{org}/connectors`, `/orgs/{org}/projects/{project}/connectors`, ...)
/// and `/ui/...` (assets, the delegate manifest). Merge it into the server's router.
pub fn router<S>(state: UiState) -> Router<S> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/ui/delegate-manifest", post(manifest::render))
        .route("/orgs", get(pages::orgs))
        .route("/orgs/{org}/projects", get(pages::projects))
        .merge(scoped_pages())
        .nest("/orgs/{org}", scoped_pages())
        .nest("/orgs/{org}/projects/{project}", scoped_pages())
        .layer(axum::middleware::map_response(page_headers))
        .route("/ui/assets/{file}", get(assets::serve))
        .with_state(state)
}

/// The Content-Security-Policy of every page: nothing but this origin, no
/// inline script or style, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn page_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    // Pages carry the session's CSRF token: never cache them.
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}
