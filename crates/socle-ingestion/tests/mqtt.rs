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

/// The application of the reference ChirpStack uplink.
const APP: &str = "17c82e96-be03-4f38-aef3-f83d48582d97";
const TTN_UP: &[u8] = include_bytes!("../../socle-ingest/testdata/ttn-v3-up.json");

/// A stand-in network server: what Socle publishes to it, as (topic, JSON).
async fn network_server(
    port: u16,
    filters: &[&str],
) -> tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("network-server", "127.0.0.1", port), 64);
    for f in filters {
        client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut subscribed = 0;
    while subscribed < filters.len() {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = eventloop.poll().await {
            subscribed += 1;
        }
    }
    tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = tx.send((p.topic.clone(), serde_json::from_slice(&p.payload).unwrap()));
            }
        }
    });
    rx
}

async fn status_becomes(t: &TestStore, id: &str, status: socle_domain::DownlinkStatus) -> socle_storage::Downlink {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = t.store.downlink(id).await.unwrap().unwrap();
        if d.status == status || tokio::time::Instant::now() > deadline {
            assert_eq!(d.status, status, "{d:?}");
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn downlinks_follow_the_network_servers(t: TestStore) {
    use socle_domain::DownlinkStatus::*;
    use socle_ingestion::{DownlinkRequest, DownlinkSender};
    setup(&t).await;
    let broker = Broker::start();
    let a = OrganisationId::parse("commune-a").unwrap();
    let pipeline = Pipeline::new(t.store.clone(), PipelineConfig::default());
    let mut ns =
        network_server(broker.port, &["application/+/device/+/command/down", "v3/+/devices/+/down/push"]).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut sender = DownlinkSender::new(pipeline.clone());
    let mut running = Vec::new();
    for network in [Network::Chirpstack, Network::Ttn] {
        let sub = Subscription::new("127.0.0.1", broker.port, format!("socle-{network:?}"), network.default_topics());
        sender = sender.with_publisher(a.clone(), network, socle_mqtt::Publisher::start(&sub));
        let ingest = MqttIngest { pipeline: pipeline.clone(), organisation: a.clone(), network };
        running.push(tokio::spawn(socle_ingestion::mqtt::run(sub, ingest, stopped(stop_rx.clone()))));
    }
    let sending = tokio::spawn(sender.run(stopped(stop_rx.clone())));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = |bytes: &[u8]| DownlinkRequest {
        organisation: a.clone(),
        dev_eui: EUI.into(),
        f_port: 10,
        data: bytes.to_vec(),
        confirmed: true,
        requested_by: Some("user:test".into()),
    };

    // Before any uplink, Socle does not know how to reach the device.
    let lost = pipeline.enqueue_downlink(request(&[1])).await.unwrap();
    let lost = status_becomes(&t, &lost.downlink.id, Failed).await;
    assert!(lost.detail.unwrap().contains("no route"));

    // An uplink through ChirpStack teaches the route; a command follows it.
    publish_all(broker.port, "chirpstack", &[(format!("application/{APP}/device/{EUI}/event/up"), uplink(7))]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while t.store.device_route(EUI).await.unwrap().is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = pipeline.enqueue_downlink(request(&[0x01, 0xff])).await.unwrap();
    let id = queued.downlink.id.clone();
    let (topic, command) = tokio::time::timeout(Duration::from_secs(30), ns.recv()).await.unwrap().unwrap();
    assert_eq!(topic, format!("application/{APP}/device/{EUI}/command/down"));
    assert_eq!(command, serde_json::json!({"id": id, "devEui": EUI, "confirmed": true, "fPort": 10, "data": "Af8="}));
    status_becomes(&t, &id, Sent).await;
    // ChirpStack reports the transmission, then the device's acknowledgement,
    // each twice and the transmission once more too late: it only moves forward.
    let event = |kind: &str, extra: serde_json::Value| {
        let mut v = serde_json::json!({
            "time": "2026-03-12T07:00:05Z",
            "deviceInfo": {"devEui": EUI, "applicationId": APP, "deviceName": "bac-verre-mairie"},
            "queueItemId": id, "fCntDown": 12,
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        (format!("application/{APP}/device/{EUI}/event/{kind}"), serde_json::to_vec(&v).unwrap())
    };
    let txack = event("txack", serde_json::json!({"gatewayId": "0016c001ff10a235"}));
    let ack = event("ack", serde_json::json!({"acknowledged": true}));
    publish_all(broker.port, "chirpstack", &[txack.clone(), txack.clone()]).await;
    status_becomes(&t, &id, Transmitted).await;
    publish_all(broker.port, "chirpstack", &[ack.clone(), ack, txack]).await;
    let done = status_becomes(&t, &id, Acknowledged).await;
    assert_eq!(done.f_cnt_down, Some(12));
    assert!(done.transmitted_at.is_some() && done.acknowledged_at.is_some());

    // The device moves to The Things Stack: its next command goes there.
    publish_all(broker.port, "ttn", &[("v3/dechets@ttn/devices/bac-verre-mairie/up".into(), TTN_UP.to_vec())]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while t.store.device_route(EUI).await.unwrap().is_some_and(|r| r.network != "ttn")
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = pipeline.enqueue_downlink(request(&[0xbe, 0xef])).await.unwrap();
    let id = queued.downlink.id.clone();
    let (topic, push) = tokio::time::timeout(Duration::from_secs(30), ns.recv()).await.unwrap().unwrap();
    assert_eq!(topic, "v3/dechets@ttn/devices/bac-verre-mairie/down/push");
    assert_eq!(push["downlinks"][0]["frm_payload"], "vu8=");
    let correlation = format!("socle:downlink:{id}");
    assert_eq!(push["downlinks"][0]["correlation_ids"][0], correlation.as_str());
    status_becomes(&t, &id, Sent).await;
    let nack = serde_json::json!({
        "end_device_ids": {"device_id": "bac-verre-mairie", "dev_eui": "A84041000181C7E2"},
        "correlation_ids": [correlation], "received_at": "2026-03-12T08:00:00Z",
        "downlink_nack": {"f_port": 10, "f_cnt": 3, "correlation_ids": [correlation]},
    });
    publish_all(
        broker.port,
        "ttn",
        &[("v3/dechets@ttn/devices/bac-verre-mairie/down/nack".into(), nack.to_string().into_bytes())],
    )
    .await;
    let refused = status_becomes(&t, &id, Failed).await;
    assert!(refused.detail.unwrap().contains("nack"));

    let _ = stop_tx.send(true);
    sending.await.unwrap();
    for r in running {
        r.await.unwrap();
    }
    // Network-server events were acknowledged, not kept as dead letters.
    let letters = t.store.list_dead_letters(&DeadLetterFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(letters.total, 0, "{:?}", letters.items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_downlinks_follow_the_network_servers() {
    downlinks_follow_the_network_servers(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_downlinks_follow_the_network_servers() {
    downlinks_follow_the_network_servers(TestStore::postgres().await).await;
}
