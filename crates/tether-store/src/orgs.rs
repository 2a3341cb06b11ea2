//! Orgs and the projects inside them: the scopes connectors, secrets and tokens
//! live in. An org or project that still holds anything cannot be deleted.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tether_domain::{validate_identifier, validate_name, Scope, ValidationErrors};

use crate::db::now_ms;
use crate::error::{Result, StoreError};
use crate::scopes::{ensure_scope_exists, list_some};
use crate::Store;

/// Longest description accepted, in characters (same as connectors).
pub(crate) const MAX_DESCRIPTION: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    pub identifier: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub org_identifier: String,
    pub identifier: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProjectRecord {
    pub fn scope(&self) -> Scope {
        Scope::Project {
            org: self.org_identifier.clone(),
            project: self.identifier.clone(),
        }
    }
}

fn org_from_row(r: &AnyRow) -> Result<OrgRecord> {
    Ok(OrgRecord {
        identifier: r.try_get("identifier")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn project_from_row(r: &AnyRow) -> Result<ProjectRecord> {
    Ok(ProjectRecord {
        org_identifier: r.try_get("org_identifier")?,
        identifier: r.try_get("identifier")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Checks identifier, name and description of an org or project.
fn validate_entity(identifier: &str, name: &str, description: Option<&str>) -> Result<()> {
    let mut errs = ValidationErrors::default();
    if let Err(e) = validate_identifier(identifier) {
        errs.push("identifier", e);
    }
    if let Err(e) = validate_name(name) {
        errs.push("name", e);
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        errs.push(
            "description",
            format!("description is longer than {MAX_DESCRIPTION} characters"),
        );
    }
    Ok(errs.into_result()?)
}

impl Store {
    pub async fn create_org(
        &self,
        identifier: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<OrgRecord> {
        validate_entity(identifier, name, description)?;
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let res = sqlx::query(
            "INSERT INTO orgs (identifier, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(identifier)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from);
        match res {
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::conflict(format!(
                    "org '{identifier}' already exists; choose another identifier"
                )))
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(OrgRecord {
            identifier: identifier.into(),
            name: name.into(),
            description: description.map(Into::into),
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn list_orgs(&self) -> Result<Vec<OrgRecord>> {
        let rows = sqlx::query("SELECT * FROM orgs ORDER BY identifier")
            .fetch_all(&self.db().pool)
            .await?;
        rows.iter().map(org_from_row).collect()
    }

    pub async fn get_org(&self, identifier: &str) -> Result<OrgRecord> {
        let row = sqlx::query("SELECT * FROM orgs WHERE identifier = $1")
            .bind(identifier)
            .fetch_optional(&self.db().pool)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("org '{identifier}'")))?;
        org_from_row(&row)
    }

    /// Refuses with Conflict while the org holds projects, connectors or secrets.
    /// API tokens scoped to the org (or its projects) are revoked with it, so a
    /// later org of the same name does not inherit them.
    pub async fn delete_org(&self, identifier: &str) -> Result<()> {
        let mut tx = self.db().begin_write().await?;
        let exists = sqlx::query("SELECT 1 AS one FROM orgs WHERE identifier = $1")
            .bind(identifier)
            .fetch_optional(tx.conn())
            .await?;
        if exists.is_none() {
            return Err(StoreError::not_found(format!("org '{identifier}'")));
        }
        let projects: Vec<String> = sqlx::query(
            "SELECT identifier FROM projects WHERE org_identifier = $1 ORDER BY identifier",
        )
        .bind(identifier)
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get("identifier"))
        .collect::<Result<_, _>>()?;
        let connectors = count(tx.conn(), "connectors", identifier).await?;
        let secrets = count(tx.conn(), "secrets", identifier).await?;
        if !projects.is_empty() || connectors > 0 || secrets > 0 {
            let mut held = Vec::new();
            if !projects.is_empty() {
                held.push(format!(
                    "{} project(s) ({})",
                    projects.len(),
                    list_some(&projects)
                ));
            }
            if connectors > 0 {
                held.push(format!("{connectors} connector(s)"));
            }
            if secrets > 0 {
                held.push(format!("{secrets} secret(s)"));
            }
            return Err(StoreError::conflict(format!(
                "org '{identifier}' still holds {}; delete them first",
                held.join(", ")
            )));
        }
        revoke_scope_tokens(tx.conn(), identifier, None).await?;
        sqlx::query("DELETE FROM orgs WHERE identifier = $1")
            .bind(identifier)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    pub async fn create_project(
        &self,
        org: &str,
        identifier: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<ProjectRecord> {
        validate_entity(identifier, name, description)?;
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        ensure_scope_exists(tx.conn(), &Scope::Org(org.into())).await?;
        let res = sqlx::query(
            "INSERT INTO projects (org_identifier, identifier, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(org)
        .bind(identifier)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(StoreError::from);
        match res {
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::conflict(format!(
                    "project '{org}/{identifier}' already exists; choose another identifier"
                )))
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(ProjectRecord {
            org_identifier: org.into(),
            identifier: identifier.into(),
            name: name.into(),
            description: description.map(Into::into),
            created_at: now,
            updated_at: now,
        })
    }

    /// The projects of `org`; NotFound when the org does not exist.
    pub async fn list_projects(&self, org: &str) -> Result<Vec<ProjectRecord>> {
        let mut tx = self.db().begin_read().await?;
        ensure_scope_exists(&mut tx, &Scope::Org(org.into())).await?;
        let rows =
            sqlx::query("SELECT * FROM projects WHERE org_identifier = $1 ORDER BY identifier")
                .bind(org)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        rows.iter().map(project_from_row).collect()
    }

    pub async fn get_project(&self, org: &str, identifier: &str) -> Result<ProjectRecord> {
        let row =
            sqlx::query("SELECT * FROM projects WHERE org_identifier = $1 AND identifier = $2")
                .bind(org)
                .bind(identifier)
                .fetch_optional(&self.db().pool)
                .await?
                .ok_or_else(|| StoreError::not_found(format!("project '{org}/{identifier}'")))?;
        project_from_row(&row)
    }

    /// Refuses with Conflict while the project holds connectors or secrets;
    /// revokes the tokens scoped to it.
    pub async fn delete_project(&self, org: &str, identifier: &str) -> Result<()> {
        let scope = Scope::Project {
            org: org.into(),
            project: identifier.into(),
        };
        let mut tx = self.db().begin_write().await?;
        let exists = sqlx::query(
            "SELECT 1 AS one FROM projects WHERE org_identifier = $1 AND identifier = $2",
        )
        .bind(org)
        .bind(identifier)
        .fetch_optional(tx.conn())
        .await?;
        if exists.is_none() {
            return Err(StoreError::not_found(format!(
                "project '{org}/{identifier}'"
            )));
        }
        let mut held = Vec::new();
        for (table, what) in [("connectors", "connector(s)"), ("secrets", "secret(s)")] {
            let n: i64 = sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE scope_key = $1"
            ))
            .bind(scope.key())
            .fetch_one(tx.conn())
            .await?
            .try_get("n")?;
            if n > 0 {
                held.push(format!("{n} {what}"));
            }
        }
        if !held.is_empty() {
            return Err(StoreError::conflict(format!(
                "{scope} still holds {}; delete them first",
                held.join(" and ")
            )));
        }
        revoke_scope_tokens(tx.conn(), org, Some(identifier)).await?;
        sqlx::query("DELETE FROM projects WHERE org_identifier = $1 AND identifier = $2")
            .bind(org)
            .bind(identifier)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }
}

/// Rows of `table` anywhere in `org` (its own scope and its projects').
async fn count(conn: &mut AnyConnection, table: &'static str, org: &str) -> Result<i64> {
    Ok(sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE org_identifier = $1"
    ))
    .bind(org)
    .fetch_one(conn)
    .await?
    .try_get("n")?)
}

/// Revokes the live tokens of an org (and its projects), or of one project.
async fn revoke_scope_tokens(
    conn: &mut AnyConnection,
    org: &str,
    project: Option<&str>,
) -> Result<()> {
    let now = now_ms();
    match project {
        Some(p) => {
            let key = Scope::Project {
                org: org.into(),
                project: p.into(),
            }
            .key();
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE scope_key = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(key)
            .execute(conn)
            .await?;
        }
        None => {
            // A prefix comparison rather than LIKE: SQLite's LIKE ignores case,
            // and org 'A' must not lose the tokens of org 'a'.
            let org_key = Scope::Org(org.into()).key();
            let projects = format!("project/{org}/");
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND (scope_key = $2 OR substr(scope_key, 1, length($3)) = $3)",
            )
            .bind(now)
            .bind(org_key)
            .bind(projects)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
