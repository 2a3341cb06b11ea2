//! `/k8s/<scope>/connectors/<id>/<Kubernetes API path>`: authenticate the
//! caller, check the grant, pick a delegate, and pass the request to it over
//! a tunnel stream (or to the manager that holds its tunnel), streaming bodies
//! both ways and splicing upgraded connections (exec, attach, port-forward).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, AUTHORIZATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tether_domain::proxy::{Impersonation, ProxyMode, ProxyStreamHeader};
use tether_domain::Scope;
use tether_store::{AuditEntry, TokenRecord};

use super::audit::{classify, AuditGuard};
use super::body::{Download, Upload};
use super::status::KubeStatus;
use super::streams::OwnedStreamGuard;
use crate::api::AppState;
use crate::delegates::eligibility;

/// Set on a request one manager passes to another: that one must not pass it on.
pub const FORWARDED_HEADER: &str = "x-tether-forwarded";

/// Where the request goes, read from the path.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub scope: Scope,
    pub connector: String,
    /// The Kubernetes API path, starting with `/`.
    pub rest: String,
}

pub fn parse_target(path: &str) -> Result<Target, KubeStatus> {
    let bad = || {
        KubeStatus::not_found(format!(
            "'{path}' is not a connector's Kubernetes API: use /k8s/connectors/ID/..., /k8s/orgs/ORG/connectors/ID/... or /k8s/orgs/ORG/projects/PROJECT/connectors/ID/... (`tether connector kubeconfig ID` writes the URL for you)"
        ))
    };
    let p = path.strip_prefix("/k8s/").ok_or_else(bad)?;
    let mut it = p.split('/');
    let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    let scope = match it.next() {
        Some("connectors") => Scope::Account,
        Some("orgs") => {
            let org = nonempty(it.next()).ok_or_else(bad)?;
            match it.next() {
                Some("connectors") => Scope::Org(org),
                Some("projects") => {
                    let project = nonempty(it.next()).ok_or_else(bad)?;
                    if it.next() != Some("connectors") {
                        return Err(bad());
                    }
                    Scope::Project { org, project }
                }
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    let connector = nonempty(it.next()).ok_or_else(bad)?;
    let rest = format!("/{}", it.collect::<Vec<_>>().join("/"));
    Ok(Target {
        scope,
        connector,
        rest,
    })
}

pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let path = parse_target(req.uri().path())
        .map(|t| t.rest)
        .unwrap_or_default();
    match proxy(state, req).await {
        Ok(r) => r,
        Err(s) => s.answer(&path),
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<TokenRecord, KubeStatus> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            KubeStatus::unauthorized(
                "send a tether API token ('Authorization: Bearer tth_...'); `tether connector kubeconfig ID` prints a kubeconfig with one",
            )
        })?;
    state.store.authenticate(token).await?.ok_or_else(|| {
        KubeStatus::unauthorized(
            "the tether API token is unknown, revoked or expired; get a new kubeconfig with `tether connector kubeconfig ID`",
        )
    })
}

/// Refuses every `Impersonate-*` header, in both modes: in `Impersonate`
/// mode tether says who the caller is; in `Connector` mode the request runs as
/// the connector's account. Forwarding the header would let any caller act as
/// anyone the connector's account may impersonate (Rancher GHSA-gvh9-xgrq-r8hw);
/// dropping it silently would run the request as someone the caller did not ask for.
fn refuse_impersonation(headers: &HeaderMap, mode: ProxyMode) -> Result<(), KubeStatus> {
    if let Some(h) = headers
        .keys()
        .find(|k| k.as_str().starts_with("impersonate-"))
    {
        let who = match mode {
            ProxyMode::Impersonate => "the cluster sees you as tether:<your token's name>",
            ProxyMode::Connector => "requests run as the connector's own account",
        };
        return Err(KubeStatus::bad_request(format!(
            "tether refuses the {h} header (kubectl --as / --as-group): through this connector {who}; ask for the RBAC you need instead"
        )));
    }
    Ok(())
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Hop-by-hop headers and the caller's credentials stay on this hop.
fn hop_headers(headers: &HeaderMap, upgrade: bool, keep_auth: bool) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        let n = k.as_str();
        let hop = matches!(
            n,
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "host"
                | "cookie"
        ) || named.iter().any(|x| x == n);
        if hop || (!keep_auth && n == "authorization") || n.starts_with("impersonate-") {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    if upgrade {
        out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(u) = headers.get(header::UPGRADE) {
            out.insert(header::UPGRADE, u.clone());
        }
    }
    out
}

enum Route {
    Tunnel {
        delegate_id: String,
        /// Where the delegate is registered: which secrets it may receive.
        delegate_scope: Scope,
        tunnel: tether_tunnel::Tunnel,
    },
    Manager {
        delegate_id: String,
        url: String,
    },
}

async fn route(
    state: &AppState,
    needs: eligibility::Needs<'_>,
    may_forward: bool,
) -> Result<Route, KubeStatus> {
    let (scope, selectors) = (needs.scope, needs.selectors);
    let best = state
        .broker
        .live_delegates()
        .into_iter()
        .filter(|d| !d.draining && needs.unmet(&d.scope, &d.tags).is_none())
        .filter_map(|d| {
            state
                .proxy
                .tunnels
                .get(&d.id, &d.token_id)
                .map(|t| (d.id, d.scope, t))
        })
        .min_by_key(|(_, _, t)| t.active());
    if let Some((delegate_id, delegate_scope, tunnel)) = best {
        return Ok(Route::Tunnel {
            delegate_id,
            delegate_scope,
            tunnel,
        });
    }
    let now = crate::delegates::now_ms();
    let timeout = state.broker.config.heartbeat_timeout.as_millis() as i64;
    let candidates = state.store.delegates_covering(scope).await?;
    let considered = eligibility::consider(&candidates, needs, now, timeout);
    let eligible: Vec<_> = considered
        .iter()
        .filter(|c| c.ineligible.is_none())
        .collect();
    if may_forward {
        for c in &eligible {
            let Some(manager) = candidates
                .iter()
                .find(|d| d.id == c.id)
                .and_then(|d| d.manager_id.clone())
            else {
                continue;
            };
            if manager == state.broker.manager_id {
                continue;
            }
            if let Some(url) = state.store.proxy_manager_url(&manager).await? {
                return Ok(Route::Manager {
                    delegate_id: c.id.clone(),
                    url,
                });
            }
        }
    }
    let mut message = format!(
        "no delegate can carry this request: {}",
        eligibility::explain(scope, selectors, &considered)
    );
    if !eligible.is_empty() {
        message.push_str(
            "; the eligible delegates have no open tunnel to a manager that takes proxied requests (they may be reconnecting): retry in a few seconds",
        );
    }
    Err(KubeStatus::unavailable(message))
}

/// A connection to another manager, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn exchange<I>(io: I, req: hyper::Request<Body>) -> Result<Response<Incoming>, hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "proxied connection ended");
        }
    });
    sender.send_request(req).await
}

