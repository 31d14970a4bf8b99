//! [`Alerts`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use socle_domain::{ObservedValue, Page};

use crate::alerts::observation_from_row;
use crate::alerts::{
    plan_action, severity_rank, ActionRefusal, AlertAction, AlertChange, AlertEventKind, AlertEventRecord, AlertFilter,
    AlertRecord, AlertWrite, Alerts, EngineState, ObservationScan, RawAlert, RawEvent, RawRule, RuleFilter, RuleRecord,
    ALERT_COLUMNS, EVENT_COLUMNS, RULE_COLUMNS,
};
use crate::rows::{alert_audience_condition, from_ms, ms};
use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};

fn raw_alert(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawAlert> {
    Ok(RawAlert {
        id: r.get(0)?,
        rule: r.get(1)?,
        entity: r.get(2)?,
        entity_type: r.get(3)?,
        organisation: r.get(4)?,
        severity: r.get(5)?,
        status: r.get(6)?,
        opened_at: r.get(7)?,
        since: r.get(8)?,
        value: r.get(9)?,
        message_fr: r.get(10)?,
        message_en: r.get(11)?,
        flapping: r.get(12)?,
        acknowledged_at: r.get(13)?,
        acknowledged_by: r.get(14)?,
        resolved_at: r.get(15)?,
        resolved_by: r.get(16)?,
        resolution: r.get(17)?,
        assignee: r.get(18)?,
        modified_at: r.get(19)?,
    })
}

fn raw_rule(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRule> {
    Ok(RawRule {
        id: r.get(0)?,
        organisation: r.get(1)?,
        definition: r.get(2)?,
        enabled: r.get(3)?,
        author: r.get(4)?,
        created_at: r.get(5)?,
        modified_at: r.get(6)?,
    })
}

fn raw_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        id: r.get(0)?,
        alert: r.get(1)?,
        at: r.get(2)?,
        kind: r.get(3)?,
        actor: r.get(4)?,
        note: r.get(5)?,
        note_en: r.get(6)?,
    })
}

fn one_alert(c: &Connection, id: i64) -> Result<Option<AlertRecord>> {
    c.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?
        .query_row([id], raw_alert)
        .optional()?
        .map(RawAlert::parse)
        .transpose()
}

fn add_event(
    c: &Connection,
    alert: i64,
    at: DateTime<Utc>,
    kind: AlertEventKind,
    actor: Option<&str>,
    note: Option<&str>,
    note_en: Option<&str>,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO alert_events (alert_id, at, kind, actor, note, note_en) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![alert, ms(at), kind.as_str(), actor, note, note_en])?;
    Ok(())
}

/// The alert a resolution or flapping notice at `at` is about: the latest of the
/// (rule, entity) opened at or before it.
fn target(c: &Connection, rule: &str, entity: &str, at: DateTime<Utc>) -> Result<Option<i64>> {
    Ok(c.prepare_cached(
        "SELECT id FROM alerts WHERE rule_id = ?1 AND entity_id = ?2 AND opened_at <= ?3
         ORDER BY opened_at DESC LIMIT 1",
    )?
    .query_row(params![rule, entity, ms(at)], |r| r.get(0))
    .optional()?)
}

