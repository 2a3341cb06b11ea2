//! Before a build creates anything: may the connector's account do what this
//! build does in its namespace? The verbs of the `builds` profile this build
//! uses, checked by SelfSubjectAccessReview with the deploy's check (one
//! problem per resource with the rule that fixes it).

use std::collections::BTreeMap;

use kube::Client;

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

/// Every permission `req` lacks, as problems; empty when it may run.
pub async fn check(client: &Client, req: &BuildRequest) -> Vec<Problem> {
    check_permissions(client, &required(req)).await
}
