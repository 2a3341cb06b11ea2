//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API, generated
//! from the code. Each handler carries a `#[utoipa::path]` attribute (path,
//! parameters, bodies, every status it can answer with); the bodies derive
//! `utoipa::ToSchema`, the connector document through `tether-domain`'s
//! `openapi` feature.
//!
//! The resource routes of `scoped_routes()` exist at three scopes. Their handlers
//! are documented once, at account scope, and listed in [`ScopedApi`];
//! [`document`] copies each of them under `/orgs/{org}` and
//! `/orgs/{org}/projects/{project}` with the extra path parameters and an
//! operation id of their own.
//!
//! `tests/openapi.rs` compares the document with the routes the router really
//! registers, so a route added without documentation fails the tests.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required};
use utoipa::{OpenApi, ToResponse};

use super::error::ErrorBody;
use super::{connectors, orgs, secrets, tokens};

/// Where the document is served (no API token needed).
pub const PATH: &str = "/api/v1/openapi.json";

/// The name of the security scheme every authenticated operation requires.
pub const BEARER: &str = "bearer";

/// Documented here rather than on a handler: the router serves it with a closure.
const HEALTHZ: &str = "/healthz";

/// One scope the routes of [`ScopedApi`] are served at.
struct ScopeLevel {
    /// Path prefix after `/api/v1`.
    prefix: &'static str,
    /// Appended to the operation ids, which must be unique in the document.
    operation_suffix: &'static str,
    /// The path parameters the prefix adds: name, description.
    params: &'static [(&'static str, &'static str)],
}

/// The scopes of `scoped_routes()`, as `router()` nests it.
const SCOPES: &[ScopeLevel] = &[
    ScopeLevel {
        prefix: "",
        operation_suffix: "",
        params: &[],
    },
    ScopeLevel {
        prefix: "/orgs/{org}",
        operation_suffix: "InOrg",
        params: &[("org", "Identifier of the org whose entities are addressed.")],
    },
    ScopeLevel {
        prefix: "/orgs/{org}/projects/{project}",
        operation_suffix: "InProject",
        params: &[
            ("org", "Identifier of the org of the project."),
            (
                "project",
                "Identifier of the project whose entities are addressed.",
            ),
        ],
    },
];

/// The routes of `scoped_routes()`, served at every scope of [`SCOPES`].
#[derive(OpenApi)]
#[openapi(paths(
    connectors::list,
    connectors::create,
    connectors::get,
    connectors::put,
    connectors::delete,
    secrets::list,
    secrets::create,
    secrets::get,
    secrets::update,
    secrets::delete,
    tokens::list,
    tokens::create,
))]
struct ScopedApi;

/// The routes that exist once.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tether manager API",
        description = "The REST API of the tether manager: orgs and projects, `K8sCluster` connectors, \
secrets (values go in, never come out) and scoped API tokens.\n\n\
Connectors, secrets and tokens live at three scopes with the same routes: the account \
(`/api/v1/connectors`), an org (`/api/v1/orgs/{org}/connectors`) and a project \
(`/api/v1/orgs/{org}/projects/{project}/connectors`).\n\n\
Request bodies are JSON or YAML (by `Content-Type`); responses are JSON unless `Accept` asks \
for `application/yaml`. Every error has one JSON shape, `ErrorBody`. Authenticate with \
`Authorization: Bearer <token>`; the first admin token is in `<data-dir>/admin-token`."
    ),
    paths(
        orgs::list_orgs,
        orgs::create_org,
        orgs::get_org,
        orgs::delete_org,
        orgs::list_projects,
        orgs::create_project,
        orgs::get_project,
        orgs::delete_project,
        tokens::revoke,
        tokens::whoami,
        serve,
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            Unprocessable,
            Internal
        )
    ),
    tags(
        (name = "connectors", description = "`K8sCluster` connectors: a cluster's API server URL and the secrets holding its credentials."),
        (name = "secrets", description = "Text secrets, encrypted at rest. Responses carry metadata only, never the value."),
        (name = "tokens", description = "API tokens bound to a scope and a role (viewer, editor, admin)."),
        (name = "orgs", description = "Orgs and their projects: the scopes below the account."),
        (name = "meta", description = "The manager itself."),
    )
)]
struct ApiDoc;

