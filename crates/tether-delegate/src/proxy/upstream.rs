//! A connector as an HTTP client for its API server: its URL, its CA, its
//! credentials (a header, or a client certificate in the TLS config), and no
//! timeouts (watches and `logs -f` last as long as the caller wants).
//! Built once per credential set and kept while used: TLS sessions and
//! connections to the API server are reused across requests.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderValue;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use secrecy::ExposeSecret;
use tether_domain::proxy::ProxyStreamHeader;
use tether_kube::Credentials;

use crate::tasks::connection_test;
use crate::tasks::TaskContext;

pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>;

pub(crate) struct Upstream {
    /// The API server URL without a trailing `/` (it may have a path prefix).
    pub base: String,
    pub authorization: Option<HeaderValue>,
    pub client: HttpsClient,
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
    let access = connection_test::cluster_access(target, "the proxy")?;
    let config = access.config().map_err(|e| e.to_string())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(access.connect_timeout));
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(|e| format!("the connector's TLS settings: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build(https);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let authorization = match &access.credentials {
        Credentials::Token(t) => Some(format!("Bearer {}", t.expose_secret())),
        Credentials::Basic { username, password } => Some(format!(
            "Basic {}",
            b64(&format!("{username}:{}", password.expose_secret()))
        )),
        Credentials::ClientCert { .. } | Credentials::Anonymous => None,
    }
    .map(|v| {
        HeaderValue::from_str(&v)
            .map(|mut h| {
                h.set_sensitive(true);
                h
            })
            .map_err(|_| {
                "the connector's credentials hold characters an HTTP header cannot carry"
                    .to_string()
            })
    })
    .transpose()?;
    Ok(Upstream {
        base: access.url.trim_end_matches('/').to_string(),
        authorization,
        client,
    })
}
