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
        Attribute::LanguageProperty { language_map, observed_at } => AttributeRow {
            kind: "LanguageProperty",
            value: serde_json::to_string(language_map).unwrap_or_default(),
            unit_code: None,
            observed_at: observed_at.map(ms),
        },
        Attribute::ListProperty { value_list, observed_at } => AttributeRow {
            kind: "ListProperty",
            value: serde_json::Value::Array(value_list.clone()).to_string(),
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
        "LanguageProperty" => Attribute::LanguageProperty {
            language_map: serde_json::from_str(value).map_err(|e| corrupt(&e))?,
            observed_at,
        },
        "ListProperty" => {
            Attribute::ListProperty { value_list: serde_json::from_str(value).map_err(|e| corrupt(&e))?, observed_at }
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
    pub visibility: String,
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
        e.visibility = self.visibility.parse().map_err(bad)?;
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

/// The SQL condition restricting entities (alias `e`) to an audience, and
/// its bound values in order. Placeholders come from `ph`, which numbers
/// them for the backend (`?` for SQLite, `$n` for PostgreSQL).
pub fn audience_condition(
    audience: &socle_domain::Audience,
    ph: &mut dyn FnMut() -> String,
) -> Option<(String, Vec<String>)> {
    use socle_domain::Audience;
    let public = "e.visibility = 'public'".to_owned();
    let reach = match audience {
        Audience::System => return None,
        Audience::Public => return Some((public, Vec::new())),
        Audience::Members(r) => r,
    };
    let mut conds = vec![public];
    let mut args = Vec::new();
    let list = |orgs: &[OrganisationId], args: &mut Vec<String>, ph: &mut dyn FnMut() -> String| {
        let marks: Vec<String> = orgs
            .iter()
            .map(|o| {
                args.push(o.to_string());
                ph()
            })
            .collect();
        marks.join(", ")
    };
    if !reach.full.is_empty() {
        let marks = list(&reach.full, &mut args, ph);
        conds.push(format!("e.organisation_id IN ({marks})"));
    }
    if !reach.internal.is_empty() {
        let marks = list(&reach.internal, &mut args, ph);
        conds.push(format!("(e.visibility IN ('internal', 'partners') AND e.organisation_id IN ({marks}))"));
    }
    if !reach.partner.is_empty() {
        let marks = list(&reach.partner, &mut args, ph);
        conds.push(format!(
            "(e.visibility = 'partners' AND EXISTS (SELECT 1 FROM entity_shares sh \
             WHERE sh.entity_seq = e.seq AND sh.organisation_id IN ({marks})))"
        ));
    }
    Some((format!("({})", conds.join(" OR ")), args))
}

/// The SQL condition restricting alerts (table `alerts`, unaliased) to what an
/// audience may see, and its bound values in order; `None` for the system.
///
/// An alert follows its entity's visibility, except that an alert is never
/// public: the alert of a public entity is seen as if the entity were
/// `internal`. The alert of a deleted entity is seen by its organisation's full
/// reach only. `Audience::can_see` with that mapping is the same rule in Rust;
/// a storage test checks they agree.
pub fn alert_audience_condition(
    audience: &socle_domain::Audience,
    ph: &mut dyn FnMut() -> String,
) -> Option<(String, Vec<String>)> {
    use socle_domain::Audience;
    let reach = match audience {
        Audience::System => return None,
        Audience::Public => return Some(("1 = 0".to_owned(), Vec::new())),
        Audience::Members(r) => r,
    };
    let mut args = Vec::new();
    let mut list = |orgs: &[OrganisationId], args: &mut Vec<String>| {
        let marks: Vec<String> = orgs
            .iter()
            .map(|o| {
                args.push(o.to_string());
                ph()
            })
            .collect();
        marks.join(", ")
    };
    let mut conds = Vec::new();
    if !reach.full.is_empty() {
        conds.push(format!("alerts.organisation_id IN ({})", list(&reach.full, &mut args)));
    }
    let mut through_entity = Vec::new();
    if !reach.internal.is_empty() {
        through_entity.push(format!(
            "(e.visibility IN ('internal', 'partners', 'public') AND e.organisation_id IN ({}))",
            list(&reach.internal, &mut args)
        ));
    }
    if !reach.partner.is_empty() {
        through_entity.push(format!(
            "(e.visibility = 'partners' AND EXISTS (SELECT 1 FROM entity_shares sh \
             WHERE sh.entity_seq = e.seq AND sh.organisation_id IN ({})))",
            list(&reach.partner, &mut args)
        ));
    }
    if !through_entity.is_empty() {
        conds.push(format!(
            "EXISTS (SELECT 1 FROM entities e WHERE e.id = alerts.entity_id AND ({}))",
            through_entity.join(" OR ")
        ));
    }
    if conds.is_empty() {
        return Some(("1 = 0".to_owned(), args));
    }
    Some((format!("({})", conds.join(" OR ")), args))
}

/// A user row and its memberships, before parsing.
pub struct RawUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub disabled: bool,
    pub created_at: i64,
    pub password_hash: Option<String>,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
}

impl RawUser {
    pub fn into_user(self, memberships: Vec<(String, String)>) -> Result<socle_domain::User> {
        let bad = |e: socle_domain::DomainError| StoreError::Corrupt(format!("user {}: {e}", self.id));
        let memberships = memberships
            .into_iter()
            .map(|(org, role)| {
                Ok(socle_domain::Membership {
                    organisation: OrganisationId::parse(&org).map_err(bad)?,
                    role: role.parse().map_err(bad)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(socle_domain::User {
            id: socle_domain::UserId::parse(&self.id).map_err(bad)?,
            email: socle_domain::Email::parse(&self.email).map_err(bad)?,
            display_name: self.display_name.clone(),
            disabled: self.disabled,
            memberships,
            created_at: from_ms(self.created_at)?,
        })
    }

    pub fn into_credentials(self, memberships: Vec<(String, String)>) -> Result<socle_domain::Credentials> {
        let password_hash = self.password_hash.clone();
        let failed_logins = u32::try_from(self.failed_logins).unwrap_or(u32::MAX);
        let locked_until = self.locked_until.map(from_ms).transpose()?;
        Ok(socle_domain::Credentials { user: self.into_user(memberships)?, password_hash, failed_logins, locked_until })
    }
}

pub struct RawToken {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub user: Option<String>,
    pub organisation: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl RawToken {
    pub fn parse(self) -> Result<socle_domain::ApiToken> {
        let bad = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("token {}: {e}", self.id));
        Ok(socle_domain::ApiToken {
            id: uuid::Uuid::parse_str(&self.id).map_err(|e| bad(&e))?,
            kind: self.kind.parse().map_err(|e| bad(&e))?,
            label: self.label.clone(),
            user: self.user.as_deref().map(socle_domain::UserId::parse).transpose().map_err(|e| bad(&e))?,
            organisation: OrganisationId::parse(&self.organisation).map_err(|e| bad(&e))?,
            scope: self.scope.parse().map_err(|e| bad(&e))?,
            created_at: from_ms(self.created_at)?,
            expires_at: self.expires_at.map(from_ms).transpose()?,
            revoked_at: self.revoked_at.map(from_ms).transpose()?,
        })
    }
}

pub struct RawAudit {
    pub at: i64,
    pub actor: String,
    pub organisation: Option<String>,
    pub action: String,
    pub object: String,
    pub detail: String,
}

impl RawAudit {
    pub fn parse(self) -> Result<socle_domain::AuditEntry> {
        Ok(socle_domain::AuditEntry {
            at: from_ms(self.at)?,
            organisation: self
                .organisation
                .as_deref()
                .map(OrganisationId::parse)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("audit entry: {e}")))?,
            actor: self.actor,
            action: self.action,
            object: self.object,
            detail: self.detail,
        })
    }
}

/// A `devices` row as both backends read it.
pub struct RawDevice {
    pub dev_eui: String,
    pub name: String,
    pub model: String,
    pub organisation: String,
    pub entity: String,
    pub mappings: String,
    pub created_at: i64,
    pub modified_at: i64,
    pub last_seen: Option<i64>,
    pub battery: Option<f64>,
    pub margin: Option<i32>,
    pub rssi: Option<i32>,
    pub snr: Option<f64>,
    pub f_cnt: Option<i64>,
    pub frames_received: i64,
}

impl RawDevice {
    pub fn parse(self) -> Result<crate::DeviceRecord> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("{what} of device {}: {e}", self.dev_eui))
        };
        let device = crate::NewDevice {
            organisation: OrganisationId::parse(&self.organisation).map_err(|e| corrupt("organisation", &e))?,
            entity: EntityId::parse(&self.entity).map_err(|e| corrupt("entity", &e))?,
            mappings: serde_json::from_str(&self.mappings).map_err(|e| corrupt("mappings", &e))?,
            dev_eui: self.dev_eui.clone(),
            name: self.name,
            model: self.model,
        };
        Ok(crate::DeviceRecord {
            device,
            created_at: from_ms(self.created_at)?,
            modified_at: from_ms(self.modified_at)?,
            health: crate::DeviceHealth {
                last_seen: self.last_seen.map(from_ms).transpose()?,
                battery: self.battery,
                margin: self.margin,
                rssi: self.rssi,
                snr: self.snr,
                f_cnt: self.f_cnt.and_then(|f| u32::try_from(f).ok()),
                frames_received: u64::try_from(self.frames_received).unwrap_or(0),
            },
        })
    }
}

