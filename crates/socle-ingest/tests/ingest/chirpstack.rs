use chrono::{DateTime, Utc};
use serde_json::json;
use socle_ingest::chirpstack::{self, EventType};
use socle_ingest::{DevEui, IngestError, LogLevel, NetworkEvent, Uplink};

use super::{bytes, json};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn eui() -> DevEui {
    DevEui::parse("a84041000181c7e2").unwrap()
}

fn uplink(v: &serde_json::Value) -> Result<Uplink, IngestError> {
    match chirpstack::parse("up", &bytes(v))? {
        NetworkEvent::Uplink(u) => Ok(u),
        other => panic!("{other:?}"),
    }
}

/// A minimal event for `kind`: only what every event has.
fn minimal() -> serde_json::Value {
    json!({"time": "2025-03-12T07:41:05Z", "deviceInfo": {"devEui": "a84041000181c7e2"}})
}

#[test]
fn reference_uplink() {
    let event = chirpstack::parse("up", &super::body("chirpstack-v4-up.json")).unwrap();
    let shown = serde_json::to_value(&event).unwrap();
    assert_eq!(
        (shown["event"].as_str(), shown["frame"]["devEui"].as_str()),
        (Some("uplink"), Some("a84041000181c7e2"))
    );
    let status =
        serde_json::to_value(chirpstack::parse("status", &super::body("chirpstack-v4-status.json")).unwrap()).unwrap();
    assert_eq!((status["event"].as_str(), status["batteryLevel"].as_f64()), (Some("status"), Some(88.3)));
    let u = uplink(&json("chirpstack-v4-up.json")).unwrap();
    assert_eq!(u.frame.dev_eui, eui());
    assert_eq!(u.frame.f_cnt, Some(1834));
    assert_eq!(u.frame.session.as_deref(), Some("260b1c4f"));
    assert_eq!(u.frame.ns_id.as_deref(), Some("3ac7e3c4-4401-4b8d-9386-a5c902f9202d"));
    assert_eq!(u.device_name.as_deref(), Some("bac-verre-mairie"));
    assert_eq!(u.application_id.as_deref(), Some("17c82e96-be03-4f38-aef3-f83d48582d97"));
    assert_eq!(u.f_port, 2);
    assert_eq!(u.received_at, at("2025-03-12T07:41:05.118420Z"));
    assert_eq!(u.payload, [0x0d, 0x0a, 0x07, 0xe9, 0, 0, 0, 1]);
    let decoded = u.decoded.as_ref().unwrap();
    assert_eq!(decoded["Distance"], 2025);
    assert_eq!(decoded["TempC_DS18B20"], "0.00");
    assert_eq!(u.radio.rssi, Some(-97));
    assert_eq!(u.radio.snr, Some(6.5));
    assert_eq!(u.radio.gateways, 1);
    assert_eq!(u.radio.frequency, Some(867_300_000));
    assert_eq!(u.radio.spreading_factor, Some(7));
    assert_eq!(u.radio.bandwidth, Some(125_000));
    assert!(!u.confirmed && !u.simulated);
}

#[test]
fn uplink_without_zero_valued_fields() {
    // ChirpStack omits fCnt 0, confirmed false, snr 0, data of an empty frame, object without codec.
    let mut v = minimal();
    v["rxInfo"] = json!([{"gatewayId": "0016c001f153a14c", "rssi": -110}, {"gatewayId": "0016c001f153a14d"}]);
    let u = uplink(&v).unwrap();
    assert_eq!(u.frame.f_cnt, Some(0));
    assert_eq!(u.frame.session, None);
    assert_eq!(u.frame.ns_id, None);
    assert_eq!(u.f_port, 0);
    assert!(u.payload.is_empty());
    assert_eq!(u.decoded, None);
    assert_eq!((u.radio.rssi, u.radio.snr, u.radio.gateways), (Some(-110), Some(0.0), 2));
    assert_eq!(u.radio.frequency, None);
    assert_eq!(u.device_name, None);
}

#[test]
fn uplink_best_radio_over_gateways() {
    let mut v = json("chirpstack-v4-up.json");
    v["rxInfo"] = json!([{"rssi": -115, "snr": -7.5}, {"rssi": -90, "snr": 2}, {"rssi": -100, "snr": 9.25}]);
    let u = uplink(&v).unwrap();
    assert_eq!((u.radio.rssi, u.radio.snr, u.radio.gateways), (Some(-90), Some(9.25), 3));
}

