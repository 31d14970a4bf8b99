//! Preview for the rule editor: how often would this rule have fired over the last
//! 30 days? It replays the history through the very evaluation the engine runs, as
//! if the rule had existed since the start of the range, so the answer is exact
//! rather than estimated (ticks between observations are not needed: an evaluation
//! steps through its deadlines by itself).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use socle_domain::{EntityId, Observation, TimeRange};

use crate::evaluation::{Evaluation, Transition};
use crate::message::Message;
use crate::rule::{EntityRef, Rule};

/// Alerts listed in a preview; the counts stay exact beyond it. A rule that would
/// fire more than this over a month needs rework, not a longer list.
pub const MAX_LISTED: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewAlert {
    pub entity: EntityId,
    pub opened_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub value: Option<f64>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub flapping: bool,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Alerts that would have opened in the range.
    pub opened: usize,
    pub resolved: usize,
    /// Opened and still open at the end of the range.
    pub still_open: usize,
    /// Entities the rule targets among those given.
    pub entities: usize,
    /// Observations the rule read.
    pub observations: usize,
    /// The first alerts, by opening time.
    pub alerts: Vec<PreviewAlert>,
    pub truncated: bool,
}

/// Replays `history` (observations of `entities`, in any order) through `rule` over
/// `range`. Observations outside the range, of entities the rule does not target, or
/// of other attributes are left out.
pub fn preview(rule: &Rule, entities: &[EntityRef], mut history: Vec<Observation>, range: TimeRange) -> Preview {
    let targeted: HashMap<&EntityId, &EntityRef> =
        entities.iter().filter(|e| rule.applies_to(e)).map(|e| (&e.id, e)).collect();
    history.retain(|o| {
        range.from() <= o.observed_at
            && o.observed_at < range.to()
            && rule.kind().watches(&o.attribute)
            && targeted.contains_key(&o.entity)
    });
    history.sort_by_key(|o| o.observed_at);

    // Every targeted entity starts at the beginning of the range, so a device that
    // stayed silent all month shows up too.
    let mut evaluations: BTreeMap<&EntityId, Evaluation> =
        targeted.iter().map(|(id, e)| (*id, Evaluation::new(rule, e, range.from()))).collect();
    let mut tally = Tally::default();
    for obs in &history {
        if let Some(evaluation) = evaluations.get_mut(&obs.entity) {
            let transitions = evaluation.on_observation(rule, obs);
            tally.record(&obs.entity, transitions);
        }
    }
    for (id, evaluation) in &mut evaluations {
        let transitions = evaluation.on_tick(rule, range.to());
        tally.record(id, transitions);
    }

    let mut alerts = tally.alerts;
    alerts.sort_by(|a, b| (a.opened_at, &a.entity).cmp(&(b.opened_at, &b.entity)));
    let truncated = alerts.len() > MAX_LISTED;
    alerts.truncate(MAX_LISTED);
    Preview {
        opened: tally.opened,
        resolved: tally.resolved,
        still_open: evaluations.values().filter(|e| e.open_alert().is_some()).count(),
        entities: targeted.len(),
        observations: history.len(),
        alerts,
        truncated,
    }
}

#[derive(Default)]
struct Tally {
    opened: usize,
    resolved: usize,
    alerts: Vec<PreviewAlert>,
    /// Index in `alerts` of each entity's open alert.
    open: HashMap<EntityId, usize>,
}

impl Tally {
    fn record(&mut self, entity: &EntityId, transitions: Vec<Transition>) {
        for t in transitions {
            match t {
                Transition::Open { at, since, value, message } => {
                    self.opened += 1;
                    self.open.insert(entity.clone(), self.alerts.len());
                    self.alerts.push(PreviewAlert {
                        entity: entity.clone(),
                        opened_at: at,
                        since,
                        value,
                        resolved_at: None,
                        flapping: false,
                        message,
                    });
                }
                Transition::Flapping { .. } => {
                    if let Some(&i) = self.open.get(entity) {
                        self.alerts[i].flapping = true;
                    }
                }
                Transition::Resolve { at, .. } => {
                    self.resolved += 1;
                    if let Some(i) = self.open.remove(entity) {
                        self.alerts[i].resolved_at = Some(at);
                    }
                }
            }
        }
    }
}