/// The whole document: [`ApiDoc`], [`ScopedApi`] at every scope, `/healthz`,
/// the bearer scheme required by every operation but the public ones.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut scoped = ScopedApi::openapi();
    let scoped_paths = std::mem::take(&mut scoped.paths.paths);
    // Brings the schemas of the scoped bodies.
    doc.merge(scoped);
    for (path, item) in &scoped_paths {
        let rest = path
            .strip_prefix("/api/v1")
            .expect("scoped routes are documented under /api/v1");
        for scope in SCOPES {
            let mut item = item.clone();
            for op in operations_mut(&mut item) {
                if let Some(id) = &mut op.operation_id {
                    id.push_str(scope.operation_suffix);
                }
                let mut all: Vec<Parameter> = scope
                    .params
                    .iter()
                    .map(|(name, description)| path_param(name, description))
                    .collect();
                all.extend(op.parameters.take().unwrap_or_default());
                op.parameters = (!all.is_empty()).then_some(all);
            }
            doc.paths
                .paths
                .insert(format!("/api/v1{}{rest}", scope.prefix), item);
        }
    }

    doc.paths.add_path_operation(
        HEALTHZ,
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag("meta")
            .operation_id(Some("healthz"))
            .summary(Some("Liveness probe"))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The manager is serving; the body is `ok`.")
                    .content(
                        "text/plain",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .build(),
                    ),
            )
            .build(),
    );

    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`tth_…`), from `tether token create` or `POST …/tokens`.",
                    ))
                    .build(),
            ),
        );
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for public in [PATH, HEALTHZ] {
        let item = doc
            .paths
            .paths
            .get_mut(public)
            .expect("public routes are documented");
        for op in operations_mut(item) {
            // `[]` overrides the document's requirement: no token needed.
            op.security = Some(Vec::new());
        }
    }
    doc
}

/// The document as served, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_json()
        .expect("the OpenAPI document serialises to JSON")
});

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "getOpenApiDocument",
    summary = "This document",
    description = "The OpenAPI 3.1 document of this API, generated from the manager's code. No API token needed.",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object),
    ),
)]
pub async fn serve() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        DOCUMENT.as_str(),
    )
        .into_response()
}

fn path_param(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// Every operation of a path item, whatever its method.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// One reusable error response per status: an [`ErrorBody`] in JSON (errors are
/// always JSON, whatever `Accept` says).
macro_rules! error_responses {
    ($($name:ident => $description:literal,)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                (
                    stringify!($name),
                    ResponseBuilder::new()
                        .description($description)
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                        )
                        .build()
                        .into(),
                )
            }
        }
    )*};
}

error_responses! {
    BadRequest => "The request is malformed: a body that is empty, not UTF-8, not valid JSON/YAML or has unknown or mistyped fields; a bad path or query parameter; or a document that contradicts the URL (`INVALID_REQUEST`, with `field` when one is to blame).",
    Unauthorized => "No API token, a malformed `Authorization` header, or an unknown or revoked token (`UNAUTHENTICATED`).",
    Forbidden => "The token's scope does not cover the addressed scope, or its role is too low for the action (`FORBIDDEN`).",
    NotFound => "The addressed entity, or the org or project of the path, does not exist (`NOT_FOUND`).",
    Conflict => "The identifier is already taken in the scope, or the entity is still in use (`CONFLICT`); the message names what conflicts.",
    PayloadTooLarge => "The request body is larger than 1 MiB (`PAYLOAD_TOO_LARGE`).",
    UnsupportedMediaType => "`Content-Type` is neither JSON (`application/json`) nor YAML (`application/yaml`) (`UNSUPPORTED_MEDIA_TYPE`).",
    Unprocessable => "The document is well-formed but breaks a rule, e.g. a bad identifier or a secret reference that does not resolve (`VALIDATION_FAILED`); `errors` lists every field.",
    Internal => "The manager could not complete the request (`INTERNAL`); details are in its log.",
}

/// The role of an API token, as the API spells it (documentation only: the
/// handlers read and write roles as strings).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RoleName {
    /// Reads.
    Viewer,
    /// Reads and writes connectors and secrets.
    Editor,
    /// Also manages API tokens, orgs and projects.
    Admin,
}
