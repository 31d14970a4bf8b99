use serde_json::json;
use socle_ingest::generic::{self, MAX_MESSAGES};
use socle_ingest::{DevEui, DeviceKey, IngestError};

#[test]
fn one_message() {
    let body = br#"{"device": "station-meteo-mairie", "observedAt": "2025-03-12T08:40:00+01:00",
                    "values": {"temperature": 21.5, "status": "ok", "sensors": [{"value": 3.2}]}, "id": "m-1"}"#;
    let m = generic::parse(body).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].device, DeviceKey::Name("station-meteo-mairie".into()));
    assert_eq!(m[0].observed_at.unwrap().to_rfc3339(), "2025-03-12T07:40:00+00:00");
    assert_eq!(m[0].values["sensors"][0]["value"], 3.2);
    assert_eq!(m[0].id.as_deref(), Some("m-1"));
}

#[test]
fn batches_and_devices() {
    let body = json!([
        {"device": "A84041000181C7E2", "values": {"t": 1}},
        {"device": "compteur eau n°3", "values": {"index": 12}, "id": ""}
    ]);
    let m = generic::parse(&super::bytes(&body)).unwrap();
    assert_eq!(m[0].device, DeviceKey::Eui(DevEui::parse("a84041000181c7e2").unwrap()));
    assert_eq!(m[0].observed_at, None);
    assert_eq!(m[1].device.to_string(), "compteur eau n°3");
    assert_eq!(m[1].id, None);
    assert!(generic::parse(b"  []").unwrap().is_empty());
}

#[test]
fn errors_are_located() {
    let cases = [
        (
            json!({"device": "d", "observed_at": "2025-03-12T07:40:00Z", "values": {"t": 1}}),
            "unknown field `observed_at`",
        ),
        (json!({"device": "d"}), "missing field `values`"),
        (json!({"values": {"t": 1}}), "missing field `device`"),
        (json!({"device": "d", "values": {}}), "invalid field `values`: no value"),
        (json!({"device": "d", "values": [1]}), "field `values`"),
        (json!({"device": "", "values": {"t": 1}}), "invalid field `device`"),
        (json!({"device": "a\nb", "values": {"t": 1}}), "invalid field `device`"),
        (json!({"device": "d", "values": {"t": 1}, "observedAt": "2025-03-12 07:40"}), "field `observedAt`"),
        (json!({"device": "d", "values": {"t": 1}, "observedAt": "2025-03-12T07:40:00"}), "field `observedAt`"),
        (json!([{"device": "d", "values": {"t": 1}}, {"device": 3, "values": {"t": 1}}]), "field `[1].device`"),
        (
            json!([{"device": "d", "values": {"t": 1}}, {"device": "", "values": {"t": 1}}]),
            "invalid field `[1].device`",
        ),
        (json!("d"), "invalid JSON"),
    ];
    for (body, expected) in cases {
        let e = generic::parse(&super::bytes(&body)).unwrap_err();
        assert!(e.to_string().contains(expected), "{body}: {e}");
    }
    let many: Vec<_> = (0..=MAX_MESSAGES).map(|i| json!({"device": format!("d{i}"), "values": {"t": i}})).collect();
    assert_eq!(
        generic::parse(&super::bytes(&json!(many))).unwrap_err(),
        IngestError::TooManyMessages { count: MAX_MESSAGES + 1, limit: MAX_MESSAGES }
    );
    let values: serde_json::Map<_, _> = (0..300).map(|i| (format!("v{i}"), json!(i))).collect();
    let e = generic::parse(&super::bytes(&json!({"device": "d", "values": values}))).unwrap_err();
    assert!(e.to_string().contains("at most 256"), "{e}");
}

#[test]
fn arrays_are_not_structs() {
    // serde would read a struct from an array of its fields; refused.
    let e = generic::parse(br#"[["d", null, {"t": 1}]]"#).unwrap_err();
    assert!(e.to_string().contains("field `[0]`") && e.to_string().contains("a JSON object"), "{e}");
    let e = generic::parse(br#"["d"]"#).unwrap_err();
    assert!(e.to_string().contains("a JSON object"), "{e}");
}
