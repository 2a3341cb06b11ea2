//! `tether cluster rotate-token`: a new token for a connector `cluster add` made.
//!
//! Long-lived tokens: a new token Secret under a new name, filled by the token
//! controller; the tether secret is updated, the connection re-tested, and only
//! then are the account's other token Secrets (the old token) deleted, which
//! revokes the old token. Expiring tokens (`--token-ttl`): a new TokenRequest
//! with the same lifetime; the old token cannot be revoked and simply expires.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use tether_domain::{Connector, Credential};
use tether_kube::onboarding::manifests::{
    SERVICE_ACCOUNT_NAME_ANNOTATION, SERVICE_ACCOUNT_TOKEN_TYPE,
};
use tether_kube::onboarding::token::DEFAULT_TOKEN_WAIT;
use tether_kube::onboarding::{service_account_token, ServiceAccountRef, TokenSource};

use super::super::client::ApiClient;
use super::add::{describe, kube_flags, test_and_report, CREATED_BY};
use super::manager::Manager;
use super::progress::Progress;
use super::{
    kubeconfig, parse_account_tag, parse_duration, RotateArgs, TAG_CLUSTER_ADD,
    TAG_SERVICE_ACCOUNT, TAG_TOKEN_EXPIRES, TAG_TOKEN_SECRET, TAG_TOKEN_TTL,
};

const STEPS: usize = 6;

pub async fn run(args: RotateArgs) -> Result<()> {
    let manager = Manager::new(ApiClient::from_env()?, args.scope.scope()?);
    let mut progress = Progress::new(STEPS);
    match steps(&args, &manager, &mut progress).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let next = format!(
                "Running `tether cluster rotate-token {}{}{}` again is safe: it issues another \
                 token and retires the others.",
                args.name,
                manager.scope_flags(),
                kube_flags(&args.kube)
            );
            Err(progress.failure(e, &next))
        }
    }
}

async fn steps(args: &RotateArgs, manager: &Manager, p: &mut Progress) -> Result<()> {
    p.start(format!(
        "finding cluster '{}' in {}",
        args.name,
        manager.scope()
    ));
    let Some(mut connector) = manager.find_connector(&args.name).await? else {
        bail!(
            "no connector named '{}' in {} (`tether connector list{}` shows them)",
            args.name,
            manager.scope(),
            manager.scope_flags()
        );
    };
    let id = connector.identifier.clone().unwrap_or_default();
    if connector.tags.get(TAG_CLUSTER_ADD).map(String::as_str) != Some("true") {
        bail!(
            "connector '{id}' was not created by `tether cluster add`, so tether does not know which \
             service account it uses: replace its token secret with `tether secret` instead"
        );
    }
    let (ns, sa) = parse_account_tag(
        connector
            .tags
            .get(TAG_SERVICE_ACCOUNT)
            .ok_or_else(|| anyhow!("connector '{id}' has no tag {TAG_SERVICE_ACCOUNT}: run `tether cluster add` again to restore it"))?,
    )?;
    let account = ServiceAccountRef::new(&ns, &sa)?;
    let ttl = connector
        .tags
        .get(TAG_TOKEN_TTL)
        .map(|t| parse_duration(t))
        .transpose()
        .with_context(|| format!("the connector's tag {TAG_TOKEN_TTL}"))?;
    let (master_url, token_ref) = match &connector.spec.credential {
        Credential::ManualConfig(m) => match &m.auth {
            tether_domain::Auth::ServiceAccount(a) => {
                (m.master_url.clone(), a.service_account_token_ref.clone())
            }
            _ => bail!("connector '{id}' no longer uses ServiceAccount auth: run `tether cluster add` again"),
        },
        Credential::InheritFromDelegate => {
            bail!("connector '{id}' no longer has credentials of its own: run `tether cluster add` again")
        }
    };
    let token_id = match tether_domain::SecretRef::parse(&token_ref) {
        Ok(r) if r.level == tether_domain::secret_ref::RefLevel::Own => r.identifier,
        _ => bail!(
            "connector '{id}' takes its token from '{token_ref}', not from a secret `cluster add` \
             stored: run `tether cluster add` again"
        ),
    };
    p.finish(format!("connector {id}, service account {account}"));

    p.start("connecting to the cluster with your kubeconfig");
    let cluster = kubeconfig::connect(&args.kube).await?;
    cluster.check_server(&master_url, args.ignore_server_mismatch)?;
    let version = cluster.version().await?;
    p.finish(format!(
        "context {}, {} (Kubernetes {version})",
        cluster.context, cluster.server
    ));

    let new_secret = match ttl {
        Some(ttl) => {
            p.start(format!(
                "requesting a new token valid for {}s from the TokenRequest API",
                ttl.as_secs()
            ));
            let outcome = service_account_token(&cluster.client, &ns, &sa, Some(ttl)).await?;
            let TokenSource::TokenRequest { expires_at } = outcome.source else {
                bail!("expected a TokenRequest token")
            };
            let at = expires_at.map(|t| t.to_string());
            p.finish(format!(
                "done (expires at {})",
                at.as_deref().unwrap_or("a time the API server chose")
            ));
            connector.tags.remove(TAG_TOKEN_EXPIRES);
            if let Some(at) = at {
                connector.tags.insert(TAG_TOKEN_EXPIRES.into(), at);
            }
            store(
                manager,
                &mut connector,
                &token_id,
                &account,
                &outcome.token,
                p,
            )
            .await?;
            None
        }
        None => {
            let name = format!("{}-{}", account.token_secret_name(), suffix());
            p.start(format!(
                "creating token Secret {ns}/{name} and waiting for its token"
            ));
            let token = new_token_secret(&cluster.client, &account, &name).await?;
            p.record(format!("created Secret {ns}/{name}"));
            p.finish("done");
            connector.tags.insert(TAG_TOKEN_SECRET.into(), name.clone());
            store(manager, &mut connector, &token_id, &account, &token, p).await?;
            Some(name)
        }
    };

    p.start("connection test through the manager");
    test_and_report(manager, &id, p).await?;

    match new_secret {
        Some(keep) => {
            p.start(format!("deleting the old token Secret(s) of {account}"));
            let old = delete_other_token_secrets(&cluster.client, &account, &keep).await?;
            p.finish(if old.is_empty() {
                "none found".to_string()
            } else {
                format!("deleted {}", old.join(", "))
            });
        }
        None => {
            p.start("retiring the old token");
            p.finish("nothing to delete: TokenRequest tokens cannot be revoked; the old one expires on its own");
        }
    }
    println!("token of connector {id} rotated");
    Ok(())
}

