//! Text secrets: metadata in clear, the value sealed with AES-256-GCM under the
//! key-encryption key and bound to its scope and identifier.
//!
//! Every write that seals a value first confirms, inside its transaction, that
//! the database still records the key this process holds (the `kek_id` row of
//! `tether_meta`). That update also locks the row, so a key rotation by another
//! process and a secret write cannot interleave and leave two keys in the table.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tether_domain::secret_access::{parse_grants, parse_hosts};
use tether_domain::ValidationErrors;
use tether_domain::{
    derive_identifier, validate_identifier, validate_name, Scope, SecretAccess, SecretRef,
};

use crate::crypto::{self, Kek, Sealed, SecretValue};
use crate::db::{like_contains, now_ms, Filter};
use crate::error::{Result, StoreError, WRONG_KEY};
use crate::orgs::MAX_DESCRIPTION;
use crate::paging::{effective_limit, offset, ListQuery, Page};
use crate::scopes::{ensure_scope_exists, list_some, scope_phrase, taken_identifiers};
use crate::Store;

/// Largest secret value accepted (1 MiB): plenty for a CA bundle or a
/// kubeconfig-sized key, small enough that a mistaken upload is refused.
pub const MAX_SECRET_BYTES: usize = 1 << 20;

/// A new secret.
#[derive(Debug, Clone)]
pub struct SecretInput {
    /// Derived from the name when absent.
    pub identifier: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub value: SecretValue,
    /// Scope keys (`org/o1`, `project/o1/p`) whose connectors may use the
    /// secret besides its own scope; see [`tether_domain::secret_access`].
    pub usable_from: Vec<String>,
    /// Hosts the value may be sent to; empty: any.
    pub allowed_hosts: Vec<String>,
}

/// A change to a secret; the identifier and scope never change.
#[derive(Debug, Clone)]
pub struct SecretUpdate {
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `None` keeps the stored value.
    pub value: Option<SecretValue>,
    /// `None` keeps the stored grants; `Some(vec![])` removes them all.
    pub usable_from: Option<Vec<String>>,
    /// `None` keeps the stored host binding; `Some(vec![])` removes it.
    pub allowed_hosts: Option<Vec<String>>,
}

/// What may be shown about a secret: everything but its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    pub scope: Scope,
    pub identifier: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Scopes whose connectors may use it besides its own, sorted.
    pub usable_from: Vec<Scope>,
    /// Hosts its value may be sent to, normalised; empty: any.
    pub allowed_hosts: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SecretMeta {
    /// Its scope, use grants and host binding, for the checks of
    /// [`tether_domain::secret_access`].
    pub fn access(&self) -> SecretAccess {
        SecretAccess {
            scope: self.scope.clone(),
            usable_from: self.usable_from.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
        }
    }
}

const META_COLUMNS: &str =
    "scope_key, identifier, name, description, tags, usable_from, allowed_hosts, created_at, updated_at";

/// The grants and hosts columns of a secret row.
pub(crate) fn access_from_row(
    r: &AnyRow,
    scope: &Scope,
    identifier: &str,
) -> Result<(Vec<Scope>, Vec<String>)> {
    let corrupt = |what: &str, e: String| StoreError::Corrupt {
        message: format!("the {what} of secret '{identifier}' in {scope} are unreadable: {e}"),
    };
    let grants: String = r.try_get("usable_from")?;
    let grants: Vec<String> =
        serde_json::from_str(&grants).map_err(|e| corrupt("use grants", e.to_string()))?;
    let usable_from = grants
        .iter()
        .map(|k| {
            Scope::from_key(k).ok_or_else(|| corrupt("use grants", format!("'{k}' is not a scope")))
        })
        .collect::<Result<_>>()?;
    let hosts: String = r.try_get("allowed_hosts")?;
    let allowed_hosts =
        serde_json::from_str(&hosts).map_err(|e| corrupt("allowed hosts", e.to_string()))?;
    Ok((usable_from, allowed_hosts))
}