#[test]
fn uplink_variants() {
    let base = json("chirpstack-v4-up.json");
    // Uppercase DevEUI and devAddr are normalised.
    let mut v = base.clone();
    v["deviceInfo"]["devEui"] = json!("A84041000181C7E2");
    v["devAddr"] = json!("260B1C4F");
    let u = uplink(&v).unwrap();
    assert_eq!(u.frame.dev_eui, eui());
    assert_eq!(u.frame.session.as_deref(), Some("260b1c4f"));
    // Numbers as strings, as some protobuf encoders write them.
    let mut v = base.clone();
    v["fCnt"] = json!("1834");
    v["txInfo"]["frequency"] = json!("867300000");
    let u = uplink(&v).unwrap();
    assert_eq!((u.frame.f_cnt, u.radio.frequency), (Some(1834), Some(867_300_000)));
    // No time: the earliest network-server time.
    let mut v = base.clone();
    v.as_object_mut().unwrap().remove("time");
    assert_eq!(uplink(&v).unwrap().received_at, at("2025-03-12T07:41:04.905311Z"));
    // Unknown fields from a newer ChirpStack are ignored.
    let mut v = base.clone();
    v["relayRxInfo"] = json!({"devEui": "x"});
    v["deviceInfo"]["newField"] = json!([1, 2]);
    assert!(uplink(&v).is_ok());
    // Null object and unpadded base64.
    let mut v = base;
    v["object"] = json!(null);
    v["data"] = json!("DQoH6QAAAAE");
    let u = uplink(&v).unwrap();
    assert_eq!((u.decoded, u.payload.len()), (None, 8));
}

#[test]
fn uplink_errors_name_the_field() {
    let base = json("chirpstack-v4-up.json");
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("data", json!("DQ*H"), "invalid field `data`: not valid base64"),
        ("fCnt", json!(-1), "field `fCnt`"),
        ("fCnt", json!("many"), "field `fCnt`"),
        ("fPort", json!(300), "field `fPort`"),
        ("time", json!("yesterday"), "field `time`"),
        ("object", json!([1]), "field `object`"),
        ("rxInfo", json!([{"rssi": "loud"}]), "field `rxInfo[0].rssi`"),
        ("confirmed", json!("yes"), "field `confirmed`"),
    ];
    for (field, value, expected) in cases {
        let mut v = base.clone();
        v[field] = value;
        let e = uplink(&v).unwrap_err();
        assert!(e.to_string().contains(expected), "{field}: {e}");
    }
    let mut v = base.clone();
    v["deviceInfo"]["devEui"] = json!("a84041000181c7");
    let e = uplink(&v).unwrap_err();
    assert!(e.to_string().contains("deviceInfo.devEui") && e.to_string().contains("16 hexadecimal"), "{e}");
    let mut v = base.clone();
    v["deviceInfo"].as_object_mut().unwrap().remove("devEui");
    assert_eq!(uplink(&v).unwrap_err(), IngestError::MissingField("deviceInfo.devEui".into()));
    let mut v = base.clone();
    v.as_object_mut().unwrap().remove("deviceInfo");
    assert_eq!(uplink(&v).unwrap_err(), IngestError::MissingField("deviceInfo".into()));
    let mut v = base;
    v.as_object_mut().unwrap().remove("time");
    v.as_object_mut().unwrap().remove("rxInfo");
    assert_eq!(uplink(&v).unwrap_err(), IngestError::MissingField("time".into()));
}

#[test]
fn malformed_bodies() {
    let e = chirpstack::parse("up", b"{\"deviceInfo\": {\n \"devEui\": 12}}").unwrap_err();
    let IngestError::Json { path, line, column, .. } = &e else { panic!("{e}") };
    assert_eq!((path.as_str(), *line, *column), ("deviceInfo.devEui", 2, 13));
    for body in [&b""[..], b"{", b"[]", b"null", b"\"up\"", b"{} {}", b"\xff\xfe"] {
        assert!(matches!(chirpstack::parse("up", body), Err(IngestError::Json { .. })), "{body:?}");
    }
    let big = vec![b' '; socle_ingest::MAX_BODY_BYTES + 1];
    assert!(matches!(chirpstack::parse("up", &big), Err(IngestError::BodyTooLarge { .. })));
    assert_eq!(chirpstack::parse("integration", b"{}").unwrap_err().code(), "unknown-event");
    assert_eq!(chirpstack::parse("UP", b"{}").unwrap_err().code(), "unknown-event");
}

