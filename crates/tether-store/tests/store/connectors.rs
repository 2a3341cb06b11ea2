//! Connector create/get/update/delete, identifiers, secret references, status.

use serde_json::json;
use tether_domain::connector::ConnectivityState;
use tether_domain::{ConnectivityStatus, Scope};
use tether_store::StoreError;

use crate::common::*;

both_backends!(
    round_trip_every_auth_type,
    identifiers_are_derived_and_unique,
    missing_secret_ref_names_field_and_scope,
    account_connector_cannot_use_org_secret,
    unknown_org_or_project_is_not_found,
    invalid_connector_is_refused_with_field,
    deleting_a_referenced_secret_names_the_connectors,
    update_keeps_identifier_scope_and_status,
    upsert_creates_then_updates,
    connectivity_keeps_last_connected_at,
    concurrent_creates_derive_distinct_identifiers,
    using_a_secret_of_another_scope_needs_a_grant,
    host_bound_secrets_refuse_other_urls,
);

async fn round_trip_every_auth_type(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    for id in [
        "tok", "ca", "user", "pw", "cert", "key", "pass", "cid", "opw", "ouser", "osec",
    ] {
        secret(s, &p, id, &format!("value of {id}")).await;
    }
    // Secrets of the org and the account, granted to the project.
    secret_usable_from(s, &org(), "orgca", "org ca", &["project/o/p"]).await;
    secret_usable_from(s, &Scope::Account, "accca", "account ca", &["org/o"]).await;

    let cases = vec![
        connector(
            &p,
            "sa",
            Some("sa"),
            manual(
                "ServiceAccount",
                json!({"serviceAccountTokenRef": "tok", "caCertRef": "org.orgca"}),
            ),
        ),
        connector(
            &p,
            "up plain",
            Some("up_plain"),
            manual(
                "UsernamePassword",
                json!({"username": "admin", "passwordRef": "pw", "caCertRef": "account.accca"}),
            ),
        ),
        connector(
            &p,
            "up ref",
            Some("up_ref"),
            manual(
                "UsernamePassword",
                json!({"usernameRef": "user", "passwordRef": "pw"}),
            ),
        ),
        connector(
            &p,
            "client cert",
            Some("ckc"),
            manual(
                "ClientKeyCert",
                json!({
                    "clientCertRef": "cert", "clientKeyRef": "key", "caCertRef": "ca",
                    "clientKeyPassphraseRef": "pass", "clientKeyAlgo": "RSA"
                }),
            ),
        ),
        connector(
            &p,
            "oidc",
            Some("oidc"),
            manual(
                "OpenIdConnect",
                json!({
                    "oidcIssuerUrl": "https://issuer.example/realms/k8s",
                    "oidcClientIdRef": "cid", "oidcPasswordRef": "opw",
                    "oidcUsernameRef": "ouser", "oidcSecretRef": "osec",
                    "oidcScopes": ["openid", "groups"], "caCertRef": "ca"
                }),
            ),
        ),
        connector(
            &p,
            "oidc plain user",
            Some("oidc2"),
            manual(
                "OpenIdConnect",
                json!({
                    "oidcIssuerUrl": "https://issuer.example/",
                    "oidcClientIdRef": "cid", "oidcPasswordRef": "opw",
                    "oidcUsername": "alice"
                }),
            ),
        ),
        connector(
            &p,
            "in cluster",
            Some("inherit"),
            json!({"type": "InheritFromDelegate"}),
        ),
    ];
    for c in cases {
        let created = s.create_connector(c.clone()).await.unwrap();
        assert_eq!(created.connector, c);
        assert_eq!(created.status.status, ConnectivityState::Unknown);
        let got = s
            .get_connector(&p, c.identifier.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(got, created, "get returns exactly what was created");
        assert_eq!(got.created_at, got.last_modified_at);
    }
    // The same holds through a second handle (nothing cached in memory).
    let again = env.reopen(env.kek.clone()).await.unwrap();
    let got = again.get_connector(&p, "ckc").await.unwrap();
    assert_eq!(got.connector.auth_type(), Some("ClientKeyCert"));
    again.close().await;
}

async fn identifiers_are_derived_and_unique(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &p, "tok", "t").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = s
            .create_connector(sa_connector(&p, "My Prod cluster", None, "tok"))
            .await
            .unwrap();
        ids.push(r.identifier().to_string());
    }
    assert_eq!(
        ids,
        ["My_Prod_cluster", "My_Prod_cluster_2", "My_Prod_cluster_3"]
    );
    // Names that the plain rule would turn into invalid identifiers.
    let r = s
        .create_connector(sa_connector(&p, "1st cluster", None, "tok"))
        .await
        .unwrap();
    assert_eq!(r.identifier(), "_1st_cluster");
    let r = s
        .create_connector(sa_connector(&p, "---", None, "tok"))
        .await
        .unwrap();
    assert_eq!(r.identifier(), "connector");
    let r = s
        .create_connector(sa_connector(&p, "null", None, "tok"))
        .await
        .unwrap();
    assert_eq!(r.identifier(), "null_1");
    // LIKE wildcards in the derived base do not confuse the taken-set lookup.
    let r = s
        .create_connector(sa_connector(&p, "a_b", None, "tok"))
        .await
        .unwrap();
    assert_eq!(r.identifier(), "a_b");
    let r = s
        .create_connector(sa_connector(&p, "axb", None, "tok"))
        .await
        .unwrap();
    assert_eq!(r.identifier(), "axb");
    let r = s
        .create_connector(sa_connector(&p, "a_b", None, "tok"))
        .await
        .unwrap();
    assert_eq!(r.identifier(), "a_b_2");

    // An explicit identifier that is taken is a conflict naming it.
    let err = s
        .create_connector(sa_connector(&p, "x", Some("My_Prod_cluster"), "tok"))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict { message } => {
            assert!(
                message.contains("'My_Prod_cluster'") && message.contains("project 'o/p'"),
                "{message}"
            )
        }
        e => panic!("expected Conflict, got {e:?}"),
    }
    // Identifiers are unique per scope, not globally; and case matters.
    secret(s, &Scope::Account, "tok", "t").await;
    s.create_connector(sa_connector(
        &Scope::Account,
        "x",
        Some("My_Prod_cluster"),
        "tok",
    ))
    .await
    .unwrap();
    s.create_connector(sa_connector(&p, "x", Some("my_prod_cluster"), "tok"))
        .await
        .unwrap();

    // Secrets derive the same way, with their own fallback.
    for (name, want) in [
        ("db password", "db_password"),
        ("db password", "db_password_2"),
        ("...", "secret"),
    ] {
        let m = s
            .create_secret(
                &p,
                tether_store::SecretInput {
                    usable_from: Vec::new(),
                    allowed_hosts: Vec::new(),
                    identifier: None,
                    name: name.into(),
                    description: None,
                    tags: Default::default(),
                    value: "v".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(m.identifier, want);
    }
}

async fn missing_secret_ref_names_field_and_scope(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &p, "pw", "x").await;
    let c = connector(
        &p,
        "c",
        Some("c"),
        manual(
            "UsernamePassword",
            json!({"usernameRef": "tok", "passwordRef": "pw", "caCertRef": "org.ca"}),
        ),
    );
    let StoreError::Validation(errs) = s.create_connector(c).await.unwrap_err() else {
        panic!("expected a validation error");
    };
    // Both missing references are reported, each on its field.
    assert_eq!(errs.0.len(), 2, "{errs}");
    assert_eq!(
        errs.0[0].field,
        "spec.credential.spec.auth.spec.usernameRef"
    );
    assert!(
        errs.0[0]
            .message
            .contains("secret 'tok' not found in project 'o/p'"),
        "{}",
        errs.0[0].message
    );
    assert_eq!(errs.0[1].field, "spec.credential.spec.auth.spec.caCertRef");
    assert!(
        errs.0[1]
            .message
            .contains("secret 'org.ca' not found in org 'o'"),
        "{}",
        errs.0[1].message
    );
    // Nothing was written.
    assert!(matches!(
        s.get_connector(&p, "c").await,
        Err(StoreError::NotFound { .. })
    ));
    // The same secret at another scope does not count.
    secret(s, &Scope::Account, "tok", "x").await;
    let c = sa_connector(&p, "c", Some("c"), "tok");
    assert!(matches!(
        s.create_connector(c).await,
        Err(StoreError::Validation(_))
    ));
}

