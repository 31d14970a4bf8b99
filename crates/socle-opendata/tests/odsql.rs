//! ODSQL against a small communal dataset: équipements sportifs with a point, a
//! surface, an opening date and a multivalued list of activities.

use proptest::prelude::*;
use serde_json::{json, Value};
use socle_opendata::odsql::{Clause, Query, QueryParams, Record};
use socle_opendata::schema::{Field, FieldType, Schema};

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("nom", "Nom", FieldType::Text),
        Field::new("commune", "Commune", FieldType::Text),
        Field::new("type", "Type", FieldType::Text),
        Field::new("surface", "Surface (m²)", FieldType::Double),
        Field::new("places", "Places", FieldType::Int),
        Field::new("ouverture", "Date d'ouverture", FieldType::Date),
        Field::new("activites", "Activités", FieldType::Text),
        Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d),
    ])
}

fn records() -> Vec<Record> {
    let rows = [
        json!({"nom": "Piscine Jean Bouin", "commune": "Angers", "type": "Piscine", "surface": 1250.0, "places": 300,
               "ouverture": "1998-06-15", "activites": ["natation", "aquagym"], "geo_point_2d": {"lon": -0.5632, "lat": 47.4784}}),
        json!({"nom": "Gymnase de la Roseraie", "commune": "Angers", "type": "Gymnase", "surface": 980.5, "places": 150,
               "ouverture": "2005-09-01", "activites": ["basket", "handball"], "geo_point_2d": {"lon": -0.5412, "lat": 47.4521}}),
        json!({"nom": "Stade du Lac de Maine", "commune": "Angers", "type": "Stade", "surface": 8200.0, "places": 2000,
               "ouverture": "2012-04-20", "activites": ["football", "rugby"], "geo_point_2d": {"lon": -0.5931, "lat": 47.4582}}),
        json!({"nom": "Salle des fêtes", "commune": "Avrillé", "type": "Salle", "surface": 420.0, "places": null,
               "ouverture": "2019-01-10", "activites": [], "geo_point_2d": {"lon": -0.5890, "lat": 47.5060}}),
        json!({"nom": "École de musique", "commune": "Trélazé", "type": "Salle", "surface": 310.0, "places": 80,
               "ouverture": "2019-11-30", "activites": ["musique"], "geo_point_2d": {"lon": -0.4660, "lat": 47.4460}}),
    ];
    rows.into_iter()
        .map(|v| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        })
        .collect()
}

fn query(params: QueryParams<'_>) -> Query {
    Query::build(&schema(), &params).expect("valid query")
}

fn names(q: &Query) -> Vec<String> {
    q.run(records(), 0, 100).results.iter().map(|r| r["nom"].as_str().unwrap_or_default().to_string()).collect()
}

fn where_(clause: &str) -> Vec<String> {
    names(&query(QueryParams { where_: Some(clause), ..Default::default() }))
}

#[test]
fn comparisons_and_boolean_logic() {
    assert_eq!(where_("surface > 1000").len(), 2);
    assert_eq!(where_("surface >= 980.5 and places < 300"), ["Gymnase de la Roseraie"]);
    assert_eq!(where_("commune = 'Avrillé' OR commune = \"Trélazé\"").len(), 2);
    assert_eq!(where_("not commune = 'Angers'").len(), 2);
    assert_eq!(where_("commune != 'Angers'").len(), 2);
    assert_eq!(where_("surface * 2 > 16000"), ["Stade du Lac de Maine"]);
    assert_eq!(where_("(type = 'Salle' or type = 'Stade') and surface > 400").len(), 2);
}

#[test]
fn in_ranges_and_lists() {
    assert_eq!(where_("surface in [420..1250]").len(), 3);
    assert_eq!(where_("surface in ]420..1250[").len(), 1);
    assert_eq!(where_("surface in [1000..]").len(), 2);
    assert_eq!(where_("ouverture in [date'2019'..date'2020'[").len(), 2);
    assert_eq!(where_("type in ('Salle', 'Stade')").len(), 3);
    assert_eq!(where_("type not in ('Salle', 'Stade')").len(), 2);
}

#[test]
fn like_null_tests_and_full_text_search() {
    assert_eq!(where_("nom like 'Gym%'"), ["Gymnase de la Roseraie"]);
    assert_eq!(where_("nom like '*lac*'"), ["Stade du Lac de Maine"]);
    assert_eq!(where_("places is null"), ["Salle des fêtes"]);
    assert_eq!(where_("places is not null").len(), 4);
    // A bare string is a full-text search, accent- and case-insensitive.
    assert_eq!(where_("'ecole'"), ["École de musique"]);
    assert_eq!(where_("\"natation\" and surface > 100"), ["Piscine Jean Bouin"]);
    assert_eq!(where_("search(nom, 'roseraie')"), ["Gymnase de la Roseraie"]);
    assert_eq!(where_("startswith(commune, 'Tré')"), ["École de musique"]);
    // Multivalued fields match when one of their values does.
    assert_eq!(where_("activites = 'rugby'"), ["Stade du Lac de Maine"]);
}

