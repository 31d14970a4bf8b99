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
    #[error("the live source is not valid: {0}")]
    BadLive(String),
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

/// A dataset computed when read, so it follows the data as it arrives. Stored as one of
/// two shapes (no tag: the first shape is the one datasets were created with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LiveSource {
    /// The current state of entities: one record per entity of a type, in the dataset's
    /// organisation and those below it ("taux de remplissage des conteneurs").
    Entities(LiveEntities),
    /// The daily rollups of one attribute over the entities of a type: one record per
    /// (entity, local day) ("consommations journalières des bâtiments communaux").
    DailySeries(LiveDailySeries),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveEntities {
    pub entity_type: String,
    /// Attributes published as `double` fields, in this order.
    pub attributes: Vec<String>,
}

/// Daily sums of a metered attribute (consumption of the hour, of the quarter…), read
/// from the daily rollups of each entity's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveDailySeries {
    pub entity_type: String,
    /// The attribute whose daily sum is published (`consumption`).
    pub daily_sum_of: String,
    /// Only the series in this UN/CEFACT unit (`KWH`): a kWh and a m³ do not add up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// A relationship attribute (`refBuilding`) whose target's name fills `batiment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// A text attribute (`meterType`) that fills `type_energie`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How many past days are published (the rollups keep more).
    #[serde(default = "default_days")]
    pub days: u32,
}

fn default_days() -> u32 {
    366
}

/// Largest history a daily live dataset may publish (ten years).
pub const MAX_LIVE_DAYS: u32 = 3_660;

impl LiveSource {
    pub fn entity_type(&self) -> &str {
        match self {
            LiveSource::Entities(e) => &e.entity_type,
            LiveSource::DailySeries(d) => &d.entity_type,
        }
    }

    /// The fields of the live records.
    pub fn schema(&self) -> crate::schema::Schema {
        use crate::schema::{Field, FieldType};
        let fields = match self {
            LiveSource::Entities(source) => {
                let mut fields = vec![
                    Field::new("id", "Identifiant", FieldType::Text),
                    Field::new("nom", "Nom", FieldType::Text),
                    Field::new("organisation", "Organisation", FieldType::Text),
                ];
                fields.extend(source.attributes.iter().map(|a| Field::new(a, a, FieldType::Double)));
                fields.push(Field::new("observe_le", "Dernière mesure", FieldType::DateTime));
                fields.push(Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d));
                fields
            }
            LiveSource::DailySeries(source) => {
                let unit = source.unit.as_deref().map(unit_label).unwrap_or("");
                let value_label =
                    if unit.is_empty() { "Consommation".to_string() } else { format!("Consommation ({unit})") };
                let mut commune = Field::new("commune", "Commune", FieldType::Text);
                commune.facet = true;
                let mut place = Field::new("batiment", "Bâtiment", FieldType::Text);
                place.facet = true;
                let mut kind = Field::new("type_energie", "Type d'énergie", FieldType::Text);
                kind.facet = true;
                vec![
                    Field::new("date", "Date", FieldType::Date),
                    commune,
                    place,
                    Field::new("compteur", "Compteur", FieldType::Text),
                    Field::new("compteur_id", "Identifiant du compteur", FieldType::Text),
                    kind,
                    Field::new("consommation", &value_label, FieldType::Double),
                    Field::new("unite", "Unité", FieldType::Text),
                    Field::new("mesures", "Nombre de mesures du jour", FieldType::Int),
                    Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d),
                ]
            }
        };
        crate::schema::Schema::new(fields)
    }

    pub fn validate(&self) -> Result<(), DatasetError> {
        match self {
            LiveSource::DailySeries(d) if d.days == 0 || d.days > MAX_LIVE_DAYS => {
                Err(DatasetError::BadLive(format!("days must be between 1 and {MAX_LIVE_DAYS}")))
            }
            _ => Ok(()),
        }
    }
}

/// The symbol of a UN/CEFACT unit code, as a French reader writes it.
pub fn unit_label(code: &str) -> &str {
    match code {
        "KWH" => "kWh",
        "MWH" => "MWh",
        "WHR" => "Wh",
        "MTQ" => "m³",
        "LTR" => "L",
        "CEL" => "°C",
        other => other,
    }
}

/// A meter type as published (`Electricity` → `électricité`).
pub fn energy_label(kind: &str) -> &str {
    match kind {
        "Electricity" | "electricity" => "électricité",
        "Gas" | "gas" => "gaz",
        "Water" | "water" => "eau",
        "Heat" | "heat" => "chaleur",
        "Fuel" | "fuel" => "fioul",
        other => other,
    }
}

impl Metadata {
    pub fn validate(&self) -> Result<(), DatasetError> {
        if self.title.trim().is_empty() {
            return Err(DatasetError::NoTitle);
        }
        if let Some(live) = &self.live {
            live.validate()?;
        }
        if let Some(schema) = &self.table_schema {
            crate::table_schema::TableSchema::parse(schema).map_err(DatasetError::BadTableSchema)?;
        }
        Ok(())
    }
}