async fn account_connector_cannot_use_org_secret(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    secret(s, &org(), "tok", "x").await;
    let c = sa_connector(&Scope::Account, "acc", Some("acc"), "org.tok");
    let StoreError::Validation(errs) = s.create_connector(c).await.unwrap_err() else {
        panic!("expected a validation error");
    };
    let e = errs.first().unwrap();
    assert_eq!(
        e.field,
        "spec.credential.spec.auth.spec.serviceAccountTokenRef"
    );
    assert!(e.message.contains("account"), "{}", e.message);
    // An org connector cannot reach into a project either: a bare reference
    // means its own scope, so a project secret is simply not found there.
    secret(s, &project(), "ptok", "x").await;
    let c = sa_connector(&org(), "o1", Some("o1"), "ptok");
    let StoreError::Validation(errs) = s.create_connector(c).await.unwrap_err() else {
        panic!("expected a validation error");
    };
    assert!(
        errs.first()
            .unwrap()
            .message
            .contains("not found in org 'o'"),
        "{errs}"
    );
    // resolve_secret_ref applies the same rules.
    let err = s
        .resolve_secret_ref(&Scope::Account, "org.tok")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Validation(_)), "{err:?}");
    let m = s.resolve_secret_ref(&project(), "org.tok").await.unwrap();
    assert_eq!((m.scope, m.identifier.as_str()), (org(), "tok"));
    let m = s.resolve_secret_ref(&project(), "ptok").await.unwrap();
    assert_eq!(m.scope, project());
    let err = s
        .resolve_secret_ref(&project(), "account.nope")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the account"), "{err}");
}

