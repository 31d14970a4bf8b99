//! Ingestion over real HTTP on loopback, against both storage backends: the
//! reference payloads and variants of them, every frame sent three times,
//! tokens, organisations, oversized bodies, codec timeouts, dead letters and
//! their replay, devices API, backpressure.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::AppState;
use socle_domain::{
    ApiToken, Attribute, Email, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId,
    OrganisationKind, Role, TokenKind, TokenScope, Visibility,
};
use socle_ingest::{Codec, CodecLimits, ModelId};
use socle_ingestion::{Pipeline, PipelineConfig};
use socle_storage::testing::TestStore;
use socle_storage::DynStore;

const CS_UP: &[u8] = include_bytes!("../../socle-ingest/testdata/chirpstack-v4-up.json");
const CS_STATUS: &[u8] = include_bytes!("../../socle-ingest/testdata/chirpstack-v4-status.json");
const TTN_UP: &[u8] = include_bytes!("../../socle-ingest/testdata/ttn-v3-up.json");
const EUI_A: &str = "a84041000181c7e2";
const EUI_B: &str = "a84041000181c7e9";
const EUI_LOOP: &str = "a84041000181c7ea";

fn container(commune: &str) -> String {
    format!("urn:ngsi-ld:WasteContainer:verre-{commune}")
}

struct App {
    base: String,
    http: reqwest::Client,
    store: DynStore,
    ingest_a: String,
    ingest_b: String,
    admin_a: String,
    _t: TestStore,
}

async fn token(s: &DynStore, kind: TokenKind, user: Option<socle_domain::UserId>, org: &str) -> String {
    let secret = new_token_secret(kind);
    let t = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind,
        label: "test".into(),
        user,
        organisation: OrganisationId::parse(org).unwrap(),
        scope: TokenScope::Admin,
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
    };
    s.create_token(&t, &hash_secret(&secret)).await.unwrap();
    secret
}

fn fill_mappings(range: [f64; 2]) -> Value {
    json!([
        {"field": "Distance", "attribute": "fillingLevel", "unitCode": "P1", "kind": "number",
         "transform": {"type": "expression", "formula": "100 - 100 * value / depth"}, "range": range},
        {"field": "Bat", "attribute": "batteryVoltage", "unitCode": "VLT"},
        {"field": "TempC_DS18B20", "attribute": "temperature", "unitCode": "CEL", "kind": "number"},
    ])
}

