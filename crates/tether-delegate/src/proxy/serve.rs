//! One tunnel stream: the manager's header, then HTTP/1.1 requests passed on
//! to the API server. The caller's `Impersonate-*` headers never pass (the
//! manager refuses them; this is the second line); the identity to
//! impersonate comes only from the header the manager wrote.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tether_domain::proxy::{Impersonation, ProxyStreamHeader};
use tether_tunnel::TunnelStream;

use super::upstream::{Upstream, Upstreams};
use crate::tasks::TaskContext;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

pub(crate) async fn stream(mut s: TunnelStream, upstreams: Arc<Upstreams>, ctx: Arc<TaskContext>) {
    let header = match tether_tunnel::frame::read_header(&mut s).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(error = %e, "a tunnel stream ended before its header");
            return;
        }
    };
    let header: ProxyStreamHeader = match serde_json::from_slice(&header) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "a tunnel stream header this delegate cannot read; run the manager's version");
            return;
        }
    };
    let upstream = upstreams.get(&header, &ctx);
    if let Err(e) = &upstream {
        tracing::warn!(request = %header.request_id, connector = ?header.connector.identifier, error = %e, "cannot use the connector's credentials");
    }
    let impersonate = header.impersonate.clone();
    let request_id = header.request_id.clone();
    drop(header);
    let service = service_fn(move |req| {
        let upstream = upstream.clone();
        let impersonate = impersonate.clone();
        let request_id = request_id.clone();
        async move {
            Ok::<_, Infallible>(match upstream {
                Ok(u) => forward(u, impersonate.as_ref(), req, &request_id).await,
                Err(m) => status(StatusCode::BAD_GATEWAY, &m, req.uri().path()),
            })
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.header_read_timeout(None);
    if let Err(e) = http
        .serve_connection(TokioIo::new(s), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(error = %e, "a proxied stream ended");
    }
}

/// A failure as kubectl prints it: a Kubernetes `Status`, or text for a
/// discovery request (`tether_domain::proxy_failure`).
fn status(code: StatusCode, message: &str, path: &str) -> Response<Body> {
    let a =
        tether_domain::proxy_failure::answer(code.as_u16(), "ServiceUnavailable", message, path);
    let mut r = Response::new(
        Full::new(Bytes::from(a.body))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::from_u16(a.code).unwrap_or(code);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    r
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(header::UPGRADE)
}

async fn forward(
    up: Arc<Upstream>,
    impersonate: Option<&Impersonation>,
    mut req: Request<Incoming>,
    request_id: &str,
) -> Response<Body> {
    let client_upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let path = req.uri().path().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let uri = match format!("{}{pq}", up.base).parse::<http::Uri>() {
        Ok(u) => u,
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                &format!("bad request path: {e}"),
                &path,
            )
        }
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    let h = &mut parts.headers;
    h.remove(header::HOST);
    h.remove(header::AUTHORIZATION);
    let forged: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for k in forged {
        h.remove(k);
    }
    match up.authorization().await {
        Ok(Some(a)) => {
            h.insert(header::AUTHORIZATION, a);
        }
        Ok(None) => {}
        Err(m) => {
            tracing::warn!(request = %request_id, error = %m, "no token for the API server");
            return status(StatusCode::BAD_GATEWAY, &m, &path);
        }
    }
    if let Some(i) = impersonate {
        match HeaderValue::from_str(&i.user) {
            Ok(v) => {
                h.insert("impersonate-user", v);
            }
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "the caller's name cannot be sent as Impersonate-User",
                    &path,
                )
            }
        }
        for g in &i.groups {
            if let Ok(v) = HeaderValue::from_str(g) {
                h.append("impersonate-group", v);
            }
        }
    }
    let upgrade = client_upgrade.is_some();
    let mut resp = match up.send(Request::from_parts(parts, body), upgrade).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request = %request_id, error = %e, "the API server cannot be reached");
            return status(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "the delegate cannot reach the API server at {}: {}",
                    up.base,
                    error_chain(e.as_ref())
                ),
                &path,
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_upgrade {
            let upstream = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                let (c, u) = tokio::join!(client, upstream);
                if let (Ok(c), Ok(u)) = (c, u) {
                    let mut c = TokioIo::new(c);
                    let mut u = TokioIo::new(u);
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut c,
                        &mut u,
                        tether_tunnel::SESSION_COPY_BUFFER,
                        tether_tunnel::SESSION_COPY_BUFFER,
                    )
                    .await;
                }
            });
        }
        let (parts, _) = resp.into_parts();
        return Response::from_parts(
            parts,
            http_body_util::Empty::new().map_err(|e| match e {}).boxed(),
        );
    }
    resp
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
