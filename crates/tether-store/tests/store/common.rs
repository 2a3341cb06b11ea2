//! Test environments for both backends and shared fixtures.
//!
//! SQLite runs in a fresh temporary directory per test. PostgreSQL runs when
//! `TETHER_TEST_DATABASE_URL` names a server: each test creates its own database
//! (so tests run in parallel) and drops it when the environment is dropped, also
//! after a failed assertion.

use std::io::Write;
use std::sync::Once;

use serde_json::json;
use sqlx::AnyPool;
use tempfile::TempDir;
use tether_domain::{Connector, Scope};
use tether_store::{Backend, Kek, SecretInput, SecretValue, Store, StoreConfig, SQLITE_FILE_NAME};

pub const PG_URL_ENV: &str = "TETHER_TEST_DATABASE_URL";
pub const REQUIRE_PG_ENV: &str = "TETHER_TEST_REQUIRE_POSTGRES";

/// Runs each listed `async fn name(env: TestEnv)` against SQLite and PostgreSQL,
/// as `<module>::sqlite::name` and `<module>::postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = $crate::common::TestEnv::sqlite().await;
                    super::$name(env).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(env) = $crate::common::TestEnv::postgres(
                        concat!(module_path!(), "::", stringify!($name)),
                    )
                    .await
                    else {
                        return;
                    };
                    super::$name(env).await;
                }
            )*
        }
    };
}

pub struct TestEnv {
    pub store: Store,
    pub kek: Kek,
    pub backend: Backend,
    /// `None` for SQLite (the data directory's file).
    pub database_url: Option<String>,
    // Dropped after the store: the database goes last.
    _pg: Option<PgDatabase>,
    pub data_dir: TempDir,
}

impl TestEnv {
    pub async fn sqlite() -> TestEnv {
        let data_dir = tempfile::tempdir().unwrap();
        let kek = Kek::generate();
        let store = Store::open(StoreConfig {
            database_url: None,
            data_dir: data_dir.path().to_path_buf(),
            key: kek.clone(),
        })
        .await
        .expect("open SQLite store");
        TestEnv {
            store,
            kek,
            backend: Backend::Sqlite,
            database_url: None,
            _pg: None,
            data_dir,
        }
    }

    /// `None` (after printing why) when no PostgreSQL server is configured and
    /// none is required; panics when one is required but missing.
    pub async fn postgres(test: &str) -> Option<TestEnv> {
        let Some(server) = std::env::var(PG_URL_ENV).ok().filter(|s| !s.is_empty()) else {
            if std::env::var_os(REQUIRE_PG_ENV).is_some() {
                panic!(
                    "{REQUIRE_PG_ENV} is set but {PG_URL_ENV} is not: start a server with `scripts/pg-testenv up` and export the URL it prints"
                );
            }
            skip_line(test);
            return None;
        };
        let pg = PgDatabase::create(&server).await;
        let data_dir = tempfile::tempdir().unwrap();
        let kek = Kek::generate();
        let store = Store::open(StoreConfig {
            database_url: Some(pg.url.clone()),
            data_dir: data_dir.path().to_path_buf(),
            key: kek.clone(),
        })
        .await
        .expect("open PostgreSQL store");
        Some(TestEnv {
            store,
            kek,
            backend: Backend::Postgres,
            database_url: Some(pg.url.clone()),
            _pg: Some(pg),
            data_dir,
        })
    }

    pub fn config(&self, key: Kek) -> StoreConfig {
        StoreConfig {
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.path().to_path_buf(),
            key,
        }
    }

    /// Another store handle on the same database, with the given key.
    pub async fn reopen(&self, key: Kek) -> tether_store::Result<Store> {
        Store::open(self.config(key)).await
    }

    /// A raw connection pool on the same database, for tampering and inspection.
    pub async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        let url = match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.path().join(SQLITE_FILE_NAME).display()
            ),
        };
        sqlx::pool::PoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap()
    }
}

fn skip_line(test: &str) {
    static EXPLAIN: Once = Once::new();
    // Straight to the process's stderr: the test harness captures `eprintln!`
    // of passing tests, and a skip must be visible.
    let mut err = std::io::stderr();
    EXPLAIN.call_once(|| {
        let _ = writeln!(
            err,
            "NOTE: the PostgreSQL variants of the store tests are SKIPPED because {PG_URL_ENV} is not set; \
             run `eval \"$(scripts/pg-testenv up)\"` first, and set {REQUIRE_PG_ENV}=1 to make a missing server fail the run"
        );
    });
    let _ = writeln!(err, "SKIPPED (no PostgreSQL): {test}");
}

