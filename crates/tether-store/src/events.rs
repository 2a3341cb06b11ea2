//! Events between managers that share a database: "a task was queued", "a task
//! finished", "a delegate token was revoked". On PostgreSQL they travel by
//! LISTEN/NOTIFY so a task created through one manager reaches a delegate
//! connected to another at once; on SQLite there is only one manager, and the
//! server's in-process signals suffice.

use sqlx::postgres::PgListener;

use crate::db::Backend;
use crate::error::Result;
use crate::Store;

/// The NOTIFY channel every tether event goes through.
pub const EVENT_CHANNEL: &str = "tether_events";

/// Receives events published by any manager (PostgreSQL only).
pub struct EventListener {
    inner: PgListener,
}

impl EventListener {
    /// The next event's payload. Reconnects transparently after a dropped
    /// connection (events sent meanwhile are lost, which callers cover with a
    /// periodic re-scan).
    pub async fn recv(&mut self) -> Result<String> {
        Ok(self.inner.recv().await?.payload().to_string())
    }
}

impl Store {
    /// Publishes an event to every manager listening (no-op on SQLite).
    pub async fn publish(&self, payload: &str) -> Result<()> {
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(EVENT_CHANNEL)
                .bind(payload)
                .execute(&self.db().pool)
                .await?;
        }
        Ok(())
    }

    /// A listener for events, on PostgreSQL; `None` on SQLite.
    pub async fn listen(&self) -> Result<Option<EventListener>> {
        let Some(url) = self
            .database_url()
            .filter(|_| self.backend() == Backend::Postgres)
        else {
            return Ok(None);
        };
        let mut inner = PgListener::connect(url).await?;
        inner.listen(EVENT_CHANNEL).await?;
        Ok(Some(EventListener { inner }))
    }
}
