//! Devices: their LoRaWAN identifier, the entity they measure, and how their
//! decoded values become that entity's observations.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use socle_domain::{AttributeName, EntityId, OrganisationId, UnitCode};

use crate::codec::ModelId;
use crate::expr::Expression;
use crate::mapping::{FieldPath, Mapping, Transform, ValueKind};

/// A LoRaWAN device EUI (EUI-64). Network servers disagree on case
/// (ChirpStack: lowercase, TTN: uppercase), so it is parsed
/// case-insensitively and always shown in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DevEui([u8; 8]);

/// Why a string is not a DevEUI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DevEUI {0:?}: expected 16 hexadecimal digits")]
pub struct DevEuiError(pub String);

impl DevEui {
    pub fn parse(s: &str) -> Result<Self, DevEuiError> {
        let err = || DevEuiError(s.chars().take(40).collect());
        let b = s.as_bytes();
        if b.len() != 16 {
            return Err(err());
        }
        let mut out = [0u8; 8];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or_else(err)?;
            let lo = hex_digit(pair[1]).ok_or_else(err)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Self(out))
    }

    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for DevEui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for DevEui {
    type Err = DevEuiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DevEui {
    type Error = DevEuiError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DevEui> for String {
    fn from(v: DevEui) -> Self {
        v.to_string()
    }
}

/// A device known to Socle: which entity its values feed, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    #[serde(rename = "devEui")]
    pub dev_eui: DevEui,
    /// Unique within the import; also how the generic JSON format may name it.
    pub name: String,
    /// The codec's model id (`dragino-ldds75`).
    pub model: ModelId,
    pub organisation: OrganisationId,
    pub entity: EntityId,
    #[serde(default)]
    pub mappings: Vec<Mapping>,
}

// ---- CSV import ------------------------------------------------------------

/// Largest CSV accepted, in bytes.
pub const MAX_CSV_BYTES: usize = 4 * 1024 * 1024;
/// At most this many errors are listed; the import goes on past them.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// Columns of the device CSV. One row per mapping; the device columns repeat
/// on each row of the same device (a spreadsheet-friendly layout, one sheet).
/// A row with empty `field` and `attribute` declares a device without a mapping.
pub const CSV_COLUMNS: [&str; 14] = [
    "dev_eui",
    "name",
    "model",
    "organisation",
    "entity",
    "field",
    "attribute",
    "unit",
    "kind",
    "scale",
    "offset",
    "expression",
    "min",
    "max",
];
const REQUIRED_COLUMNS: [&str; 5] = ["dev_eui", "name", "model", "organisation", "entity"];

/// One problem of an import, located for the person fixing the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column `{c}`: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// The devices that were read, and what was wrong elsewhere.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceImport {
    pub devices: Vec<Device>,
    pub errors: Vec<LineError>,
    /// Errors past [`MAX_REPORTED_ERRORS`], counted but not listed.
    pub more_errors: usize,
}

impl DeviceImport {
    fn error(&mut self, line: u64, column: Option<&str>, message: impl Into<String>) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(LineError { line, column: column.map(str::to_owned), message: message.into() });
        } else {
            self.more_errors += 1;
        }
    }
}

