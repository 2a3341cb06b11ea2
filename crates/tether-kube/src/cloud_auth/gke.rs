//! Google GKE: an OAuth2 access token for a service account, which GKE accepts as
//! a bearer token. From a JSON key: the JWT-bearer grant (RFC 7523), a JWT signed
//! with the key's RS256 private key POSTed to the key's `token_uri`. On a
//! delegate with a GKE/GCE identity: the metadata server. Scopes `cloud-platform`
//! and `userinfo.email` (so the cluster can see whose token it is).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::cache::{self, Cache};
use super::http::{self, clean, Answer};
use super::{CloudError, CloudToken, Options};

pub const SCOPES: &str =
    "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ASSERTION_LIFETIME: i64 = 3600;
/// Use a cached token only while it has this much life left.
pub const REFRESH_MARGIN: i64 = 5 * 60;
const METADATA_DEFAULT_HOST: &str = "metadata.google.internal";

#[derive(Clone)]
pub enum GkeSource {
    /// The JSON key file of a service account.
    Key(SecretString),
    /// The delegate's metadata server (`GCE_METADATA_HOST` or
    /// metadata.google.internal).
    Metadata { host: Option<String> },
}

impl std::fmt::Debug for GkeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GkeSource::Key(_) => f.write_str("Key(<redacted>)"),
            GkeSource::Metadata { host } => write!(f, "Metadata({host:?})"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct GkeConfig {
    pub source: GkeSource,
}

/// The parts of a service-account key file we use.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// What a key file is, without its private key: for reports and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub token_uri: String,
}

fn parse_key(json: &str) -> Result<(KeyFile, KeyFacts), CloudError> {
    let bad = |problem: String| CloudError::BadCredential {
        field: "serviceAccountKeyRef",
        problem,
    };
    let v: Value = serde_json::from_str(json.trim()).map_err(|_| {
        bad("the secret is not JSON; store the service account's JSON key file (`gcloud iam service-accounts keys create key.json --iam-account=SA_EMAIL`)".into())
    })?;
    let key: KeyFile = serde_json::from_value(v).map_err(|e| {
        let field = e.to_string();
        bad(format!(
            "the JSON is not a service-account key file ({}); store the file `gcloud iam service-accounts keys create` writes",
            field.split(" at line").next().unwrap_or("missing fields")
        ))
    })?;
    if let Some(kind) = &key.kind {
        if kind != "service_account" {
            return Err(bad(format!(
                "the key file is of type '{kind}', not 'service_account': GKE connectors need a service account's key (user credentials from `gcloud auth application-default login` cannot be used here)"
            )));
        }
    }
    let facts = KeyFacts {
        client_email: key.client_email.clone(),
        private_key_id: key.private_key_id.clone(),
        token_uri: key
            .token_uri
            .clone()
            .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
    };
    Ok((key, facts))
}

/// The key file's facts, or why it is not one.
pub fn key_facts(json: &str) -> Result<KeyFacts, CloudError> {
    parse_key(json).map(|(_, f)| f)
}

static TOKENS: Cache<CloudToken> = Cache::new();

pub async fn token(cfg: &GkeConfig, opts: &Options) -> Result<CloudToken, CloudError> {
    let now = opts.unix_now();
    let key = match &cfg.source {
        GkeSource::Key(k) => cache::key(&[b"gke-key", k.expose_secret().as_bytes()]),
        GkeSource::Metadata { host } => cache::key(&[
            b"gke-metadata",
            host.as_deref().unwrap_or_default().as_bytes(),
        ]),
    };
    if opts.use_cache {
        if let Some(mut t) = TOKENS.get(&key, now, REFRESH_MARGIN) {
            t.cached = true;
            return Ok(t);
        }
    }
    let t = match &cfg.source {
        GkeSource::Key(k) => from_key(k, opts).await?,
        GkeSource::Metadata { host } => from_metadata(host.as_deref(), opts).await?,
    };
    TOKENS.put(key, t.expires_at, t.clone(), now);
    Ok(t)
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The signed assertion of the JWT-bearer grant.
fn assertion(key: &KeyFile, facts: &KeyFacts, now: i64) -> Result<String, CloudError> {
    let encoding =
        jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|_| {
            CloudError::BadCredential {
                field: "serviceAccountKeyRef",
                problem: "private_key of the key file is not an RSA private key in PEM".into(),
            }
        })?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let claims = Claims {
        iss: &key.client_email,
        scope: SCOPES,
        aud: &facts.token_uri,
        iat: now,
        exp: now + ASSERTION_LIFETIME,
    };
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| CloudError::BadCredential {
        field: "serviceAccountKeyRef",
        problem: format!("cannot sign with the key's private_key: {e}"),
    })
}

