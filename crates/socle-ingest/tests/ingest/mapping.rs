use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use socle_domain::{Attribute, AttributeName, Entity, EntityId, EntityType, ObservedValue, OrganisationId, UnitCode};
use socle_ingest::mapping::{self, FieldProblem};
use socle_ingest::{Expression, FieldPath, Mapping, MappingContext, Transform, ValueKind};

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-12T07:41:05Z").unwrap().to_utc()
}

fn container() -> Entity {
    Entity::new(
        EntityId::parse("urn:ngsi-ld:WasteContainer:saint-aubin:verre-012").unwrap(),
        EntityType::parse("WasteContainer").unwrap(),
        OrganisationId::parse("saint-aubin").unwrap(),
    )
    .with("depth", Attribute::property(2700))
    .unwrap()
    .with("name", Attribute::property("Bac verre mairie"))
    .unwrap()
}

fn m(field: &str, attribute: &str) -> Mapping {
    Mapping::new(FieldPath::parse(field).unwrap(), AttributeName::parse(attribute).unwrap())
}

fn number(v: &ObservedValue) -> f64 {
    match v {
        ObservedValue::Number(n) => n.get(),
        ObservedValue::Text(t) => panic!("text {t}"),
    }
}

#[test]
fn dragino_object_to_container_observations() {
    let object =
        json!({"Bat": 3.338, "Distance": 2025, "Interrupt_flag": 0, "TempC_DS18B20": "0.00", "Sensor_flag": 1});
    let ctx = MappingContext::for_entity(&container(), at());
    assert_eq!(ctx.properties, BTreeMap::from([("depth".to_owned(), 2700.0)]));
    let mappings = vec![
        Mapping {
            unit_code: Some(UnitCode::parse("C62").unwrap()),
            transform: Transform::Expression { formula: Expression::parse("1 - value / depth").unwrap() },
            range: Some((0.0, 1.0)),
            ..m("Distance", "fillingLevel")
        },
        Mapping { unit_code: Some(UnitCode::parse("VLT").unwrap()), ..m("Bat", "batteryVoltage") },
        Mapping {
            kind: ValueKind::Number,
            unit_code: Some(UnitCode::parse("CEL").unwrap()),
            ..m("TempC_DS18B20", "temperature")
        },
        Mapping { transform: Transform::Linear { scale: 0.001, offset: 0.0 }, ..m("Distance", "distance") },
    ];
    let out = mapping::apply(&mappings, object.as_object().unwrap(), &ctx);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.observations.len(), 4);
    let o = &out.observations[0];
    assert_eq!((o.attribute.as_str(), o.observed_at, &o.entity), ("fillingLevel", at(), &ctx.entity));
    assert_eq!(o.unit_code.as_ref().map(UnitCode::as_str), Some("C62"));
    assert!((number(&o.value) - 0.25).abs() < 1e-12);
    assert_eq!(number(&out.observations[1].value), 3.338);
    assert_eq!(number(&out.observations[2].value), 0.0);
    assert_eq!(number(&out.observations[3].value), 2.025);
}

#[test]
fn one_bad_field_does_not_lose_the_others() {
    let object = json!({"Distance": 3200, "Bat": 3.3, "status": "on", "TempC_DS18B20": "n/a", "nested": {"list": [{"v": "7.5"}]}});
    let ctx = MappingContext::for_entity(&container(), at());
    let mappings = vec![
        // A distance beyond the depth: filling below 0, refused.
        Mapping {
            transform: Transform::Expression { formula: Expression::parse("1 - value / depth").unwrap() },
            range: Some((0.0, 1.0)),
            ..m("Distance", "fillingLevel")
        },
        m("Bat", "batteryVoltage"),
        m("missing", "humidity"),
        Mapping { kind: ValueKind::Number, ..m("TempC_DS18B20", "temperature") },
        m("status", "powerState"),
        Mapping { transform: Transform::Linear { scale: 2.0, offset: 0.0 }, ..m("status", "power") },
        Mapping { kind: ValueKind::Number, ..m("nested.list[0].v", "level") },
        Mapping {
            transform: Transform::Expression { formula: Expression::parse("value / height").unwrap() },
            ..m("Bat", "ratio")
        },
        Mapping { kind: ValueKind::Text, ..m("nested", "raw") },
    ];
    let out = mapping::apply(&mappings, object.as_object().unwrap(), &ctx);
    let stored: Vec<_> = out.observations.iter().map(|o| (o.attribute.as_str(), o.value.to_json())).collect();
    assert_eq!(stored, [("batteryVoltage", json!(3.3)), ("powerState", json!("on")), ("level", json!(7.5))]);
    let problems: Vec<_> = out.errors.iter().map(|e| (e.field.as_str(), e.problem.clone())).collect();
    assert!(
        matches!(&problems[0], ("Distance", FieldProblem::OutOfRange { min, max, .. }) if *min == 0.0 && *max == 1.0)
    );
    assert_eq!(problems[1], ("missing", FieldProblem::Missing));
    assert_eq!(problems[2], ("TempC_DS18B20", FieldProblem::NotANumber("n/a".into())));
    assert_eq!(problems[3], ("status", FieldProblem::WrongType { expected: "a number", found: "a string" }));
    assert!(matches!(&problems[4], ("Bat", FieldProblem::Expression(_))));
    assert_eq!(problems[5], ("nested", FieldProblem::WrongType { expected: "text", found: "an object" }));
    assert_eq!(out.errors.len(), 6);
    let msg = out.errors[0].to_string();
    assert!(
        msg.starts_with("field `Distance` → fillingLevel: value") && msg.contains("outside the accepted range 0..1"),
        "{msg}"
    );
}

