//! Dataset metadata as published: the slug that never changes, title, Markdown
//! description, themes, keywords, one of the two licences French law allows for public
//! data, publisher, frequency, coverage, and the Table Schema it conforms to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset id '{0}' must be 1 to 100 lower-case letters, digits or hyphens")]
    BadId(String),
    #[error("the title must not be empty")]
    NoTitle,
    #[error("the Table Schema is not valid: {0}")]
    BadTableSchema(String),
}

/// The slug: chosen at creation, used in every URL, never changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetId(String);

impl DatasetId {
    pub fn parse(text: &str) -> Result<Self, DatasetError> {
        let ok = !text.is_empty()
            && text.len() <= 100
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-');
        if ok {
            Ok(DatasetId(text.to_string()))
        } else {
            Err(DatasetError::BadId(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatasetId {
    type Error = DatasetError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        DatasetId::parse(&value)
    }
}

impl From<DatasetId> for String {
    fn from(value: DatasetId) -> Self {
        value.0
    }
}

impl std::fmt::Display for DatasetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Licence Ouverte 2.0 or ODbL: the two licences of the décret n° 2017-638 list a
/// commune uses in practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Licence {
    #[default]
    #[serde(rename = "etalab-2.0")]
    Etalab20,
    #[serde(rename = "odbl")]
    Odbl,
}

impl Licence {
    pub fn id(self) -> &'static str {
        match self {
            Licence::Etalab20 => "etalab-2.0",
            Licence::Odbl => "odbl",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Licence::Etalab20 => "Licence Ouverte v2.0 (Etalab)",
            Licence::Odbl => "Open Database License (ODbL)",
        }
    }

    pub fn url(self) -> &'static str {
        match self {
            Licence::Etalab20 => "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
            Licence::Odbl => "https://opendatacommons.org/licenses/odbl/1-0/",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemporalCoverage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub title: String,
    /// Markdown.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub themes: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub licence: Licence,
    #[serde(default)]
    pub publisher: String,
    /// A frequency of the EU vocabulary (`daily`, `weekly`, `monthly`, `annual`, `irregular`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_coverage: Option<TemporalCoverage>,
    /// A territory name or an INSEE code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial_coverage: Option<String>,
    /// The URL of a schema.data.gouv.fr Table Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conforms_to: Option<String>,
    /// The Table Schema uploads are validated against (a copy of the schema.data.gouv.fr
    /// document named by `conforms_to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_schema: Option<serde_json::Value>,
    /// Set for a live view over entities instead of uploaded data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveSource>,
}

/// A dataset computed when read from the current state of entities (one record per
/// entity of a type, in the dataset's organisation and those below it), so it follows
/// the data as it arrives: "taux de remplissage des conteneurs".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSource {
    pub entity_type: String,
    /// Attributes published as `double` fields, in this order.
    pub attributes: Vec<String>,
}

impl LiveSource {
    /// The fields of the live records.
    pub fn schema(&self) -> crate::schema::Schema {
        use crate::schema::{Field, FieldType};
        let mut fields = vec![
            Field::new("id", "Identifiant", FieldType::Text),
            Field::new("nom", "Nom", FieldType::Text),
            Field::new("organisation", "Organisation", FieldType::Text),
        ];
        fields.extend(self.attributes.iter().map(|a| Field::new(a, a, FieldType::Double)));
        fields.push(Field::new("observe_le", "Dernière mesure", FieldType::DateTime));
        fields.push(Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d));
        crate::schema::Schema::new(fields)
    }
}

impl Metadata {
    pub fn validate(&self) -> Result<(), DatasetError> {
        if self.title.trim().is_empty() {
            return Err(DatasetError::NoTitle);
        }
        if let Some(schema) = &self.table_schema {
            crate::table_schema::TableSchema::parse(schema).map_err(DatasetError::BadTableSchema)?;
        }
        Ok(())
    }
}
