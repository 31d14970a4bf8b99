//! The engine: every active rule, and the evaluations of each (rule, entity).
//!
//! Two indexes keep an observation away from the rules that do not watch it:
//!
//! - rules by (entity, attribute) and (type, attribute): attribute → entity id →
//!   rules on that entity or on a group holding it, and attribute → entity type →
//!   rules on that type (silence rules on "any attribute" sit in their own pair). It
//!   is consulted when an (entity, attribute) shows up for the first time, and again
//!   after a rule change;
//! - evaluations by entity then attribute: what that consultation found, kept next
//!   to the evaluations' state.
//!
//! So an observation costs one hash lookup of its entity, a scan of that entity's
//! few attributes, and the evaluations of the rules that really watch it, whatever
//! the number of rules on other entities and types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::{AttributeName, EntityId, EntityType, Observation};

use crate::evaluation::{Evaluation, OpenAlert, ResolveReason, Transition};
use crate::message::Message;
use crate::rule::{EntityRef, Rule, RuleId, RuleKind, Severity, Target};

/// A transition of the alert of one (rule, entity), with what the alert store and
/// the notifier need to route it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub rule: RuleId,
    pub entity: EntityId,
    pub severity: Severity,
    pub transition: Transition,
}

/// The saved state of an engine (rules are stored apart, as rules).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub evaluations: Vec<SavedEvaluation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedEvaluation {
    pub rule: RuleId,
    pub evaluation: Evaluation,
}

/// Rules on entities (by id) and on types, for one attribute key.
#[derive(Debug, Default)]
struct Keys {
    entities: HashMap<EntityId, Vec<usize>>,
    types: HashMap<EntityType, Vec<usize>>,
}

impl Keys {
    fn add(&mut self, target: &Target, slot: usize) {
        match target {
            Target::Entity(id) => self.entities.entry(id.clone()).or_default().push(slot),
            Target::Group(ids) => {
                for id in ids {
                    self.entities.entry(id.clone()).or_default().push(slot);
                }
            }
            Target::Type(t) => self.types.entry(t.clone()).or_default().push(slot),
        }
    }

    fn matching<'a>(&'a self, entity: &EntityRef) -> impl Iterator<Item = usize> + 'a {
        let by_id = self.entities.get(&entity.id).map(Vec::as_slice).unwrap_or_default();
        let by_type = self.types.get(&entity.entity_type).map(Vec::as_slice).unwrap_or_default();
        by_id.iter().chain(by_type).copied()
    }
}

#[derive(Debug, Default)]
struct Index {
    by_attribute: HashMap<AttributeName, Keys>,
    any_attribute: Keys,
}

impl Index {
    fn keys(&self, attribute: Option<&AttributeName>) -> Option<&Keys> {
        match attribute {
            Some(a) => self.by_attribute.get(a),
            None => Some(&self.any_attribute),
        }
    }
}

/// The evaluations of one entity for one attribute key (`None`: rules on any attribute).
#[derive(Debug)]
struct Group {
    attribute: Option<AttributeName>,
    /// Engine generation at which the rule index was last consulted for this group.
    attached: Option<u64>,
    evaluations: Vec<(usize, Evaluation)>,
}

#[derive(Debug)]
struct Watched {
    place: String,
    groups: Vec<Group>,
}

impl Watched {
    fn group(&mut self, attribute: Option<&AttributeName>) -> &mut Group {
        let pos = match self.groups.iter().position(|g| g.attribute.as_ref() == attribute) {
            Some(pos) => pos,
            None => {
                self.groups.push(Group { attribute: attribute.cloned(), attached: None, evaluations: Vec::new() });
                self.groups.len() - 1
            }
        };
        &mut self.groups[pos]
    }

    fn evaluations(&self) -> impl Iterator<Item = &(usize, Evaluation)> {
        self.groups.iter().flat_map(|g| &g.evaluations)
    }

    /// Takes out the evaluations of one rule (at most one per entity, but rule edits
    /// may have left it under another attribute).
    fn take_slot(&mut self, slot: usize) -> Vec<Evaluation> {
        let mut taken = Vec::new();
        for g in &mut self.groups {
            let (mine, others): (Vec<_>, Vec<_>) =
                std::mem::take(&mut g.evaluations).into_iter().partition(|(s, _)| *s == slot);
            g.evaluations = others;
            taken.extend(mine.into_iter().map(|(_, e)| e));
        }
        taken
    }
}

/// Rules and their evaluations. Pure: time comes in with each call.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<Rule>,
    index: Index,
    entities: HashMap<EntityId, Watched>,
    /// Bumped by every rule change, so each (entity, attribute) consults the rule
    /// index again at its next observation.
    generation: u64,
}