#[test]
fn kinds() {
    let object = json!({"b": true, "n": 12, "s": "0.00", "t": "off", "big": "x".repeat(2000)});
    let ctx = MappingContext::for_entity(&container(), at());
    let run = |mapping: Mapping| mapping::apply(&[mapping], object.as_object().unwrap(), &ctx);
    assert_eq!(run(m("b", "a")).observations[0].value, ObservedValue::Text("true".into()));
    assert_eq!(number(&run(Mapping { kind: ValueKind::Number, ..m("b", "a") }).observations[0].value), 1.0);
    assert_eq!(
        run(Mapping { kind: ValueKind::Text, ..m("n", "a") }).observations[0].value,
        ObservedValue::Text("12".into())
    );
    assert_eq!(run(m("s", "a")).observations[0].value, ObservedValue::Text("0.00".into()));
    assert_eq!(number(&run(Mapping { kind: ValueKind::Number, ..m("s", "a") }).observations[0].value), 0.0);
    assert_eq!(
        run(Mapping { kind: ValueKind::Number, ..m("t", "a") }).errors[0].problem,
        FieldProblem::NotANumber("off".into())
    );
    assert_eq!(run(m("big", "a")).errors[0].problem, FieldProblem::TextTooLong(2000));
    // A mapping that cannot work is reported per field too.
    let bad = Mapping { kind: ValueKind::Text, range: Some((0.0, 1.0)), ..m("t", "a") };
    assert!(matches!(run(bad).errors[0].problem, FieldProblem::Mapping(_)));
    let bad = Mapping { range: Some((2.0, 1.0)), ..m("n", "a") };
    assert!(matches!(run(bad).errors[0].problem, FieldProblem::Mapping(_)));
    let overflow = Mapping { transform: Transform::Linear { scale: f64::MAX, offset: 0.0 }, ..m("n", "a") };
    assert_eq!(run(overflow).errors[0].problem, FieldProblem::NotFinite);
}

#[test]
fn field_paths() {
    let v = json!({"a": {"b": [10, {"c": 7}]}, "x.y": 1, "list": [[1, 2], [3, 4]]});
    let get = |p: &str| FieldPath::parse(p).unwrap().get(&v).cloned();
    assert_eq!(get("a.b[1].c"), Some(json!(7)));
    assert_eq!(get("a.b[0]"), Some(json!(10)));
    assert_eq!(get("list[1][0]"), Some(json!(3)));
    assert_eq!(get("a.b[5]"), None);
    assert_eq!(get("a.z"), None);
    assert_eq!(get("a.b.c"), None);
    assert_eq!(FieldPath::parse("[1]").unwrap().get(&json!([5, 6])), Some(&json!(6)));
    let obj = v.as_object().unwrap();
    assert_eq!(FieldPath::parse("a.b[1].c").unwrap().get_in(obj), Some(&json!(7)));
    assert_eq!(FieldPath::parse("[0]").unwrap().get_in(obj), None);
    for bad in ["", ".", "a.", ".a", "a..b", "a[", "a[x]", "a[-1]", "a[0]b", "a]", "a[0]]", &"a.".repeat(20), "a\u{0}"]
    {
        assert!(FieldPath::parse(bad).is_err(), "{bad:?}");
    }
    let m = Mapping {
        transform: Transform::Expression { formula: Expression::parse("1 - value / depth").unwrap() },
        range: Some((0.0, 1.0)),
        ..m("sensors[0].value", "fillingLevel")
    };
    let text = serde_json::to_string(&m).unwrap();
    assert_eq!(
        text,
        r#"{"field":"sensors[0].value","attribute":"fillingLevel","kind":"auto","transform":{"type":"expression","formula":"1 - value / depth"},"range":[0.0,1.0]}"#
    );
    assert_eq!(serde_json::from_str::<Mapping>(&text).unwrap(), m);
}

#[test]
fn pipeline_from_reference_uplinks() {
    // TTN body → payload → Socle's codec → mappings → observations; the same
    // as mapping the network server's own decoding.
    let mappings = vec![
        Mapping {
            unit_code: Some(UnitCode::parse("C62").unwrap()),
            transform: Transform::Expression { formula: Expression::parse("1 - value / depth").unwrap() },
            range: Some((0.0, 1.0)),
            ..m("Distance", "fillingLevel")
        },
        Mapping { unit_code: Some(UnitCode::parse("VLT").unwrap()), ..m("Bat", "batteryVoltage") },
    ];
    let codec = socle_ingest::codec::builtin("dragino-ldds75").unwrap();
    for event in [
        socle_ingest::ttn::parse_uplink(&super::body("ttn-v3-up.json")).unwrap(),
        socle_ingest::chirpstack::parse("up", &super::body("chirpstack-v4-up.json")).unwrap(),
    ] {
        let socle_ingest::NetworkEvent::Uplink(up) = event else { panic!() };
        let ctx = MappingContext::for_entity(&container(), up.received_at);
        let input = socle_ingest::UplinkInput { bytes: &up.payload, f_port: up.f_port, recv_time: up.received_at };
        let ours = codec.decode_uplink(&input, &socle_ingest::CodecLimits::default()).unwrap();
        let by_us = mapping::apply(&mappings, &ours.data, &ctx);
        let by_server = mapping::apply(&mappings, up.decoded.as_ref().unwrap(), &ctx);
        assert!(by_us.errors.is_empty());
        assert_eq!(by_us, by_server);
        assert!((number(&by_us.observations[0].value) - (1.0 - 2025.0 / 2700.0)).abs() < 1e-12);
        assert_eq!(by_us.observations[0].observed_at, up.received_at);
    }
}
