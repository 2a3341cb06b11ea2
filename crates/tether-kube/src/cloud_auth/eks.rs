//! Amazon EKS tokens, as aws-iam-authenticator (and `aws eks get-token`) make
//! them: `k8s-aws-v1.` + base64url (no padding) of a SigV4-presigned
//! `GET https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`
//! whose signed headers include `x-k8s-aws-id: <cluster name>`, with
//! `X-Amz-Expires=60`. The cluster's authenticator replays the URL to STS and
//! maps the ARN STS answers to a Kubernetes user. Accepted for 15 minutes; we
//! treat it as valid for 14 and make a new one a minute before.
//!
//! The signing credentials are access keys, a role assumed with them (STS
//! `AssumeRole`, optional external id), or the delegate's web identity (IRSA:
//! `AssumeRoleWithWebIdentity` with the projected token file). Every request is
//! signed by `aws-sigv4`; STS answers XML, the EKS API JSON.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::cache::{self, Cache};
use super::http::{self, clean, Answer};
use super::{shorten, CloudError, CloudToken, Options};

/// The aws-iam-authenticator token prefix.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The header that binds a token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// How long we treat a token as valid (the authenticator accepts 15 minutes).
pub const TOKEN_LIFETIME: i64 = 14 * 60;
/// Make a new token this long before the old one's 14 minutes are over.
pub const TOKEN_REFRESH_MARGIN: i64 = 60;
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
const ROLE_SESSION_SECONDS: i64 = 3600;
const ROLE_REFRESH_MARGIN: i64 = 5 * 60;

/// Access keys. `Debug` shows only a shortened key id.
#[derive(Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AwsKeys({}, <redacted>{})",
            shorten(&self.access_key_id),
            if self.session_token.is_some() {
                ", <redacted session token>"
            } else {
                ""
            }
        )
    }
}

/// Where the signing credentials start from.
#[derive(Clone, Debug)]
pub enum AwsBase {
    /// The connector's access keys.
    Keys(AwsKeys),
    /// The delegate's IRSA identity: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`.
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
        session_name: Option<String>,
    },
    /// The delegate's EKS Pod Identity: the agent at
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`, asked with the token in
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
    PodIdentity { url: String, token_file: PathBuf },
}

#[derive(Clone, Debug)]
pub struct EksConfig {
    pub region: String,
    pub cluster_name: String,
    pub base: AwsBase,
    /// Assumed with the base credentials.
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub sts_endpoint: Option<String>,
    pub eks_endpoint: Option<String>,
}

impl EksConfig {
    /// `https://sts.<region>.amazonaws.com` unless overridden.
    pub fn sts_endpoint(&self) -> String {
        match &self.sts_endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://sts.{}.{}", self.region, dns_suffix(&self.region)),
        }
    }

    /// `https://eks.<region>.amazonaws.com` unless overridden.
    pub fn eks_endpoint(&self) -> String {
        match &self.eks_endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://eks.{}.{}", self.region, dns_suffix(&self.region)),
        }
    }
}

fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// The keys a token is signed with, and whose they are.
#[derive(Clone, Debug)]
pub struct SigningIdentity {
    pub keys: AwsKeys,
    /// The assumed role's session ARN when a role was assumed.
    pub arn: Option<String>,
    /// e.g. `access key AKIA…WXYZ` or `role … assumed with web identity`.
    pub description: String,
    /// When the keys stop working (temporary credentials), Unix seconds.
    pub expires_at: Option<i64>,
}

/// An EKS token and what made it.
#[derive(Clone, Debug)]
pub struct EksToken {
    pub token: CloudToken,
    pub signer: SigningIdentity,
    /// The presigned URL inside the token (not a secret on its own: it is only
    /// good for `GetCallerIdentity` for 15 minutes, but it is the token).
    presigned_url: SecretString,
}

static TOKENS: Cache<EksToken> = Cache::new();
static ROLES: Cache<SigningIdentity> = Cache::new();

