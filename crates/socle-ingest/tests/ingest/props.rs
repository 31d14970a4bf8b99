//! Properties: no parser panics, whatever the input.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value};
use socle_domain::{AttributeName, EntityId};
use socle_ingest::chirpstack::{self, EventType};
use socle_ingest::{
    codec, generic, import_csv, mapping, ttn, CodecError, CodecLimits, DevEui, Expression, FieldPath, Mapping,
    MappingContext, Transform, UplinkInput, ValueKind,
};

/// Keys the parsers look for, so generated objects reach their code.
const KEYS: &[&str] = &[
    "deviceInfo",
    "devEui",
    "dev_eui",
    "time",
    "fCnt",
    "f_cnt",
    "fPort",
    "f_port",
    "data",
    "object",
    "rxInfo",
    "rssi",
    "snr",
    "txInfo",
    "frequency",
    "modulation",
    "lora",
    "spreadingFactor",
    "level",
    "code",
    "location",
    "latitude",
    "end_device_ids",
    "uplink_message",
    "frm_payload",
    "received_at",
    "rx_metadata",
    "settings",
    "correlation_ids",
    "device",
    "values",
    "observedAt",
    "batteryLevel",
    "join_accept",
    "Distance",
    "a",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "[a-zA-Z_]{0,6}"]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
        "[0-9a-fA-F]{16}".prop_map(Value::String),
        "[A-Za-z0-9+/]{0,12}={0,2}".prop_map(Value::String),
        Just(Value::String("2025-03-12T07:41:05Z".into())),
        "-?[0-9]{1,12}(\\.[0-9]{1,3})?".prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A reference body with one field (at any depth) replaced or removed.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    (any::<prop::sample::Index>(), prop::option::of(arb_json())).prop_map(move |(index, replacement)| {
        let mut v = base.clone();
        let mut paths = Vec::new();
        collect_paths(&v, &mut Vec::new(), &mut paths);
        if let Some(path) = paths.get(index.index(paths.len().max(1))) {
            replace(&mut v, path, replacement);
        }
        v
    })
}

fn collect_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            at.push(k.clone());
            out.push(at.clone());
            collect_paths(child, at, out);
            at.pop();
        }
    }
    if let Value::Array(a) = v {
        for (i, child) in a.iter().enumerate() {
            at.push(format!("#{i}"));
            collect_paths(child, at, out);
            at.pop();
        }
    }
}

fn replace(v: &mut Value, path: &[String], with: Option<Value>) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for p in parents {
        cur = match p.strip_prefix('#').and_then(|i| i.parse::<usize>().ok()) {
            Some(i) => &mut cur[i],
            None => &mut cur[p.as_str()],
        };
    }
    if let Value::Object(m) = cur {
        match with {
            Some(w) => {
                m.insert(last.clone(), w);
            }
            None => {
                m.remove(last);
            }
        }
    }
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

