//! Rules: what to watch, on which entities, how serious it is, and how the alert
//! it raises lives (resolve delay, flap guard).
//!
//! A [`RuleSpec`] is what the rule editor and the API exchange; a [`Rule`] is a spec
//! that passed validation, so the engine never meets a hysteresis the wrong way
//! round or a night window of zero minutes.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use socle_domain::{AttributeName, Entity, EntityId, EntityType, ObservedValue, OrganisationId, UnitCode};

use crate::fill::Fill;
use crate::leak::Leak;
use crate::occupancy::Occupancy;
use crate::rate::Rate;
use crate::silence::Silence;
use crate::threshold::{BatteryLow, Threshold};
use crate::RuleError;

/// Longest duration a rule may name (delays, windows): a year. Beyond that a rule
/// is a mistake, and the bound keeps every instant computation far from overflow.
pub const MAX_SECONDS: u32 = 366 * 24 * 3600;

/// Identifier of a rule, chosen by storage (a UUID fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuleId(String);

impl RuleId {
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        let ok =
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(RuleError::RuleId(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for RuleId {
    type Error = RuleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<RuleId> for String {
    fn from(v: RuleId) -> Self {
        v.0
    }
}
impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name in French (required: the interface is French first) and English
/// (falls back to French when empty). For a rule it names what is watched, in
/// plain words ("Niveau de la rivière"), because it starts every alert message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub fr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub en: String,
}

impl Label {
    pub fn new(fr: &str, en: &str) -> Result<Self, RuleError> {
        let (fr, en) = (fr.trim(), en.trim());
        if fr.is_empty() {
            return Err(RuleError::invalid("label.fr", "the French label is required"));
        }
        if fr.chars().count() > 200 || en.chars().count() > 200 {
            return Err(RuleError::invalid("label", "labels are at most 200 characters"));
        }
        if fr.chars().chain(en.chars()).any(char::is_control) {
            return Err(RuleError::invalid("label", "labels cannot contain control characters"));
        }
        Ok(Self { fr: fr.to_owned(), en: en.to_owned() })
    }
    pub fn fr(&self) -> &str {
        &self.fr
    }
    pub fn en(&self) -> &str {
        if self.en.is_empty() {
            &self.fr
        } else {
            &self.en
        }
    }
}

/// Severity levels of the Smart Data Models `Alert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [Self::Informational, Self::Low, Self::Medium, Self::High, Self::Critical];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "informational",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
    pub fn label_fr(self) -> &'static str {
        match self {
            Self::Informational => "information",
            Self::Low => "faible",
            Self::Medium => "moyenne",
            Self::High => "élevée",
            Self::Critical => "critique",
        }
    }
}

/// Which entities a rule watches. Always within the rule's organisation: an entity of
/// another tenant never matches, even when named explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    Entity(EntityId),
    /// Every entity of this type owned by the organisation.
    Type(EntityType),
    /// An explicit list (kept sorted and without duplicates by [`Rule::new`]).
    Group(Vec<EntityId>),
}

/// What the engine needs to know of an entity: identity, owner, type and a name
/// for messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    pub id: EntityId,
    #[serde(rename = "type")]
    pub entity_type: EntityType,
    pub organisation: OrganisationId,
    /// Display name, written so that it reads after "à"/"at" ("la station du
    /// Moulin", "Gymnase Jean Moulin"). The id is used when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl EntityRef {
    pub fn place(&self) -> &str {
        self.name.as_deref().filter(|n| !n.trim().is_empty()).unwrap_or(self.id.as_str())
    }
}

impl From<&Entity> for EntityRef {
    fn from(e: &Entity) -> Self {
        Self {
            id: e.id.clone(),
            entity_type: e.entity_type.clone(),
            organisation: e.organisation.clone(),
            name: e.name().map(str::to_owned),
        }
    }
}

/// How a level is written by the device: a ratio (Smart Data Models `fillingLevel`
/// and `batteryLevel`, 0 to 1) or a percentage (0 to 100). Rules always speak in
/// percent, so the editor shows one unit whatever the sensor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    #[default]
    Ratio,
    Percent,
}

impl Scale {
    pub(crate) fn to_percent(self, v: f64) -> f64 {
        match self {
            Self::Ratio => v * 100.0,
            Self::Percent => v,
        }
    }
}

