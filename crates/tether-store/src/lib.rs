//! tether's persistence layer: orgs and projects, Kubernetes cluster connectors,
//! secrets encrypted at rest, and API tokens, in an embedded SQLite file (the
//! default) or in PostgreSQL.
//!
//! Every write runs in one transaction, so a process killed at any point leaves
//! either the whole change or none of it. Secret values only leave the store as
//! [`SecretValue`], whose `Debug` output is `<redacted>`.
#![forbid(unsafe_code)]

mod connectors;
mod crypto;
mod db;
mod error;
mod orgs;
mod paging;
mod secrets;
mod tokens;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::RwLock;

pub use connectors::{ConnectorQuery, ConnectorRecord, ConnectorSort, Upserted};
pub use crypto::{Kek, KekOrigin, LoadedKek, SecretValue, KEK_ENV, KEK_FILE_NAME};
pub use db::{Backend, SQLITE_FILE_NAME};
pub use error::{Result, StoreError};
pub use orgs::{OrgRecord, ProjectRecord};
pub use paging::{ListQuery, Page, DEFAULT_LIMIT, MAX_LIMIT};
pub use secrets::{SecretInput, SecretMeta, SecretUpdate, MAX_SECRET_BYTES};
pub use tokens::{Role, TokenRecord, ADMIN_TOKEN_FILE_NAME, TOKEN_PREFIX};

use db::Db;

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://...` for PostgreSQL; `None` for SQLite in `data_dir/tether.db`.
    pub database_url: Option<String>,
    /// Holds the SQLite database, the generated key and the first admin token.
    pub data_dir: PathBuf,
    /// The key-encryption key secrets are sealed with.
    pub key: Kek,
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

    pub(crate) fn kek(&self) -> &RwLock<Kek> {
        &self.inner.kek
    }
}
