//! Entities are the things of the territory (a building, a street light, a
//! container), shaped after NGSI-LD: typed attributes that are properties,
//! relationships or geo-properties, so that the NGSI-LD API is a thin layer.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{Audience, Visibility};
use crate::geo::{BBox, Geometry};
use crate::organisation::OrganisationId;
use crate::DomainError;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn is_identifier(s: &str, max: usize) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && s.len() <= max
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Entity type, as named by Smart Data Models (`Building`, `WasteContainer`…).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityType(String);
string_newtype!(EntityType);

impl EntityType {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if is_identifier(s, 128) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::EntityType(s.to_owned()))
        }
    }
}

/// `urn:ngsi-ld:<Type>:<local-id>`; the local id may contain `:` but no
/// whitespace or control characters, and the whole stays under 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityId(String);
string_newtype!(EntityId);

impl EntityId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let err = || DomainError::EntityId(s.to_owned());
        let rest = s.strip_prefix("urn:ngsi-ld:").ok_or_else(err)?;
        let (ty, local) = rest.split_once(':').ok_or_else(err)?;
        let local_ok = !local.is_empty()
            && local.chars().all(|c| !c.is_whitespace() && !c.is_control() && !"<>\"{}|\\^`#?/".contains(c));
        if s.len() <= 256 && is_identifier(ty, 128) && local_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(err())
        }
    }

    pub fn new(entity_type: &EntityType, local_id: &str) -> Result<Self, DomainError> {
        Self::parse(&format!("urn:ngsi-ld:{}:{local_id}", entity_type.as_str()))
    }

    /// The type segment of the URN (not necessarily the entity's type).
    pub fn type_segment(&self) -> &str {
        self.0["urn:ngsi-ld:".len()..].split(':').next().unwrap_or_default()
    }
}

/// Attribute name: an NGSI-LD short term (`fillingLevel`, `powerState`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttributeName(String);
string_newtype!(AttributeName);

impl AttributeName {
    /// Names NGSI-LD reserves for the entity itself.
    const RESERVED: [&'static str; 5] = ["id", "type", "location", "createdAt", "modifiedAt"];

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if is_identifier(s, 128) && !Self::RESERVED.contains(&s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::AttributeName(s.to_owned()))
        }
    }
}

/// A UN/CEFACT Recommendation 20 common code (`KWH`, `MTQ`, `CEL`, `P1`, `MTR`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnitCode(String);
string_newtype!(UnitCode);

impl UnitCode {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::UnitCode(s.to_owned()))
        }
    }
}

/// One attribute of an entity, in the three NGSI-LD kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Attribute {
    Property {
        value: serde_json::Value,
        #[serde(rename = "unitCode", skip_serializing_if = "Option::is_none", default)]
        unit_code: Option<UnitCode>,
        #[serde(rename = "observedAt", skip_serializing_if = "Option::is_none", default)]
        observed_at: Option<DateTime<Utc>>,
    },
    Relationship {
        object: EntityId,
        #[serde(rename = "observedAt", skip_serializing_if = "Option::is_none", default)]
        observed_at: Option<DateTime<Utc>>,
    },
    GeoProperty {
        value: Geometry,
        #[serde(rename = "observedAt", skip_serializing_if = "Option::is_none", default)]
        observed_at: Option<DateTime<Utc>>,
    },
    /// Text in several languages: BCP 47 tag (or `@none`) → text.
    LanguageProperty {
        #[serde(rename = "languageMap")]
        language_map: BTreeMap<String, String>,
        #[serde(rename = "observedAt", skip_serializing_if = "Option::is_none", default)]
        observed_at: Option<DateTime<Utc>>,
    },
    /// An ordered list of values.
    ListProperty {
        #[serde(rename = "valueList")]
        value_list: Vec<serde_json::Value>,
        #[serde(rename = "observedAt", skip_serializing_if = "Option::is_none", default)]
        observed_at: Option<DateTime<Utc>>,
    },
}

impl Attribute {
    pub fn property(value: impl Into<serde_json::Value>) -> Self {
        Self::Property { value: value.into(), unit_code: None, observed_at: None }
    }
    pub fn measure(value: f64, unit: &UnitCode, observed_at: DateTime<Utc>) -> Self {
        Self::Property { value: value.into(), unit_code: Some(unit.clone()), observed_at: Some(observed_at) }
    }
    pub fn relationship(object: EntityId) -> Self {
        Self::Relationship { object, observed_at: None }
    }
    pub fn observed_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Property { observed_at, .. }
            | Self::Relationship { observed_at, .. }
            | Self::GeoProperty { observed_at, .. }
            | Self::LanguageProperty { observed_at, .. }
            | Self::ListProperty { observed_at, .. } => *observed_at,
        }
    }
}

