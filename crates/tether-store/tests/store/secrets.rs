//! Secrets: CRUD, encryption at rest, key checks and rotation.

use std::collections::BTreeMap;

use sqlx::Row;
use tether_domain::Scope;
use tether_store::{
    Backend, Kek, ListQuery, Role, SecretInput, SecretUpdate, SecretValue, StoreError,
};

use crate::common::*;

both_backends!(
    secret_lifecycle,
    ciphertext_is_bound_to_its_row,
    rotate_then_read_with_new_key,
    wrong_key_is_a_crypto_error,
    no_plaintext_at_rest,
);

async fn secret_lifecycle(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let p = project();
    let tags = BTreeMap::from([("team".to_string(), "payments".to_string())]);
    let meta = s
        .create_secret(
            &p,
            SecretInput {
                usable_from: Vec::new(),
                allowed_hosts: Vec::new(),
                identifier: Some("db_pw".into()),
                name: "DB password".into(),
                description: Some("for the orders database".into()),
                tags: tags.clone(),
                value: "s3cr3t".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(meta.scope, p);
    assert_eq!(s.get_secret_meta(&p, "db_pw").await.unwrap(), meta);
    assert_eq!(
        s.read_secret_value(&p, "db_pw").await.unwrap().expose(),
        "s3cr3t"
    );
    // Debug output of everything a caller holds is free of the value.
    let input = SecretInput {
        usable_from: Vec::new(),
        allowed_hosts: Vec::new(),
        identifier: None,
        name: "n".into(),
        description: None,
        tags: BTreeMap::new(),
        value: "s3cr3t".into(),
    };
    assert!(!format!("{input:?} {meta:?}").contains("s3cr3t"));

    let dup = s
        .create_secret(
            &p,
            SecretInput {
                usable_from: Vec::new(),
                allowed_hosts: Vec::new(),
                identifier: Some("db_pw".into()),
                ..input.clone()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&dup, StoreError::Conflict { message } if message.contains("'db_pw'")),
        "{dup:?}"
    );
    assert!(!dup.to_string().contains("s3cr3t"));

    let bad = s
        .create_secret(
            &p,
            SecretInput {
                usable_from: Vec::new(),
                allowed_hosts: Vec::new(),
                value: SecretValue::new(""),
                ..input.clone()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, StoreError::Validation(e) if e.first().unwrap().field == "value"),
        "{bad:?}"
    );

    // Metadata-only update keeps the value; a value update replaces it.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let upd = s
        .update_secret(
            &p,
            "db_pw",
            SecretUpdate {
                usable_from: None,
                allowed_hosts: None,
                name: "DB password - orders".into(),
                description: None,
                tags: BTreeMap::new(),
                value: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(upd.created_at, meta.created_at);
    assert!(upd.updated_at > meta.updated_at);
    assert_eq!(s.get_secret_meta(&p, "db_pw").await.unwrap(), upd);
    assert_eq!(
        s.read_secret_value(&p, "db_pw").await.unwrap().expose(),
        "s3cr3t"
    );
    s.update_secret(
        &p,
        "db_pw",
        SecretUpdate {
            usable_from: None,
            allowed_hosts: None,
            name: "x".into(),
            description: None,
            tags,
            value: Some("n3w".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.read_secret_value(&p, "db_pw").await.unwrap().expose(),
        "n3w"
    );

    // Listing is per scope, with search and paging.
    for i in 0..5 {
        secret(s, &p, &format!("k{i}"), "v").await;
    }
    secret(s, &org(), "k_org", "v").await;
    let page = s
        .list_secrets(
            &p,
            ListQuery {
                page: 1,
                limit: Some(2),
                search: Some("K".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    let ids: Vec<_> = page.items.iter().map(|m| m.identifier.as_str()).collect();
    assert_eq!(ids, ["k2", "k3"]);
    assert_eq!(
        s.list_secrets(&org(), ListQuery::default())
            .await
            .unwrap()
            .total,
        1
    );

    s.delete_secret(&p, "db_pw").await.unwrap();
    assert!(matches!(
        s.read_secret_value(&p, "db_pw").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.update_secret(
            &p,
            "db_pw",
            SecretUpdate {
                usable_from: None,
                allowed_hosts: None,
                name: "x".into(),
                description: None,
                tags: BTreeMap::new(),
                value: None
            }
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn ciphertext_is_bound_to_its_row(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    secret(s, &project(), "a", "value A").await;
    secret(s, &org(), "b", "value B").await;
    secret(s, &project(), "c", "value C").await;

    // Swap the sealed values of `a` (project) and `b` (org) as an attacker with
    // write access to the database might, to make a connector of one scope
    // use another scope's credential.
    let raw = env.raw().await;
    let rows = sqlx::query("SELECT identifier, nonce, ciphertext FROM secrets ORDER BY identifier")
        .fetch_all(&raw)
        .await
        .unwrap();
    let get = |i: usize| -> (Vec<u8>, Vec<u8>) {
        (
            rows[i].try_get("nonce").unwrap(),
            rows[i].try_get("ciphertext").unwrap(),
        )
    };
    let (a, b) = (get(0), get(1));
    for (id, (nonce, ct)) in [("a", &b), ("b", &a)] {
        sqlx::query("UPDATE secrets SET nonce = $1, ciphertext = $2 WHERE identifier = $3")
            .bind(nonce.clone())
            .bind(ct.clone())
            .bind(id)
            .execute(&raw)
            .await
            .unwrap();
    }
    // Same scope, other identifier: also refused.
    sqlx::query("UPDATE secrets SET nonce = $1, ciphertext = $2 WHERE identifier = 'c'")
        .bind(a.0.clone())
        .bind(a.1.clone())
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    for (scope, id) in [(project(), "a"), (org(), "b"), (project(), "c")] {
        let err = s.read_secret_value(&scope, id).await.unwrap_err();
        let StoreError::Crypto { message } = &err else {
            panic!("expected Crypto for {id}, got {err:?}")
        };
        assert!(message.contains(&format!("secret '{id}'")), "{message}");
        assert!(!message.contains("value A"), "{message}");
    }
}

async fn rotate_then_read_with_new_key(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let values = [
        (project(), "a", "alpha"),
        (org(), "b", "beta"),
        (Scope::Account, "c", "gamma"),
    ];
    for (scope, id, v) in &values {
        secret(s, scope, id, v).await;
    }
    let old_id = s.key_id().await;
    let new = Kek::generate();
    assert_eq!(s.rotate_kek(new.clone()).await.unwrap(), 3);
    assert_eq!(s.key_id().await, new.key_id());
    assert_ne!(old_id, new.key_id());
    // This handle now uses the new key, for reads and for new writes.
    for (scope, id, v) in &values {
        assert_eq!(s.read_secret_value(scope, id).await.unwrap().expose(), *v);
    }
    secret(s, &project(), "d", "delta").await;
    s.close().await;

    // A fresh start needs the new key, and the old one is refused.
    let err = env.reopen(env.kek.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Crypto { .. }), "{err:?}");
    let s2 = env.reopen(new).await.unwrap();
    for (scope, id, v) in values.iter().chain([&(project(), "d", "delta")]) {
        assert_eq!(s2.read_secret_value(scope, id).await.unwrap().expose(), *v);
    }
    let raw = env.raw().await;
    let ids: Vec<String> = sqlx::query("SELECT DISTINCT key_id FROM secrets")
        .fetch_all(&raw)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("key_id").unwrap())
        .collect();
    assert_eq!(ids, [s2.key_id().await]);
    raw.close().await;
    s2.close().await;
}

async fn wrong_key_is_a_crypto_error(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    secret(s, &project(), "a", "alpha").await;
    let err = env.reopen(Kek::generate()).await.unwrap_err();
    let StoreError::Crypto { message } = &err else {
        panic!("expected Crypto, got {err:?}")
    };
    assert!(
        message.contains("the key-encryption key does not match the one these secrets were written with; start with the right TETHER_KEK/--kek-file"),
        "{message}"
    );

    // A handle whose key differs from the rows' (forced here by rewriting the
    // recorded key ids) refuses to decrypt instead of returning garbage.
    let raw = env.raw().await;
    sqlx::query("UPDATE secrets SET key_id = 'feedfacefeedface'")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let err = s.read_secret_value(&project(), "a").await.unwrap_err();
    assert!(err.to_string().contains("TETHER_KEK"), "{err}");

    // With no secret stored, any key is accepted (nothing would be lost).
    let empty = TestEnv::sqlite().await;
    empty.store.close().await;
    empty.reopen(Kek::generate()).await.unwrap().close().await;
}

async fn no_plaintext_at_rest(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let marker = |i: usize| format!("PLAINTEXT-MARKER-{i}-b7c1e2d9f0");
    for (i, scope) in [project(), org(), Scope::Account].iter().enumerate() {
        secret(s, scope, &format!("s{i}"), &marker(i)).await;
    }
    s.update_secret(
        &project(),
        "s0",
        SecretUpdate {
            usable_from: None,
            allowed_hosts: None,
            name: "s0".into(),
            description: None,
            tags: BTreeMap::new(),
            value: Some(marker(3).into()),
        },
    )
    .await
    .unwrap();
    let (_, token) = s
        .create_token("t", &Scope::Account, Role::Viewer)
        .await
        .unwrap();
    let needles: Vec<Vec<u8>> = (0..4)
        .map(marker)
        .chain([token.expose().to_string()])
        .flat_map(|m| [m.clone().into_bytes(), hex::encode(&m).into_bytes()])
        .collect();
    assert_eq!(
        s.read_secret_value(&project(), "s0")
            .await
            .unwrap()
            .expose(),
        marker(3)
    );

    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    match env.backend {
        Backend::Sqlite => {
            let read_all = |haystacks: &mut Vec<(String, Vec<u8>)>| {
                let mut seen = 0;
                for e in std::fs::read_dir(env.data_dir.path()).unwrap() {
                    let path = e.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    if name.starts_with("tether.db") {
                        seen += 1;
                        haystacks.push((name, std::fs::read(&path).unwrap()));
                    }
                }
                seen
            };
            // While open (recent pages are in the WAL) and after closing.
            assert_eq!(
                read_all(&mut haystacks),
                3,
                "db, -wal and -shm are all there"
            );
            s.close().await;
            assert!(read_all(&mut haystacks) >= 1);
        }
        Backend::Postgres => {
            let raw = env.raw().await;
            let tables: Vec<String> = sqlx::query(
                "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&raw)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("t").unwrap())
            .collect();
            assert!(tables.len() >= 7, "{tables:?}");
            for t in tables {
                let rows = sqlx::query(&format!("SELECT x::text AS row FROM {t} x"))
                    .fetch_all(&raw)
                    .await
                    .unwrap();
                let text: String = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>("row").unwrap() + "\n")
                    .collect();
                haystacks.push((t, text.into_bytes()));
            }
            raw.close().await;
        }
    }
    let total: usize = haystacks.iter().map(|h| h.1.len()).sum();
    let sizes: Vec<_> = haystacks
        .iter()
        .map(|(n, h)| (n.as_str(), h.len()))
        .collect();
    assert!(total > 500, "there is data to search: {sizes:?}");
    for (name, hay) in &haystacks {
        for n in &needles {
            assert!(
                !hay.windows(n.len()).any(|w| w == n.as_slice()),
                "{name} contains {}",
                String::from_utf8_lossy(n)
            );
        }
    }
    // The search itself works: a secret's name is stored in clear.
    assert!(haystacks
        .iter()
        .any(|(_, h)| h.windows(2).any(|w| w == b"s2")));
}
