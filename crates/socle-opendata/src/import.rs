//! Reading uploaded files into typed records: CSV (delimiter sniffed, UTF-8 or
//! Windows-1252, column types inferred and overridable), Excel workbooks (first sheet,
//! typed as CSV) and GeoJSON.

use std::collections::HashMap;

use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::odsql::Record;
use crate::schema::{Field, FieldType, Schema};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error("CSV line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error("GeoJSON: {0}")]
    GeoJson(String),
    #[error("Excel workbook: {0}")]
    Xlsx(String),
    #[error("column '{0}' appears twice")]
    DuplicateColumn(String),
}

/// An imported table: its schema and its rows with stable ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub schema: Schema,
    pub rows: Vec<(String, Record)>,
    pub delimiter: Option<u8>,
    pub encoding: &'static str,
}

/// Text of the upload: UTF-8 (with or without BOM) when valid, else Windows-1252,
/// the encoding of spreadsheets saved "CSV" on French Windows.
pub fn decode(bytes: &[u8]) -> (String, &'static str) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), "UTF-8"),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            (text.into_owned(), "windows-1252")
        }
    }
}

/// The delimiter that splits the first lines into the most consistent columns.
pub fn sniff_delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(20).collect();
    let mut best = (b';', 0usize);
    for d in [b';', b',', b'\t', b'|'] {
        let counts: Vec<usize> = lines.iter().map(|l| count_outside_quotes(l, d)).collect();
        let first = counts.first().copied().unwrap_or(0);
        let consistent = counts.iter().filter(|&&c| c == first).count();
        let score = if first == 0 { 0 } else { consistent * 1000 + first };
        if score > best.1 {
            best = (d, score);
        }
    }
    best.0
}

fn count_outside_quotes(line: &str, d: u8) -> usize {
    let mut quoted = false;
    line.bytes()
        .filter(|&b| {
            if b == b'"' {
                quoted = !quoted;
            }
            !quoted && b == d
        })
        .count()
}

/// A field name from a column header: lower case ASCII, `_` for the rest (`Date
/// d'ouverture` → `date_d_ouverture`), as Opendatasoft names fields.
pub fn field_name(header: &str) -> String {
    // A header that already is a field name (`nomAttribuant` in SCDL files) is kept, so
    // exports still match the Table Schema it comes from.
    let header = header.trim();
    if header.starts_with(|c: char| c.is_ascii_lowercase())
        && header.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return header.to_string();
    }
    let mut out = String::new();
    for c in crate::odsql::normalise(header.trim()).chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("field_{out}")
    } else {
        out
    }
}

/// The cells of a CSV file as text, before typing: for Table Schema validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Cells {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub delimiter: u8,
    pub encoding: &'static str,
}

pub fn read_csv_cells(bytes: &[u8]) -> Result<Cells, ImportError> {
    let (text, encoding) = decode(bytes);
    if text.trim().is_empty() {
        return Err(ImportError::Empty);
    }
    let delimiter = sniff_delimiter(&text);
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(false).from_reader(text.as_bytes());
    let csv_error =
        |e: csv::Error| ImportError::Csv { line: e.position().map(|p| p.line()).unwrap_or(0), message: e.to_string() };
    let headers: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(str::to_string).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for row in reader.records() {
        let row = row.map_err(csv_error)?;
        rows.push(row.iter().map(|v| v.trim().to_string()).collect());
    }
    Ok(Cells { headers, rows, delimiter, encoding })
}

pub fn read_csv(bytes: &[u8], overrides: &HashMap<String, FieldType>) -> Result<Table, ImportError> {
    let cells = read_csv_cells(bytes)?;
    let delimiter = cells.delimiter;
    let mut table = typed_table(cells, overrides)?;
    table.delimiter = Some(delimiter);
    Ok(table)
}

/// The first sheet of an Excel workbook (`.xlsx`) as text cells: its first non-empty row
/// is the header. Numbers are written as CSV would hold them, dates as ISO 8601, so
/// the same type inference (and Table Schema validation) applies to both.
pub fn read_xlsx_cells(bytes: &[u8]) -> Result<Cells, ImportError> {
    use calamine::{Reader, Xlsx};
    let mut workbook: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).map_err(|e| ImportError::Xlsx(e.to_string()))?;
    let range = match workbook.worksheet_range_at(0) {
        Some(range) => range.map_err(|e| ImportError::Xlsx(e.to_string()))?,
        None => return Err(ImportError::Empty),
    };
    let mut rows = range.rows().map(|r| r.iter().map(xlsx_text).collect::<Result<Vec<String>, _>>());
    let headers = loop {
        match rows.next() {
            None => return Err(ImportError::Empty),
            Some(row) => {
                let row = row?;
                if row.iter().any(|c| !c.is_empty()) {
                    break row;
                }
            }
        }
    };
    // A sheet's used range can be wider than its header (a stray cell on the right):
    // columns without a header name are dropped, as a spreadsheet user expects.
    let width = headers.iter().rposition(|h| !h.is_empty()).map_or(0, |p| p + 1);
    let headers: Vec<String> = headers.into_iter().take(width).collect();
    if let Some(p) = headers.iter().position(String::is_empty) {
        return Err(ImportError::Xlsx(format!("column {} has no header", p + 1)));
    }
    let mut out = Vec::new();
    for row in rows {
        let mut row = row?;
        if row.iter().all(String::is_empty) {
            continue;
        }
        row.resize(width, String::new());
        out.push(row);
    }
    Ok(Cells { headers, rows: out, delimiter: b',', encoding: "UTF-8" })
}

