//! Storage of alerting: rules (their definition is the JSON of a
//! `socle_rules::Rule`, which storage does not interpret), alerts with their
//! lifecycle and history, the engine's saved state, and the scan of stored
//! observations the engine replays after a restart and the rule editor's preview
//! reads. A separate trait from [`crate::Store`], as [`crate::Devices`] is.
//!
//! Writes coming from the engine are idempotent, so a batch evaluated twice (a
//! crash between the alert write and the next snapshot, then a replay) changes
//! nothing the second time:
//!
//! - an opening is keyed by (rule, entity, opened_at), and the database holds at
//!   most one unresolved alert per (rule, entity) (a partial unique index): a
//!   repeated opening inserts nothing;
//! - a resolution or a flapping notice applies to the latest alert of the (rule,
//!   entity) opened at or before its instant, and only while it is unresolved.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use socle_domain::{EntityId, Observation, OrganisationId, Page};

use crate::Result;

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRecord {
    pub id: String,
    pub organisation: OrganisationId,
    /// The rule as JSON (`socle_rules::RuleSpec`), validated by the caller.
    pub definition: serde_json::Value,
    pub enabled: bool,
    /// User id of the last author (none for rules Socle created itself, like the demo's).
    pub author: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleFilter {
    /// `None`: every organisation.
    pub organisations: Option<Vec<OrganisationId>>,
    pub enabled_only: bool,
}

/// Where an alert stands. Open and acknowledged alerts are both unresolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [Self::Open, Self::Acknowledged, Self::Resolved];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Severity order for sorting; unknown words sort as medium.
pub fn severity_rank(severity: &str) -> i64 {
    match severity {
        "informational" => 0,
        "low" => 1,
        "high" => 3,
        "critical" => 4,
        _ => 2,
    }
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub id: i64,
    pub rule: String,
    pub entity: EntityId,
    pub entity_type: String,
    pub organisation: OrganisationId,
    /// A Smart Data Models severity (`informational` … `critical`).
    pub severity: String,
    pub status: AlertStatus,
    /// When the alert opened (the condition had lasted its minimum duration).
    pub opened_at: DateTime<Utc>,
    /// When the abnormal situation began.
    pub since: DateTime<Utc>,
    /// The figure compared with the rule's level when the alert opened.
    pub value: Option<f64>,
    pub message_fr: String,
    pub message_en: String,
    pub flapping: bool,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// User id; `None` with a `resolved_at` means resolved by the engine.
    pub resolved_by: Option<String>,
    /// `cleared`, `withdrawn` (rule deleted or edited) or `manual`.
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    pub modified_at: DateTime<Utc>,
}

/// What happened to an alert; also the kind of its history entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEventKind {
    Opened,
    Flapping,
    Acknowledged,
    Assigned,
    Commented,
    Resolved,
}

impl AlertEventKind {
    pub const ALL: [AlertEventKind; 6] =
        [Self::Opened, Self::Flapping, Self::Acknowledged, Self::Assigned, Self::Commented, Self::Resolved];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Flapping => "flapping",
            Self::Acknowledged => "acknowledged",
            Self::Assigned => "assigned",
            Self::Commented => "commented",
            Self::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One entry of an alert's history (comments included).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEventRecord {
    pub id: i64,
    pub alert: i64,
    pub at: DateTime<Utc>,
    pub kind: AlertEventKind,
    /// User id; `None` for the engine.
    pub actor: Option<String>,
    /// A comment, the engine's message in French, or the new assignee.
    pub note: Option<String>,
    pub note_en: Option<String>,
}

/// A change made to an alert, for those who react to it (notifications, live pages).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertChange {
    pub alert: AlertRecord,
    pub kind: AlertEventKind,
}

/// A transition decided by the rule engine, to record.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertWrite {
    Open {
        rule: String,
        entity: EntityId,
        entity_type: String,
        organisation: OrganisationId,
        severity: String,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
        value: Option<f64>,
        message_fr: String,
        message_en: String,
    },
    Flapping {
        rule: String,
        entity: EntityId,
        at: DateTime<Utc>,
        message_fr: String,
        message_en: String,
    },
    Resolve {
        rule: String,
        entity: EntityId,
        at: DateTime<Utc>,
        /// `cleared` or `withdrawn`.
        reason: String,
        message_fr: String,
        message_en: String,
    },
}

