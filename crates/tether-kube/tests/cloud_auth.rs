//! EKS, GKE and AKS credentials against a real API server whose token webhook is
//! `scripts/cloud-verifier.py`: the EKS token's SigV4 presigned URL is re-derived
//! and checked by botocore, the GKE grant's JWT by google-auth, AKS tokens come
//! from an Entra ID-shaped endpoint. Each success first, then each failure with
//! its own diagnosis.

use std::time::Duration;

use secrecy::SecretString;
use tether_domain::connector::ConnectivityState;
use tether_domain::ConnectionTestSettings;
use tether_kube::cloud_auth::aks::{AksConfig, AksCredential};
use tether_kube::cloud_auth::eks::{self, AwsBase, AwsKeys, EksConfig};
use tether_kube::cloud_auth::gke::{GkeConfig, GkeSource};
use tether_kube::cloud_auth::{CloudAuth, Options};
use tether_kube::connection_test::{
    run, ConnectionReport, IdentitySource, ResolvedAuth, StageName, StageStatus, TestInput,
    TestTarget,
};
use tether_testenv::cloud::*;

fn keys(id: &str, secret: &str) -> AwsBase {
    AwsBase::Keys(AwsKeys {
        access_key_id: id.into(),
        secret_access_key: SecretString::from(secret.to_string()),
        session_token: None,
    })
}

fn eks_cfg(w: &CloudWorld, base: AwsBase) -> EksConfig {
    EksConfig {
        region: AWS_REGION.into(),
        cluster_name: EKS_CLUSTER.into(),
        base,
        role_arn: None,
        external_id: None,
        sts_endpoint: Some(w.url(0, "/sts")),
        eks_endpoint: Some(w.url(0, "/eks")),
    }
}

fn aks_cfg(w: &CloudWorld, secret: &str) -> AksConfig {
    AksConfig {
        tenant_id: AZURE_TENANT.into(),
        client_id: AZURE_CLIENT_ID.into(),
        credential: AksCredential::Secret(SecretString::from(secret.to_string())),
        authority_host: Some(w.url(0, "/entra")),
    }
}

fn gke(json: &str) -> CloudAuth {
    CloudAuth::Gke(GkeConfig {
        source: GkeSource::Key(SecretString::from(json.to_string())),
    })
}

async fn test(auth: CloudAuth) -> ConnectionReport {
    let w = CloudWorld::get();
    run(TestInput {
        target: TestTarget::Manual {
            master_url: w.kube.url.clone(),
            ca_pem: Some(w.kube.ca_pem.clone()),
            auth: ResolvedAuth::Cloud(auth),
        },
        settings: ConnectionTestSettings {
            namespaces: vec!["default".into()],
            ..Default::default()
        },
        stage_timeout: Duration::from_secs(20),
        on_stage: Default::default(),
    })
    .await
}

fn pretty(r: &ConnectionReport) -> String {
    serde_json::to_string_pretty(r).unwrap()
}

/// No secret value of the world in a report.
fn assert_no_secrets(r: &ConnectionReport) {
    let text = pretty(r);
    for s in [
        AWS_CI_SECRET,
        AWS_STRANGER_SECRET,
        AWS_NODESCRIBE_SECRET,
        AZURE_CLIENT_SECRET,
        AWS_WEB_IDENTITY_TOKEN,
        AWS_EXPIRED_SECRET,
        AWS_EXPIRED_SESSION_TOKEN,
        AZURE_EXPIRED_CLIENT_SECRET,
        "PRIVATE KEY",
        "k8s-aws-v1.",
        "X-Amz-Signature",
        "ya29.",
    ] {
        assert!(
            !text.contains(s),
            "the report quotes a secret ({s}): {text}"
        );
    }
}

fn assert_success(r: &ConnectionReport) -> String {
    let text = pretty(r);
    assert_eq!(r.status, ConnectivityState::Success, "{text}");
    assert_eq!(r.stages.len(), 7, "{text}");
    assert!(
        r.stages.iter().all(|s| s.status == StageStatus::Passed),
        "{text}"
    );
    assert_no_secrets(r);
    r.stage(StageName::Token).unwrap().detail.clone().unwrap()
}

