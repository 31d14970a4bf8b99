//! ChirpStack uplinks published on a real Mosquitto reach the store through
//! the subscription, once each however often they are delivered; both backends.

use std::time::Duration;

use socle_domain::{
    Attribute, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind,
};
use socle_ingest::Device;
use socle_ingestion::mqtt::{MqttIngest, Network};
use socle_ingestion::{registry, Pipeline, PipelineConfig};
use socle_mqtt::testing::{publish_all, Broker};
use socle_mqtt::Subscription;
use socle_storage::testing::TestStore;
use socle_storage::DeadLetterFilter;

const CS_UP: &[u8] = include_bytes!("../../socle-ingest/testdata/chirpstack-v4-up.json");
const EUI: &str = "a84041000181c7e2";

async fn setup(t: &TestStore) {
    let s = &t.store;
    s.upsert_organisation(&NewOrganisation {
        id: OrganisationId::parse("commune-a").unwrap(),
        kind: OrganisationKind::Commune,
        name: "A".into(),
        code: OfficialCode::parse("86001").unwrap(),
        parent: None,
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
    let ty = EntityType::parse("WasteContainer").unwrap();
    let id = EntityId::parse("urn:ngsi-ld:WasteContainer:verre-mairie").unwrap();
    let e = Entity::new(id.clone(), ty, OrganisationId::parse("commune-a").unwrap())
        .with("depth", Attribute::property(2500))
        .unwrap();
    s.upsert_entities(&[e]).await.unwrap();
    let device: Device = serde_json::from_value(serde_json::json!({
        "devEui": EUI, "name": "bac-verre-mairie", "model": "dragino-ldds75",
        "organisation": "commune-a", "entity": id.as_str(),
        "mappings": [{"field": "Distance", "attribute": "distance", "unitCode": "MMT"}],
    }))
    .unwrap();
    s.upsert_devices(&[registry::to_new(&device)]).await.unwrap();
}

/// The reference uplink with frame counter `f_cnt` and its own deduplication id.
fn uplink(f_cnt: u32) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(CS_UP).unwrap();
    v["fCnt"] = f_cnt.into();
    v["deduplicationId"] = format!("00000000-0000-0000-0000-{f_cnt:012}").into();
    v["time"] = format!("2026-03-12T07:{:02}:{:02}Z", f_cnt / 60 % 60, f_cnt % 60).into();
    serde_json::to_vec(&v).unwrap()
}

async fn subscription_stores_each_frame_once(t: TestStore) {
    setup(&t).await;
    let broker = Broker::start();
    let pipeline = Pipeline::new(t.store.clone(), PipelineConfig::default());
    let sub = Subscription::new("127.0.0.1", broker.port, "socle-ingestion-test", Network::Chirpstack.default_topics());
    let ingest = MqttIngest {
        pipeline,
        organisation: OrganisationId::parse("commune-a").unwrap(),
        network: Network::Chirpstack,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(socle_ingestion::mqtt::run(sub, ingest, async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let topic = format!("application/17c82e96/device/{EUI}/event/up");
    // Every frame three times, as several gateways and a retrying server would.
    let mut messages = Vec::new();
    for _ in 0..3 {
        for f_cnt in 0..40 {
            messages.push((topic.clone(), uplink(1000 + f_cnt)));
        }
    }
    messages.push((topic.clone(), b"{not json".to_vec()));
    publish_all(broker.port, "chirpstack-test", &messages).await;

    let entity = EntityId::parse("urn:ngsi-ld:WasteContainer:verre-mairie").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let n = match t.store.list_series(&entity).await.unwrap().first() {
            Some(_) => {
                let q = socle_domain::SeriesQuery {
                    entity: entity.clone(),
                    attribute: socle_domain::AttributeName::parse("distance").unwrap(),
                    range: socle_domain::TimeRange::new(
                        "2026-03-12T00:00:00Z".parse().unwrap(),
                        "2026-03-13T00:00:00Z".parse().unwrap(),
                    )
                    .unwrap(),
                    step: socle_domain::Step::Raw,
                    limit: 1000,
                };
                match t.store.series(&q).await.unwrap() {
                    socle_domain::SeriesPoints::Raw(p) => p.len(),
                    socle_domain::SeriesPoints::Buckets(_) => 0,
                }
            }
            None => 0,
        };
        let letters =
            t.store.list_dead_letters(&DeadLetterFilter { limit: 100, ..Default::default() }).await.unwrap().items;
        if (n >= 40 && !letters.is_empty()) || tokio::time::Instant::now() > deadline {
            break (n, letters.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored, (40, 1), "40 frames stored once each, the malformed body kept as a dead letter");
    let _ = stop_tx.send(());
    let stats = running.await.unwrap();
    assert_eq!(stats.acknowledged, 121, "everything acknowledged, the dead letter included: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_mqtt_subscription_stores_each_frame_once() {
    subscription_stores_each_frame_once(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mqtt_subscription_stores_each_frame_once() {
    subscription_stores_each_frame_once(TestStore::postgres().await).await;
}
