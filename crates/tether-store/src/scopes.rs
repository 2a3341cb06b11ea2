//! What every scoped entity needs: a check that its org/project exists, the
//! phrase that names a scope in messages, and the identifiers already taken in
//! a scope (for deriving a new one).

use sqlx::{AnyConnection, Row};
use tether_domain::Scope;

use crate::error::{Result, StoreError};

/// "project 'o/p'" style text for messages; the account reads "the account".
pub(crate) fn scope_phrase(scope: &Scope) -> String {
    match scope {
        Scope::Account => "the account".into(),
        other => other.to_string(),
    }
}

/// Fails with NotFound naming the org or project when `scope` does not exist.
/// Called inside the write transaction that creates something in the scope, so
/// the scope cannot vanish between the check and the insert (the foreign keys
/// would refuse that too).
pub(crate) async fn ensure_scope_exists(conn: &mut AnyConnection, scope: &Scope) -> Result<()> {
    let Some(org) = scope.org() else {
        return Ok(());
    };
    let found = sqlx::query("SELECT 1 AS one FROM orgs WHERE identifier = $1")
        .bind(org)
        .fetch_optional(&mut *conn)
        .await?;
    if found.is_none() {
        return Err(StoreError::not_found(format!("org '{org}'")));
    }
    if let Some(project) = scope.project() {
        let found = sqlx::query(
            "SELECT 1 AS one FROM projects WHERE org_identifier = $1 AND identifier = $2",
        )
        .bind(org)
        .bind(project)
        .fetch_optional(&mut *conn)
        .await?;
        if found.is_none() {
            return Err(StoreError::not_found(format!("project '{org}/{project}'")));
        }
    }
    Ok(())
}

/// Identifiers of the rows of `table` (connectors or secrets) in `scope` whose
/// key starts with `prefix`; fed to `derive_identifier` as the taken set.
pub(crate) async fn taken_identifiers(
    conn: &mut AnyConnection,
    table: &'static str,
    scope_key: &str,
    prefix: &str,
) -> Result<Vec<String>> {
    // Candidates keep at least the first 100 characters of the derived base, so
    // that prefix is enough to find every identifier that could collide.
    let prefix: String = prefix.chars().take(100).collect();
    let pattern = {
        let mut p = String::new();
        for c in prefix.chars() {
            if matches!(c, '\\' | '%' | '_') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    };
    let rows = sqlx::query(&format!(
        "SELECT identifier FROM {table} WHERE scope_key = $1 AND identifier LIKE $2 ESCAPE '\\'"
    ))
    .bind(scope_key)
    .bind(pattern)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("identifier").map_err(Into::into))
        .collect()
}

/// At most five names, then "and N more".
pub(crate) fn list_some(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}
