//! `GET /api/v1/openapi.json`: served without a token, a well-formed OpenAPI 3.1
//! document, and complete. The routes are read from the router itself, so a route
//! added without a `#[utoipa::path]` (or without its entry in `api/openapi.rs`)
//! fails here, and so does documentation of a route that does not exist.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tether_server::delegates::{Broker, BrokerConfig};
use tether_server::{router, AppState};
use tether_store::{Kek, Store, StoreConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tower::ServiceExt;

/// The fields of axum's `MethodRouter` that hold a method's handler.
const METHODS: &[&str] = &[
    "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
];

/// Every `(path, method)` the router registers (`*` for a route that takes any
/// method). axum has no API to list routes, so this reads them from the router's
/// `Debug` output: `node: Node { paths: {RouteId(n): "/path", ..} }` and
/// `routes: {RouteId(n): MethodRouter(MethodRouter { get: Route(..), head: None, .. })}`.
/// If a new axum version prints something else, the sanity checks here fail
/// loudly rather than letting the comparison pass on an empty list.
fn registered_routes(app: &Router) -> BTreeSet<(String, String)> {
    let debug = format!("{app:?}");
    let path_router = debug
        .split_once("fallback_router:")
        .expect("Router's Debug names its fallback_router")
        .0;
    let (routes, node) = path_router
        .split_once("node: Node")
        .expect("PathRouter's Debug has routes, then node");

    let id = |chunk: &str| -> u32 {
        chunk[..chunk.find(')').expect("RouteId(n)")]
            .parse()
            .expect("a numeric RouteId")
    };
    let mut paths = BTreeMap::new();
    for chunk in node.split("RouteId(").skip(1) {
        let path = chunk
            .split_once(": \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .expect("RouteId(n): \"/path\"")
            .0;
        paths.insert(id(chunk), path.to_string());
    }
    let mut registered = BTreeSet::new();
    let mut endpoints = 0;
    for chunk in routes.split("RouteId(").skip(1) {
        endpoints += 1;
        let path = paths
            .get(&id(chunk))
            .unwrap_or_else(|| panic!("no path for the route in {chunk}"));
        let endpoint = chunk.split_once("): ").expect("RouteId(n): endpoint").1;
        if !endpoint.starts_with("MethodRouter(") {
            // A whole service (`route_service`, `nest_service`): any method.
            registered.insert((path.clone(), "*".to_string()));
            continue;
        }
        let mut methods = 0;
        for m in METHODS {
            let field = format!(" {m}: ");
            let at = endpoint
                .find(&field)
                .unwrap_or_else(|| panic!("MethodRouter's Debug has no `{m}` in {endpoint}"));
            if !endpoint[at + field.len()..].starts_with("None") {
                registered.insert((path.clone(), m.to_string()));
                methods += 1;
            }
        }
        assert!(methods > 0, "no method found for {path} in {endpoint}");
    }
    assert_eq!(
        endpoints,
        paths.len(),
        "routes and paths of the router's Debug output do not pair up:\n{debug}"
    );
    assert!(
        registered.len() >= 30,
        "only {} routes read from the router's Debug output; has its format changed?\n{debug}",
        registered.len()
    );
    registered
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(*m).is_some() {
                documented.insert((path.clone(), m.to_string()));
            }
        }
    }
    documented
}

/// `path` with each `{param}` replaced by a plausible identifier.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("closed path parameter") + open;
        out.push_str(&rest[..open]);
        out.push_str("probe_");
        out.push_str(&rest[open + 1..close]);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

async fn app() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig {
        database_url: None,
        data_dir: dir.path().to_path_buf(),
        key: Kek::generate(),
    })
    .await
    .expect("open SQLite store");
    let broker = Broker::new(store.clone(), BrokerConfig::default());
    (router(AppState::new(store, broker)), dir)
}

async fn call(app: &Router, method: Method, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, ctype, body.to_vec())
}

