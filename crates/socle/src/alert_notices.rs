//! The glue between alerts (`socle-alerting`) and notifications
//! (`socle-notify`): each alert that opens or resolves becomes a notice for
//! the people subscribed to it, and escalations ask the alert store whether
//! someone has acknowledged the alert in the meantime.

use std::sync::Arc;

use socle_domain::Geometry;
use socle_notify::{AlertNotice, NoticeKind, Notifier, Severity};
use socle_storage::{AlertChange, AlertEventKind, DynStore};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The alert status escalations ask about, read from the store.
pub struct StoredAlertStatus(pub DynStore);

#[async_trait::async_trait]
impl socle_notify::AlertStatus for StoredAlertStatus {
    async fn is_acknowledged_or_resolved(&self, alert_id: &str) -> bool {
        let Ok(id) = alert_id.parse::<i64>() else { return true };
        match self.0.alert(id).await {
            Ok(Some(a)) => a.acknowledged_at.is_some() || a.resolved_at.is_some(),
            // Gone: nobody to call about it.
            Ok(None) => true,
            // Unknown now: escalating is the safer mistake.
            Err(e) => {
                tracing::warn!(error = %e, alert = id, "alert status unknown for an escalation");
                false
            }
        }
    }
}

/// Turns alert changes into notices until `shutdown`.
pub async fn forward(
    store: DynStore,
    notifier: Arc<Notifier>,
    mut changes: broadcast::Receiver<AlertChange>,
    shutdown: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            () = shutdown.cancelled() => return,
            c = changes.recv() => c,
        };
        let change = match change {
            Ok(c) => c,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "alert changes missed by notifications");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(notice) = notice(&store, &change).await else { continue };
        if let Err(e) = notifier.notify(&notice).await {
            tracing::warn!(error = %e, alert = %notice.alert_id, "alert notifications not queued");
        }
    }
}

async fn notice(store: &DynStore, change: &AlertChange) -> Option<AlertNotice> {
    let kind = match change.kind {
        AlertEventKind::Opened => NoticeKind::Opened,
        AlertEventKind::Resolved => NoticeKind::Resolved,
        _ => return None,
    };
    let a = &change.alert;
    let entity = store.entity(&a.entity).await.ok().flatten();
    let location = entity.as_ref().and_then(|e| match &e.location {
        Some(Geometry::Point([lon, lat])) => Some((*lon, *lat)),
        Some(other) => {
            let b = other.bbox();
            Some(((b.min_lon + b.max_lon) / 2.0, (b.min_lat + b.max_lat) / 2.0))
        }
        None => None,
    });
    let domain = socle_api::web::layers::Layer::of_type(&a.entity_type).map_or("batiments", |l| l.slug());
    Some(AlertNotice {
        alert_id: a.id.to_string(),
        change: kind,
        organisation: a.organisation.clone(),
        entity_id: a.entity.clone(),
        entity_name: entity.as_ref().and_then(|e| e.name()).unwrap_or(a.entity.as_str()).to_owned(),
        domain: domain.to_owned(),
        severity: serde_json::from_value(serde_json::Value::from(a.severity.as_str())).unwrap_or(Severity::Medium),
        title_fr: a.message_fr.clone(),
        title_en: a.message_en.clone(),
        since: a.since,
        last_value: a.value.map(|v| (v, None)),
        location,
    })
}
