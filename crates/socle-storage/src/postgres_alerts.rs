//! [`Alerts`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use socle_domain::{ObservedValue, Page};
use tokio_postgres::Row;

use crate::alerts::{
    observation_from_row, plan_action, severity_rank, ActionRefusal, AlertAction, AlertChange, AlertEventKind,
    AlertEventRecord, AlertFilter, AlertRecord, AlertWrite, Alerts, EngineState, ObservationScan, RawAlert, RawEvent,
    RawRule, RuleFilter, RuleRecord, ALERT_COLUMNS, EVENT_COLUMNS, RULE_COLUMNS,
};
use crate::postgres::{Conditions, PostgresStore};
use crate::rows::{alert_audience_condition, from_ms, ms};
use crate::{Result, StoreError};

fn raw_alert(r: &Row) -> Result<RawAlert> {
    Ok(RawAlert {
        id: r.try_get(0)?,
        rule: r.try_get(1)?,
        entity: r.try_get(2)?,
        entity_type: r.try_get(3)?,
        organisation: r.try_get(4)?,
        severity: r.try_get(5)?,
        status: r.try_get(6)?,
        opened_at: r.try_get(7)?,
        since: r.try_get(8)?,
        value: r.try_get(9)?,
        message_fr: r.try_get(10)?,
        message_en: r.try_get(11)?,
        flapping: r.try_get(12)?,
        acknowledged_at: r.try_get(13)?,
        acknowledged_by: r.try_get(14)?,
        resolved_at: r.try_get(15)?,
        resolved_by: r.try_get(16)?,
        resolution: r.try_get(17)?,
        assignee: r.try_get(18)?,
        modified_at: r.try_get(19)?,
    })
}

fn raw_rule(r: &Row) -> Result<RawRule> {
    Ok(RawRule {
        id: r.try_get(0)?,
        organisation: r.try_get(1)?,
        definition: r.try_get(2)?,
        enabled: r.try_get(3)?,
        author: r.try_get(4)?,
        created_at: r.try_get(5)?,
        modified_at: r.try_get(6)?,
    })
}

fn raw_event(r: &Row) -> Result<RawEvent> {
    Ok(RawEvent {
        id: r.try_get(0)?,
        alert: r.try_get(1)?,
        at: r.try_get(2)?,
        kind: r.try_get(3)?,
        actor: r.try_get(4)?,
        note: r.try_get(5)?,
        note_en: r.try_get(6)?,
    })
}