/// An Excel workbook's first sheet as a table, typed as a CSV file would be.
pub fn read_xlsx(bytes: &[u8], overrides: &HashMap<String, FieldType>) -> Result<Table, ImportError> {
    typed_table(read_xlsx_cells(bytes)?, overrides)
}

fn xlsx_text(cell: &calamine::Data) -> Result<String, ImportError> {
    use calamine::Data;
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_string(),
        Data::Bool(b) => b.to_string(),
        Data::Int(i) => i.to_string(),
        // Excel keeps every number as a double: a whole one is written as an integer
        // so that the column is inferred `int`.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::DateTime(d) => match d.as_datetime() {
            // A workbook's dates carry no zone: they are taken as French local time,
            // the only one Socle's publishers write in.
            Some(t) if t.time() == chrono::NaiveTime::MIN && d.as_f64() >= 1.0 => {
                t.date().format("%Y-%m-%d").to_string()
            }
            Some(t) => {
                use chrono::TimeZone;
                match chrono_tz::Europe::Paris.from_local_datetime(&t).earliest() {
                    Some(local) => local.to_rfc3339(),
                    None => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                }
            }
            None => d.as_f64().to_string(),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => return Err(ImportError::Xlsx(format!("a cell holds the error {e}"))),
    })
}

fn typed_table(cells: Cells, overrides: &HashMap<String, FieldType>) -> Result<Table, ImportError> {
    let Cells { headers, rows: raw, encoding, .. } = cells;
    let names: Vec<String> = headers.iter().map(|h| field_name(h)).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(ImportError::DuplicateColumn(n.clone()));
        }
    }
    let fields: Vec<Field> = names
        .iter()
        .zip(&headers)
        .enumerate()
        .map(|(i, (name, label))| {
            let t = overrides
                .get(name)
                .copied()
                .unwrap_or_else(|| infer(raw.iter().map(|r| r.get(i).map(String::as_str).unwrap_or(""))));
            Field::new(name, label.trim(), t)
        })
        .collect();
    let rows = raw
        .into_iter()
        .map(|r| {
            let mut record = Map::new();
            for (field, value) in fields.iter().zip(r) {
                record.insert(field.name.clone(), convert(&value, field.field_type));
            }
            record
        })
        .collect();
    Ok(Table { schema: Schema::new(fields), rows: with_ids(rows), delimiter: None, encoding })
}

/// The narrowest type every non-empty value fits.
pub fn infer<'a>(values: impl Iterator<Item = &'a str>) -> FieldType {
    let candidates = [
        FieldType::Int,
        FieldType::Double,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::DateTime,
        FieldType::GeoPoint2d,
    ];
    let mut possible = candidates.to_vec();
    let mut any = false;
    for v in values.filter(|v| !v.is_empty()) {
        any = true;
        possible.retain(|&t| !matches!(convert(v, t), Json::Null));
        if possible.is_empty() {
            return FieldType::Text;
        }
    }
    if any {
        possible[0]
    } else {
        FieldType::Text
    }
}