/// A database of its own on the test server, dropped with this value.
pub struct PgDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(server: &str) -> PgDatabase {
        use rand::RngCore;
        let mut b = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut b);
        let name = format!("t_{}", hex::encode(b));
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(server)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL server in {PG_URL_ENV}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let mut url = url::Url::parse(server).unwrap();
        url.set_path(&format!("/{name}"));
        PgDatabase {
            server: server.to_string(),
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on another
        // future; a thread with its own runtime can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&server).await {
                    // FORCE: the store's pool may still hold connections.
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

// ---------------------------------------------------------------- fixtures

pub fn project() -> Scope {
    Scope::Project {
        org: "o".into(),
        project: "p".into(),
    }
}

pub fn org() -> Scope {
    Scope::Org("o".into())
}

/// Registers delegate `name` at `scope` with a token of its own; its id.
pub async fn register_delegate(store: &Store, scope: &Scope, name: &str) -> String {
    let (token, _) = store.create_delegate_token(name, scope).await.unwrap();
    let reg = tether_domain::delegate_protocol::Registration {
        protocol: 1,
        name: name.into(),
        tags: vec![],
        version: "0".into(),
        hostname: "h".into(),
        in_cluster: false,
        capacity: 1,
    };
    store
        .register_delegate(&token, &reg, "m", "c")
        .await
        .unwrap()
        .id
}

/// Creates org `o` and project `o/p`.
pub async fn setup_scopes(store: &Store) {
    store.create_org("o", "Org O", None).await.unwrap();
    store
        .create_project("o", "p", "Project P", Some("the test project"))
        .await
        .unwrap();
}

pub async fn secret(store: &Store, scope: &Scope, identifier: &str, value: &str) {
    secret_usable_from(store, scope, identifier, value, &[]).await
}

/// A secret whose connectors may also be in the `grants` scopes (scope keys).
pub async fn secret_usable_from(
    store: &Store,
    scope: &Scope,
    identifier: &str,
    value: &str,
    grants: &[&str],
) {
    store
        .create_secret(
            scope,
            SecretInput {
                usable_from: grants.iter().map(|g| g.to_string()).collect(),
                allowed_hosts: Vec::new(),
                identifier: Some(identifier.into()),
                name: identifier.into(),
                description: None,
                tags: Default::default(),
                value: SecretValue::new(value),
            },
        )
        .await
        .unwrap();
}

/// The `orgIdentifier`/`projectIdentifier` pair of a scope, for documents.
fn scope_fields(scope: &Scope) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(o) = scope.org() {
        m.insert("orgIdentifier".into(), json!(o));
    }
    if let Some(p) = scope.project() {
        m.insert("projectIdentifier".into(), json!(p));
    }
    serde_json::Value::Object(m)
}

/// A connector document built from JSON, as an API client would send it.
pub fn connector(
    scope: &Scope,
    name: &str,
    identifier: Option<&str>,
    credential: serde_json::Value,
) -> Connector {
    let mut doc = json!({
        "name": name,
        "type": "K8sCluster",
        "tags": {"team": "payments"},
        "description": "a test connector",
        "spec": {
            "delegateSelectors": ["eu"],
            "credential": credential,
        }
    });
    if let Some(id) = identifier {
        doc["identifier"] = json!(id);
    }
    for (k, v) in scope_fields(scope).as_object().unwrap() {
        doc[k] = v.clone();
    }
    serde_json::from_value(doc).unwrap()
}

pub fn manual(auth_type: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "type": "ManualConfig",
        "spec": {
            "masterUrl": "https://10.0.0.1:6443",
            "auth": {"type": auth_type, "spec": spec}
        }
    })
}

/// A ServiceAccount connector using secret `token` (and `ca` when given).
pub fn sa_connector(scope: &Scope, name: &str, id: Option<&str>, token: &str) -> Connector {
    connector(
        scope,
        name,
        id,
        manual("ServiceAccount", json!({"serviceAccountTokenRef": token})),
    )
}
