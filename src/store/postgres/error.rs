//! The PostgreSQL backend's own failures, and how each maps into [`StoreError`].

use std::sync::Arc;

use crate::store::StoreError;

const BACKEND: &str = "postgres";

/// What can go wrong in this backend; always reported as a [`StoreError`] that keeps it as
/// the source.
#[derive(Debug, thiserror::Error)]
pub(super) enum PgError {
    /// The driver or the server failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// One failure of a batch statement, reported to every caller in the batch.
    #[error(transparent)]
    Shared(Arc<sqlx::Error>),
    /// An applied migration's SQL differs from the one embedded in this version.
    #[error("migration {version} in schema {schema} was applied with different SQL")]
    MigrationChanged { version: i32, schema: String },
    /// The schema was migrated by a newer hookdock.
    #[error(
        "schema {schema} has hookdock migration {found}, newer than the {known} this version \
         of hookdock knows; upgrade hookdock to use it"
    )]
    SchemaTooNew {
        schema: String,
        found: i32,
        known: i32,
    },
    /// The schema was never migrated and this store was told not to.
    #[error("schema {0} has no hookdock tables; run PgStore::migrate, or open with migrate(true)")]
    NotMigrated(String),
    /// Concurrent changes kept a statement from settling.
    #[error("{0} kept racing with concurrent changes; giving up")]
    Raced(&'static str),
}

impl PgError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Sql(e) => transient(e),
            Self::Shared(e) => transient(e),
            Self::Raced(_) => true,
            Self::MigrationChanged { .. } | Self::SchemaTooNew { .. } | Self::NotMigrated(_) => {
                false
            }
        }
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match &e {
            PgError::Sql(sqlx::Error::PoolClosed) => return StoreError::Closed,
            PgError::Shared(shared) if matches!(**shared, sqlx::Error::PoolClosed) => {
                return StoreError::Closed
            }
            _ => {}
        }
        if e.is_transient() {
            StoreError::unavailable(BACKEND, e)
        } else {
            StoreError::internal(BACKEND, e)
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        PgError::Sql(e).into()
    }
}

/// Failures another try may not meet: the connection, the server's resources or state, a
/// conflict with a concurrent transaction.
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // 08 connection, 40 transaction rollback (serialization, deadlock), 53
            // insufficient resources, 57 operator intervention (shutdown, cannot connect now),
            // 58 system error (I/O), 55P03 lock not available, 25006 read-only transaction
            // (a standby).
            ["08", "40", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
                || matches!(code, "55P03" | "25006")
        }
        _ => false,
    }
}

/// True for a database error caused by the data of one statement (a value too long, a bad
/// byte sequence, a program limit): running the rows of a batch alone finds the one to blame.
pub(super) fn blames_input(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            code.starts_with("22") || code.starts_with("54")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorKind;

    #[test]
    fn connection_failures_are_transient_the_rest_internal() {
        let io: StoreError = sqlx::Error::Io(std::io::Error::other("reset")).into();
        assert_eq!(io.kind(), ErrorKind::Transient);
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolClosed),
            StoreError::Closed
        ));
        let decode: StoreError = sqlx::Error::ColumnNotFound("x".into()).into();
        assert_eq!(decode.kind(), ErrorKind::Internal);
        let newer: StoreError = PgError::SchemaTooNew {
            schema: "public".into(),
            found: 9,
            known: 2,
        }
        .into();
        assert_eq!(newer.kind(), ErrorKind::Internal);
        assert!(newer.to_string().contains("newer"), "{newer}");
    }
}
