#![no_main]
//! Any text in any clause: the parser answers an error or a query, and running the
//! query over a few records never panics.

use libfuzzer_sys::fuzz_target;
use socle_opendata::odsql::{Query, QueryParams, Record};
use socle_opendata::schema::{Field, FieldType, Schema};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = Schema::new(vec![
        Field::new("nom", "Nom", FieldType::Text),
        Field::new("surface", "Surface", FieldType::Double),
        Field::new("date", "Date", FieldType::DateTime),
        Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d),
    ]);
    let record: Record = serde_json_record();
    for params in [
        QueryParams { where_: Some(text), ..Default::default() },
        QueryParams { select: Some(text), ..Default::default() },
        QueryParams { group_by: Some(text), ..Default::default() },
        QueryParams { order_by: Some(text), ..Default::default() },
    ] {
        if let Ok(q) = Query::build(&schema, &params) {
            let _ = q.run(vec![record.clone()], 0, 10);
        }
    }
});

fn serde_json_record() -> Record {
    let mut r = Record::new();
    r.insert("nom".into(), "Piscine".into());
    r.insert("surface".into(), 1250.5.into());
    r.insert("date".into(), "2024-05-17T10:00:00Z".into());
    r
}