async fn proxy(state: AppState, mut req: Request) -> Result<Response, KubeStatus> {
    let target = parse_target(req.uri().path())?;
    let caller = authenticate(&state, req.headers()).await?;
    let c = classify(req.method(), &target.rest, req.uri().query());
    let mut audit = AuditGuard::new(
        state.store.clone(),
        AuditEntry {
            id: 0,
            started_at: crate::delegates::now_ms(),
            ended_at: 0,
            token_id: caller.id.clone(),
            caller: caller.name.clone(),
            scope: target.scope.clone(),
            connector: target.connector.clone(),
            delegate_id: None,
            verb: c.verb,
            method: req.method().to_string(),
            path: target.rest.clone(),
            namespace: c.namespace,
            resource: c.resource,
            name: c.name,
            session: c.session,
            container: c.container,
            program: c.program,
            ports: c.ports,
            status: 0,
            duration_ms: 0,
            bytes_in: 0,
            bytes_out: 0,
            error: None,
        },
    );
    match forward(&state, &mut req, &target, &caller, &mut audit).await {
        Ok(r) => Ok(r),
        Err(s) => {
            audit.set_status(s.code.as_u16());
            Err(s)
        }
    }
}

async fn forward(
    state: &AppState,
    req: &mut Request,
    target: &Target,
    caller: &TokenRecord,
    audit: &mut AuditGuard,
) -> Result<Response, KubeStatus> {
    if !caller.scope.covers(&target.scope) {
        return Err(KubeStatus::forbidden(format!(
            "this tether token belongs to {} and cannot reach connectors of {}",
            caller.scope, target.scope
        )));
    }
    if !caller
        .grant
        .allows_connector(&target.scope, &target.connector)
    {
        let why = if caller.grant.kube_access {
            "is limited to another connector"
        } else {
            "has no kubeAccess grant (a token's role alone does not give access to clusters)"
        };
        return Err(KubeStatus::forbidden(format!(
            "this tether token '{}' {why}; an admin of the scope creates one with `tether token create --kube-access`, or run `tether connector kubeconfig {}` with such a token",
            caller.name, target.connector
        )));
    }
    let record = state
        .store
        .get_connector(&target.scope, &target.connector)
        .await?;
    let mode = record
        .connector
        .spec
        .proxy
        .as_ref()
        .map(|p| p.mode)
        .unwrap_or_default();
    refuse_impersonation(req.headers(), mode)?;
    let forwarded = req.headers().contains_key(FORWARDED_HEADER);
    // The connector may use its secrets (grants, host binding), and only a
    // delegate that may receive them carries the request.
    let carried = crate::delegates::payload::connector_carries(
        &state.store,
        &target.scope,
        &record.connector,
    )
    .await
    .map_err(|e| match e {
        tether_store::StoreError::SecretUseDenied(errs)
        | tether_store::StoreError::Validation(errs) => {
            KubeStatus::forbidden(format!("the connector may not use its secrets: {errs}"))
        }
        other => other.into(),
    })?;
    let needs = eligibility::Needs {
        scope: &target.scope,
        selectors: &record.connector.spec.delegate_selectors,
        secrets: &carried,
    };
    let route = route(state, needs, !forwarded).await?;
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut *req));
    let open = OwnedStreamGuard::new(state.proxy.clone(), &caller.id);
    let cancel = open.cancel.clone();
    let counters = audit.counters.clone();
    let method = req.method().clone();
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let body = std::mem::replace(req.body_mut(), Body::empty());
    let upload = Body::new(Upload {
        inner: body,
        counters: counters.clone(),
    });

    let answer = match route {
        Route::Tunnel {
            delegate_id,
            delegate_scope,
            tunnel,
        } => {
            audit.set_delegate(&delegate_id);
            let secrets = crate::delegates::payload::connector_secrets(
                &state.store,
                &target.scope,
                &record.connector,
                &delegate_scope,
            )
            .await
            .map_err(|m| {
                KubeStatus::internal(format!("the connector's secrets cannot be read: {m}"))
            })?;
            let header = ProxyStreamHeader {
                request_id: random_id(),
                connector: record.connector.clone(),
                secrets: secrets
                    .into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                    .collect::<BTreeMap<_, _>>(),
                impersonate: (mode == ProxyMode::Impersonate)
                    .then(|| Impersonation::for_token(&caller.name, &caller.scope)),
            };
            let header =
                serde_json::to_vec(&header).map_err(|e| KubeStatus::internal(e.to_string()))?;
            let active = tunnel.track();
            let unavailable = |e: String| {
                KubeStatus::unavailable(format!(
                    "cannot reach delegate {delegate_id} through its tunnel: {e}; retry (another eligible delegate takes the next request)"
                ))
            };
            let mut stream = tunnel
                .open()
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            tether_tunnel::frame::write_header(&mut stream, &header)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let mut out = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{query}", target.rest))
                .version(Version::HTTP_11)
                .body(upload)
                .map_err(|e| KubeStatus::bad_request(e.to_string()))?;
            *out.headers_mut() = hop_headers(req.headers(), upgrade, false);
            out.headers_mut()
                .insert(header::HOST, HeaderValue::from_static("kubernetes"));
            let r = tokio::select! {
                r = exchange(TokioIo::new(stream), out) => r.map_err(|e| KubeStatus::bad_gateway(format!(
                    "delegate {delegate_id} ended the request before answering: {e}; retry (the next request goes to an eligible delegate)"
                ))),
                _ = cancel.cancelled() => Err(KubeStatus::unauthorized("the tether token was revoked or expired")),
            };
            drop(active);
            r?
        }
        Route::Manager { delegate_id, url } => {
            audit.set_delegate(&delegate_id);
            // The manager holding the tunnel authenticates the caller again and
            // writes the audit entry.
            audit.discard();
            let unreachable = |e: String| {
                KubeStatus::unavailable(format!(
                    "cannot reach the manager at {url} that holds the tunnel of delegate {delegate_id}: {e}"
                ))
            };
            let (https, authority) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
                (Some(a), _) => (true, a.trim_end_matches('/').to_string()),
                (_, Some(a)) => (false, a.trim_end_matches('/').to_string()),
                _ => return Err(KubeStatus::internal(format!("the manager holding the delegate's tunnel advertises '{url}', not an http(s):// URL"))),
            };
            let tcp = tokio::net::TcpStream::connect(&authority)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = if https {
                let tls = state.proxy.settings.tls.as_ref().ok_or_else(|| {
                    unreachable(
                        "it serves https and this manager has no TLS settings to trust it with"
                            .into(),
                    )
                })?;
                let host = authority
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .unwrap_or(&authority);
                let name = rustls_pki_types::ServerName::try_from(
                    host.trim_matches(['[', ']']).to_string(),
                )
                .map_err(|e| unreachable(e.to_string()))?;
                let stream = tokio_rustls::TlsConnector::from(tls.client.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                Box::new(stream)
            } else {
                Box::new(tcp)
            };
            let mut out = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{query}", req.uri().path()))
                .version(Version::HTTP_11)
                .body(upload)
                .map_err(|e| KubeStatus::bad_request(e.to_string()))?;
            *out.headers_mut() = hop_headers(req.headers(), upgrade, true);
            out.headers_mut().insert(
                header::HOST,
                HeaderValue::from_str(&authority).unwrap_or(HeaderValue::from_static("tether")),
            );
            out.headers_mut().insert(
                HeaderName::from_static(FORWARDED_HEADER),
                HeaderValue::from_static("1"),
            );
            tokio::select! {
                r = exchange(TokioIo::new(io), out) => r.map_err(|e| KubeStatus::bad_gateway(format!(
                    "the manager at {url} ended the request before answering: {e}"
                )))?,
                _ = cancel.cancelled() => return Err(KubeStatus::unauthorized("the tether token was revoked or expired")),
            }
        }
    };
    respond(
        answer,
        client_upgrade,
        open,
        std::mem::replace(audit, AuditGuard::none()),
    )
}

