//! Turning an API server's refusal into a sentence that says what to do.

/// What went wrong talking to the API server, and how to fix it. Never contains a
/// credential: API server messages name users and objects, not tokens.
pub(crate) fn explain(err: &kube::Error) -> String {
    let kube::Error::Api(status) = err else {
        return format!(
            "{err} (is the API server reachable at the kubeconfig's URL, and its certificate trusted?)"
        );
    };
    let missing_namespace = status
        .details
        .as_ref()
        .filter(|d| status.code == 404 && d.kind == "namespaces")
        .map(|d| d.name.clone());
    if let Some(ns) = missing_namespace {
        return format!(
            "namespace '{ns}' does not exist: create it first (kubectl create namespace {ns}) or choose another"
        );
    }
    match status.code {
        401 => format!(
            "the API server did not accept the credentials (401 {}): check the kubeconfig's user or log in again",
            status.reason
        ),
        403 => format!(
            "{} (403): these credentials may not do that. Onboarding needs a cluster administrator's \
             credentials: it creates a service account, a Secret and RBAC objects, and Kubernetes \
             refuses to grant permissions the granting user does not hold itself",
            status.message
        ),
        code => format!("{} ({code} {})", status.message, status.reason),
    }
}
