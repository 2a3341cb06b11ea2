//! API tokens: `tth_` followed by 32 random bytes (base64url). Only the
//! SHA-256 of a token is stored.
//!
//! Why a plain, fast hash rather than a password hash (argon2, bcrypt): those
//! exist to slow down guessing of low-entropy passwords. A token carries 256
//! random bits, so no amount of guessing speed makes a brute force feasible, and
//! a fast hash keeps authenticating every API request cheap. The lookup by hash
//! also leaks nothing through timing: finding a stored hash would need a SHA-256
//! preimage.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use tether_domain::{validate_name, Scope};

use crate::crypto::{ensure_dir, sync_parent, SecretValue};
use crate::db::{now_ms, LOCK_BOOTSTRAP_TOKEN};
use crate::error::{Result, StoreError};
use crate::scopes::ensure_scope_exists;
use crate::Store;

/// Every token starts with this, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "tth_";
/// File in the data directory that receives the first admin token.
pub const ADMIN_TOKEN_FILE_NAME: &str = "admin-token";
/// `tth_` plus 32 bytes in unpadded base64url.
const TOKEN_LEN: usize = 4 + 43;

/// What a token may do within its scope (and the scopes below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read connectors, secret metadata and status.
    Viewer,
    /// Viewer plus create, change and delete connectors and secrets.
    Editor,
    /// Editor plus orgs, projects and tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Case-insensitive inverse of [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Editor, Role::Admin]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// A token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub role: Role,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// What the token may do besides its role, and until when.
    pub grant: TokenGrant,
}

/// A token's grants beyond its role (the Kubernetes API of connectors) and its
/// expiry. The default grants nothing and never expires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenGrant {
    /// May use the Kubernetes API of the connectors in its scope (`/k8s/...`).
    pub kube_access: bool,
    /// Only this connector's: `<scope key>/<identifier>`.
    pub kube_connector: Option<String>,
    /// Milliseconds since the Unix epoch; the token stops working then.
    pub expires_at: Option<i64>,
}

impl TokenGrant {
    /// The `kube_connector` value naming one connector.
    pub fn connector_key(scope: &Scope, identifier: &str) -> String {
        format!("{}/{identifier}", scope.key())
    }

    /// True when this grant covers the Kubernetes API of that connector.
    pub fn allows_connector(&self, scope: &Scope, identifier: &str) -> bool {
        self.kube_access
            && self
                .kube_connector
                .as_deref()
                .is_none_or(|c| c == Self::connector_key(scope, identifier))
    }
}

/// What is stored of a token: hex SHA-256 (see the module comment).
pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `prefix` followed by 32 random bytes in unpadded base64url.
pub(crate) fn new_token_value(prefix: &str) -> SecretValue {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let t = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    SecretValue::new(t)
}

/// A random 16-hex-digit id for a token row.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn record_from_row(r: &AnyRow) -> Result<TokenRecord> {
    let id: String = r.try_get("id")?;
    let scope_key: String = r.try_get("scope_key")?;
    let role: String = r.try_get("role")?;
    let corrupt = |what: &str| StoreError::Corrupt {
        message: format!("API token {id} has an unreadable {what} in the database"),
    };
    Ok(TokenRecord {
        scope: Scope::from_key(&scope_key).ok_or_else(|| corrupt("scope"))?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        grant: TokenGrant {
            kube_access: r.try_get::<i64, _>("kube_access")? != 0,
            kube_connector: r.try_get("kube_connector")?,
            expires_at: r.try_get("expires_at")?,
        },
        id,
    })
}

const COLUMNS: &str =
    "id, name, scope_key, role, created_at, revoked_at, kube_access, kube_connector, expires_at";

impl Store {
    /// Creates a token; the plaintext is returned once and never stored.
    pub async fn create_token(
        &self,
        name: &str,
        scope: &Scope,
        role: Role,
    ) -> Result<(TokenRecord, SecretValue)> {
        self.create_token_with(name, scope, role, TokenGrant::default())
            .await
    }

    /// [`Store::create_token`] with grants and an expiry.
    pub async fn create_token_with(
        &self,
        name: &str,
        scope: &Scope,
        role: Role,
        grant: TokenGrant,
    ) -> Result<(TokenRecord, SecretValue)> {
        validate_name(name).map_err(|e| StoreError::validation("name", e))?;
        let mut tx = self.db().begin_write().await?;
        ensure_scope_exists(tx.conn(), scope).await?;
        let (record, token) = insert_token(tx.conn(), name, scope, role, grant).await?;
        tx.commit().await?;
        Ok((record, token))
    }