/// `GET uri` as a WebSocket upgrade (no token), over a real connection to the
/// router served on loopback; returns the status and body. A WebSocket route
/// cannot be probed with `oneshot`: axum's `WebSocketUpgrade` answers 400 to a
/// request without the upgrade headers and 426 to one without hyper's upgrade
/// state, before the handler sees the token.
async fn call_upgrade(app: &Router, uri: &str) -> (StatusCode, Vec<u8>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {uri} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    server.abort();
    (StatusCode::from_u16(status).unwrap(), body)
}

async fn fetch_document(app: &Router) -> (String, Value) {
    let (status, ctype, body) = call(app, Method::GET, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype, "application/json");
    let text = String::from_utf8(body).unwrap();
    let doc = serde_json::from_str(&text).expect("the document is JSON");
    (text, doc)
}

#[tokio::test]
async fn every_route_is_documented_and_nothing_else() {
    let (app, _dir) = app().await;
    let registered = registered_routes(&app);
    let (_, doc) = fetch_document(&app).await;
    let documented = documented_routes(&doc);

    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && phantom.is_empty(),
        "the OpenAPI document and the router disagree.\n\
         Routes without documentation: give the handler a #[utoipa::path] (at its account-scope \
         path for a route of scoped_routes()) and list it in api/openapi.rs, in ScopedApi when it \
         is in scoped_routes(), in ApiDoc otherwise: {undocumented:#?}\n\
         Documented routes the router does not have: {phantom:#?}"
    );
    // The three scopes of the resource routes are all there.
    for path in [
        "/api/v1/connectors/{identifier}",
        "/api/v1/orgs/{org}/connectors/{identifier}",
        "/api/v1/orgs/{org}/projects/{project}/connectors/{identifier}",
        "/api/v1/orgs/{org}/projects/{project}/secrets",
        "/api/v1/orgs/{org}/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/whoami",
        "/api/v1/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
}