/// A token for the cluster, cached until a minute before its 14 minutes end.
pub async fn token(cfg: &EksConfig, opts: &Options) -> Result<EksToken, CloudError> {
    let now = opts.unix_now();
    let key = token_key(cfg);
    if opts.use_cache {
        if let Some(mut t) = TOKENS.get(&key, now, TOKEN_REFRESH_MARGIN) {
            t.token.cached = true;
            return Ok(t);
        }
    }
    let signer = signing_identity(cfg, opts).await?;
    let url = presign(
        &signer.keys,
        &cfg.region,
        &cfg.cluster_name,
        &cfg.sts_endpoint(),
        opts.now,
    )?;
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_bytes())
    );
    let mut expires_at = now + TOKEN_LIFETIME;
    if let Some(creds_exp) = signer.expires_at {
        expires_at = expires_at.min(creds_exp);
    }
    let t = EksToken {
        token: CloudToken {
            token: SecretString::from(token),
            expires_at,
            identity: signer
                .arn
                .clone()
                .unwrap_or_else(|| signer.description.clone()),
            source: format!(
                "{} (STS {}, cluster {})",
                signer.description, cfg.region, cfg.cluster_name
            ),
            cached: false,
        },
        signer,
        presigned_url: SecretString::from(url),
    };
    TOKENS.put(key, expires_at, t.clone(), now);
    Ok(t)
}

fn token_key(cfg: &EksConfig) -> [u8; 32] {
    let base: Vec<u8> = match &cfg.base {
        AwsBase::Keys(k) => [
            b"keys".as_slice(),
            k.access_key_id.as_bytes(),
            k.secret_access_key.expose_secret().as_bytes(),
            k.session_token
                .as_ref()
                .map(|s| s.expose_secret().as_bytes())
                .unwrap_or_default(),
        ]
        .join(&0u8),
        AwsBase::WebIdentity {
            role_arn,
            token_file,
            ..
        } => [
            b"web".as_slice(),
            role_arn.as_bytes(),
            token_file.to_string_lossy().as_bytes(),
        ]
        .join(&0u8),
        AwsBase::PodIdentity { url, token_file } => [
            b"pod".as_slice(),
            url.as_bytes(),
            token_file.to_string_lossy().as_bytes(),
        ]
        .join(&0u8),
    };
    cache::key(&[
        b"eks",
        &base,
        cfg.region.as_bytes(),
        cfg.cluster_name.as_bytes(),
        cfg.role_arn.as_deref().unwrap_or_default().as_bytes(),
        cfg.external_id.as_deref().unwrap_or_default().as_bytes(),
        cfg.sts_endpoint().as_bytes(),
    ])
}

/// The presigned `GetCallerIdentity` URL that is the token's content.
pub fn presign(
    keys: &AwsKeys,
    region: &str,
    cluster_name: &str,
    sts_endpoint: &str,
    now: SystemTime,
) -> Result<String, CloudError> {
    let base = format!(
        "{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_endpoint.trim_end_matches('/')
    );
    http::check_url("AWS STS", &base)?;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity = credentials(keys).into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| signing_error(&e.to_string()))?
        .into();
    let headers = [(CLUSTER_ID_HEADER, cluster_name)];
    let req = SignableRequest::new(
        "GET",
        base.as_str(),
        headers.into_iter(),
        // The hash of the empty body, as botocore and the Go SDK presign it
        // (UNSIGNED-PAYLOAD is S3's).
        SignableBody::empty(),
    )
    .map_err(|e| signing_error(&e.to_string()))?;
    let (instructions, _) = sign(req, &params)
        .map_err(|e| signing_error(&e.to_string()))?
        .into_parts();
    let mut url = url::Url::parse(&base).map_err(|e| signing_error(&e.to_string()))?;
    {
        let mut q = url.query_pairs_mut();
        for (name, value) in instructions.params() {
            q.append_pair(name, value);
        }
    }
    Ok(url.to_string())
}

fn signing_error(e: &str) -> CloudError {
    CloudError::BadCredential {
        field: "accessKeyIdRef/secretAccessKeyRef",
        problem: format!("cannot sign with these keys: {e}"),
    }
}

fn credentials(keys: &AwsKeys) -> Credentials {
    Credentials::new(
        keys.access_key_id.trim(),
        keys.secret_access_key.expose_secret().trim(),
        keys.session_token
            .as_ref()
            .map(|t| t.expose_secret().trim().to_string()),
        None,
        "tether",
    )
}

/// Signs a request in the `Authorization` header (STS and EKS API calls).
/// One request to sign in the `Authorization` header.
struct ToSign<'a> {
    service: &'a str,
    method: &'a str,
    url: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