async fn one_alert(c: &impl GenericClient, id: i64) -> Result<Option<AlertRecord>> {
    c.query_opt(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"), &[&id])
        .await?
        .map(|r| raw_alert(&r)?.parse())
        .transpose()
}

async fn add_event(
    c: &impl GenericClient,
    alert: i64,
    at: DateTime<Utc>,
    kind: AlertEventKind,
    actor: Option<&str>,
    note: Option<&str>,
    note_en: Option<&str>,
) -> Result<()> {
    c.execute(
        "INSERT INTO alert_events (alert_id, at, kind, actor, note, note_en) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&alert, &ms(at), &kind.as_str(), &actor, &note, &note_en],
    )
    .await?;
    Ok(())
}

/// The alert a resolution or flapping notice at `at` is about: the latest of the
/// (rule, entity) opened at or before it.
async fn target(c: &impl GenericClient, rule: &str, entity: &str, at: DateTime<Utc>) -> Result<Option<i64>> {
    let row = c
        .query_opt(
            "SELECT id FROM alerts WHERE rule_id = $1 AND entity_id = $2 AND opened_at <= $3
             ORDER BY opened_at DESC LIMIT 1",
            &[&rule, &entity, &ms(at)],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

async fn record(c: &impl GenericClient, w: &AlertWrite, now: i64) -> Result<Option<(i64, AlertEventKind)>> {
    match w {
        AlertWrite::Open {
            rule,
            entity,
            entity_type,
            organisation,
            severity,
            at,
            since,
            value,
            message_fr,
            message_en,
        } => {
            let row = c
                .query_opt(
                    "INSERT INTO alerts (rule_id, entity_id, entity_type, organisation_id, severity, severity_rank,
                         status, opened_at, since, value, message_fr, message_en, modified_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, $12)
                     ON CONFLICT DO NOTHING RETURNING id",
                    &[
                        rule,
                        &entity.as_str(),
                        entity_type,
                        &organisation.as_str(),
                        severity,
                        &severity_rank(severity),
                        &ms(*at),
                        &ms(*since),
                        value,
                        message_fr,
                        message_en,
                        &now,
                    ],
                )
                .await?;
            let Some(row) = row else { return Ok(None) };
            let id: i64 = row.try_get(0)?;
            add_event(c, id, *at, AlertEventKind::Opened, None, Some(message_fr), Some(message_en)).await?;
            Ok(Some((id, AlertEventKind::Opened)))
        }
        AlertWrite::Flapping { rule, entity, at, message_fr, message_en } => {
            let Some(id) = target(c, rule, entity.as_str(), *at).await? else { return Ok(None) };
            let n = c
                .execute(
                    "UPDATE alerts SET flapping = TRUE, modified_at = $2
                     WHERE id = $1 AND resolved_at IS NULL AND NOT flapping",
                    &[&id, &now],
                )
                .await?;
            if n == 0 {
                return Ok(None);
            }
            add_event(c, id, *at, AlertEventKind::Flapping, None, Some(message_fr), Some(message_en)).await?;
            Ok(Some((id, AlertEventKind::Flapping)))
        }
        AlertWrite::Resolve { rule, entity, at, reason, message_fr, message_en } => {
            let Some(id) = target(c, rule, entity.as_str(), *at).await? else { return Ok(None) };
            let n = c
                .execute(
                    "UPDATE alerts SET status = 'resolved', resolved_at = $2, resolution = $3, modified_at = $4
                     WHERE id = $1 AND resolved_at IS NULL",
                    &[&id, &ms(*at), reason, &now],
                )
                .await?;
            if n == 0 {
                return Ok(None);
            }
            add_event(c, id, *at, AlertEventKind::Resolved, None, Some(message_fr), Some(message_en)).await?;
            Ok(Some((id, AlertEventKind::Resolved)))
        }
    }
}

#[async_trait]
impl Alerts for PostgresStore {
    async fn upsert_rule(&self, rule: &RuleRecord) -> Result<RuleRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let exists: bool = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM organisations WHERE id = $1)", &[&rule.organisation.as_str()])
            .await?
            .try_get(0)?;
        if !exists {
            return Err(StoreError::UnknownOrganisation(rule.organisation.to_string()));
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO alert_rules ({RULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (id) DO UPDATE SET organisation_id = excluded.organisation_id,
                         definition = excluded.definition, enabled = excluded.enabled, author = excluded.author,
                         modified_at = excluded.modified_at
                     RETURNING {RULE_COLUMNS}"
                ),
                &[
                    &rule.id,
                    &rule.organisation.as_str(),
                    &rule.definition.to_string(),
                    &rule.enabled,
                    &rule.author,
                    &ms(rule.created_at),
                    &ms(rule.modified_at),
                ],
            )
            .await?;
        tx.commit().await?;
        raw_rule(&row)?.parse()
    }

    async fn rule(&self, id: &str) -> Result<Option<RuleRecord>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"), &[&id])
            .await?
            .map(|r| raw_rule(&r)?.parse())
            .transpose()
    }

    async fn list_rules(&self, filter: &RuleFilter) -> Result<Vec<RuleRecord>> {
        let client = self.client().await?;
        let mut w = Conditions::default();
        if let Some(orgs) = &filter.organisations {
            let list: Vec<String> = orgs.iter().map(|o| o.to_string()).collect();
            w.push(|n| format!("organisation_id = ANY(${n})"), Box::new(list));
        }
        if filter.enabled_only {
            w.require("enabled");
        }
        let rows = client
            .query(
                &format!("SELECT {RULE_COLUMNS} FROM alert_rules{} ORDER BY organisation_id, id", w.clause()),
                &w.params(),
            )
            .await?;
        rows.iter().map(|r| raw_rule(r)?.parse()).collect()
    }

    async fn delete_rule(&self, id: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM alert_rules WHERE id = $1", &[&id]).await? == 1)
    }

    async fn record_transitions(&self, writes: &[AlertWrite], state: Option<&EngineState>) -> Result<Vec<AlertChange>> {
        if writes.is_empty() && state.is_none() {
            return Ok(Vec::new());
        }
        let now = ms(Utc::now());
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut changed = Vec::new();
        for w in writes {
            if let Some(change) = record(&tx, w, now).await? {
                changed.push(change);
            }
        }
        if let Some(s) = state {
            tx.execute(
                "INSERT INTO alert_engine (id, snapshot, watermark, saved_at) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, watermark = excluded.watermark,
                     saved_at = excluded.saved_at",
                &[&s.snapshot, &ms(s.watermark), &ms(s.saved_at)],
            )
            .await?;
        }
        let mut out = Vec::with_capacity(changed.len());
        for (id, kind) in changed {
            let alert = one_alert(&tx, id).await?.ok_or_else(|| StoreError::Corrupt(format!("alert {id} vanished")))?;
            out.push(AlertChange { alert, kind });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn engine_state(&self) -> Result<Option<EngineState>> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT snapshot, watermark, saved_at FROM alert_engine WHERE id = 1", &[]).await?;
        row.map(|r| {
            Ok(EngineState {
                snapshot: r.try_get(0)?,
                watermark: from_ms(r.try_get(1)?)?,
                saved_at: from_ms(r.try_get(2)?)?,
            })
        })
        .transpose()
    }

    async fn alert(&self, id: i64) -> Result<Option<AlertRecord>> {
        let client = self.client().await?;
        one_alert(&client, id).await
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Page<AlertRecord>> {
        let client = self.client().await?;
        let mut w = Conditions::default();
        w.orgs(&filter.organisations);
        if let Some(statuses) = &filter.statuses {
            let list: Vec<String> = statuses.iter().map(|s| s.as_str().to_owned()).collect();
            w.push(|n| format!("status = ANY(${n})"), Box::new(list));
        }
        if let Some(severities) = &filter.severities {
            w.push(|n| format!("severity = ANY(${n})"), Box::new(severities.clone()));
        }
        if let Some(types) = &filter.entity_types {
            w.push(|n| format!("entity_type = ANY(${n})"), Box::new(types.clone()));
        }
        for (column, value) in
            [("entity_id", filter.entity.as_ref().map(|e| e.to_string())), ("rule_id", filter.rule.clone())]
        {
            if let Some(v) = value {
                w.push(|n| format!("{column} = ${n}"), Box::new(v));
            }
        }
        if let Some(audience) = &filter.audience {
            w.push_numbered(|ph| alert_audience_condition(audience, ph));
        }
        let (total, rows) = w
            .select_page(
                &client,
                "alerts",
                ALERT_COLUMNS,
                "resolved_at IS NOT NULL, severity_rank DESC, opened_at, id",
                (filter.limit, filter.offset),
            )
            .await?;
        let items = rows.iter().map(|r| raw_alert(r)?.parse()).collect::<Result<Vec<_>>>()?;
        Ok(Page { total, items })
    }

    async fn alert_events(&self, id: i64) -> Result<Vec<AlertEventRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {EVENT_COLUMNS} FROM alert_events WHERE alert_id = $1 ORDER BY id"), &[&id])
            .await?;
        rows.iter().map(|r| raw_event(r)?.parse()).collect()
    }

    async fn act_on_alert(
        &self,
        id: i64,
        action: &AlertAction,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<std::result::Result<AlertChange, ActionRefusal>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) =
            tx.query_opt(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1 FOR UPDATE"), &[&id]).await?
        else {
            return Ok(None);
        };
        let alert = raw_alert(&row)?.parse()?;
        let (next, kind, note) = match plan_action(&alert, action, actor, at) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(Some(Err(refusal))),
        };
        tx.execute(
            "UPDATE alerts SET status = $2, acknowledged_at = $3, acknowledged_by = $4, resolved_at = $5,
                 resolved_by = $6, resolution = $7, assignee = $8, modified_at = $9
             WHERE id = $1",
            &[
                &id,
                &next.status.as_str(),
                &next.acknowledged_at.map(ms),
                &next.acknowledged_by,
                &next.resolved_at.map(ms),
                &next.resolved_by,
                &next.resolution,
                &next.assignee,
                &ms(next.modified_at),
            ],
        )
        .await?;
        add_event(&tx, id, at, kind, Some(actor), note.as_deref(), None).await?;
        tx.commit().await?;
        Ok(Some(Ok(AlertChange { alert: next, kind })))
    }

    async fn scan_observations(&self, scan: &ObservationScan) -> Result<Vec<socle_domain::Observation>> {
        let client = self.client().await?;
        let mut w = Conditions::default();
        w.push(|n| format!("o.t > ${n}"), Box::new(ms(scan.from)));
        w.push(|n| format!("o.t <= ${n}"), Box::new(ms(scan.to)));
        if let Some(o) = &scan.organisation {
            w.push(|n| format!("e.organisation_id = ${n}"), Box::new(o.to_string()));
        }
        if let Some(t) = &scan.entity_type {
            w.push(|n| format!("e.type = ${n}"), Box::new(t.clone()));
        }
        if let Some(ids) = &scan.entities {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            w.push(|n| format!("e.id = ANY(${n})"), Box::new(list));
        }
        if let Some(a) = &scan.attribute {
            w.push(|n| format!("s.attribute = ${n}"), Box::new(a.clone()));
        }
        let clause = w.clause();
        let mut out = Vec::new();
        for (table, numeric) in [("observations", true), ("observations_text", false)] {
            let sql = format!(
                "SELECT e.id, s.attribute, s.unit_code, o.t, o.value
                 FROM series s JOIN entities e ON e.seq = s.entity_seq JOIN {table} o ON o.series_id = s.id{clause}"
            );
            for r in client.query(&sql, &w.params()).await? {
                let value = if numeric {
                    ObservedValue::number(r.try_get(4)?).map_err(|e| StoreError::Corrupt(e.to_string()))?
                } else {
                    ObservedValue::Text(r.try_get(4)?)
                };
                let entity: String = r.try_get(0)?;
                let attribute: String = r.try_get(1)?;
                out.push(observation_from_row(&entity, &attribute, r.try_get(2)?, r.try_get(3)?, value)?);
            }
        }
        out.sort_by_key(|o| o.observed_at);
        Ok(out)
    }
}
