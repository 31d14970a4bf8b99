//! Organisations are the tenants of Socle: communes, EPCIs, syndicates,
//! départements and partners. A syndicate is the parent of the communes it hosts.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A stable, URL-safe identifier chosen at creation (`commune-saint-aubin`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrganisationId(String);

impl OrganisationId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::OrganisationId(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrganisationId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<OrganisationId> for String {
    fn from(v: OrganisationId) -> Self {
        v.0
    }
}
impl fmt::Display for OrganisationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The official identifier of a French public body: an INSEE commune code
/// (5 characters, `2A`/`2B` for Corsica) or a SIREN (9 digits). Partners
/// without either use their SIREN too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OfficialCode(String);

impl OfficialCode {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let b = s.as_bytes();
        let insee = b.len() == 5
            && (b.iter().all(u8::is_ascii_digit)
                || (b[0] == b'2' && (b[1] == b'A' || b[1] == b'B') && b[2..].iter().all(u8::is_ascii_digit)));
        let siren = b.len() == 9 && b.iter().all(u8::is_ascii_digit);
        if insee || siren {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::OfficialCode(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_siren(&self) -> bool {
        self.0.len() == 9
    }
}
impl TryFrom<String> for OfficialCode {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<OfficialCode> for String {
    fn from(v: OfficialCode) -> Self {
        v.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrganisationKind {
    Commune,
    Epci,
    Syndicat,
    Departement,
    Partenaire,
}

impl OrganisationKind {
    pub const ALL: [OrganisationKind; 5] =
        [Self::Commune, Self::Epci, Self::Syndicat, Self::Departement, Self::Partenaire];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commune => "commune",
            Self::Epci => "epci",
            Self::Syndicat => "syndicat",
            Self::Departement => "departement",
            Self::Partenaire => "partenaire",
        }
    }
}
impl FromStr for OrganisationKind {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| DomainError::OrganisationKind(s.to_owned()))
    }
}

/// What is needed to create or update an organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrganisation {
    pub id: OrganisationId,
    pub kind: OrganisationKind,
    pub name: String,
    pub code: OfficialCode,
    pub parent: Option<OrganisationId>,
    pub population: Option<u32>,
    /// Local days (daily rollups) are cut at midnight in this zone.
    pub timezone: Tz,
    /// Raw observations older than this are deleted; rollups are kept.
    /// `None` keeps raw points forever.
    pub retention_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organisation {
    pub id: OrganisationId,
    pub kind: OrganisationKind,
    pub name: String,
    pub code: OfficialCode,
    pub parent: Option<OrganisationId>,
    pub population: Option<u32>,
    pub timezone: Tz,
    pub retention_days: Option<u32>,
    pub created_at: DateTime<Utc>,
}

pub fn parse_timezone(s: &str) -> Result<Tz, DomainError> {
    s.parse::<Tz>().map_err(|_| DomainError::TimeZone(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn official_codes() {
        for ok in ["75056", "2A004", "2B033", "200046977"] {
            OfficialCode::parse(ok).unwrap();
        }
        for bad in ["7505", "2C004", "20004697", "abcde", "", "750560"] {
            assert!(OfficialCode::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn organisation_id_roundtrip(s in "[a-z0-9][a-z0-9-]{0,63}") {
            let id = OrganisationId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }
        #[test]
        fn organisation_id_never_panics(s in ".*") {
            let _ = OrganisationId::parse(&s);
            let _ = OfficialCode::parse(&s);
        }
    }
}
