//! CSV and GeoJSON uploads to typed records, and the export encoders.

use std::collections::HashMap;

use serde_json::json;
use socle_opendata::export::{Encoder, Format};
use socle_opendata::import::{read_csv, read_geojson};
use socle_opendata::schema::FieldType;

#[test]
fn csv_in_windows_1252_with_semicolons_and_french_numbers() {
    // "Équipement;Surface;Ouverture;Position" in Windows-1252, as Excel saves it.
    let mut bytes = b"\xc9quipement;Surface (m\xb2);Ouverture;Position\r\n".to_vec();
    bytes.extend(b"Piscine;1 250,5;15/06/1998;47.4784, -0.5632\r\n");
    bytes.extend(b"Gymnase;980;2005-09-01;47.4521, -0.5412\r\n");
    let table = read_csv(&bytes, &HashMap::new()).unwrap();
    assert_eq!(table.encoding, "windows-1252");
    assert_eq!(table.delimiter, Some(b';'));
    let types: Vec<(&str, FieldType)> = table.schema.fields.iter().map(|f| (f.name.as_str(), f.field_type)).collect();
    assert_eq!(
        types,
        [
            ("equipement", FieldType::Text),
            ("surface_m", FieldType::Double),
            ("ouverture", FieldType::Date),
            ("position", FieldType::GeoPoint2d)
        ]
    );
    assert_eq!(table.schema.fields[0].label, "Équipement");
    let first = &table.rows[0].1;
    assert_eq!(first["surface_m"], json!(1250.5));
    assert_eq!(first["ouverture"], json!("1998-06-15"));
    assert_eq!(first["position"], json!({"lon": -0.5632, "lat": 47.4784}));
    // Same content, same ids: a re-upload keeps record ids.
    let again = read_csv(&bytes, &HashMap::new()).unwrap();
    assert_eq!(table.rows[0].0, again.rows[0].0);
    // Types can be overridden.
    let overrides = HashMap::from([("surface_m".to_string(), FieldType::Text)]);
    let table = read_csv(&bytes, &overrides).unwrap();
    assert_eq!(table.rows[0].1["surface_m"], json!("1 250,5"));
}

#[test]
fn csv_with_commas_and_quotes() {
    let table = read_csv(b"nom,code\n\"Angers, ville\",49007\nAvrill\xc3\xa9,49015\n", &HashMap::new()).unwrap();
    assert_eq!(table.delimiter, Some(b','));
    assert_eq!(table.rows[0].1["nom"], json!("Angers, ville"));
    assert_eq!(table.rows[1].1["code"], json!(49015));
    assert!(read_csv(b"", &HashMap::new()).is_err());
    assert!(read_csv(b"a;a\n1;2\n", &HashMap::new()).is_err());
    // SCDL headers are field names already: kept as written.
    let scdl = read_csv(b"nomAttribuant;Montant total\nCommune;12\n", &HashMap::new()).unwrap();
    let names: Vec<&str> = scdl.schema.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["nomAttribuant", "montant_total"]);
}

#[test]
fn geojson_features_become_records_with_a_point() {
    let body = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"nom": "Parc", "surface": 2.5},
         "geometry": {"type": "Polygon", "coordinates": [[[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [0.0, 0.0]]]}}
    ]});
    let table = read_geojson(body.to_string().as_bytes()).unwrap();
    assert_eq!(table.rows[0].1["geo_point_2d"], json!({"lon": 1.0, "lat": 1.0}));
    assert_eq!(table.schema.type_of("surface"), Some(FieldType::Double));
}

#[test]
fn encoders_write_csv_json_jsonl_and_geojson() {
    let table = read_csv(b"nom;position\nPiscine;47.4784, -0.5632\n", &HashMap::new()).unwrap();
    let columns = vec!["nom".to_string(), "position".to_string()];
    let encode = |format| {
        let mut e = Encoder::new(format, &table.schema, columns.clone(), chrono_tz::UTC).unwrap();
        let mut out = e.begin();
        for (_, r) in &table.rows {
            out.extend(e.record(r).unwrap());
            out.extend(e.record(r).unwrap());
        }
        out.extend(e.end().unwrap());
        String::from_utf8(out).unwrap()
    };
    let csv = encode(Format::parse("csv", None, true).unwrap());
    assert_eq!(csv, "\u{feff}nom;position\r\nPiscine;47.4784, -0.5632\r\nPiscine;47.4784, -0.5632\r\n");
    let json: serde_json::Value = serde_json::from_str(&encode(Format::Json)).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    assert_eq!(encode(Format::Jsonl).lines().count(), 2);
    let geo: serde_json::Value = serde_json::from_str(&encode(Format::GeoJson)).unwrap();
    assert_eq!(geo["features"][1]["geometry"], json!({"type": "Point", "coordinates": [-0.5632, 47.4784]}));
    assert!(Format::parse("csv", Some("x"), false).is_none());
}

#[test]
fn table_schema_reports_rows_and_columns() {
    use socle_opendata::import::read_csv_cells;
    use socle_opendata::table_schema::TableSchema;
    // An extract of the SCDL « subventions » schema.
    let schema = TableSchema::parse(&json!({"fields": [
        {"name": "nomAttribuant", "type": "string", "constraints": {"required": true}},
        {"name": "idAttribuant", "type": "string", "constraints": {"required": true, "pattern": "^[0-9]{14}$"}},
        {"name": "dateConvention", "type": "date", "constraints": {"required": true}},
        {"name": "montant", "type": "number", "constraints": {"minimum": 0}},
        {"name": "nature", "type": "string", "constraints": {"enum": ["aide en numéraire", "aide en nature"]}},
        {"name": "notificationUE", "type": "boolean", "trueValues": ["oui"], "falseValues": ["non"]},
        {"name": "referenceDecision", "type": "string", "constraints": {"unique": true}},
    ]}))
    .unwrap();
    let good = "nomAttribuant;idAttribuant;dateConvention;montant;nature;notificationUE;referenceDecision\n\
                Commune;21863170300014;2025-02-11;3500;aide en numéraire;non;DEL-1\n";
    let cells = read_csv_cells(good.as_bytes()).unwrap();
    assert_eq!(schema.validate(&cells.headers, &cells.rows), []);
    let bad = "nomAttribuant;idAttribuant;dateConvention;montant;nature;notificationUE;referenceDecision;extra\n\
               ;2186317;11/02/2025;-5;don;peut-être;DEL-1;x\n\
               Commune;21863170300014;2025-02-11;12;aide en nature;oui;DEL-1;y\n";
    let cells = read_csv_cells(bad.as_bytes()).unwrap();
    let errors: Vec<(usize, String, &str)> =
        schema.validate(&cells.headers, &cells.rows).into_iter().map(|e| (e.row, e.column, e.code)).collect();
    let expected: Vec<(usize, String, &str)> = [
        (0, "extra", "extra-column"),
        (1, "nomAttribuant", "required"),
        (1, "idAttribuant", "pattern"),
        (1, "dateConvention", "type"),
        (1, "montant", "range"),
        (1, "nature", "enum"),
        (1, "notificationUE", "type"),
        (2, "referenceDecision", "unique"),
    ]
    .into_iter()
    .map(|(r, c, k)| (r, c.to_string(), k))
    .collect();
    assert_eq!(errors, expected);
    assert!(TableSchema::parse(&json!({"fields": [{"name": "x", "constraints": {"pattern": "("}}]})).is_err());
}
