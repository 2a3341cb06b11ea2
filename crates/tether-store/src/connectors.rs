//! Connectors: the `connector:` document as JSON, plus the columns lists filter
//! and sort on, plus one `connector_secret_refs` row per secret reference, all
//! written in one transaction.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tether_domain::connector::ConnectivityState;
use tether_domain::secret_access::check_use;
use tether_domain::{
    derive_identifier, ConnectivityStatus, Connector, Scope, SecretAccess, SecretRef,
    ValidationErrors,
};

use crate::db::{like_contains, now_ms, Filter};
use crate::error::{Result, StoreError};
use crate::paging::{effective_limit, offset, Page};
use crate::scopes::{ensure_scope_exists, scope_phrase, taken_identifiers};
use crate::secrets::secret_row;
use crate::Store;

/// A stored connector with what the store knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRecord {
    /// The document as created or last updated, identifier filled in.
    pub connector: Connector,
    pub created_at: i64,
    pub last_modified_at: i64,
    /// The last connection test (UNKNOWN before the first one).
    pub status: ConnectivityStatus,
}

impl ConnectorRecord {
    /// The identifier (always present on a stored connector).
    pub fn identifier(&self) -> &str {
        self.connector.identifier.as_deref().unwrap_or_default()
    }

    pub fn scope(&self) -> Scope {
        self.connector.scope().unwrap_or(Scope::Account)
    }
}

/// What [`Store::upsert_connector`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    pub record: ConnectorRecord,
    /// True when the connector did not exist before.
    pub created: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectorSort {
    /// Case-insensitive by name, then identifier.
    #[default]
    Name,
    Created,
    /// Last modification of the document (not of the connectivity status).
    Updated,
}

/// Paging, search and filters for [`Store::list_connectors`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectorQuery {
    /// Zero-based page index.
    pub page: u32,
    /// Default 30, at most 1000 (clamped), at least 1.
    pub limit: Option<u32>,
    /// Case-insensitive substring of the name or the identifier.
    pub search: Option<String>,
    /// `ManualConfig` or `InheritFromDelegate`.
    pub credential_type: Option<String>,
    /// `ServiceAccount`, `UsernamePassword`, `ClientKeyCert` or `OpenIdConnect`.
    pub auth_type: Option<String>,
    pub status: Option<ConnectivityState>,
    pub sort: ConnectorSort,
    pub desc: bool,
}

const COLUMNS: &str =
    "id, scope_key, identifier, body, connectivity, last_connected_at, created_at, updated_at";

fn describe(scope: &Scope, identifier: &str) -> String {
    format!("connector '{identifier}' in {}", scope_phrase(scope))
}

fn record_from_row(r: &AnyRow) -> Result<ConnectorRecord> {
    let identifier: String = r.try_get("identifier")?;
    let scope_key: String = r.try_get("scope_key")?;
    let body: String = r.try_get("body")?;
    let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt {
        message: format!(
            "the stored {what} of connector '{identifier}' ({scope_key}) is unreadable: {e}; \
             restore it from a backup or re-apply the connector"
        ),
    };
    let connector: Connector = serde_json::from_str(&body).map_err(|e| corrupt("document", e))?;
    let connectivity: String = r.try_get("connectivity")?;
    let mut status: ConnectivityStatus =
        serde_json::from_str(&connectivity).map_err(|e| corrupt("connectivity status", e))?;
    status.last_connected_at = r.try_get("last_connected_at")?;
    Ok(ConnectorRecord {
        connector,
        created_at: r.try_get("created_at")?,
        last_modified_at: r.try_get("updated_at")?,
        status,
    })
}

/// The connector's scope, validated document and all: the domain rules first,
/// then the scope it names.
fn checked_scope(connector: &Connector) -> Result<Scope> {
    connector.validate()?;
    // validate() has already refused a project without an org.
    connector
        .scope()
        .map_err(|e| StoreError::validation("projectIdentifier", e))
}

