//! Before a build creates anything: may the connector's account do what this
//! build does in its namespace? The verbs of the `builds` profile this build
//! uses, checked by SelfSubjectAccessReview with the deploy's check (one
//! problem per resource with the rule that fixes it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};

use super::BuildRequest;
use crate::deploy::preflight::{check_permissions, Permission};
use crate::deploy::Problem;

/// The permissions `req` needs, each with what needs it.
pub fn required(req: &BuildRequest) -> BTreeMap<Permission, Vec<String>> {
    let ns = req.namespace();
    let mut out = BTreeMap::new();
    let mut need = |resource: &str, verbs: &[&str], why: &str| {
        for v in verbs {
            out.insert(
                Permission {
                    verb: v.to_string(),
                    group: String::new(),
                    resource: resource.to_string(),
                    namespace: Some(ns.to_string()),
                },
                vec![why.to_string()],
            );
        }
    };
    need(
        "pods",
        &["create", "get", "list", "watch", "delete"],
        "the build pod",
    );
    need("pods/log", &["get"], "the build's log");
    if !req.secret_env.is_empty() {
        need(
            "secrets",
            &["create", "get", "list", "delete"],
            "the build's secret env",
        );
    }
    if req.workspace.is_some() {
        need(
            "persistentvolumeclaims",
            &["create", "get", "list", "watch", "delete"],
            "the build's workspace",
        );
    }
    out
}

/// Every permission `req` lacks, as problems; empty when it may run. A
/// namespace the account can see is missing is said so instead (an account
/// that may not read namespaces gets 403 and the permissions are checked: a
/// missing namespace then shows at creation, see `run::create_problem`).
pub async fn check(client: &Client, req: &BuildRequest) -> Vec<Problem> {
    let ns = req.namespace();
    if let Err(kube::Error::Api(s)) = Api::<Namespace>::all(client.clone()).get(ns).await {
        if s.code == 404 {
            return vec![namespace_not_found(ns)];
        }
    }
    check_permissions(client, &required(req)).await
}

/// The build's namespace does not exist.
pub fn namespace_not_found(ns: &str) -> Problem {
    Problem::general().with(
        "NAMESPACE_NOT_FOUND",
        format!("the build's namespace {ns} does not exist"),
        format!(
            "create it (`kubectl create namespace {ns}`) or pass --namespace of an existing one"
        ),
    )
}