#[test]
fn dates() {
    assert_eq!(where_("year(ouverture) = 2019").len(), 2);
    assert_eq!(where_("ouverture > date'2012-01-01'").len(), 3);
    assert_eq!(where_("ouverture < '2000-01-01'"), ["Piscine Jean Bouin"]);
    assert_eq!(where_("month(ouverture) = 11 and day(ouverture) = 30"), ["École de musique"]);
    let q = query(QueryParams {
        select: Some("nom, date_format(ouverture, 'yyyy-MM') as mois, hour(ouverture) as h"),
        where_: Some("nom like 'Piscine*'"),
        ..Default::default()
    });
    let rows = q.run(records(), 0, 10);
    assert_eq!(rows.results[0]["mois"], json!("1998-06"));
    assert_eq!(rows.results[0]["h"], json!(0));
}

#[test]
fn time_zone_moves_day_boundaries() {
    let schema = Schema::new(vec![Field::new("t", "t", FieldType::DateTime)]);
    let rec: Record = serde_json::from_value(json!({"t": "2024-03-31T23:30:00Z"})).unwrap();
    let run = |tz| {
        Query::build(
            &schema,
            &QueryParams { select: Some("day(t) as d, hour(t) as h"), timezone: Some(tz), ..Default::default() },
        )
        .unwrap()
        .run(vec![rec.clone()], 0, 1)
        .results[0]
            .clone()
    };
    assert_eq!(run("UTC")["d"], json!(31));
    assert_eq!(run("Europe/Paris")["d"], json!(1));
    assert_eq!(run("Europe/Paris")["h"], json!(1));
}

#[test]
fn geo_predicates() {
    // Within 1.5 km of Angers' town hall (lon -0.5542, lat 47.4709).
    let near = where_("within_distance(geo_point_2d, geom'POINT(-0.5542 47.4709)', 1.5km)");
    assert_eq!(near, ["Piscine Jean Bouin"]);
    assert_eq!(where_("within_distance(geo_point_2d, geom'POINT(-0.5542 47.4709)', 5km)").len(), 4);
    // in_bbox(field, lat1, lon1, lat2, lon2)
    assert_eq!(where_("in_bbox(geo_point_2d, 47.49, -0.6, 47.52, -0.55)"), ["Salle des fêtes"]);
    let polygon = "geom'POLYGON((-0.60 47.44, -0.53 47.44, -0.53 47.47, -0.60 47.47, -0.60 47.44))'";
    assert_eq!(where_(&format!("intersects(geo_point_2d, {polygon})")).len(), 2);
    assert_eq!(where_(&format!("within(geo_point_2d, {polygon})")).len(), 2);
    assert_eq!(where_(&format!("disjoint(geo_point_2d, {polygon})")).len(), 3);
    let geojson = r#"geom'{"type":"Point","coordinates":[-0.4660,47.4460]}'"#;
    assert_eq!(where_(&format!("within_distance(geo_point_2d, {geojson}, 10m)")), ["École de musique"]);
}

#[test]
fn aggregates_without_group_by_answer_one_row() {
    let q = query(QueryParams {
        select: Some("count(*) as n, sum(places) as total, avg(surface), min(surface), max(ouverture), median(surface) as med, percentile(surface, 90) as p90"),
        ..Default::default()
    });
    let rows = q.run(records(), 0, 10);
    assert_eq!(rows.total_count, 1);
    let r = &rows.results[0];
    assert_eq!(r["n"], json!(5));
    assert_eq!(r["total"], json!(2530));
    assert_eq!(r["avg(surface)"], json!(2232.1));
    assert_eq!(r["min(surface)"], json!(310));
    assert_eq!(r["max(ouverture)"], json!("2019-11-30T00:00:00+00:00"));
    assert_eq!(r["med"], json!(980.5));
    // 90th percentile of [310, 420, 980.5, 1250, 8200]: rank 3.6 → 1250 + 0.6 × 6950.
    assert_eq!(r["p90"].as_f64().map(|v| (v * 10.0).round() / 10.0), Some(5420.0));
}

#[test]
fn group_by_fields_ranges_and_dates() {
    let q = query(QueryParams {
        select: Some("commune, count(*) as n"),
        group_by: Some("commune"),
        order_by: Some("n desc"),
        ..Default::default()
    });
    let rows = q.run(records(), 0, 10);
    assert_eq!(rows.total_count, 3);
    assert_eq!(rows.results[0], serde_json::from_value::<Record>(json!({"commune": "Angers", "n": 3})).unwrap());

    let q = query(QueryParams {
        select: Some("range(surface, 1000) as tranche, count(*) as n"),
        group_by: Some("range(surface, 1000) as tranche"),
        ..Default::default()
    });
    let rows = q.run(records(), 0, 10);
    let got: Vec<(Value, Value)> = rows.results.iter().map(|r| (r["tranche"].clone(), r["n"].clone())).collect();
    assert_eq!(
        got,
        [(json!("[0, 1000["), json!(3)), (json!("[1000, 2000["), json!(1)), (json!("[8000, 9000["), json!(1)),]
    );

    let q = query(QueryParams {
        group_by: Some("year(ouverture) as annee"),
        select: Some("annee, sum(surface) as s"),
        order_by: Some("annee desc"),
        ..Default::default()
    });
    let rows = q.run(records(), 0, 10);
    assert_eq!(rows.results[0]["annee"], json!(2019));
    assert_eq!(rows.results[0]["s"], json!(730));

    let q = query(QueryParams {
        group_by: Some("range(ouverture, 10 year)"),
        select: Some("range(ouverture, 10 year), count(*)"),
        ..Default::default()
    });
    let rows = q.run(records(), 0, 10);
    assert_eq!(rows.results.len(), 3);
    assert_eq!(
        rows.results[0]["range(ouverture, 10 year)"],
        json!("[1990-01-01T00:00:00+00:00, 2000-01-01T00:00:00+00:00[")
    );
}

