//! tether's persistence layer: orgs and projects, Kubernetes cluster connectors,
//! secrets encrypted at rest, and API tokens, in an embedded SQLite file (the
//! default) or in PostgreSQL.
//!
//! Every write runs in one transaction, so a process killed at any point leaves
//! either the whole change or none of it. Secret values only leave the store as
//! [`SecretValue`], whose `Debug` output is `<redacted>`.
#![forbid(unsafe_code)]

mod audit;
mod connectors;
mod crypto;
mod db;
mod delegates;
mod error;
mod events;
mod orgs;
mod paging;
mod proxy_managers;
mod releases;
mod scopes;
mod secrets;
mod stats;
mod task_events;
mod tasks;
mod test_history;
mod tokens;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::RwLock;

pub use audit::{AuditEntry, AuditQuery};
pub use connectors::{ConnectorQuery, ConnectorRecord, ConnectorSecret, ConnectorSort, Upserted};
pub use crypto::{Kek, KekOrigin, LoadedKek, SecretValue, KEK_ENV, KEK_FILE_NAME};
pub use db::{Backend, SQLITE_FILE_NAME};
pub use delegates::{DelegateRecord, DelegateTokenRecord, Heartbeat, DELEGATE_TOKEN_PREFIX};
pub use error::{Result, StoreError};
pub use events::{EventListener, EVENT_CHANNEL};
pub use orgs::{OrgRecord, ProjectRecord};
pub use paging::{ListQuery, Page, DEFAULT_LIMIT, MAX_LIMIT};
pub use releases::ReleaseRecord;
pub use secrets::{SecretInput, SecretMeta, SecretUpdate, MAX_SECRET_BYTES};
pub use stats::ConnectorConnectivity;
pub use task_events::{EventCursor, TaskEventRecord};
pub use tasks::{Completion, FollowUp, NewTask, TaskAttempt, TaskRecord, TaskState};
pub use test_history::{
    NewTestResult, TestResultRecord, TestTrigger, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT,
};
pub use tokens::{Role, TokenGrant, TokenRecord, ADMIN_TOKEN_FILE_NAME, TOKEN_PREFIX};

use db::Db;

/// How to open the store.
#[derive(Clone)]
pub struct StoreConfig {
    /// `postgres://...` for PostgreSQL; `None` for SQLite in `data_dir/tether.db`.
    pub database_url: Option<String>,
    /// Holds the SQLite database, the generated key and the first admin token.
    pub data_dir: PathBuf,
    /// The key-encryption key secrets are sealed with.
    pub key: Kek,
}

impl fmt::Debug for StoreConfig {
    // By hand: the URL may carry a database password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field(
                "database",
                &db::describe_target(self.database_url.as_deref(), &self.data_dir),
            )
            .field("data_dir", &self.data_dir)
            .field("key", &self.key)
            .finish()
    }
}

/// A handle on the database. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// Secret writes and reads hold this shared; `rotate_kek` holds it
    /// exclusively while it re-encrypts, so nothing is sealed with a key that is
    /// being replaced.
    kek: RwLock<Kek>,
    /// The PostgreSQL URL, for the LISTEN connection; `None` on SQLite.
    database_url: Option<String>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.db.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects, creates or migrates the schema, and checks that `config.key` is
    /// the key the stored secrets were written with (a wrong key fails here, with
    /// [`StoreError::Crypto`], rather than at the first secret read).
    pub async fn open(config: StoreConfig) -> Result<Store> {
        let db = Db::open(config.database_url.as_deref(), &config.data_dir).await?;
        let store = Store {
            inner: Arc::new(Inner {
                db,
                kek: RwLock::new(config.key),
                database_url: config.database_url.clone(),
            }),
        };
        if let Err(e) = store.check_kek_on_open().await {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.inner.db.backend
    }

    /// One round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.inner.db.pool).await?;
        Ok(())
    }

    /// The id of the key-encryption key in use (a fingerprint, not the key).
    pub async fn key_id(&self) -> String {
        self.inner.kek.read().await.key_id().to_string()
    }

    /// Closes every connection; later calls fail. On SQLite this also folds the
    /// write-ahead log back into the database file.
    pub async fn close(&self) {
        self.inner.db.pool.close().await;
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn database_url(&self) -> Option<&str> {
        self.inner.database_url.as_deref()
    }

    pub(crate) fn kek(&self) -> &RwLock<Kek> {
        &self.inner.kek
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server keeps a `Store` in shared state and awaits its futures inside
    /// request handlers, so both must be `Send`. This fails to compile otherwise.
    #[allow(dead_code, clippy::let_underscore_future)]
    fn futures_are_send(s: Store, c: tether_domain::Connector, scope: tether_domain::Scope) {
        fn send<T: Send + 'static>(_: T) {}
        fn sync<T: Send + Sync + Clone + 'static>() {}
        sync::<Store>();
        send(async move {
            let _ = s.create_connector(c.clone()).await;
            let _ = s.upsert_connector(c.clone()).await;
            let _ = s.update_connector(&scope, "x", c).await;
            let _ = s.get_connector(&scope, "x").await;
            let _ = s.list_connectors(&scope, ConnectorQuery::default()).await;
            let _ = s.delete_connector(&scope, "x").await;
            let _ = s.set_connectivity(&scope, "x", Default::default()).await;
            let _ = s.read_secret_value(&scope, "x").await;
            let _ = s.list_secrets(&scope, ListQuery::default()).await;
            let _ = s.resolve_secret_ref(&scope, "x").await;
            let _ = s.rotate_kek(Kek::generate()).await;
            let _ = s.authenticate("x").await;
            let _ = s.ensure_admin_token(std::path::Path::new("x")).await;
            let _ = s.delete_org("x").await;
            let _ = s.ping().await;
        });
    }

    #[test]
    fn config_debug_hides_password_and_key() {
        let key = Kek::generate();
        let c = StoreConfig {
            database_url: Some("postgres://u:hunter2@db:5432/t".into()),
            data_dir: "/var/lib/tether".into(),
            key: key.clone(),
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains(key.export().expose()), "{dbg}");
        assert!(dbg.contains("db:5432"), "{dbg}");
    }
}