/// Step 4: the new token into the tether secret, and the connector's tags.
async fn store(
    manager: &Manager,
    connector: &mut Connector,
    token_id: &str,
    account: &ServiceAccountRef,
    token: &SecretString,
    p: &mut Progress,
) -> Result<()> {
    let id = connector.identifier.clone().unwrap_or_default();
    p.start(format!(
        "updating secret {token_id} and connector {id} in tether"
    ));
    let description =
        format!("Token of service account {account} for connector {id} (tether cluster add)");
    manager
        .upsert_secret(
            token_id,
            &id,
            CREATED_BY,
            &description,
            token.expose_secret(),
        )
        .await?;
    p.record(format!("stored the new token in secret {token_id}"));
    manager.put_connector(connector).await?;
    p.finish("done");
    Ok(())
}

/// Five random lowercase letters and digits, like Kubernetes' generated names.
fn suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Creates a token Secret for the account, labelled like the rest of its objects
/// (so `cluster remove` deletes it), and waits for the token controller to fill it.
async fn new_token_secret(
    client: &Client,
    account: &ServiceAccountRef,
    name: &str,
) -> Result<SecretString> {
    let api: Api<Secret> = Api::namespaced(client.clone(), account.namespace());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(account.namespace().to_string()),
            labels: Some(account.labels()),
            annotations: Some(
                [(
                    SERVICE_ACCOUNT_NAME_ANNOTATION.to_string(),
                    account.name().to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some(SERVICE_ACCOUNT_TOKEN_TYPE.to_string()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &secret)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot create Secret {}/{name}: {}",
                account.namespace(),
                describe(&e)
            )
        })?;
    let filled = |s: Option<&Secret>| {
        s.is_none_or(|s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("token"))
                .is_some_and(|t| !t.0.is_empty())
        })
    };
    let wait: Duration = DEFAULT_TOKEN_WAIT;
    let found = tokio::time::timeout(wait, await_condition(api, name, filled))
        .await
        .map_err(|_| {
            anyhow!(
                "the token Secret {}/{name} still holds no token after {}s: Kubernetes' token \
                 controller (kube-controller-manager with --service-account-private-key-file) fills \
                 it in; check that it runs",
                account.namespace(),
                wait.as_secs()
            )
        })?
        .map_err(|e| anyhow!("cannot watch the token Secret {}/{name}: {e}", account.namespace()))?
        .ok_or_else(|| {
            anyhow!(
                "the token Secret {}/{name} was deleted while waiting for its token (the token \
                 controller does that when the service account is gone): run `tether cluster add` again",
                account.namespace()
            )
        })?;
    let bytes = found
        .data
        .and_then(|mut d| d.remove("token"))
        .map(|b| b.0)
        .unwrap_or_default();
    match String::from_utf8(bytes) {
        Ok(t) if !t.trim().is_empty() => Ok(SecretString::from(t.trim().to_string())),
        _ => bail!(
            "the token in Secret {}/{name} is not text",
            account.namespace()
        ),
    }
}

/// Deletes every tether-labelled token Secret of the account except `keep`.
async fn delete_other_token_secrets(
    client: &Client,
    account: &ServiceAccountRef,
    keep: &str,
) -> Result<Vec<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), account.namespace());
    let params = ListParams::default()
        .labels(&account.selector())
        .fields(&format!("type={SERVICE_ACCOUNT_TOKEN_TYPE}"));
    let list = api.list(&params).await.map_err(|e| {
        anyhow!(
            "cannot list the token Secrets of {account}: {}",
            describe(&e)
        )
    })?;
    let mut deleted = Vec::new();
    for s in list.items {
        let Some(name) = s.metadata.name else {
            continue;
        };
        if name == keep {
            continue;
        }
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => deleted.push(format!("{}/{name}", account.namespace())),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => bail!(
                "cannot delete the old token Secret {}/{name}: {} (the new token is stored and works; delete it by hand)",
                account.namespace(),
                describe(&e)
            ),
        }
    }
    Ok(deleted)
}
