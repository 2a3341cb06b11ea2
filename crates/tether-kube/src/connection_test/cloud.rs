//! The `token` stage of a cloud auth type (EKS, GKE, AKS): make the token the
//! way the cloud's exec plugin would, and find out as much as the cloud tells
//! before the API server is asked: whose identity it is, until when the token
//! is good, and, for EKS, whether STS accepts its signature and whether the
//! cluster name exists in the region.

use std::time::SystemTime;

use secrecy::SecretString;

use super::diagnosis::{self, fmt_time, AuthKind, Failure};
use super::{Identity, IdentitySource};
use crate::cloud_auth::eks::{self, ClusterLookup};
use crate::cloud_auth::{self, CloudAuth, Options};

/// What the token stage hands to the authentication stage.
pub(crate) struct CloudPrepared {
    pub token: SecretString,
    pub kind: AuthKind,
    pub identity: Identity,
    pub detail: String,
    pub warnings: Vec<String>,
}

/// The provider's name as the connector's auth type spells it.
pub(crate) fn provider(auth: &CloudAuth) -> &'static str {
    match auth {
        CloudAuth::Eks(_) => "EKS",
        CloudAuth::Gke(_) => "GKE",
        CloudAuth::Aks(_) => "AKS",
    }
}

pub(crate) async fn token_stage(
    auth: &CloudAuth,
    master_host: &str,
    timeout: std::time::Duration,
) -> Result<(CloudPrepared, String), Failure> {
    let opts = Options {
        timeout,
        now: SystemTime::now(),
        use_cache: true,
    };
    let now = opts.unix_now();
    let mut warnings = Vec::new();
    let (token, identity, source, expires_at, extra) = match auth {
        CloudAuth::Eks(cfg) => {
            if let Some(host_region) = eks::region_of_endpoint(master_host) {
                if host_region != cfg.region {
                    return Err(diagnosis::eks_wrong_region(
                        &cfg.region,
                        &cfg.cluster_name,
                        Some(&host_region),
                    ));
                }
            }
            let t = eks::token(cfg, &opts)
                .await
                .map_err(|e| diagnosis::cloud_error("EKS", &e, now))?;
            // Replay the token to STS as the cluster will: proves the signature
            // (and our clock) and names the identity.
            let caller = eks::caller_identity(cfg, &t, &opts)
                .await
                .map_err(|e| diagnosis::cloud_error("EKS", &e, now))?;
            let mut extra = format!("STS GetCallerIdentity accepts it as {}", caller.arn);
            match eks::describe_cluster(cfg, &t.signer, &opts).await {
                Ok(ClusterLookup::Found { endpoint, status }) => {
                    extra.push_str(&format!(
                        "; cluster {} is {} in {}",
                        cfg.cluster_name,
                        status.as_deref().unwrap_or("known"),
                        cfg.region
                    ));
                    if let Some(ep) = endpoint {
                        let ep_host = url::Url::parse(&ep)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
                        if ep_host.as_deref().is_some_and(|h| {
                            !h.is_empty() && h != master_host.to_ascii_lowercase()
                        }) {
                            warnings.push(format!(
                                "EKS says cluster {} has the endpoint {ep}, but masterUrl points at {master_host}: if that is not a proxy or private address of the same cluster, the token is for another cluster and will be rejected (set clusterName to the name of the cluster at masterUrl).",
                                cfg.cluster_name
                            ));
                        }
                    }
                }
                Ok(ClusterLookup::NotFound { others }) => {
                    return Err(match others {
                        Some(o) if o.is_empty() => diagnosis::eks_wrong_region(
                            &cfg.region,
                            &cfg.cluster_name,
                            None,
                        ),
                        other => diagnosis::eks_cluster_not_found(
                            &cfg.region,
                            &cfg.cluster_name,
                            other.as_deref(),
                        ),
                    })
                }
                Ok(ClusterLookup::NotAllowed { .. }) => warnings.push(format!(
                    "{} may not call eks:DescribeCluster, so the connection test could not confirm that cluster {} exists in {}; if authentication fails, check clusterName and region first.",
                    caller.arn, cfg.cluster_name, cfg.region
                )),
                Err(e) => warnings.push(format!(
                    "Could not ask the EKS API about cluster {}: {e}",
                    cfg.cluster_name
                )),
            }
            let expires_at = t.token.expires_at;
            (
                t.token.token.clone(),
                caller.arn.clone(),
                t.token.source.clone(),
                expires_at,
                extra,
            )
        }
        CloudAuth::Gke(_) | CloudAuth::Aks(_) => {
            let name = provider(auth);
            let t = cloud_auth::token(auth, &opts)
                .await
                .map_err(|e| diagnosis::cloud_error(name, &e, now))?;
            (
                t.token.clone(),
                t.identity.clone(),
                t.source.clone(),
                t.expires_at,
                String::new(),
            )
        }
    };
    let name = provider(auth);
    let (cluster_name, region) = match auth {
        CloudAuth::Eks(c) => (Some(c.cluster_name.clone()), Some(c.region.clone())),
        _ => (None, None),
    };
    let label = format!("{name} cloud identity {identity}");
    let detail = format!(
        "{name} token for {identity} from {source}; valid until {}{}{}",
        fmt_time(expires_at),
        if extra.is_empty() { "" } else { "; " },
        extra
    );
    let prepared = CloudPrepared {
        token,
        kind: AuthKind::Cloud {
            provider: name,
            identity: identity.clone(),
            expires_at,
            cluster_name,
            region,
        },
        identity: Identity {
            user: identity,
            groups: Vec::new(),
            source: IdentitySource::CloudIdentity,
            confirmed_by_server: false,
            label: Some(label),
        },
        detail: format!("{name} token"),
        warnings,
    };
    Ok((prepared, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud_auth::eks::{AwsBase, AwsKeys, EksConfig};
    use crate::connection_test::diagnosis::Reason;

    /// masterUrl names its region (an EKS endpoint): a connector of another
    /// region is told so before anything is signed or sent. (Through the
    /// whole test this needs a real EKS host name: DNS comes first.)
    #[tokio::test]
    async fn an_eks_endpoint_of_another_region_is_the_wrong_region() {
        let cfg = EksConfig {
            region: "us-west-2".into(),
            cluster_name: "prod".into(),
            base: AwsBase::Keys(AwsKeys {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                session_token: None,
            }),
            role_arn: None,
            external_id: None,
            // Nothing listens here: the check must not need STS.
            sts_endpoint: Some("http://127.0.0.1:9".into()),
            eks_endpoint: Some("http://127.0.0.1:9".into()),
        };
        let Err(f) = token_stage(
            &CloudAuth::Eks(cfg),
            "abcdef0123456789.gr7.eu-west-1.eks.amazonaws.com",
            std::time::Duration::from_secs(5),
        )
        .await
        else {
            panic!("the token stage passed");
        };
        assert_eq!(f.reason, Reason::EksWrongRegion);
        assert!(f.message.contains("'us-west-2'") && f.message.contains("'eu-west-1'"));
        assert!(
            f.hints[0].contains("Set region to eu-west-1"),
            "{:?}",
            f.hints
        );
    }
}