/// Flap guard: every time the condition turns from clear to active is a *rise*.
/// When the condition clears and the (rule, entity) rose at least `rises` times within
/// the last `window_seconds`, the alert is flapping: it stays open (one `Flapping`
/// transition tells the notifier, which should stay quiet) and resolves only after
/// the condition stayed clear for a whole window instead of the resolve delay.
///
/// Why keep it open rather than suppress it: the condition is real, only its edges
/// are noisy; a suppressed alert would hide a device that really is too hot half of
/// the time, an open one shows it once. Counting rises (not opens) also catches a
/// signal that oscillates faster than the resolve delay, which re-arms an open alert
/// without ever opening a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlapGuard {
    pub rises: u32,
    pub window_seconds: u32,
}

impl Default for FlapGuard {
    fn default() -> Self {
        Self { rises: 3, window_seconds: 3600 }
    }
}

fn default_flap_guard() -> Option<FlapGuard> {
    Some(FlapGuard::default())
}

fn default_timezone() -> Tz {
    chrono_tz::Europe::Paris
}

/// The condition of a rule, one variant per kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RuleKind {
    Threshold(Threshold),
    Silence(Silence),
    BatteryLow(BatteryLow),
    Rate(Rate),
    Leak(Leak),
    Fill(Fill),
    Occupancy(Occupancy),
}

impl RuleKind {
    /// The attribute the rule reads; `None` means any attribute (a silence rule
    /// on the whole device).
    pub fn attribute(&self) -> Option<&AttributeName> {
        match self {
            Self::Threshold(k) => Some(&k.attribute),
            Self::Silence(k) => k.attribute.as_ref(),
            Self::BatteryLow(k) => Some(&k.attribute),
            Self::Rate(k) => Some(&k.attribute),
            Self::Leak(k) => Some(&k.attribute),
            Self::Fill(k) => Some(&k.attribute),
            Self::Occupancy(k) => Some(&k.attribute),
        }
    }

    pub fn watches(&self, attribute: &AttributeName) -> bool {
        self.attribute().is_none_or(|a| a == attribute)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Threshold(_) => "threshold",
            Self::Silence(_) => "silence",
            Self::BatteryLow(_) => "batteryLow",
            Self::Rate(_) => "rate",
            Self::Leak(_) => "leak",
            Self::Fill(_) => "fill",
            Self::Occupancy(_) => "occupancy",
        }
    }

    fn validate(&mut self) -> Result<(), RuleError> {
        match self {
            Self::Threshold(k) => k.validate(),
            Self::Silence(k) => k.validate(),
            Self::BatteryLow(k) => k.validate(),
            Self::Rate(k) => k.validate(),
            Self::Leak(k) => k.validate(),
            Self::Fill(k) => k.validate(),
            Self::Occupancy(k) => k.validate(),
        }
    }
}

/// A rule as the editor and the API exchange it (JSON in camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    pub id: RuleId,
    pub organisation: OrganisationId,
    pub label: Label,
    pub target: Target,
    #[serde(default)]
    pub severity: Severity,
    #[serde(rename = "condition")]
    pub kind: RuleKind,
    /// The organisation's time zone: nights and opening hours are local.
    #[serde(default = "default_timezone")]
    pub timezone: Tz,
    /// How long the condition must stay clear before the alert resolves itself.
    #[serde(default)]
    pub resolve_delay_seconds: u32,
    /// `null` disables the guard.
    #[serde(default = "default_flap_guard")]
    pub flap_guard: Option<FlapGuard>,
    /// Unit for messages when observations carry none (`MTR`, `CEL`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitCode>,
}

