//! XLSX import and export, Parquet export, and the bounded query runs: each file is
//! read back with an independent reader (calamine, the parquet crate's record reader).

use std::collections::HashMap;

use calamine::{Data, Reader, Xlsx};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field as PqField;
use serde_json::{json, Map, Value};
use socle_opendata::columnar::ROW_GROUP;
use socle_opendata::export::{Encoder, ExportError, Format};
use socle_opendata::import::{read_csv, read_xlsx};
use socle_opendata::odsql::{Query, QueryParams, Record};
use socle_opendata::schema::{Field, FieldType, Schema};

/// A workbook as a publisher saves it: typed cells, a date with a date format, a
/// whole number stored as a double, an empty cell, an empty row.
fn workbook() -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format as XFormat, Workbook};
    let mut wb = Workbook::new();
    let sheet = wb.add_worksheet();
    let date = XFormat::new().set_num_format("dd/mm/yyyy");
    for (c, h) in
        ["Nom", "Surface (m²)", "Capacité", "Mise en service", "Accessible PMR", "Position"].iter().enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let rows = [
        ("Piscine des Lémances", 1850.5, Some(420.0), (1996, 6, 14), true, "46.4608, 0.5441"),
        ("Gymnase Jean-Moulin", 1240.0, Some(350.0), (1988, 9, 2), true, "46.4651, 0.5502"),
        ("Skatepark", 900.0, None, (2016, 7, 12), false, "46.4620, 0.5411"),
    ];
    for (i, (nom, surface, capacite, (y, m, d), pmr, pos)) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write_string(r, 0, *nom).unwrap();
        sheet.write_number(r, 1, *surface).unwrap();
        if let Some(c) = capacite {
            sheet.write_number(r, 2, *c).unwrap();
        }
        sheet.write_datetime_with_format(r, 3, ExcelDateTime::from_ymd(*y, *m, *d).unwrap(), &date).unwrap();
        sheet.write_boolean(r, 4, *pmr).unwrap();
        sheet.write_string(r, 5, *pos).unwrap();
    }
    // An empty row between data rows is skipped, like a blank line of a CSV file.
    sheet.write_string(5, 0, "Dojo").unwrap();
    sheet.write_number(5, 1, 280).unwrap();
    wb.save_to_buffer().unwrap()
}

#[test]
fn xlsx_import_types_the_first_sheet_as_csv_would() {
    let table = read_xlsx(&workbook(), &HashMap::new()).unwrap();
    let types: Vec<(&str, FieldType)> = table.schema.fields.iter().map(|f| (f.name.as_str(), f.field_type)).collect();
    assert_eq!(
        types,
        vec![
            ("nom", FieldType::Text),
            ("surface_m", FieldType::Double),
            ("capacite", FieldType::Int),
            ("mise_en_service", FieldType::Date),
            ("accessible_pmr", FieldType::Boolean),
            ("position", FieldType::GeoPoint2d),
        ]
    );
    assert_eq!(table.rows.len(), 4);
    let first = &table.rows[0].1;
    assert_eq!(first["surface_m"], json!(1850.5));
    assert_eq!(first["capacite"], json!(420));
    assert_eq!(first["mise_en_service"], json!("1996-06-14"));
    assert_eq!(first["accessible_pmr"], json!(true));
    assert_eq!(first["position"], json!({"lon": 0.5441, "lat": 46.4608}));
    assert_eq!(table.rows[2].1["capacite"], Value::Null);
    assert_eq!(table.rows[3].1["nom"], json!("Dojo"));
    // The same file as CSV gives the same records, ids included.
    let csv = "Nom;Surface (m²);Capacité;Mise en service;Accessible PMR;Position\n\
        Piscine des Lémances;1850,5;420;14/06/1996;true;46.4608, 0.5441\n\
        Gymnase Jean-Moulin;1240;350;02/09/1988;true;46.4651, 0.5502\n\
        Skatepark;900;;12/07/2016;false;46.4620, 0.5411\n\
        Dojo;280;;;;\n";
    let from_csv = read_csv(csv.as_bytes(), &HashMap::new()).unwrap();
    assert_eq!(from_csv.rows, table.rows);
    assert!(read_xlsx(b"not a zip", &HashMap::new()).is_err());
}