fn respond(
    mut answer: Response<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    open: OwnedStreamGuard,
    mut audit: AuditGuard,
) -> Result<Response, KubeStatus> {
    audit.set_status(answer.status().as_u16());
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client) = client_upgrade else {
            return Err(KubeStatus::bad_gateway(
                "the cluster switched protocols on a request that did not ask to",
            ));
        };
        let upstream = hyper::upgrade::on(&mut answer);
        let (parts, _) = answer.into_parts();
        tokio::spawn(super::splice::splice(client, upstream, open, audit));
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, incoming) = answer.into_parts();
    for h in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
        parts.headers.remove(h);
    }
    let counters = audit.counters.clone();
    let body = Download {
        inner: incoming,
        cancelled: Box::pin(open.cancel.clone().cancelled_owned()),
        audit: Some(audit),
        counters,
        _open: Some(open),
    };
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_at_every_scope() {
        let t = parse_target("/k8s/orgs/pay/projects/web/connectors/prod/api/v1/pods").unwrap();
        assert_eq!(
            t,
            Target {
                scope: Scope::Project {
                    org: "pay".into(),
                    project: "web".into()
                },
                connector: "prod".into(),
                rest: "/api/v1/pods".into()
            }
        );
        let t = parse_target("/k8s/connectors/prod").unwrap();
        assert_eq!((t.scope, t.rest.as_str()), (Scope::Account, "/"));
        let t = parse_target("/k8s/orgs/pay/connectors/c/version").unwrap();
        assert_eq!(t.scope, Scope::Org("pay".into()));
        assert!(parse_target("/k8s/orgs/pay/things/c").is_err());
        assert!(parse_target("/k8s/connectors/").is_err());
    }

    #[test]
    fn impersonation_headers_are_refused_in_both_modes() {
        let mut h = HeaderMap::new();
        h.insert("impersonate-user", HeaderValue::from_static("admin"));
        for mode in [ProxyMode::Connector, ProxyMode::Impersonate] {
            let e = refuse_impersonation(&h, mode).unwrap_err();
            assert_eq!(e.code, StatusCode::BAD_REQUEST);
        }
        assert!(refuse_impersonation(&HeaderMap::new(), ProxyMode::Impersonate).is_ok());
    }

    #[test]
    fn credentials_and_hop_headers_stay_on_this_hop() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer tth_x"));
        h.insert("connection", HeaderValue::from_static("Upgrade, x-custom"));
        h.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
        h.insert("x-custom", HeaderValue::from_static("1"));
        h.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        let out = hop_headers(&h, true, false);
        assert!(out.get("authorization").is_none());
        assert!(out.get("x-custom").is_none());
        assert_eq!(out.get("upgrade").unwrap(), "SPDY/3.1");
        assert_eq!(out.get("connection").unwrap(), "Upgrade");
        assert!(out.get("x-stream-protocol-version").is_some());
        assert!(is_upgrade(&h));
    }
}