/// A change asked by a person.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertAction {
    Acknowledge,
    Resolve {
        note: Option<String>,
    },
    /// `None` removes the assignee.
    Assign {
        assignee: Option<String>,
    },
    Comment {
        text: String,
    },
}

/// Why a person's change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionRefusal {
    /// Resolved alerts only take comments.
    Resolved,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Who reads: only alerts this audience may see (`rows::alert_audience_condition`);
    /// `None` reads every alert (the alerting service, tests).
    pub audience: Option<socle_domain::Audience>,
    pub organisations: Option<Vec<OrganisationId>>,
    pub statuses: Option<Vec<AlertStatus>>,
    pub severities: Option<Vec<String>>,
    pub entity: Option<EntityId>,
    pub entity_types: Option<Vec<String>>,
    pub rule: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

/// The engine's saved state.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineState {
    /// `socle_rules::Snapshot` as JSON.
    pub snapshot: String,
    /// Observations up to this instant (their `observedAt`) have been evaluated.
    pub watermark: DateTime<Utc>,
    pub saved_at: DateTime<Utc>,
}

/// Which stored observations to read, observed in `(from, to]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationScan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub organisation: Option<OrganisationId>,
    pub entity_type: Option<String>,
    pub entities: Option<Vec<EntityId>>,
    pub attribute: Option<String>,
}

/// Longest alert comment, in characters.
pub const MAX_COMMENT: usize = 4000;

#[async_trait]
pub trait Alerts: Send + Sync {
    /// Creates or replaces a rule (same id). The organisation must exist.
    async fn upsert_rule(&self, rule: &RuleRecord) -> Result<RuleRecord>;
    async fn rule(&self, id: &str) -> Result<Option<RuleRecord>>;
    async fn list_rules(&self, filter: &RuleFilter) -> Result<Vec<RuleRecord>>;
    /// Deletes a rule; its alerts stay (history), the engine resolves the open ones.
    async fn delete_rule(&self, id: &str) -> Result<bool>;

    /// Records the engine's transitions in one transaction, with the engine's
    /// state if given; returns what actually changed (a replayed transition
    /// changes nothing).
    async fn record_transitions(&self, writes: &[AlertWrite], state: Option<&EngineState>) -> Result<Vec<AlertChange>>;
    async fn engine_state(&self) -> Result<Option<EngineState>>;