fn encode(format: Format, schema: &Schema, records: &[Record]) -> Result<Vec<u8>, ExportError> {
    let columns = schema.fields.iter().map(|f| f.name.clone()).collect();
    let mut e = Encoder::new(format, schema, columns, chrono_tz::Europe::Paris)?;
    let mut out = e.begin();
    for r in records {
        out.extend(e.record(r)?);
    }
    e.finish(&mut out)?;
    Ok(out)
}

#[test]
fn xlsx_export_writes_typed_cells_and_reads_back_the_same_records() {
    let table = read_xlsx(&workbook(), &HashMap::new()).unwrap();
    let mut schema = table.schema.clone();
    schema.fields.push(Field::new("releve", "Relevé", FieldType::DateTime));
    let mut records: Vec<Record> = table.rows.iter().map(|(_, r)| r.clone()).collect();
    records[0].insert("releve".into(), json!("2025-03-30T00:30:00+00:00"));
    let bytes = encode(Format::Xlsx, &schema, &records).unwrap();
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(range.get((0, 1)), Some(&Data::String("surface_m".into())));
    assert_eq!(range.get((1, 1)), Some(&Data::Float(1850.5)));
    assert_eq!(range.get((1, 4)), Some(&Data::Bool(true)));
    assert!(matches!(range.get((1, 3)), Some(Data::DateTime(d)) if d.as_f64() == 35230.0), "{:?}", range.get((1, 3)));
    // The instant in the export's zone: 00:30 UTC is 01:30 in Paris (winter time until 01:00 UTC).
    let Some(Data::DateTime(t)) = range.get((1, 6)) else { panic!("{:?}", range.get((1, 6))) };
    assert_eq!(t.as_datetime().unwrap().to_string(), "2025-03-30 01:30:00");
    assert_eq!(range.get((2, 2)), Some(&Data::Float(350.0)));
    assert_eq!(range.get((3, 2)), Some(&Data::Empty));
    // Read back as an upload: the same records (the date-time now local, so left out).
    let back = read_xlsx(&bytes, &HashMap::new()).unwrap();
    for (r, original) in back.rows.iter().zip(&table.rows) {
        let mut r = r.1.clone();
        r.remove("releve");
        assert_eq!(&r, &original.1);
    }
}

#[test]
fn xlsx_refuses_more_rows_than_a_sheet_holds() {
    let schema = Schema::new(vec![Field::new("n", "N", FieldType::Int)]);
    let mut e = Encoder::new(Format::Xlsx, &schema, vec!["n".into()], chrono_tz::UTC).unwrap().with_max_rows(2);
    let record = |n: i64| -> Record { serde_json::from_value(json!({"n": n})).unwrap() };
    e.record(&record(1)).unwrap();
    e.record(&record(2)).unwrap();
    let err = e.record(&record(3)).unwrap_err();
    assert!(matches!(err, ExportError::TooManyRows { max: 2 }), "{err}");
    assert!(err.to_string().contains("parquet"), "the message says what to do: {err}");
    assert_eq!(socle_opendata::spreadsheet::MAX_ROWS, 1_048_575);
}

