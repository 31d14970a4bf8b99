use socle_domain::DomainError;
use thiserror::Error;

/// Why a rule could not be built. Messages are for developers and logs; the HTTP
/// layer maps the variant (and `field`, a JSON name of the rule) to a translated
/// problem detail, so the rule editor can point at the faulty input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RuleError {
    #[error("invalid rule id {0:?}: expected 1-64 characters among A-Z, a-z, 0-9, '-' and '_'")]
    RuleId(String),
    #[error("invalid local time span {0:?}: expected HH:MM-HH:MM")]
    LocalSpan(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: &'static str },
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl RuleError {
    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        Self::Invalid { field, reason }
    }
}
