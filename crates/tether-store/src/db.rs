//! Connection pool, transactions and schema migrations.
//!
//! Both backends go through sqlx's `Any` driver so that every query is written
//! once. That works because all SQL here uses `$N` placeholders (PostgreSQL's
//! native form, which the SQLite driver also accepts), sticks to types both
//! support (TEXT, BIGINT, BLOB/BYTEA) and to syntax both speak (`RETURNING`,
//! `LIKE ... ESCAPE`). Only the DDL differs, so each backend has its own
//! migration files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor, Row, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::{Result, StoreError};

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "tether.db";

/// Per-connection settings. WAL lets readers run beside the writer;
/// `synchronous=FULL` makes a commit durable before it returns, so a connector
/// the API reported as created survives a power cut, not only a crash (NORMAL
/// would only protect against the latter; tether writes rarely enough that the
/// extra fsync does not matter). Foreign keys are off by default in SQLite.
/// The busy timeout is how long a writer waits for another process's write
/// lock before failing with "database is locked".
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";

pub(crate) struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has a single writer per file. Queueing writers on an async mutex
    /// inside the process is cheaper and fairer than letting them spin in
    /// SQLite's busy handler; the busy timeout only covers other processes.
    write_lock: Option<Arc<Mutex<()>>>,
}

/// A transaction that may write. On SQLite it holds the write lock from the
/// start (`BEGIN IMMEDIATE`): a transaction that reads and then writes would
/// otherwise fail with SQLITE_BUSY when another writer committed in between.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Where the database is, described without credentials, for messages.
pub(crate) fn describe_target(database_url: Option<&str>, data_dir: &Path) -> String {
    match database_url {
        None => format!(
            "SQLite database {}",
            data_dir.join(SQLITE_FILE_NAME).display()
        ),
        Some(url) => match url::Url::parse(url) {
            Ok(u) if u.scheme().starts_with("postgres") => format!(
                "PostgreSQL server {}:{} (database '{}')",
                u.host_str().unwrap_or("localhost"),
                u.port().unwrap_or(5432),
                u.path().trim_start_matches('/')
            ),
            Ok(u) if u.scheme() == "sqlite" => "SQLite database given by --database-url".into(),
            _ => "the database given by --database-url".into(),
        },
    }
}

