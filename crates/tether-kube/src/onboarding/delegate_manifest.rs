//! The Kubernetes YAML (and the equivalent `docker run` line) that installs a
//! delegate: its namespace, service account, the RBAC it is granted, a Secret
//! with its token, and a locked-down Deployment with probes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

/// What the delegate may do in its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permissions {
    /// Bound to `cluster-admin` (what peers default to; grant it knowingly).
    ClusterAdmin,
    /// The built-in `admin` role in its own namespace only.
    NamespaceAdmin,
    /// The built-in read-only `view` role, cluster-wide.
    ClusterViewer,
    /// No RBAC: it can only use credentials given in connectors.
    None,
}

impl std::str::FromStr for Permissions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cluster-admin" => Ok(Self::ClusterAdmin),
            "namespace-admin" => Ok(Self::NamespaceAdmin),
            "cluster-viewer" => Ok(Self::ClusterViewer),
            "none" => Ok(Self::None),
            other => Err(format!(
                "'{other}' is not one of cluster-admin, namespace-admin, cluster-viewer, none"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ManifestRequest {
    pub name: String,
    pub namespace: String,
    pub tags: Vec<String>,
    pub permissions: Permissions,
    pub manager_url: String,
    pub token: String,
    pub image: String,
    pub capacity: u32,
}

/// The image `scripts/image` builds (and tags) from this version's binary; the
/// manifest's default. Load it into the cluster or push it to a registry first
/// (README, "The tether image"), or name another with `--image`.
pub const DEFAULT_IMAGE: &str = concat!("tether:", env!("CARGO_PKG_VERSION"));

/// Port of the health endpoint inside the pod.
pub const HEALTH_PORT: i32 = 8081;

/// Measured idle RSS of `tether delegate run` is well under this (see the
/// delegates note); the limit leaves room for many concurrent connection tests.
const MEMORY_REQUEST: &str = "32Mi";
const MEMORY_LIMIT: &str = "256Mi";
const CPU_REQUEST: &str = "20m";

fn meta(name: &str, namespace: Option<&str>, r: &ManifestRequest) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(r)),
        ..Default::default()
    }
}

