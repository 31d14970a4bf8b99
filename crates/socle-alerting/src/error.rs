use thiserror::Error;

#[derive(Debug, Error)]
pub enum AlertingError {
    #[error(transparent)]
    Store(#[from] socle_storage::StoreError),
    #[error("rule {id} is not valid: {source}")]
    Rule { id: String, source: serde_json::Error },
    #[error("the saved engine state cannot be read: {0}")]
    Snapshot(serde_json::Error),
    #[error(transparent)]
    Domain(#[from] socle_domain::DomainError),
    #[error("the alerting service has stopped")]
    Stopped,
}