/// An entity with its current state. History lives in series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: EntityId,
    #[serde(rename = "type")]
    pub entity_type: EntityType,
    pub organisation: OrganisationId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<Geometry>,
    #[serde(default)]
    pub visibility: Visibility,
    /// Partner organisations that see it when `visibility` is `partners`.
    #[serde(rename = "sharedWith", default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<OrganisationId>,
    #[serde(default)]
    pub attributes: BTreeMap<AttributeName, Attribute>,
    /// Set by storage; ignored on write.
    #[serde(rename = "createdAt", skip_serializing_if = "Option::is_none", default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(rename = "modifiedAt", skip_serializing_if = "Option::is_none", default)]
    pub modified_at: Option<DateTime<Utc>>,
}

impl Entity {
    pub fn new(id: EntityId, entity_type: EntityType, organisation: OrganisationId) -> Self {
        Self {
            id,
            entity_type,
            organisation,
            location: None,
            visibility: Visibility::Private,
            shared_with: Vec::new(),
            attributes: BTreeMap::new(),
            created_at: None,
            modified_at: None,
        }
    }

    /// The `name` property, when it is a string.
    pub fn name(&self) -> Option<&str> {
        let key = AttributeName::parse("name").ok()?;
        match self.attributes.get(&key)? {
            Attribute::Property { value: serde_json::Value::String(s), .. } => Some(s),
            _ => None,
        }
    }

    /// Whether `audience` may read this entity.
    pub fn visible_to(&self, audience: &Audience) -> bool {
        audience.can_see(&self.organisation, self.visibility, &self.shared_with)
    }

    /// Builder-style attribute setter for code that assembles entities.
    pub fn with(mut self, name: &str, attribute: Attribute) -> Result<Self, DomainError> {
        self.attributes.insert(AttributeName::parse(name)?, attribute);
        Ok(self)
    }
}

/// Filter for listing entities. `audience` is who asks (its default is an
/// anonymous visitor, so forgetting it can only hide data); `organisations`
/// narrows further to the owners a caller asked for.
#[derive(Debug, Clone, Default)]
pub struct EntityFilter {
    pub audience: Audience,
    pub organisations: Option<Vec<OrganisationId>>,
    pub entity_type: Option<EntityType>,
    pub bbox: Option<BBox>,
    /// Only these entities (an empty list selects none).
    pub ids: Option<Vec<EntityId>>,
    /// Conditions on current attribute values, all of which must hold (see [`ValueTest`]).
    pub attributes: Vec<AttributeCondition>,
    pub limit: u32,
    pub offset: u64,
}

/// A condition on the current value of one attribute, evaluated by storage
/// so that NGSI-LD `q` need not read every entity of a type.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeCondition {
    pub attribute: AttributeName,
    pub test: ValueTest,
}

/// What an attribute's value (a Property's value, a Relationship's object,
/// a ListProperty's list) must satisfy. A test *surely* holds when the value
/// is a scalar of the operand's kind that satisfies it. It *may* hold, and
/// storage keeps the entity for the caller's exact evaluation, when the
/// value is an array (one item may match), a LanguageProperty (one of its
/// texts may) or, against a number, text (it may hold a number).
/// Any other value never matches: that is what lets storage drop entities.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTest {
    /// The attribute exists, whatever its value.
    Exists,
    Compare(Comparison, Scalar),
    /// Equal to one of these.
    AnyOf(Vec<Scalar>),
    /// Between both, bounds included (both of one kind).
    Between(Scalar, Scalar),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Text compares by code point (byte order of UTF-8), as Rust's `str` does.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// An entity id of a selection, and whether every attribute condition
/// surely holds for it (see [`ValueTest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityMatch {
    pub id: EntityId,
    pub sure: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entity_ids() {
        let id = EntityId::parse("urn:ngsi-ld:WasteContainer:saint-aubin:verre-012").unwrap();
        assert_eq!(id.type_segment(), "WasteContainer");
        for bad in ["urn:ngsi-ld:Building", "urn:ngsi-ld::x", "urn:ngsi-ld:B:a b", "Building:1", "urn:ngsi-ld:9B:x"] {
            assert!(EntityId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attribute_json_shape() {
        let unit = UnitCode::parse("KWH").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-01-05T07:00:00Z").unwrap().with_timezone(&Utc);
        let json = serde_json::to_value(Attribute::measure(12.5, &unit, at)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"Property","value":12.5,"unitCode":"KWH","observedAt":"2026-01-05T07:00:00Z"})
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = EntityId::parse(&s);
            let _ = EntityType::parse(&s);
            let _ = AttributeName::parse(&s);
            let _ = UnitCode::parse(&s);
        }
        #[test]
        fn valid_ids_roundtrip(t in "[A-Z][A-Za-z0-9]{0,20}", l in "[a-z0-9:-]{1,40}") {
            let id = EntityId::parse(&format!("urn:ngsi-ld:{t}:{l}")).unwrap();
            prop_assert_eq!(id.type_segment(), t.as_str());
        }
    }
}
