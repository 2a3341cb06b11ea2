//! The store's test suite. Every test runs against SQLite and, when
//! `TETHER_TEST_DATABASE_URL` is set, against PostgreSQL (see `common.rs`).

#[macro_use]
mod common;

mod connectors;
mod crash;
mod delegates;
mod listing;
mod orgs;
mod secrets;
mod task_events;
mod tasks;
mod test_history;
mod tokens;
