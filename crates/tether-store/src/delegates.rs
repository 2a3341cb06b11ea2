//! Delegates and their tokens.
//!
//! A delegate token (`tdt_...`, stored as its SHA-256 like API tokens) belongs to
//! a scope; a delegate registering with it serves that scope and the scopes
//! below. A delegate is one row per (scope, name): reconnecting, or restarting
//! under the same name, updates the row, and the newest connection wins.

use sqlx::any::AnyRow;
use sqlx::Row;
use tether_domain::delegate_protocol::Registration;
use tether_domain::{validate_name, Scope};

use crate::crypto::SecretValue;
use crate::db::now_ms;
use crate::error::{Result, StoreError};
use crate::scopes::ensure_scope_exists;
use crate::tokens::{hash_token, new_id, new_token_value};
use crate::Store;

/// Delegate tokens start with this, so they are never mistaken for API tokens.
pub const DELEGATE_TOKEN_PREFIX: &str = "tdt_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegateTokenRecord {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegateRecord {
    pub id: String,
    pub scope: Scope,
    pub name: String,
    pub token_id: String,
    pub tags: Vec<String>,
    pub version: String,
    pub hostname: String,
    pub in_cluster: bool,
    pub capacity: u32,
    pub draining: bool,
    /// The manager holding its live connection; `None` when disconnected.
    pub manager_id: Option<String>,
    pub connection_id: Option<String>,
    pub connected_at: Option<i64>,
    pub last_heartbeat: Option<i64>,
    pub created_at: i64,
    /// Tasks assigned to it and not finished.
    pub running_tasks: u32,
}

/// One heartbeat, as [`Store::record_heartbeats`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub delegate_id: String,
    pub connection_id: String,
    /// Task ids the delegate says it runs.
    pub running: Vec<String>,
    /// False when the manager knows it holds no task: skips the lease updates.
    pub holds_tasks: bool,
}

impl DelegateRecord {
    /// Connected means a manager holds its connection and it beat recently.
    pub fn connected(&self, now: i64, heartbeat_timeout_ms: i64) -> bool {
        self.manager_id.is_some()
            && self
                .last_heartbeat
                .is_some_and(|t| now - t <= heartbeat_timeout_ms)
    }
}

fn scope_of(r: &AnyRow, what: &str) -> Result<Scope> {
    let key: String = r.try_get("scope_key")?;
    Scope::from_key(&key).ok_or_else(|| StoreError::Corrupt {
        message: format!("{what} has an unreadable scope '{key}' in the database"),
    })
}

