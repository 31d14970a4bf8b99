//! The domain model of Socle, independent of storage and transport.
//!
//! Every identifier and value that crosses a boundary (HTTP, CLI, storage) is
//! parsed into one of these types first, so the rest of the code can rely on
//! it being valid ("parse, don't validate").

pub mod access;
pub mod account;
pub mod downlink;
pub mod entity;
pub mod error;
pub mod geo;
pub mod observation;
pub mod organisation;
pub mod series;

pub use access::{Audience, Email, Reach, Role, TokenScope, Visibility};
pub use account::{ApiToken, AuditEntry, Credentials, Membership, TokenKind, User, UserId};
pub use downlink::DownlinkStatus;
pub use entity::{
    Attribute, AttributeCondition, AttributeName, Comparison, Entity, EntityFilter, EntityId, EntityMatch, EntityType,
    Scalar, UnitCode, ValueTest,
};
pub use error::DomainError;
pub use geo::{BBox, Geometry};
pub use observation::{Finite, Observation, ObservedValue, WriteOutcome};
pub use organisation::{NewOrganisation, OfficialCode, Organisation, OrganisationId, OrganisationKind};
pub use series::{Aggregate, RawPoint, RollupPoint, SeriesInfo, SeriesPoints, SeriesQuery, Step, TimeRange};

/// A page of results with the total number of matches.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub total: u64,
    pub items: Vec<T>,
}
