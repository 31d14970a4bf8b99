//! Export encoders, one record at a time, so a caller can stream a dataset of any size
//! (the HTTP layer reads records in chunks and writes what each call returns).
//!
//! Text formats and Parquet give their bytes as they go (Parquet one row group at a
//! time); XLSX keeps its rows in a temporary file and writes the workbook at the end,
//! so it is the one format whose errors (too many rows for Excel) come before any byte.

use std::io::Write;

use chrono_tz::Tz;
use serde_json::{json, Value as Json};

use crate::odsql::Record;
use crate::schema::{FieldType, Schema};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv { delimiter: u8, with_bom: bool },
    Json,
    Jsonl,
    GeoJson,
    Xlsx,
    Parquet,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("an Excel sheet holds at most {max} records; this export has more: choose csv, jsonl or parquet, or narrow it with where or limit")]
    TooManyRows { max: u32 },
    #[error("XLSX: {0}")]
    Xlsx(String),
    #[error("Parquet: {0}")]
    Parquet(String),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

impl Format {
    /// The formats offered.
    pub const NAMES: [&'static str; 6] = ["csv", "json", "jsonl", "geojson", "xlsx", "parquet"];

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
            "xlsx" => Format::Xlsx,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv { .. } => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Jsonl => "application/jsonl",
            Format::GeoJson => "application/geo+json",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv { .. } => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::GeoJson => "geojson",
            Format::Xlsx => "xlsx",
            Format::Parquet => "parquet",
        }
    }

    /// Whether bytes come out while records go in; XLSX comes out whole at the end.
    pub fn is_streamed(self) -> bool {
        !matches!(self, Format::Xlsx)
    }
}

enum Binary {
    None,
    Xlsx(Box<crate::spreadsheet::XlsxWriter>),
    Parquet(Box<crate::columnar::ParquetWriter>),
}

pub struct Encoder {
    format: Format,
    columns: Vec<(String, FieldType)>,
    geometry: Option<String>,
    count: u64,
    binary: Binary,
}

impl Encoder {
    /// `columns`: the exported field names in order (the select of the query, or the
    /// schema); `tz`: the zone date-times are written in where a format has none (XLSX).
    pub fn new(format: Format, schema: &Schema, columns: Vec<String>, tz: Tz) -> Result<Self, ExportError> {
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
        let binary = match format {
            Format::Xlsx => Binary::Xlsx(Box::new(crate::spreadsheet::XlsxWriter::new(&typed, tz)?)),
            Format::Parquet => Binary::Parquet(Box::new(crate::columnar::ParquetWriter::new(&typed)?)),
            _ => Binary::None,
        };
        Ok(Encoder { format, columns: typed, geometry, count: 0, binary })
    }

    /// An XLSX encoder that refuses more than `max` records (Excel's limit is the
    /// default; a test cannot write a million rows).
    pub fn with_max_rows(mut self, max: u32) -> Self {
        if let Binary::Xlsx(x) = &mut self.binary {
            x.max_rows = max;
        }
        self
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
            Format::Xlsx | Format::Parquet => Vec::new(),
        }
    }

    pub fn record(&mut self, record: &Record) -> Result<Vec<u8>, ExportError> {
        let first = self.count == 0;
        self.count += 1;
        Ok(match self.format {
            Format::Xlsx | Format::Parquet => match &mut self.binary {
                Binary::Xlsx(x) => {
                    x.record(&self.columns, record)?;
                    Vec::new()
                }
                Binary::Parquet(p) => p.record(&self.columns, record)?,
                Binary::None => Vec::new(),
            },
            Format::Csv { delimiter, .. } => csv_line(
                delimiter,
                self.columns.iter().map(|(n, t)| csv_cell(record.get(n).unwrap_or(&Json::Null), *t)),
            ),
            Format::Json => {
                let mut out = if first { Vec::new() } else { b",".to_vec() };
                // Serialising the map itself: no copy of the record per line.
                out.extend(serde_json::to_vec(record).unwrap_or_default());
                out
            }
            Format::Jsonl => {
                let mut out = serde_json::to_vec(record).unwrap_or_default();
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
        })
    }

    /// Writes what follows the last record: a closing bracket, Parquet's last row group
    /// and footer, or the whole XLSX workbook (call it off the async threads for XLSX).
    pub fn finish(&mut self, out: &mut (dyn Write + Send)) -> Result<(), ExportError> {
        match (self.format, std::mem::replace(&mut self.binary, Binary::None)) {
            (_, Binary::Xlsx(x)) => (*x).save(out),
            (_, Binary::Parquet(p)) => Ok(out.write_all(&(*p).close()?)?),
            (Format::Json, _) => Ok(out.write_all(b"]")?),
            (Format::GeoJson, _) => Ok(out.write_all(b"]}")?),
            _ => Ok(()),
        }
    }

    /// [`Encoder::finish`] into bytes, for the streamed formats.
    pub fn end(&mut self) -> Result<Vec<u8>, ExportError> {
        let mut out = Vec::new();
        self.finish(&mut out)?;
        Ok(out)
    }
}

pub(crate) fn csv_cell(v: &Json, t: FieldType) -> String {
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