/// A `dead_letters` row as both backends read it.
pub struct RawDeadLetter {
    pub id: i64,
    pub at: i64,
    pub organisation: String,
    pub source: String,
    pub event: Option<String>,
    pub dev_eui: Option<String>,
    pub reason_code: String,
    pub reason: String,
    pub body_size: i64,
    pub replayed_at: Option<i64>,
    pub body: Vec<u8>,
}

impl RawDeadLetter {
    pub fn parse(self) -> Result<crate::DeadLetter> {
        Ok(crate::DeadLetter {
            id: self.id,
            letter: crate::NewDeadLetter {
                at: from_ms(self.at)?,
                organisation: OrganisationId::parse(&self.organisation)
                    .map_err(|e| StoreError::Corrupt(format!("organisation of dead letter {}: {e}", self.id)))?,
                source: self.source,
                event: self.event,
                dev_eui: self.dev_eui,
                reason_code: self.reason_code,
                reason: self.reason,
                body: self.body,
                body_size: u64::try_from(self.body_size).unwrap_or(0),
            },
            replayed_at: self.replayed_at.map(from_ms).transpose()?,
        })
    }
}

/// Columns of a downlink, in this order, for both backends.
pub const DOWNLINK_COLUMNS: &str =
    "id, organisation_id, dev_eui, f_port, payload, confirmed, requested_by, created_at, \
     status, detail, f_cnt_down, sent_at, transmitted_at, acknowledged_at, failed_at";

