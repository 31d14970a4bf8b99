//! The demo's NGSI-LD subscription: Saint-Aubin's technician is told on
//! MQTT when a waste container passes 80 %, on the broker Socle is already
//! configured with (`[[mqtt.subscriptions]]`); without one, nothing is
//! created and the README shows how to add a subscription with curl.

use chrono::Utc;
use serde_json::json;
use socle_domain::{Email, OrganisationId};
use socle_ngsi::subscription::Subscription;
use socle_storage::{DynStore, NgsiDeliveryCounters, StoreError, StoredNgsiSubscription};

pub const DEMO_SUBSCRIPTION: &str = "urn:ngsi-ld:Subscription:demo-conteneurs-pleins";
pub const DEMO_TOPIC: &str = "socle/demo/notifications";
const OWNER: &str = "agent@saint-aubin-sur-lemance.fr";
const ORGANISATION: &str = "commune-saint-aubin";

/// Creates the subscription once (a later start keeps the one stored, with its counters).
pub async fn create(store: &DynStore, broker: Option<(&str, u16)>) -> anyhow::Result<()> {
    let Some((host, port)) = broker else {
        tracing::info!("no MQTT broker configured: the demo has no NGSI-LD subscription (see the README)");
        return Ok(());
    };
    let owner = store
        .credentials(&Email::parse(OWNER)?)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo account {OWNER} is missing"))?
        .user;
    let now = Utc::now();
    let body = json!({
        "type": "Subscription",
        "id": DEMO_SUBSCRIPTION,
        "description": "Conteneurs remplis à plus de 80 % — tournée de collecte",
        "entities": [{"type": "WasteContainer"}],
        "watchedAttributes": ["fillingLevel"],
        "q": "fillingLevel>0.8",
        "throttling": 60,
        "notification": {
            "attributes": ["fillingLevel", "name"],
            "format": "keyValues",
            "endpoint": {"uri": format!("mqtt://{host}:{port}/{DEMO_TOPIC}"), "accept": "application/json"},
        },
    });
    let sub = Subscription::from_json(&body, serde_json::Value::Null, DEMO_SUBSCRIPTION, now)
        .map_err(|e| anyhow::anyhow!("the demo subscription is invalid: {e}"))?;
    let stored = StoredNgsiSubscription {
        id: sub.id.clone(),
        organisation: OrganisationId::parse(ORGANISATION)?,
        // Saint-Aubin's containers only, not the public ones of the other communes.
        tenant_only: true,
        owner: owner.id,
        spec: serde_json::to_value(&sub)?,
        created_at: now,
        modified_at: now,
        counters: NgsiDeliveryCounters::default(),
    };
    match store.create_ngsi_subscription(&stored).await {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    println!("Abonnement NGSI-LD de démo / demo NGSI-LD subscription: mqtt://{host}:{port}/{DEMO_TOPIC}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socle_domain::{Attribute, AttributeName, EntityFilter, EntityType};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_subscription_watches_full_containers_of_saint_aubin() {
        let t = socle_storage::testing::TestStore::sqlite().await;
        let store = t.store.clone();
        socle_demo::setup(&store, Utc::now()).await.unwrap();
        crate::demo_accounts::create(&store).await.unwrap();
        create(&store, None).await.unwrap();
        assert!(store.list_ngsi_subscriptions(None).await.unwrap().is_empty(), "no broker, no subscription");
        create(&store, Some(("127.0.0.1", 1883))).await.unwrap();
        create(&store, Some(("127.0.0.1", 1883))).await.unwrap(); // a restart keeps the stored one
        let stored = store.list_ngsi_subscriptions(None).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].organisation.as_str(), ORGANISATION);
        assert!(stored[0].tenant_only, "the commune's own containers");
        let sub: Subscription = serde_json::from_value(stored[0].spec.clone()).unwrap();
        assert_eq!(sub.notification.endpoint.uri, format!("mqtt://127.0.0.1:1883/{DEMO_TOPIC}"));
        // It selects the demo's containers once they pass 80 %.
        let compiled = sub.compile().unwrap();
        let filter = EntityFilter {
            audience: socle_domain::Audience::System,
            organisations: Some(vec![OrganisationId::parse(ORGANISATION).unwrap()]),
            entity_type: Some(EntityType::parse("WasteContainer").unwrap()),
            limit: 10,
            ..Default::default()
        };
        let mut bin = store.query_entities(&filter).await.unwrap().items.remove(0);
        let level = AttributeName::parse("fillingLevel").unwrap();
        bin.attributes.insert(level.clone(), Attribute::property(0.93));
        assert!(compiled.selects(&bin) && compiled.watches(&["fillingLevel"]));
        bin.attributes.insert(level, Attribute::property(0.4));
        assert!(!compiled.selects(&bin));
    }
}