impl Db {
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = match database_url {
            None => {
                crate::crypto::ensure_dir(data_dir)?;
                let opts = SqliteConnectOptions::new()
                    .filename(data_dir.join(SQLITE_FILE_NAME))
                    .create_if_missing(true);
                (Backend::Sqlite, opts.to_url_lossy().to_string())
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (Backend::Postgres, url.to_string())
            }
            Some(url) if url.starts_with("sqlite:") => (Backend::Sqlite, url.to_string()),
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or("");
                return Err(StoreError::Config {
                    message: format!(
                        "unsupported database URL scheme '{scheme}'; use postgres://user:password@host:port/database, or leave the database URL unset to use SQLite in {}",
                        data_dir.join(SQLITE_FILE_NAME).display()
                    ),
                });
            }
        };
        let target = describe_target(database_url, data_dir);
        // sqlx logs statements at debug level and slow ones as warnings by default.
        // That is safe: secret values and ciphertexts are bound parameters,
        // which it never logs.
        let connect: AnyConnectOptions = url.parse().map_err(|e| StoreError::Config {
            message: format!("cannot parse the database URL for {target}: {e}"),
        })?;

        let options: PoolOptions<Any> = match backend {
            // A handful of readers is plenty for an embedded database; writes
            // are serialised anyway.
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
            }
            Backend::Postgres => AnyPoolOptions::new().max_connections(10),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Config {
                message: format!(
                    "cannot open the {target}: {e}; check that it is reachable and that the URL's user, password and database are right"
                ),
            })?;
        let write_lock = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        let db = Db {
            pool,
            backend,
            write_lock,
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Starts a transaction that may write; see [`WriteTx`].
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _guard: guard })
    }

    /// A read-only transaction, so that a count and a page come from one
    /// snapshot. PostgreSQL's default isolation would give each statement its
    /// own, hence REPEATABLE READ there; a SQLite read transaction already sees
    /// one snapshot.
    pub async fn begin_read(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    /// Takes a transaction-scoped advisory lock on PostgreSQL; a no-op on SQLite,
    /// where [`Db::begin_write`] already excludes every other writer.
    pub async fn pg_lock(&self, conn: &mut AnyConnection, key: i64) -> Result<()> {
        if self.backend == Backend::Postgres {
            // In FROM so the result column is an integer: the `Any` driver cannot
            // decode PostgreSQL's `void`.
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(key)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// [`Db::pg_lock`] on a key derived from a name, e.g. `connectors/<scope>`.
    pub async fn pg_lock_named(&self, conn: &mut AnyConnection, name: &str) -> Result<()> {
        let digest = Sha256::digest(name.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[..8]);
        self.pg_lock(conn, i64::from_be_bytes(b)).await
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Two servers starting against one PostgreSQL database must not both
        // create the schema.
        self.pg_lock(tx.conn(), LOCK_MIGRATIONS).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS tether_schema_migrations (
                version BIGINT PRIMARY KEY,
                description TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .execute(tx.conn())
        .await?;
        let applied = sqlx::query(
            "SELECT version, description, checksum FROM tether_schema_migrations ORDER BY version",
        )
        .fetch_all(tx.conn())
        .await?;
        let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
        for row in &applied {
            let version: i64 = row.try_get("version")?;
            let checksum: String = row.try_get("checksum")?;
            let Some(m) = MIGRATIONS.iter().find(|m| m.version == version) else {
                return Err(StoreError::Config {
                    message: format!(
                        "the database has schema version {version}, newer than this tether build knows ({known}); run a newer tether or restore a matching backup"
                    ),
                });
            };
            if checksum != m.checksum(self.backend) {
                return Err(StoreError::Config {
                    message: format!(
                        "schema migration {version} ({}) was changed after it had been applied to this database; restore the original migration file",
                        m.description
                    ),
                });
            }
        }
        let applied: Vec<i64> = applied
            .iter()
            .map(|r| r.try_get("version"))
            .collect::<Result<_, _>>()?;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            tracing::info!(
                version = m.version,
                description = m.description,
                "applying schema migration"
            );
            sqlx::raw_sql(m.sql(self.backend))
                .execute(tx.conn())
                .await?;
            sqlx::query(
                "INSERT INTO tether_schema_migrations (version, description, checksum, applied_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(m.version)
            .bind(m.description)
            .bind(m.checksum(self.backend))
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }
}

/// Advisory lock keys (PostgreSQL), arbitrary but fixed.
pub(crate) const LOCK_MIGRATIONS: i64 = 0x7465_7468_0001;
pub(crate) const LOCK_BOOTSTRAP_TOKEN: i64 = 0x7465_7468_0002;

struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }

    fn checksum(&self, backend: Backend) -> String {
        hex::encode(Sha256::digest(self.sql(backend).as_bytes()))
    }
}

/// Append only: a migration that has shipped is never edited (the checksum
/// check refuses a database whose applied migrations differ from these).
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "delegates and tasks",
        sqlite: include_str!("../migrations/sqlite/0002_delegates.sql"),
        postgres: include_str!("../migrations/postgres/0002_delegates.sql"),
    },
    Migration {
        version: 3,
        description: "connection test history",
        sqlite: include_str!("../migrations/sqlite/0003_connection_test_history.sql"),
        postgres: include_str!("../migrations/postgres/0003_connection_test_history.sql"),
    },
    Migration {
        version: 4,
        description: "secret use grants and host binding",
        sqlite: include_str!("../migrations/sqlite/0004_secret_access.sql"),
        postgres: include_str!("../migrations/postgres/0004_secret_access.sql"),
    },
    Migration {
        version: 6,
        description: "kubernetes api through tether: token grants, audit",
        sqlite: include_str!("../migrations/sqlite/0006_kube_proxy.sql"),
        postgres: include_str!("../migrations/postgres/0006_kube_proxy.sql"),
    },
    Migration {
        version: 9,
        description: "task events and deploy releases",
        sqlite: include_str!("../migrations/sqlite/0009_task_events.sql"),
        postgres: include_str!("../migrations/postgres/0009_task_events.sql"),
    },
    Migration {
        version: 10,
        description: "task connector column and follow-up of a lost task",
        sqlite: include_str!("../migrations/sqlite/0010_task_connector.sql"),
        postgres: include_str!("../migrations/postgres/0010_task_connector.sql"),
    },
];

/// Milliseconds since the Unix epoch, the unit of every stored timestamp.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Escapes `\`, `%` and `_` for `LIKE ... ESCAPE '\'` and wraps the text in `%`,
/// lower-cased, for a case-insensitive substring search on a `*_key` column.
pub(crate) fn like_contains(search: &str) -> String {
    let mut p = String::with_capacity(search.len() + 2);
    p.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Builds a `WHERE` clause with numbered placeholders; the same arguments are
/// bound to the count query and to the page query. Every filter value is text.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    args: Vec<String>,
}

impl Filter {
    /// Adds a clause in which `{}` stands for the next placeholder (once or more).
    pub fn push(&mut self, clause: &str, arg: String) {
        self.args.push(arg);
        let n = self.args.len();
        self.clauses.push(clause.replace("{}", &format!("${n}")));
    }

    /// The next free placeholder number, for `LIMIT`/`OFFSET`.
    pub fn next_placeholder(&self) -> usize {
        self.args.len() + 1
    }

    pub fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn bind<'q>(
        &self,
        mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        for a in &self.args {
            q = q.bind(a.clone());
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_contains("Prod_1%"), "%prod\\_1\\%%");
    }

    #[test]
    fn target_description_hides_the_password() {
        let d = describe_target(
            Some("postgres://u:s3cret@db.example:6543/tether"),
            Path::new("/x"),
        );
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("db.example:6543"), "{d}");
    }
}
