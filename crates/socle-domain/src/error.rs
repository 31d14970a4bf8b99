use thiserror::Error;

/// Why a value could not become a domain value. Messages are for developers;
/// the HTTP layer turns the variant into a translated problem detail.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DomainError {
    #[error("invalid organisation id {0:?}: expected 1-64 characters among a-z, 0-9 and '-'")]
    OrganisationId(String),
    #[error("invalid official code {0:?}: expected an INSEE code (5 characters) or a SIREN (9 digits)")]
    OfficialCode(String),
    #[error("unknown organisation kind {0:?}")]
    OrganisationKind(String),
    #[error("invalid entity id {0:?}: expected urn:ngsi-ld:<Type>:<local-id>")]
    EntityId(String),
    #[error("invalid entity type {0:?}")]
    EntityType(String),
    #[error("invalid attribute name {0:?}")]
    AttributeName(String),
    #[error("invalid unit code {0:?}: expected a UN/CEFACT common code")]
    UnitCode(String),
    #[error("invalid geometry: {0}")]
    Geometry(String),
    #[error("invalid bounding box: {0}")]
    BBox(String),
    #[error("value is not a finite number")]
    NotFinite,
    #[error("invalid time range: {0}")]
    TimeRange(String),
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("invalid e-mail address")]
    Email,
    #[error("unknown {what} {value:?}")]
    UnknownVariant { what: &'static str, value: String },
}
