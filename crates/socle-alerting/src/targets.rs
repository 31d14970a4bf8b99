//! Which entities a rule watches, and the rule editor's preview.

use chrono::{DateTime, TimeDelta, Utc};
use socle_domain::{Audience, EntityFilter, TimeRange};
use socle_rules::{EntityRef, Preview, Rule, Target};
use socle_storage::{DynStore, ObservationScan, RuleRecord};

use crate::AlertingError;

/// The preview replays this many days of stored history.
pub const PREVIEW_DAYS: i64 = 30;

/// Entities fetched per page when a rule targets a type.
const PAGE: u32 = 1000;

/// A stored rule as the engine's rule (its definition is validated again: a rule
/// stored by an older Socle may no longer pass).
pub fn rule_from_record(record: &RuleRecord) -> Result<Rule, AlertingError> {
    serde_json::from_value(record.definition.clone())
        .map_err(|source| AlertingError::Rule { id: record.id.clone(), source })
}

/// The entities `rule` watches today: its entity, its group, or every entity of its
/// type, always within the rule's organisation (an entity of another organisation
/// named in a group is left out, as the engine would).
pub async fn targets(store: &DynStore, rule: &Rule) -> Result<Vec<EntityRef>, AlertingError> {
    let mut out = Vec::new();
    match rule.target() {
        Target::Entity(id) => out.extend(store.entity(id).await?.map(|e| EntityRef::from(&e))),
        Target::Group(ids) => {
            for id in ids {
                out.extend(store.entity(id).await?.map(|e| EntityRef::from(&e)));
            }
        }
        Target::Type(ty) => {
            let mut offset = 0;
            loop {
                let filter = EntityFilter {
                    audience: Audience::System,
                    organisations: Some(vec![rule.organisation().clone()]),
                    entity_type: Some(ty.clone()),
                    limit: PAGE,
                    offset,
                    ..Default::default()
                };
                let page = store.query_entities(&filter).await?;
                let n = page.items.len();
                out.extend(page.items.iter().map(EntityRef::from));
                offset += n as u64;
                if n < PAGE as usize || offset >= page.total {
                    break;
                }
            }
        }
    }
    out.retain(|e| rule.applies_to(e));
    Ok(out)
}

/// How often `rule` would have fired over the last [`PREVIEW_DAYS`] days of stored
/// history, replayed through the engine's own evaluation.
pub async fn preview(store: &DynStore, rule: &Rule, now: DateTime<Utc>) -> Result<Preview, AlertingError> {
    let entities = targets(store, rule).await?;
    let from = now - TimeDelta::days(PREVIEW_DAYS);
    let range = TimeRange::new(from, now)?;
    let scan = ObservationScan {
        from,
        to: now,
        organisation: Some(rule.organisation().clone()),
        entity_type: None,
        entities: Some(entities.iter().map(|e| e.id.clone()).collect()),
        attribute: rule.kind().attribute().map(|a| a.to_string()),
    };
    let history = store.scan_observations(&scan).await?;
    Ok(socle_rules::preview(rule, &entities, history, range))
}
