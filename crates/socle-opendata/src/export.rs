//! Export encoders, one record at a time, so a caller can stream a dataset of any size
//! (the HTTP layer reads records in chunks and writes what each call returns).

use serde_json::{json, Value as Json};

use crate::odsql::Record;
use crate::schema::{FieldType, Schema};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv { delimiter: u8, with_bom: bool },
    Json,
    Jsonl,
    GeoJson,
}

impl Format {
    /// The formats offered (XLSX and Parquet are not built yet).
    pub const NAMES: [&'static str; 4] = ["csv", "json", "jsonl", "geojson"];

    pub fn parse(name: &str, delimiter: Option<&str>, with_bom: bool) -> Option<Format> {
        Some(match name {
            "csv" => Format::Csv {
                delimiter: match delimiter.unwrap_or(";") {
                    ";" => b';',
                    "," => b',',
                    "\t" => b'\t',
                    "|" => b'|',
                    _ => return None,
                },
                with_bom,
            },
            "json" => Format::Json,
            "jsonl" => Format::Jsonl,
            "geojson" => Format::GeoJson,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv { .. } => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Jsonl => "application/jsonl",
            Format::GeoJson => "application/geo+json",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv { .. } => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::GeoJson => "geojson",
        }
    }
}

pub struct Encoder {
    format: Format,
    columns: Vec<(String, FieldType)>,
    geometry: Option<String>,
    count: u64,
}

impl Encoder {
    /// `columns`: the exported field names in order (the select of the query, or the schema).
    pub fn new(format: Format, schema: &Schema, columns: Vec<String>) -> Self {
        let typed: Vec<(String, FieldType)> = columns
            .into_iter()
            .map(|c| {
                let t = schema.type_of(&c).unwrap_or(FieldType::Text);
                (c, t)
            })
            .collect();
        let geometry = typed
            .iter()
            .find(|(_, t)| *t == FieldType::GeoShape)
            .or_else(|| typed.iter().find(|(_, t)| *t == FieldType::GeoPoint2d))
            .map(|(n, _)| n.clone());
        Encoder { format, columns: typed, geometry, count: 0 }
    }

    pub fn begin(&mut self) -> Vec<u8> {
        match self.format {
            Format::Csv { delimiter, with_bom } => {
                let mut out = if with_bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
                out.extend(csv_line(delimiter, self.columns.iter().map(|(n, _)| n.clone())));
                out
            }
            Format::Json => b"[".to_vec(),
            Format::Jsonl => Vec::new(),
            Format::GeoJson => br#"{"type":"FeatureCollection","features":["#.to_vec(),
        }
    }

    pub fn record(&mut self, record: &Record) -> Vec<u8> {
        let first = self.count == 0;
        self.count += 1;
        match self.format {
            Format::Csv { delimiter, .. } => csv_line(
                delimiter,
                self.columns.iter().map(|(n, t)| csv_cell(record.get(n).unwrap_or(&Json::Null), *t)),
            ),
            Format::Json => {
                let mut out = if first { Vec::new() } else { b",".to_vec() };
                out.extend(Json::Object(record.clone()).to_string().into_bytes());
                out
            }
            Format::Jsonl => {
                let mut out = Json::Object(record.clone()).to_string().into_bytes();
                out.push(b'\n');
                out
            }
            Format::GeoJson => {
                let geometry = self
                    .geometry
                    .as_ref()
                    .and_then(|g| record.get(g))
                    .and_then(crate::geojson::geometry_from_json)
                    .map(|g| crate::geojson::geometry_to_json(&g))
                    .unwrap_or(Json::Null);
                let properties: serde_json::Map<String, Json> = record
                    .iter()
                    .filter(|(k, _)| Some(*k) != self.geometry.as_ref())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut out = if first { Vec::new() } else { b",".to_vec() };
                out.extend(
                    json!({"type": "Feature", "geometry": geometry, "properties": properties}).to_string().into_bytes(),
                );
                out
            }
        }
    }

    pub fn end(&mut self) -> Vec<u8> {
        match self.format {
            Format::Csv { .. } | Format::Jsonl => Vec::new(),
            Format::Json => b"]".to_vec(),
            Format::GeoJson => b"]}".to_vec(),
        }
    }
}

fn csv_cell(v: &Json, t: FieldType) -> String {
    match (v, t) {
        (Json::Null, _) => String::new(),
        (Json::String(s), _) => s.clone(),
        // Opendatasoft writes points as "lat, lon".
        (Json::Object(o), FieldType::GeoPoint2d) => match (o.get("lat"), o.get("lon")) {
            (Some(lat), Some(lon)) => format!("{lat}, {lon}"),
            _ => v.to_string(),
        },
        (Json::Array(items), _) => items
            .iter()
            .map(|i| match i {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        (other, _) => other.to_string(),
    }
}

fn csv_line(delimiter: u8, cells: impl Iterator<Item = String>) -> Vec<u8> {
    let mut writer =
        csv::WriterBuilder::new().delimiter(delimiter).terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    let cells: Vec<String> = cells.collect();
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(&cells);
    writer.into_inner().unwrap_or_default()
}
