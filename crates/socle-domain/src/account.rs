//! People and machines that call Socle: users with their memberships, and
//! API tokens. Secrets (password hashes, token hashes) never leave storage
//! except to the code that verifies them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::access::{Email, Role, TokenScope};
use crate::organisation::OrganisationId;

/// Random, opaque, stable: what logs and the audit trail use for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct UserId(pub uuid::Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
    pub fn parse(s: &str) -> Result<Self, crate::DomainError> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| crate::DomainError::UnknownVariant { what: "user id", value: s.to_owned() })
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Membership {
    pub organisation: OrganisationId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub disabled: bool,
    pub memberships: Vec<Membership>,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
}

/// What the login path needs: the user, its password hash, and its lock state.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
    pub failed_logins: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Acts for its user, within one organisation and its scope.
    Personal,
    /// Lets a network server push measurements for one organisation; nothing else.
    Ingestion,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Ingestion => "ingestion",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = crate::DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "personal" => Ok(Self::Personal),
            "ingestion" => Ok(Self::Ingestion),
            _ => Err(crate::DomainError::UnknownVariant { what: "token kind", value: s.to_owned() }),
        }
    }
}

/// A token as stored: only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    pub id: uuid::Uuid,
    pub kind: TokenKind,
    pub label: String,
    /// The user it acts for (personal tokens).
    pub user: Option<UserId>,
    pub organisation: OrganisationId,
    pub scope: TokenScope,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "expiresAt")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(rename = "revokedAt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// One line of the append-only audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `user:<uuid>`, `token:<uuid>`, `anonymous`, `system`, or `ip:<address>` for failed logins.
    pub actor: String,
    pub organisation: Option<OrganisationId>,
    /// `login.failed`, `user.create`, `token.revoke`, `personal.read`…
    pub action: String,
    pub object: String,
    /// Free text without personal data.
    pub detail: String,
}
