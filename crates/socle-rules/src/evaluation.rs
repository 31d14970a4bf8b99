//! The state machine of one rule on one entity.
//!
//! A *detector* (one per rule kind) turns observations and the passing of time into
//! a status: clear, or active since some instant. The *alert lifecycle* on top turns
//! statuses into transitions: open once, resolve after the condition stayed clear
//! for the resolve delay, and hold flapping alerts open (see [`FlapGuard`]).
//!
//! Time only moves forward. The evaluation keeps a clock (the latest instant it has
//! reached, from observations or ticks) and steps through every deadline on the way
//! (end of a minimum duration, end of a night, a calendar boundary, a resolve
//! delay), so the outcome is the same whether time passed through ticks or only
//! through observations — which is what makes the preview faithful.
//!
//! An observation not newer than the newest one already seen for this (rule,
//! entity) is ignored: a duplicate must not count twice, and a late one describes a
//! past that has already been judged (re-judging it would reopen or resolve alerts
//! after the fact). Storage keeps it; only the alert engine does not look back.
//!
//! [`FlapGuard`]: crate::FlapGuard

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::{EntityId, EntityType, Observation, OrganisationId, UnitCode};

use crate::leak::LeakState;
use crate::localtime::after;
use crate::message::{Context, Message};
use crate::occupancy::OccupancyState;
use crate::rate::RateState;
use crate::rule::{numeric, EntityRef, Rule, RuleKind, Status};
use crate::silence::SilenceState;
use crate::threshold::LevelState;

/// Bound on the deadlines crossed by one call: an observation arriving a year after
/// the previous one crosses ~730 calendar boundaries; the bound only guards against
/// a clock jump of centuries. Past it the evaluation jumps straight to the target,
/// which gives the right final state but skips intermediate transitions.
const MAX_STEPS: usize = 10_000;

/// Why an alert resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResolveReason {
    /// The condition cleared (and stayed clear for the resolve delay).
    Cleared,
    /// The rule was deleted, or no longer watches this entity.
    Withdrawn,
}

/// What happened to the alert of a (rule, entity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Transition {
    /// `since`: when the abnormal situation began; `value`: the figure compared with
    /// the rule's level (see [`OpenAlert`]).
    Open {
        at: DateTime<Utc>,
        since: DateTime<Utc>,
        value: Option<f64>,
        message: Message,
    },
    /// The open alert is flapping: notify once, then stay quiet; it stays open.
    Flapping {
        at: DateTime<Utc>,
        rises: u32,
        message: Message,
    },
    Resolve {
        at: DateTime<Utc>,
        reason: ResolveReason,
        message: Message,
    },
}

impl Transition {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Open { at, .. } | Self::Flapping { at, .. } | Self::Resolve { at, .. } => *at,
        }
    }
}

/// The open alert of a (rule, entity), if any: there is never more than one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenAlert {
    pub at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    /// Threshold and occupancy: the reading; battery and fill: a percentage; rate:
    /// the change per hour; leak: the last night's minimum; silence: none.
    pub value: Option<f64>,
    pub flapping: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Clearing {
    since: DateTime<Utc>,
    quiet_seconds: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open: Option<OpenAlert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clearing: Option<Clearing>,
    /// Last status seen, to count rises.
    active: bool,
    /// Most recent rises, at most the flap guard's count.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    rises: VecDeque<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Detector {
    Threshold(LevelState),
    Silence(SilenceState),
    BatteryLow(LevelState),
    Rate(RateState),
    Leak(LeakState),
    Fill(LevelState),
    Occupancy(OccupancyState),
}

impl Detector {
    fn new(kind: &RuleKind, start: DateTime<Utc>) -> Self {
        match kind {
            RuleKind::Threshold(_) => Self::Threshold(LevelState::default()),
            RuleKind::Silence(_) => Self::Silence(SilenceState::new(start)),
            RuleKind::BatteryLow(_) => Self::BatteryLow(LevelState::default()),
            RuleKind::Rate(_) => Self::Rate(RateState::default()),
            RuleKind::Leak(_) => Self::Leak(LeakState::default()),
            RuleKind::Fill(_) => Self::Fill(LevelState::default()),
            RuleKind::Occupancy(_) => Self::Occupancy(OccupancyState::default()),
        }
    }

    // In the methods below a detector of another kind than the rule cannot happen
    // (`Evaluation::sync` replaces it first); it reads as "nothing to say".

    /// `number`: the observation read as a number, if it is one.
    fn observe(&mut self, rule: &Rule, t: DateTime<Utc>, number: Option<f64>) {
        if let (Self::Silence(s), RuleKind::Silence(_)) = (&mut *self, rule.kind()) {
            // Any value, even a text status, proves the device is alive.
            s.observe(t);
            return;
        }
        let Some(v) = number else { return };
        match (self, rule.kind()) {
            (Self::Threshold(s), RuleKind::Threshold(k)) => s.observe(&k.band(), t, v),
            // -1 is "cannot be determined" in Smart Data Models: not a low battery.
            (Self::BatteryLow(s), RuleKind::BatteryLow(k)) if v >= 0.0 => {
                s.observe(&k.band(), t, k.scale.to_percent(v))
            }
            (Self::Rate(s), RuleKind::Rate(k)) => s.observe(k, t, v),
            (Self::Leak(s), RuleKind::Leak(k)) => s.observe(k, rule.timezone(), t, v),
            (Self::Fill(s), RuleKind::Fill(k)) => s.observe(&k.band(), t, k.scale.to_percent(v)),
            (Self::Occupancy(s), RuleKind::Occupancy(k)) => s.observe(k, v),
            _ => {}
        }
    }