fn meta_from_row(r: &AnyRow) -> Result<SecretMeta> {
    let scope_key: String = r.try_get("scope_key")?;
    let identifier: String = r.try_get("identifier")?;
    let scope = Scope::from_key(&scope_key).ok_or_else(|| StoreError::Corrupt {
        message: format!(
            "secret '{identifier}' has an unreadable scope '{scope_key}' in the database"
        ),
    })?;
    let tags: String = r.try_get("tags")?;
    let tags = serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt {
        message: format!("the tags of secret '{identifier}' in {scope} are unreadable: {e}"),
    })?;
    let (usable_from, allowed_hosts) = access_from_row(r, &scope, &identifier)?;
    Ok(SecretMeta {
        scope,
        identifier,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        tags,
        usable_from,
        allowed_hosts,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn sealed_from_row(r: &AnyRow) -> Result<Sealed> {
    Ok(Sealed {
        key_id: r.try_get("key_id")?,
        nonce: r.try_get("nonce")?,
        ciphertext: r.try_get("ciphertext")?,
    })
}

fn describe(scope: &Scope, identifier: &str) -> String {
    format!("secret '{identifier}' in {}", scope_phrase(scope))
}

fn validate_common(
    errs: &mut ValidationErrors,
    name: &str,
    description: Option<&str>,
    tags: &BTreeMap<String, String>,
) {
    if let Err(e) = validate_name(name) {
        errs.push("name", e);
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        errs.push(
            "description",
            format!("description is longer than {MAX_DESCRIPTION} characters"),
        );
    }
    if tags.keys().any(|k| k.trim().is_empty()) {
        errs.push("tags", "tag keys must not be blank");
    }
}

fn validate_value(errs: &mut ValidationErrors, value: &SecretValue) {
    if value.is_empty() {
        errs.push("value", "the secret value must not be empty");
    } else if value.len() > MAX_SECRET_BYTES {
        errs.push(
            "value",
            format!(
                "the secret value is {} bytes; at most {MAX_SECRET_BYTES} are allowed",
                value.len()
            ),
        );
    }
}

/// Checks grants and hosts (each error on its field) and that every granted
/// org or project exists, so a typo is refused rather than granting nothing.
/// Returns them as stored: JSON lists of scope keys and of hosts.
async fn checked_access(
    conn: &mut AnyConnection,
    scope: &Scope,
    usable_from: &[String],
    allowed_hosts: &[String],
    errs: &mut ValidationErrors,
) -> Result<(Vec<Scope>, Vec<String>)> {
    let grants = parse_grants(scope, usable_from, errs);
    for (i, g) in grants.iter().enumerate() {
        match ensure_scope_exists(conn, g).await {
            Ok(()) => {}
            Err(StoreError::NotFound { what }) => {
                // Point at the entry as the caller wrote it.
                let at = usable_from
                    .iter()
                    .position(|r| Scope::from_key(r.trim()).as_ref() == Some(g))
                    .unwrap_or(i);
                errs.push(
                    format!("usableFrom[{at}]"),
                    format!("{what} does not exist; create it first or correct the grant"),
                )
            }
            Err(e) => return Err(e),
        }
    }
    let hosts = parse_hosts(allowed_hosts, errs);
    Ok((grants, hosts))
}

fn keys_json(grants: &[Scope]) -> String {
    serde_json::to_string(&grants.iter().map(Scope::key).collect::<Vec<_>>())
        .expect("strings always serialise")
}

fn hosts_json(hosts: &[String]) -> String {
    serde_json::to_string(hosts).expect("strings always serialise")
}

/// Confirms, and row-locks until commit, that the database's secrets are sealed
/// with `kek`. See the module comment.
async fn confirm_kek(conn: &mut AnyConnection, kek: &Kek) -> Result<()> {
    let res =
        sqlx::query("UPDATE tether_meta SET value = value WHERE name = 'kek_id' AND value = $1")
            .bind(kek.key_id())
            .execute(conn)
            .await?;
    if res.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Crypto {
            message: format!(
                "{WRONG_KEY} (the key was probably rotated by another tether process; restart this one with the new key)"
            ),
        })
    }
}

/// The row id of a secret and who may use it, if it exists.
pub(crate) async fn secret_row(
    conn: &mut AnyConnection,
    scope: &Scope,
    identifier: &str,
) -> Result<Option<(i64, SecretAccess)>> {
    let row = sqlx::query(
        "SELECT id, usable_from, allowed_hosts FROM secrets WHERE scope_key = $1 AND identifier = $2",
    )
    .bind(scope.key())
    .bind(identifier)
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let (usable_from, allowed_hosts) = access_from_row(&r, scope, identifier)?;
    Ok(Some((
        r.try_get("id")?,
        SecretAccess {
            scope: scope.clone(),
            usable_from,
            allowed_hosts,
        },
    )))
}

/// The row id of a secret, if it exists.
pub(crate) async fn secret_id(
    conn: &mut AnyConnection,
    scope: &Scope,
    identifier: &str,
) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT id FROM secrets WHERE scope_key = $1 AND identifier = $2")
        .bind(scope.key())
        .bind(identifier)
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("id")?),
        None => None,
    })
}

