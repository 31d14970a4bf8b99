//! Storage of users, memberships, API tokens and the audit trail. A separate
//! trait from [`crate::Store`] keeps the two concerns readable; every backend
//! implements both.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{ApiToken, AuditEntry, Credentials, Email, OrganisationId, Role, User, UserId};

use crate::Result;

#[async_trait]
pub trait Accounts: Send + Sync {
    /// Creates a user; `StoreError::Conflict` if the e-mail is taken.
    async fn create_user(&self, email: &Email, display_name: &str, password_hash: Option<&str>) -> Result<User>;
    async fn user(&self, id: UserId) -> Result<Option<User>>;
    /// What login needs, looked up by e-mail.
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn set_password(&self, id: UserId, password_hash: &str) -> Result<()>;
    /// Records a login attempt: success resets the failure count and lock;
    /// failure increments it and applies `lock_until` if given. Returns the
    /// failure count after the update.
    async fn record_login(&self, id: UserId, success: bool, lock_until: Option<DateTime<Utc>>) -> Result<u32>;
    async fn grant(&self, user: UserId, organisation: &OrganisationId, role: Role) -> Result<()>;
    /// Returns whether the membership existed.
    async fn revoke(&self, user: UserId, organisation: &OrganisationId, role: Role) -> Result<bool>;

    async fn create_token(&self, token: &ApiToken, secret_hash: &str) -> Result<()>;
    async fn token_by_secret_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>>;
    async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>>;
    /// Returns whether a token was revoked now (false: unknown or already revoked).
    async fn revoke_token(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<bool>;

    /// Appends to the audit trail, which storage refuses to update or delete.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Newest first; `organisations: None` for every organisation.
    async fn audit_log(&self, organisations: Option<&[OrganisationId]>, limit: u32) -> Result<Vec<AuditEntry>>;
}
