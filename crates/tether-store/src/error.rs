//! The one error type of the store. Every message says what is wrong and, where
//! the caller can act on it, how to fix it, because the server passes these
//! messages on to API clients and operators more or less verbatim.
//!
//! No variant ever carries a secret value, a key or a database password.

use std::path::PathBuf;

use tether_domain::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `what` names the entity and where it was looked for, e.g.
    /// `connector 'prod' in project 'o/p'`.
    #[error("{what} not found")]
    NotFound { what: String },

    /// The write conflicts with what is stored (duplicate identifier, entity still
    /// in use). The message names the conflicting entities.
    #[error("{message}")]
    Conflict { message: String },

    /// The input breaks a rule; each error names its field.
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationErrors),

    /// A connector may not use a secret it references: the secret has no use
    /// grant for the connector's scope, or is bound to hosts the connector's
    /// URL is not one of. Each error names the field at fault and how to get
    /// the grant.
    #[error("secret use not permitted: {0}")]
    SecretUseDenied(ValidationErrors),

    /// A secret could not be encrypted or decrypted: the wrong key-encryption key,
    /// or a ciphertext that was altered or moved to another row.
    #[error("{message}")]
    Crypto { message: String },

    /// Misconfiguration found while opening the store or loading the key.
    #[error("{message}")]
    Config { message: String },

    /// Reading or writing a file of the data directory (key, admin token) failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A stored row could not be read back (e.g. a connector document that no
    /// longer parses): only possible after a manual edit or a downgrade.
    #[error("{message}")]
    Corrupt { message: String },

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        StoreError::Conflict {
            message: message.into(),
        }
    }

    pub(crate) fn validation(field: &str, message: impl Into<String>) -> Self {
        let mut errs = ValidationErrors::default();
        errs.push(field, message);
        StoreError::Validation(errs)
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True when the database refused a duplicate key; callers turn that into a
    /// [`StoreError::Conflict`] that names the entity.
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e))
            if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }

    /// True when a foreign key refused the write (a row still referenced, or a
    /// parent that vanished under a concurrent delete).
    pub(crate) fn is_foreign_key_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e))
            if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
    }
}

/// The text of the error an operator sees when the key does not fit the data.
pub(crate) const WRONG_KEY: &str = "the key-encryption key does not match the one these secrets were written with; start with the right TETHER_KEK/--kek-file";
