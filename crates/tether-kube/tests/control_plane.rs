//! Proof that the test control plane is a real Kubernetes API server with RBAC and
//! a working service-account token controller, driven through tether's own client.

use anyhow::Result;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tether_kube::{ClusterAccess, Credentials};
use tether_testenv::{service_account_token, KubeEnv};

fn token_client(env: &KubeEnv, token: &str) -> Client {
    ClusterAccess::new(&env.url, Credentials::Token(token.to_string().into()))
        .with_ca(&env.ca_pem)
        .client()
        .expect("client")
}

async fn can_i(client: &Client, verb: &str, resource: &str, ns: &str) -> Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(out.status.expect("status").allowed)
}

#[tokio::test]
async fn cluster_role_binding_allows_its_verbs_and_nothing_else() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("rbac").await;
    let token = service_account_token(&admin, &ns, "reader").await?;

    let role_name = format!("{ns}-pod-reader");
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(role_name.clone()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(role_name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role_name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some(ns.clone()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await?;

    let sa = token_client(env, &token);
    assert!(can_i(&sa, "list", "pods", &ns).await?, "list pods is bound");
    assert!(can_i(&sa, "get", "pods", &ns).await?, "get pods is bound");
    assert!(
        !can_i(&sa, "delete", "pods", &ns).await?,
        "delete pods is not"
    );
    assert!(
        !can_i(&sa, "list", "secrets", &ns).await?,
        "secrets are not"
    );
    // And the API agrees with the review: listing pods works.
    Api::<Pod>::namespaced(sa, &ns)
        .list(&Default::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn auto_created_token_secret_authenticates_as_the_service_account() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("token").await;
    let token = service_account_token(&admin, &ns, "nobody").await?;

    let sa = token_client(env, &token);
    let version = sa.apiserver_version().await?;
    assert_eq!(version.major, "1");

    // Authenticated (not anonymous) but without bindings: the API names the account.
    let err = Api::<Pod>::namespaced(sa, &ns)
        .list(&Default::default())
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status
            .message
            .contains(&format!("system:serviceaccount:{ns}:nobody")),
        "{}",
        status.message
    );

    // A token the cluster never issued is refused outright.
    let bogus = token_client(env, "not-a-real-token");
    let err = bogus.apiserver_version().await;
    let err = Api::<Pod>::namespaced(bogus, &ns)
        .list(&Default::default())
        .await
        .map(|_| ())
        .or(err.map(|_| ()))
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other}"),
    }
    Ok(())
}