impl Store {
    /// Stores a new secret; NotFound when the org/project does not exist,
    /// Conflict when the identifier is taken in the scope.
    pub async fn create_secret(&self, scope: &Scope, input: SecretInput) -> Result<SecretMeta> {
        let mut errs = ValidationErrors::default();
        if let Some(id) = &input.identifier {
            if let Err(e) = validate_identifier(id) {
                errs.push("identifier", e);
            }
        }
        validate_common(
            &mut errs,
            &input.name,
            input.description.as_deref(),
            &input.tags,
        );
        validate_value(&mut errs, &input.value);
        let tags = serde_json::to_string(&input.tags).expect("a string map always serialises");
        let scope_key = scope.key();

        let kek = self.kek().read().await;
        let mut tx = self.db().begin_write().await?;
        ensure_scope_exists(tx.conn(), scope).await?;
        let (usable_from, allowed_hosts) = checked_access(
            tx.conn(),
            scope,
            &input.usable_from,
            &input.allowed_hosts,
            &mut errs,
        )
        .await?;
        errs.into_result()?;
        confirm_kek(tx.conn(), &kek).await?;
        let identifier = match &input.identifier {
            Some(id) => id.clone(),
            None => {
                // confirm_kek already serialises secret writes on PostgreSQL
                // (it row-locks the key record), so the derived identifier
                // cannot be taken by a concurrent writer before we insert.
                let base = derive_identifier(&input.name, "secret", |_| false);
                let taken = taken_identifiers(tx.conn(), "secrets", &scope_key, &base).await?;
                derive_identifier(&input.name, "secret", |c| taken.iter().any(|t| t == c))
            }
        };
        let sealed = crypto::seal(&kek, &scope_key, &identifier, &input.value)?;
        let now = now_ms();
        let res = sqlx::query(
            "INSERT INTO secrets (scope_key, org_identifier, project_identifier, identifier, name, name_key, description, tags, key_id, nonce, ciphertext, created_at, updated_at, usable_from, allowed_hosts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)",
        )
        .bind(&scope_key)
        .bind(scope.org())
        .bind(scope.project())
        .bind(&identifier)
        .bind(&input.name)
        .bind(input.name.to_lowercase())
        .bind(input.description.as_deref())
        .bind(tags)
        .bind(&sealed.key_id)
        .bind(sealed.nonce)
        .bind(sealed.ciphertext)
        .bind(now)
        .bind(keys_json(&usable_from))
        .bind(hosts_json(&allowed_hosts))
        .execute(tx.conn())
        .await
        .map_err(StoreError::from);
        match res {
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::conflict(format!(
                    "{} already exists; choose another identifier or update it",
                    describe(scope, &identifier)
                )))
            }
            // The org/project was deleted after our check (PostgreSQL).
            Err(e) if e.is_foreign_key_violation() => {
                return Err(StoreError::not_found(scope_phrase(scope)))
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(SecretMeta {
            scope: scope.clone(),
            identifier,
            name: input.name,
            description: input.description,
            tags: input.tags,
            usable_from,
            allowed_hosts,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn get_secret_meta(&self, scope: &Scope, identifier: &str) -> Result<SecretMeta> {
        let row = sqlx::query(&format!(
            "SELECT {META_COLUMNS} FROM secrets WHERE scope_key = $1 AND identifier = $2"
        ))
        .bind(scope.key())
        .bind(identifier)
        .fetch_optional(&self.db().pool)
        .await?
        .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
        meta_from_row(&row)
    }

    /// The secrets defined at exactly `scope`, ordered by name.
    pub async fn list_secrets(&self, scope: &Scope, query: ListQuery) -> Result<Page<SecretMeta>> {
        let limit = effective_limit(query.limit);
        let mut f = Filter::default();
        f.push("scope_key = {}", scope.key());
        if let Some(s) = query.search.as_deref().filter(|s| !s.is_empty()) {
            f.push(
                "(name_key LIKE {} ESCAPE '\\' OR LOWER(identifier) LIKE {} ESCAPE '\\')",
                like_contains(s),
            );
        }
        let mut tx = self.db().begin_read().await?;
        let total: i64 = f
            .bind(sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM secrets{}",
                f.where_sql()
            )))
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let n = f.next_placeholder();
        let sql = format!(
            "SELECT {META_COLUMNS} FROM secrets{} ORDER BY name_key, identifier LIMIT ${} OFFSET ${}",
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
            items: rows.iter().map(meta_from_row).collect::<Result<_>>()?,
            total: total as u64,
            page: query.page,
            limit,
        })
    }

