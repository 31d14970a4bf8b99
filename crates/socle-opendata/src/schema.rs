//! The fields of a dataset, typed as Opendatasoft types them (`text`, `int`, `double`,
//! `boolean`, `date`, `datetime`, `geo_point_2d`, `geo_shape`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Int,
    Double,
    Boolean,
    Date,
    #[serde(rename = "datetime")]
    DateTime,
    #[serde(rename = "geo_point_2d")]
    GeoPoint2d,
    GeoShape,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::GeoPoint2d => "geo_point_2d",
            FieldType::GeoShape => "geo_shape",
        }
    }

    pub fn is_facet_by_default(self) -> bool {
        matches!(self, FieldType::Text | FieldType::Date | FieldType::DateTime)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Offered as a facet in the catalogue and the `facets` endpoint.
    #[serde(default)]
    pub facet: bool,
}

impl Field {
    pub fn new(name: &str, label: &str, field_type: FieldType) -> Self {
        Field {
            name: name.to_string(),
            label: label.to_string(),
            field_type,
            description: None,
            facet: field_type.is_facet_by_default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub fields: Vec<Field>,
}

impl Schema {
    pub fn new(fields: Vec<Field>) -> Self {
        Schema { fields }
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn type_of(&self, name: &str) -> Option<FieldType> {
        self.field(name).map(|f| f.field_type)
    }
}