    fn advance(&mut self, rule: &Rule, now: DateTime<Utc>) {
        match (self, rule.kind()) {
            (Self::Leak(s), RuleKind::Leak(k)) => s.advance(k, now),
            (Self::Occupancy(s), RuleKind::Occupancy(k)) => s.advance(k, rule.timezone(), now),
            _ => {}
        }
    }

    fn status(&self, rule: &Rule, now: DateTime<Utc>) -> Status {
        match (self, rule.kind()) {
            (Self::Threshold(s), RuleKind::Threshold(k)) => s.status(k.min_duration_seconds, now),
            (Self::Silence(s), RuleKind::Silence(k)) => s.status(k, now),
            (Self::BatteryLow(s), RuleKind::BatteryLow(_)) | (Self::Fill(s), RuleKind::Fill(_)) => s.status(0, now),
            (Self::Rate(s), RuleKind::Rate(_)) => s.status(),
            (Self::Leak(s), RuleKind::Leak(k)) => s.status(k),
            (Self::Occupancy(s), RuleKind::Occupancy(k)) => s.status(k, now),
            _ => Status::Clear,
        }
    }

    fn deadline(&self, rule: &Rule, later_than: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match (self, rule.kind()) {
            (Self::Threshold(s), RuleKind::Threshold(k)) => s.deadline(k.min_duration_seconds, later_than),
            (Self::Silence(s), RuleKind::Silence(k)) => s.deadline(k, later_than),
            (Self::Leak(s), RuleKind::Leak(_)) => s.deadline(later_than),
            (Self::Occupancy(s), RuleKind::Occupancy(k)) => s.deadline(k, later_than),
            _ => None,
        }
    }
}

/// The evaluation of one rule on one entity. Serialisable, so the engine's state
/// survives restarts without replaying history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    entity: EntityId,
    entity_type: EntityType,
    organisation: OrganisationId,
    place: String,
    fingerprint: u64,
    clock: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_observed: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<UnitCode>,
    detector: Detector,
    alert: AlertState,
}

impl Evaluation {
    /// Starts watching `entity` at `start` (a silence rule counts from there).
    pub fn new(rule: &Rule, entity: &EntityRef, start: DateTime<Utc>) -> Self {
        Self {
            entity: entity.id.clone(),
            entity_type: entity.entity_type.clone(),
            organisation: entity.organisation.clone(),
            place: entity.place().to_owned(),
            fingerprint: rule.fingerprint(),
            clock: start,
            last_observed: None,
            last_value: None,
            unit: None,
            detector: Detector::new(rule.kind(), start),
            alert: AlertState::default(),
        }
    }

    pub fn entity(&self) -> &EntityId {
        &self.entity
    }
    /// Whether `rule` (perhaps edited since) still watches this entity.
    pub fn is_targeted_by(&self, rule: &Rule) -> bool {
        rule.targets(&self.organisation, &self.entity_type, &self.entity)
    }
    pub fn place(&self) -> &str {
        &self.place
    }
    /// Entities get renamed; messages follow.
    pub fn set_place(&mut self, place: &str) {
        if self.place != place {
            place.clone_into(&mut self.place);
        }
    }
    pub fn open_alert(&self) -> Option<&OpenAlert> {
        self.alert.open.as_ref()
    }
    /// The latest instant the evaluation has reached.
    pub fn clock(&self) -> DateTime<Utc> {
        self.clock
    }

    /// Feeds one observation. Observations of other entities or attributes, duplicates
    /// and late ones are ignored.
    pub fn on_observation(&mut self, rule: &Rule, obs: &Observation) -> Vec<Transition> {
        if obs.entity != self.entity || !rule.kind().watches(&obs.attribute) {
            return Vec::new();
        }
        self.apply(rule, obs)
    }

    /// `on_observation` for callers that already matched entity and attribute (the
    /// engine's index does).
    pub(crate) fn apply(&mut self, rule: &Rule, obs: &Observation) -> Vec<Transition> {
        let mut out = Vec::new();
        self.sync(rule);
        let t = obs.observed_at;
        if self.last_observed.is_some_and(|last| t <= last) {
            return out;
        }
        self.advance_to(rule, t, &mut out);
        self.last_observed = Some(t);
        let number = numeric(&obs.value);
        if number.is_some() {
            self.last_value = number;
        }
        if obs.unit_code.is_some() && obs.unit_code != self.unit {
            self.unit.clone_from(&obs.unit_code);
        }
        self.detector.observe(rule, t, number);
        // A tick may have taken the clock past `t` (a frame that spent time in the
        // network): transitions never go back in time.
        self.clock = self.clock.max(t);
        self.step(rule, self.clock, &mut out);
        out
    }