fn sign_headers(
    keys: &AwsKeys,
    region: &str,
    req: ToSign<'_>,
    now: SystemTime,
) -> Result<Vec<(String, String)>, CloudError> {
    let ToSign {
        service,
        method,
        url,
        headers,
        body,
    } = req;
    let identity = credentials(keys).into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(&e.to_string()))?
        .into();
    let req = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| signing_error(&e.to_string()))?;
    let (instructions, _) = sign(req, &params)
        .map_err(|e| signing_error(&e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect())
}

/// The keys to sign the token with: the base keys, or a role assumed with them
/// (or with the web identity); temporary keys are cached until 5 minutes
/// before they expire.
pub async fn signing_identity(
    cfg: &EksConfig,
    opts: &Options,
) -> Result<SigningIdentity, CloudError> {
    let now = opts.unix_now();
    let key = cache::key(&[b"role", &token_key(cfg)]);
    if opts.use_cache && (cfg.role_arn.is_some() || !matches!(cfg.base, AwsBase::Keys(_))) {
        if let Some(s) = ROLES.get(&key, now, ROLE_REFRESH_MARGIN) {
            return Ok(s);
        }
    }
    let base = match &cfg.base {
        AwsBase::Keys(k) => SigningIdentity {
            keys: k.clone(),
            arn: None,
            description: format!("access key {}", shorten(&k.access_key_id)),
            expires_at: None,
        },
        AwsBase::WebIdentity {
            role_arn,
            token_file,
            session_name,
        } => assume_role_with_web_identity(cfg, role_arn, token_file, session_name, opts).await?,
        AwsBase::PodIdentity { url, token_file } => pod_identity(url, token_file, opts).await?,
    };
    let out = match &cfg.role_arn {
        None => base,
        Some(role_arn) => assume_role(cfg, &base, role_arn, opts).await?,
    };
    if let Some(exp) = out.expires_at {
        ROLES.put(key, exp, out.clone(), now);
    }
    Ok(out)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn assume_role(
    cfg: &EksConfig,
    base: &SigningIdentity,
    role_arn: &str,
    opts: &Options,
) -> Result<SigningIdentity, CloudError> {
    let url = format!("{}/", cfg.sts_endpoint());
    http::check_url("AWS STS", &url)?;
    let duration = ROLE_SESSION_SECONDS.to_string();
    let mut pairs = vec![
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        ("RoleSessionName", "tether"),
        ("DurationSeconds", duration.as_str()),
    ];
    if let Some(id) = &cfg.external_id {
        pairs.push(("ExternalId", id));
    }
    let body = form(&pairs);
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signed = sign_headers(
        &base.keys,
        &cfg.region,
        ToSign {
            service: "sts",
            method: "POST",
            url: &url,
            headers: &[("content-type", content_type)],
            body: body.as_bytes(),
        },
        opts.now,
    )?;
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: "AWS STS",
        url: url.clone(),
        error: e,
    })?;
    let mut req = client
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    for (n, v) in &signed {
        req = req.header(n, v);
    }
    let answer = http::send("AWS STS", &url, req).await?;
    let creds = parse_credentials("AWS STS", "AssumeRole", &url, &answer)?;
    Ok(SigningIdentity {
        description: format!("role {role_arn} assumed with {}", base.description),
        ..creds
    })
}

async fn assume_role_with_web_identity(
    cfg: &EksConfig,
    role_arn: &str,
    token_file: &PathBuf,
    session_name: &Option<String>,
    opts: &Options,
) -> Result<SigningIdentity, CloudError> {
    let token = std::fs::read_to_string(token_file).map_err(|e| {
        CloudError::NoDelegateIdentity(format!(
            "the delegate's AWS_WEB_IDENTITY_TOKEN_FILE {} cannot be read: {e}",
            token_file.display()
        ))
    })?;
    let url = format!("{}/", cfg.sts_endpoint());
    http::check_url("AWS STS", &url)?;
    let duration = ROLE_SESSION_SECONDS.to_string();
    let body = form(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        (
            "RoleSessionName",
            session_name.as_deref().unwrap_or("tether-delegate"),
        ),
        ("WebIdentityToken", token.trim()),
        ("DurationSeconds", duration.as_str()),
    ]);
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: "AWS STS",
        url: url.clone(),
        error: e,
    })?;
    let req = client
        .post(&url)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body);
    let answer = http::send("AWS STS", &url, req).await?;
    let creds = parse_credentials("AWS STS", "AssumeRoleWithWebIdentity", &url, &answer)?;
    Ok(SigningIdentity {
        description: format!(
            "role {role_arn} assumed with the delegate's web identity ({})",
            token_file.display()
        ),
        ..creds
    })
}

