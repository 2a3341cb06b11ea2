//! A summary of each deploy release (`deploy_releases`): which connector,
//! namespace, name and revision, how it ended and the task that made it. The
//! release itself (manifests, objects) lives in the cluster; this is what the
//! manager can list without asking a delegate. One row per revision, so a
//! result reported twice is recorded once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use tether_domain::Scope;

use crate::db::now_ms;
use crate::error::Result;
use crate::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    pub connector: String,
    pub namespace: String,
    pub name: String,
    pub revision: u32,
    pub status: String,
    pub task_id: String,
    /// The deploy's report summary (outcome, summary line, release).
    pub summary: Value,
    pub created_at: i64,
}

impl Store {
    /// Records (or updates) one release of a deploy.
    pub async fn record_release(&self, scope: &Scope, r: &ReleaseRecord) -> Result<()> {
        let mut tx = self.db().begin_write().await?;
        sqlx::query("INSERT INTO deploy_releases (scope_key, connector, namespace, name, revision, status, task_id, summary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (scope_key, connector, namespace, name, revision) DO UPDATE SET status = excluded.status, task_id = excluded.task_id, summary = excluded.summary")
            .bind(scope.key())
            .bind(&r.connector)
            .bind(&r.namespace)
            .bind(&r.name)
            .bind(i64::from(r.revision))
            .bind(&r.status)
            .bind(&r.task_id)
            .bind(r.summary.to_string())
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// The releases of a connector (of one name when given), newest first.
    pub async fn list_releases(
        &self,
        scope: &Scope,
        connector: &str,
        name: Option<&str>,
    ) -> Result<Vec<ReleaseRecord>> {
        let rows = sqlx::query("SELECT connector, namespace, name, revision, status, task_id, summary, created_at FROM deploy_releases WHERE scope_key = $1 AND connector = $2 AND ($3 = '' OR name = $3) ORDER BY name, revision DESC")
            .bind(scope.key())
            .bind(connector)
            .bind(name.unwrap_or_default())
            .fetch_all(&self.db().pool)
            .await?;
        rows.iter()
            .map(|r| {
                let summary: String = r.try_get("summary")?;
                Ok(ReleaseRecord {
                    connector: r.try_get("connector")?,
                    namespace: r.try_get("namespace")?,
                    name: r.try_get("name")?,
                    revision: r.try_get::<i64, _>("revision")?.max(0) as u32,
                    status: r.try_get("status")?,
                    task_id: r.try_get("task_id")?,
                    summary: serde_json::from_str(&summary).unwrap_or(Value::Null),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
