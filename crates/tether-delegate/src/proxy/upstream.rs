//! A connector as an HTTP client for its API server: its URL, its CA, its
//! credentials (a header, or a client certificate in the TLS config), and no
//! timeouts (watches and `logs -f` last as long as the caller wants).
//! Built once per credential set and kept while used: TLS sessions and
//! connections to the API server are reused across requests: HTTP/2 when
//! the server offers it (`h2_pool`), many requests per connection, and
//! HTTP/1.1 for upgrades and for servers without HTTP/2. A token that
//! expires (OpenIdConnect, EKS, GKE, AKS) is not part of the client: each
//! request asks [`Upstream::authorization`], which takes it from the token
//! cache (`tether_kube::bearer`), refreshed before it expires.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use secrecy::ExposeSecret;
use tether_domain::proxy::ProxyStreamHeader;
use tether_kube::bearer::BearerSource;
use tether_kube::Credentials;

use super::h2_pool::{H2Pool, HttpsConnector, PoolError};
use crate::tasks::connection_test;
use crate::tasks::TaskContext;

pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct Upstream {
    /// The API server URL without a trailing `/` (it may have a path prefix).
    pub base: String,
    authorization: Authorization,
    /// HTTP/1.1, one request per connection at a time.
    http1: HttpsClient,
    h2: H2Pool<Incoming>,
    /// Set once the server declined HTTP/2.
    http1_only: AtomicBool,
}

impl Upstream {
    /// Sends `req` (an absolute URI to this API server): upgrades over
    /// HTTP/1.1, everything else over HTTP/2 unless the server lacks it.
    pub async fn send(
        &self,
        req: Request<Incoming>,
        upgrade: bool,
    ) -> Result<Response<BoxBody<Bytes, BoxError>>, BoxError> {
        if !upgrade && !self.http1_only.load(Ordering::Relaxed) {
            match self.h2.slot(req.uri()).await {
                Ok(slot) => return Ok(slot.send(req).await?),
                Err(PoolError::NotHttp2) => {
                    tracing::debug!(base = %self.base, "the API server declined HTTP/2; using HTTP/1.1");
                    self.http1_only.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let resp = self.http1.request(req).await?;
        Ok(resp.map(|b| b.map_err(BoxError::from).boxed()))
    }
}

/// What a request carries in its `Authorization` header.
enum Authorization {
    /// A client certificate, or nothing.
    None,
    /// A service-account token or basic auth: fixed.
    Static(HeaderValue),
    /// A token made (or taken from the cache) for each request.
    Fresh(BearerSource),
}

impl Upstream {
    /// The `Authorization` header for the next request. The error names
    /// what could not be had; it quotes no secret.
    pub async fn authorization(&self) -> Result<Option<HeaderValue>, String> {
        match &self.authorization {
            Authorization::None => Ok(None),
            Authorization::Static(h) => Ok(Some(h.clone())),
            Authorization::Fresh(source) => {
                let token = source.token().await.map_err(|e| {
                    format!(
                        "the delegate cannot get a token for the connector's {} credentials: {e}",
                        source.kind()
                    )
                })?;
                sensitive(&format!("Bearer {}", token.expose_secret()))
                    .map(Some)
                    .map_err(|_| {
                        format!(
                            "the {} token holds characters an HTTP header cannot carry",
                            source.kind()
                        )
                    })
            }
        }
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::from_str(value).map(|mut h| {
        h.set_sensitive(true);
        h
    })
}

/// Unused entries go after this long.
const IDLE: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 256;

#[derive(Default)]
pub(crate) struct Upstreams {
    map: Mutex<HashMap<u64, (Arc<Upstream>, Instant)>>,
}

impl Upstreams {
    /// The client for this stream's connector and secrets.
    pub fn get(
        &self,
        header: &ProxyStreamHeader,
        ctx: &TaskContext,
    ) -> Result<Arc<Upstream>, String> {
        // Keyed by a hash of what defines the client: a changed secret or
        // connector gets a new one.
        let mut h = DefaultHasher::new();
        serde_json::to_string(&header.connector)
            .unwrap_or_default()
            .hash(&mut h);
        header.secrets.hash(&mut h);
        let key = h.finish();
        let now = Instant::now();
        {
            let mut map = self.map.lock().unwrap();
            if let Some((u, used)) = map.get_mut(&key) {
                *used = now;
                return Ok(u.clone());
            }
        }
        let built = Arc::new(build(header, ctx)?);
        let mut map = self.map.lock().unwrap();
        map.retain(|_, (_, used)| now.duration_since(*used) < IDLE);
        if map.len() >= MAX_ENTRIES {
            if let Some(oldest) = map.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(key, (built.clone(), now));
        Ok(built)
    }
}

fn build(header: &ProxyStreamHeader, ctx: &TaskContext) -> Result<Upstream, String> {
    let secrets: HashMap<String, String> = header
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let target = connection_test::target(&header.connector, &secrets, ctx).map_err(|r| {
        r.error_summary
            .clone()
            .unwrap_or_else(|| "the connector's credentials cannot be used".into())
    })?;
    let (access, bearer) = connection_test::cluster_access_with_bearer(target)?;
    let config = access.config().map_err(|e| e.to_string())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(access.connect_timeout));
    let https = config
        .rustls_https_connector_with_connector(http.clone())
        .map_err(|e| format!("the connector's TLS settings: {e}"))?;
    let http1 = Client::builder(TokioExecutor::new()).build(https);
    let h2 = H2Pool::new(http2_connector(&config, http)?);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let fixed = match &access.credentials {
        Credentials::Token(t) => Some(format!("Bearer {}", t.expose_secret())),
        Credentials::Basic { username, password } => Some(format!(
            "Basic {}",
            b64(&format!("{username}:{}", password.expose_secret()))
        )),
        Credentials::ClientCert { .. } | Credentials::Anonymous => None,
    };
    let authorization = match (bearer, fixed) {
        (Some(source), _) => Authorization::Fresh(source),
        (None, Some(v)) => Authorization::Static(sensitive(&v).map_err(|_| {
            "the connector's credentials hold characters an HTTP header cannot carry".to_string()
        })?),
        (None, None) => Authorization::None,
    };
    Ok(Upstream {
        base: access.url.trim_end_matches('/').to_string(),
        authorization,
        http1,
        h2,
        http1_only: AtomicBool::new(false),
    })
}

/// kube's connector offers only HTTP/1.1; this one offers both by ALPN, with
/// the same TLS settings (CA, client certificate, server name).
pub(crate) fn http2_connector(
    config: &kube::Config,
    http: HttpConnector,
) -> Result<HttpsConnector, String> {
    let tls = config
        .rustls_client_config()
        .map_err(|e| format!("the connector's TLS settings: {e}"))?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                name.clone()
                    .try_into()
                    .map_err(|e| format!("the connector's TLS server name: {e}"))?,
            ))
        }
        None => builder,
    };
    Ok(builder.enable_all_versions().wrap_connector(http))
}