/// The agent addresses the AWS SDKs accept over plain HTTP besides loopback
/// (EKS Pod Identity, and ECS's).
const CONTAINER_CREDENTIAL_HOSTS: [&str; 3] = ["169.254.170.23", "[fd00:ec2::23]", "169.254.170.2"];

/// Temporary keys from the EKS Pod Identity agent, as the AWS SDKs get them:
/// `GET` the full URI with the pod's token as the `Authorization` header.
async fn pod_identity(
    url: &str,
    token_file: &PathBuf,
    opts: &Options,
) -> Result<SigningIdentity, CloudError> {
    const SERVICE: &str = "the EKS Pod Identity agent";
    let token = std::fs::read_to_string(token_file).map_err(|e| {
        CloudError::NoDelegateIdentity(format!(
            "the delegate's AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {} cannot be read: {e}",
            token_file.display()
        ))
    })?;
    let agent = url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "http")
        .and_then(|u| u.host().map(|h| h.to_string()))
        .is_some_and(|h| CONTAINER_CREDENTIAL_HOSTS.contains(&h.as_str()));
    if !agent {
        http::check_url(SERVICE, url)?;
    }
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: SERVICE,
        url: url.to_string(),
        error: e,
    })?;
    let req = client.get(url).header("Authorization", token.trim());
    let a = http::send(SERVICE, url, req).await?;
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
    if !(200..300).contains(&a.status) {
        return Err(CloudError::Rejected {
            service: SERVICE,
            action: "GetCredentials",
            status: a.status,
            code: clean(
                v["code"]
                    .as_str()
                    .or(a.error_type.as_deref())
                    .unwrap_or("no error code"),
                60,
            ),
            message: clean(v["message"].as_str().unwrap_or(&a.body), 200),
            server_time: a.server_time,
            local_time: a.local_time,
        });
    }
    let bad = |p: &str| CloudError::BadAnswer {
        service: SERVICE,
        url: url.to_string(),
        problem: p.to_string(),
    };
    let get = |n: &str| {
        v[n].as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("no {n} in its answer")))
    };
    let (keys, expires_at) = temporary_keys(get, "Token", bad)?;
    Ok(SigningIdentity {
        keys,
        arn: None,
        description: format!("the delegate's EKS Pod Identity ({url})"),
        expires_at: Some(expires_at),
    })
}

/// Temporary keys and when they expire, from an answer's fields (`token`
/// names the session token's field).
fn temporary_keys(
    get: impl Fn(&str) -> Result<String, CloudError>,
    token: &str,
    bad: impl Fn(&str) -> CloudError,
) -> Result<(AwsKeys, i64), CloudError> {
    let expires_at = time::OffsetDateTime::parse(
        &get("Expiration")?,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| t.unix_timestamp())
    .map_err(|_| bad("Expiration is not an RFC 3339 time"))?;
    let keys = AwsKeys {
        access_key_id: get("AccessKeyId")?,
        secret_access_key: SecretString::from(get("SecretAccessKey")?),
        session_token: Some(SecretString::from(get(token)?)),
    };
    Ok((keys, expires_at))
}

fn xml_text<'a>(doc: &'a roxmltree::Document<'a>, name: &str) -> Option<&'a str> {
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .and_then(|n| n.text())
        .map(str::trim)
}

/// The STS error of an answer, or `None` when it succeeded.
fn sts_error(service: &'static str, action: &'static str, a: &Answer) -> Option<CloudError> {
    if (200..300).contains(&a.status) {
        return None;
    }
    let (code, message) = match roxmltree::Document::parse(&a.body) {
        Ok(doc) => (
            xml_text(&doc, "Code")
                .unwrap_or("no error code")
                .to_string(),
            xml_text(&doc, "Message").unwrap_or_default().to_string(),
        ),
        Err(_) => ("no error code".to_string(), clean(&a.body, 120)),
    };
    Some(CloudError::Rejected {
        service,
        action,
        status: a.status,
        code: clean(&code, 60),
        message: clean(&message, 300),
        server_time: a.server_time,
        local_time: a.local_time,
    })
}