/// Reads the device CSV (see [`CSV_COLUMNS`]).
///
/// - The header is required; columns may come in any order, names are
///   case-insensitive; the five device columns are required, the mapping
///   columns optional; an unknown column is refused (a typo would otherwise
///   silently drop a setting).
/// - `,` or `;` separated (French spreadsheets write `;` and decimal commas,
///   which are then accepted in numbers); a UTF-8 byte-order mark is ignored.
/// - `kind` is `auto` (default), `number` or `text`; `scale`/`offset` give a
///   linear transform, `expression` a formula (not both); `min`/`max` a range
///   (both or neither).
/// - A bad line is reported and skipped, and so is the rest of its device
///   (importing a device with part of its mappings would silently lose
///   measurements); other devices are imported.
pub fn import_csv(input: &[u8]) -> DeviceImport {
    let mut out = DeviceImport::default();
    if input.len() > MAX_CSV_BYTES {
        out.error(1, None, format!("file of {} bytes exceeds the limit of {MAX_CSV_BYTES} bytes", input.len()));
        return out;
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let first_line = input.split(|b| *b == b'\n').next().unwrap_or_default();
    let count = |c: u8| first_line.iter().filter(|b| **b == c).count();
    let delimiter = if count(b';') > count(b',') { b';' } else { b',' };
    let decimal_comma = delimiter == b';';

    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(input);
    let header = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            out.error(1, None, format!("unreadable header: {e}"));
            return out;
        }
    };
    let mut columns: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut header_ok = true;
    for (i, raw) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
        match CSV_COLUMNS.iter().find(|c| **c == name) {
            Some(c) if columns.contains_key(c) => {
                out.error(1, Some(c), "column given twice");
                header_ok = false;
            }
            Some(c) => {
                columns.insert(c, i);
            }
            None => {
                out.error(1, None, format!("unknown column {name:?}; expected {}", CSV_COLUMNS.join(", ")));
                header_ok = false;
            }
        }
    }
    for c in REQUIRED_COLUMNS {
        if !columns.contains_key(c) {
            out.error(1, Some(c), "required column missing");
            header_ok = false;
        }
    }
    if !header_ok {
        return out;
    }

    // Devices in order of first appearance; a device with a bad line is dropped.
    let mut entries: Vec<Entry> = Vec::new();
    let mut by_eui: HashMap<DevEui, usize> = HashMap::new();
    let mut by_name: HashMap<String, DevEui> = HashMap::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // The reader goes on with the next record.
                out.error(line, None, format!("unreadable line: {e}"));
                continue;
            }
        }
        let line = record.position().map_or(line, csv::Position::line);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let parsed = if record.len() == header.len() {
            parse_row(&record, &columns, decimal_comma)
        } else {
            Err((None, format!("{} fields, expected {} as in the header", record.len(), header.len())))
        };
        let (device, mapping) = match parsed {
            Ok(row) => row,
            Err((column, message)) => {
                out.error(line, column, message);
                // Fail the whole device, when the line says which one it is.
                let eui = cell(&record, &columns, "dev_eui").ok().flatten().and_then(|s| DevEui::parse(&s).ok());
                if let Some(eui) = eui {
                    let i = *by_eui.entry(eui).or_insert_with(|| {
                        entries.push(Entry { first_line: line, dev_eui: eui, device: None, failed: Vec::new() });
                        entries.len() - 1
                    });
                    entries[i].failed.push(line);
                }
                continue;
            }
        };
        let i = *by_eui.entry(device.dev_eui).or_insert_with(|| {
            entries.push(Entry { first_line: line, dev_eui: device.dev_eui, device: None, failed: Vec::new() });
            entries.len() - 1
        });
        let entry = &mut entries[i];
        let Some(known) = &mut entry.device else {
            if entry.first_line != line {
                // The device's first line was bad: its other lines go with it.
                entry.failed.push(line);
                continue;
            }
            if let Some(other) = by_name.get(&device.name) {
                out.error(line, Some("name"), format!("name {:?} is already used by device {other}", device.name));
                entry.failed.push(line);
                continue;
            }
            by_name.insert(device.name.clone(), device.dev_eui);
            let mut device = device;
            device.mappings.extend(mapping);
            entry.device = Some(device);
            continue;
        };
        let differs = [
            ("name", known.name != device.name),
            ("model", known.model != device.model),
            ("organisation", known.organisation != device.organisation),
            ("entity", known.entity != device.entity),
        ];
        if let Some((column, _)) = differs.iter().find(|(_, d)| *d) {
            out.error(line, Some(column), format!("differs from line {} for the same dev_eui", entry.first_line));
            entry.failed.push(line);
            continue;
        }
        if let Some(m) = mapping {
            if known.mappings.iter().any(|k| k.attribute == m.attribute) {
                out.error(line, Some("attribute"), format!("{} is already mapped for this device", m.attribute));
                entry.failed.push(line);
                continue;
            }
            known.mappings.push(m);
        }
    }
    for entry in entries {
        match entry.device {
            Some(device) if entry.failed.is_empty() => out.devices.push(device),
            _ => {
                let lines: Vec<String> = entry.failed.iter().map(u64::to_string).collect();
                out.error(
                    entry.first_line,
                    Some("dev_eui"),
                    format!("device {} not imported because of line(s) {}", entry.dev_eui, lines.join(", ")),
                );
            }
        }
    }
    out
}

/// A device being assembled from its lines.
struct Entry {
    first_line: u64,
    dev_eui: DevEui,
    /// `None` while (or because) its first line was bad.
    device: Option<Device>,
    /// Lines that failed: any makes the device refused.
    failed: Vec<u64>,
}

