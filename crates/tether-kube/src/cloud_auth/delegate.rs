//! The cloud identity of the delegate's pod, as the clouds' standard
//! environment variables describe it. Only names are read here; the token files
//! are read when a token is made (they rotate).
//!
//! - EKS IRSA: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`
//!   (`AWS_ROLE_SESSION_NAME` optional); EKS Pod Identity:
//!   `AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`; plain `AWS_ACCESS_KEY_ID` +
//!   `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) otherwise;
//! - GKE: the metadata server (`GCE_METADATA_HOST` overrides its address);
//! - AKS workload identity: `AZURE_FEDERATED_TOKEN_FILE` + `AZURE_CLIENT_ID` +
//!   `AZURE_TENANT_ID`.

use std::path::PathBuf;

use secrecy::SecretString;

use super::aks::AksCredential;
use super::eks::{AwsBase, AwsKeys};
use super::gke::GkeSource;
use super::CloudError;

/// Environment lookups (tests pass their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The delegate's AWS identity.
pub fn aws(env: Env<'_>) -> Result<AwsBase, CloudError> {
    if let (Some(role_arn), Some(file)) = (
        var(env, "AWS_ROLE_ARN"),
        var(env, "AWS_WEB_IDENTITY_TOKEN_FILE"),
    ) {
        return Ok(AwsBase::WebIdentity {
            role_arn,
            token_file: PathBuf::from(file),
            session_name: var(env, "AWS_ROLE_SESSION_NAME"),
        });
    }
    if let (Some(url), Some(file)) = (
        var(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        var(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
    ) {
        return Ok(AwsBase::PodIdentity {
            url,
            token_file: PathBuf::from(file),
        });
    }
    if let (Some(id), Some(secret)) = (
        var(env, "AWS_ACCESS_KEY_ID"),
        var(env, "AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(AwsBase::Keys(AwsKeys {
            access_key_id: id,
            secret_access_key: SecretString::from(secret),
            session_token: var(env, "AWS_SESSION_TOKEN").map(SecretString::from),
        }));
    }
    Err(CloudError::NoDelegateIdentity(
        "the delegate has no AWS identity: neither AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA: annotate the delegate's service account with eks.amazonaws.com/role-arn) nor AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (EKS Pod Identity) nor AWS_ACCESS_KEY_ID with AWS_SECRET_ACCESS_KEY is set; or give the connector accessKeyIdRef and secretAccessKeyRef".into(),
    ))
}

/// The delegate's Google identity: its metadata server.
pub fn google(env: Env<'_>) -> GkeSource {
    GkeSource::Metadata {
        host: var(env, "GCE_METADATA_HOST"),
    }
}

/// The delegate's Entra ID workload identity: `(tenant, client id, credential)`.
pub fn azure(env: Env<'_>) -> Result<(String, String, AksCredential), CloudError> {
    match (
        var(env, "AZURE_TENANT_ID"),
        var(env, "AZURE_CLIENT_ID"),
        var(env, "AZURE_FEDERATED_TOKEN_FILE"),
    ) {
        (Some(t), Some(c), Some(f)) => Ok((t, c, AksCredential::FederatedTokenFile(PathBuf::from(f)))),
        _ => Err(CloudError::NoDelegateIdentity(
            "the delegate has no Entra ID workload identity: AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID are not all set (label the delegate's pod azure.workload.identity/use=true and annotate its service account with azure.workload.identity/client-id); or give the connector clientSecretRef".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn web_identity_wins_over_keys() {
        let e = env(&[
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            ),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        assert!(matches!(aws(&e).unwrap(), AwsBase::WebIdentity { .. }));
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        assert!(matches!(aws(&e).unwrap(), AwsBase::Keys(_)));
        assert!(aws(&env(&[])).is_err());
        let e = env(&[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        assert!(matches!(aws(&e).unwrap(), AwsBase::PodIdentity { .. }));
    }

    #[test]
    fn azure_needs_all_three() {
        let e = env(&[("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t")]);
        assert!(azure(&e).is_err());
        let e = env(&[
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
        ]);
        assert_eq!(azure(&e).unwrap().1, "c");
    }
}