/// A secret reference of a connector and the secret it resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorSecret {
    /// The document path of the reference, e.g. `spec.credential.spec.auth.spec.passwordRef`.
    pub field: &'static str,
    /// As written: `x`, `org.x` or `account.x`.
    pub reference: String,
    /// The secret's own identifier.
    pub identifier: String,
    /// Its scope, use grants and host binding.
    pub access: SecretAccess,
    secret_id: i64,
}

/// Resolves every secret reference of `connector` (at `scope`) to a secret row
/// and checks that the connector may use each: missing ones are a Validation
/// error, each on its own field; references without a use grant for the
/// connector's scope, or URLs a host-bound secret may not go to, are
/// [`StoreError::SecretUseDenied`], each on the field at fault.
async fn resolve_refs(
    conn: &mut AnyConnection,
    scope: &Scope,
    connector: &Connector,
) -> Result<Vec<ConnectorSecret>> {
    let mut found = Vec::new();
    let mut errs = ValidationErrors::default();
    let mut denied = ValidationErrors::default();
    for fr in connector.secret_refs() {
        // validate() has checked syntax and level; a failure here would be a bug
        // in that check, reported on the field all the same.
        let target = match SecretRef::parse(fr.reference)
            .and_then(|r| r.resolve_scope(scope).map(|s| (s, r.identifier)))
        {
            Ok(t) => t,
            Err(e) => {
                errs.push(fr.field, e);
                continue;
            }
        };
        match secret_row(conn, &target.0, &target.1).await? {
            Some((secret_id, access)) => {
                for d in check_use(scope, connector, fr.field, fr.reference, &target.1, &access) {
                    if !denied
                        .0
                        .iter()
                        .any(|e| e.field == d.field && e.message == d.message)
                    {
                        denied.push(d.field, d.message);
                    }
                }
                found.push(ConnectorSecret {
                    field: fr.field,
                    reference: fr.reference.to_string(),
                    identifier: target.1,
                    access,
                    secret_id,
                })
            }
            None => errs.push(
                fr.field,
                format!(
                    "secret '{}' not found in {}; create it there first or correct the reference",
                    fr.reference,
                    scope_phrase(&target.0)
                ),
            ),
        }
    }
    errs.into_result()?;
    denied.into_result().map_err(StoreError::SecretUseDenied)?;
    Ok(found)
}

async fn insert_refs(
    conn: &mut AnyConnection,
    connector_id: i64,
    refs: &[ConnectorSecret],
) -> Result<()> {
    for ConnectorSecret {
        field,
        reference,
        secret_id,
        ..
    } in refs
    {
        let res = sqlx::query(
            "INSERT INTO connector_secret_refs (connector_id, field, reference, secret_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(connector_id)
        .bind(*field)
        .bind(reference)
        .bind(*secret_id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from);
        match res {
            // The secret was deleted after we resolved it (PostgreSQL, where
            // writers are not serialised).
            Err(e) if e.is_foreign_key_violation() => {
                return Err(StoreError::validation(
                    field,
                    format!("secret '{reference}' was deleted while this connector was being saved; create it again or correct the reference"),
                ))
            }
            r => r?,
        };
    }
    Ok(())
}

fn to_json(connector: &Connector) -> String {
    serde_json::to_string(connector).expect("a connector always serialises")
}

fn status_json(status: &ConnectivityStatus) -> String {
    // lastConnectedAt lives in its own column so set_connectivity can keep the
    // old value in a single UPDATE; it is merged back when reading.
    let mut s = status.clone();
    s.last_connected_at = None;
    serde_json::to_string(&s).expect("a status always serialises")
}

/// Inserts a validated connector inside `conn`'s transaction. The identifier
/// must be set.
async fn insert(
    conn: &mut AnyConnection,
    scope: &Scope,
    connector: &Connector,
) -> Result<ConnectorRecord> {
    let identifier = connector
        .identifier
        .as_deref()
        .expect("identifier set by the caller");
    ensure_scope_exists(conn, scope).await?;
    let refs = resolve_refs(conn, scope, connector).await?;
    let now = now_ms();
    let status = ConnectivityStatus::default();
    let res = sqlx::query(
        "INSERT INTO connectors (scope_key, org_identifier, project_identifier, identifier, name, name_key, credential_type, auth_type, body, status, connectivity, last_connected_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, $12) RETURNING id",
    )
    .bind(scope.key())
    .bind(scope.org())
    .bind(scope.project())
    .bind(identifier)
    .bind(&connector.name)
    .bind(connector.name.to_lowercase())
    .bind(connector.credential_type())
    .bind(connector.auth_type())
    .bind(to_json(connector))
    .bind(status.status.as_str())
    .bind(status_json(&status))
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from);
    let row = match res {
        Err(e) if e.is_unique_violation() => {
            return Err(StoreError::conflict(format!(
                "{} already exists; choose another identifier, or update it instead",
                describe(scope, identifier)
            )))
        }
        // Only possible when the org/project was deleted after our check, by a
        // transaction that committed in between (PostgreSQL).
        Err(e) if e.is_foreign_key_violation() => {
            return Err(StoreError::not_found(scope_phrase(scope)))
        }
        r => r?,
    };
    insert_refs(conn, row.try_get("id")?, &refs).await?;
    Ok(ConnectorRecord {
        connector: connector.clone(),
        created_at: now,
        last_modified_at: now,
        status,
    })
}