#[test]
fn order_by_offset_limit_refine_exclude() {
    let q = query(QueryParams { order_by: Some("surface desc"), ..Default::default() });
    let rows = q.run(records(), 1, 2);
    assert_eq!(rows.total_count, 5);
    assert_eq!(rows.results.len(), 2);
    assert_eq!(rows.results[0]["nom"], json!("Piscine Jean Bouin"));

    let q = query(QueryParams { refine: vec!["commune:Angers"], exclude: vec!["type:Stade"], ..Default::default() });
    assert_eq!(names(&q).len(), 2);
    let q = query(QueryParams { refine: vec!["ouverture:2019"], ..Default::default() });
    assert_eq!(names(&q).len(), 2);
    let q = query(QueryParams { refine: vec!["ouverture:2019/11"], ..Default::default() });
    assert_eq!(names(&q), ["École de musique"]);

    let q = query(QueryParams { refine: vec!["commune:Angers"], ..Default::default() });
    let facets = q.facets(records(), &["type", "activites"], 10);
    assert_eq!(facets[0].facets.len(), 3);
    assert_eq!(facets[1].facets.iter().map(|f| f.count).sum::<u64>(), 6);
}

#[test]
fn errors_name_the_clause_and_the_position() {
    let fail = |params: QueryParams<'_>| Query::build(&schema(), &params).unwrap_err();
    let e = fail(QueryParams { where_: Some("surface > "), ..Default::default() });
    assert_eq!(e.clause, Clause::Where);
    assert_eq!(e.error.position, 10);
    let e = fail(QueryParams { where_: Some("surface > 3 and nope = 1"), ..Default::default() });
    assert_eq!(e.error.position, 16);
    assert!(e.to_string().contains("unknown field 'nope'"), "{e}");
    let e = fail(QueryParams { select: Some("count(*), summ(surface)"), ..Default::default() });
    assert_eq!((e.clause, e.error.position), (Clause::Select, 10));
    let e = fail(QueryParams { where_: Some("nom = 'unterminated"), ..Default::default() });
    assert_eq!(e.error.position, 6);
    let e = fail(QueryParams { select: Some("nom, count(*)"), ..Default::default() });
    assert_eq!((e.clause, e.error.position), (Clause::Select, 0));
    let e = fail(QueryParams { where_: Some("within(geo_point_2d, geom'POLYGON((oops')"), ..Default::default() });
    assert_eq!(e.error.position, 21);
    let e = fail(QueryParams { where_: Some(&"(".repeat(10_000)), ..Default::default() });
    assert_eq!(e.clause, Clause::Where);
    let e = fail(QueryParams { timezone: Some("Mars/Olympus"), ..Default::default() });
    assert_eq!(e.clause, Clause::Timezone);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,80}") {
        let params = QueryParams { where_: Some(&text), select: Some(&text), group_by: Some(&text), order_by: Some(&text), ..Default::default() };
        if let Ok(q) = Query::build(&schema(), &params) {
            let _ = q.run(records(), 0, 10);
        }
    }

    #[test]
    fn odsql_shaped_text_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("surface"), Just("nom"), Just("ouverture"), Just("geo_point_2d"), Just("("), Just(")"),
        Just("["), Just("]"), Just(".."), Just(","), Just("and"), Just("or"), Just("not"), Just("in"),
        Just("like"), Just("is"), Just("null"), Just("="), Just(">"), Just("*"), Just("-"), Just("/"),
        Just("'x'"), Just("12"), Just("1.5"), Just("2km"), Just("date'2020'"), Just("geom'POINT(0 0)'"),
        Just("count("), Just("range("), Just("within_distance("), Just("in_bbox("), Just("percentile("),
        Just("1 day"), Just("as"), Just("desc"), Just("0"),
    ], 0..24)) {
        let text = parts.join(" ");
        for params in [
            QueryParams { where_: Some(&text), ..Default::default() },
            QueryParams { select: Some(&text), ..Default::default() },
            QueryParams { group_by: Some(&text), select: Some("count(*)"), ..Default::default() },
            QueryParams { order_by: Some(&text), ..Default::default() },
        ] {
            if let Ok(q) = Query::build(&schema(), &params) {
                let _ = q.run(records(), 0, 10);
                let _ = q.facets(records(), &["commune"], 10);
            }
        }
    }
}