#[test]
fn reference_status() {
    let e = chirpstack::parse("status", &super::body("chirpstack-v4-status.json")).unwrap();
    assert_eq!(
        e,
        NetworkEvent::Status {
            dev_eui: eui(),
            time: at("2025-03-12T07:41:05.2Z"),
            battery_level: Some(88.3),
            external_power: false,
            margin: 12
        }
    );
    assert_eq!((e.kind(), e.time(), *e.dev_eui()), ("status", at("2025-03-12T07:41:05.2Z"), eui()));
}

#[test]
fn status_variants() {
    let status = |v: serde_json::Value| chirpstack::parse("status", &bytes(&v));
    // All zero: margin 0, battery 0 %.
    let NetworkEvent::Status { battery_level, margin, .. } = status(minimal()).unwrap() else { panic!() };
    assert_eq!((battery_level, margin), (Some(0.0), 0));
    let mut v = minimal();
    v["externalPowerSource"] = json!(true);
    let NetworkEvent::Status { battery_level, external_power, .. } = status(v).unwrap() else { panic!() };
    assert_eq!((battery_level, external_power), (None, true));
    let mut v = minimal();
    v["batteryLevelUnavailable"] = json!(true);
    v["margin"] = json!(-5);
    let NetworkEvent::Status { battery_level, margin, .. } = status(v).unwrap() else { panic!() };
    assert_eq!((battery_level, margin), (None, -5));
    let mut v = minimal();
    v["batteryLevel"] = json!(140);
    assert!(status(v).unwrap_err().to_string().contains("batteryLevel"));
    let mut v = minimal();
    v.as_object_mut().unwrap().remove("time");
    assert_eq!(status(v).unwrap_err(), IngestError::MissingField("time".into()));
}

#[test]
fn join_ack_txack() {
    let mut v = minimal();
    v["devAddr"] = json!("01ABCDEF");
    v["deduplicationId"] = json!("c9dfe1e6-0000-4000-8000-000000000001");
    assert_eq!(
        chirpstack::parse("join", &bytes(&v)).unwrap(),
        NetworkEvent::Join { dev_eui: eui(), time: at("2025-03-12T07:41:05Z"), dev_addr: Some("01abcdef".into()) }
    );
    let NetworkEvent::Join { dev_addr, .. } = chirpstack::parse("join", &bytes(&minimal())).unwrap() else { panic!() };
    assert_eq!(dev_addr, None);

    let mut v = minimal();
    v["queueItemId"] = json!("3b2a8e6c-1d2e-4f00-9a00-000000000002");
    v["acknowledged"] = json!(true);
    v["fCntDown"] = json!(12);
    assert_eq!(
        chirpstack::parse("ack", &bytes(&v)).unwrap(),
        NetworkEvent::Ack {
            dev_eui: eui(),
            time: at("2025-03-12T07:41:05Z"),
            queue_item_id: Some("3b2a8e6c-1d2e-4f00-9a00-000000000002".into()),
            acknowledged: true,
            f_cnt_down: Some(12)
        }
    );
    // A timed-out downlink: acknowledged false, omitted.
    let NetworkEvent::Ack { acknowledged, f_cnt_down, queue_item_id, .. } =
        chirpstack::parse("ack", &bytes(&minimal())).unwrap()
    else {
        panic!()
    };
    assert_eq!((acknowledged, f_cnt_down, queue_item_id), (false, Some(0), None));

    let mut v = minimal();
    v["downlinkId"] = json!(3_405_691_582_u32);
    v["fCntDown"] = json!(13);
    v["gatewayId"] = json!("0016c001f153a14c");
    v["txInfo"] = json!({"frequency": 869525000, "power": 14, "modulation": {"lora": {"spreadingFactor": 9}}});
    assert_eq!(
        chirpstack::parse("txack", &bytes(&v)).unwrap(),
        NetworkEvent::TxAck {
            dev_eui: eui(),
            time: at("2025-03-12T07:41:05Z"),
            queue_item_id: None,
            downlink_id: Some(3_405_691_582),
            f_cnt_down: Some(13),
            gateway_id: Some("0016c001f153a14c".into())
        }
    );
}