impl Engine {
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut engine = Self::default();
        for rule in rules {
            // A later definition of the same id wins, as an upsert would.
            match engine.rules.iter_mut().find(|r| r.id() == rule.id()) {
                Some(existing) => *existing = rule,
                None => engine.rules.push(rule),
            }
        }
        engine.reindex();
        engine
    }

    /// Rebuilds an engine from its rules and a snapshot. Evaluations of rules that no
    /// longer exist or no longer target their entity are dropped, and their open
    /// alerts come back as `Withdrawn` resolutions for the alert store; evaluations of
    /// edited conditions restart their detector at their next observation or tick.
    pub fn restore(
        rules: impl IntoIterator<Item = Rule>,
        snapshot: Snapshot,
        now: DateTime<Utc>,
    ) -> (Self, Vec<Event>) {
        let mut engine = Self::new(rules);
        let mut events = Vec::new();
        for saved in snapshot.evaluations {
            let mut evaluation = saved.evaluation;
            match engine.rules.iter().position(|r| *r.id() == saved.rule) {
                Some(slot) if evaluation.is_targeted_by(&engine.rules[slot]) => {
                    let rule = &engine.rules[slot];
                    let watched = engine
                        .entities
                        .entry(evaluation.entity().clone())
                        .or_insert_with(|| Watched { place: evaluation.place().to_owned(), groups: Vec::new() });
                    watched.group(rule.kind().attribute()).evaluations.push((slot, evaluation));
                }
                Some(slot) => push_withdrawn(&mut events, &engine.rules[slot], &mut evaluation, now),
                None if evaluation.open_alert().is_some() => {
                    // The rule is gone: its label and severity with it.
                    events.push(Event {
                        rule: saved.rule,
                        entity: evaluation.entity().clone(),
                        severity: Severity::default(),
                        transition: Transition::Resolve {
                            at: now.max(evaluation.clock()),
                            reason: ResolveReason::Withdrawn,
                            message: Message {
                                fr: format!("Alerte close à {} : la règle a été supprimée.", evaluation.place()),
                                en: format!("Alert closed at {}: the rule was deleted.", evaluation.place()),
                            },
                        },
                    });
                }
                None => {}
            }
        }
        (engine, events)
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut evaluations: Vec<SavedEvaluation> = self
            .entities
            .values()
            .flat_map(Watched::evaluations)
            .map(|(slot, e)| SavedEvaluation { rule: self.rules[*slot].id().clone(), evaluation: e.clone() })
            .collect();
        // A stable order makes snapshots comparable and diffs readable.
        evaluations.sort_by(|a, b| (&a.rule, a.evaluation.entity()).cmp(&(&b.rule, b.evaluation.entity())));
        Snapshot { evaluations }
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    pub fn rule(&self, id: &RuleId) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id() == id)
    }

    pub fn evaluation(&self, rule: &RuleId, entity: &EntityId) -> Option<&Evaluation> {
        let slot = self.rules.iter().position(|r| r.id() == rule)?;
        self.entities.get(entity)?.evaluations().find(|(s, _)| *s == slot).map(|(_, e)| e)
    }

    /// Every open alert, as (rule, entity, alert).
    pub fn open_alerts(&self) -> impl Iterator<Item = (&RuleId, &EntityId, &OpenAlert)> {
        self.entities
            .values()
            .flat_map(Watched::evaluations)
            .filter_map(|(slot, e)| e.open_alert().map(|a| (self.rules[*slot].id(), e.entity(), a)))
    }

    /// Number of (rule, entity) evaluations held.
    pub fn evaluations(&self) -> usize {
        self.entities.values().map(|w| w.evaluations().count()).sum()
    }

    /// Adds or replaces a rule. Entities the edited rule no longer targets get their
    /// open alert withdrawn; the others keep their evaluation (whose detector restarts
    /// if the condition changed).
    pub fn upsert_rule(&mut self, rule: Rule, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        match self.rules.iter().position(|r| r.id() == rule.id()) {
            Some(slot) => {
                self.rules[slot] = rule;
                let rule = &self.rules[slot];
                let mut ids: Vec<&EntityId> = self.entities.keys().collect();
                ids.sort(); // withdrawals in a stable order
                let ids: Vec<EntityId> = ids.into_iter().cloned().collect();
                for id in ids {
                    let Some(watched) = self.entities.get_mut(&id) else { continue };
                    for mut evaluation in watched.take_slot(slot) {
                        if evaluation.is_targeted_by(rule) {
                            // The attribute may have changed: file it under the new one.
                            watched.group(rule.kind().attribute()).evaluations.push((slot, evaluation));
                        } else {
                            push_withdrawn(&mut events, rule, &mut evaluation, now);
                        }
                    }
                }
            }
            None => self.rules.push(rule),
        }
        self.reindex();
        events
    }

    /// Removes a rule; its open alerts come back as `Withdrawn` resolutions.
    pub fn remove_rule(&mut self, id: &RuleId, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(slot) = self.rules.iter().position(|r| r.id() == id) else { return events };
        let mut ids: Vec<EntityId> = self.entities.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let Some(watched) = self.entities.get_mut(&id) else { continue };
            for mut evaluation in watched.take_slot(slot) {
                push_withdrawn(&mut events, &self.rules[slot], &mut evaluation, now);
            }
            for (s, _) in watched.groups.iter_mut().flat_map(|g| &mut g.evaluations) {
                if *s > slot {
                    *s -= 1;
                }
            }
        }
        self.rules.remove(slot);
        self.reindex();
        events
    }

    /// Starts watching an entity before it speaks, so that silence rules notice a
    /// device that never sends anything (call it for the targeted entities at start-up
    /// and when a device is installed).
    pub fn track(&mut self, entity: &EntityRef, now: DateTime<Utc>) {
        let Self { rules, index, entities, .. } = self;
        let keyed =
            std::iter::once((None, &index.any_attribute)).chain(index.by_attribute.iter().map(|(a, k)| (Some(a), k)));
        for (attribute, keys) in keyed {
            for slot in keys.matching(entity) {
                let rule = &rules[slot];
                if !matches!(rule.kind(), RuleKind::Silence(_)) || !rule.applies_to(entity) {
                    continue;
                }
                let watched = entities
                    .entry(entity.id.clone())
                    .or_insert_with(|| Watched { place: entity.place().to_owned(), groups: Vec::new() });
                let group = watched.group(attribute);
                if !group.evaluations.iter().any(|(s, _)| *s == slot) {
                    group.evaluations.push((slot, Evaluation::new(rule, entity, now)));
                }
            }
        }
    }

    /// Feeds one observation of `entity` to the rules that watch it.
    pub fn observe(&mut self, entity: &EntityRef, obs: &Observation) -> Vec<Event> {
        let mut events = Vec::new();
        if obs.entity != entity.id || self.rules.is_empty() {
            return events;
        }
        let Self { rules, index, entities, generation } = self;
        let watched = match entities.get_mut(&entity.id) {
            Some(w) => w,
            None => entities
                .entry(entity.id.clone())
                .or_insert_with(|| Watched { place: entity.place().to_owned(), groups: Vec::new() }),
        };
        if watched.place != entity.place() {
            entity.place().clone_into(&mut watched.place);
            for g in &mut watched.groups {
                for (_, e) in &mut g.evaluations {
                    e.set_place(entity.place());
                }
            }
        }
        for attribute in [Some(&obs.attribute), None] {
            let group = watched.group(attribute);
            if group.attached != Some(*generation) {
                attach(group, rules, index, entity, obs.observed_at);
                group.attached = Some(*generation);
            }
            for (slot, evaluation) in &mut group.evaluations {
                let rule = &rules[*slot];
                for transition in evaluation.apply(rule, obs) {
                    events.push(Event {
                        rule: rule.id().clone(),
                        entity: entity.id.clone(),
                        severity: rule.severity(),
                        transition,
                    });
                }
            }
        }
        events
    }

    /// Lets time pass for every evaluation (call it every minute or at
    /// [`Engine::next_deadline`]). Events come in time order.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        for watched in self.entities.values_mut() {
            for (slot, evaluation) in watched.groups.iter_mut().flat_map(|g| &mut g.evaluations) {
                let rule = &self.rules[*slot];
                for transition in evaluation.on_tick(rule, now) {
                    events.push(Event {
                        rule: rule.id().clone(),
                        entity: evaluation.entity().clone(),
                        severity: rule.severity(),
                        transition,
                    });
                }
            }
        }
        // Stable, so the transitions of one (rule, entity) keep their order.
        events.sort_by(|a, b| (a.transition.at(), &a.rule, &a.entity).cmp(&(b.transition.at(), &b.rule, &b.entity)));
        events
    }

    /// The earliest instant at which a tick would change something.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.entities
            .values()
            .flat_map(Watched::evaluations)
            .filter_map(|(slot, e)| e.next_deadline(&self.rules[*slot]))
            .min()
    }

    fn reindex(&mut self) {
        let mut index = Index::default();
        for (slot, rule) in self.rules.iter().enumerate() {
            match rule.kind().attribute() {
                Some(a) => index.by_attribute.entry(a.clone()).or_default().add(rule.target(), slot),
                None => index.any_attribute.add(rule.target(), slot),
            }
        }
        self.index = index;
        self.generation += 1;
    }
}

/// Adds to `group` an evaluation for each rule of the index that watches this
/// entity and attribute and has none yet.
fn attach(group: &mut Group, rules: &[Rule], index: &Index, entity: &EntityRef, start: DateTime<Utc>) {
    let Some(keys) = index.keys(group.attribute.as_ref()) else { return };
    for slot in keys.matching(entity) {
        let rule = &rules[slot];
        if *rule.organisation() == entity.organisation && !group.evaluations.iter().any(|(s, _)| *s == slot) {
            group.evaluations.push((slot, Evaluation::new(rule, entity, start)));
        }
    }
}

fn push_withdrawn(events: &mut Vec<Event>, rule: &Rule, evaluation: &mut Evaluation, now: DateTime<Utc>) {
    if let Some(transition) = evaluation.withdraw(rule, now) {
        events.push(Event {
            rule: rule.id().clone(),
            entity: evaluation.entity().clone(),
            severity: rule.severity(),
            transition,
        });
    }
}