    /// Changes name, description, tags and (when given) the value.
    pub async fn update_secret(
        &self,
        scope: &Scope,
        identifier: &str,
        update: SecretUpdate,
    ) -> Result<SecretMeta> {
        let mut errs = ValidationErrors::default();
        validate_common(
            &mut errs,
            &update.name,
            update.description.as_deref(),
            &update.tags,
        );
        if let Some(v) = &update.value {
            validate_value(&mut errs, v);
        }
        let tags = serde_json::to_string(&update.tags).expect("a string map always serialises");
        let scope_key = scope.key();
        let now = now_ms();

        let kek = self.kek().read().await;
        let mut tx = self.db().begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {META_COLUMNS} FROM secrets WHERE scope_key = $1 AND identifier = $2"
        ))
        .bind(&scope_key)
        .bind(identifier)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
        let old = meta_from_row(&row)?;
        // Only what is given is checked: a grant to a project deleted since
        // must not block renaming the secret.
        let (usable_from, allowed_hosts) = checked_access(
            tx.conn(),
            scope,
            update.usable_from.as_deref().unwrap_or_default(),
            update.allowed_hosts.as_deref().unwrap_or_default(),
            &mut errs,
        )
        .await?;
        let usable_from = match update.usable_from {
            Some(_) => usable_from,
            None => old.usable_from.clone(),
        };
        let allowed_hosts = match update.allowed_hosts {
            Some(_) => allowed_hosts,
            None => old.allowed_hosts.clone(),
        };
        errs.into_result()?;
        sqlx::query(
            "UPDATE secrets SET name = $1, name_key = $2, description = $3, tags = $4, updated_at = $5, usable_from = $8, allowed_hosts = $9 WHERE scope_key = $6 AND identifier = $7",
        )
        .bind(&update.name)
        .bind(update.name.to_lowercase())
        .bind(update.description.as_deref())
        .bind(tags)
        .bind(now)
        .bind(&scope_key)
        .bind(identifier)
        .bind(keys_json(&usable_from))
        .bind(hosts_json(&allowed_hosts))
        .execute(tx.conn())
        .await?;
        if let Some(value) = &update.value {
            confirm_kek(tx.conn(), &kek).await?;
            let sealed = crypto::seal(&kek, &scope_key, identifier, value)?;
            sqlx::query(
                "UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3 WHERE scope_key = $4 AND identifier = $5",
            )
            .bind(sealed.key_id)
            .bind(sealed.nonce)
            .bind(sealed.ciphertext)
            .bind(&scope_key)
            .bind(identifier)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(SecretMeta {
            name: update.name,
            description: update.description,
            tags: update.tags,
            usable_from,
            allowed_hosts,
            updated_at: now,
            ..old
        })
    }

    /// Deletes a secret; Conflict naming the connectors (as `scope/identifier`)
    /// while any of them references it.
    pub async fn delete_secret(&self, scope: &Scope, identifier: &str) -> Result<()> {
        let mut tx = self.db().begin_write().await?;
        let id = secret_id(tx.conn(), scope, identifier)
            .await?
            .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
        let users: Vec<String> = sqlx::query(
            "SELECT DISTINCT c.scope_key, c.identifier FROM connector_secret_refs r
             JOIN connectors c ON c.id = r.connector_id
             WHERE r.secret_id = $1 ORDER BY c.scope_key, c.identifier",
        )
        .bind(id)
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| {
            Ok(format!(
                "{}/{}",
                r.try_get::<String, _>("scope_key")?,
                r.try_get::<String, _>("identifier")?
            ))
        })
        .collect::<Result<_>>()?;
        if !users.is_empty() {
            return Err(StoreError::conflict(format!(
                "{} is used by {} connector(s): {}; change or delete those connectors first",
                describe(scope, identifier),
                users.len(),
                list_some(&users)
            )));
        }
        let res = sqlx::query("DELETE FROM secrets WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await
            .map_err(StoreError::from);
        match res {
            Err(e) if e.is_foreign_key_violation() => {
                return Err(StoreError::conflict(format!(
                    "{} is still used by a connector; change or delete it first",
                    describe(scope, identifier)
                )))
            }
            r => r?,
        };
        tx.commit().await
    }

    /// Decrypts a secret's value, e.g. to hand it to a delegate for a task.
    pub async fn read_secret_value(&self, scope: &Scope, identifier: &str) -> Result<SecretValue> {
        let kek = self.kek().read().await;
        let row = sqlx::query(
            "SELECT key_id, nonce, ciphertext FROM secrets WHERE scope_key = $1 AND identifier = $2",
        )
        .bind(scope.key())
        .bind(identifier)
        .fetch_optional(&self.db().pool)
        .await?
        .ok_or_else(|| StoreError::not_found(describe(scope, identifier)))?;
        let sealed = sealed_from_row(&row)?;
        crypto::open(
            &kek,
            &scope.key(),
            identifier,
            &sealed,
            &describe(scope, identifier),
        )
    }

    /// Resolves a reference as a connector at `holder` would write it (`x`,
    /// `org.x`, `account.x`). A malformed reference or one pointing below the
    /// holder's scope is a Validation error on the field `secretRef`.
    pub async fn resolve_secret_ref(&self, holder: &Scope, reference: &str) -> Result<SecretMeta> {
        let r = SecretRef::parse(reference).map_err(|e| StoreError::validation("secretRef", e))?;
        let scope = r
            .resolve_scope(holder)
            .map_err(|e| StoreError::validation("secretRef", e))?;
        match self.get_secret_meta(&scope, &r.identifier).await {
            Err(StoreError::NotFound { .. }) => Err(StoreError::not_found(format!(
                "secret '{reference}' in {}",
                scope_phrase(&scope)
            ))),
            other => other,
        }
    }

    /// Re-encrypts every secret under `new` in one transaction, then uses `new`
    /// from here on. Returns how many secrets were re-encrypted. Other processes
    /// sharing the database must be restarted with the new key.
    pub async fn rotate_kek(&self, new: Kek) -> Result<u64> {
        let mut current = self.kek().write().await;
        let mut tx = self.db().begin_write().await?;
        let res =
            sqlx::query("UPDATE tether_meta SET value = $1 WHERE name = 'kek_id' AND value = $2")
                .bind(new.key_id())
                .bind(current.key_id())
                .execute(tx.conn())
                .await?;
        if res.rows_affected() != 1 {
            return Err(StoreError::Crypto {
                message: format!("cannot rotate: {WRONG_KEY}"),
            });
        }
        let rows =
            sqlx::query("SELECT id, scope_key, identifier, key_id, nonce, ciphertext FROM secrets")
                .fetch_all(tx.conn())
                .await?;
        let mut count = 0u64;
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let scope_key: String = r.try_get("scope_key")?;
            let identifier: String = r.try_get("identifier")?;
            let what = format!("secret '{identifier}' ({scope_key})");
            let value = crypto::open(
                &current,
                &scope_key,
                &identifier,
                &sealed_from_row(r)?,
                &what,
            )?;
            let sealed = crypto::seal(&new, &scope_key, &identifier, &value)?;
            sqlx::query(
                "UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3 WHERE id = $4",
            )
            .bind(sealed.key_id)
            .bind(sealed.nonce)
            .bind(sealed.ciphertext)
            .bind(id)
            .execute(tx.conn())
            .await?;
            count += 1;
        }
        tx.commit().await?;
        *current = new;
        Ok(count)
    }

    /// Records this key as the database's key on first use, and refuses a key
    /// that differs from the recorded one while secrets exist.
    pub(crate) async fn check_kek_on_open(&self) -> Result<()> {
        let kek = self.kek().read().await;
        let mut tx = self.db().begin_write().await?;
        let stored: Option<String> =
            sqlx::query("SELECT value FROM tether_meta WHERE name = 'kek_id'")
                .fetch_optional(tx.conn())
                .await?
                .map(|r| r.try_get("value"))
                .transpose()?;
        match stored {
            None => {
                sqlx::query("INSERT INTO tether_meta (name, value) VALUES ('kek_id', $1)")
                    .bind(kek.key_id())
                    .execute(tx.conn())
                    .await?;
            }
            Some(id) if id == kek.key_id() => {}
            Some(id) => {
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM secrets")
                    .fetch_one(tx.conn())
                    .await?
                    .try_get("n")?;
                if n > 0 {
                    return Err(StoreError::Crypto {
                        message: format!(
                            "{WRONG_KEY} ({n} secret(s) were written with key id {id}; the key given has id {})",
                            kek.key_id()
                        ),
                    });
                }
                // Nothing is sealed yet, so nothing is lost by adopting the new key.
                sqlx::query("UPDATE tether_meta SET value = $1 WHERE name = 'kek_id'")
                    .bind(kek.key_id())
                    .execute(tx.conn())
                    .await?;
            }
        }
        tx.commit().await
    }
}
