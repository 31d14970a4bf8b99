//! JSON shapes of the API, separate from domain types so the wire format is
//! a deliberate, documented contract (see `docs/openapi.json`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use socle_domain::{Entity, Organisation, RollupPoint, SeriesInfo};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationDto {
    /// Stable identifier, e.g. `commune-saint-aubin-sur-lemance`.
    pub id: String,
    /// commune, epci, syndicat, departement or partenaire.
    pub kind: String,
    pub name: String,
    /// INSEE code (communes) or SIREN.
    pub code: String,
    pub parent: Option<String>,
    pub population: Option<u32>,
    pub timezone: String,
    /// Days of raw observations kept; rollups are kept for ever. Absent: no limit.
    #[serde(rename = "retentionDays")]
    pub retention_days: Option<u32>,
}

impl From<Organisation> for OrganisationDto {
    fn from(o: Organisation) -> Self {
        Self {
            id: o.id.to_string(),
            kind: o.kind.as_str().to_owned(),
            name: o.name,
            code: o.code.as_str().to_owned(),
            parent: o.parent.map(|p| p.to_string()),
            population: o.population,
            timezone: o.timezone.name().to_owned(),
            retention_days: o.retention_days,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationList {
    pub total: u64,
    pub items: Vec<OrganisationDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntityDto {
    /// `urn:ngsi-ld:<Type>:<local-id>`.
    pub id: String,
    /// Smart Data Models type, e.g. `WasteContainer`.
    #[serde(rename = "type")]
    pub entity_type: String,
    pub organisation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GeoJSON geometry (WGS 84).
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<serde_json::Value>,
    /// NGSI-LD shaped attributes: `{"type": "Property", "value": …, "unitCode": …, "observedAt": …}`,
    /// `{"type": "Relationship", "object": …}` or `{"type": "GeoProperty", "value": {GeoJSON}}`.
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// private, internal, partners or public.
    pub visibility: String,
    /// Partner organisations that see it (visibility `partners`).
    #[serde(rename = "sharedWith", skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
    #[serde(rename = "createdAt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(rename = "modifiedAt")]
    pub modified_at: Option<DateTime<Utc>>,
}

impl From<Entity> for EntityDto {
    fn from(e: Entity) -> Self {
        Self {
            name: e.name().map(str::to_owned),
            id: e.id.to_string(),
            entity_type: e.entity_type.to_string(),
            organisation: e.organisation.to_string(),
            location: e.location.as_ref().and_then(|g| serde_json::to_value(g).ok()),
            attributes: e
                .attributes
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::to_value(v).unwrap_or_default()))
                .collect(),
            visibility: e.visibility.as_str().to_owned(),
            shared_with: e.shared_with.iter().map(ToString::to_string).collect(),
            created_at: e.created_at,
            modified_at: e.modified_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntityList {
    /// Number of entities matching the filter, all pages together.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    pub items: Vec<EntityDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesInfoDto {
    pub attribute: String,
    /// Numeric series have hourly and daily rollups; text series only raw history.
    pub numeric: bool,
    #[serde(rename = "unitCode")]
    pub unit_code: Option<String>,
    #[serde(rename = "firstAt")]
    pub first_at: Option<DateTime<Utc>>,
    #[serde(rename = "lastAt")]
    pub last_at: Option<DateTime<Utc>>,
}

impl From<SeriesInfo> for SeriesInfoDto {
    fn from(s: SeriesInfo) -> Self {
        Self {
            attribute: s.attribute.to_string(),
            numeric: s.numeric,
            unit_code: s.unit_code.map(|u| u.to_string()),
            first_at: s.first_at,
            last_at: s.last_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesList {
    pub entity: String,
    pub items: Vec<SeriesInfoDto>,
}

/// One point: a raw value, or the aggregates of a bucket starting at `t`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointDto {
    pub t: DateTime<Utc>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
}

impl PointDto {
    pub fn bucket(p: &RollupPoint, fns: &[socle_domain::Aggregate]) -> Self {
        use socle_domain::Aggregate::*;
        let want = |a| fns.contains(&a);
        Self {
            t: p.t,
            value: None,
            count: want(Count).then_some(p.count),
            min: want(Min).then_some(p.min),
            max: want(Max).then_some(p.max),
            avg: want(Avg).then_some(p.avg()),
            sum: want(Sum).then_some(p.sum),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesResponse {
    pub entity: String,
    pub attribute: String,
    #[serde(rename = "unitCode")]
    pub unit_code: Option<String>,
    /// raw, hour or day.
    pub step: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// True when `limit` cut the answer short: ask again from the last `t`.
    pub truncated: bool,
    pub points: Vec<PointDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when storage does not answer.
    pub status: String,
    pub backend: String,
    pub version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipDto {
    pub organisation: String,
    /// admin, agent, elected or partner.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: String,
    pub email: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub disabled: bool,
    /// Only the memberships in organisations the caller administers.
    pub memberships: Vec<MembershipDto>,
}

impl From<socle_domain::User> for UserDto {
    fn from(u: socle_domain::User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.as_str().to_owned(),
            display_name: u.display_name,
            disabled: u.disabled,
            memberships: u
                .memberships
                .into_iter()
                .map(|m| MembershipDto { organisation: m.organisation.to_string(), role: m.role.as_str().to_owned() })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDto {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub organisation: Option<String>,
    pub action: String,
    pub object: String,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    pub items: Vec<AuditEntryDto>,
}