/// FAILURE at `stage` with `reason`; earlier stages passed, later ones skipped.
fn assert_failed(r: &ConnectionReport, stage: StageName, reason: &str) -> String {
    let text = pretty(r);
    assert_eq!(r.status, ConnectivityState::Failure, "{text}");
    assert_eq!(r.reason(), Some(reason), "{text}");
    let at = StageName::CLOUD.iter().position(|s| *s == stage).unwrap();
    for (i, s) in r.stages.iter().enumerate() {
        assert_eq!(s.name, StageName::CLOUD[i], "{text}");
        let want = match i.cmp(&at) {
            std::cmp::Ordering::Less => StageStatus::Passed,
            std::cmp::Ordering::Equal => StageStatus::Failed,
            std::cmp::Ordering::Greater => StageStatus::Skipped,
        };
        assert_eq!(s.status, want, "stage {:?}: {text}", s.name);
    }
    assert!(!r.hints.is_empty(), "{text}");
    assert_no_secrets(r);
    format!(
        "{}\n{}",
        r.error_summary.clone().unwrap_or_default(),
        r.hints.join("\n")
    )
}

// ------------------------------------------------------------------ successes

#[tokio::test]
async fn eks_with_access_keys_succeeds() {
    let w = CloudWorld::get();
    let r = test(CloudAuth::Eks(eks_cfg(
        w,
        keys(AWS_CI_KEY_ID, AWS_CI_SECRET),
    )))
    .await;
    let token = assert_success(&r);
    assert!(
        token.contains("arn:aws:iam::111122223333:user/ci"),
        "{token}"
    );
    assert!(token.contains("valid until"), "{token}");
    assert!(
        token.contains("cluster tether-test is ACTIVE in eu-west-1"),
        "{token}"
    );
    let id = r.identity.clone().unwrap();
    assert_eq!(id.source, IdentitySource::CloudIdentity, "{}", pretty(&r));
    assert!(id.label.unwrap().contains("EKS cloud identity"));
}

#[tokio::test]
async fn eks_with_an_assumed_role_succeeds() {
    let w = CloudWorld::get();
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    cfg.role_arn = Some(AWS_ROLE_ARN.into());
    cfg.external_id = Some(AWS_EXTERNAL_ID.into());
    let r = test(CloudAuth::Eks(cfg)).await;
    let token = assert_success(&r);
    assert!(
        token.contains("arn:aws:sts::111122223333:assumed-role/deployer/tether"),
        "{token}"
    );
    assert!(
        token.contains(
            "role arn:aws:iam::111122223333:role/deployer assumed with access key AKIA…0001"
        ),
        "{token}"
    );
}

#[tokio::test]
async fn eks_with_the_delegates_web_identity_succeeds() {
    let w = CloudWorld::get();
    let file = w.dir.join("web-identity-token");
    std::fs::write(&file, AWS_WEB_IDENTITY_TOKEN).unwrap();
    let r = test(CloudAuth::Eks(eks_cfg(
        w,
        AwsBase::WebIdentity {
            role_arn: AWS_ROLE_ARN.into(),
            token_file: file,
            session_name: None,
        },
    )))
    .await;
    let token = assert_success(&r);
    assert!(
        token.contains("assumed-role/deployer/tether-delegate"),
        "{token}"
    );
    assert!(token.contains("web identity"), "{token}");
}

#[tokio::test]
async fn gke_with_a_service_account_key_succeeds() {
    let w = CloudWorld::get();
    let r = test(gke(&w.gcp_key_json)).await;
    let token = assert_success(&r);
    assert!(token.contains(GCP_EMAIL), "{token}");
    assert!(token.contains("JWT-bearer grant"), "{token}");
    assert!(token.contains("valid until"), "{token}");
}

#[tokio::test]
async fn aks_with_client_credentials_succeeds() {
    let w = CloudWorld::get();
    let r = test(CloudAuth::Aks(aks_cfg(w, AZURE_CLIENT_SECRET))).await;
    let token = assert_success(&r);
    assert!(token.contains(AZURE_CLIENT_ID), "{token}");
    assert!(token.contains("client secret"), "{token}");
    assert!(token.contains("valid until"), "{token}");
}

// ------------------------------------------------------------------ tokens and their cache