#[test]
fn log_events() {
    let mut v = minimal();
    v["level"] = json!("ERROR");
    v["code"] = json!("UPLINK_CODEC");
    v["description"] = json!("ReferenceError: x is not defined");
    v["context"] = json!({"deduplication_id": "abc"});
    let NetworkEvent::Log { level, code, description, context, .. } = chirpstack::parse("log", &bytes(&v)).unwrap()
    else {
        panic!()
    };
    assert_eq!((level, code.as_str()), (LogLevel::Error, "UPLINK_CODEC"));
    assert_eq!(description, "ReferenceError: x is not defined");
    assert_eq!(context["deduplication_id"], "abc");
    // Zero values: INFO and UNKNOWN; numeric enums.
    let NetworkEvent::Log { level, code, .. } = chirpstack::parse("log", &bytes(&minimal())).unwrap() else { panic!() };
    assert_eq!((level, code.as_str()), (LogLevel::Info, "UNKNOWN"));
    let mut v = minimal();
    v["level"] = json!(1);
    v["code"] = json!(7);
    let NetworkEvent::Log { level, code, .. } = chirpstack::parse("log", &bytes(&v)).unwrap() else { panic!() };
    assert_eq!((level, code.as_str()), (LogLevel::Warning, "UPLINK_F_CNT_RETRANSMISSION"));
    let mut v = minimal();
    v["level"] = json!("LOUD");
    assert!(chirpstack::parse("log", &bytes(&v)).unwrap_err().to_string().contains("`level`"));
    let mut v = minimal();
    v["context"] = json!({"n": 1});
    assert!(chirpstack::parse("log", &bytes(&v)).unwrap_err().to_string().contains("context.n"));
}

#[test]
fn location_events() {
    let mut v = minimal();
    v["location"] = json!({"latitude": 45.764, "longitude": 4.8357, "altitude": 170, "source": "GEO_RESOLVER_TDOA", "accuracy": 35.5});
    assert_eq!(
        chirpstack::parse("location", &bytes(&v)).unwrap(),
        NetworkEvent::Location {
            dev_eui: eui(),
            time: at("2025-03-12T07:41:05Z"),
            latitude: 45.764,
            longitude: 4.8357,
            altitude: Some(170.0),
            source: Some("GEO_RESOLVER_TDOA".into()),
            accuracy: Some(35.5)
        }
    );
    v["location"]["latitude"] = json!(91);
    assert!(chirpstack::parse("location", &bytes(&v)).unwrap_err().to_string().contains("location.latitude"));
    assert_eq!(
        chirpstack::parse("location", &bytes(&minimal())).unwrap_err(),
        IngestError::MissingField("location".into())
    );
}

#[test]
fn topics() {
    let t =
        chirpstack::parse_topic("application/17c82e96-be03-4f38-aef3-f83d48582d97/device/A84041000181C7E2/event/up")
            .unwrap();
    assert_eq!(
        (t.application_id.as_str(), t.dev_eui, t.event),
        ("17c82e96-be03-4f38-aef3-f83d48582d97", eui(), EventType::Up)
    );
    let t = chirpstack::parse_topic("bridge/eu868/application/a/device/a84041000181c7e2/event/txack").unwrap();
    assert_eq!(t.event, EventType::TxAck);
    for bad in [
        "",
        "application/a/device/a84041000181c7e2/event",
        "application/a/device/a84041000181c7e2/event/integration",
        "application/a/device/zz/event/up",
        "application//device/a84041000181c7e2/event/up",
        "application/+/device/a84041000181c7e2/event/up",
        "app/a/device/a84041000181c7e2/event/up",
        "application/a/devices/a84041000181c7e2/event/up",
        "application/a/device/a84041000181c7e2/events/up",
    ] {
        let e = chirpstack::parse_topic(bad).unwrap_err();
        assert_eq!(e.code(), "invalid-topic", "{bad}: {e}");
    }
    for e in EventType::ALL {
        assert_eq!(e.as_str().parse::<EventType>().unwrap(), e);
    }
}

#[test]
fn mqtt_body_must_match_topic() {
    let body = super::body("chirpstack-v4-up.json");
    let (t, e) = chirpstack::parse_mqtt("application/x/device/a84041000181c7e2/event/up", &body).unwrap();
    assert_eq!((t.event, e.kind()), (EventType::Up, "up"));
    let e = chirpstack::parse_mqtt("application/x/device/0000000000000001/event/up", &body).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    // The topic's event type decides how the body is read.
    let status = super::body("chirpstack-v4-status.json");
    let (_, e) = chirpstack::parse_mqtt("application/x/device/a84041000181c7e2/event/status", &status).unwrap();
    assert_eq!(e.kind(), "status");
}
