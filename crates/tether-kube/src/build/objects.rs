//! The objects of one build, from its request: a Secret with the secret env
//! values (the Pod refers to them by key, so no value is in the Pod object),
//! an optional workspace claim, and the Pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSpec, Secret, SecretKeySelector, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::{label_value, BuildRequest, BUILD_LABEL, DELEGATE_LABEL};

/// The build's own container.
pub const BUILD_CONTAINER: &str = "build";
/// Where the workspace is mounted (and the build's working directory).
pub const WORKSPACE: &str = "/workspace";

/// What a build creates.
#[derive(Debug, Clone)]
pub struct BuildObjects {
    pub secret: Option<Secret>,
    pub workspace: Option<PersistentVolumeClaim>,
    pub pod: Pod,
}

fn meta(req: &BuildRequest) -> ObjectMeta {
    let mut labels = BTreeMap::new();
    labels.insert(BUILD_LABEL.to_string(), label_value(&req.task_id));
    labels.insert(DELEGATE_LABEL.to_string(), label_value(&req.delegate));
    labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        "tether".to_string(),
    );
    ObjectMeta {
        name: Some(req.name()),
        namespace: Some(req.namespace().to_string()),
        labels: Some(labels),
        ..Default::default()
    }
}

/// The objects for `req`; `secret_values` holds the value of each of
/// `req.secret_env` by env name.
pub fn build(
    req: &BuildRequest,
    secret_values: &BTreeMap<String, String>,
) -> Result<BuildObjects, String> {
    if req.image.trim().is_empty() {
        return Err("no image: pass --image".into());
    }
    let name = req.name();
    let mut env: Vec<EnvVar> = req
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            ..Default::default()
        })
        .collect();
    let mut data = BTreeMap::new();
    for (i, k) in req.secret_env.keys().enumerate() {
        let value = secret_values
            .get(k)
            .ok_or_else(|| format!("no value was received for secret env {k}"))?;
        // Keys of a Secret allow fewer characters than env names: number them.
        let key = format!("env{i}");
        data.insert(key.clone(), ByteString(value.clone().into_bytes()));
        env.push(EnvVar {
            name: k.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: name.clone(),
                    key,
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let secret = (!data.is_empty()).then(|| Secret {
        metadata: meta(req),
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    });
    let workspace = req.workspace.as_ref().map(|size| PersistentVolumeClaim {
        metadata: meta(req),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mounts = workspace.as_ref().map(|_| {
        vec![VolumeMount {
            name: "workspace".into(),
            mount_path: WORKSPACE.into(),
            ..Default::default()
        }]
    });
    let mut containers = vec![Container {
        name: BUILD_CONTAINER.into(),
        image: Some(req.image.clone()),
        command: (!req.command.is_empty()).then(|| req.command.clone()),
        env: (!env.is_empty()).then_some(env),
        working_dir: workspace.as_ref().map(|_| WORKSPACE.to_string()),
        volume_mounts: mounts,
        image_pull_policy: Some("IfNotPresent".into()),
        ..Default::default()
    }];
    for (i, s) in req.services.iter().enumerate() {
        containers.push(Container {
            name: format!("service-{i}"),
            image: Some(s.image.clone()),
            command: (!s.command.is_empty()).then(|| s.command.clone()),
            env: Some(vec![EnvVar {
                name: "PORT".into(),
                value: Some(s.port.to_string()),
                ..Default::default()
            }]),
            image_pull_policy: Some("IfNotPresent".into()),
            ..Default::default()
        });
    }
    let pod = Pod {
        metadata: meta(req),
        spec: Some(PodSpec {
            containers,
            restart_policy: Some("Never".into()),
            // The cluster ends the build at its timeout even if tether is gone.
            active_deadline_seconds: Some(req.timeout().as_secs().max(1) as i64),
            // A build gets no token of the namespace's service account.
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(2),
            volumes: workspace.as_ref().map(|_| {
                vec![Volume {
                    name: "workspace".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: name.clone(),
                        read_only: None,
                    }),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(BuildObjects {
        secret,
        workspace,
        pod,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> BuildRequest {
        serde_json::from_value(serde_json::json!({
            "image": "busybox",
            "command": ["sh", "-c", "echo $TOKEN"],
            "env": { "MODE": "ci" },
            "secretEnv": { "TOKEN": "account.tok" },
            "workspace": "1Gi",
            "services": [{ "image": "redis", "port": 6379 }],
            "timeoutMs": 90_000,
            "taskId": "abc123",
            "delegate": "d1",
        }))
        .unwrap()
    }

    #[test]
    fn no_secret_value_is_in_the_pod() {
        let values = BTreeMap::from([("TOKEN".to_string(), "planted-secret-77".to_string())]);
        let o = build(&req(), &values).unwrap();
        let pod = serde_json::to_string(&o.pod).unwrap();
        assert!(!pod.contains("planted-secret-77"), "{pod}");
        assert!(pod.contains("secretKeyRef"), "{pod}");
        let secret = o.secret.unwrap();
        assert_eq!(
            secret.data.unwrap()["env0"].0,
            b"planted-secret-77".to_vec()
        );
        let spec = o.pod.spec.unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(90));
        assert_eq!(spec.containers.len(), 2);
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert!(o.workspace.is_some());
        assert_eq!(
            o.pod.metadata.labels.unwrap()[BUILD_LABEL],
            "abc123".to_string()
        );
    }

    #[test]
    fn a_missing_secret_value_is_an_error() {
        assert!(build(&req(), &BTreeMap::new()).is_err());
    }
}