#[tokio::test]
async fn eks_tokens_last_14_minutes_and_are_reused_until_shortly_before() {
    let w = CloudWorld::get();
    // Its own cluster name, so no other test shares the cache entry.
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    cfg.cluster_name = "cache-test".into();
    let opts = Options::default();
    let first = eks::token(&cfg, &opts).await.unwrap();
    let now = opts.unix_now();
    assert!(!first.token.cached);
    assert_eq!(first.token.expires_at - now, eks::TOKEN_LIFETIME);
    let again = eks::token(&cfg, &opts).await.unwrap();
    assert!(again.token.cached);
    // 13 minutes later (less than the refresh margin left) a new one is made.
    let later = Options {
        now: opts.now + Duration::from_secs(13 * 60 + 30),
        ..Options::default()
    };
    let fresh = eks::token(&cfg, &later).await.unwrap();
    assert!(!fresh.token.cached);
    assert!(fresh.token.expires_at > first.token.expires_at);
}

#[tokio::test]
async fn gke_and_aks_tokens_are_cached_until_shortly_before_they_expire() {
    let w = CloudWorld::get();
    let ci: serde_json::Value = serde_json::from_str(&w.gcp_key_json).unwrap();
    // Token endpoint routes of this test's own, so their counts are its alone.
    let key = |route: &str| {
        CloudWorld::gcp_key(
            GCP_EMAIL,
            ci["private_key"].as_str().unwrap(),
            "k-ci-cache",
            &w.url(0, route),
        )
    };
    let opts = Options::default();
    let route = "/google/lifetime/3599/token";
    let auth = gke(&key(route));
    let first = tether_kube::cloud_auth::token(&auth, &opts).await.unwrap();
    assert!(!first.cached);
    assert_eq!(first.expires_at - opts.unix_now(), 3599);
    let again = tether_kube::cloud_auth::token(&auth, &opts).await.unwrap();
    assert!(again.cached);
    assert_eq!(w.requests(route).unwrap(), 1, "the cached token was used");
    // A token with no more than the 5-minute margin left is not used again:
    // each use is a new grant.
    let route = "/google/lifetime/300/token";
    let auth = gke(&key(route));
    for n in 1..=2 {
        let t = tether_kube::cloud_auth::token(&auth, &opts).await.unwrap();
        assert!(!t.cached);
        assert_eq!(w.requests(route).unwrap(), n);
    }

    // AKS: an authority URL of its own (a 1-second skew path), so no other
    // test shares the cache entry. Client secrets carry no time, so the
    // clock can be moved.
    let mut cfg = aks_cfg(w, AZURE_CLIENT_SECRET);
    cfg.authority_host = Some(w.url(1, "/entra"));
    let auth = CloudAuth::Aks(cfg);
    let first = tether_kube::cloud_auth::token(&auth, &opts).await.unwrap();
    assert!(!first.cached);
    let again = tether_kube::cloud_auth::token(&auth, &opts).await.unwrap();
    assert!(again.cached);
    let later = Options {
        now: opts.now + Duration::from_secs(3599 - 4 * 60),
        ..Options::default()
    };
    let fresh = tether_kube::cloud_auth::token(&auth, &later).await.unwrap();
    assert!(
        !fresh.cached,
        "within AKS's 5-minute margin a new token is made"
    );
}

// ------------------------------------------------------------------ EKS failures

#[tokio::test]
async fn eks_expired_temporary_credentials_are_diagnosed_as_expired() {
    let w = CloudWorld::get();
    let r = test(CloudAuth::Eks(eks_cfg(
        w,
        AwsBase::Keys(AwsKeys {
            access_key_id: AWS_EXPIRED_KEY_ID.into(),
            secret_access_key: SecretString::from(AWS_EXPIRED_SECRET.to_string()),
            session_token: Some(SecretString::from(AWS_EXPIRED_SESSION_TOKEN.to_string())),
        }),
    )))
    .await;
    let text = assert_failed(&r, StageName::Token, "CLOUD_CREDENTIALS_EXPIRED");
    assert!(text.contains("ExpiredToken"), "{text}");
    assert!(text.contains("sessionTokenRef"), "{text}");
}

