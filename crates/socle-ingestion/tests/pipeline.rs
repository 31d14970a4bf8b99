//! The pipeline against real stores, both backends: decoding paths, frame
//! identities, organisations, dead letters and replay, backpressure.

use std::time::Duration;

use chrono::{DateTime, Utc};
use socle_domain::{
    Attribute, AttributeName, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId,
    OrganisationKind, SeriesPoints, SeriesQuery, Step, TimeRange,
};
use socle_ingest::{Codec, CodecLimits, Device, ModelId};
use socle_ingestion::{registry, Input, Outcome, Pipeline, PipelineConfig, Refusal, Rejection, Source};
use socle_storage::testing::TestStore;
use socle_storage::{DeadLetterFilter, DynStore};

const CS_UP: &[u8] = include_bytes!("../../socle-ingest/testdata/chirpstack-v4-up.json");
const CS_STATUS: &[u8] = include_bytes!("../../socle-ingest/testdata/chirpstack-v4-status.json");
const TTN_UP: &[u8] = include_bytes!("../../socle-ingest/testdata/ttn-v3-up.json");
const EUI: &str = "a84041000181c7e2";

fn org(id: &str, code: &str) -> NewOrganisation {
    NewOrganisation {
        id: OrganisationId::parse(id).unwrap(),
        kind: OrganisationKind::Commune,
        name: id.into(),
        code: OfficialCode::parse(code).unwrap(),
        parent: None,
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    }
}

fn a() -> OrganisationId {
    OrganisationId::parse("commune-a").unwrap()
}

fn container() -> EntityId {
    EntityId::parse("urn:ngsi-ld:WasteContainer:verre-mairie").unwrap()
}

/// The glass container of the reference payloads, 2.5 m deep, with its sensor.
async fn setup(s: &DynStore, mappings: serde_json::Value) {
    s.upsert_organisation(&org("commune-a", "86001")).await.unwrap();
    s.upsert_organisation(&org("commune-b", "86002")).await.unwrap();
    let ty = EntityType::parse("WasteContainer").unwrap();
    let e = Entity::new(container(), ty, a()).with("depth", Attribute::property(2500)).unwrap();
    s.upsert_entities(&[e]).await.unwrap();
    let device: Device = serde_json::from_value(serde_json::json!({
        "devEui": EUI, "name": "bac-verre-mairie", "model": "dragino-ldds75",
        "organisation": "commune-a", "entity": container().as_str(), "mappings": mappings,
    }))
    .unwrap();
    registry::validate(&device).unwrap();
    s.upsert_devices(&[registry::to_new(&device)]).await.unwrap();
}

fn fill_mappings() -> serde_json::Value {
    serde_json::json!([
        {"field": "Distance", "attribute": "fillingLevel", "unitCode": "P1", "kind": "number",
         "transform": {"type": "expression", "formula": "100 - 100 * value / depth"}, "range": [0, 100]},
        {"field": "Bat", "attribute": "batteryVoltage", "unitCode": "VLT"},
    ])
}

fn cs(event: &str, body: &[u8]) -> Input {
    Input::new(a(), Source::ChirpStack { event: event.into() }, body.to_vec())
}

/// The reference uplink with its `object` removed, so the codec runs.
fn without_object(body: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v.as_object_mut().unwrap().remove("object");
    serde_json::to_vec(&v).unwrap()
}

