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
use super::{
    builds, connection_tests, connectors, delegates, deploys, orgs, secrets, test_history, tokens,
};

/// Where the document is served (no API token needed).
pub const PATH: &str = "/api/v1/openapi.json";

/// The name of the security scheme every authenticated operation requires.
pub const BEARER: &str = "bearer";

/// The name of the security scheme of the delegates' WebSocket, which takes a
/// delegate token rather than an API token.
pub const DELEGATE_BEARER: &str = "delegateToken";

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
    connection_tests::run,
    test_history::list,
    deploys::create,
    builds::create,
    builds::list,
    deploys::releases,
    delegates::list,
    delegates::get,
    delegates::list_tokens,
    delegates::create_token,
    delegates::create_task,
    super::kube::kubeconfig,
    super::kube::audit,
))]
struct ScopedApi;

/// The routes that exist once.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tether manager API",
        description = "The REST API of the tether manager: orgs and projects, `K8sCluster` connectors and \
their connection tests, secrets (values go in, never come out), scoped API tokens, and the delegates \
that run tasks (connection tests among them) next to the clusters.\n\n\
Connectors, secrets, tokens, delegates, delegate tokens and task submission live at three scopes \
with the same routes: the account \
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
        delegates::revoke_token,
        delegates::get_task,
        builds::cancel,
        crate::task_events::events,
        crate::delegates::connect,
        crate::proxy::tunnel,
        serve,
        crate::metrics::serve,
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
            NoEligibleDelegate,
            Internal
        )
    ),
    tags(
        (name = "connectors", description = "`K8sCluster` connectors: a cluster's API server URL and the secrets holding its credentials."),
        (name = "secrets", description = "Text secrets, encrypted at rest. Responses carry metadata only, never the value."),
        (name = "tokens", description = "API tokens bound to a scope and a role (viewer, editor, admin)."),
        (name = "orgs", description = "Orgs and their projects: the scopes below the account."),
        (name = "delegates", description = "Delegates: agents that dial the manager over a WebSocket and run tasks next to the clusters; the tokens they register with."),
        (name = "tasks", description = "Tasks run by delegates: submitted, queued, handed to an eligible delegate, retried on another when one goes away."),
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
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            DELEGATE_BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A delegate token (`tdt_…`), from `tether delegate token create` or `POST …/delegate-tokens`; only for `GET /api/v1/delegates/connect`.",
                    ))
                    .build(),
            ),
        );
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for public in [PATH, HEALTHZ, crate::metrics::PATH] {
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
    Forbidden => "The token's scope does not cover the addressed scope, or its role is too low for the action (`FORBIDDEN`); or a connector may not use a secret it references (`SECRET_USE_DENIED`: the secret has no use grant for the connector's scope, or is bound to hosts its URL is not one of), with `field` naming the reference or URL at fault and the message saying which grant is missing and how to give it.",
    NotFound => "The addressed entity, or the org or project of the path, does not exist (`NOT_FOUND`).",
    Conflict => "The identifier is already taken in the scope, or the entity is still in use (`CONFLICT`); the message names what conflicts.",
    PayloadTooLarge => "The request body is larger than 1 MiB (`PAYLOAD_TOO_LARGE`).",
    UnsupportedMediaType => "`Content-Type` is neither JSON (`application/json`) nor YAML (`application/yaml`) (`UNSUPPORTED_MEDIA_TYPE`).",
    Unprocessable => "The document is well-formed but breaks a rule, e.g. a bad identifier or a secret reference that does not resolve (`VALIDATION_FAILED`); `errors` lists every field.",
    NoEligibleDelegate => "No delegate can run the task (`NO_ELIGIBLE_DELEGATE`): none serves the scope, none carries every selector tag, none is connected, or all are draining. Nothing was queued. The message says what the task needs; `considered` lists the delegates looked at and why each cannot run the task.",
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

/// The kinds of task `POST …/tasks` accepts (documentation only: the handler
/// reads the kind as a string).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub enum SubmittableTaskKind {
    /// Answers with the payload's `message` and the name of the delegate that
    /// ran it: `output: {echo, delegate}`.
    Echo,
}

/// Where a task stands (documentation only: the handlers write it as a string).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TaskStateName {
    /// Waiting for an eligible delegate with a free slot.
    Queued,
    /// Held by a delegate under a lease its heartbeats renew.
    Assigned,
    /// Done; `output` holds the answer.
    Succeeded,
    /// Done; `error` says why.
    Failed,
}

/// One delegate's go at a task. Documentation of `tether_store::TaskAttempt`,
/// which has no schema; `tests/openapi.rs` checks the two carry the same fields.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct TaskAttempt {
    /// From 1.
    attempt: u32,
    delegate_id: String,
    /// Milliseconds since the Unix epoch.
    assigned_at: i64,
    /// Milliseconds since the Unix epoch; absent while the attempt runs.
    ended_at: Option<i64>,
    /// How it ended: `succeeded`, `failed`, or why the task was taken back.
    outcome: Option<String>,
}

/// The report of a connection test. Documentation of
/// `tether_kube::connection_test::ConnectionReport`, which has no schema;
/// `tests/openapi.rs` checks the two carry the same fields.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ConnectionReport {
    /// `SUCCESS` (every stage passed), `PARTIAL` (connected and authenticated, but
    /// some required permissions are missing) or `FAILURE` (a stage failed, or the
    /// test could not run).
    status: tether_domain::connector::ConnectivityState,
    /// One sentence on what went wrong.
    error_summary: Option<String>,
    /// What went wrong: a machine-readable `reason` (e.g. `DNS_RESOLUTION_FAILED`,
    /// `NO_ELIGIBLE_DELEGATE`), a `message` and an HTTP-like `code`.
    errors: Vec<tether_domain::connector::ConnectivityError>,
    /// What is wrong and how to fix it, most specific first. May also hold
    /// warnings on success (e.g. a certificate that expires soon).
    hints: Vec<String>,
    /// One entry per stage, in order: `name` (`url`, `dns`, `tcp`, `tls`,
    /// `authentication`, `authorization`), `status` (`passed`, `failed` or
    /// `skipped`), `durationMs` and, when there is one, `detail`.
    #[schema(value_type = Vec<Object>)]
    stages: Vec<serde_json::Value>,
    /// The API server's `gitVersion`, e.g. `v1.20.2`.
    server_version: Option<String>,
    /// Who the test ran as: `user` (e.g. `system:serviceaccount:ns:sa`),
    /// `groups`, `source` (`selfSubjectReview`, `forbiddenResponse`,
    /// `tokenClaims`, `clientCertificate`, `oidcIdToken`, `basicAuthUsername` or
    /// `delegateLabel`), `confirmedByServer` (false when read from the
    /// credentials without the API server saying so) and, for
    /// `InheritFromDelegate`, the `label` of the delegate identity used.
    #[schema(value_type = Option<Object>)]
    identity: Option<serde_json::Value>,
    /// Every permission checked: `verb`, `group` (`""` is the core group),
    /// `resource`, `namespace`, `allowed` and, when the authorizer gave one,
    /// `reason`.
    #[schema(value_type = Vec<Object>)]
    permissions: Vec<serde_json::Value>,
    /// Every required permission the account lacks: `verb`, `group`,
    /// `resource`, `namespace`, `rule` (the RBAC rule, a YAML list item, to add
    /// to a Role in `namespace`) and `verifyCommand` (`kubectl auth can-i …`
    /// to check the fix).
    #[schema(value_type = Vec<Object>)]
    missing: Vec<serde_json::Value>,
    /// Milliseconds since the Unix epoch.
    tested_at: i64,
    duration_ms: u64,
}