async fn unknown_org_or_project_is_not_found(env: TestEnv) {
    let s = &env.store;
    let c = sa_connector(&Scope::Org("nope".into()), "c", Some("c"), "tok");
    let err = s.create_connector(c).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what.contains("org 'nope'")),
        "{err:?}"
    );
    setup_scopes(s).await;
    let c = sa_connector(
        &Scope::Project {
            org: "o".into(),
            project: "q".into(),
        },
        "c",
        Some("c"),
        "tok",
    );
    let err = s.create_connector(c).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what.contains("project 'o/q'")),
        "{err:?}"
    );
    let err = s
        .create_secret(
            &Scope::Org("zz".into()),
            tether_store::SecretInput {
                usable_from: Vec::new(),
                allowed_hosts: Vec::new(),
                identifier: None,
                name: "n".into(),
                description: None,
                tags: Default::default(),
                value: "v".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("org 'zz'"), "{err}");
}

async fn invalid_connector_is_refused_with_field(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let mut c = sa_connector(&project(), "c", Some("c"), "tok");
    c.spec.delegate_selectors.clear();
    c.spec.credential = tether_domain::Credential::InheritFromDelegate;
    let StoreError::Validation(errs) = s.create_connector(c).await.unwrap_err() else {
        panic!("expected a validation error");
    };
    assert_eq!(errs.first().unwrap().field, "spec.delegateSelectors");
    let c = sa_connector(&project(), "c", Some("class"), "tok");
    let StoreError::Validation(errs) = s.create_connector(c).await.unwrap_err() else {
        panic!("expected a validation error");
    };
    assert_eq!(errs.first().unwrap().field, "identifier");
}

