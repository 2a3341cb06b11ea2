//! Where each manager takes proxied Kubernetes requests (`/k8s/...`), so a
//! manager without a tunnel to an eligible delegate passes the request to the
//! manager the delegate is connected to.

use sqlx::Row;

use crate::db::now_ms;
use crate::error::Result;
use crate::Store;

impl Store {
    /// Records (or updates) this manager's URL for other managers.
    pub async fn advertise_proxy_manager(&self, manager_id: &str, url: &str) -> Result<()> {
        let mut tx = self.db().begin_write().await?;
        sqlx::query("DELETE FROM proxy_managers WHERE manager_id = $1")
            .bind(manager_id)
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO proxy_managers (manager_id, url, updated_at) VALUES ($1, $2, $3)")
            .bind(manager_id)
            .bind(url)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// The URL another manager advertised, if it did.
    pub async fn proxy_manager_url(&self, manager_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT url FROM proxy_managers WHERE manager_id = $1")
            .bind(manager_id)
            .fetch_optional(&self.db().pool)
            .await?;
        Ok(row.map(|r| r.try_get("url")).transpose()?)
    }
}