impl App {
    async fn start(t: TestStore, config: PipelineConfig) -> Self {
        let s = t.store.clone();
        for (id, code) in [("commune-a", "86001"), ("commune-b", "86002")] {
            s.upsert_organisation(&NewOrganisation {
                id: OrganisationId::parse(id).unwrap(),
                kind: OrganisationKind::Commune,
                name: id.into(),
                code: OfficialCode::parse(code).unwrap(),
                parent: None,
                population: None,
                timezone: chrono_tz::Europe::Paris,
                retention_days: None,
            })
            .await
            .unwrap();
        }
        let ty = EntityType::parse("WasteContainer").unwrap();
        let mut entities = Vec::new();
        for commune in ["a", "b"] {
            let org = OrganisationId::parse(&format!("commune-{commune}")).unwrap();
            let mut e = Entity::new(EntityId::parse(&container(commune)).unwrap(), ty.clone(), org);
            e.visibility = Visibility::Private;
            entities.push(e.with("depth", Attribute::property(2500)).unwrap());
        }
        s.upsert_entities(&entities).await.unwrap();
        let admin = s.create_user(&Email::parse("admin-a@test.fr").unwrap(), "Admin A", None).await.unwrap();
        s.grant(admin.id, &OrganisationId::parse("commune-a").unwrap(), Role::Admin).await.unwrap();

        let looping = Codec::new(
            ModelId::parse("test-loop").unwrap(),
            "function decodeUplink(input) { while (true) {} }",
            &CodecLimits::default(),
        )
        .unwrap();
        let pipeline = Pipeline::new(s.clone(), config).with_codec(looping);
        let state = AppState::new(s.clone()).with_pipeline(pipeline);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(socle_api::serve(listener, state, std::future::pending()));
        let app = Self {
            base,
            http: reqwest::Client::new(),
            ingest_a: token(&s, TokenKind::Ingestion, None, "commune-a").await,
            ingest_b: token(&s, TokenKind::Ingestion, None, "commune-b").await,
            admin_a: token(&s, TokenKind::Personal, Some(admin.id), "commune-a").await,
            store: s,
            _t: t,
        };
        // Devices through the API, as an administrator would.
        for (eui, name, model, org, commune) in [
            (EUI_A, "bac-verre-mairie", "dragino-ldds75", "commune-a", "a"),
            (EUI_LOOP, "capteur-en-boucle", "test-loop", "commune-a", "a"),
        ] {
            let device = json!({"devEui": eui, "name": name, "model": model, "organisation": org,
                                "entity": container(commune), "mappings": fill_mappings([0.0, 100.0])});
            let (status, body) = app.send("POST", "/api/v1/devices", Some(&app.admin_a), device.to_string()).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        // Commune B's device is registered by its own people (here: directly).
        let b: socle_ingest::Device = serde_json::from_value(json!({"devEui": EUI_B, "name": "bac-verre-b",
            "model": "dragino-ldds75", "organisation": "commune-b", "entity": container("b"),
            "mappings": fill_mappings([0.0, 100.0])}))
        .unwrap();
        app.store.upsert_devices(&[socle_ingestion::registry::to_new(&b)]).await.unwrap();
        app
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post(&self, path: &str, token: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        self.send("POST", path, Some(token), body).await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send("GET", path, Some(&self.admin_a), Vec::new()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn attribute(&self, commune: &str, name: &str) -> Value {
        self.get(&format!("/api/v1/entities/{}", container(commune))).await["attributes"][name].clone()
    }

    /// Raw points of an attribute of commune A's container.
    async fn points(&self, attribute: &str) -> Vec<(DateTime<Utc>, f64)> {
        let path = format!(
            "/api/v1/entities/{}/series/{attribute}?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=100000",
            container("a")
        );
        let (status, body) = self.send("GET", &path, Some(&self.admin_a), Vec::new()).await;
        if status == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        body["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["t"].as_str().unwrap().parse().unwrap(), p["value"].as_f64().unwrap()))
            .collect()
    }

    async fn dead_letters(&self) -> Vec<Value> {
        self.get("/api/v1/dead-letters").await["items"].as_array().unwrap().clone()
    }
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Dragino LDDS75 payload: battery (mV), distance (mm), temperature (0.1 °C).
fn ldds75(battery_mv: u16, distance_mm: u16, temp_dc: i16) -> Vec<u8> {
    let [b0, b1] = battery_mv.to_be_bytes();
    let [d0, d1] = distance_mm.to_be_bytes();
    let [t0, t1] = temp_dc.to_be_bytes();
    vec![b0, b1, d0, d1, 0, t0, t1, 1]
}

/// The reference ChirpStack uplink, changed: frame counter, time, payload, with or without `object`.
fn cs_variant(f_cnt: u32, at: DateTime<Utc>, payload: &[u8], decoded_by_server: bool) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(CS_UP).unwrap();
    v["deduplicationId"] = format!("dedup-{f_cnt}").into();
    v["fCnt"] = f_cnt.into();
    v["time"] = at.to_rfc3339().into();
    v["data"] = b64(payload).into();
    if decoded_by_server {
        let bat = f64::from(u16::from_be_bytes([payload[0], payload[1]]) & 0x3fff) / 1000.0;
        let distance = u16::from_be_bytes([payload[2], payload[3]]);
        let temp = f64::from(i16::from_be_bytes([payload[5], payload[6]])) / 10.0;
        v["object"] = json!({"Bat": bat, "Distance": distance, "Interrupt_flag": 0,
                             "TempC_DS18B20": format!("{temp:.2}"), "Sensor_flag": 1});
    } else {
        v.as_object_mut().unwrap().remove("object");
    }
    serde_json::to_vec(&v).unwrap()
}

fn ttn_variant(f_cnt: u32, at: DateTime<Utc>, payload: &[u8]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(TTN_UP).unwrap();
    v["correlation_ids"] = json!([format!("as:up:ttn-{f_cnt}"), "gs:uplink:x"]);
    v["received_at"] = at.to_rfc3339().into();
    let up = &mut v["uplink_message"];
    up["f_cnt"] = f_cnt.into();
    up["received_at"] = at.to_rfc3339().into();
    up["frm_payload"] = b64(payload).into();
    up.as_object_mut().unwrap().remove("decoded_payload");
    serde_json::to_vec(&v).unwrap()
}

async fn reference_payloads_and_variants(t: TestStore) {
    let app = App::start(t, PipelineConfig::default()).await;
    let a = &app.ingest_a;

    // The reference bodies: stored with units and the network server's reception time.
    let (status, body) = app.post("/ingest/chirpstack?event=up", a, CS_UP).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["outcome"].as_str(), body["observations"].as_u64()), (Some("stored"), Some(3)));
    let fill = app.attribute("a", "fillingLevel").await;
    assert_eq!(fill["value"].as_f64(), Some(19.0));
    assert_eq!(fill["unitCode"], "P1");
    assert_eq!(fill["observedAt"], "2025-03-12T07:41:05.118Z");
    let bat = app.attribute("a", "batteryVoltage").await;
    assert_eq!((bat["value"].as_f64(), bat["unitCode"].as_str()), (Some(3.338), Some("VLT")));
    // The same measurements through The Things Stack are another server's
    // frame (its own keys, its own reception instant), stored as such.
    let (status, body) = app.post("/ingest/ttn", a, TTN_UP).await;
    assert_eq!((status, body["observations"].as_u64()), (StatusCode::OK, Some(3)), "{body}");
    // Status events feed the device's health.
    let (status, body) = app.post("/ingest/chirpstack?event=status", a, CS_STATUS).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("recorded")));
    let device = app.get(&format!("/api/v1/devices/{EUI_A}")).await;
    assert_eq!(device["health"]["battery"].as_f64(), Some(88.3));
    assert_eq!(device["health"]["margin"].as_i64(), Some(12));
    assert_eq!(device["health"]["rssi"].as_i64(), Some(-97));
    assert_eq!(device["health"]["framesReceived"].as_u64(), Some(2));

    // Variants, each sent three times: by ChirpStack with and without its
    // own decoding, by The Things Stack (codec in Socle), with the token in
    // either header. Every frame is stored once.
    let t0: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let mut expected: Vec<(DateTime<Utc>, f64)> =
        vec![("2025-03-12T07:41:04.910Z".parse().unwrap(), 19.0), ("2025-03-12T07:41:05.118Z".parse().unwrap(), 19.0)];
    for i in 0..24u32 {
        let at = t0 + chrono::Duration::minutes(i64::from(i) * 20);
        let distance = 300 + 80 * i as u16;
        let payload = ldds75(3000 + i as u16, distance, -50 + i as i16 * 7);
        let (path, body) = match i % 3 {
            0 => ("/ingest/chirpstack?event=up", cs_variant(2000 + i, at, &payload, true)),
            1 => ("/ingest/chirpstack?event=up", cs_variant(2000 + i, at, &payload, false)),
            _ => ("/ingest/ttn", ttn_variant(5000 + i, at, &payload)),
        };
        for copy in 0..3 {
            let mut req = app.http.post(format!("{}{path}", app.base)).body(body.clone());
            req = if copy == 1 { req.header("X-Socle-Token", a) } else { req.bearer_auth(a) };
            let res = req.send().await.unwrap();
            let status = res.status();
            let json: Value = res.json().await.unwrap();
            assert_eq!(status, StatusCode::OK, "variant {i} copy {copy}: {json}");
            assert_eq!(json["duplicate"].as_bool(), Some(copy > 0), "variant {i} copy {copy}: {json}");
        }
        expected.push((at, 100.0 * (1.0 - f64::from(distance) / 2500.0)));
    }
    let got = app.points("fillingLevel").await;
    assert_eq!(got.len(), expected.len(), "each frame once");
    for ((t, v), (et, ev)) in got.iter().zip(&expected) {
        assert_eq!(t, et);
        assert!((v - ev).abs() < 1e-9, "{t}: {v} vs {ev}");
    }
    let temps = app.points("temperature").await;
    assert!((temps.last().unwrap().1 - 11.1).abs() < 1e-9, "{temps:?}");
    let device = app.get(&format!("/api/v1/devices/{EUI_A}")).await;
    assert_eq!(device["health"]["framesReceived"].as_u64(), Some(26));
    let day = app
        .get(&format!(
            "/api/v1/entities/{}/series/fillingLevel?step=day&from=2026-02-28T00:00:00Z&to=2026-03-03T00:00:00Z",
            container("a")
        ))
        .await;
    let counted: u64 = day["points"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 24, "rollups count each frame once");

    // Generic push, by device name, with its own instant and id.
    let generic = json!({"device": "bac-verre-mairie", "observedAt": "2026-04-01T08:00:00+02:00",
                         "values": {"Distance": 1250, "Bat": 3.1}, "id": "g-1"});
    for copy in 0..3 {
        let (status, body) = app.post("/ingest/generic", a, generic.to_string()).await;
        assert_eq!((status, body["duplicate"].as_bool()), (StatusCode::OK, Some(copy > 0)), "{body}");
    }
    let fill = app.attribute("a", "fillingLevel").await;
    assert_eq!((fill["value"].as_f64(), fill["observedAt"].as_str()), (Some(50.0), Some("2026-04-01T06:00:00Z")));
    assert!(app.dead_letters().await.is_empty(), "nothing was refused");

    // The same measurements through NGSI-LD: current value with observedAt and unitCode, and history.
    let ngsi = app.get(&format!("/ngsi-ld/v1/entities/{}?attrs=fillingLevel", container("a"))).await;
    assert_eq!(
        ngsi["fillingLevel"],
        json!({"type": "Property", "value": 50.0, "unitCode": "P1", "observedAt": "2026-04-01T06:00:00Z"})
    );
    let history = app
        .get(&format!(
            "/ngsi-ld/v1/temporal/entities/{}?attrs=fillingLevel&timerel=between&timeAt=2026-02-28T00:00:00Z&endTimeAt=2026-04-02T00:00:00Z&options=temporalValues",
            container("a")
        ))
        .await;
    let values = history["fillingLevel"]["values"].as_array().unwrap();
    assert_eq!(values.len(), 25, "each frame once, and the generic push: {history}");
    assert_eq!(values[24], json!([50.0, "2026-04-01T06:00:00Z"]));
}

async fn refusals_and_dead_letters(t: TestStore) {
    let app = App::start(t, PipelineConfig::default()).await;
    let a = &app.ingest_a;

    // Tokens: none, unknown, personal (not an ingestion token).
    assert_eq!(app.send("POST", "/ingest/chirpstack?event=up", None, CS_UP).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/ingest/chirpstack?event=up", "socle_ing_wrong", CS_UP).await.0, StatusCode::UNAUTHORIZED);
    let res = app.http.post(format!("{}/ingest/ttn", app.base)).header("X-Socle-Token", "nope").body(TTN_UP).send();
    assert_eq!(res.await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/ingest/chirpstack?event=up", &app.admin_a, CS_UP).await.0, StatusCode::FORBIDDEN);

    // Commune B's token posting commune A's device: unknown there, kept, nothing stored.
    let (status, body) = app.post("/ingest/chirpstack?event=up", &app.ingest_b, CS_UP).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown-device")), "{body}");
    assert!(body["instance"].as_str().unwrap().starts_with("/api/v1/dead-letters/"));
    assert!(app.points("batteryVoltage").await.is_empty());
    // And commune A's token posting commune B's device.
    let b_frame = String::from_utf8(CS_UP.to_vec()).unwrap().replace(EUI_A, EUI_B);
    let (status, _) = app.post("/ingest/chirpstack?event=up", a, b_frame).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let b_entity = app.store.entity(&EntityId::parse(&container("b")).unwrap()).await.unwrap().unwrap();
    assert!(!b_entity.attributes.keys().any(|k| k.as_str() == "batteryVoltage"), "nothing stored for B");
    // A's administrator sees A's dead letter, not B's.
    let letters = app.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0]["organisation"].as_str(), letters[0]["devEui"].as_str()), (Some("commune-a"), Some(EUI_B)));