async fn from_key(json: &SecretString, opts: &Options) -> Result<CloudToken, CloudError> {
    let (key, facts) = parse_key(json.expose_secret())?;
    http::check_url("the Google token endpoint", &facts.token_uri)?;
    let now = opts.unix_now();
    let jwt = assertion(&key, &facts, now)?;
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: "the Google token endpoint",
        url: facts.token_uri.clone(),
        error: e,
    })?;
    let req = client
        .post(&facts.token_uri)
        .header("accept", "application/json")
        .form(&[("grant_type", JWT_BEARER), ("assertion", jwt.as_str())]);
    let a = http::send("the Google token endpoint", &facts.token_uri, req).await?;
    let (token, expires_in) = oauth_answer(
        "the Google token endpoint",
        "the JWT-bearer grant",
        &facts.token_uri,
        &a,
    )?;
    Ok(CloudToken {
        token,
        expires_at: now + expires_in,
        identity: facts.client_email.clone(),
        source: format!(
            "service-account key {} of {} (JWT-bearer grant at {})",
            facts
                .private_key_id
                .as_deref()
                .map(super::shorten)
                .unwrap_or_else(|| "without id".into()),
            facts.client_email,
            facts.token_uri
        ),
        cached: false,
    })
}

/// `access_token` and `expires_in` of a successful OAuth2 token answer, or the
/// OAuth2 error.
pub(crate) fn oauth_answer(
    service: &'static str,
    action: &'static str,
    url: &str,
    a: &Answer,
) -> Result<(SecretString, i64), CloudError> {
    let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    if !(200..300).contains(&a.status) {
        return Err(CloudError::Rejected {
            service,
            action,
            status: a.status,
            code: clean(v["error"].as_str().unwrap_or("no OAuth2 error code"), 60),
            message: clean(v["error_description"].as_str().unwrap_or_default(), 300),
            server_time: a.server_time,
            local_time: a.local_time,
        });
    }
    let Some(token) = v["access_token"].as_str() else {
        return Err(CloudError::BadAnswer {
            service,
            url: url.to_string(),
            problem: "the token answer has no access_token".into(),
        });
    };
    let expires_in = v["expires_in"]
        .as_i64()
        .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(3600);
    Ok((SecretString::from(token.to_string()), expires_in))
}

async fn from_metadata(host: Option<&str>, opts: &Options) -> Result<CloudToken, CloudError> {
    let host = host.unwrap_or(METADATA_DEFAULT_HOST);
    let base = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default");
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: "the GCE metadata server",
        url: base.clone(),
        error: e,
    })?;
    let now = opts.unix_now();
    let token_url = format!("{base}/token?scopes={}", SCOPES.replace(' ', ","));
    let a = http::send(
        "the GCE metadata server",
        &base,
        client.get(&token_url).header("Metadata-Flavor", "Google"),
    )
    .await
    .map_err(|e| match e {
        CloudError::Unreachable { error, .. } => CloudError::NoDelegateIdentity(format!(
            "the delegate has no Google Cloud identity: the metadata server {host} does not answer ({error}); run the delegate on GKE with Workload Identity (or on GCE), or give the connector serviceAccountKeyRef"
        )),
        other => other,
    })?;
    let (token, expires_in) = oauth_answer("the GCE metadata server", "a token", &base, &a)?;
    let email = http::send(
        "the GCE metadata server",
        &base,
        client
            .get(format!("{base}/email"))
            .header("Metadata-Flavor", "Google"),
    )
    .await
    .ok()
    .filter(|a| (200..300).contains(&a.status))
    .map(|a| clean(&a.body, 200))
    .unwrap_or_else(|| "the delegate's default service account".into());
    Ok(CloudToken {
        token,
        expires_at: now + expires_in,
        identity: email.clone(),
        source: format!("the delegate's metadata server ({host}), service account {email}"),
        cached: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_recognised() {
        assert!(matches!(
            key_facts("not json"),
            Err(CloudError::BadCredential { .. })
        ));
        let user = r#"{"type":"authorized_user","client_email":"a","private_key":"b"}"#;
        let e = key_facts(user).unwrap_err().to_string();
        assert!(e.contains("authorized_user"), "{e}");
        let f = key_facts(
            r#"{"type":"service_account","client_email":"ci@p.iam.gserviceaccount.com","private_key":"x","private_key_id":"abc"}"#,
        )
        .unwrap();
        assert_eq!(f.token_uri, "https://oauth2.googleapis.com/token");
    }
}