fn parse_credentials(
    service: &'static str,
    action: &'static str,
    url: &str,
    a: &Answer,
) -> Result<SigningIdentity, CloudError> {
    if let Some(e) = sts_error(service, action, a) {
        return Err(e);
    }
    let bad = |p: &str| CloudError::BadAnswer {
        service,
        url: url.to_string(),
        problem: p.to_string(),
    };
    let doc = roxmltree::Document::parse(&a.body).map_err(|_| bad("not XML"))?;
    let get = |n: &str| {
        xml_text(&doc, n)
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("no {n} in the {action} answer")))
    };
    let (keys, expires_at) = temporary_keys(get, "SessionToken", bad)?;
    Ok(SigningIdentity {
        keys,
        arn: xml_text(&doc, "Arn").map(str::to_string),
        description: String::new(),
        expires_at: Some(expires_at),
    })
}

/// Who STS says signed the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    pub account: String,
}

/// Replays the token's presigned request to STS, as the cluster's
/// authenticator will: proves the signature and names the identity.
pub async fn caller_identity(
    cfg: &EksConfig,
    token: &EksToken,
    opts: &Options,
) -> Result<CallerIdentity, CloudError> {
    let url = token.presigned_url.expose_secret().to_string();
    let shown = cfg.sts_endpoint();
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: "AWS STS",
        url: shown.clone(),
        error: e,
    })?;
    let req = client
        .get(&url)
        .header(CLUSTER_ID_HEADER, &cfg.cluster_name)
        .header("accept", "application/xml");
    let answer = http::send("AWS STS", &shown, req).await?;
    if let Some(e) = sts_error("AWS STS", "GetCallerIdentity", &answer) {
        return Err(e);
    }
    let doc = roxmltree::Document::parse(&answer.body).map_err(|_| CloudError::BadAnswer {
        service: "AWS STS",
        url: shown.clone(),
        problem: "the GetCallerIdentity answer is not XML".into(),
    })?;
    Ok(CallerIdentity {
        arn: xml_text(&doc, "Arn").unwrap_or_default().to_string(),
        account: xml_text(&doc, "Account").unwrap_or_default().to_string(),
    })
}

/// What the EKS API says about the cluster name in the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterLookup {
    Found {
        endpoint: Option<String>,
        status: Option<String>,
    },
    /// No such cluster in the region; `others` are the clusters that are there
    /// (when listing is allowed).
    NotFound { others: Option<Vec<String>> },
    /// The identity may not ask (no eks:DescribeCluster); not a failure.
    NotAllowed { code: String },
}

/// `DescribeCluster` (and `ListClusters` when it is not found), signed with
/// the token's keys.
pub async fn describe_cluster(
    cfg: &EksConfig,
    signer: &SigningIdentity,
    opts: &Options,
) -> Result<ClusterLookup, CloudError> {
    let base = cfg.eks_endpoint();
    let url = format!("{base}/clusters/{}", cfg.cluster_name);
    let a = eks_get(cfg, signer, &url, opts).await?;
    match a.status {
        200..=299 => {
            let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
            let c = &v["cluster"];
            Ok(ClusterLookup::Found {
                endpoint: c["endpoint"].as_str().map(str::to_string),
                status: c["status"].as_str().map(str::to_string),
            })
        }
        404 => {
            let list = eks_get(cfg, signer, &format!("{base}/clusters"), opts).await?;
            let others = (200..300).contains(&list.status).then(|| {
                serde_json::from_str::<Value>(&list.body)
                    .ok()
                    .and_then(|v| {
                        v["clusters"].as_array().map(|a| {
                            a.iter()
                                .filter_map(|c| c.as_str().map(str::to_string))
                                .collect()
                        })
                    })
                    .unwrap_or_default()
            });
            Ok(ClusterLookup::NotFound { others })
        }
        status => {
            let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
            let code = a
                .error_type
                .clone()
                .or_else(|| v["__type"].as_str().map(str::to_string))
                .unwrap_or_else(|| status.to_string());
            if status == 403 || code.contains("AccessDenied") {
                return Ok(ClusterLookup::NotAllowed { code });
            }
            Err(CloudError::Rejected {
                service: "the EKS API",
                action: "DescribeCluster",
                status,
                code,
                message: clean(v["message"].as_str().unwrap_or_default(), 300),
                server_time: a.server_time,
                local_time: a.local_time,
            })
        }
    }
}