/// Replaces the document of an existing connector inside `conn`'s transaction.
async fn replace(
    conn: &mut AnyConnection,
    scope: &Scope,
    connector: &Connector,
) -> Result<ConnectorRecord> {
    let identifier = connector
        .identifier
        .as_deref()
        .expect("identifier set by the caller");
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM connectors WHERE scope_key = $1 AND identifier = $2"
    ))
    .bind(scope.key())
    .bind(identifier)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
    let id: i64 = row.try_get("id")?;
    let old = record_from_row(&row)?;
    let refs = resolve_refs(conn, scope, connector).await?;
    let now = now_ms();
    sqlx::query(
        "UPDATE connectors SET name = $1, name_key = $2, credential_type = $3, auth_type = $4, body = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&connector.name)
    .bind(connector.name.to_lowercase())
    .bind(connector.credential_type())
    .bind(connector.auth_type())
    .bind(to_json(connector))
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM connector_secret_refs WHERE connector_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    insert_refs(conn, id, &refs).await?;
    Ok(ConnectorRecord {
        connector: connector.clone(),
        created_at: old.created_at,
        last_modified_at: now,
        status: old.status,
    })
}

/// Serialises creates in one scope on PostgreSQL, where two writers could both
/// find an identifier free (derived or given to upsert) and one would then
/// fail on the unique index. SQLite writers are serialised already.
async fn lock_scope(store: &Store, conn: &mut AnyConnection, scope: &Scope) -> Result<()> {
    store
        .db()
        .pg_lock_named(conn, &format!("connectors/{}", scope.key()))
        .await
}