#[tokio::test]
async fn eks_clock_ahead_is_clock_skew_from_signature_does_not_match() {
    let w = CloudWorld::get();
    // STS's clock 20 minutes behind ours: our signature is "not yet current".
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    cfg.sts_endpoint = Some(w.url(-1200, "/sts"));
    let r = test(CloudAuth::Eks(cfg)).await;
    let text = assert_failed(&r, StageName::Token, "CLOCK_SKEW");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(text.contains("20 min"), "{text}");
    assert!(text.contains("ahead of"), "{text}");
    assert!(text.contains("NTP"), "{text}");
    // Assuming a role (a header-signed POST) with our clock behind: STS says
    // "Signature expired", also clock skew.
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    cfg.role_arn = Some(AWS_ROLE_ARN.into());
    cfg.external_id = Some(AWS_EXTERNAL_ID.into());
    cfg.sts_endpoint = Some(w.url(1200, "/sts"));
    let r = test(CloudAuth::Eks(cfg)).await;
    let text = assert_failed(&r, StageName::Token, "CLOCK_SKEW");
    assert!(text.contains("AssumeRole"), "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(text.contains("behind"), "{text}");
}

#[tokio::test]
async fn eks_wrong_secret_key_is_rejected_by_sts() {
    let w = CloudWorld::get();
    let r = test(CloudAuth::Eks(eks_cfg(
        w,
        keys(AWS_CI_KEY_ID, "not-the-secret-key/K7MDENG+bPxRfiCYEXAMPLE"),
    )))
    .await;
    let text = assert_failed(&r, StageName::Token, "CLOUD_CREDENTIALS_REJECTED");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(text.contains("secretAccessKeyRef"), "{text}");
}

#[tokio::test]
async fn eks_unknown_access_key_is_rejected_by_sts() {
    let w = CloudWorld::get();
    let r = test(CloudAuth::Eks(eks_cfg(
        w,
        keys("AKIAUNKNOWNKEY000000", "x"),
    )))
    .await;
    let text = assert_failed(&r, StageName::Token, "CLOUD_CREDENTIALS_REJECTED");
    assert!(text.contains("InvalidClientTokenId"), "{text}");
    assert!(text.contains("accessKeyIdRef"), "{text}");
}

#[tokio::test]
async fn eks_clock_skew_is_named_with_the_offset() {
    let w = CloudWorld::get();
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    // STS's clock is 20 minutes ahead of ours: the delegate's is behind.
    cfg.sts_endpoint = Some(w.url(1200, "/sts"));
    let r = test(CloudAuth::Eks(cfg)).await;
    let text = assert_failed(&r, StageName::Token, "CLOCK_SKEW");
    assert!(text.contains("20 min"), "{text}");
    assert!(text.contains("behind"), "{text}");
    assert!(text.contains("NTP"), "{text}");
}

#[tokio::test]
async fn eks_wrong_region_is_diagnosed() {
    let w = CloudWorld::get();
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    cfg.region = "us-west-2".into();
    let r = test(CloudAuth::Eks(cfg)).await;
    let text = assert_failed(&r, StageName::Token, "EKS_WRONG_REGION");
    assert!(text.contains("us-west-2"), "{text}");
}

#[tokio::test]
async fn eks_unknown_cluster_name_is_diagnosed_with_the_names_there_are() {
    let w = CloudWorld::get();
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    cfg.cluster_name = "tether-prod".into();
    let r = test(CloudAuth::Eks(cfg)).await;
    let text = assert_failed(&r, StageName::Token, "EKS_CLUSTER_NOT_FOUND");
    assert!(text.contains("'tether-prod'"), "{text}");
    assert!(text.contains("has: tether-test"), "{text}");
}

#[tokio::test]
async fn eks_token_for_another_cluster_name_is_rejected_by_the_api_server() {
    // An identity that may not ask the EKS API: the API server (its webhook,
    // botocore re-deriving the signature with its own cluster name) decides.
    let w = CloudWorld::get();
    let mut cfg = eks_cfg(w, keys(AWS_NODESCRIBE_KEY_ID, AWS_NODESCRIBE_SECRET));
    cfg.cluster_name = "tether-prod".into();
    let r = test(CloudAuth::Eks(cfg)).await;
    let text = assert_failed(&r, StageName::Authentication, "CLOUD_TOKEN_REJECTED");
    assert!(text.contains("'tether-prod'"), "{text}");
    assert!(text.contains("clusterName"), "{text}");
    assert!(
        r.hints.iter().any(|h| h.contains("eks:DescribeCluster")),
        "the token stage warned that it could not check the name: {}",
        pretty(&r)
    );
}

#[tokio::test]
async fn eks_identity_the_cluster_does_not_map_is_rejected() {
    let w = CloudWorld::get();
    let r = test(CloudAuth::Eks(eks_cfg(
        w,
        keys(AWS_STRANGER_KEY_ID, AWS_STRANGER_SECRET),
    )))
    .await;
    let text = assert_failed(&r, StageName::Authentication, "CLOUD_TOKEN_REJECTED");
    assert!(
        text.contains("arn:aws:iam::111122223333:user/stranger"),
        "{text}"
    );
    assert!(text.contains("create-access-entry"), "{text}");
}

#[tokio::test]
async fn eks_role_with_the_wrong_external_id_is_denied() {
    let w = CloudWorld::get();
    let mut cfg = eks_cfg(w, keys(AWS_CI_KEY_ID, AWS_CI_SECRET));
    cfg.role_arn = Some(AWS_ROLE_ARN.into());
    cfg.external_id = Some("wrong-external-id".into());
    let r = test(CloudAuth::Eks(cfg)).await;
    let text = assert_failed(&r, StageName::Token, "ASSUME_ROLE_DENIED");
    assert!(text.contains("externalId"), "{text}");
}

// ------------------------------------------------------------------ GKE failures

#[tokio::test]
async fn gke_deleted_key_is_rejected_by_the_token_endpoint() {
    let w = CloudWorld::get();
    let r = test(gke(&w.gcp_deleted_key_json)).await;
    let text = assert_failed(&r, StageName::Token, "CLOUD_CREDENTIALS_REJECTED");
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(text.contains("Invalid JWT Signature"), "{text}");
}

#[tokio::test]
async fn gke_clock_ahead_is_clock_skew() {
    let w = CloudWorld::get();
    // Google's clock 20 minutes behind ours: our JWT is issued "in the future".
    let ci: serde_json::Value = serde_json::from_str(&w.gcp_key_json).unwrap();
    let key = CloudWorld::gcp_key(
        GCP_EMAIL,
        ci["private_key"].as_str().unwrap(),
        "k-ci-0001",
        &w.url(-1200, "/google/token"),
    );
    let r = test(gke(&key)).await;
    let text = assert_failed(&r, StageName::Token, "CLOCK_SKEW");
    assert!(text.contains("ahead of"), "{text}");
}

#[tokio::test]
async fn gke_token_the_cluster_refuses_is_diagnosed() {
    let w = CloudWorld::get();
    let r = test(gke(&w.gcp_denied_key_json)).await;
    let text = assert_failed(&r, StageName::Authentication, "CLOUD_TOKEN_REJECTED");
    assert!(text.contains(GCP_DENIED_EMAIL), "{text}");
}

#[tokio::test]
async fn gke_key_that_is_not_a_key_says_so() {
    let r = test(gke("{\"type\": \"authorized_user\", \"client_id\": \"x\"}")).await;
    let text = assert_failed(&r, StageName::Token, "INVALID_CLOUD_CREDENTIAL");
    assert!(text.contains("serviceAccountKeyRef"), "{text}");
}

// ------------------------------------------------------------------ AKS failures

#[tokio::test]
async fn aks_expired_client_secret_is_diagnosed_as_expired() {
    let w = CloudWorld::get();
    let mut cfg = aks_cfg(w, AZURE_EXPIRED_CLIENT_SECRET);
    cfg.client_id = AZURE_EXPIRED_CLIENT_ID.into();
    let r = test(CloudAuth::Aks(cfg)).await;
    let text = assert_failed(&r, StageName::Token, "CLOUD_CREDENTIALS_EXPIRED");
    assert!(text.contains("AADSTS7000222"), "{text}");
    assert!(text.contains("clientSecretRef"), "{text}");
    assert!(text.contains("az ad app credential reset"), "{text}");
}

#[tokio::test]
async fn aks_wrong_client_secret_is_rejected() {
    let w = CloudWorld::get();
    let r = test(CloudAuth::Aks(aks_cfg(w, "not-the-secret"))).await;
    let text = assert_failed(&r, StageName::Token, "CLOUD_CREDENTIALS_REJECTED");
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(text.contains("clientSecretRef"), "{text}");
}

#[tokio::test]
async fn aks_with_local_accounts_disabled_rejects_a_static_token() {
    // The API server's certificate names an AKS host; a static token it does
    // not accept is what AKS does with local accounts disabled.
    let w = CloudWorld::get();
    let r = run(TestInput {
        target: TestTarget::Manual {
            master_url: w.kube.url.clone(),
            ca_pem: Some(w.kube.ca_pem.clone()),
            auth: ResolvedAuth::ServiceAccountToken(SecretString::from(
                "static-token-of-a-local-account".to_string(),
            )),
        },
        settings: ConnectionTestSettings::default(),
        stage_timeout: Duration::from_secs(20),
        on_stage: Default::default(),
    })
    .await;
    let text = pretty(&r);
    assert_eq!(r.reason(), Some("AKS_LOCAL_ACCOUNTS_DISABLED"), "{text}");
    assert_eq!(
        r.stages.len(),
        6,
        "no token stage for static credentials: {text}"
    );
    assert!(r.hints[0].contains("AKS auth type"), "{text}");
    assert!(r.hints[0].contains("disableLocalAccounts"), "{text}");
    assert!(!text.contains("static-token-of-a-local-account"), "{text}");
}

// ------------------------------------------------------------------ authorization

/// Issue 10 item 11: with an authorizer besides RBAC (this API server asks
/// the verifier's authorization webhook after Node and RBAC, as clusters with
/// a cloud IAM authorizer do) a SelfSubjectRulesReview is `incomplete`, and
/// the test asks a SelfSubjectAccessReview per permission instead: the
/// webhook's allowance (create ConfigMaps, in no RBAC rule) is found, RBAC's
/// own (`view`) too, and the rest is missing.
#[tokio::test]
async fn authorization_falls_back_to_access_reviews_when_the_rules_review_is_incomplete() {
    let w = CloudWorld::get();
    let ns = w.kube.namespace("authz-incomplete").await;
    let run_kubectl = |args: &[&str]| {
        let out = w.kube.kubectl().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run_kubectl(&[
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        &format!("--user={WEBHOOK_AUTHORIZED_USER}"),
        "-n",
        &ns,
    ]);
    // The precondition: the API server calls this account's rules incomplete.
    let review = w.dir.join(format!("{ns}-rules-review.json"));
    std::fs::write(
        &review,
        serde_json::json!({"apiVersion": "authorization.k8s.io/v1",
                           "kind": "SelfSubjectRulesReview", "spec": {"namespace": ns}})
        .to_string(),
    )
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&run_kubectl(&[
        "create",
        "-f",
        review.to_str().unwrap(),
        "-o",
        "json",
        &format!("--as={WEBHOOK_AUTHORIZED_USER}"),
    ]))
    .unwrap();
    assert_eq!(answer["status"]["incomplete"], true, "{answer:#}");

    let token = "webhook-authorized-token-0001";
    w.accept_token(token, WEBHOOK_AUTHORIZED_USER, 600).unwrap();
    let r = run(TestInput {
        target: TestTarget::Manual {
            master_url: w.kube.url.clone(),
            ca_pem: Some(w.kube.ca_pem.clone()),
            auth: ResolvedAuth::ServiceAccountToken(SecretString::from(token.to_string())),
        },
        settings: ConnectionTestSettings {
            namespaces: vec![ns.clone()],
            ..Default::default()
        },
        stage_timeout: Duration::from_secs(20),
        on_stage: Default::default(),
    })
    .await;
    let text = pretty(&r);
    assert_eq!(r.status, ConnectivityState::Partial, "{text}");
    let permission = |verb: &str| {
        r.permissions
            .iter()
            .find(|p| p.verb == verb && p.group.is_empty() && p.resource == "configmaps")
            .unwrap_or_else(|| panic!("no {verb} configmaps: {text}"))
    };
    let create = permission("create");
    assert!(create.allowed, "the webhook's allowance was missed: {text}");
    assert!(
        create
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("tether-test authorization webhook")),
        "{text}"
    );
    let get = permission("get");
    assert!(get.allowed, "{text}");
    assert!(
        !get.reason
            .as_deref()
            .unwrap_or_default()
            .contains("SelfSubjectRulesReview"),
        "an incomplete rules review decided: {text}"
    );
    assert!(!permission("delete").allowed, "{text}");
    assert!(
        r.missing
            .iter()
            .any(|m| m.verb == "delete" && m.resource == "configmaps"),
        "{text}"
    );
}
