//! Who may see and do what: roles held in organisations, the visibility of
//! what can be read, and the scopes of API tokens. The decisions themselves
//! are taken in one place, `socle_api::policy`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A role a user holds in one organisation. A user may hold different roles
/// in different organisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages the organisation (and, for a syndicate, its member communes).
    Admin,
    /// Operates: watches, acknowledges, intervenes.
    Agent,
    /// Élu: reads indicators.
    Elected,
    /// Contractor or neighbour: sees only what was shared with its organisation.
    Partner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Agent, Role::Elected, Role::Partner];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Elected => "elected",
            Role::Partner => "partner",
        }
    }
}

impl FromStr for Role {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DomainError::UnknownVariant { what: "role", value: s.to_owned() })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may read an object, beyond the administrators of its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// The owning organisation only.
    #[default]
    Private,
    /// The owning organisation, its parent and its children.
    Internal,
    /// As internal, plus the partner organisations it is shared with.
    Partners,
    /// Everyone, anonymous visitors included.
    Public,
}

impl Visibility {
    pub const ALL: [Visibility; 4] = [Self::Private, Self::Internal, Self::Partners, Self::Public];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Internal => "internal",
            Self::Partners => "partners",
            Self::Public => "public",
        }
    }
}

impl FromStr for Visibility {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| DomainError::UnknownVariant { what: "visibility", value: s.to_owned() })
    }
}

/// What an API token may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Write,
    Admin,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for TokenScope {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            _ => Err(DomainError::UnknownVariant { what: "token scope", value: s.to_owned() }),
        }
    }
}

/// A normalised e-mail address (trimmed, lower-case). Personal data: it
/// never goes to logs, which use the user id instead.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim().to_lowercase();
        let valid = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                    && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            });
        if valid {
            Ok(Self(s))
        } else {
            Err(DomainError::Email)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Debug would put the address in logs by accident.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl TryFrom<String> for Email {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse("  Agent@Saint-Aubin.FR ").unwrap().as_str(), "agent@saint-aubin.fr");
        for bad in ["", "a@b", "@b.fr", "a b@c.fr", "a@.fr", "a@b.fr."] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{:?}", Email::parse("x@y.fr").unwrap()), "Email(<redacted>)");
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(TokenScope::Admin > TokenScope::Write && TokenScope::Write > TokenScope::Read);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = Email::parse(&s);
            let _ = s.parse::<Role>();
            let _ = s.parse::<Visibility>();
        }
    }
}

/// What a caller may read, computed once per request by the policy from the
/// caller's memberships. Storage applies it to every list query, and
/// [`Audience::can_see`] applies the same rule to single objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Audience {
    /// Socle itself (demo generator, CLI, background tasks): no restriction.
    /// Request handlers never get this one.
    System,
    /// Anonymous visitors: public objects only.
    #[default]
    Public,
    /// A signed-in user or a token: public objects plus what `Reach` allows.
    Members(Reach),
}

/// The organisation sets behind a restricted audience.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    /// Objects of these organisations are visible whatever their visibility.
    pub full: Vec<crate::OrganisationId>,
    /// Internal (and partners) objects of these organisations are visible:
    /// the caller's organisations with their parents and children.
    pub internal: Vec<crate::OrganisationId>,
    /// Partners objects shared with one of these organisations are visible.
    pub partner: Vec<crate::OrganisationId>,
}

impl Audience {
    pub fn can_see(
        &self,
        owner: &crate::OrganisationId,
        visibility: Visibility,
        shared_with: &[crate::OrganisationId],
    ) -> bool {
        match self {
            Audience::System => true,
            _ if visibility == Visibility::Public => true,
            Audience::Public => false,
            Audience::Members(r) => {
                r.full.contains(owner)
                    || (matches!(visibility, Visibility::Internal | Visibility::Partners) && r.internal.contains(owner))
                    || (visibility == Visibility::Partners && shared_with.iter().any(|o| r.partner.contains(o)))
            }
        }
    }
}