    async fn alert(&self, id: i64) -> Result<Option<AlertRecord>>;
    /// Unresolved first, then by severity (most severe first), then oldest first.
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Page<AlertRecord>>;
    /// History and comments, oldest first.
    async fn alert_events(&self, id: i64) -> Result<Vec<AlertEventRecord>>;
    /// Applies a person's change. `Ok(None)`: no such alert.
    async fn act_on_alert(
        &self,
        id: i64,
        action: &AlertAction,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<std::result::Result<AlertChange, ActionRefusal>>>;

    /// Stored observations in a time range, in time order (text values included).
    async fn scan_observations(&self, scan: &ObservationScan) -> Result<Vec<Observation>>;
}

/// Checks shared by both backends before an action is written: what the alert
/// becomes, and the history entry to add.
pub(crate) fn plan_action(
    alert: &AlertRecord,
    action: &AlertAction,
    actor: &str,
    at: DateTime<Utc>,
) -> std::result::Result<(AlertRecord, AlertEventKind, Option<String>), ActionRefusal> {
    let mut next = alert.clone();
    next.modified_at = at;
    let resolved = alert.status == AlertStatus::Resolved;
    let (kind, note) = match action {
        AlertAction::Comment { text } => (AlertEventKind::Commented, Some(text.clone())),
        _ if resolved => return Err(ActionRefusal::Resolved),
        AlertAction::Acknowledge => {
            if alert.status == AlertStatus::Open {
                next.status = AlertStatus::Acknowledged;
                next.acknowledged_at = Some(at);
                next.acknowledged_by = Some(actor.to_owned());
            }
            (AlertEventKind::Acknowledged, None)
        }
        AlertAction::Resolve { note } => {
            next.status = AlertStatus::Resolved;
            next.resolved_at = Some(at);
            next.resolved_by = Some(actor.to_owned());
            next.resolution = Some("manual".into());
            (AlertEventKind::Resolved, note.clone())
        }
        AlertAction::Assign { assignee } => {
            next.assignee.clone_from(assignee);
            (AlertEventKind::Assigned, assignee.clone())
        }
    };
    Ok((next, kind, note))
}

pub(crate) const ALERT_COLUMNS: &str = "id, rule_id, entity_id, entity_type, organisation_id, severity, status, \
     opened_at, since, value, message_fr, message_en, flapping, acknowledged_at, acknowledged_by, resolved_at, \
     resolved_by, resolution, assignee, modified_at";
pub(crate) const RULE_COLUMNS: &str = "id, organisation_id, definition, enabled, author, created_at, modified_at";
pub(crate) const EVENT_COLUMNS: &str = "id, alert_id, at, kind, actor, note, note_en";

/// An alert row before parsing (both backends read the same columns).
pub(crate) struct RawAlert {
    pub id: i64,
    pub rule: String,
    pub entity: String,
    pub entity_type: String,
    pub organisation: String,
    pub severity: String,
    pub status: String,
    pub opened_at: i64,
    pub since: i64,
    pub value: Option<f64>,
    pub message_fr: String,
    pub message_en: String,
    pub flapping: bool,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    pub modified_at: i64,
}

fn corrupt(what: impl std::fmt::Display) -> crate::StoreError {
    crate::StoreError::Corrupt(what.to_string())
}

impl RawAlert {
    pub fn parse(self) -> Result<AlertRecord> {
        use crate::rows::from_ms;
        let opt = |t: Option<i64>| t.map(from_ms).transpose();
        Ok(AlertRecord {
            id: self.id,
            rule: self.rule,
            entity: EntityId::parse(&self.entity).map_err(corrupt)?,
            entity_type: self.entity_type,
            organisation: OrganisationId::parse(&self.organisation).map_err(corrupt)?,
            severity: self.severity,
            status: AlertStatus::parse(&self.status).ok_or_else(|| corrupt(format!("alert status {}", self.status)))?,
            opened_at: from_ms(self.opened_at)?,
            since: from_ms(self.since)?,
            value: self.value,
            message_fr: self.message_fr,
            message_en: self.message_en,
            flapping: self.flapping,
            acknowledged_at: opt(self.acknowledged_at)?,
            acknowledged_by: self.acknowledged_by,
            resolved_at: opt(self.resolved_at)?,
            resolved_by: self.resolved_by,
            resolution: self.resolution,
            assignee: self.assignee,
            modified_at: from_ms(self.modified_at)?,
        })
    }
}

pub(crate) struct RawRule {
    pub id: String,
    pub organisation: String,
    pub definition: String,
    pub enabled: bool,
    pub author: Option<String>,
    pub created_at: i64,
    pub modified_at: i64,
}

impl RawRule {
    pub fn parse(self) -> Result<RuleRecord> {
        use crate::rows::from_ms;
        Ok(RuleRecord {
            id: self.id,
            organisation: OrganisationId::parse(&self.organisation).map_err(corrupt)?,
            definition: serde_json::from_str(&self.definition).map_err(corrupt)?,
            enabled: self.enabled,
            author: self.author,
            created_at: from_ms(self.created_at)?,
            modified_at: from_ms(self.modified_at)?,
        })
    }
}

pub(crate) struct RawEvent {
    pub id: i64,
    pub alert: i64,
    pub at: i64,
    pub kind: String,
    pub actor: Option<String>,
    pub note: Option<String>,
    pub note_en: Option<String>,
}

impl RawEvent {
    pub fn parse(self) -> Result<AlertEventRecord> {
        Ok(AlertEventRecord {
            id: self.id,
            alert: self.alert,
            at: crate::rows::from_ms(self.at)?,
            kind: AlertEventKind::parse(&self.kind).ok_or_else(|| corrupt(format!("alert event {}", self.kind)))?,
            actor: self.actor,
            note: self.note,
            note_en: self.note_en,
        })
    }
}

/// A stored observation row before parsing.
pub(crate) fn observation_from_row(
    entity: &str,
    attribute: &str,
    unit: Option<String>,
    t: i64,
    value: socle_domain::ObservedValue,
) -> Result<Observation> {
    Ok(Observation {
        entity: EntityId::parse(entity).map_err(corrupt)?,
        attribute: socle_domain::AttributeName::parse(attribute).map_err(corrupt)?,
        observed_at: crate::rows::from_ms(t)?,
        value,
        unit_code: unit.map(|u| socle_domain::UnitCode::parse(&u)).transpose().map_err(corrupt)?,
    })
}