async fn eks_get(
    cfg: &EksConfig,
    signer: &SigningIdentity,
    url: &str,
    opts: &Options,
) -> Result<Answer, CloudError> {
    http::check_url("the EKS API", url)?;
    let signed = sign_headers(
        &signer.keys,
        &cfg.region,
        ToSign {
            service: "eks",
            method: "GET",
            url,
            headers: &[],
            body: &[],
        },
        opts.now,
    )?;
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: "the EKS API",
        url: url.to_string(),
        error: e,
    })?;
    let mut req = client.get(url).header("accept", "application/json");
    for (n, v) in &signed {
        req = req.header(n, v);
    }
    http::send("the EKS API", url, req).await
}

/// The region in an EKS endpoint host
/// (`<id>.<gr7|yl4|sk1>.<region>.eks.amazonaws.com`), if it is one.
pub fn region_of_endpoint(host: &str) -> Option<String> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = h
        .strip_suffix(".eks.amazonaws.com")
        .or_else(|| h.strip_suffix(".eks.amazonaws.com.cn"))?;
    rest.rsplit('.').next().map(str::to_string)
}

/// The signing time of a token (its `X-Amz-Date`), Unix seconds; for reports.
pub fn signed_at(presigned_url: &str) -> Option<i64> {
    let u = url::Url::parse(presigned_url).ok()?;
    let (_, d) = u.query_pairs().find(|(k, _)| k == "X-Amz-Date")?;
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(&d, fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

impl EksToken {
    /// When the token was signed, Unix seconds.
    pub fn signed_at(&self) -> Option<i64> {
        signed_at(self.presigned_url.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AwsKeys {
        AwsKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        }
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_for_the_cluster() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let url = presign(
            &keys(),
            "eu-west-1",
            "prod",
            "https://sts.eu-west-1.amazonaws.com",
            now,
        )
        .unwrap();
        let u = url::Url::parse(&url).unwrap();
        assert_eq!(u.host_str(), Some("sts.eu-west-1.amazonaws.com"));
        let q: std::collections::HashMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "GetCallerIdentity");
        assert_eq!(q["Version"], "2011-06-15");
        assert_eq!(q["X-Amz-Expires"], "60");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(q["X-Amz-SignedHeaders"], "host;x-k8s-aws-id");
        assert_eq!(
            q["X-Amz-Credential"],
            "AKIDEXAMPLE/20270115/eu-west-1/sts/aws4_request"
        );
        assert_eq!(q["X-Amz-Date"], "20270115T080000Z");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        assert!(!url.contains("wJalr"), "the secret key is never in the URL");
        assert_eq!(signed_at(&url), Some(1_800_000_000));
        // Another cluster name is another signature.
        let other = presign(
            &keys(),
            "eu-west-1",
            "staging",
            "https://sts.eu-west-1.amazonaws.com",
            now,
        )
        .unwrap();
        assert_ne!(url, other);
    }

    #[test]
    fn session_tokens_are_signed_into_the_query() {
        let mut k = keys();
        k.session_token = Some(SecretString::from("FwoGZXIvYXdzE+/session=="));
        let url = presign(
            &k,
            "us-east-1",
            "c",
            "https://sts.us-east-1.amazonaws.com",
            SystemTime::now(),
        )
        .unwrap();
        let u = url::Url::parse(&url).unwrap();
        assert!(u
            .query_pairs()
            .any(|(k, v)| k == "X-Amz-Security-Token" && v == "FwoGZXIvYXdzE+/session=="));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(presign(
            &keys(),
            "eu-west-1",
            "c",
            "http://sts.example.com",
            SystemTime::now()
        )
        .is_err());
        assert!(presign(
            &keys(),
            "eu-west-1",
            "c",
            "http://127.0.0.1:9",
            SystemTime::now()
        )
        .is_ok());
    }

    #[test]
    fn regions_of_endpoints() {
        assert_eq!(
            region_of_endpoint("ABCDEF0123.gr7.eu-west-1.eks.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of_endpoint("10.0.0.1"), None);
        assert_eq!(region_of_endpoint("example.com"), None);
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = format!("{:?}", keys());
        assert!(!s.contains("wJalr"), "{s}");
        assert!(s.contains("AKID…MPLE"), "{s}");
    }
}
