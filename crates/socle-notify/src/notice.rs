//! What the alert engine hands to notifications, and what notifications ask back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::{EntityId, OrganisationId, UserId};

use crate::Severity;

/// The change an alert went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    Opened,
    /// Still not acknowledged after a subscription's delay: sent to the escalation target.
    Escalated,
    Resolved,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Escalated => "escalated",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert transition to tell people about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertNotice {
    /// Stable id of the alert.
    pub alert_id: String,
    pub change: NoticeKind,
    pub organisation: OrganisationId,
    pub entity_id: EntityId,
    pub entity_name: String,
    /// `eau`, `dechets`, `risques`, `eclairage`, `batiments`, `stationnement`, `air`.
    pub domain: String,
    pub severity: Severity,
    pub title_fr: String,
    pub title_en: String,
    pub since: DateTime<Utc>,
    /// The last value and its UN/CEFACT unit code.
    pub last_value: Option<(f64, Option<String>)>,
    /// Longitude, latitude.
    pub location: Option<(f64, f64)>,
}

/// Whether an alert still needs someone: asked when an escalation falls due.
#[async_trait]
pub trait AlertStatus: Send + Sync {
    async fn is_acknowledged_or_resolved(&self, alert_id: &str) -> bool;
}

/// Whether a user may see what a notice is about. Implemented by the
/// authorization point (`socle_api::policy`), so notifications apply the same
/// audience rules as every read; a user who may not see the entity gets nothing.
#[async_trait]
pub trait Visibility: Send + Sync {
    async fn may_see(&self, user: UserId, notice: &AlertNotice) -> bool;
}
