//! The HTTP client the CLI commands share: where the manager is, which token to
//! present, and turning the API's `{code, message, field}` errors into messages.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tether_domain::Scope;

/// `--org` / `--project` for commands that act in a scope.
#[derive(Debug, Clone, Args, Default)]
pub struct ScopeArgs {
    /// Org identifier (absent: account scope).
    #[arg(long)]
    pub org: Option<String>,
    /// Project identifier (needs --org).
    #[arg(long, requires = "org")]
    pub project: Option<String>,
}

impl ScopeArgs {
    pub fn scope(&self) -> Result<Scope> {
        Scope::from_parts(self.org.as_deref(), self.project.as_deref()).map_err(|e| anyhow!(e))
    }
}

/// The URL prefix of a scope's resources.
pub fn scope_path(scope: &Scope) -> String {
    match scope {
        Scope::Account => "/api/v1".into(),
        Scope::Org(o) => format!("/api/v1/orgs/{o}"),
        Scope::Project { org, project } => format!("/api/v1/orgs/{org}/projects/{project}"),
    }
}

/// What `tether login` saves.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientConfig {
    pub url: String,
    pub token: String,
}

pub fn config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("TETHER_CONFIG") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("tether/config.yaml")
}

/// The API's error shape.
#[derive(Debug, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Overrides the client's 120 s limit per request (see [`ApiClient::set_timeout`]).
    timeout: Option<std::time::Duration>,
}

impl ApiClient {
    /// `TETHER_URL`/`TETHER_TOKEN`, else the file `tether login` wrote.
    pub fn from_env() -> Result<ApiClient> {
        let saved = || -> Option<ClientConfig> {
            let text = std::fs::read_to_string(config_path()).ok()?;
            serde_yaml::from_str(&text).ok()
        };
        let (url, token) = match (std::env::var("TETHER_URL"), std::env::var("TETHER_TOKEN")) {
            (Ok(u), Ok(t)) => (u, t),
            (u, t) => {
                let saved = saved();
                let url = u.ok().or_else(|| saved.as_ref().map(|s| s.url.clone()));
                let token = t.ok().or_else(|| saved.map(|s| s.token));
                match (url, token) {
                    (Some(u), Some(t)) => (u, t),
                    _ => anyhow::bail!(
                        "no manager configured: set TETHER_URL and TETHER_TOKEN, or run `tether login --url URL` once"
                    ),
                }
            }
        };
        ApiClient::new(&url, &token)
    }

    pub fn new(url: &str, token: &str) -> Result<ApiClient> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120));
        // A manager whose HTTPS certificate comes from a private CA.
        if let Some(path) = std::env::var_os("TETHER_CA_FILE") {
            let pem = std::fs::read(&path)
                .with_context(|| format!("reading TETHER_CA_FILE {}", path.to_string_lossy()))?;
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .context("TETHER_CA_FILE is not a PEM certificate")?,
            );
        }
        let http = builder.build()?;
        Ok(ApiClient {
            http,
            base: url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            timeout: None,
        })
    }

    /// The manager's URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// How long one request may take, for calls the manager answers slowly on
    /// purpose (a connection test returns when the test is done).
    pub fn set_timeout(&mut self, timeout: std::time::Duration) {
        self.timeout = Some(timeout);
    }

    /// Sends a request; `body` is JSON unless `raw` gives bytes and a content type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        query: &[(&str, String)],
    ) -> Result<(StatusCode, Vec<u8>)> {
        let (status, bytes) = self.send_any(method.clone(), path, body, query).await?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        Err(api_error(&method, path, status, &bytes))
    }

    /// Like [`ApiClient::send`], but returns every answer with its status, for
    /// callers that handle some failures themselves (a 404 that means "not yet").
    pub async fn send_any(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        query: &[(&str, String)],
    ) -> Result<(StatusCode, Vec<u8>)> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .query(query);
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        match body {
            Some(Body::Json(v)) => req = req.json(&v),
            Some(Body::Raw {
                bytes,
                content_type,
            }) => req = req.header("content-type", content_type).body(bytes),
            None => {}
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the manager at {}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await?.to_vec();
        Ok((status, bytes))
    }

    /// Opens a Server-Sent Events stream (`Accept: text/event-stream`); the
    /// answer is returned as soon as its headers arrive, failures as errors.
    pub async fn event_stream(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .query(query)
            // A stream lasts as long as its task; the per-request limit is
            // the task's business, not the client's.
            .timeout(
                self.timeout
                    .unwrap_or(std::time::Duration::from_secs(24 * 3600)),
            );
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the manager at {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(api_error(&method, path, status, &bytes));
        }
        Ok(resp)
    }

    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        query: &[(&str, String)],
    ) -> Result<T> {
        let (_, bytes) = self.send(method, path, body, query).await?;
        serde_json::from_slice(&bytes).context("the manager answered with unexpected JSON")
    }
}

/// The error a failed answer stands for: the API's `{code, message, field}` as a
/// sentence, or the raw answer when it is not in that shape.
pub fn api_error(method: &Method, path: &str, status: StatusCode, bytes: &[u8]) -> anyhow::Error {
    match serde_json::from_slice::<ApiErrorBody>(bytes) {
        Ok(e) => {
            let field = e.field.map(|f| format!(" (field {f})")).unwrap_or_default();
            anyhow!("{}{field} [{} {}]", e.message, status.as_u16(), e.code)
        }
        Err(_) => anyhow!(
            "{method} {path} failed with {status}: {}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

pub enum Body {
    Json(serde_json::Value),
    Raw {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
}