proptest! {
    #[test]
    fn chirpstack_never_panics_on_bytes(event in prop::sample::select(&EventType::ALL[..]), b in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = chirpstack::parse(event.as_str(), &b);
    }

    #[test]
    fn chirpstack_never_panics_on_json(event in prop::sample::select(&EventType::ALL[..]), v in arb_json()) {
        let _ = chirpstack::parse(event.as_str(), &body(&v));
    }

    #[test]
    fn chirpstack_never_panics_on_mutated_reference(
        up in mutated(super::json("chirpstack-v4-up.json")),
        status in mutated(super::json("chirpstack-v4-status.json")),
        event in prop::sample::select(&EventType::ALL[..]),
    ) {
        let _ = chirpstack::parse("up", &body(&up));
        let _ = chirpstack::parse("status", &body(&status));
        let _ = chirpstack::parse(event.as_str(), &body(&up));
    }

    #[test]
    fn ttn_never_panics(b in prop::collection::vec(any::<u8>(), 0..300), v in arb_json(), up in mutated(super::json("ttn-v3-up.json"))) {
        let _ = ttn::parse_uplink(&b);
        let _ = ttn::parse_uplink(&body(&v));
        let _ = ttn::parse_uplink(&body(&up));
    }

    #[test]
    fn generic_never_panics(b in prop::collection::vec(any::<u8>(), 0..300), v in arb_json(), many in prop::collection::vec(arb_json(), 0..4)) {
        let _ = generic::parse(&b);
        let _ = generic::parse(&body(&v));
        let _ = generic::parse(&body(&Value::Array(many)));
    }

    #[test]
    fn generic_accepts_what_it_documents(device in "[a-z][a-z0-9 -]{0,30}", t in -1.0e6f64..1.0e6, n in 1usize..5) {
        let msgs: Vec<Value> = (0..n).map(|i| serde_json::json!({"device": device, "values": {"t": t, "i": i}})).collect();
        let parsed = generic::parse(&body(&Value::Array(msgs))).unwrap();
        prop_assert_eq!(parsed.len(), n);
        prop_assert_eq!(parsed[0].device.to_string(), device);
    }

    #[test]
    fn topic_parsers_never_panic(s in ".{0,120}", parts in prop::collection::vec(prop_oneof![
        Just("application".to_owned()), Just("device".to_owned()), Just("event".to_owned()), Just("up".to_owned()),
        Just("v3".to_owned()), Just("devices".to_owned()), "[0-9a-f]{16}", "[a-z@+#]{0,5}"], 0..9)) {
        let _ = chirpstack::parse_topic(&s);
        let _ = ttn::parse_topic(&s);
        let joined = parts.join("/");
        let _ = chirpstack::parse_topic(&joined);
        let _ = ttn::parse_topic(&joined);
    }

    #[test]
    fn chirpstack_topic_roundtrip(app in "[a-z0-9-]{1,36}", eui in "[0-9a-fA-F]{16}", event in prop::sample::select(&EventType::ALL[..])) {
        let t = chirpstack::parse_topic(&format!("application/{app}/device/{eui}/event/{event}")).unwrap();
        prop_assert_eq!(t.application_id, app);
        prop_assert_eq!(t.dev_eui.to_string(), eui.to_ascii_lowercase());
        prop_assert_eq!(t.event, event);
    }

    #[test]
    fn dev_eui_roundtrip(s in "[0-9a-fA-F]{16}", other in ".{0,20}") {
        let e = DevEui::parse(&s).unwrap();
        prop_assert_eq!(e.to_string(), s.to_ascii_lowercase());
        prop_assert_eq!(DevEui::from_bytes(*e.as_bytes()), e);
        let json = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(serde_json::from_str::<DevEui>(&json).unwrap(), e);
        let _ = DevEui::parse(&other);
    }

    #[test]
    fn csv_import_never_panics(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = import_csv(&b);
    }

    #[test]
    fn csv_import_never_panics_on_rows(rows in prop::collection::vec(prop::collection::vec(prop_oneof![
        Just(String::new()), "[0-9a-f]{16}", "[a-z-]{1,8}", Just("urn:ngsi-ld:T:x".to_owned()),
        "[-0-9.,e]{1,6}", ".{0,8}", Just("\"".to_owned()), Just("number".to_owned())], 0..16), 0..8), semicolon in any::<bool>()) {
        let sep = if semicolon { ";" } else { "," };
        let mut csv = socle_ingest::device::CSV_COLUMNS.join(sep);
        for r in rows {
            csv.push('\n');
            csv.push_str(&r.join(sep));
        }
        let out = import_csv(csv.as_bytes());
        // Every imported device is complete and consistent.
        for d in &out.devices {
            prop_assert!(d.mappings.iter().all(|m| m.validate().is_ok()));
        }
    }

    #[test]
    fn expressions_never_panic(s in ".{0,80}", ops in "[-+*/%^()0-9.,a-z ]{0,80}", value in any::<f64>()) {
        for text in [&s, &ops] {
            if let Ok(e) = Expression::parse(text) {
                let _ = e.eval(value, &|_| Some(value));
            }
        }
    }

    #[test]
    fn field_paths_never_panic(s in ".{0,40}", structured in "[a-z\\[\\]0-9.]{0,20}", v in arb_json()) {
        for text in [&s, &structured] {
            if let Ok(p) = FieldPath::parse(text) {
                let _ = p.get(&v);
                if let Value::Object(m) = &v {
                    let _ = p.get_in(m);
                }
            }
        }
    }

    #[test]
    fn mapping_never_panics_and_accounts_for_every_field(
        object in arb_json(),
        specs in prop::collection::vec((
            "[a-zA-Z_]{1,3}(\\[[0-2]\\])?(\\.[a-zA-Z_]{1,3})?",
            prop::sample::select(&[ValueKind::Auto, ValueKind::Number, ValueKind::Text][..]),
            0u8..4, any::<f64>(), any::<f64>(), prop::option::of((any::<f64>(), any::<f64>())),
        ), 0..8),
        depth in any::<f64>(),
    ) {
        let mappings: Vec<Mapping> = specs.into_iter().filter_map(|(field, kind, t, a, b, range)| {
            let transform = match t {
                0 => Transform::Identity,
                1 => Transform::Linear { scale: a, offset: b },
                2 => Transform::Expression { formula: Expression::parse("1 - value / depth").ok()? },
                _ => Transform::Expression { formula: Expression::parse("round(value * a) ^ 2 % 7").ok()? },
            };
            Some(Mapping { kind, transform, range, ..Mapping::new(FieldPath::parse(&field).ok()?, AttributeName::parse("level").ok()?) })
        }).collect();
        let ctx = MappingContext {
            entity: EntityId::parse("urn:ngsi-ld:WasteContainer:x").unwrap(),
            observed_at: DateTime::<Utc>::UNIX_EPOCH,
            properties: [("depth".to_owned(), depth)].into_iter().collect(),
        };
        let object = match object {
            Value::Object(m) => m,
            other => Map::from_iter([("a".to_owned(), other)]),
        };
        let out = mapping::apply(&mappings, &object, &ctx);
        prop_assert_eq!(out.observations.len() + out.errors.len(), mappings.len());
        for o in &out.observations {
            if let socle_domain::ObservedValue::Number(n) = o.value {
                prop_assert!(n.get().is_finite());
            }
        }
    }
}

proptest! {
    // Each case runs JavaScript: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The shipped codecs refuse bad payloads with their own errors, never by throwing.
    #[test]
    fn builtin_codecs_only_decode_or_report(bytes in prop::collection::vec(any::<u8>(), 0..16), port in prop_oneof![Just(1u8), Just(2), Just(5), any::<u8>()]) {
        for c in codec::builtins() {
            let r = c.decode_uplink(&UplinkInput { bytes: &bytes, f_port: port, recv_time: DateTime::<Utc>::UNIX_EPOCH }, &CodecLimits::default());
            match r {
                Ok(d) => prop_assert!(d.data.values().all(|v| !v.is_null()), "{}: {:?}", c.model(), d.data),
                Err(CodecError::Reported(_)) => {}
                Err(e) => prop_assert!(false, "{}: {e} for {bytes:02x?} on port {port}", c.model()),
            }
        }
    }
}
