//! The objects that give a service account exactly one profile's permissions, and
//! their YAML (what `tether rbac manifest` prints).
//!
//! Everything is `v1` / `rbac.authorization.k8s.io/v1` (the seed's `v1beta1` was
//! removed in Kubernetes 1.22) and labelled for [`super::delete`] to find again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use kube::api::ObjectMeta;
use tether_domain::PermissionRule;

use super::account::{InvalidName, ServiceAccountRef, PROFILE_LABEL};
use super::object_ref::{ObjectKind, ObjectRef};
use super::OnboardingProfile;

/// The annotation that ties a token Secret to its service account.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The Secret type the token controller fills with a long-lived token.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What to generate: `tether rbac manifest --service-account NAME [--namespace NS]
/// --profile P [--target-namespace NS ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRequest {
    pub service_account: String,
    /// Where the service account (and its token Secret) lives.
    pub namespace: String,
    pub profile: OnboardingProfile,
    /// Where the account may act. Empty: cluster-wide for `deployments`/`builds`;
    /// required for `namespace-admin`; must be empty for `cluster-admin`.
    pub target_namespaces: Vec<String>,
}

impl ManifestRequest {
    /// A request for `service_account` in the `default` namespace, cluster-wide.
    pub fn new(service_account: impl Into<String>, profile: OnboardingProfile) -> Self {
        ManifestRequest {
            service_account: service_account.into(),
            namespace: "default".to_string(),
            profile,
            target_namespaces: Vec::new(),
        }
    }

    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub fn with_target_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.target_namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// The validated account this request is for.
    pub fn account(&self) -> Result<ServiceAccountRef, ManifestError> {
        Ok(ServiceAccountRef::new(
            &self.namespace,
            &self.service_account,
        )?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(
        "the namespace-admin profile binds the built-in 'admin' ClusterRole in each target namespace, \
         and no target namespace was given: add --target-namespace NS (repeatable), \
         or use --profile cluster-admin for the whole cluster"
    )]
    NamespaceAdminWithoutTargets,
    #[error(
        "the cluster-admin profile grants everything in every namespace, so target namespaces \
         ({0}) would not limit it: drop --target-namespace, or use --profile namespace-admin \
         to confine the account to those namespaces"
    )]
    ClusterAdminWithTargets(String),
    #[error(
        "refusing to onboard the 'default' service account of namespace '{0}': every pod without \
         an account of its own runs as it, and removing the onboarding deletes the account; name \
         a dedicated one, e.g. --service-account tether"
    )]
    DefaultAccount(String),
    #[error("cannot render the manifest as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// One object of the manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestObject {
    ServiceAccount(ServiceAccount),
    Secret(Secret),
    ClusterRole(ClusterRole),
    RoleBinding(RoleBinding),
    ClusterRoleBinding(ClusterRoleBinding),
}

impl ManifestObject {
    pub fn kind(&self) -> ObjectKind {
        match self {
            ManifestObject::ServiceAccount(_) => ObjectKind::ServiceAccount,
            ManifestObject::Secret(_) => ObjectKind::Secret,
            ManifestObject::ClusterRole(_) => ObjectKind::ClusterRole,
            ManifestObject::RoleBinding(_) => ObjectKind::RoleBinding,
            ManifestObject::ClusterRoleBinding(_) => ObjectKind::ClusterRoleBinding,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            ManifestObject::ServiceAccount(o) => &o.metadata,
            ManifestObject::Secret(o) => &o.metadata,
            ManifestObject::ClusterRole(o) => &o.metadata,
            ManifestObject::RoleBinding(o) => &o.metadata,
            ManifestObject::ClusterRoleBinding(o) => &o.metadata,
        }
    }