fn labels(r: &ManifestRequest) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "tether-delegate".into()),
        ("app.kubernetes.io/instance".into(), r.name.clone()),
        ("app.kubernetes.io/managed-by".into(), "tether".into()),
    ])
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The objects, in apply order.
pub fn objects(r: &ManifestRequest) -> Vec<serde_json::Value> {
    let ns = r.namespace.as_str();
    let name = format!("tether-delegate-{}", r.name);
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut push = |v: serde_json::Value| out.push(v);
    push(tagged(
        "v1",
        "Namespace",
        &Namespace {
            metadata: meta(ns, None, r),
            ..Default::default()
        },
    ));
    push(tagged(
        "v1",
        "ServiceAccount",
        &ServiceAccount {
            metadata: meta(&name, Some(ns), r),
            ..Default::default()
        },
    ));
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: name.clone(),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    let role_ref = |role: &str| RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "ClusterRole".into(),
        name: role.into(),
    };
    match r.permissions {
        Permissions::ClusterAdmin | Permissions::ClusterViewer => {
            let role = if r.permissions == Permissions::ClusterAdmin {
                "cluster-admin"
            } else {
                "view"
            };
            push(tagged(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                &ClusterRoleBinding {
                    metadata: meta(&format!("{name}-{ns}-{role}"), None, r),
                    role_ref: role_ref(role),
                    subjects: Some(vec![subject]),
                },
            ));
        }
        Permissions::NamespaceAdmin => {
            push(tagged(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                &RoleBinding {
                    metadata: meta(&format!("{name}-admin"), Some(ns), r),
                    role_ref: role_ref("admin"),
                    subjects: Some(vec![subject.clone()]),
                },
            ));
            // The built-in `admin` role only reads events; deployments (the
            // default connection-test profile) also write them.
            let events = format!("{name}-events");
            push(tagged(
                "rbac.authorization.k8s.io/v1",
                "Role",
                &Role {
                    metadata: meta(&events, Some(ns), r),
                    rules: Some(vec![PolicyRule {
                        api_groups: Some(vec![String::new()]),
                        resources: Some(vec!["events".into()]),
                        verbs: ["create", "delete", "patch", "update"]
                            .map(String::from)
                            .to_vec(),
                        ..Default::default()
                    }]),
                },
            ));
            push(tagged(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                &RoleBinding {
                    metadata: meta(&events, Some(ns), r),
                    role_ref: RoleRef {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: "Role".into(),
                        name: events.clone(),
                    },
                    subjects: Some(vec![subject]),
                },
            ));
        }
        Permissions::None => {}
    }
    push(tagged(
        "v1",
        "Secret",
        &Secret {
            metadata: meta(&name, Some(ns), r),
            type_: Some("Opaque".into()),
            string_data: Some(BTreeMap::from([("token".to_string(), r.token.clone())])),
            ..Default::default()
        },
    ));
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(HEALTH_PORT),
            ..Default::default()
        }),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let container = Container {
        name: "delegate".into(),
        image: Some(r.image.clone()),
        // A locally loaded image works without a registry; a pushed one is
        // pulled once per node.
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["delegate".into(), "run".into()]),
        env: Some(vec![
            env("TETHER_MANAGER_URL", &r.manager_url),
            env("TETHER_DELEGATE_NAME", &r.name),
            env("TETHER_DELEGATE_TAGS", &r.tags.join(",")),
            env("TETHER_DELEGATE_CAPACITY", &r.capacity.to_string()),
            env("TETHER_HEALTH_LISTEN", &format!("0.0.0.0:{HEALTH_PORT}")),
            EnvVar {
                name: "TETHER_DELEGATE_TOKEN".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: name.clone(),
                        key: "token".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("health".into()),
            container_port: HEALTH_PORT,
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity(CPU_REQUEST.into())),
                ("memory".into(), Quantity(MEMORY_REQUEST.into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity(MEMORY_LIMIT.into()),
            )])),
            ..Default::default()
        }),
        liveness_probe: Some(probe("/healthz")),
        readiness_probe: Some(probe("/readyz")),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let selector: BTreeMap<String, String> = BTreeMap::from([
        ("app.kubernetes.io/name".into(), "tether-delegate".into()),
        ("app.kubernetes.io/instance".into(), r.name.clone()),
    ]);
    push(tagged(
        "apps/v1",
        "Deployment",
        &Deployment {
            metadata: meta(&name, Some(ns), r),
            spec: DeploymentSpec {
                // One replica per name: a second process with the same name would
                // replace the first's connection (give each its own name).
                replicas: Some(1),
                strategy: Some(DeploymentStrategy {
                    type_: Some("Recreate".into()),
                    ..Default::default()
                }),
                selector: LabelSelector {
                    match_labels: Some(selector.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(r)),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(name.clone()),
                        automount_service_account_token: Some(r.permissions != Permissions::None),
                        termination_grace_period_seconds: Some(60),
                        security_context: Some(PodSecurityContext {
                            run_as_non_root: Some(true),
                            run_as_user: Some(65532),
                            seccomp_profile: Some(SeccompProfile {
                                type_: "RuntimeDefault".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        containers: vec![container],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
            ..Default::default()
        },
    ));
    out
}

/// `apiVersion`/`kind` first, as people expect to read them.
fn tagged<T: Serialize>(api_version: &str, kind: &str, obj: &T) -> serde_json::Value {
    let mut v = serde_json::json!({ "apiVersion": api_version, "kind": kind });
    if let (Some(m), Ok(serde_json::Value::Object(o))) =
        (v.as_object_mut(), serde_json::to_value(obj))
    {
        m.extend(o);
    }
    v
}

pub fn to_yaml(objects: &[serde_json::Value]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The same delegate as a container outside Kubernetes. The token is read from
/// the environment of the shell that runs the line, not written into it.
pub fn docker_run(r: &ManifestRequest) -> String {
    format!(
        "docker run -d --name tether-delegate-{name} --read-only --cap-drop ALL --user 65532 \\\n  -e TETHER_MANAGER_URL={url} -e TETHER_DELEGATE_NAME={name} -e TETHER_DELEGATE_TAGS={tags} \\\n  -e TETHER_DELEGATE_CAPACITY={cap} -e TETHER_HEALTH_LISTEN=0.0.0.0:{port} -e TETHER_DELEGATE_TOKEN \\\n  {image} delegate run",
        name = r.name,
        url = r.manager_url,
        tags = r.tags.join(","),
        cap = r.capacity,
        port = HEALTH_PORT,
        image = r.image,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(p: Permissions) -> ManifestRequest {
        ManifestRequest {
            name: "eu1".into(),
            namespace: "tether".into(),
            tags: vec!["eu".into(), "prod".into()],
            permissions: p,
            manager_url: "https://tether.example.com".into(),
            token: "tdt_x".into(),
            image: "tether:0.1.0".into(),
            capacity: 4,
        }
    }

    #[test]
    fn rbac_follows_the_permission_choice() {
        let kinds = |p| -> Vec<String> {
            objects(&req(p))
                .iter()
                .map(|o| o["kind"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(kinds(Permissions::ClusterAdmin).contains(&"ClusterRoleBinding".to_string()));
        assert!(kinds(Permissions::NamespaceAdmin).contains(&"RoleBinding".to_string()));
        assert!(!kinds(Permissions::None)
            .iter()
            .any(|k| k.contains("Binding")));
        let yaml = to_yaml(&objects(&req(Permissions::ClusterViewer)));
        assert!(
            yaml.contains("name: view") && !yaml.contains("v1beta1"),
            "{yaml}"
        );
        assert!(
            yaml.contains("readOnlyRootFilesystem: true") && yaml.contains("runAsNonRoot: true")
        );
    }

    #[test]
    fn docker_line_keeps_the_token_out() {
        let line = docker_run(&req(Permissions::None));
        assert!(!line.contains("tdt_x"));
        assert!(line.contains("-e TETHER_DELEGATE_TOKEN "));
    }
}