    // Malformed bodies and events.
    let (status, body) = app.post("/ingest/chirpstack?event=up", a, "{\"deviceInfo\": ").await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid-json")));
    let (status, body) = app.post("/ingest/chirpstack?event=uplink", a, CS_UP).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown-event")));
    let (status, _) = app.post("/ingest/chirpstack", a, CS_UP).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) =
        app.post("/ingest/generic", a, r#"{"device": "bac-verre-mairie", "values": {}, "typo": 1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // English on request.
    let res = app
        .http
        .post(format!("{}/ingest/ttn", app.base))
        .bearer_auth(a)
        .header("Accept-Language", "en")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["title"], "Unreadable body");

    // Oversized bodies: announced, and sent without a length.
    let big = vec![b' '; socle_ingest::MAX_BODY_BYTES + 1];
    let (status, body) = app.post("/ingest/chirpstack?event=up", a, big.clone()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("body-too-large")), "{body}");
    assert_eq!(post_chunked(&app.base, "/ingest/generic", a, &big).await, 413);

    // A codec that never returns: stopped, kept, and the server still answers.
    let looping = cs_variant(7, Utc::now(), &ldds75(3300, 1000, 0), false).replace_eui(EUI_A, EUI_LOOP);
    let started = std::time::Instant::now();
    let (status, body) = app.post("/ingest/chirpstack?event=up", a, looping).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("codec-timeout")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Out of range: refused whole, then replayed once the mapping is fixed.
    let mut device = app.get(&format!("/api/v1/devices/{EUI_A}")).await;
    device["mappings"] = fill_mappings([50.0, 100.0]);
    let app_ref = &app;
    let put = |d: Value| async move {
        app_ref.send("PUT", &format!("/api/v1/devices/{EUI_A}"), Some(&app_ref.admin_a), d.to_string()).await
    };
    assert_eq!(put(device.clone()).await.0, StatusCode::OK);
    let (status, body) = app.post("/ingest/chirpstack?event=up", a, CS_UP).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("out-of-range")), "{body}");
    let letter_path = body["instance"].as_str().unwrap().to_owned();
    assert!(app.points("batteryVoltage").await.is_empty(), "no field of a refused frame is stored");
    let letter = app.get(&letter_path).await;
    assert_eq!(letter["reasonCode"], "out-of-range");
    assert_eq!(letter["body"].as_str().unwrap().as_bytes(), CS_UP, "the body as received");
    // Replayed while still wrong: refused again, still pending, no new letter.
    let before = app.dead_letters().await.len();
    let (status, _) = app.send("POST", &format!("{letter_path}/replay"), Some(&app.admin_a), Vec::new()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.dead_letters().await.len(), before);
    device["mappings"] = fill_mappings([0.0, 100.0]);
    assert_eq!(put(device).await.0, StatusCode::OK);
    let (status, body) = app.send("POST", &format!("{letter_path}/replay"), Some(&app.admin_a), Vec::new()).await;
    assert_eq!((status, body["observations"].as_u64()), (StatusCode::OK, Some(3)), "{body}");
    assert_eq!(app.attribute("a", "fillingLevel").await["value"].as_f64(), Some(19.0));
    assert!(app.get(&letter_path).await["replayedAt"].is_string());
    let (_, again) = app.send("POST", &format!("{letter_path}/replay"), Some(&app.admin_a), Vec::new()).await;
    assert_eq!(again["duplicate"].as_bool(), Some(true));
    let pending = app.get("/api/v1/dead-letters?pending=true").await;
    assert_eq!(pending["total"].as_u64(), Some(before as u64 - 1));
    let codes: Vec<&str> =
        pending["items"].as_array().unwrap().iter().map(|l| l["reasonCode"].as_str().unwrap()).collect();
    for code in ["unknown-device", "invalid-json", "unknown-event", "body-too-large", "codec-timeout"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    // The dead letter of commune B's token is B's: invisible to A's administrator.
    let all = app.store.list_dead_letters(&Default::default()).await.unwrap();
    let b_letter = all.items.iter().find(|l| l.letter.organisation.as_str() == "commune-b").unwrap();
    let (status, _) =
        app.send("GET", &format!("/api/v1/dead-letters/{}", b_letter.id), Some(&app.admin_a), Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        app.send("POST", &format!("/api/v1/dead-letters/{}/replay", b_letter.id), Some(&app.admin_a), Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

trait ReplaceEui {
    fn replace_eui(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceEui for Vec<u8> {
    fn replace_eui(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self).unwrap().replace(from, to).into_bytes()
    }
}

/// Posts a body in chunks without `Content-Length`; returns the status code.
async fn post_chunked(base: &str, path: &str, token: &str, bytes: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut out = head.into_bytes();
    for chunk in bytes.chunks(16 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    // The server may answer before reading everything: a failed write is expected then.
    let _ = stream.write_all(&out).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn devices_api_and_import(t: TestStore) {
    let app = App::start(t, PipelineConfig::default()).await;
    let admin = Some(app.admin_a.as_str());
    let list = app.get("/api/v1/devices").await;
    assert_eq!(list["total"].as_u64(), Some(2), "A's two devices, not B's: {list}");
    let device = json!({"devEui": EUI_A, "name": "x", "model": "dragino-ldds75", "organisation": "commune-a",
                        "entity": container("a"), "mappings": []});
    assert_eq!(app.send("POST", "/api/v1/devices", admin, device.to_string()).await.0, StatusCode::CONFLICT);
    // B's DevEUI is taken, without saying by whom.
    let taken = json!({"devEui": EUI_B, "name": "x", "model": "dragino-ldds75", "organisation": "commune-a",
                       "entity": container("a")});
    let (status, body) = app.send("PUT", &format!("/api/v1/devices/{EUI_B}"), admin, taken.to_string()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(!body.to_string().contains("commune-b"));
    // Feeding another organisation's entity, or acting for another organisation: refused.
    let foreign = json!({"devEui": "0000000000000001", "name": "x", "model": "dragino-ldds75",
                         "organisation": "commune-a", "entity": container("b")});
    assert_eq!(
        app.send("POST", "/api/v1/devices", admin, foreign.to_string()).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let other_org = json!({"devEui": "0000000000000001", "name": "x", "model": "dragino-ldds75",
                           "organisation": "commune-b", "entity": container("b")});
    assert_eq!(app.send("POST", "/api/v1/devices", admin, other_org.to_string()).await.0, StatusCode::FORBIDDEN);
    let bad_mapping = json!({"devEui": "0000000000000001", "name": "x", "model": "dragino-ldds75",
                             "organisation": "commune-a", "entity": container("a"),
                             "mappings": [{"field": "a", "attribute": "b", "range": [5, 1]}]});
    assert_eq!(
        app.send("POST", "/api/v1/devices", admin, bad_mapping.to_string()).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.send("POST", "/api/v1/devices", admin, "{").await.0, StatusCode::BAD_REQUEST);
    let mismatch = json!({"devEui": "0000000000000002", "name": "x", "model": "m", "organisation": "commune-a",
                          "entity": container("a")});
    assert_eq!(
        app.send("PUT", "/api/v1/devices/0000000000000001", admin, mismatch.to_string()).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.send("GET", "/api/v1/devices/zz", admin, Vec::new()).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.send("GET", &format!("/api/v1/devices/{EUI_B}"), admin, Vec::new()).await.0, StatusCode::NOT_FOUND);

    // Bulk import: one device with two mappings, one bad line.
    let csv = format!(
        "dev_eui;name;model;organisation;entity;field;attribute;unit;kind;scale;offset;expression;min;max\n\
         0000000000000010;bac-10;dragino-ldds75;commune-a;{c};Distance;fillingLevel;P1;number;;;100 - 100 * value / depth;0;100\n\
         0000000000000010;bac-10;dragino-ldds75;commune-a;{c};Bat;batteryVoltage;VLT;;0,001;;;;\n\
         0000000000000011;bac-11;dragino-ldds75;commune-a;{c};Distance;fillingLevel;P1;nombre;;;;;\n",
        c = container("a")
    );
    let (status, report) = app.send("POST", "/api/v1/devices/import?dryRun=true", admin, csv.clone()).await;
    assert_eq!((status, report["imported"].as_u64()), (StatusCode::OK, Some(0)), "{report}");
    assert_eq!(report["devices"], json!(["0000000000000010"]));
    assert_eq!(report["errors"][0]["line"].as_u64(), Some(4));
    let (status, report) = app.send("POST", "/api/v1/devices/import", admin, csv).await;
    assert_eq!((status, report["imported"].as_u64()), (StatusCode::OK, Some(1)), "{report}");
    let imported = app.get("/api/v1/devices/0000000000000010").await;
    assert_eq!(imported["mappings"].as_array().unwrap().len(), 2);
    assert_eq!(imported["mappings"][1]["transform"], json!({"type": "linear", "scale": 0.001, "offset": 0.0}));
    // A file naming another organisation imports nothing.
    let foreign =
        format!("dev_eui,name,model,organisation,entity\n0000000000000012,bac-12,m,commune-b,{}\n", container("b"));
    assert_eq!(app.send("POST", "/api/v1/devices/import", admin, foreign).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.send("GET", "/api/v1/devices/0000000000000012", admin, Vec::new()).await.0, StatusCode::NOT_FOUND);

    assert_eq!(
        app.send("DELETE", "/api/v1/devices/0000000000000010", admin, Vec::new()).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send("DELETE", "/api/v1/devices/0000000000000010", admin, Vec::new()).await.0,
        StatusCode::NOT_FOUND
    );
    // Downlinks: queued (202) with Socle's id, bad commands refused with the reason, listed newest first.
    let path = format!("/api/v1/devices/{EUI_A}/downlinks");
    let command = json!({"fPort": 10, "hex": "01ff", "confirmed": true}).to_string();
    let (status, queued) = app.send("POST", &path, admin, command).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!((queued["status"].as_str(), queued["data"].as_str()), (Some("queued"), Some("Af8=")));
    for (bad, expected) in [
        (json!({"fPort": 0, "data": "AQ=="}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"fPort": 10, "hex": "00".repeat(223)}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"fPort": 10, "hex": "01", "data": "AQ=="}), StatusCode::BAD_REQUEST),
        (json!({"fPort": 10, "hex": "zz"}), StatusCode::BAD_REQUEST),
        (json!({"fPort": 300, "hex": "01"}), StatusCode::BAD_REQUEST),
        (json!({"fPort": 10, "hex": "01", "priority": "high"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, problem) = app.send("POST", &path, admin, bad.to_string()).await;
        assert_eq!(status, expected, "{bad} → {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
    }
    let (status, list) = app.send("GET", &path, admin, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["id"], queued["id"]);
    let foreign = format!("/api/v1/devices/{EUI_B}/downlinks");
    let (status, _) = app.send("POST", &foreign, admin, json!({"fPort": 1, "hex": "01"}).to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Every change is in the audit trail.
    let audit = app.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["device.upsert", "device.import", "device.delete", "downlink.queue"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

async fn overload_answers_429_with_retry_after(t: TestStore) {
    let config = PipelineConfig {
        max_concurrent: 1,
        queue_wait: Duration::from_millis(20),
        retry_after: Duration::from_secs(3),
        codec_limits: CodecLimits { time: Duration::from_millis(400), ..CodecLimits::default() },
        ..PipelineConfig::default()
    };
    let app = App::start(t, config).await;
    // The looping codec holds the only slot for 400 ms per frame.
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        let body = cs_variant(100 + i, Utc::now(), &ldds75(3300, 1000, 0), false).replace_eui(EUI_A, EUI_LOOP);
        let (http, url, token) =
            (app.http.clone(), format!("{}/ingest/chirpstack?event=up", app.base), app.ingest_a.clone());
        tasks.push(tokio::spawn(async move {
            let res = http.post(url).bearer_auth(token).body(body).send().await.unwrap();
            (res.status(), res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()))
        }));
    }
    let mut overloaded = 0;
    for t in tasks {
        let (status, retry) = t.await.unwrap();
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                overloaded += 1;
                assert_eq!(retry.as_deref(), Some("3"));
            }
            StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(retry, None),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(overloaded >= 1, "some were refused as overloaded");
    // Refused for overload means nothing kept: only the processed ones have dead letters.
    let letters = app.dead_letters().await.len();
    assert_eq!(letters, 6 - overloaded);
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(socle_storage::testing::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(socle_storage::testing::TestStore::postgres().await).await;
                }
            )*
        }
    };
}

both!(
    reference_payloads_and_variants,
    refusals_and_dead_letters,
    devices_api_and_import,
    overload_answers_429_with_retry_after
);