    pub fn object_ref(&self) -> ObjectRef {
        let meta = self.metadata();
        ObjectRef::new(
            self.kind(),
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> serde_json::Value {
        let value = match self {
            ManifestObject::ServiceAccount(o) => serde_json::to_value(o),
            ManifestObject::Secret(o) => serde_json::to_value(o),
            ManifestObject::ClusterRole(o) => serde_json::to_value(o),
            ManifestObject::RoleBinding(o) => serde_json::to_value(o),
            ManifestObject::ClusterRoleBinding(o) => serde_json::to_value(o),
        };
        value.expect("Kubernetes objects always serialize to JSON")
    }
}

/// The objects granting `request.profile` to the service account, in apply order:
/// the ServiceAccount, its token Secret, the ClusterRole (deployments/builds), then
/// the bindings.
pub fn rbac_manifest(request: &ManifestRequest) -> Result<Vec<ManifestObject>, ManifestError> {
    let account = request.account()?;
    if account.name() == "default" {
        return Err(ManifestError::DefaultAccount(
            account.namespace().to_string(),
        ));
    }
    let mut targets = request.target_namespaces.clone();
    targets.sort();
    targets.dedup();
    for ns in &targets {
        super::account::validate_namespace(ns, "target namespace")?;
    }
    let profile = request.profile;
    match profile {
        OnboardingProfile::NamespaceAdmin if targets.is_empty() => {
            return Err(ManifestError::NamespaceAdminWithoutTargets)
        }
        OnboardingProfile::ClusterAdmin if !targets.is_empty() => {
            return Err(ManifestError::ClusterAdminWithTargets(targets.join(", ")))
        }
        _ => {}
    }

    let mut objects = vec![
        ManifestObject::ServiceAccount(service_account(&account)),
        ManifestObject::Secret(token_secret(&account)),
    ];
    let rbac_name = account.rbac_name(profile);
    let role_name = match (profile.rules(), profile.builtin_cluster_role()) {
        (Some(rules), _) => {
            objects.push(ManifestObject::ClusterRole(cluster_role(
                &account, profile, &rules,
            )));
            rbac_name.clone()
        }
        (None, Some(builtin)) => builtin.to_string(),
        (None, None) => unreachable!("every profile has rules or a built-in role"),
    };
    let role_ref = RoleRef {
        api_group: Some(RBAC_GROUP.to_string()),
        kind: "ClusterRole".to_string(),
        name: role_name,
    };
    let subjects = Some(vec![Subject {
        kind: "ServiceAccount".to_string(),
        name: account.name().to_string(),
        namespace: Some(account.namespace().to_string()),
        api_group: None,
    }]);
    if targets.is_empty() {
        objects.push(ManifestObject::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta(&account, profile, &rbac_name, None),
            role_ref,
            subjects,
        }));
    } else {
        for ns in &targets {
            objects.push(ManifestObject::RoleBinding(RoleBinding {
                metadata: meta(&account, profile, &rbac_name, Some(ns)),
                role_ref: role_ref.clone(),
                subjects: subjects.clone(),
            }));
        }
    }
    Ok(objects)
}

/// A multi-document YAML stream of `objects`, ready for `kubectl apply -f -`.
pub fn to_yaml(objects: &[ManifestObject]) -> Result<String, ManifestError> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&object.to_value())?);
    }
    Ok(out)
}

fn service_account(account: &ServiceAccountRef) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(account.name().to_string()),
            namespace: Some(account.namespace().to_string()),
            labels: Some(account.labels()),
            ..Default::default()
        },
        // automountServiceAccountToken stays unset: the account may already exist
        // and serve pods, which must keep working.
        ..Default::default()
    }
}

fn token_secret(account: &ServiceAccountRef) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(account.token_secret_name()),
            namespace: Some(account.namespace().to_string()),
            labels: Some(account.labels()),
            annotations: Some(BTreeMap::from([(
                SERVICE_ACCOUNT_NAME_ANNOTATION.to_string(),
                account.name().to_string(),
            )])),
            ..Default::default()
        },
        type_: Some(SERVICE_ACCOUNT_TOKEN_TYPE.to_string()),
        ..Default::default()
    }
}

fn cluster_role(
    account: &ServiceAccountRef,
    profile: OnboardingProfile,
    rules: &[PermissionRule],
) -> ClusterRole {
    ClusterRole {
        metadata: meta(account, profile, &account.rbac_name(profile), None),
        rules: Some(
            rules
                .iter()
                .map(|r| PolicyRule {
                    api_groups: Some(vec![r.api_group.clone()]),
                    resources: Some(r.resources.clone()),
                    verbs: r.verbs.clone(),
                    ..Default::default()
                })
                .collect(),
        ),
        aggregation_rule: None,
    }
}