/// A cell as the JSON value of its type, or `null` when it does not fit.
pub fn convert(value: &str, t: FieldType) -> Json {
    let v = value.trim();
    if v.is_empty() {
        return Json::Null;
    }
    match t {
        FieldType::Text => Json::String(v.to_string()),
        FieldType::Int => v.replace(['\u{a0}', ' '], "").parse::<i64>().map(Json::from).unwrap_or(Json::Null),
        FieldType::Double => {
            french_number(v).and_then(serde_json::Number::from_f64).map(Json::Number).unwrap_or(Json::Null)
        }
        FieldType::Boolean => match v.to_lowercase().as_str() {
            "true" | "vrai" | "oui" | "yes" | "1" => Json::Bool(true),
            "false" | "faux" | "non" | "no" | "0" => Json::Bool(false),
            _ => Json::Null,
        },
        FieldType::Date => date(v).map(Json::String).unwrap_or(Json::Null),
        FieldType::DateTime => {
            chrono::DateTime::parse_from_rfc3339(v).map(|d| Json::String(d.to_rfc3339())).unwrap_or(Json::Null)
        }
        FieldType::GeoPoint2d => {
            // "lat, lon" as Opendatasoft writes points in CSV.
            let parts: Vec<&str> = v.split(',').map(str::trim).collect();
            match parts.as_slice() {
                [lat, lon] => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                    (Ok(lat), Ok(lon)) if lat.abs() <= 90.0 && lon.abs() <= 180.0 => {
                        json!({"lon": lon, "lat": lat})
                    }
                    _ => Json::Null,
                },
                _ => Json::Null,
            }
        }
        FieldType::GeoShape => serde_json::from_str::<Json>(v)
            .ok()
            .filter(|j| crate::geojson::geometry_from_json(j).is_some())
            .unwrap_or(Json::Null),
    }
}

fn french_number(v: &str) -> Option<f64> {
    let cleaned = v.replace(['\u{a0}', ' '], "");
    let cleaned = if cleaned.contains(',') && !cleaned.contains('.') { cleaned.replace(',', ".") } else { cleaned };
    cleaned.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn date(v: &str) -> Option<String> {
    use chrono::NaiveDate;
    for format in ["%Y-%m-%d", "%d/%m/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(v, format) {
            return Some(d.format("%Y-%m-%d").to_string());
        }
    }
    None
}

/// Record ids from content, like Opendatasoft's: the same row uploaded again keeps
/// its id; identical rows get a counter.
pub fn with_ids(rows: Vec<Record>) -> Vec<(String, Record)> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    rows.into_iter()
        .map(|r| {
            let digest = Sha256::digest(Json::Object(r.clone()).to_string().as_bytes());
            let mut id = hex::encode(&digest[..20]);
            let n = seen.entry(id.clone()).or_default();
            if *n > 0 {
                id = format!("{id}-{n}");
            }
            *n += 1;
            (id, r)
        })
        .collect()
}

/// A GeoJSON FeatureCollection: properties become fields, the geometry `geo_shape`,
/// and its centroid `geo_point_2d`.
pub fn read_geojson(bytes: &[u8]) -> Result<Table, ImportError> {
    use geo::Centroid;
    let (text, encoding) = decode(bytes);
    let json: Json = serde_json::from_str(&text).map_err(|e| ImportError::GeoJson(e.to_string()))?;
    let features = json
        .get("features")
        .and_then(Json::as_array)
        .ok_or_else(|| ImportError::GeoJson("expected a FeatureCollection".into()))?;
    let mut names: Vec<String> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for f in features {
        let mut record = Map::new();
        if let Some(props) = f.get("properties").and_then(Json::as_object) {
            for (k, v) in props {
                let name = field_name(k);
                if !names.contains(&name) {
                    names.push(name.clone());
                    labels.push(k.clone());
                }
                record.insert(name, v.clone());
            }
        }
        if let Some(g) = f.get("geometry").filter(|g| !g.is_null()) {
            if let Some(geometry) = crate::geojson::geometry_from_json(g) {
                if let Some(c) = geometry.centroid() {
                    record.insert("geo_point_2d".into(), json!({"lon": c.x(), "lat": c.y()}));
                }
                record.insert("geo_shape".into(), g.clone());
            }
        }
        rows.push(record);
    }
    let mut fields: Vec<Field> = names
        .iter()
        .zip(&labels)
        .map(|(n, l)| {
            let t = infer_json(rows.iter().filter_map(|r| r.get(n)));
            Field::new(n, l, t)
        })
        .collect();
    fields.push(Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d));
    fields.push(Field::new("geo_shape", "Géométrie", FieldType::GeoShape));
    Ok(Table { schema: Schema::new(fields), rows: with_ids(rows), delimiter: None, encoding })
}

fn infer_json<'a>(values: impl Iterator<Item = &'a Json>) -> FieldType {
    let mut t: Option<FieldType> = None;
    for v in values {
        let this = match v {
            Json::Null => continue,
            Json::Bool(_) => FieldType::Boolean,
            Json::Number(n) if n.is_i64() => FieldType::Int,
            Json::Number(_) => FieldType::Double,
            _ => FieldType::Text,
        };
        t = Some(match (t, this) {
            (None, x) => x,
            (Some(a), b) if a == b => a,
            (Some(FieldType::Int), FieldType::Double) | (Some(FieldType::Double), FieldType::Int) => FieldType::Double,
            _ => FieldType::Text,
        });
    }
    t.unwrap_or(FieldType::Text)
}
