//! `tether cluster remove`: deletes what `cluster add` created — in the cluster
//! first (service account, token Secrets, RBAC: everything labelled for the
//! account), then in tether (the connector, then its secrets). Safe to run again
//! after a failure, and after a failed `add` that never got to the connector.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tether_domain::{derive_identifier, Connector};
use tether_kube::onboarding::account::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, SERVICE_ACCOUNT_LABEL, SERVICE_ACCOUNT_NAMESPACE_LABEL,
};

use super::super::client::ApiClient;
use super::add::{describe, kube_flags, master_url};
use super::manager::Manager;
use super::progress::Progress;
use super::{
    kubeconfig, parse_account_tag, secret_identifier, service_account_name, RemoveArgs,
    TAG_CLUSTER_ADD, TAG_CREATED_NAMESPACE, TAG_SERVICE_ACCOUNT,
};

const STEPS: usize = 4;

pub async fn run(args: RemoveArgs) -> Result<()> {
    let manager = Manager::new(ApiClient::from_env()?, args.scope.scope()?);
    let mut progress = Progress::new(STEPS);
    match steps(&args, &manager, &mut progress).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let next = format!(
                "Running `tether cluster remove {}{}{}` again is safe: it deletes what is left. \
                 If the cluster itself is gone, delete tether's side by hand: `tether connector \
                 delete ID{}`, then `tether secret delete ID_token{}` and `ID_ca`.",
                args.name,
                manager.scope_flags(),
                kube_flags(&args.kube),
                manager.scope_flags(),
                manager.scope_flags(),
            );
            Err(progress.failure(e, &next))
        }
    }
}

async fn steps(args: &RemoveArgs, manager: &Manager, p: &mut Progress) -> Result<()> {
    p.start(format!(
        "finding cluster '{}' in {}",
        args.name,
        manager.scope()
    ));
    let connector = manager.find_connector(&args.name).await?;
    let (id, account) = match &connector {
        Some(c) => {
            let id = c.identifier.clone().unwrap_or_default();
            if c.tags.get(TAG_CLUSTER_ADD).map(String::as_str) != Some("true") {
                bail!(
                    "connector '{id}' was not created by `tether cluster add`, so there is nothing of \
                     it in the cluster to remove: delete it with `tether connector delete {id}{}`",
                    manager.scope_flags()
                );
            }
            let account = c
                .tags
                .get(TAG_SERVICE_ACCOUNT)
                .map(|t| parse_account_tag(t))
                .transpose()?;
            p.finish(format!(
                "connector {id}{}",
                account
                    .as_ref()
                    .map(|(ns, name)| format!(", service account {ns}/{name}"))
                    .unwrap_or_default()
            ));
            (id, account)
        }
        None => {
            // A failed `add` may have stopped before the connector: look for what
            // it would have created under the identifier the name gives.
            let id = derive_identifier(&args.name, "cluster", |_| false);
            p.finish(format!(
                "no connector; looking for what a partial `tether cluster add` left (service \
                 account {}, secrets {id}_token and {id}_ca)",
                service_account_name(&id)
            ));
            (id, None)
        }
    };

    p.start("connecting to the cluster with your kubeconfig");
    let cluster = kubeconfig::connect(&args.kube).await?;
    if let Some(url) = connector.as_ref().and_then(master_url) {
        cluster.check_server(url, args.ignore_server_mismatch)?;
    }
    let version = cluster.version().await?;
    p.finish(format!(
        "context {}, {} (Kubernetes {version})",
        cluster.context, cluster.server
    ));

    let sa_name = account
        .as_ref()
        .map(|(_, name)| name.clone())
        .unwrap_or_else(|| service_account_name(&id));
    p.start(format!(
        "deleting service account {sa_name}, its token and RBAC in the cluster"
    ));
    let namespaces: Vec<String> = match &account {
        Some((ns, _)) => vec![ns.clone()],
        None => labelled_namespaces(&cluster.client, &sa_name).await?,
    };
    let mut deleted = Vec::new();
    for ns in &namespaces {
        let report = tether_kube::onboarding::delete(&cluster.client, ns, &sa_name).await?;
        for object in report.deleted {
            p.record(format!("deleted {object}"));
            deleted.push(object.to_string());
        }
    }
    p.finish(if deleted.is_empty() {
        "nothing left there".to_string()
    } else {
        format!("deleted {}", deleted.join(", "))
    });

    p.start(format!("deleting connector {id} and its secrets in tether"));
    let mut removed = Vec::new();
    if connector.is_some() && manager.delete_connector(&id).await? {
        p.record(format!("deleted connector {id}"));
        removed.push(format!("connector {id}"));
    }
    for secret in our_secrets(connector.as_ref(), &id)? {
        // Only secrets stored for this connector (by `add`) are deleted.
        if manager.delete_secret_of(&secret, &id).await? {
            p.record(format!("deleted secret {secret}"));
            removed.push(format!("secret {secret}"));
        }
    }
    p.finish(if removed.is_empty() {
        "nothing left there".to_string()
    } else {
        format!("deleted {}", removed.join(", "))
    });

    if connector.is_none() && deleted.is_empty() && removed.is_empty() {
        bail!(
            "found nothing to remove for '{}': no connector of that name or identifier in {}, and \
             nothing labelled for service account {sa_name} in the cluster (`tether connector list{}` \
             shows the connectors)",
            args.name,
            manager.scope(),
            manager.scope_flags()
        );
    }
    if let (Some(c), Some((ns, _))) = (&connector, &account) {
        if c.tags.get(TAG_CREATED_NAMESPACE).map(String::as_str) == Some("true") {
            println!(
                "note: namespace {ns} was created by `tether cluster add` and is kept (other things \
                 may live there now); delete it with `kubectl delete namespace {ns}` if nothing uses it"
            );
        }
    }
    println!("cluster '{}' removed", args.name);
    Ok(())
}

