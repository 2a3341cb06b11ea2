//! The audit log of the Kubernetes API used through tether: one row per
//! proxied request, or per exec/attach/port-forward session. It holds who,
//! where, what and how it ended; never a header, a body or a credential.

use sqlx::any::AnyRow;
use sqlx::Row;
use tether_domain::Scope;

use crate::error::{Result, StoreError};
use crate::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store; 0 on insert.
    pub id: i64,
    pub started_at: i64,
    pub ended_at: i64,
    pub token_id: String,
    /// The token's name.
    pub caller: String,
    /// Where the connector lives.
    pub scope: Scope,
    pub connector: String,
    pub delegate_id: Option<String>,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, ...
    pub verb: String,
    pub method: String,
    /// The request path without the query string.
    pub path: String,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub name: Option<String>,
    /// `exec`, `attach`, `portforward` for an upgraded session.
    pub session: Option<String>,
    /// The container an exec or attach names.
    pub container: Option<String>,
    /// The program an exec runs: the first word of its command, never its
    /// arguments (they can carry secrets).
    pub program: Option<String>,
    /// The ports of a port-forward, comma-separated.
    pub ports: Option<String>,
    /// HTTP status answered (101 for a session).
    pub status: u16,
    pub duration_ms: i64,
    /// Bytes from the client to the cluster, and back.
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// Why the stream ended early (delegate lost, token revoked), if it did.
    pub error: Option<String>,
}

/// Filters for [`Store::list_audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub connector: Option<String>,
    /// A token name.
    pub caller: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub since: Option<i64>,
    pub status: Option<u16>,
    pub limit: u32,
}

const COLUMNS: &str = "id, started_at, ended_at, token_id, caller, scope_key, connector, delegate_id, verb, method, path, namespace, resource, name, session, status, duration_ms, bytes_in, bytes_out, error, container, program, ports";

fn from_row(r: &AnyRow) -> Result<AuditEntry> {
    let key: String = r.try_get("scope_key")?;
    Ok(AuditEntry {
        id: r.try_get("id")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        token_id: r.try_get("token_id")?,
        caller: r.try_get("caller")?,
        scope: Scope::from_key(&key).ok_or_else(|| StoreError::Corrupt {
            message: format!("an audit entry has an unreadable scope '{key}'"),
        })?,
        connector: r.try_get("connector")?,
        delegate_id: r.try_get("delegate_id")?,
        verb: r.try_get("verb")?,
        method: r.try_get("method")?,
        path: r.try_get("path")?,
        namespace: r.try_get("namespace")?,
        resource: r.try_get("resource")?,
        name: r.try_get("name")?,
        session: r.try_get("session")?,
        status: r.try_get::<i64, _>("status")? as u16,
        duration_ms: r.try_get("duration_ms")?,
        bytes_in: r.try_get("bytes_in")?,
        bytes_out: r.try_get("bytes_out")?,
        error: r.try_get("error")?,
        container: r.try_get("container")?,
        program: r.try_get("program")?,
        ports: r.try_get("ports")?,
    })
}

impl Store {
    pub async fn record_audit(&self, e: &AuditEntry) -> Result<()> {
        let mut tx = self.db().begin_write().await?;
        sqlx::query(
            "INSERT INTO kube_audit (started_at, ended_at, token_id, caller, scope_key, connector, delegate_id, verb, method, path, namespace, resource, name, session, status, duration_ms, bytes_in, bytes_out, error, container, program, ports) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
        )
        .bind(e.started_at)
        .bind(e.ended_at)
        .bind(&e.token_id)
        .bind(&e.caller)
        .bind(e.scope.key())
        .bind(&e.connector)
        .bind(e.delegate_id.clone())
        .bind(&e.verb)
        .bind(&e.method)
        .bind(&e.path)
        .bind(e.namespace.clone())
        .bind(e.resource.clone())
        .bind(e.name.clone())
        .bind(e.session.clone())
        .bind(i64::from(e.status))
        .bind(e.duration_ms)
        .bind(e.bytes_in)
        .bind(e.bytes_out)
        .bind(e.error.clone())
        .bind(e.container.clone())
        .bind(e.program.clone())
        .bind(e.ports.clone())
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    /// Entries of connectors in exactly `scope`, newest first.
    pub async fn list_audit(&self, scope: &Scope, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut sql = format!("SELECT {COLUMNS} FROM kube_audit WHERE scope_key = $1");
        let mut n = 1;
        let mut next = |col: &str, op: &str| {
            n += 1;
            format!(" AND {col} {op} ${n}")
        };
        if q.connector.is_some() {
            sql.push_str(&next("connector", "="));
        }
        if q.caller.is_some() {
            sql.push_str(&next("caller", "="));
        }
        if q.since.is_some() {
            sql.push_str(&next("started_at", ">="));
        }
        if q.status.is_some() {
            sql.push_str(&next("status", "="));
        }
        sql.push_str(&format!(
            " ORDER BY started_at DESC, id DESC LIMIT {}",
            q.limit.clamp(1, 1000)
        ));
        let mut query = sqlx::query(&sql).bind(scope.key());
        if let Some(c) = &q.connector {
            query = query.bind(c.clone());
        }
        if let Some(c) = &q.caller {
            query = query.bind(c.clone());
        }
        if let Some(s) = q.since {
            query = query.bind(s);
        }
        if let Some(s) = q.status {
            query = query.bind(i64::from(s));
        }
        let rows = query.fetch_all(&self.db().pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes entries that started before `before`; returns how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64> {
        let mut tx = self.db().begin_write().await?;
        let n = sqlx::query("DELETE FROM kube_audit WHERE started_at < $1")
            .bind(before)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
