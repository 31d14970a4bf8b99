//! The demo's rules are valid, and evaluated over the demo's backfilled history by
//! the service they raise the scenario's alerts on their own: the leak, the full
//! containers and the flood.

use chrono::{TimeDelta, Utc};
use socle_alerting::AlertingConfig;
use socle_storage::testing::TestStore;
use socle_storage::{AlertFilter, CommitFeed, RuleRecord};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_history_raises_the_scenario_alerts() {
    let t = TestStore::sqlite().await;
    let s = &t.store;
    let now = Utc::now();
    let territory = socle_demo::setup(s, now).await.unwrap();
    socle_demo::backfill(s, &territory, now, 22).await.unwrap();
    for definition in socle_demo::rules(&territory) {
        let rule: socle_rules::Rule = serde_json::from_value(definition.clone())
            .unwrap_or_else(|e| panic!("demo rule {definition} is not valid: {e}"));
        s.upsert_rule(&RuleRecord {
            id: rule.id().to_string(),
            organisation: rule.organisation().clone(),
            definition: serde_json::to_value(&rule).unwrap(),
            enabled: true,
            author: None,
            created_at: now,
            modified_at: now,
        })
        .await
        .unwrap();
    }
    let config = AlertingConfig { first_start_lookback: TimeDelta::days(22), ..AlertingConfig::default() };
    let token = CancellationToken::new();
    let (_handle, task) = socle_alerting::start(s.clone(), &CommitFeed::new(), config, token.clone()).await.unwrap();
    token.cancel();
    task.await.unwrap();
    let alerts = s.list_alerts(&AlertFilter { limit: 10_000, ..AlertFilter::default() }).await.unwrap().items;
    let count = |f: &dyn Fn(&socle_storage::AlertRecord) -> bool| alerts.iter().filter(|a| f(a)).count();
    let leak = count(&|a| a.rule.contains("-fuite-") && a.resolved_at.is_none());
    let full = count(&|a| a.entity_type == "WasteContainer" && a.rule.contains("pleins") && a.resolved_at.is_none());
    let flood = count(&|a| a.entity_type == "FloodMonitoring");
    let lighting = count(&|a| a.rule.contains("eclairage") && a.resolved_at.is_none());
    eprintln!("{} alerts: leak {leak}, full containers {full}, flood {flood}, lighting {lighting}", alerts.len());
    for a in alerts.iter().take(5) {
        eprintln!("{} {} {} {:?} {}", a.rule, a.entity, a.opened_at, a.resolved_at, a.message_fr);
    }
    assert_eq!(leak, 1, "the leak sector, still leaking");
    assert!(full >= 1, "the containers left out of the rounds are full");
    assert!(flood >= 1, "the flood");
}
