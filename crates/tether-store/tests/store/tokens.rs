//! API tokens and the first admin token.

use std::os::unix::fs::PermissionsExt;

use sqlx::Row;
use tether_domain::Scope;
use tether_store::{Role, StoreError, ADMIN_TOKEN_FILE_NAME, TOKEN_PREFIX};

use crate::common::*;

both_backends!(token_auth_and_revoke, admin_token_on_first_start_only);

async fn token_auth_and_revoke(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let (rec, token) = s
        .create_token("ci deploys", &project(), Role::Editor)
        .await
        .unwrap();
    assert!(token.expose().starts_with(TOKEN_PREFIX));
    assert_eq!(token.expose().len(), 47);
    assert!(!format!("{rec:?} {token:?}").contains(token.expose()));
    assert_eq!(
        (rec.scope.clone(), rec.role, rec.revoked_at),
        (project(), Role::Editor, None)
    );

    let authed = s.authenticate(token.expose()).await.unwrap().unwrap();
    assert_eq!(authed, rec);
    // Near misses are refused.
    let mut other = token.expose().to_string();
    let last = other.pop().unwrap();
    other.push(if last == 'A' { 'B' } else { 'A' });
    assert!(s.authenticate(&other).await.unwrap().is_none());
    assert!(s.authenticate("").await.unwrap().is_none());
    assert!(s.authenticate("Bearer x").await.unwrap().is_none());

    // Only the hash is stored.
    let raw = env.raw().await;
    let stored: String = sqlx::query("SELECT token_hash FROM api_tokens WHERE id = $1")
        .bind(&rec.id)
        .fetch_one(&raw)
        .await
        .unwrap()
        .try_get("token_hash")
        .unwrap();
    raw.close().await;
    assert_eq!(stored.len(), 64);
    assert!(!stored.contains(&token.expose()[4..]));

    let (viewer, _) = s
        .create_token("dash", &project(), Role::Viewer)
        .await
        .unwrap();
    let listed = s.list_tokens(&project()).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(s.list_tokens(&Scope::Account).await.unwrap().is_empty());

    let revoked = s.revoke_token(&rec.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(s.authenticate(token.expose()).await.unwrap().is_none());
    // Revoking again keeps the first time.
    assert_eq!(s.revoke_token(&rec.id).await.unwrap(), revoked);
    assert_eq!(s.get_token(&viewer.id).await.unwrap().revoked_at, None);
    assert!(matches!(
        s.revoke_token("nope").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.create_token("x", &Scope::Org("nope".into()), Role::Viewer)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.create_token("", &Scope::Account, Role::Viewer).await,
        Err(StoreError::Validation(_))
    ));
    assert_eq!(Role::parse("ADMIN"), Some(Role::Admin));
    assert!(Role::Admin > Role::Editor && Role::Editor > Role::Viewer);
}

async fn admin_token_on_first_start_only(env: TestEnv) {
    let s = &env.store;
    let dir = env.data_dir.path();
    let token = s
        .ensure_admin_token(dir)
        .await
        .unwrap()
        .expect("first start creates one");
    let path = dir.join(ADMIN_TOKEN_FILE_NAME);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        token.expose()
    );
    let rec = s.authenticate(token.expose()).await.unwrap().unwrap();
    assert_eq!((rec.scope, rec.role), (Scope::Account, Role::Admin));

    assert!(s.ensure_admin_token(dir).await.unwrap().is_none());
    // The last admin token of the account cannot be revoked (nobody could
    // manage tether), and the bootstrap happens once.
    assert!(matches!(
        s.revoke_token(&rec.id).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(s.ensure_admin_token(dir).await.unwrap().is_none());
}