type CellError = (Option<&'static str>, String);

/// A trimmed cell; `None` when the column is absent or the cell empty.
fn cell(
    record: &csv::ByteRecord,
    columns: &BTreeMap<&'static str, usize>,
    name: &'static str,
) -> Result<Option<String>, CellError> {
    let Some(raw) = columns.get(name).and_then(|i| record.get(*i)) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(raw).map_err(|_| (Some(name), "not valid UTF-8".to_owned()))?.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

fn parse_row(
    record: &csv::ByteRecord,
    columns: &BTreeMap<&'static str, usize>,
    decimal_comma: bool,
) -> Result<(Device, Option<Mapping>), CellError> {
    let get = |name: &'static str| cell(record, columns, name);
    let required = |name: &'static str| get(name)?.ok_or((Some(name), "required".to_owned()));
    let bad = |name: &'static str, e: &dyn fmt::Display| (Some(name), e.to_string());
    let number = |name: &'static str| -> Result<Option<f64>, CellError> {
        let Some(text) = get(name)? else { return Ok(None) };
        let text = if decimal_comma { text.replace(',', ".") } else { text };
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err((Some(name), format!("{text:?} is not a number"))),
        }
    };

    let dev_eui = DevEui::parse(&required("dev_eui")?).map_err(|e| bad("dev_eui", &e))?;
    let name = required("name")?;
    if !crate::generic::is_name(&name) {
        return Err((Some("name"), "expected 1-128 characters, no control characters".into()));
    }
    let model = ModelId::parse(&required("model")?).map_err(|e| bad("model", &e))?;
    let organisation = OrganisationId::parse(&required("organisation")?).map_err(|e| bad("organisation", &e))?;
    let entity = EntityId::parse(&required("entity")?).map_err(|e| bad("entity", &e))?;
    let device = Device { dev_eui, name, model, organisation, entity, mappings: Vec::new() };

    let (field, attribute) = (get("field")?, get("attribute")?);
    let mapping_cells = ["unit", "kind", "scale", "offset", "expression", "min", "max"];
    let (field, attribute) = match (field, attribute) {
        (None, None) => {
            if let Some(c) = mapping_cells.into_iter().find(|c| matches!(get(c), Ok(Some(_)))) {
                return Err((Some(c), "a mapping setting without `field` and `attribute`".into()));
            }
            return Ok((device, None));
        }
        (Some(_), None) => return Err((Some("attribute"), "required with `field`".into())),
        (None, Some(_)) => return Err((Some("field"), "required with `attribute`".into())),
        (Some(f), Some(a)) => (f, a),
    };
    let field = FieldPath::parse(&field).map_err(|e| bad("field", &e))?;
    let attribute = AttributeName::parse(&attribute).map_err(|e| bad("attribute", &e))?;
    let unit_code = get("unit")?.map(|u| UnitCode::parse(&u)).transpose().map_err(|e| bad("unit", &e))?;
    let kind = match get("kind")?.map(|k| k.to_ascii_lowercase()).as_deref() {
        None | Some("auto") => ValueKind::Auto,
        Some("number") => ValueKind::Number,
        Some("text") => ValueKind::Text,
        Some(other) => return Err((Some("kind"), format!("{other:?} is not one of auto, number, text"))),
    };
    let (scale, offset) = (number("scale")?, number("offset")?);
    let transform = match (scale, offset, get("expression")?) {
        (None, None, None) => Transform::Identity,
        (s, o, None) => Transform::Linear { scale: s.unwrap_or(1.0), offset: o.unwrap_or(0.0) },
        (None, None, Some(e)) => {
            Transform::Expression { formula: Expression::parse(&e).map_err(|e| bad("expression", &e))? }
        }
        (_, _, Some(_)) => return Err((Some("expression"), "give scale/offset or an expression, not both".into())),
    };
    let range = match (number("min")?, number("max")?) {
        (None, None) => None,
        (Some(min), Some(max)) => Some((min, max)),
        (Some(_), None) => return Err((Some("max"), "required with `min`".into())),
        (None, Some(_)) => return Err((Some("min"), "required with `max`".into())),
    };
    let mapping = Mapping { field, attribute, unit_code, kind, transform, range };
    mapping.validate().map_err(|e| (None, e.to_string()))?;
    Ok((device, Some(mapping)))
}