fn token_from_row(r: &AnyRow) -> Result<DelegateTokenRecord> {
    Ok(DelegateTokenRecord {
        scope: scope_of(r, "a delegate token")?,
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

const DELEGATE_COLUMNS: &str = "d.id, d.scope_key, d.name, d.token_id, d.tags, d.version, d.hostname, d.in_cluster, d.capacity, d.draining, d.manager_id, d.connection_id, d.connected_at, d.last_heartbeat, d.created_at, (SELECT COUNT(*) FROM tasks t WHERE t.delegate_id = d.id AND t.state = 'assigned') AS running";

fn delegate_from_row(r: &AnyRow) -> Result<DelegateRecord> {
    let tags: String = r.try_get("tags")?;
    Ok(DelegateRecord {
        scope: scope_of(r, "a delegate")?,
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        token_id: r.try_get("token_id")?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        version: r.try_get("version")?,
        hostname: r.try_get("hostname")?,
        in_cluster: r.try_get::<i64, _>("in_cluster")? != 0,
        capacity: r.try_get::<i64, _>("capacity")?.max(0) as u32,
        draining: r.try_get::<i64, _>("draining")? != 0,
        manager_id: r.try_get("manager_id")?,
        connection_id: r.try_get("connection_id")?,
        connected_at: r.try_get("connected_at")?,
        last_heartbeat: r.try_get("last_heartbeat")?,
        created_at: r.try_get("created_at")?,
        running_tasks: r.try_get::<i64, _>("running")?.max(0) as u32,
    })
}

/// The storage keys of `scope` and every scope above it: the delegates that
/// may serve a task in `scope` live in one of these.
pub(crate) fn covering_keys(scope: &Scope) -> Vec<String> {
    let mut keys = vec![scope.key()];
    let mut s = scope.clone();
    while let Some(p) = s.parent() {
        keys.push(p.key());
        s = p;
    }
    keys
}

impl Store {
    /// Creates a delegate token; the value is returned once and never stored.
    pub async fn create_delegate_token(
        &self,
        name: &str,
        scope: &Scope,
    ) -> Result<(DelegateTokenRecord, SecretValue)> {
        validate_name(name).map_err(|e| StoreError::validation("name", e))?;
        let value = new_token_value(DELEGATE_TOKEN_PREFIX);
        let record = DelegateTokenRecord {
            id: new_id(),
            name: name.to_string(),
            scope: scope.clone(),
            created_at: now_ms(),
            revoked_at: None,
        };
        let mut tx = self.db().begin_write().await?;
        ensure_scope_exists(tx.conn(), scope).await?;
        sqlx::query("INSERT INTO delegate_tokens (id, name, scope_key, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&record.id)
            .bind(&record.name)
            .bind(scope.key())
            .bind(hash_token(value.expose()))
            .bind(record.created_at)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok((record, value))
    }

    /// Tokens of exactly `scope`, revoked ones included.
    pub async fn list_delegate_tokens(&self, scope: &Scope) -> Result<Vec<DelegateTokenRecord>> {
        let rows = sqlx::query("SELECT id, name, scope_key, created_at, revoked_at FROM delegate_tokens WHERE scope_key = $1 ORDER BY created_at, id")
            .bind(scope.key())
            .fetch_all(&self.db().pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn get_delegate_token(&self, id: &str) -> Result<DelegateTokenRecord> {
        let row = sqlx::query(
            "SELECT id, name, scope_key, created_at, revoked_at FROM delegate_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db().pool)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("delegate token '{id}'")))?;
        token_from_row(&row)
    }

    /// Revokes a delegate token. The server disconnects its delegates.
    pub async fn revoke_delegate_token(&self, id: &str) -> Result<DelegateTokenRecord> {
        // Through the write queue like every write: a bare pool write waits in
        // SQLite's busy handler behind a burst of heartbeats.
        let mut tx = self.db().begin_write().await?;
        let res = sqlx::query(
            "UPDATE delegate_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(now_ms())
        .bind(id)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("delegate token '{id}'")));
        }
        self.get_delegate_token(id).await
    }

    /// Which of these delegate tokens are revoked. Managers re-check their
    /// connections' tokens with it, so a revocation event that never reached
    /// one (its LISTEN connection dropped) still takes effect.
    pub async fn revoked_delegate_tokens(&self, ids: &[String]) -> Result<Vec<String>> {
        let mut revoked = Vec::new();
        for chunk in ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id FROM delegate_tokens WHERE revoked_at IS NOT NULL AND id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.db().pool).await? {
                revoked.push(row.try_get("id")?);
            }
        }
        Ok(revoked)
    }

    /// The live delegate token with this value, if any.
    pub async fn authenticate_delegate(&self, token: &str) -> Result<Option<DelegateTokenRecord>> {
        if !token.starts_with(DELEGATE_TOKEN_PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT id, name, scope_key, created_at, revoked_at FROM delegate_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash_token(token))
            .fetch_optional(&self.db().pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Records a delegate's (re)connection through `manager_id` and returns it.
    ///
    /// A delegate's name belongs to the token that registered it: the same
    /// name with another live token of the scope is refused
    /// ([`StoreError::Conflict`]), so one delegate token cannot take over the
    /// delegates (and so the tasks and secrets) of another. Once the owning
    /// token is revoked, or the delegate expired, the name is free again.
    pub async fn register_delegate(
        &self,
        token: &DelegateTokenRecord,
        reg: &Registration,
        manager_id: &str,
        connection_id: &str,
    ) -> Result<DelegateRecord> {
        self.register_delegate_within(token, reg, manager_id, connection_id, u32::MAX)
            .await
    }

    /// [`Store::register_delegate`], where one token may have at most
    /// `max_per_token` delegates: a new name past that is refused
    /// ([`StoreError::Conflict`]) with what to do; names it already has
    /// reconnect as before.
    pub async fn register_delegate_within(
        &self,
        token: &DelegateTokenRecord,
        reg: &Registration,
        manager_id: &str,
        connection_id: &str,
        max_per_token: u32,
    ) -> Result<DelegateRecord> {
        reg.validate()?;
        let now = now_ms();
        let tags = serde_json::to_string(&reg.tags).unwrap_or_else(|_| "[]".into());
        let mut tx = self.db().begin_write().await?;
        let mut existing = sqlx::query("SELECT d.id, d.token_id, t.name AS token_name, t.revoked_at FROM delegates d JOIN delegate_tokens t ON t.id = d.token_id WHERE d.scope_key = $1 AND d.name = $2")
            .bind(token.scope.key())
            .bind(&reg.name)
            .fetch_optional(tx.conn())
            .await?;
        let mut handed_over = None;
        if let Some(r) = &existing {
            let owner: String = r.try_get("token_id")?;
            let revoked: Option<i64> = r.try_get("revoked_at")?;
            if owner != token.id && revoked.is_some() {
                handed_over = Some(r.try_get::<String, _>("id")?);
            } else if owner != token.id {
                let owner_name: String = r.try_get("token_name")?;
                return Err(StoreError::conflict(format!(
                    "the delegate name '{}' is taken in {} by a delegate registered with another delegate token ('{owner_name}', id {owner}); a name belongs to the token that first registered it. Give this delegate another --name, or run it with that token; to hand the name over, revoke that token (`tether delegate token revoke {owner}`, which disconnects its delegates)",
                    reg.name,
                    crate::scopes::scope_phrase(&token.scope)
                )));
            }
        }
        if let Some(old) = handed_over {
            // The owner's token was revoked: the name goes to a new delegate,
            // with a new id, so nothing of the old one's tasks reaches it.
            sqlx::query("DELETE FROM delegates WHERE id = $1")
                .bind(&old)
                .execute(tx.conn())
                .await?;
            existing = None;
        }
        if existing.is_none() && max_per_token < u32::MAX {
            // Managers sharing PostgreSQL: two registrations at once must not
            // both see room for one more.
            self.db()
                .pg_lock_named(tx.conn(), &format!("delegates-of-token/{}", token.id))
                .await?;
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM delegates WHERE token_id = $1")
                .bind(&token.id)
                .fetch_one(tx.conn())
                .await?
                .try_get("n")?;
            if n >= i64::from(max_per_token) {
                return Err(StoreError::conflict(format!(
                    "the delegate token '{}' (id {}) already has {n} delegates, the most one delegate token may register on this manager (--max-delegates-per-token {max_per_token}), so the new delegate '{}' is refused. Run it with the --name of a delegate this token already has (`tether delegate list`), create another delegate token for it (`tether delegate token create`), or raise the limit; delegates not seen for --delegate-expiry are removed by themselves",
                    token.name, token.id, reg.name
                )));
            }
        }
        let id = match existing {
            Some(r) => {
                let id: String = r.try_get("id")?;
                sqlx::query("UPDATE delegates SET token_id = $1, tags = $2, version = $3, hostname = $4, in_cluster = $5, capacity = $6, draining = 0, manager_id = $7, connection_id = $8, connected_at = $9, last_heartbeat = $9 WHERE id = $10")
                    .bind(&token.id)
                    .bind(&tags)
                    .bind(&reg.version)
                    .bind(&reg.hostname)
                    .bind(i64::from(reg.in_cluster))
                    .bind(i64::from(reg.capacity))
                    .bind(manager_id)
                    .bind(connection_id)
                    .bind(now)
                    .bind(&id)
                    .execute(tx.conn())
                    .await?;
                id
            }
            None => {
                let id = new_id();
                sqlx::query("INSERT INTO delegates (id, scope_key, name, token_id, tags, version, hostname, in_cluster, capacity, draining, manager_id, connection_id, connected_at, last_heartbeat, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $12, $12)")
                    .bind(&id)
                    .bind(token.scope.key())
                    .bind(&reg.name)
                    .bind(&token.id)
                    .bind(&tags)
                    .bind(&reg.version)
                    .bind(&reg.hostname)
                    .bind(i64::from(reg.in_cluster))
                    .bind(i64::from(reg.capacity))
                    .bind(manager_id)
                    .bind(connection_id)
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
                id
            }
        };
        tx.commit().await?;
        self.get_delegate(&id).await
    }

    /// Removes the delegates last seen before `before` (ms since the epoch)
    /// that are not connected and hold no task; returns how many. Their names
    /// are free again.
    pub async fn expire_delegates(&self, before: i64) -> Result<u64> {
        let mut tx = self.db().begin_write().await?;
        let res = sqlx::query("DELETE FROM delegates WHERE manager_id IS NULL AND COALESCE(last_heartbeat, connected_at, created_at) < $1 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.delegate_id = delegates.id AND t.state = 'assigned')")
            .bind(before)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }

    /// Marks the delegate disconnected, unless a newer connection replaced this one.
    pub async fn delegate_disconnected(
        &self,
        delegate_id: &str,
        connection_id: &str,
    ) -> Result<bool> {
        // Through the write queue like every other write: a lone statement on
        // the pool would wait in SQLite's busy handler, which queued writers
        // can starve for its whole timeout.
        let mut tx = self.db().begin_write().await?;
        let res = sqlx::query("UPDATE delegates SET manager_id = NULL, connection_id = NULL WHERE id = $1 AND connection_id = $2")
            .bind(delegate_id)
            .bind(connection_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    /// Marks every delegate held by a manager disconnected (its shutdown).
    pub async fn manager_stopped(&self, manager_id: &str) -> Result<u64> {
        // Through the write queue (see `delegate_disconnected`): on a busy
        // manager's shutdown this once waited out the busy timeout and failed.
        let mut tx = self.db().begin_write().await?;
        let res = sqlx::query(
            "UPDATE delegates SET manager_id = NULL, connection_id = NULL WHERE manager_id = $1",
        )
        .bind(manager_id)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }

    pub async fn set_delegate_draining(&self, delegate_id: &str) -> Result<()> {
        let mut tx = self.db().begin_write().await?;
        sqlx::query("UPDATE delegates SET draining = 1 WHERE id = $1")
            .bind(delegate_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Writes the heartbeats of many delegates in one transaction, and renews
    /// the leases of the tasks each says it runs, plus those handed to it since
    /// `in_flight_since` (sent, not yet in its list). Tasks it no longer mentions
    /// (a restarted process forgot them) keep their old lease and lapse.
    /// Batching keeps ten thousand delegates from costing ten thousand
    /// transactions per heartbeat interval.
    pub async fn record_heartbeats(
        &self,
        beats: &[Heartbeat],
        now: i64,
        lease_until: i64,
        in_flight_since: i64,
    ) -> Result<()> {
        if beats.is_empty() {
            return Ok(());
        }
        let mut tx = self.db().begin_write().await?;
        for b in beats {
            sqlx::query(
                "UPDATE delegates SET last_heartbeat = $1 WHERE id = $2 AND connection_id = $3",
            )
            .bind(now)
            .bind(&b.delegate_id)
            .bind(&b.connection_id)
            .execute(tx.conn())
            .await?;
            if !b.holds_tasks {
                continue;
            }
            for task_id in &b.running {
                sqlx::query("UPDATE tasks SET lease_expires_at = $1 WHERE id = $2 AND delegate_id = $3 AND state = 'assigned'")
                    .bind(lease_until)
                    .bind(task_id)
                    .bind(&b.delegate_id)
                    .execute(tx.conn())
                    .await?;
            }
            sqlx::query("UPDATE tasks SET lease_expires_at = $1 WHERE delegate_id = $2 AND state = 'assigned' AND updated_at >= $3")
                .bind(lease_until)
                .bind(&b.delegate_id)
                .bind(in_flight_since)
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await
    }

    pub async fn get_delegate(&self, id: &str) -> Result<DelegateRecord> {
        let row = sqlx::query(&format!(
            "SELECT {DELEGATE_COLUMNS} FROM delegates d WHERE d.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db().pool)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("delegate '{id}'")))?;
        delegate_from_row(&row)
    }

    /// A delegate of `scope` by id or by name.
    pub async fn find_delegate(&self, scope: &Scope, id_or_name: &str) -> Result<DelegateRecord> {
        let row = sqlx::query(&format!("SELECT {DELEGATE_COLUMNS} FROM delegates d WHERE d.scope_key = $1 AND (d.id = $2 OR d.name = $2)"))
            .bind(scope.key())
            .bind(id_or_name)
            .fetch_optional(&self.db().pool)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("delegate '{id_or_name}' in {}", crate::scopes::scope_phrase(scope))))?;
        delegate_from_row(&row)
    }

    /// Delegates registered in exactly `scope`, by name.
    pub async fn list_delegates(&self, scope: &Scope) -> Result<Vec<DelegateRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELEGATE_COLUMNS} FROM delegates d WHERE d.scope_key = $1 ORDER BY d.name"
        ))
        .bind(scope.key())
        .fetch_all(&self.db().pool)
        .await?;
        rows.iter().map(delegate_from_row).collect()
    }

    /// Delegates whose scope covers `scope` (its own, its org's, the account's):
    /// the candidates for a task there.
    pub async fn delegates_covering(&self, scope: &Scope) -> Result<Vec<DelegateRecord>> {
        let keys = covering_keys(scope);
        let mut sql = format!("SELECT {DELEGATE_COLUMNS} FROM delegates d WHERE d.scope_key IN (");
        for i in 0..keys.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", i + 1));
        }
        sql.push_str(") ORDER BY d.name");
        let mut q = sqlx::query(&sql);
        for k in &keys {
            q = q.bind(k);
        }
        let rows = q.fetch_all(&self.db().pool).await?;
        rows.iter().map(delegate_from_row).collect()
    }

    /// The covering delegates plus those of the other scopes of `scope`'s org
    /// (its org's projects), by name. The latter can never run a task of
    /// `scope`; they are listed when nothing can, because a delegate installed
    /// with a sibling project's token is a common mistake. Other orgs' delegates
    /// are not included.
    pub async fn delegates_near(&self, scope: &Scope) -> Result<Vec<DelegateRecord>> {
        let Some(org) = scope.org() else {
            return self.delegates_covering(scope).await;
        };
        // LIKE is case-insensitive on SQLite and `_` is a wildcard: escape it,
        // and keep only exact matches below.
        let pattern = format!(
            "project/{}/%",
            org.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(&format!(
            "SELECT {DELEGATE_COLUMNS} FROM delegates d WHERE d.scope_key IN ($1, $2) OR d.scope_key LIKE $3 ESCAPE '\\' ORDER BY d.name"
        ))
        .bind(Scope::Account.key())
        .bind(Scope::Org(org.to_string()).key())
        .bind(pattern)
        .fetch_all(&self.db().pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let d = delegate_from_row(r)?;
            if d.scope == Scope::Account || d.scope.org() == Some(org) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Delegates registered with a token (to disconnect them on revocation).
    pub async fn delegates_of_token(&self, token_id: &str) -> Result<Vec<DelegateRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELEGATE_COLUMNS} FROM delegates d WHERE d.token_id = $1"
        ))
        .bind(token_id)
        .fetch_all(&self.db().pool)
        .await?;
        rows.iter().map(delegate_from_row).collect()
    }
}
