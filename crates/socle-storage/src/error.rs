use thiserror::Error;

/// Storage failures. Backend error text stays in logs; the HTTP layer maps
/// variants to problem details without showing it to clients.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("entity {0} does not exist")]
    UnknownEntity(String),
    #[error("entity {entity} has no series {attribute}")]
    UnknownSeries { entity: String, attribute: String },
    #[error("series {attribute} of {entity} holds text; only numeric series have hourly or daily rollups")]
    NotNumeric { entity: String, attribute: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("user {0} does not exist")]
    UnknownUser(String),
    #[error("organisation {0} does not exist")]
    UnknownOrganisation(String),
    #[error("attribute {attribute} of {entity} already holds {existing} values; got a {got} value")]
    ValueKindMismatch { entity: String, attribute: String, existing: &'static str, got: &'static str },
    #[error("the database schema is at version {found}, newer than this Socle ({supported}); upgrade Socle")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("SQLite connection pool: {0}")]
    SqlitePool(#[from] r2d2::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    PostgresPool(String),
    #[error("PostgreSQL configuration: {0}")]
    PostgresConfig(String),
    #[error("I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => Self::Postgres(e),
            other => Self::PostgresPool(other.to_string()),
        }
    }
}

impl StoreError {
    /// Whether the caller sent something wrong (as opposed to storage failing).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::UnknownEntity(_)
                | Self::UnknownSeries { .. }
                | Self::NotNumeric { .. }
                | Self::UnknownOrganisation(_)
                | Self::UnknownUser(_)
                | Self::Conflict(_)
                | Self::ValueKindMismatch { .. }
        )
    }
}