/// Each documented operation, called without a token: 401 when the document says
/// it needs the bearer token, 200 when it says it needs none. This checks the
/// security part of the document against the handlers, and that each documented
/// path (parameters filled in) reaches a handler.
#[tokio::test]
async fn documented_security_matches_the_handlers() {
    let (app, _dir) = app().await;
    let (_, doc) = fetch_document(&app).await;
    let global = &doc["security"];
    assert_eq!(global, &serde_json::json!([{ "bearer": [] }]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        serde_json::json!({ "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearer"]["description"] })
    );
    let mut public = Vec::new();
    for (path, method) in documented_routes(&doc) {
        let op = &doc["paths"][&path][&method];
        let security = op.get("security").unwrap_or(global);
        // `[]` or an empty requirement `{}` among the alternatives: no token needed.
        let requirements = security.as_array().unwrap();
        let needs_token = !requirements.is_empty()
            && requirements
                .iter()
                .all(|req| req.as_object().is_some_and(|r| !r.is_empty()));
        let uri = concrete(&path);
        let (status, body) = if op["responses"].get("101").is_some() {
            call_upgrade(&app, &uri).await
        } else {
            let (status, _, body) = call(&app, method.to_uppercase().parse().unwrap(), &uri).await;
            (status, body)
        };
        let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        if needs_token {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path} needs a token but does not document 401"
            );
            assert!(body.contains("UNAUTHENTICATED"), "{method} {uri}: {body}");
        } else {
            assert_eq!(status, StatusCode::OK, "{method} {uri}: {body}");
            public.push(path);
        }
    }
    public.sort();
    assert_eq!(public, ["/api/v1/openapi.json", "/healthz", "/metrics"]);
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let (app, _dir) = app().await;
    let (text, doc) = fetch_document(&app).await;
    let spec = oas3::from_json(&text).expect("the document parses as OpenAPI 3.1");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));

    let mut ids = BTreeSet::new();
    for (path, method, op) in spec.operations() {
        let what = format!("{method} {path}");
        let id = op
            .operation_id
            .clone()
            .unwrap_or_else(|| panic!("{what} has no operationId"));
        assert!(ids.insert(id.clone()), "operationId {id} is used twice");
        // Every reference resolves (oas3 drops those that do not).
        let declared = op.responses.as_ref().map_or(0, |r| r.len());
        assert!(declared > 0, "{what} documents no response");
        assert_eq!(
            op.responses(&spec).len(),
            declared,
            "{what}: a response $ref does not resolve"
        );
        let params = op.parameters(&spec).unwrap();
        assert_eq!(
            params.len(),
            op.parameters.len(),
            "{what}: a parameter $ref does not resolve"
        );
        // Every `{param}` of the path is declared, and nothing more.
        let in_path: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .map(|s| s.split_once('}').unwrap().0.to_string())
            .collect();
        let declared_path: BTreeSet<String> = params
            .iter()
            .filter(|p| matches!(p.location, oas3::spec::ParameterIn::Path))
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(in_path, declared_path, "{what}: path parameters");
        if let Some(body) = op.request_body(&spec).unwrap() {
            for status in ["400", "413", "415"] {
                assert!(
                    op.responses.as_ref().unwrap().contains_key(status),
                    "{what} reads a body but does not document {status}"
                );
            }
            assert!(body.content.contains_key("application/json"), "{what}");
            assert!(body.content.contains_key("application/yaml"), "{what}");
        }
    }

    // Every schema reference names a schema of the document.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        if let Some(name) = r.strip_prefix("#/components/schemas/") {
            assert!(schemas.contains_key(name), "dangling $ref {r}");
        } else if let Some(name) = r.strip_prefix("#/components/responses/") {
            assert!(
                doc["components"]["responses"].get(name).is_some(),
                "dangling $ref {r}"
            );
        } else {
            panic!("unexpected $ref {r}");
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The properties of a schema, following `$ref`s, `allOf`/`oneOf`/`anyOf` and
/// array items, as `name -> schema`.
fn properties<'a>(doc: &'a Value, schema: &'a Value, out: &mut BTreeMap<String, &'a Value>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        return properties(doc, &doc["components"]["schemas"][name], out);
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            out.insert(k.clone(), v);
            properties(doc, v, out);
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for s in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            properties(doc, s, out);
        }
    }
    if let Some(items) = schema.get("items") {
        properties(doc, items, out);
    }
}

#[tokio::test]
async fn connector_and_error_schemas_carry_their_fields() {
    let (app, _dir) = app().await;
    let (_, doc) = fetch_document(&app).await;
    let op = &doc["paths"]["/api/v1/orgs/{org}/projects/{project}/connectors"]["post"];
    for ctype in ["application/json", "application/yaml"] {
        let schema = &op["requestBody"]["content"][ctype]["schema"];
        assert_eq!(
            schema["$ref"], "#/components/schemas/ConnectorDocument",
            "{ctype}"
        );
    }
    let mut fields = BTreeMap::new();
    properties(
        &doc,
        &doc["components"]["schemas"]["ConnectorDocument"],
        &mut fields,
    );
    for field in [
        "connector",
        "name",
        "identifier",
        "orgIdentifier",
        "projectIdentifier",
        "tags",
        "type",
        "spec",
        "delegateSelectors",
        "credential",
        "connectionTest",
        "profile",
        "rules",
        "namespaces",
        "masterUrl",
        "auth",
        "serviceAccountTokenRef",
        "caCertRef",
        "username",
        "usernameRef",
        "passwordRef",
        "clientCertRef",
        "clientKeyRef",
        "clientKeyPassphraseRef",
        "clientKeyAlgo",
        "oidcIssuerUrl",
        "oidcClientIdRef",
        "oidcPasswordRef",
        "oidcSecretRef",
        "oidcScopes",
    ] {
        assert!(
            fields.contains_key(field),
            "the connector schema has no `{field}`; it has {:?}",
            fields.keys()
        );
    }
    // snake_case would mean the serde renames were not followed.
    assert!(
        !fields.keys().any(|k| k.contains('_')),
        "{:?}",
        fields.keys()
    );

    let response = &doc["paths"]["/api/v1/connectors/{identifier}"]["get"]["responses"]["200"];
    let mut fields = BTreeMap::new();
    properties(
        &doc,
        &response["content"]["application/json"]["schema"],
        &mut fields,
    );
    for field in [
        "connector",
        "createdAt",
        "lastModifiedAt",
        "status",
        "serviceAccountTokenRef",
        "errorSummary",
    ] {
        assert!(
            fields.contains_key(field),
            "ConnectorResponse has no `{field}`"
        );
    }

    let error = &doc["components"]["schemas"]["ErrorBody"];
    for field in ["code", "message", "field", "errors"] {
        assert!(
            error["properties"].get(field).is_some(),
            "ErrorBody has no `{field}`: {error}"
        );
    }
    let required: Vec<&str> = error["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"code") && required.contains(&"message"),
        "{required:?}"
    );
    for (status, name) in [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("409", "Conflict"),
        ("413", "PayloadTooLarge"),
        ("415", "UnsupportedMediaType"),
        ("422", "Unprocessable"),
    ] {
        assert_eq!(
            op["responses"][status]["$ref"],
            format!("#/components/responses/{name}"),
            "POST connectors, {status}"
        );
        assert_eq!(
            doc["components"]["responses"][name]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
}

/// The keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

/// The property names of a schema (following `$ref`s and `allOf`, not nested
/// objects), and those it requires.
fn schema_fields(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        return schema_fields(doc, &doc["components"]["schemas"][name]);
    }
    let mut props = keys(schema.get("properties").unwrap_or(&serde_json::json!({})));
    let mut required: BTreeSet<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (p, r) = schema_fields(doc, part);
        props.extend(p);
        required.extend(r);
    }
    (props, required)
}

