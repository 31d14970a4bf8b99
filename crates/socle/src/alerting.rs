//! The alerting service in `socle serve` and `socle demo`: started under the
//! server's cancellation token; the demo stores its rules first and lets the
//! engine evaluate the backfilled history, then shows an alert's lifecycle.

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use socle_alerting::{AlertingConfig, AlertingHandle};
use socle_domain::{Email, OrganisationId};
use socle_storage::{AlertAction, AlertFilter, AlertStatus, CommitFeed, DynStore, RuleRecord};
use tokio_util::sync::CancellationToken;

/// Starts the service on `feed`; `lookback` is the stored history evaluated at
/// the very first start (none for a real installation, the demo's month for the demo).
pub async fn start(
    store: DynStore,
    feed: &CommitFeed,
    lookback: TimeDelta,
    shutdown: CancellationToken,
) -> anyhow::Result<(AlertingHandle, tokio::task::JoinHandle<()>)> {
    let config = AlertingConfig { first_start_lookback: lookback, ..AlertingConfig::default() };
    socle_alerting::start(store, feed, config, shutdown).await.context("starting the alerting service")
}

/// Stores the demo's rules that are not there yet (an operator's edits survive a
/// restart of the demo).
pub async fn demo_rules(store: &DynStore, territory: &socle_demo::Territory) -> anyhow::Result<usize> {
    let now = Utc::now();
    let mut added = 0;
    for definition in socle_demo::rules(territory) {
        let rule: socle_rules::Rule = serde_json::from_value(definition.clone()).context("a demo rule is not valid")?;
        if store.rule(rule.id().as_str()).await?.is_some() {
            continue;
        }
        store
            .upsert_rule(&RuleRecord {
                id: rule.id().to_string(),
                organisation: rule.organisation().clone(),
                definition: serde_json::to_value(&rule)?,
                enabled: true,
                author: None,
                created_at: now,
                modified_at: now,
            })
            .await?;
        added += 1;
    }
    Ok(added)
}

/// Shows the lifecycle on the alerts the history raised: the agent of Saint-Aubin
/// acknowledges the full containers and takes the leak, with a comment.
pub async fn demo_lifecycle(store: &DynStore, handle: &AlertingHandle) -> anyhow::Result<()> {
    let agent = Email::parse("agent@saint-aubin-sur-lemance.fr")?;
    let Some(agent) = store.credentials(&agent).await? else { return Ok(()) };
    let actor = agent.user.id.to_string();
    let org = OrganisationId::parse("commune-saint-aubin")?;
    let open = AlertFilter {
        organisations: Some(vec![org]),
        statuses: Some(vec![AlertStatus::Open]),
        limit: 1000,
        ..AlertFilter::default()
    };
    let alerts = store.list_alerts(&open).await?.items;
    let now = Utc::now();
    let act = |id: i64, action: AlertAction| {
        let (store, actor, handle) = (store.clone(), actor.clone(), handle.clone());
        async move {
            if let Some(Ok(change)) = store.act_on_alert(id, &action, &actor, now).await? {
                handle.publish(change);
            }
            anyhow::Ok(())
        }
    };
    for a in alerts.iter().filter(|a| a.entity_type == "WasteContainer").take(2) {
        act(a.id, AlertAction::Acknowledge).await?;
    }
    if let Some(leak) = alerts.iter().find(|a| a.rule.contains("-fuite-")) {
        act(leak.id, AlertAction::Acknowledge).await?;
        act(leak.id, AlertAction::Assign { assignee: Some(actor.clone()) }).await?;
        let text = "Débit de nuit anormal confirmé sur le secteur ; équipe de recherche de fuite prévue demain matin.";
        act(leak.id, AlertAction::Comment { text: text.into() }).await?;
    }
    Ok(())
}