/// The secrets `add` stores for connector `id`, and any other the connector
/// references (deleted only if they carry this connector's tag).
fn our_secrets(connector: Option<&Connector>, id: &str) -> Result<BTreeSet<String>> {
    let mut out: BTreeSet<String> = [
        secret_identifier(id, "token")?,
        secret_identifier(id, "ca")?,
    ]
    .into_iter()
    .collect();
    if let Some(c) = connector {
        for r in c.secret_refs() {
            if let Ok(sr) = tether_domain::SecretRef::parse(r.reference) {
                if sr.level == tether_domain::secret_ref::RefLevel::Own {
                    out.insert(sr.identifier);
                }
            }
        }
    }
    Ok(out)
}

/// The namespaces of the accounts named `sa` that tether labelled in the cluster.
async fn labelled_namespaces(client: &Client, sa: &str) -> Result<Vec<String>> {
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{SERVICE_ACCOUNT_LABEL}={sa}");
    let mut found = BTreeSet::new();
    found.extend(namespaces_of::<ServiceAccount>(client, &selector).await?);
    found.extend(namespaces_of::<Secret>(client, &selector).await?);
    found.extend(namespaces_of::<ClusterRole>(client, &selector).await?);
    found.extend(namespaces_of::<ClusterRoleBinding>(client, &selector).await?);
    found.extend(namespaces_of::<RoleBinding>(client, &selector).await?);
    Ok(found.into_iter().collect())
}

async fn namespaces_of<K>(client: &Client, selector: &str) -> Result<Vec<String>>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned,
{
    let api: Api<K> = Api::all(client.clone());
    let list = match api.list(&ListParams::default().labels(selector)).await {
        Ok(l) => l,
        Err(e) => bail!(
            "cannot list the {}s labelled {selector}: {}",
            K::kind(&()),
            describe(&e)
        ),
    };
    Ok(list
        .items
        .iter()
        .filter_map(|o| {
            o.meta()
                .labels
                .as_ref()?
                .get(SERVICE_ACCOUNT_NAMESPACE_LABEL)
                .cloned()
        })
        .collect())
}