    /// Of these token ids, those revoked, expired (at `now`) or deleted: open
    /// streams of theirs must end.
    pub async fn invalid_tokens(&self, ids: &[String], now: i64) -> Result<Vec<String>> {
        let mut invalid = Vec::new();
        for chunk in ids.chunks(100) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT id FROM api_tokens WHERE id IN ({list}) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)"
            );
            let mut q = sqlx::query(&sql).bind(now);
            for id in chunk {
                q = q.bind(id);
            }
            let valid: Vec<String> = q
                .fetch_all(&self.db().pool)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<std::result::Result<_, _>>()?;
            invalid.extend(chunk.iter().filter(|id| !valid.contains(id)).cloned());
        }
        Ok(invalid)
    }

    /// The live, unrevoked token with this plaintext, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenRecord>> {
        // Cheap rejection of anything that cannot be one of ours.
        if token.len() != TOKEN_LEN || !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .bind(hash_token(token))
        .bind(now_ms())
        .fetch_optional(&self.db().pool)
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Tokens of exactly `scope`, revoked ones included, oldest first.
    pub async fn list_tokens(&self, scope: &Scope) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE scope_key = $1 ORDER BY created_at, id"
        ))
        .bind(scope.key())
        .fetch_all(&self.db().pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    pub async fn get_token(&self, id: &str) -> Result<TokenRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db().pool)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("API token '{id}'")))?;
        record_from_row(&row)
    }

    /// Revokes a token at once; revoking a revoked token keeps its first
    /// revocation time.
    ///
    /// The last live admin token of the account cannot be revoked: nobody
    /// could manage the account afterwards.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRecord> {
        let mut tx = self.db().begin_write().await?;
        // Managers sharing PostgreSQL: two revocations at once must not each
        // count the other's token as the one that remains.
        self.db().pg_lock(tx.conn(), LOCK_BOOTSTRAP_TOKEN).await?;
        let account = Scope::Account.key();
        let row = sqlx::query("SELECT scope_key, role, revoked_at FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
        if let Some(r) = row {
            let (scope_key, role, revoked): (String, String, Option<i64>) = (
                r.try_get("scope_key")?,
                r.try_get("role")?,
                r.try_get("revoked_at")?,
            );
            if scope_key == account && role == Role::Admin.as_str() && revoked.is_none() {
                let others: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens WHERE scope_key = $1 AND role = $2 AND revoked_at IS NULL AND id <> $3")
                    .bind(&account)
                    .bind(Role::Admin.as_str())
                    .bind(id)
                    .fetch_one(tx.conn())
                    .await?
                    .try_get("n")?;
                if others == 0 {
                    return Err(StoreError::conflict(format!(
                        "API token '{id}' is the last live admin token of the account: revoking it would leave nobody able to manage tether. Create another first (`tether token create --name NAME --role admin`), then revoke this one"
                    )));
                }
            }
        }
        let res = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(now_ms())
        .bind(id)
        .execute(tx.conn())
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("API token '{id}'")));
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        record_from_row(&row)
    }

    /// On the very first start (no token at all, revoked ones included) creates
    /// an account-scope admin token, writes it to `data_dir/admin-token` (mode
    /// 0600) and returns it so the caller can print it once. Later starts return
    /// `None`.
    pub async fn ensure_admin_token(&self, data_dir: &Path) -> Result<Option<SecretValue>> {
        let mut tx = self.db().begin_write().await?;
        // Servers sharing one PostgreSQL database may start together.
        self.db().pg_lock(tx.conn(), LOCK_BOOTSTRAP_TOKEN).await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(tx.conn())
            .await?
            .try_get("n")?;
        if n > 0 {
            return Ok(None);
        }
        let (_, token) = insert_token(
            tx.conn(),
            "initial admin",
            &Scope::Account,
            Role::Admin,
            TokenGrant::default(),
        )
        .await?;
        // The file is written before the commit: if we crash in between, the
        // next start finds no token and tries again. The other order could
        // commit a token nobody ever saw, locking the operator out.
        let path = data_dir.join(ADMIN_TOKEN_FILE_NAME);
        write_private_file(data_dir, &path, token.expose())?;
        if let Err(e) = tx.commit().await {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(Some(token))
    }
}

async fn insert_token(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    scope: &Scope,
    role: Role,
    grant: TokenGrant,
) -> Result<(TokenRecord, SecretValue)> {
    let token = new_token_value(TOKEN_PREFIX);
    let record = TokenRecord {
        id: new_id(),
        name: name.to_string(),
        scope: scope.clone(),
        role,
        created_at: now_ms(),
        revoked_at: None,
        grant,
    };
    sqlx::query(
        "INSERT INTO api_tokens (id, name, scope_key, role, token_hash, created_at, revoked_at, kube_access, kube_connector, expires_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9)",
    )
    .bind(&record.id)
    .bind(&record.name)
    .bind(scope.key())
    .bind(role.as_str())
    .bind(hash_token(token.expose()))
    .bind(record.created_at)
    .bind(i64::from(record.grant.kube_access))
    .bind(record.grant.kube_connector.clone())
    .bind(record.grant.expires_at)
    .execute(conn)
    .await?;
    Ok((record, token))
}

/// Replaces `path` atomically with a 0600 file holding `text` and a newline.
fn write_private_file(dir: &Path, path: &Path, text: &str) -> Result<()> {
    ensure_dir(dir)?;
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| StoreError::io("cannot create", &tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::io("cannot write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io("cannot rename into place", path, e))?;
    sync_parent(path);
    Ok(())
}
