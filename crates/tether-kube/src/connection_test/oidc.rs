//! OpenID Connect: discover the issuer's token endpoint, obtain an ID token with
//! the OAuth2 resource-owner password grant, and hand it on as the bearer token.
//!
//! The issuer is trusted through the system roots and, when the connector has
//! one, its `caCertRef` (identity providers running in the cluster often carry a
//! certificate of the cluster CA). The password and client secret only ever go
//! into the POST body of an HTTPS request.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::diagnosis::{self, Failure};
use super::pem;

pub(crate) struct OidcRequest<'a> {
    pub issuer_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: Option<&'a SecretString>,
    pub username: &'a str,
    pub password: &'a SecretString,
    pub scopes: &'a [String],
    pub ca_pem: Option<&'a str>,
    pub timeout: Duration,
}

pub(crate) struct OidcToken {
    pub id_token: SecretString,
    pub detail: String,
    pub warnings: Vec<String>,
}

/// `error: source: source ...`, the whole chain on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}

fn truncate(s: &str, max: usize) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn http_client(ca_pem: Option<&str>, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .https_only(true);
    if let Some(ca) = ca_pem {
        for der in pem::certificates(ca).unwrap_or_default() {
            let cert = reqwest::Certificate::from_der(&der).map_err(|e| e.to_string())?;
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| error_chain(&e))
}

/// Gets an ID token for the user. Bounded by the caller's stage timeout, and by
/// `req.timeout` per request.
pub(crate) async fn fetch_id_token(req: OidcRequest<'_>) -> Result<OidcToken, Failure> {
    let issuer = req.issuer_url.trim().trim_end_matches('/');
    let parsed = url::Url::parse(issuer).map_err(|e| {
        diagnosis::oidc_discovery(issuer, issuer, &format!("oidcIssuerUrl is not a URL: {e}"))
    })?;
    if parsed.scheme() != "https" {
        return Err(diagnosis::oidc_discovery(
            issuer,
            issuer,
            "oidcIssuerUrl must be an https:// URL (Kubernetes only accepts HTTPS issuers, and the password must not travel in clear text)",
        ));
    }
    let client = http_client(req.ca_pem, req.timeout)
        .map_err(|e| diagnosis::oidc_unreachable(issuer, issuer, &e))?;

    // 1. Discovery.
    let discovery_url = format!("{issuer}/.well-known/openid-configuration");
    let resp = client
        .get(&discovery_url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| diagnosis::oidc_unreachable(issuer, &discovery_url, &error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(diagnosis::oidc_discovery(
            issuer,
            &discovery_url,
            &format!("it answered HTTP {status}"),
        ));
    }
    let doc: Value = resp.json().await.map_err(|_| {
        diagnosis::oidc_discovery(
            issuer,
            &discovery_url,
            "the answer is not a JSON OpenID configuration",
        )
    })?;
    let Some(token_endpoint) = doc.get("token_endpoint").and_then(Value::as_str) else {
        return Err(diagnosis::oidc_discovery(
            issuer,
            &discovery_url,
            "the OpenID configuration has no token_endpoint",
        ));
    };
    if !token_endpoint.starts_with("https://") {
        return Err(diagnosis::oidc_discovery(
            issuer,
            &discovery_url,
            &format!("its token_endpoint {token_endpoint} is not HTTPS; the password will not be sent there"),
        ));
    }
    let mut warnings = Vec::new();
    if let Some(declared) = doc.get("issuer").and_then(Value::as_str) {
        if declared.trim_end_matches('/') != issuer {
            warnings.push(format!(
                "The issuer's discovery document names the issuer '{declared}', not '{issuer}': the API server's --oidc-issuer-url must equal the ID token's iss exactly."
            ));
        }
    }

    // 2. Password grant.
    let mut scope = vec!["openid".to_string()];
    scope.extend(
        req.scopes
            .iter()
            .filter(|s| s.as_str() != "openid")
            .cloned(),
    );
    let scope = scope.join(" ");
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "password"),
        ("client_id", req.client_id),
        ("username", req.username),
        ("password", req.password.expose_secret()),
        ("scope", &scope),
    ];
    if let Some(secret) = req.client_secret {
        form.push(("client_secret", secret.expose_secret()));
    }
    let resp = client
        .post(token_endpoint)
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| diagnosis::oidc_unreachable(issuer, token_endpoint, &error_chain(&e)))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no OAuth2 error code");
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .map(|d| truncate(d, 200));
        return Err(diagnosis::oidc_token_error(
            issuer,
            status.as_u16(),
            &truncate(error, 60),
            description.as_deref(),
        ));
    }
    let Some(id_token) = body.get("id_token").and_then(Value::as_str) else {
        return Err(diagnosis::oidc_no_id_token(issuer));
    };
    Ok(OidcToken {
        id_token: SecretString::from(id_token.to_string()),
        detail: format!("ID token from {issuer} (password grant)"),
        warnings,
    })
}