async fn deleting_a_referenced_secret_names_the_connectors(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret_usable_from(s, &org(), "shared", "x", &["org/o"]).await;
    s.create_connector(sa_connector(&p, "c1", Some("c1"), "org.shared"))
        .await
        .unwrap();
    s.create_connector(sa_connector(&org(), "c2", Some("c2"), "shared"))
        .await
        .unwrap();
    let err = s.delete_secret(&org(), "shared").await.unwrap_err();
    let StoreError::Conflict { message } = err else {
        panic!("expected Conflict, got {err:?}");
    };
    assert!(message.contains("project/o/p/c1"), "{message}");
    assert!(message.contains("org/o/c2"), "{message}");
    assert!(message.contains("secret 'shared' in org 'o'"), "{message}");

    // Once no connector uses it any more, it can go.
    s.delete_connector(&p, "c1").await.unwrap();
    s.update_connector(
        &org(),
        "c2",
        connector(&org(), "c2", None, json!({"type": "InheritFromDelegate"})),
    )
    .await
    .unwrap();
    s.delete_secret(&org(), "shared").await.unwrap();
    assert!(matches!(
        s.get_secret_meta(&org(), "shared").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete_secret(&org(), "shared").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn update_keeps_identifier_scope_and_status(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &p, "a", "1").await;
    secret(s, &p, "b", "2").await;
    let created = s
        .create_connector(sa_connector(&p, "c", Some("c"), "a"))
        .await
        .unwrap();
    let tested = ConnectivityStatus {
        status: ConnectivityState::Success,
        tested_at: Some(1_000),
        ..Default::default()
    };
    s.set_connectivity(&p, "c", tested).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let mut changed = sa_connector(&p, "renamed", None, "b");
    changed.tags.insert("env".into(), "prod".into());
    let updated = s.update_connector(&p, "c", changed.clone()).await.unwrap();
    assert_eq!(updated.connector.identifier.as_deref(), Some("c"));
    assert_eq!(updated.connector.name, "renamed");
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.last_modified_at > created.last_modified_at);
    assert_eq!(updated.status.status, ConnectivityState::Success);
    assert_eq!(updated.status.last_connected_at, Some(1_000));
    assert_eq!(s.get_connector(&p, "c").await.unwrap(), updated);
    // The reference moved from `a` to `b`.
    s.delete_secret(&p, "a").await.unwrap();
    assert!(matches!(
        s.delete_secret(&p, "b").await,
        Err(StoreError::Conflict { .. })
    ));

    // Identifier and scope are immutable.
    let err = s
        .update_connector(&p, "c", sa_connector(&p, "c", Some("other"), "b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Validation(e) if e.first().unwrap().field == "identifier"),
        "{err:?}"
    );
    let err = s
        .update_connector(&p, "c", sa_connector(&org(), "c", Some("c"), "b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Validation(e) if e.first().unwrap().field == "projectIdentifier"),
        "{err:?}"
    );
    // A missing reference leaves the stored connector untouched.
    let err = s
        .update_connector(&p, "c", sa_connector(&p, "c", Some("c"), "gone"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Validation(_)));
    assert_eq!(s.get_connector(&p, "c").await.unwrap(), updated);
    // Updating or deleting what does not exist is NotFound.
    assert!(matches!(
        s.update_connector(&p, "nope", sa_connector(&p, "c", None, "b"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete_connector(&p, "nope").await,
        Err(StoreError::NotFound { .. })
    ));
    s.delete_connector(&p, "c").await.unwrap();
    s.delete_secret(&p, "b").await.unwrap();
}

async fn upsert_creates_then_updates(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &p, "a", "1").await;
    let first = s
        .upsert_connector(sa_connector(&p, "one", Some("x"), "a"))
        .await
        .unwrap();
    assert!(first.created);
    let second = s
        .upsert_connector(sa_connector(&p, "two", Some("x"), "a"))
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(second.record.connector.name, "two");
    assert_eq!(second.record.created_at, first.record.created_at);
    // Without an identifier, upsert derives one and creates.
    let third = s
        .upsert_connector(sa_connector(&p, "x", None, "a"))
        .await
        .unwrap();
    assert!(third.created);
    assert_eq!(third.record.identifier(), "x_2");
}

async fn connectivity_keeps_last_connected_at(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &p, "a", "1").await;
    s.create_connector(sa_connector(&p, "c", Some("c"), "a"))
        .await
        .unwrap();
    let ok = s
        .set_connectivity(
            &p,
            "c",
            ConnectivityStatus {
                status: ConnectivityState::Success,
                tested_at: Some(100),
                delegate_id: Some("d1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ok.last_connected_at, Some(100));
    let failed = ConnectivityStatus {
        status: ConnectivityState::Failure,
        error_summary: Some("401 Unauthorized: check the connector's credentials".into()),
        errors: vec![tether_domain::connector::ConnectivityError {
            reason: "Unauthorized".into(),
            message: "token rejected".into(),
            code: 401,
        }],
        tested_at: Some(200),
        // A caller's value is ignored on failure: the old one stays.
        last_connected_at: Some(999),
        delegate_id: None,
    };
    let stored = s.set_connectivity(&p, "c", failed.clone()).await.unwrap();
    assert_eq!(stored.last_connected_at, Some(100));
    let rec = s.get_connector(&p, "c").await.unwrap();
    assert_eq!(
        rec.status,
        ConnectivityStatus {
            last_connected_at: Some(100),
            ..failed
        }
    );
    // The status does not count as a modification of the connector.
    assert_eq!(rec.last_modified_at, rec.created_at);
    // SUCCESS without testedAt uses the current time for both.
    let again = s
        .set_connectivity(
            &p,
            "c",
            ConnectivityStatus {
                status: ConnectivityState::Success,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(again.tested_at.unwrap() > 1_000_000_000_000);
    assert_eq!(again.last_connected_at, again.tested_at);
    assert!(matches!(
        s.set_connectivity(&p, "nope", again).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn concurrent_creates_derive_distinct_identifiers(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &p, "a", "1").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            s.create_connector(sa_connector(&p, "busy", None, "a"))
                .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().identifier().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "{ids:?}");
}

async fn using_a_secret_of_another_scope_needs_a_grant(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    secret(s, &Scope::Account, "acc_tok", "account token").await;
    let c = sa_connector(&p, "c", Some("c"), "account.acc_tok");
    let err = s.create_connector(c.clone()).await.unwrap_err();
    let StoreError::SecretUseDenied(errs) = err else {
        panic!("expected SecretUseDenied, got {err:?}");
    };
    let e = errs.first().unwrap();
    assert_eq!(
        e.field,
        "spec.credential.spec.auth.spec.serviceAccountTokenRef"
    );
    assert!(
        e.message
            .contains("tether secret update acc_tok --usable-from project/o/p"),
        "{}",
        e.message
    );
    // The same through upsert (PUT, `connector apply`).
    assert!(matches!(
        s.upsert_connector(c.clone()).await,
        Err(StoreError::SecretUseDenied(_))
    ));
    // An account connector uses it without a grant.
    s.create_connector(sa_connector(
        &Scope::Account,
        "a",
        Some("a"),
        "account.acc_tok",
    ))
    .await
    .unwrap();

    // Granted to the org: its projects may use it.
    let granted = s
        .update_secret(
            &Scope::Account,
            "acc_tok",
            tether_store::SecretUpdate {
                name: "acc_tok".into(),
                description: None,
                tags: Default::default(),
                value: None,
                usable_from: Some(vec!["org/o".into()]),
                allowed_hosts: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(granted.usable_from, vec![org()]);
    s.create_connector(c.clone()).await.unwrap();
    assert_eq!(s.connector_secrets(&p, &c).await.unwrap().len(), 1);
    // An update that leaves the grants out keeps them.
    let kept = s
        .update_secret(
            &Scope::Account,
            "acc_tok",
            tether_store::SecretUpdate {
                name: "renamed".into(),
                description: None,
                tags: Default::default(),
                value: None,
                usable_from: None,
                allowed_hosts: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.usable_from, vec![org()]);
    assert_eq!(
        s.get_secret_meta(&Scope::Account, "acc_tok")
            .await
            .unwrap()
            .usable_from,
        vec![org()]
    );

    // Revoked: the stored connector may no longer use it.
    s.update_secret(
        &Scope::Account,
        "acc_tok",
        tether_store::SecretUpdate {
            name: "acc_tok".into(),
            description: None,
            tags: Default::default(),
            value: None,
            usable_from: Some(vec![]),
            allowed_hosts: None,
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        s.connector_secrets(&p, &c).await,
        Err(StoreError::SecretUseDenied(_))
    ));

    // Grants must name existing scopes within the secret's.
    for (bad, field) in [
        ("org/nope", "usableFrom[0]"),
        ("project/o/nope", "usableFrom[0]"),
        ("o", "usableFrom[0]"),
    ] {
        let err = s
            .update_secret(
                &Scope::Account,
                "acc_tok",
                tether_store::SecretUpdate {
                    name: "acc_tok".into(),
                    description: None,
                    tags: Default::default(),
                    value: None,
                    usable_from: Some(vec![bad.into()]),
                    allowed_hosts: None,
                },
            )
            .await
            .unwrap_err();
        let StoreError::Validation(errs) = err else {
            panic!("{bad}: expected a validation error, got {err:?}");
        };
        assert_eq!(errs.first().unwrap().field, field, "{bad}");
    }
    secret(s, &p, "mine", "x").await;
    let err = s
        .update_secret(
            &p,
            "mine",
            tether_store::SecretUpdate {
                name: "mine".into(),
                description: None,
                tags: Default::default(),
                value: None,
                usable_from: Some(vec!["org/o".into()]),
                allowed_hosts: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Validation(_)), "{err:?}");
}

async fn host_bound_secrets_refuse_other_urls(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    s.create_secret(
        &p,
        tether_store::SecretInput {
            identifier: Some("bound".into()),
            name: "bound".into(),
            description: None,
            tags: Default::default(),
            value: tether_store::SecretValue::new("v"),
            usable_from: Vec::new(),
            allowed_hosts: vec!["10.0.0.1:6443".into(), "IDP.example".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_secret_meta(&p, "bound").await.unwrap().allowed_hosts,
        vec!["10.0.0.1:6443".to_string(), "idp.example".to_string()]
    );
    // manual() points at https://10.0.0.1:6443: allowed.
    s.create_connector(sa_connector(&p, "ok", Some("ok"), "bound"))
        .await
        .unwrap();
    let mut elsewhere = sa_connector(&p, "elsewhere", Some("elsewhere"), "bound");
    if let tether_domain::Credential::ManualConfig(m) = &mut elsewhere.spec.credential {
        m.master_url = "https://attacker.example:6443".into();
    }
    let err = s.create_connector(elsewhere).await.unwrap_err();
    let StoreError::SecretUseDenied(errs) = err else {
        panic!("expected SecretUseDenied, got {err:?}");
    };
    assert_eq!(
        errs.first().unwrap().field,
        "spec.credential.spec.masterUrl"
    );
    assert!(
        errs.first()
            .unwrap()
            .message
            .contains("attacker.example:6443"),
        "{errs}"
    );
    // OpenIdConnect: the issuer must be allowed too.
    secret(s, &p, "cid", "client").await;
    let oidc = |issuer: &str| {
        connector(
            &p,
            "oidc",
            Some("oidc"),
            manual(
                "OpenIdConnect",
                json!({
                    "oidcIssuerUrl": issuer,
                    "oidcClientIdRef": "cid", "oidcPasswordRef": "bound",
                    "oidcUsername": "alice"
                }),
            ),
        )
    };
    let err = s
        .create_connector(oidc("https://evil.example/realms/x"))
        .await
        .unwrap_err();
    let StoreError::SecretUseDenied(errs) = err else {
        panic!("expected SecretUseDenied, got {err:?}");
    };
    assert_eq!(
        errs.first().unwrap().field,
        "spec.credential.spec.auth.spec.oidcIssuerUrl"
    );
    s.create_connector(oidc("https://idp.example/realms/x"))
        .await
        .unwrap();
    // Bad host patterns are refused on their field.
    let err = s
        .update_secret(
            &p,
            "bound",
            tether_store::SecretUpdate {
                name: "bound".into(),
                description: None,
                tags: Default::default(),
                value: None,
                usable_from: None,
                allowed_hosts: Some(vec!["ok.example".into(), "https://u:p@h/x".into()]),
            },
        )
        .await
        .unwrap_err();
    let StoreError::Validation(errs) = err else {
        panic!("expected a validation error, got {err:?}");
    };
    assert_eq!(errs.first().unwrap().field, "allowedHosts[1]");
}
