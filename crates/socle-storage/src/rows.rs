//! Conversions between domain values and the column values both backends
//! store (text, JSON text, epoch milliseconds).

use chrono::{DateTime, Utc};
use socle_domain::organisation::parse_timezone;
use socle_domain::{
    Attribute, AttributeName, Entity, EntityId, EntityType, Geometry, OfficialCode, Organisation, OrganisationId,
    SeriesInfo, UnitCode,
};

use crate::{Result, StoreError};

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(t: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t).ok_or_else(|| StoreError::Corrupt(format!("timestamp {t} out of range")))
}

/// Column values of one attribute: (kind, JSON value, unit code, observedAt ms).
pub struct AttributeRow {
    pub kind: &'static str,
    pub value: String,
    pub unit_code: Option<String>,
    pub observed_at: Option<i64>,
}

pub fn attribute_to_row(a: &Attribute) -> AttributeRow {
    match a {
        Attribute::Property { value, unit_code, observed_at } => AttributeRow {
            kind: "Property",
            value: value.to_string(),
            unit_code: unit_code.as_ref().map(|u| u.as_str().to_owned()),
            observed_at: observed_at.map(ms),
        },
        Attribute::Relationship { object, observed_at } => AttributeRow {
            kind: "Relationship",
            value: serde_json::Value::from(object.as_str()).to_string(),
            unit_code: None,
            observed_at: observed_at.map(ms),
        },
        Attribute::GeoProperty { value, observed_at } => AttributeRow {
            kind: "GeoProperty",
            // Serialising a validated geometry cannot fail.
            value: serde_json::to_string(value).unwrap_or_default(),
            unit_code: None,
            observed_at: observed_at.map(ms),
        },
    }
}

pub fn attribute_from_row(
    kind: &str,
    value: &str,
    unit_code: Option<String>,
    observed_at: Option<i64>,
) -> Result<Attribute> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("attribute value {value:?}: {e}"));
    let observed_at = observed_at.map(from_ms).transpose()?;
    Ok(match kind {
        "Property" => Attribute::Property {
            value: serde_json::from_str(value).map_err(|e| corrupt(&e))?,
            unit_code: unit_code.map(|u| UnitCode::parse(&u)).transpose().map_err(|e| corrupt(&e))?,
            observed_at,
        },
        "Relationship" => {
            let s: String = serde_json::from_str(value).map_err(|e| corrupt(&e))?;
            Attribute::Relationship { object: EntityId::parse(&s).map_err(|e| corrupt(&e))?, observed_at }
        }
        "GeoProperty" => {
            Attribute::GeoProperty { value: serde_json::from_str(value).map_err(|e| corrupt(&e))?, observed_at }
        }
        other => return Err(StoreError::Corrupt(format!("attribute kind {other:?}"))),
    })
}

pub fn geometry_to_text(g: &Geometry) -> String {
    serde_json::to_string(g).unwrap_or_default()
}

pub fn geometry_from_text(s: &str) -> Result<Geometry> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("location {s:?}: {e}")))
}

/// An organisation row as stored, before parsing into domain types.
pub struct RawOrganisation {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub code: String,
    pub parent: Option<String>,
    pub population: Option<i64>,
    pub timezone: String,
    pub retention_days: Option<i64>,
    pub created_at: i64,
}

impl RawOrganisation {
    pub fn parse(self) -> Result<Organisation> {
        let bad = |e: socle_domain::DomainError| StoreError::Corrupt(format!("organisation {}: {e}", self.id));
        Ok(Organisation {
            id: OrganisationId::parse(&self.id).map_err(bad)?,
            kind: self.kind.parse().map_err(bad)?,
            name: self.name.clone(),
            code: OfficialCode::parse(&self.code).map_err(bad)?,
            parent: self.parent.as_deref().map(OrganisationId::parse).transpose().map_err(bad)?,
            population: self.population.and_then(|p| u32::try_from(p).ok()),
            timezone: parse_timezone(&self.timezone).map_err(bad)?,
            retention_days: self.retention_days.and_then(|d| u32::try_from(d).ok()),
            created_at: from_ms(self.created_at)?,
        })
    }
}

/// An entity row as stored, before its attributes are attached.
pub struct RawEntity {
    pub seq: i64,
    pub id: String,
    pub entity_type: String,
    pub organisation: String,
    pub location: Option<String>,
    pub created_at: i64,
    pub modified_at: i64,
}

impl RawEntity {
    pub fn parse(self) -> Result<Entity> {
        let bad = |e: socle_domain::DomainError| StoreError::Corrupt(format!("entity {}: {e}", self.id));
        let mut e = Entity::new(
            EntityId::parse(&self.id).map_err(bad)?,
            EntityType::parse(&self.entity_type).map_err(bad)?,
            OrganisationId::parse(&self.organisation).map_err(bad)?,
        );
        e.location = self.location.as_deref().map(geometry_from_text).transpose()?;
        e.created_at = Some(from_ms(self.created_at)?);
        e.modified_at = Some(from_ms(self.modified_at)?);
        Ok(e)
    }
}

pub fn series_info(
    entity: &str,
    attribute: String,
    numeric: bool,
    unit: Option<String>,
    first: Option<i64>,
    last: Option<i64>,
) -> Result<SeriesInfo> {
    let bad = |e: socle_domain::DomainError| StoreError::Corrupt(format!("series of {entity}: {e}"));
    Ok(SeriesInfo {
        attribute: AttributeName::parse(&attribute).map_err(bad)?,
        numeric,
        unit_code: unit.as_deref().map(UnitCode::parse).transpose().map_err(bad)?,
        first_at: first.map(from_ms).transpose()?,
        last_at: last.map(from_ms).transpose()?,
    })
}

pub fn kind_name(numeric: bool) -> &'static str {
    if numeric {
        "numeric"
    } else {
        "text"
    }
}