    /// Lets time pass until `now`, for rules that fire without data (silence,
    /// minimum durations, nights, opening hours, resolve delays).
    pub fn on_tick(&mut self, rule: &Rule, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        self.sync(rule);
        if now > self.clock {
            self.advance_to(rule, now, &mut out);
            self.clock = now;
            self.step(rule, now, &mut out);
        }
        out
    }

    /// When a tick could next change something, so a scheduler can sleep until then.
    pub fn next_deadline(&self, rule: &Rule) -> Option<DateTime<Utc>> {
        self.deadline(rule, self.clock)
    }

    /// Closes the open alert because the rule is gone or no longer watches the entity.
    pub fn withdraw(&mut self, rule: &Rule, now: DateTime<Utc>) -> Option<Transition> {
        self.alert.open.take()?;
        self.alert.clearing = None;
        let ctx = Context { rule, place: &self.place, unit: rule.unit().or(self.unit.as_ref()), last: self.last_value };
        Some(Transition::Resolve {
            at: now.max(self.clock),
            reason: ResolveReason::Withdrawn,
            message: ctx.withdrawn(),
        })
    }

    /// An edited condition makes the detector's memory meaningless: start it afresh.
    /// The open alert stays; it resolves (after the delay) unless the new condition
    /// confirms it.
    fn sync(&mut self, rule: &Rule) {
        if self.fingerprint != rule.fingerprint() {
            self.fingerprint = rule.fingerprint();
            self.detector = Detector::new(rule.kind(), self.clock);
            self.alert.active = false;
            self.alert.clearing = None;
        }
    }

    fn deadline(&self, rule: &Rule, later_than: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let detector = self.detector.deadline(rule, later_than);
        let resolve = match (&self.alert.open, self.alert.clearing) {
            (Some(_), Some(c)) => Some(after(c.since, c.quiet_seconds)).filter(|d| *d > later_than),
            _ => None,
        };
        match (detector, resolve) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn advance_to(&mut self, rule: &Rule, target: DateTime<Utc>, out: &mut Vec<Transition>) {
        for _ in 0..MAX_STEPS {
            match self.deadline(rule, self.clock) {
                Some(d) if d <= target => {
                    self.clock = d;
                    self.step(rule, d, out);
                }
                _ => return,
            }
        }
    }

    fn step(&mut self, rule: &Rule, now: DateTime<Utc>, out: &mut Vec<Transition>) {
        self.detector.advance(rule, now);
        let status = self.detector.status(rule, now);
        let ctx = Context { rule, place: &self.place, unit: rule.unit().or(self.unit.as_ref()), last: self.last_value };
        let alert = &mut self.alert;
        // "On" for the lifecycle: active, or pending while an alert is already open.
        let on = match status {
            Status::Active { .. } => true,
            Status::Pending => alert.open.is_some(),
            Status::Clear => false,
        };
        if on {
            if !alert.active {
                alert.active = true;
                if let Some(g) = rule.flap_guard() {
                    alert.rises.push_back(now);
                    while alert.rises.len() > g.rises as usize {
                        alert.rises.pop_front();
                    }
                }
            }
            alert.clearing = None;
        }
        match status {
            Status::Active { since, value } => {
                if alert.open.is_none() {
                    alert.open = Some(OpenAlert { at: now, since, value, flapping: false });
                    out.push(Transition::Open { at: now, since, value, message: ctx.opened(since, value) });
                }
            }
            _ if on => {}
            Status::Pending | Status::Clear => {
                alert.active = false;
                let Some(open) = alert.open.as_mut() else { return };
                let clearing = match alert.clearing {
                    Some(c) => c,
                    None => {
                        let delay = rule.resolve_delay_seconds();
                        let mut quiet = delay;
                        if let Some(g) = rule.flap_guard() {
                            let window_start = now
                                .checked_sub_signed(TimeDelta::seconds(i64::from(g.window_seconds)))
                                .unwrap_or(DateTime::<Utc>::MIN_UTC);
                            let rises = alert.rises.iter().filter(|r| **r > window_start).count() as u32;
                            if rises >= g.rises {
                                quiet = delay.max(g.window_seconds);
                                if !open.flapping {
                                    open.flapping = true;
                                    out.push(Transition::Flapping {
                                        at: now,
                                        rises,
                                        message: ctx.flapping(rises, g.window_seconds),
                                    });
                                }
                            }
                        }
                        let c = Clearing { since: now, quiet_seconds: quiet };
                        alert.clearing = Some(c);
                        c
                    }
                };
                if after(clearing.since, clearing.quiet_seconds) <= now {
                    alert.open = None;
                    alert.clearing = None;
                    out.push(Transition::Resolve { at: now, reason: ResolveReason::Cleared, message: ctx.resolved() });
                }
            }
        }
    }
}