fn record(c: &Connection, w: &AlertWrite, now: i64) -> Result<Option<(i64, AlertEventKind)>> {
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
            let id: Option<i64> = c
                .prepare_cached(
                    "INSERT INTO alerts (rule_id, entity_id, entity_type, organisation_id, severity, severity_rank,
                         status, opened_at, since, value, message_fr, message_en, modified_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT DO NOTHING RETURNING id",
                )?
                .query_row(
                    params![
                        rule,
                        entity.as_str(),
                        entity_type,
                        organisation.as_str(),
                        severity,
                        severity_rank(severity),
                        ms(*at),
                        ms(*since),
                        value,
                        message_fr,
                        message_en,
                        now
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            add_event(c, id, *at, AlertEventKind::Opened, None, Some(message_fr), Some(message_en))?;
            Ok(Some((id, AlertEventKind::Opened)))
        }
        AlertWrite::Flapping { rule, entity, at, message_fr, message_en } => {
            let Some(id) = target(c, rule, entity.as_str(), *at)? else { return Ok(None) };
            let n = c
                .prepare_cached(
                    "UPDATE alerts SET flapping = 1, modified_at = ?2
                     WHERE id = ?1 AND resolved_at IS NULL AND flapping = 0",
                )?
                .execute(params![id, now])?;
            if n == 0 {
                return Ok(None);
            }
            add_event(c, id, *at, AlertEventKind::Flapping, None, Some(message_fr), Some(message_en))?;
            Ok(Some((id, AlertEventKind::Flapping)))
        }
        AlertWrite::Resolve { rule, entity, at, reason, message_fr, message_en } => {
            let Some(id) = target(c, rule, entity.as_str(), *at)? else { return Ok(None) };
            let n = c
                .prepare_cached(
                    "UPDATE alerts SET status = 'resolved', resolved_at = ?2, resolution = ?3, modified_at = ?4
                     WHERE id = ?1 AND resolved_at IS NULL",
                )?
                .execute(params![id, ms(*at), reason, now])?;
            if n == 0 {
                return Ok(None);
            }
            add_event(c, id, *at, AlertEventKind::Resolved, None, Some(message_fr), Some(message_en))?;
            Ok(Some((id, AlertEventKind::Resolved)))
        }
    }
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[async_trait]
impl Alerts for SqliteStore {
    async fn upsert_rule(&self, rule: &RuleRecord) -> Result<RuleRecord> {
        let rule = rule.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM organisations WHERE id = ?1)",
                [rule.organisation.as_str()],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(StoreError::UnknownOrganisation(rule.organisation.to_string()));
            }
            let raw = tx.query_row(
                &format!(
                    "INSERT INTO alert_rules ({RULE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET organisation_id = excluded.organisation_id,
                         definition = excluded.definition, enabled = excluded.enabled, author = excluded.author,
                         modified_at = excluded.modified_at
                     RETURNING {RULE_COLUMNS}"
                ),
                params![
                    rule.id,
                    rule.organisation.as_str(),
                    rule.definition.to_string(),
                    rule.enabled,
                    rule.author,
                    ms(rule.created_at),
                    ms(rule.modified_at)
                ],
                raw_rule,
            )?;
            tx.commit()?;
            raw.parse()
        })
        .await
    }

    async fn rule(&self, id: &str) -> Result<Option<RuleRecord>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?1"))?
                .query_row([id], raw_rule)
                .optional()?
                .map(RawRule::parse)
                .transpose()
        })
        .await
    }

    async fn list_rules(&self, filter: &RuleFilter) -> Result<Vec<RuleRecord>> {
        let filter = filter.clone();
        self.read(move |c| {
            let mut conds = Vec::new();
            let mut args: Vec<String> = Vec::new();
            if let Some(orgs) = &filter.organisations {
                conds.push(format!("organisation_id IN ({})", marks(orgs.len())));
                args.extend(orgs.iter().map(|o| o.to_string()));
            }
            if filter.enabled_only {
                conds.push("enabled = 1".into());
            }
            let w = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
            let rows = c
                .prepare(&format!("SELECT {RULE_COLUMNS} FROM alert_rules{w} ORDER BY organisation_id, id"))?
                .query_map(params_from_iter(args.iter()), raw_rule)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(RawRule::parse).collect()
        })
        .await
    }

    async fn delete_rule(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM alert_rules WHERE id = ?1", [id])? == 1)).await
    }

    async fn record_transitions(&self, writes: &[AlertWrite], state: Option<&EngineState>) -> Result<Vec<AlertChange>> {
        if writes.is_empty() && state.is_none() {
            return Ok(Vec::new());
        }
        let (writes, state) = (writes.to_vec(), state.cloned());
        self.write(move |c| {
            let now = ms(Utc::now());
            let tx = c.transaction()?;
            let mut changed = Vec::new();
            for w in &writes {
                if let Some(change) = record(&tx, w, now)? {
                    changed.push(change);
                }
            }
            if let Some(s) = &state {
                tx.prepare_cached(
                    "INSERT INTO alert_engine (id, snapshot, watermark, saved_at) VALUES (1, ?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, watermark = excluded.watermark,
                         saved_at = excluded.saved_at",
                )?
                .execute(params![s.snapshot, ms(s.watermark), ms(s.saved_at)])?;
            }
            let mut out = Vec::with_capacity(changed.len());
            for (id, kind) in changed {
                let alert = one_alert(&tx, id)?.ok_or_else(|| StoreError::Corrupt(format!("alert {id} vanished")))?;
                out.push(AlertChange { alert, kind });
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn engine_state(&self) -> Result<Option<EngineState>> {
        self.read(|c| {
            let row: Option<(String, i64, i64)> = c
                .query_row("SELECT snapshot, watermark, saved_at FROM alert_engine WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            row.map(|(snapshot, w, s)| Ok(EngineState { snapshot, watermark: from_ms(w)?, saved_at: from_ms(s)? }))
                .transpose()
        })
        .await
    }

    async fn alert(&self, id: i64) -> Result<Option<AlertRecord>> {
        self.read(move |c| one_alert(c, id)).await
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Page<AlertRecord>> {
        let filter = filter.clone();
        self.read(move |c| {
            let mut conds = Vec::new();
            let mut args: Vec<String> = Vec::new();
            if let Some(orgs) = &filter.organisations {
                conds.push(format!("organisation_id IN ({})", marks(orgs.len())));
                args.extend(orgs.iter().map(|o| o.to_string()));
            }
            if let Some(statuses) = &filter.statuses {
                conds.push(format!("status IN ({})", marks(statuses.len())));
                args.extend(statuses.iter().map(|s| s.as_str().to_owned()));
            }
            if let Some(severities) = &filter.severities {
                conds.push(format!("severity IN ({})", marks(severities.len())));
                args.extend(severities.iter().cloned());
            }
            if let Some(types) = &filter.entity_types {
                conds.push(format!("entity_type IN ({})", marks(types.len())));
                args.extend(types.iter().cloned());
            }
            for (column, value) in
                [("entity_id", filter.entity.as_ref().map(|e| e.to_string())), ("rule_id", filter.rule.clone())]
            {
                if let Some(v) = value {
                    conds.push(format!("{column} = ?"));
                    args.push(v);
                }
            }
            if let Some((cond, values)) =
                filter.audience.as_ref().and_then(|a| alert_audience_condition(a, &mut || "?".to_owned()))
            {
                conds.push(cond);
                args.extend(values);
            }
            let w = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
            let total: i64 = c
                .prepare(&format!("SELECT count(*) FROM alerts{w}"))?
                .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
            let mut page: Vec<rusqlite::types::Value> = args.into_iter().map(Into::into).collect();
            page.push(i64::from(filter.limit).into());
            page.push(i64::try_from(filter.offset).unwrap_or(i64::MAX).into());
            let rows = c
                .prepare(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts{w}
                     ORDER BY resolved_at IS NOT NULL, severity_rank DESC, opened_at, id LIMIT ? OFFSET ?"
                ))?
                .query_map(params_from_iter(page.iter()), raw_alert)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let items = rows.into_iter().map(RawAlert::parse).collect::<Result<Vec<_>>>()?;
            Ok(Page { total: u64::try_from(total).unwrap_or(0), items })
        })
        .await
    }

    async fn alert_events(&self, id: i64) -> Result<Vec<AlertEventRecord>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM alert_events WHERE alert_id = ?1 ORDER BY id"))?
                .query_map([id], raw_event)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(RawEvent::parse).collect()
        })
        .await
    }

    async fn act_on_alert(
        &self,
        id: i64,
        action: &AlertAction,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<std::result::Result<AlertChange, ActionRefusal>>> {
        let (action, actor) = (action.clone(), actor.to_owned());
        self.write(move |c| {
            let tx = c.transaction()?;
            let Some(alert) = one_alert(&tx, id)? else { return Ok(None) };
            let (next, kind, note) = match plan_action(&alert, &action, &actor, at) {
                Ok(plan) => plan,
                Err(refusal) => return Ok(Some(Err(refusal))),
            };
            tx.prepare_cached(
                "UPDATE alerts SET status = ?2, acknowledged_at = ?3, acknowledged_by = ?4, resolved_at = ?5,
                     resolved_by = ?6, resolution = ?7, assignee = ?8, modified_at = ?9
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                next.status.as_str(),
                next.acknowledged_at.map(ms),
                next.acknowledged_by,
                next.resolved_at.map(ms),
                next.resolved_by,
                next.resolution,
                next.assignee,
                ms(next.modified_at)
            ])?;
            add_event(&tx, id, at, kind, Some(&actor), note.as_deref(), None)?;
            tx.commit()?;
            Ok(Some(Ok(AlertChange { alert: next, kind })))
        })
        .await
    }

    async fn scan_observations(&self, scan: &ObservationScan) -> Result<Vec<socle_domain::Observation>> {
        let scan = scan.clone();
        self.read(move |c| {
            let mut conds = vec!["o.t > ?".to_owned(), "o.t <= ?".to_owned()];
            let mut args: Vec<rusqlite::types::Value> = vec![ms(scan.from).into(), ms(scan.to).into()];
            if let Some(o) = &scan.organisation {
                conds.push("e.organisation_id = ?".into());
                args.push(o.to_string().into());
            }
            if let Some(t) = &scan.entity_type {
                conds.push("e.type = ?".into());
                args.push(t.clone().into());
            }
            if let Some(ids) = &scan.entities {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                conds.push(format!("e.id IN ({})", marks(ids.len())));
                args.extend(ids.iter().map(|i| i.to_string().into()));
            }
            if let Some(a) = &scan.attribute {
                conds.push("s.attribute = ?".into());
                args.push(a.clone().into());
            }
            let w = conds.join(" AND ");
            let mut out = Vec::new();
            for table in ["observations", "observations_text"] {
                let sql = format!(
                    "SELECT e.id, s.attribute, s.unit_code, o.t, o.value
                     FROM series s JOIN entities e ON e.seq = s.entity_seq JOIN {table} o ON o.series_id = s.id
                     WHERE {w}"
                );
                let mut stmt = c.prepare(&sql)?;
                let mut rows = stmt.query(params_from_iter(args.iter()))?;
                while let Some(r) = rows.next()? {
                    let value = if table == "observations" {
                        ObservedValue::number(r.get(4)?).map_err(|e| StoreError::Corrupt(e.to_string()))?
                    } else {
                        ObservedValue::Text(r.get(4)?)
                    };
                    let entity: String = r.get(0)?;
                    let attribute: String = r.get(1)?;
                    out.push(observation_from_row(&entity, &attribute, r.get(2)?, r.get(3)?, value)?);
                }
            }
            out.sort_by_key(|o| o.observed_at);
            Ok(out)
        })
        .await
    }
}
