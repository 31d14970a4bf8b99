use chrono::DateTime;
use serde_json::json;
use socle_ingest::{ttn, DevEui, IngestError, NetworkEvent, Uplink};

use super::{bytes, json};

fn uplink(v: &serde_json::Value) -> Result<Uplink, IngestError> {
    match ttn::parse_uplink(&bytes(v))? {
        NetworkEvent::Uplink(u) => Ok(u),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reference_uplink() {
    let u = uplink(&json("ttn-v3-up.json")).unwrap();
    assert_eq!(u.frame.dev_eui, DevEui::parse("a84041000181c7e2").unwrap());
    assert_eq!(u.frame.f_cnt, Some(1834));
    assert_eq!(u.frame.session.as_deref(), Some("AXA50tHUGUucuzS/bCGMNw=="));
    assert_eq!(u.frame.ns_id.as_deref(), Some("as:up:01HRZ3Q4WJ2C8Y7N1T6D0XK9P5"));
    assert_eq!(u.device_name.as_deref(), Some("bac-verre-mairie"));
    assert_eq!(u.application_id.as_deref(), Some("dechets"));
    assert_eq!(u.f_port, 2);
    // The network server's reception time, stable across webhook retries.
    assert_eq!(u.received_at, DateTime::parse_from_rfc3339("2025-03-12T07:41:04.910Z").unwrap().to_utc());
    assert_eq!(u.payload, [0x0d, 0x0a, 0x07, 0xe9, 0, 0, 0, 1]);
    assert_eq!(u.decoded.as_ref().unwrap()["Bat"], 3.338);
    assert_eq!((u.radio.rssi, u.radio.snr, u.radio.gateways), (Some(-97), Some(6.5), 1));
    assert_eq!(
        (u.radio.frequency, u.radio.spreading_factor, u.radio.bandwidth),
        (Some(867_300_000), Some(7), Some(125_000))
    );
    // Both servers describe the same frame the same way, except the ids.
    let NetworkEvent::Uplink(c) = socle_ingest::chirpstack::parse("up", &super::body("chirpstack-v4-up.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (c.frame.dev_eui, c.frame.f_cnt, c.payload, c.decoded),
        (u.frame.dev_eui, u.frame.f_cnt, u.payload, u.decoded)
    );
}

#[test]
fn omitted_zero_and_string_numbers() {
    let mut v = json("ttn-v3-up.json");
    let up = v["uplink_message"].as_object_mut().unwrap();
    up.remove("f_cnt");
    up.remove("decoded_payload");
    up.remove("received_at");
    up["rx_metadata"] = json!([{"gateway_ids": {"gateway_id": "a"}, "channel_rssi": -101.6},
                               {"gateway_ids": {"gateway_id": "b"}, "rssi": "-99", "snr": "-3.5"}]);
    up["settings"] =
        json!({"data_rate": {"lora": {"bandwidth": "125000", "spreading_factor": "12"}}, "frequency": "868100000"});
    v["simulated"] = json!(true);
    let u = uplink(&v).unwrap();
    assert_eq!(u.frame.f_cnt, Some(0));
    assert_eq!(u.decoded, None);
    assert_eq!(u.received_at, DateTime::parse_from_rfc3339("2025-03-12T07:41:05.118420Z").unwrap().to_utc());
    assert_eq!((u.radio.rssi, u.radio.snr, u.radio.gateways), (Some(-99), Some(0.0), 2));
    assert_eq!((u.radio.frequency, u.radio.spreading_factor), (Some(868_100_000), Some(12)));
    assert!(u.simulated);
    // A MAC-only frame: no port, no payload, no session yet known.
    let v = json!({"end_device_ids": {"dev_eui": "A84041000181C7E2"}, "received_at": "2025-03-12T07:41:05Z",
                   "uplink_message": {}});
    let u = uplink(&v).unwrap();
    assert_eq!((u.f_port, u.payload.len(), u.frame.session.clone(), u.frame.ns_id.clone()), (0, 0, None, None));
    assert_eq!(u.radio, socle_ingest::Radio::default());
}

#[test]
fn errors() {
    let base = json("ttn-v3-up.json");
    let mut v = base.clone();
    v["uplink_message"]["frm_payload"] = json!("%%%");
    assert!(uplink(&v).unwrap_err().to_string().contains("uplink_message.frm_payload"));
    let mut v = base.clone();
    v["uplink_message"]["settings"]["frequency"] = json!("868.1 MHz");
    assert!(uplink(&v).unwrap_err().to_string().contains("uplink_message.settings.frequency"));
    let mut v = base.clone();
    v["uplink_message"]["f_port"] = json!(true);
    assert!(uplink(&v).unwrap_err().to_string().contains("uplink_message.f_port"));
    let mut v = base.clone();
    v["end_device_ids"].as_object_mut().unwrap().remove("dev_eui");
    assert_eq!(uplink(&v).unwrap_err(), IngestError::MissingField("end_device_ids.dev_eui".into()));
    let mut v = base.clone();
    v["end_device_ids"]["dev_eui"] = json!("A84041000181C7EG");
    assert!(uplink(&v).unwrap_err().to_string().contains("end_device_ids.dev_eui"));
    let mut v = base.clone();
    v.as_object_mut().unwrap().remove("received_at");
    v["uplink_message"].as_object_mut().unwrap().remove("received_at");
    assert_eq!(uplink(&v).unwrap_err().code(), "missing-field");
    // Other ApplicationUp messages sent to the uplink endpoint.
    let join = json!({"end_device_ids": {"dev_eui": "A84041000181C7E2"}, "join_accept": {"session_key_id": "x"}});
    assert_eq!(uplink(&join).unwrap_err(), IngestError::NotAnUplink("join_accept".into()));
    let ack = json!({"end_device_ids": {}, "downlink_ack": {"f_port": 1}});
    assert_eq!(uplink(&ack).unwrap_err(), IngestError::NotAnUplink("downlink_ack".into()));
    assert_eq!(uplink(&json!({})).unwrap_err(), IngestError::MissingField("uplink_message".into()));
    assert!(matches!(ttn::parse_uplink(b"[1]"), Err(IngestError::Json { .. })));
}

#[test]
fn topics() {
    let t = ttn::parse_topic("v3/dechets@ttn/devices/bac-verre-mairie/up").unwrap();
    assert_eq!(
        (t.application_id.as_str(), t.tenant.as_deref(), t.device_id.as_str(), t.message.as_str()),
        ("dechets", Some("ttn"), "bac-verre-mairie", "up")
    );
    let t = ttn::parse_topic("v3/dechets/devices/bac-1/down/ack").unwrap();
    assert_eq!((t.tenant, t.message.as_str()), (None, "down/ack"));
    for bad in [
        "",
        "v3",
        "v2/a/devices/d/up",
        "v3/a/device/d/up",
        "v3/a/devices/d",
        "v3//devices/d/up",
        "v3/a@/devices/d/up",
        "v3/a@b@c/devices/d/up",
        "v3/a/devices/+/up",
        "v3/a/devices/d/#",
        "v3/a/devices/d/up/",
        "v3/a/devices//up",
    ] {
        assert_eq!(ttn::parse_topic(bad).unwrap_err().code(), "invalid-topic", "{bad}");
    }
}

#[test]
fn mqtt_uplink() {
    let body = super::body("ttn-v3-up.json");
    assert!(ttn::parse_mqtt_uplink("v3/dechets@ttn/devices/bac-verre-mairie/up", &body).is_ok());
    let e = ttn::parse_mqtt_uplink("v3/dechets@ttn/devices/autre-bac/up", &body).unwrap_err();
    assert!(e.to_string().contains("end_device_ids.device_id"), "{e}");
    let e = ttn::parse_mqtt_uplink("v3/eau@ttn/devices/bac-verre-mairie/up", &body).unwrap_err();
    assert!(e.to_string().contains("application_id"), "{e}");
    let e = ttn::parse_mqtt_uplink("v3/dechets@ttn/devices/bac-verre-mairie/join", &body).unwrap_err();
    assert_eq!(e.code(), "invalid-topic");
}