fn with(body: &[u8], f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

async fn points(s: &DynStore, attribute: &str) -> Vec<(DateTime<Utc>, f64)> {
    let q = SeriesQuery {
        entity: container(),
        attribute: AttributeName::parse(attribute).unwrap(),
        range: TimeRange::new(DateTime::from_timestamp(0, 0).unwrap(), Utc::now() + chrono::Duration::days(1)).unwrap(),
        step: Step::Raw,
        limit: 10_000,
    };
    match s.series(&q).await {
        Ok(SeriesPoints::Raw(p)) => p.into_iter().map(|p| (p.t, p.value.as_f64().unwrap())).collect(),
        Err(socle_storage::StoreError::UnknownSeries { .. }) => Vec::new(),
        other => panic!("{other:?}"),
    }
}

async fn decoding_paths_and_exactly_once(t: &TestStore) {
    let s = &t.store;
    setup(s, fill_mappings()).await;
    let p = Pipeline::new(s.clone(), PipelineConfig::default());
    let mut committed = p.feed().reliable(16);

    // The network server's own decoding.
    let ok = p.ingest(cs("up", CS_UP)).await.unwrap();
    let announced = committed.try_recv().expect("stored observations are announced");
    assert_eq!(announced.len(), 2);
    assert_eq!((ok.outcome, ok.frames, ok.observations), (Outcome::Stored, 1, 2));
    assert_eq!(points(s, "fillingLevel").await, [("2025-03-12T07:41:05.118Z".parse().unwrap(), 19.0)]);
    // A ChirpStack retry: the same frame, nothing written.
    let again = p.ingest(cs("up", CS_UP)).await.unwrap();
    assert_eq!((again.outcome, again.duplicate, again.observations), (Outcome::Duplicate, true, 0));
    assert!(committed.try_recv().is_err(), "a repeated frame is not announced again");
    // The same measurements from The Things Stack are another server's frame
    // (its own keys, its own reception instant): stored as such.
    let ttn = p.ingest(Input::new(a(), Source::Ttn, TTN_UP.to_vec())).await.unwrap();
    assert_eq!((ttn.frames, ttn.observations), (1, 2));
    assert!(p.ingest(Input::new(a(), Source::Ttn, TTN_UP.to_vec())).await.unwrap().duplicate);
    // No decoded object: the model's codec decodes the same bytes.
    let next = with(&without_object(CS_UP), |v| {
        v["deduplicationId"] = "second".into();
        v["fCnt"] = 1835.into();
        v["time"] = "2025-03-12T08:41:05Z".into();
    });
    assert_eq!(p.ingest(cs("up", &next)).await.unwrap().observations, 2);
    assert_eq!(points(s, "batteryVoltage").await.len(), 3);
    // A late gateway copy of it: new deduplication id and time, same counter and session.
    let late = with(&next, |v| {
        v["deduplicationId"] = "third".into();
        v["time"] = "2025-03-12T08:41:07Z".into();
    });
    assert!(p.ingest(cs("up", &late)).await.unwrap().duplicate);
    assert_eq!(points(s, "batteryVoltage").await.len(), 3);

    // Status events keep the battery and margin; joins the last contact.
    assert_eq!(p.ingest(cs("status", CS_STATUS)).await.unwrap().outcome, Outcome::Recorded);
    let health = s.device(EUI).await.unwrap().unwrap().health;
    assert_eq!((health.battery, health.margin, health.frames_received), (Some(88.3), Some(12), 3));
    assert_eq!((health.rssi, health.f_cnt), (Some(-97), Some(1835)));
    let log = br#"{"time":"2025-03-12T07:41:05Z","deviceInfo":{"devEui":"a84041000181c7e2"},"level":"ERROR","code":"UPLINK_CODEC","description":"x"}"#;
    assert_eq!(p.ingest(cs("log", log)).await.unwrap().outcome, Outcome::Ignored);
    assert!(s.list_dead_letters(&DeadLetterFilter::default()).await.unwrap().items.is_empty());
    assert!(s.check_consistency().await.unwrap().problems.is_empty());

    // An MQTT batch: one slot, one transaction, per-message results.
    let topic = |ev: &str| format!("application/17c82e96/device/{EUI}/event/{ev}");
    let batch = vec![
        Input::new(a(), Source::ChirpStackMqtt { topic: topic("up") }, CS_UP.to_vec()),
        Input::new(
            a(),
            Source::ChirpStackMqtt { topic: topic("up") },
            with(CS_UP, |v| {
                v["deduplicationId"] = "fourth".into();
                v["fCnt"] = 1836.into();
                v["time"] = "2025-03-12T09:41:05Z".into();
            }),
        ),
        Input::new(a(), Source::ChirpStackMqtt { topic: topic("up") }, b"{".to_vec()),
        Input::new(a(), Source::ChirpStackMqtt { topic: topic("status") }, CS_STATUS.to_vec()),
    ];
    let results = p.ingest_batch(&batch).await;
    assert!(results[0].as_ref().unwrap().duplicate);
    assert_eq!(results[1].as_ref().unwrap().frames, 1);
    assert!(matches!(&results[2], Err(r) if r.is_final() && r.code() == "invalid-json"));
    assert_eq!(results[3].as_ref().unwrap().outcome, Outcome::Recorded);
    assert_eq!(points(s, "batteryVoltage").await.len(), 4);
}

async fn refusals_leave_dead_letters_and_replay(t: &TestStore) {
    let s = &t.store;
    // A range too narrow for the reference frame (19 %).
    let mut mappings = fill_mappings();
    mappings[0]["range"] = serde_json::json!([50, 100]);
    setup(s, mappings).await;
    let looping = Codec::new(
        ModelId::parse("test-loop").unwrap(),
        "function decodeUplink(i) { for (;;) {} }",
        &CodecLimits::default(),
    )
    .unwrap();
    let p = Pipeline::new(s.clone(), PipelineConfig::default()).with_codec(looping);

    let refused = |r: Result<_, Rejection>| match r {
        Err(Rejection::Refused { kind, code, dead_letter, .. }) => (kind, code, dead_letter.unwrap()),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let (kind, code, range_letter) = refused(p.ingest(cs("up", CS_UP)).await);
    assert_eq!((kind, code), (Refusal::Invalid, "out-of-range"));
    assert!(points(s, "batteryVoltage").await.is_empty(), "a refused frame stores nothing, not even its good fields");

    // Another organisation's token does not know the device: same answer as an absent one.
    let b = Input::new(
        OrganisationId::parse("commune-b").unwrap(),
        Source::ChirpStack { event: "up".into() },
        CS_UP.to_vec(),
    );
    let (kind, code, _) = refused(p.ingest(b).await);
    assert_eq!((kind, code), (Refusal::UnknownDevice, "unknown-device"));
    let (kind, _, _) =
        refused(p.ingest(cs("up", &with(CS_UP, |v| v["deviceInfo"]["devEui"] = "0000000000000001".into()))).await);
    assert_eq!(kind, Refusal::UnknownDevice);
    let (kind, code, _) = refused(p.ingest(cs("up", b"not json")).await);
    assert_eq!((kind, code), (Refusal::Malformed, "invalid-json"));
    let (kind, code, _) = refused(p.ingest(cs("upp", CS_UP)).await);
    assert_eq!((kind, code), (Refusal::Malformed, "unknown-event"));
    let big = vec![b' '; socle_ingest::MAX_BODY_BYTES + 10];
    let (kind, code, big_letter) = refused(p.ingest(cs("up", &big)).await);
    assert_eq!((kind, code), (Refusal::TooLarge, "body-too-large"));
    let kept = s.dead_letter(big_letter).await.unwrap().unwrap();
    assert_eq!((kept.letter.body.len(), kept.letter.body_size), (4096, big.len() as u64));
    assert!(matches!(p.replay(&kept).await, Err(Rejection::Refused { code: "not-replayable", .. })));

    let letters = s.list_dead_letters(&DeadLetterFilter::default()).await.unwrap();
    assert_eq!(letters.total, 6);
    let b_letter = letters.items.iter().find(|l| l.letter.organisation.as_str() == "commune-b").unwrap();
    assert_eq!(b_letter.letter.dev_eui.as_deref(), Some(EUI));

    // Fix the mapping, replay: stored once, marked replayed; a second replay is a duplicate.
    let mut fixed = s.device(EUI).await.unwrap().unwrap().device;
    fixed.mappings = fill_mappings();
    s.upsert_devices(&[fixed.clone()]).await.unwrap();
    let letter = s.dead_letter(range_letter).await.unwrap().unwrap();
    assert_eq!((letter.letter.source.as_str(), letter.letter.event.as_deref()), ("chirpstack", Some("up")));
    let replayed = p.replay(&letter).await.unwrap();
    assert_eq!((replayed.outcome, replayed.observations), (Outcome::Stored, 2));
    assert!(s.dead_letter(range_letter).await.unwrap().unwrap().replayed_at.is_some());
    assert!(p.replay(&letter).await.unwrap().duplicate);
    let pending = s.list_dead_letters(&DeadLetterFilter { pending: true, ..Default::default() }).await.unwrap();
    assert_eq!(pending.total, 5);

    // A codec that never returns is stopped and its frame kept as a dead letter.
    fixed.model = "test-loop".into();
    s.upsert_devices(&[fixed]).await.unwrap();
    let started = std::time::Instant::now();
    let (kind, code, looped) =
        refused(p.ingest(cs("up", &with(&without_object(CS_UP), |v| v["fCnt"] = 2000.into()))).await);
    assert_eq!((kind, code), (Refusal::Undecodable, "codec-timeout"));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Replaying it while the codec is still broken refuses again, without a new letter.
    let again = p.replay(&s.dead_letter(looped).await.unwrap().unwrap()).await;
    assert!(matches!(again, Err(Rejection::Refused { dead_letter: Some(id), .. }) if id == looped));
    assert_eq!(s.list_dead_letters(&DeadLetterFilter::default()).await.unwrap().total, 7);
}

async fn generic_messages_by_name(t: &TestStore) {
    let s = &t.store;
    setup(s, serde_json::json!([{"field": "level", "attribute": "fillingLevel", "unitCode": "P1", "range": [0, 100]}]))
        .await;
    let p = Pipeline::new(s.clone(), PipelineConfig::default());
    let body =
        br#"[{"device": "bac-verre-mairie", "observedAt": "2026-01-01T10:00:00Z", "values": {"level": 40}, "id": "m1"},
                   {"device": "a84041000181c7e2", "observedAt": "2026-01-01T11:00:00Z", "values": {"level": 45}}]"#;
    let ok = p.ingest(Input::new(a(), Source::Generic, body.to_vec())).await.unwrap();
    assert_eq!((ok.frames, ok.observations), (2, 2));
    let again = p.ingest(Input::new(a(), Source::Generic, body.to_vec())).await.unwrap();
    // The message with an id is known; the other is caught by its series and instant.
    assert_eq!((again.frames, again.duplicate_frames, again.observations, again.duplicate_observations), (1, 1, 0, 1));
    assert_eq!(points(s, "fillingLevel").await.len(), 2);
    // Without observedAt, the reception time; a missing field is reported, not refused.
    let now = p
        .ingest(Input::new(a(), Source::Generic, br#"{"device": "bac-verre-mairie", "values": {"other": 1}}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!((now.observations, now.missing_fields.as_slice()), (0, ["level".to_owned()].as_slice()));
    // One unknown device refuses the whole body.
    let mixed =
        br#"[{"device": "bac-verre-mairie", "values": {"level": 50}}, {"device": "inconnu", "values": {"level": 1}}]"#;
    let r = p.ingest(Input::new(a(), Source::Generic, mixed.to_vec())).await;
    assert!(matches!(r, Err(Rejection::Refused { kind: Refusal::UnknownDevice, .. })));
    assert_eq!(points(s, "fillingLevel").await.len(), 2);
    // A device of another organisation is unknown by name too.
    let b = OrganisationId::parse("commune-b").unwrap();
    let r = p
        .ingest(Input::new(b, Source::Generic, br#"{"device": "bac-verre-mairie", "values": {"level": 50}}"#.to_vec()))
        .await;
    assert!(matches!(r, Err(Rejection::Refused { kind: Refusal::UnknownDevice, .. })));
}

async fn overload_is_refused_not_dropped(t: &TestStore) {
    let s = &t.store;
    setup(s, fill_mappings()).await;
    let slow = Codec::new(
        ModelId::parse("test-slow").unwrap(),
        "function decodeUplink(i) { var t = Date.now(); while (Date.now() - t < 300) {} return {data: {Bat: 3.3}}; }",
        &CodecLimits::default(),
    )
    .unwrap();
    let config = PipelineConfig {
        max_concurrent: 1,
        queue_wait: Duration::from_millis(50),
        retry_after: Duration::from_secs(7),
        codec_limits: CodecLimits { time: Duration::from_secs(1), ..CodecLimits::default() },
        ..PipelineConfig::default()
    };
    let p = Pipeline::new(s.clone(), config).with_codec(slow);
    let mut device = s.device(EUI).await.unwrap().unwrap().device;
    device.model = "test-slow".into();
    s.upsert_devices(&[device]).await.unwrap();
    let first = tokio::spawn({
        let p = p.clone();
        async move { p.ingest(cs("up", &without_object(CS_UP))).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = p.ingest(cs("up", &with(&without_object(CS_UP), |v| v["fCnt"] = 9.into()))).await;
    match second {
        Err(Rejection::Overloaded { retry_after }) => assert_eq!(retry_after, Duration::from_secs(7)),
        other => panic!("expected overload, got {other:?}"),
    }
    assert_eq!(first.await.unwrap().unwrap().frames, 1);
    assert!(
        s.list_dead_letters(&DeadLetterFilter::default()).await.unwrap().items.is_empty(),
        "no dead letter for a retry"
    );
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(&socle_storage::testing::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(&socle_storage::testing::TestStore::postgres().await).await;
                }
            )*
        }
    };
}

both!(
    decoding_paths_and_exactly_once,
    refusals_leave_dead_letters_and_replay,
    generic_messages_by_name,
    overload_is_refused_not_dropped
);
