//! Orgs and projects.

use tether_domain::Scope;
use tether_store::{Role, StoreError};

use crate::common::*;

both_backends!(org_and_project_lifecycle, delete_refuses_while_in_use);

async fn org_and_project_lifecycle(env: TestEnv) {
    let s = &env.store;
    let o = s.create_org("o", "Org O", Some("first")).await.unwrap();
    assert_eq!(s.get_org("o").await.unwrap(), o);
    s.create_org("b", "Org B", None).await.unwrap();
    let ids: Vec<_> = s
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.identifier)
        .collect();
    assert_eq!(ids, ["b", "o"]);
    let err = s.create_org("o", "again", None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { message } if message.contains("org 'o'")),
        "{err:?}"
    );
    let err = s.create_org("1x", "", None).await.unwrap_err();
    let StoreError::Validation(errs) = err else {
        panic!()
    };
    assert_eq!(
        errs.0.len(),
        2,
        "identifier and name are both reported: {errs}"
    );

    let p = s.create_project("o", "p", "P", None).await.unwrap();
    assert_eq!(p.scope(), project());
    assert_eq!(s.get_project("o", "p").await.unwrap(), p);
    assert_eq!(s.list_projects("o").await.unwrap(), vec![p]);
    assert!(s.list_projects("b").await.unwrap().is_empty());
    assert!(matches!(
        s.list_projects("zz").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.create_project("zz", "p", "P", None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.create_project("o", "p", "P", None).await,
        Err(StoreError::Conflict { .. })
    ));
    // The same project identifier in another org is fine.
    s.create_project("b", "p", "P", None).await.unwrap();

    s.delete_project("o", "p").await.unwrap();
    assert!(matches!(
        s.get_project("o", "p").await,
        Err(StoreError::NotFound { .. })
    ));
    s.delete_org("o").await.unwrap();
    assert!(matches!(
        s.get_org("o").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete_org("o").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn delete_refuses_while_in_use(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    secret(s, &project(), "tok", "x").await;
    s.create_connector(sa_connector(&project(), "c", Some("c"), "tok"))
        .await
        .unwrap();
    secret(s, &org(), "orgsecret", "x").await;

    let err = s.delete_org("o").await.unwrap_err();
    let StoreError::Conflict { message } = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("1 project(s) (p)"), "{message}");
    assert!(
        message.contains("1 connector(s)") && message.contains("2 secret(s)"),
        "{message}"
    );

    let err = s.delete_project("o", "p").await.unwrap_err();
    let StoreError::Conflict { message } = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("project 'o/p'") && message.contains("1 connector(s) and 1 secret(s)"),
        "{message}"
    );

    s.delete_connector(&project(), "c").await.unwrap();
    s.delete_secret(&project(), "tok").await.unwrap();
    let (_, project_token) = s
        .create_token("ci", &project(), Role::Editor)
        .await
        .unwrap();
    s.delete_project("o", "p").await.unwrap();
    // Tokens of a deleted scope stop working, so a new project of the same
    // identifier does not inherit them.
    assert!(s
        .authenticate(project_token.expose())
        .await
        .unwrap()
        .is_none());

    let (_, org_token) = s.create_token("ops", &org(), Role::Admin).await.unwrap();
    let (_, acc_token) = s
        .create_token("root", &Scope::Account, Role::Admin)
        .await
        .unwrap();
    s.delete_secret(&org(), "orgsecret").await.unwrap();
    s.delete_org("o").await.unwrap();
    assert!(s.authenticate(org_token.expose()).await.unwrap().is_none());
    assert!(s.authenticate(acc_token.expose()).await.unwrap().is_some());
}
