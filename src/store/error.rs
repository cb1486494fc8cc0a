//! The one error type of the storage layer.
//!
//! Callers turn it into a problem document once (DESIGN §5): `NotFound` into a
//! 404, `Conflict` into a 409, `Database` into a 5xx whose body says nothing
//! about the cause. The variants stay structured and their messages never
//! contain SQL; the driver error is kept as the `source` for the logs only.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record asked for does not exist (or has expired).
    #[error("record not found")]
    NotFound,
    /// A record with the same unique key already exists.
    #[error("record conflicts with an existing one")]
    Conflict,
    /// The database failed or could not be reached; see the source.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Conflict,
            other => StoreError::Database(other),
        }
    }
}

/// A stored state text that no variant of its Rust enum matches.
#[derive(Debug, thiserror::Error)]
#[error("unknown variant {0:?}")]
pub struct UnknownVariant(pub String);
