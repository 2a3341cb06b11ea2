//! Throwaway PostgreSQL databases for tests.
//!
//! The test command starts one PostgreSQL server (`scripts/pg-testenv`) and
//! exports `TETHER_TEST_DATABASE_URL`; each test creates its own database on it,
//! so tests run in parallel without seeing each other's rows. The server and
//! everything in it are thrown away when the test run ends.

use anyhow::{bail, Context, Result};
use sqlx::Connection;

pub struct TestDatabase {
    /// `postgres://.../<fresh database>`
    pub url: String,
}

impl TestDatabase {
    /// A fresh database, or `None` when no PostgreSQL is configured. When
    /// `TETHER_TEST_REQUIRE_POSTGRES` is set (as the test command does), a missing
    /// server is an error: the PostgreSQL half of a suite must not pass silently.
    pub async fn create() -> Result<Option<TestDatabase>> {
        let Ok(server) = std::env::var("TETHER_TEST_DATABASE_URL") else {
            if std::env::var_os("TETHER_TEST_REQUIRE_POSTGRES").is_some() {
                bail!("TETHER_TEST_REQUIRE_POSTGRES is set but TETHER_TEST_DATABASE_URL is not");
            }
            eprintln!("skipping the PostgreSQL variant: TETHER_TEST_DATABASE_URL is not set (scripts/test sets it)");
            return Ok(None);
        };
        let name = crate::unique("t").replace('-', "_");
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .with_context(|| "connecting to TETHER_TEST_DATABASE_URL".to_string())?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
        Ok(Some(TestDatabase {
            url: format!("{base}/{name}"),
        }))
    }
}