impl Store {
    /// Validates and stores a new connector, deriving the identifier from the
    /// name when it is absent. Every secret reference must resolve to an
    /// existing secret (Validation error on the field otherwise).
    pub async fn create_connector(&self, connector: Connector) -> Result<ConnectorRecord> {
        let scope = checked_scope(&connector)?;
        let mut tx = self.db().begin_write().await?;
        lock_scope(self, tx.conn(), &scope).await?;
        let mut c = connector;
        if c.identifier.is_none() {
            let base = derive_identifier(&c.name, "connector", |_| false);
            let taken = taken_identifiers(tx.conn(), "connectors", &scope.key(), &base).await?;
            c.identifier = Some(derive_identifier(&c.name, "connector", |x| {
                taken.iter().any(|t| t == x)
            }));
        }
        let rec = insert(tx.conn(), &scope, &c).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Creates the connector, or replaces the one with the same identifier in
    /// the same scope (as `apply` does). Without an identifier it always creates.
    pub async fn upsert_connector(&self, connector: Connector) -> Result<Upserted> {
        let scope = checked_scope(&connector)?;
        let Some(identifier) = connector.identifier.clone() else {
            let record = self.create_connector(connector).await?;
            return Ok(Upserted {
                record,
                created: true,
            });
        };
        let mut tx = self.db().begin_write().await?;
        lock_scope(self, tx.conn(), &scope).await?;
        let exists =
            sqlx::query("SELECT 1 AS one FROM connectors WHERE scope_key = $1 AND identifier = $2")
                .bind(scope.key())
                .bind(&identifier)
                .fetch_optional(tx.conn())
                .await?
                .is_some();
        let record = if exists {
            replace(tx.conn(), &scope, &connector).await?
        } else {
            insert(tx.conn(), &scope, &connector).await?
        };
        tx.commit().await?;
        Ok(Upserted {
            record,
            created: !exists,
        })
    }

    /// The secrets a connector of `scope` references, checked as on save: a
    /// Validation error when one does not resolve, [`StoreError::SecretUseDenied`]
    /// when the connector may not use one (no grant, or a URL outside its host
    /// binding). Run before a test and at hand-over, since grants and hosts can
    /// change after the connector was saved.
    pub async fn connector_secrets(
        &self,
        scope: &Scope,
        connector: &Connector,
    ) -> Result<Vec<ConnectorSecret>> {
        let mut conn = self.db().pool.acquire().await?;
        resolve_refs(&mut conn, scope, connector).await
    }

    pub async fn get_connector(&self, scope: &Scope, identifier: &str) -> Result<ConnectorRecord> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM connectors WHERE scope_key = $1 AND identifier = $2"
        ))
        .bind(scope.key())
        .bind(identifier)
        .fetch_optional(&self.db().pool)
        .await?
        .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
        record_from_row(&row)
    }

    /// The connectors defined at exactly `scope`.
    pub async fn list_connectors(
        &self,
        scope: &Scope,
        query: ConnectorQuery,
    ) -> Result<Page<ConnectorRecord>> {
        let limit = effective_limit(query.limit);
        let mut f = Filter::default();
        f.push("scope_key = {}", scope.key());
        if let Some(s) = query.search.as_deref().filter(|s| !s.is_empty()) {
            f.push(
                "(name_key LIKE {} ESCAPE '\\' OR LOWER(identifier) LIKE {} ESCAPE '\\')",
                like_contains(s),
            );
        }
        // Type names are matched without case: `serviceaccount` in a query
        // string means ServiceAccount.
        if let Some(c) = &query.credential_type {
            f.push("LOWER(credential_type) = {}", c.to_lowercase());
        }
        if let Some(a) = &query.auth_type {
            f.push("LOWER(auth_type) = {}", a.to_lowercase());
        }
        if let Some(s) = query.status {
            f.push("status = {}", s.as_str().into());
        }
        let dir = if query.desc { "DESC" } else { "ASC" };
        // Each order ends with the row id so pages never overlap or skip rows
        // when sort keys tie.
        let order = match query.sort {
            ConnectorSort::Name => format!("name_key {dir}, identifier {dir}, id {dir}"),
            ConnectorSort::Created => format!("created_at {dir}, id {dir}"),
            ConnectorSort::Updated => format!("updated_at {dir}, id {dir}"),
        };
        let mut tx = self.db().begin_read().await?;
        let total: i64 = f
            .bind(sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM connectors{}",
                f.where_sql()
            )))
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let n = f.next_placeholder();
        let sql = format!(
            "SELECT {COLUMNS} FROM connectors{} ORDER BY {order} LIMIT ${} OFFSET ${}",
            f.where_sql(),
            n,
            n + 1
        );
        let rows = f
            .bind(sqlx::query(&sql))
            .bind(i64::from(limit))
            .bind(offset(query.page, limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Page {
            items: rows.iter().map(record_from_row).collect::<Result<_>>()?,
            total: total as u64,
            page: query.page,
            limit,
        })
    }

    /// Replaces the document of connector `identifier` at `scope`. The identifier
    /// and the scope cannot change; an absent identifier means "this one".
    /// The connectivity status is kept.
    pub async fn update_connector(
        &self,
        scope: &Scope,
        identifier: &str,
        mut connector: Connector,
    ) -> Result<ConnectorRecord> {
        match connector.identifier.as_deref() {
            None => connector.identifier = Some(identifier.to_string()),
            Some(given) if given != identifier => {
                return Err(StoreError::validation(
                    "identifier",
                    format!(
                        "the identifier of a connector cannot change (this is '{identifier}', the document says '{given}'); to rename, change the name, or create a new connector and delete this one"
                    ),
                ))
            }
            Some(_) => {}
        }
        let target = checked_scope(&connector)?;
        if &target != scope {
            let field = if target.org() != scope.org() {
                "orgIdentifier"
            } else {
                "projectIdentifier"
            };
            return Err(StoreError::validation(
                field,
                format!(
                    "this connector lives in {}, the document names {}; a connector cannot move between scopes: create it there and delete this one",
                    scope_phrase(scope),
                    scope_phrase(&target)
                ),
            ));
        }
        let mut tx = self.db().begin_write().await?;
        let rec = replace(tx.conn(), scope, &connector).await?;
        tx.commit().await?;
        Ok(rec)
    }

    pub async fn delete_connector(&self, scope: &Scope, identifier: &str) -> Result<()> {
        let mut tx = self.db().begin_write().await?;
        let row = sqlx::query("SELECT id FROM connectors WHERE scope_key = $1 AND identifier = $2")
            .bind(scope.key())
            .bind(identifier)
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
        let id: i64 = row.try_get("id")?;
        // The foreign keys cascade too; deleting explicitly does not depend on
        // SQLite's foreign_keys pragma being on.
        sqlx::query("DELETE FROM connector_secret_refs WHERE connector_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM connection_test_results WHERE connector_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM connectors WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Records the result of a connection test. On SUCCESS `lastConnectedAt`
    /// becomes `testedAt` (now, when the caller gave none); otherwise the
    /// previous `lastConnectedAt` stays. Returns the status as stored.
    pub async fn set_connectivity(
        &self,
        scope: &Scope,
        identifier: &str,
        status: ConnectivityStatus,
    ) -> Result<ConnectivityStatus> {
        let mut tx = self.db().begin_write().await?;
        let (_, status) = write_connectivity(tx.conn(), scope, identifier, status).await?;
        tx.commit().await?;
        Ok(status)
    }
}

/// [`Store::set_connectivity`] inside `conn`'s transaction; also returns the
/// connector's row id. On PostgreSQL the UPDATE locks the connector's row until
/// the transaction ends.
pub(crate) async fn write_connectivity(
    conn: &mut AnyConnection,
    scope: &Scope,
    identifier: &str,
    mut status: ConnectivityStatus,
) -> Result<(i64, ConnectivityStatus)> {
    let success = status.status == ConnectivityState::Success;
    if success && status.tested_at.is_none() {
        status.tested_at = Some(now_ms());
    }
    // One statement, so concurrent results cannot lose lastConnectedAt.
    let row = sqlx::query(
        "UPDATE connectors SET status = $1, connectivity = $2,
            last_connected_at = CASE WHEN $3 = 1 THEN $4 ELSE last_connected_at END
         WHERE scope_key = $5 AND identifier = $6 RETURNING id, last_connected_at",
    )
    .bind(status.status.as_str())
    .bind(status_json(&status))
    .bind(i64::from(success))
    .bind(status.tested_at)
    .bind(scope.key())
    .bind(identifier)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
    status.last_connected_at = row.try_get("last_connected_at")?;
    Ok((row.try_get("id")?, status))
}
