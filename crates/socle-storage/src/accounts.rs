//! Storage of users, memberships, API tokens and the audit trail. A separate
//! trait from [`crate::Store`] keeps the two concerns readable; every backend
//! implements both.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{ApiToken, AuditEntry, Credentials, Email, OrganisationId, Role, User, UserId};

use crate::Result;

/// A web session as stored. The session id itself is never stored, only its
/// SHA-256, so a copy of the database cannot be used to sign in.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSession {
    pub user: UserId,
    /// The synchronizer token every state-changing form of this session carries.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Absolute expiry, whatever the activity.
    pub expires_at: DateTime<Utc>,
}

/// An OpenID Connect authorization request in progress, keyed by the hash of
/// its `state` parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOidcLogin {
    pub nonce: String,
    pub pkce_verifier: String,
    /// Local path to go to once signed in.
    pub return_to: String,
    pub expires_at: DateTime<Utc>,
}

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

    async fn create_session(&self, id_hash: &str, session: &WebSession) -> Result<()>;
    async fn session(&self, id_hash: &str) -> Result<Option<WebSession>>;
    /// Records activity (for the idle expiry).
    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()>;
    /// Returns whether the session existed.
    async fn delete_session(&self, id_hash: &str) -> Result<bool>;
    /// Signs a user out everywhere (after a password change); returns the count.
    async fn delete_user_sessions(&self, user: UserId) -> Result<u64>;

    async fn create_password_reset(
        &self,
        token_hash: &str,
        user: UserId,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// The user of a reset token still usable at `now`, without using it.
    async fn password_reset_user(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<UserId>>;
    /// Uses a reset token: returns its user once, and retires every other
    /// outstanding token of that user.
    async fn use_password_reset(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<UserId>>;

    async fn user_by_oidc_subject(&self, subject: &str) -> Result<Option<User>>;
    /// Links an OpenID Connect subject to a user; `Conflict` if another user has it.
    async fn set_oidc_subject(&self, user: UserId, subject: &str) -> Result<()>;
    async fn create_oidc_login(&self, state_hash: &str, login: &PendingOidcLogin) -> Result<()>;
    /// Removes and returns a pending login if it has not expired: single use.
    async fn take_oidc_login(&self, state_hash: &str, now: DateTime<Utc>) -> Result<Option<PendingOidcLogin>>;

    /// Deletes sessions past their absolute expiry or idle since `idle_before`,
    /// expired or used reset tokens and expired pending logins. Returns rows deleted.
    async fn purge_expired_sign_ins(&self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64>;

    /// Appends to the audit trail, which storage refuses to update or delete.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Newest first; `organisations: None` for every organisation.
    async fn audit_log(&self, organisations: Option<&[OrganisationId]>, limit: u32) -> Result<Vec<AuditEntry>>;
}
