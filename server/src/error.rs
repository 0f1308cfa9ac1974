//! The one error type of the server's domain and store.
//!
//! Every fallible operation below the HTTP edge returns [`Error`]. The HTTP layer
//! (`http::error`) maps each variant to a status code and a stable JSON `code`;
//! the CLI prints it. Variants carry what a person needs to act: which field,
//! which case, which transition.

use std::fmt;

/// Result alias for the server's domain and store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that fails validation. `field` is the JSON path of the culprit.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    /// The thing asked for does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),

    /// The caller is authenticated but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),

    /// No or bad credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),

    /// The request clashes with current state (duplicate key, stale update).
    #[error("conflict: {0}")]
    Conflict(String),

    /// A case status change the status machine does not allow.
    #[error("illegal transition from {from} to {to}: {reason}")]
    IllegalTransition {
        from: String,
        to: String,
        reason: String,
    },

    /// Stored data that breaks an invariant (e.g. an unknown enum value in a row).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),

    /// A failure inside the server that is none of the caller's doing
    /// (e.g. the password hasher).
    #[error("internal error: {0}")]
    Internal(String),

    /// A facility this server lacks (e.g. Chromium for PDF reports); the
    /// message says how to provide it.
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// Anything the database reports that is not one of the above.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::NotFound(what.to_string())
    }

    pub fn forbidden(why: impl fmt::Display) -> Self {
        Error::Forbidden(why.to_string())
    }

    pub fn conflict(why: impl fmt::Display) -> Self {
        Error::Conflict(why.to_string())
    }
}