impl RuleSpec {
    /// A spec with the defaults of the editor: medium severity, Europe/Paris, no
    /// resolve delay, the default flap guard.
    pub fn new(id: RuleId, organisation: OrganisationId, label: Label, target: Target, kind: RuleKind) -> Self {
        Self {
            id,
            organisation,
            label,
            target,
            severity: Severity::default(),
            kind,
            timezone: default_timezone(),
            resolve_delay_seconds: 0,
            flap_guard: default_flap_guard(),
            unit: None,
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RuleSpec", into = "RuleSpec")]
pub struct Rule {
    spec: RuleSpec,
    /// Digest of what evaluation depends on (condition and time zone): saved states
    /// carry it, so a state is never replayed against an edited condition.
    fingerprint: u64,
}

impl Rule {
    pub fn new(mut spec: RuleSpec) -> Result<Self, RuleError> {
        spec.label = Label::new(&spec.label.fr, &spec.label.en)?;
        if let Target::Group(ids) = &mut spec.target {
            ids.sort();
            ids.dedup();
            if ids.is_empty() || ids.len() > 1000 {
                return Err(RuleError::invalid("target.group", "a group holds 1 to 1,000 entities"));
            }
        }
        check_seconds("resolveDelaySeconds", spec.resolve_delay_seconds, 0)?;
        if let Some(g) = spec.flap_guard {
            if !(2..=100).contains(&g.rises) {
                return Err(RuleError::invalid("flapGuard.rises", "between 2 and 100 rises"));
            }
            check_seconds("flapGuard.windowSeconds", g.window_seconds, 60)?;
        }
        spec.kind.validate()?;
        let fingerprint = fnv1a(&serde_json::to_vec(&(&spec.kind, spec.timezone.name())).unwrap_or_default());
        Ok(Self { spec, fingerprint })
    }

    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }
    pub fn id(&self) -> &RuleId {
        &self.spec.id
    }
    pub fn organisation(&self) -> &OrganisationId {
        &self.spec.organisation
    }
    pub fn label(&self) -> &Label {
        &self.spec.label
    }
    pub fn target(&self) -> &Target {
        &self.spec.target
    }
    pub fn severity(&self) -> Severity {
        self.spec.severity
    }
    pub fn kind(&self) -> &RuleKind {
        &self.spec.kind
    }
    pub fn timezone(&self) -> Tz {
        self.spec.timezone
    }
    pub fn resolve_delay_seconds(&self) -> u32 {
        self.spec.resolve_delay_seconds
    }
    pub fn flap_guard(&self) -> Option<FlapGuard> {
        self.spec.flap_guard
    }
    pub fn unit(&self) -> Option<&UnitCode> {
        self.spec.unit.as_ref()
    }
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether the rule watches this entity: same organisation, and named by the target.
    pub fn applies_to(&self, entity: &EntityRef) -> bool {
        self.targets(&entity.organisation, &entity.entity_type, &entity.id)
    }

    pub(crate) fn targets(&self, organisation: &OrganisationId, entity_type: &EntityType, id: &EntityId) -> bool {
        *organisation == self.spec.organisation
            && match &self.spec.target {
                Target::Entity(e) => e == id,
                Target::Type(t) => t == entity_type,
                Target::Group(ids) => ids.binary_search(id).is_ok(),
            }
    }
}

impl TryFrom<RuleSpec> for Rule {
    type Error = RuleError;
    fn try_from(spec: RuleSpec) -> Result<Self, Self::Error> {
        Self::new(spec)
    }
}
impl From<Rule> for RuleSpec {
    fn from(r: Rule) -> Self {
        r.spec
    }
}

pub(crate) fn check_seconds(field: &'static str, v: u32, min: u32) -> Result<(), RuleError> {
    if v < min {
        Err(RuleError::invalid(field, "too short"))
    } else if v > MAX_SECONDS {
        Err(RuleError::invalid(field, "at most 366 days"))
    } else {
        Ok(())
    }
}

pub(crate) fn check_number(field: &'static str, v: f64) -> Result<(), RuleError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(RuleError::invalid(field, "not a finite number"))
    }
}

pub(crate) fn check_percent(field: &'static str, v: f64) -> Result<(), RuleError> {
    if (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(RuleError::invalid(field, "a percentage between 0 and 100"))
    }
}

/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`, which matters for a
/// value that is persisted.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The number a rule reads from an observation. Text states of switches (`on`/`off`,
/// `true`/`false`) count as 1/0 so "lights on while closed" works on `powerState`;
/// any other text is not a measurement and is ignored by numeric rules.
pub(crate) fn numeric(value: &ObservedValue) -> Option<f64> {
    match value {
        ObservedValue::Number(n) => Some(n.get()),
        ObservedValue::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "on" | "true" => Some(1.0),
            "off" | "false" => Some(0.0),
            _ => None,
        },
    }
}

/// What a condition says at an instant, before the alert lifecycle applies the
/// resolve delay and the flap guard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Status {
    Clear,
    /// The condition holds but has not lasted its minimum duration yet: not enough
    /// to open an alert, enough to keep an open one open (a value back above the
    /// level for five minutes does not resolve and reopen a 15-minute alert).
    Pending,
    /// `since`: when the abnormal situation began, as a person would say it
    /// (the last data for a silent device, the first night of a leak).
    /// `value`: the figure compared with the rule's level (a rate for rate rules,
    /// a night minimum for leaks, a percentage for levels).
    Active {
        since: DateTime<Utc>,
        value: Option<f64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_json() -> serde_json::Value {
        serde_json::json!({
            "id": "r1",
            "organisation": "commune-saint-aubin",
            "label": {"fr": "Température du gymnase", "en": "Gym temperature"},
            "target": {"entity": "urn:ngsi-ld:Building:gymnase"},
            "severity": "high",
            "condition": {"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0,
                          "clear": 25.0, "minDurationSeconds": 900},
            "resolveDelaySeconds": 600
        })
    }

    #[test]
    fn rules_roundtrip_through_json_and_are_validated() {
        let rule: Rule = serde_json::from_value(spec_json()).unwrap();
        assert_eq!(rule.severity(), Severity::High);
        assert_eq!(rule.timezone(), chrono_tz::Europe::Paris);
        assert_eq!(rule.flap_guard(), Some(FlapGuard::default()));
        let back: Rule = serde_json::from_value(serde_json::to_value(&rule).unwrap()).unwrap();
        assert_eq!(back, rule);

        let mut bad = spec_json();
        bad["condition"]["clear"] = 27.0.into();
        let err = serde_json::from_value::<Rule>(bad).unwrap_err().to_string();
        assert!(err.contains("clear"), "{err}");
        let mut bad = spec_json();
        bad["label"]["fr"] = " ".into();
        assert!(serde_json::from_value::<Rule>(bad).is_err());
        let mut bad = spec_json();
        bad["unknown"] = 1.into();
        assert!(serde_json::from_value::<Rule>(bad).is_err());
        let mut bad = spec_json();
        bad["condition"]["levle"] = 30.into();
        assert!(serde_json::from_value::<Rule>(bad).is_err(), "a misspelt condition field is an error, not a default");
        let mut bad = spec_json();
        bad["flapGuard"] = serde_json::json!({"rises": 1, "windowSeconds": 3600});
        assert!(serde_json::from_value::<Rule>(bad).is_err());
        let mut off = spec_json();
        off["flapGuard"] = serde_json::Value::Null;
        assert_eq!(serde_json::from_value::<Rule>(off).unwrap().flap_guard(), None);
    }

    #[test]
    fn targets_stay_within_the_organisation() {
        let mut spec: RuleSpec = serde_json::from_value(spec_json()).unwrap();
        let a = EntityId::parse("urn:ngsi-ld:Building:a").unwrap();
        let b = EntityId::parse("urn:ngsi-ld:Building:b").unwrap();
        spec.target = Target::Group(vec![b.clone(), a.clone(), b.clone()]);
        let rule = Rule::new(spec.clone()).unwrap();
        assert_eq!(rule.target(), &Target::Group(vec![a.clone(), b.clone()]));
        let mut e = EntityRef {
            id: a,
            entity_type: EntityType::parse("Building").unwrap(),
            organisation: OrganisationId::parse("commune-saint-aubin").unwrap(),
            name: None,
        };
        assert!(rule.applies_to(&e));
        e.organisation = OrganisationId::parse("commune-voisine").unwrap();
        assert!(!rule.applies_to(&e), "another tenant's entity never matches");
        spec.target = Target::Group(vec![]);
        assert!(Rule::new(spec).is_err());
    }

    #[test]
    fn switch_states_read_as_numbers() {
        assert_eq!(numeric(&ObservedValue::Text("ON".into())), Some(1.0));
        assert_eq!(numeric(&ObservedValue::Text("off".into())), Some(0.0));
        assert_eq!(numeric(&ObservedValue::Text("fault".into())), None);
        assert_eq!(numeric(&ObservedValue::number(2.5).unwrap()), Some(2.5));
    }
}