/// `TaskAttempt` and `ConnectionReport` have no `ToSchema` (their crates do not
/// use utoipa); `api/openapi.rs` documents them with stand-ins. Each stand-in
/// must name exactly the fields the real type serialises, and require exactly
/// those it always serialises.
#[tokio::test]
async fn stand_in_schemas_match_the_types_they_document() {
    use tether_kube::connection_test::{failure_report, Identity, IdentitySource};
    use tether_server::api::connection_tests::TestResponse;

    let (app, _dir) = app().await;
    let (_, doc) = fetch_document(&app).await;

    let attempt = tether_store::TaskAttempt {
        attempt: 1,
        delegate_id: "d".into(),
        assigned_at: 1,
        ended_at: None,
        outcome: None,
    };
    let (props, required) = schema_fields(&doc, &doc["components"]["schemas"]["TaskAttempt"]);
    assert_eq!(required, keys(&serde_json::to_value(&attempt).unwrap()));
    let full = tether_store::TaskAttempt {
        ended_at: Some(2),
        outcome: Some("succeeded".into()),
        ..attempt
    };
    assert_eq!(props, keys(&serde_json::to_value(&full).unwrap()));

    // The test's response: the report flattened, plus where it ran.
    let mut report = failure_report("X", "x", 500, Vec::new());
    report.error_summary = None;
    let minimal = TestResponse {
        report: report.clone(),
        delegate_id: None,
        delegate_name: None,
        task_id: None,
    };
    report.error_summary = Some("x".into());
    report.server_version = Some("v1.20.2".into());
    report.identity = Some(Identity {
        user: "u".into(),
        groups: Vec::new(),
        source: IdentitySource::TokenClaims,
        confirmed_by_server: false,
        label: None,
    });
    let full = TestResponse {
        report,
        delegate_id: Some("d".into()),
        delegate_name: Some("n".into()),
        task_id: Some("t".into()),
    };
    let response =
        &doc["paths"]["/api/v1/connectors/{identifier}/test"]["post"]["responses"]["200"];
    let (props, required) = schema_fields(&doc, &response["content"]["application/json"]["schema"]);
    assert_eq!(required, keys(&serde_json::to_value(&minimal).unwrap()));
    assert_eq!(props, keys(&serde_json::to_value(&full).unwrap()));
}