fn meta(
    account: &ServiceAccountRef,
    profile: OnboardingProfile,
    name: &str,
    namespace: Option<&str>,
) -> ObjectMeta {
    let mut labels = account.labels();
    labels.insert(PROFILE_LABEL.to_string(), profile.as_str().to_string());
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(objects: &[ManifestObject]) -> Vec<String> {
        objects.iter().map(|o| o.object_ref().to_string()).collect()
    }

    #[test]
    fn deployments_in_two_namespaces_bind_one_cluster_role_twice() {
        let req = ManifestRequest::new("ci", OnboardingProfile::Deployments)
            .in_namespace("tether")
            .with_target_namespaces(["prod", "dev", "prod"]);
        let objects = rbac_manifest(&req).unwrap();
        assert_eq!(
            kinds(&objects),
            [
                "ServiceAccount tether/ci",
                "Secret tether/ci-token",
                "ClusterRole tether:tether:ci:deployments",
                "RoleBinding dev/tether:tether:ci:deployments",
                "RoleBinding prod/tether:tether:ci:deployments",
            ]
        );
        let ManifestObject::ClusterRole(role) = &objects[2] else {
            panic!("{objects:?}")
        };
        let granted: Vec<PermissionRule> = role
            .rules
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| PermissionRule {
                verbs: r.verbs.clone(),
                api_group: r.api_groups.as_ref().unwrap()[0].clone(),
                resources: r.resources.clone().unwrap(),
            })
            .collect();
        assert_eq!(granted, OnboardingProfile::Deployments.rules().unwrap());
    }

    #[test]
    fn without_targets_the_narrow_profiles_bind_cluster_wide() {
        let objects =
            rbac_manifest(&ManifestRequest::new("ci", OnboardingProfile::Builds)).unwrap();
        assert_eq!(
            kinds(&objects),
            [
                "ServiceAccount default/ci",
                "Secret default/ci-token",
                "ClusterRole tether:default:ci:builds",
                "ClusterRoleBinding tether:default:ci:builds",
            ]
        );
    }

    #[test]
    fn admin_profiles_bind_the_builtin_roles() {
        let req = ManifestRequest::new("ci", OnboardingProfile::NamespaceAdmin)
            .with_target_namespaces(["apps"]);
        let objects = rbac_manifest(&req).unwrap();
        let ManifestObject::RoleBinding(b) = objects.last().unwrap() else {
            panic!("{objects:?}")
        };
        assert_eq!(b.role_ref.name, "admin");
        assert_eq!(b.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(objects.len(), 3, "no ClusterRole of its own");

        let objects =
            rbac_manifest(&ManifestRequest::new("ci", OnboardingProfile::ClusterAdmin)).unwrap();
        let ManifestObject::ClusterRoleBinding(b) = objects.last().unwrap() else {
            panic!("{objects:?}")
        };
        assert_eq!(b.role_ref.name, "cluster-admin");
        let subject = &b.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", "ci", Some("default"))
        );
    }

    #[test]
    fn impossible_combinations_say_what_to_do() {
        let err = rbac_manifest(&ManifestRequest::new(
            "ci",
            OnboardingProfile::NamespaceAdmin,
        ))
        .unwrap_err();
        assert!(err.to_string().contains("--target-namespace"), "{err}");
        let err = rbac_manifest(
            &ManifestRequest::new("ci", OnboardingProfile::ClusterAdmin)
                .with_target_namespaces(["a"]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("namespace-admin"), "{err}");
        let err = rbac_manifest(
            &ManifestRequest::new("ci", OnboardingProfile::Builds).with_target_namespaces(["A_B"]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("target namespace 'A_B'"), "{err}");
        let err =
            rbac_manifest(&ManifestRequest::new("default", OnboardingProfile::Builds)).unwrap_err();
        assert!(matches!(err, ManifestError::DefaultAccount(_)), "{err}");
    }

    #[test]
    fn yaml_is_rbac_v1_and_labelled() {
        for profile in OnboardingProfile::ALL {
            let mut req = ManifestRequest::new("deployer", profile);
            if profile == OnboardingProfile::NamespaceAdmin {
                req = req.with_target_namespaces(["apps"]);
            }
            let objects = rbac_manifest(&req).unwrap();
            let yaml = to_yaml(&objects).unwrap();
            assert!(!yaml.contains("v1beta1"), "{yaml}");
            assert!(!yaml.contains("v1alpha1"), "{yaml}");
            let docs: Vec<serde_json::Value> = yaml
                .split("---\n")
                .filter(|d| !d.trim().is_empty())
                .map(|d| serde_yaml::from_str(d).unwrap())
                .collect();
            assert_eq!(docs.len(), objects.len());
            for doc in &docs {
                let api_version = doc["apiVersion"].as_str().unwrap();
                let kind = doc["kind"].as_str().unwrap();
                match kind {
                    "ServiceAccount" | "Secret" => assert_eq!(api_version, "v1"),
                    _ => assert_eq!(api_version, "rbac.authorization.k8s.io/v1", "{kind}"),
                }
                let labels = &doc["metadata"]["labels"];
                assert_eq!(labels["app.kubernetes.io/managed-by"], "tether");
                assert_eq!(labels["tether.dev/service-account"], "deployer");
            }
            let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
            assert_eq!(secret["type"], "kubernetes.io/service-account-token");
            assert_eq!(
                secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
                "deployer"
            );
            assert_eq!(secret["metadata"]["name"], "deployer-token");
        }
    }
}