#[test]
fn parquet_export_has_typed_columns_in_row_groups() {
    let schema = Schema::new(vec![
        Field::new("compteur", "Compteur", FieldType::Text),
        Field::new("n", "N", FieldType::Int),
        Field::new("kwh", "kWh", FieldType::Double),
        Field::new("ouvert", "Ouvert", FieldType::Boolean),
        Field::new("jour", "Jour", FieldType::Date),
        Field::new("releve", "Relevé", FieldType::DateTime),
        Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d),
    ]);
    let total = ROW_GROUP + 1_000;
    let records: Vec<Record> = (0..total)
        .map(|i| {
            let mut r = Map::new();
            r.insert("compteur".into(), json!(format!("PDL-{i}")));
            r.insert("n".into(), if i % 10 == 3 { Value::Null } else { json!(i) });
            r.insert("kwh".into(), json!(i as f64 * 0.5));
            r.insert("ouvert".into(), json!(i % 2 == 0));
            r.insert("jour".into(), json!("2025-01-02"));
            r.insert("releve".into(), json!("2025-01-02T10:00:00+01:00"));
            r.insert("geo_point_2d".into(), json!({"lon": 0.5, "lat": 46.4}));
            r
        })
        .collect();
    // The first row group's bytes come out before the end: memory holds one group.
    let columns: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
    let mut e = Encoder::new(Format::Parquet, &schema, columns, chrono_tz::UTC).unwrap();
    let mut out = e.begin();
    let mut first_group_at = None;
    for (i, r) in records.iter().enumerate() {
        let bytes = e.record(r).unwrap();
        if !bytes.is_empty() && first_group_at.is_none() {
            first_group_at = Some(i + 1);
        }
        out.extend(bytes);
    }
    assert_eq!(first_group_at, Some(ROW_GROUP));
    out.extend(e.end().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.parquet");
    std::fs::write(&path, &out).unwrap();
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.num_row_groups(), 2);
    assert_eq!(meta.file_metadata().num_rows(), total as i64);
    let types: Vec<String> = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| format!("{}:{:?}", c.name(), c.physical_type()))
        .collect();
    assert_eq!(
        types,
        [
            "compteur:BYTE_ARRAY",
            "n:INT64",
            "kwh:DOUBLE",
            "ouvert:BOOLEAN",
            "jour:INT32",
            "releve:INT64",
            "geo_point_2d:BYTE_ARRAY"
        ]
    );
    let rows: Vec<parquet::record::Row> = reader.get_row_iter(None).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), total);
    let row = |i: usize| -> Vec<PqField> { rows[i].get_column_iter().map(|(_, f)| f.clone()).collect() };
    assert_eq!(
        row(ROW_GROUP + 1),
        vec![
            PqField::Str(format!("PDL-{}", ROW_GROUP + 1)),
            PqField::Long((ROW_GROUP + 1) as i64),
            PqField::Double((ROW_GROUP + 1) as f64 * 0.5),
            PqField::Bool(false),
            PqField::Date(20090),
            PqField::TimestampMillis(1_735_808_400_000),
            PqField::Str("46.4, 0.5".into()),
        ]
    );
    assert_eq!(row(3)[1], PqField::Null);
}

#[test]
fn an_ordered_page_keeps_only_its_rows_and_matches_a_full_sort() {
    let schema = Schema::new(vec![Field::new("n", "N", FieldType::Int), Field::new("v", "V", FieldType::Int)]);
    let records: Vec<Record> =
        (0..5_000i64).map(|n| serde_json::from_value(json!({"n": n, "v": (n * 7919) % 113})).unwrap()).collect();
    let params = QueryParams { order_by: Some("v desc"), where_: Some("n >= 10"), ..Default::default() };
    let q = Query::build(&schema, &params).unwrap();
    let all = q.run(records.clone(), 0, usize::MAX);
    assert_eq!(all.total_count, 4_990);
    for (offset, limit) in [(0, 10), (37, 100), (4_900, 100), (9_990, 10)] {
        let page = q.run(records.clone(), offset, limit);
        assert_eq!(page.total_count, 4_990);
        let expected: Vec<Record> = all.results.iter().skip(offset).take(limit).cloned().collect();
        // Ties (same v) keep the storage order, as the full sort does.
        assert_eq!(page.results, expected, "offset {offset} limit {limit}");
    }
    // A plain run stops growing once its page is full.
    let plain = Query::build(&schema, &QueryParams::default()).unwrap();
    let mut run = plain.start(5, 3);
    for r in records.iter().take(100) {
        run.push(r.clone());
    }
    assert!(run.page_full());
    let rows = run.finish();
    assert_eq!((rows.total_count, rows.results.len()), (100, 3));
    assert_eq!(rows.results[0]["n"], json!(5));
}