pub struct RawDownlink {
    pub id: String,
    pub organisation: String,
    pub dev_eui: String,
    pub f_port: i64,
    pub payload: Vec<u8>,
    pub confirmed: bool,
    pub requested_by: Option<String>,
    pub created_at: i64,
    pub status: String,
    pub detail: Option<String>,
    pub f_cnt_down: Option<i64>,
    pub sent_at: Option<i64>,
    pub transmitted_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub failed_at: Option<i64>,
}

impl RawDownlink {
    pub fn parse(self) -> Result<crate::Downlink> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of downlink {}", self.id));
        Ok(crate::Downlink {
            status: socle_domain::DownlinkStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            detail: self.detail.clone(),
            f_cnt_down: self.f_cnt_down.and_then(|f| u32::try_from(f).ok()),
            sent_at: self.sent_at.map(from_ms).transpose()?,
            transmitted_at: self.transmitted_at.map(from_ms).transpose()?,
            acknowledged_at: self.acknowledged_at.map(from_ms).transpose()?,
            failed_at: self.failed_at.map(from_ms).transpose()?,
            downlink: crate::NewDownlink {
                organisation: OrganisationId::parse(&self.organisation).map_err(|_| corrupt("organisation"))?,
                f_port: u8::try_from(self.f_port).map_err(|_| corrupt("fPort"))?,
                created_at: from_ms(self.created_at)?,
                id: self.id,
                dev_eui: self.dev_eui,
                payload: self.payload,
                confirmed: self.confirmed,
                requested_by: self.requested_by,
            },
        })
    }
}

/// The column recording when a downlink reached `status`.
pub fn downlink_time_column(status: socle_domain::DownlinkStatus) -> &'static str {
    use socle_domain::DownlinkStatus::*;
    match status {
        Queued => "created_at",
        Sent => "sent_at",
        Transmitted => "transmitted_at",
        Acknowledged => "acknowledged_at",
        Failed => "failed_at",
    }
}
