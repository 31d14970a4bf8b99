//! The rule editor's form: one group of fields per kind of condition, so that an
//! agent writes a rule in words and numbers rather than JSON. The form is read
//! into the same JSON definition the API takes (`routes::alerts::parse_rule`
//! validates both), and a stored rule is shown back in it; the JSON stays
//! available for the few settings the form does not show.
//!
//! Durations are asked in the unit people think in (minutes, hours) and stored in
//! seconds; decimals take a comma or a point.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use socle_rules::{Direction, RuleKind, RuleSpec, Scale, Target, Trend};

/// Weekdays: the calendar's key, the form field's suffix, French and English names.
pub const WEEK: [(&str, &str, &str, &str); 7] = [
    ("monday", "lundi", "Lundi", "Monday"),
    ("tuesday", "mardi", "Mardi", "Tuesday"),
    ("wednesday", "mercredi", "Mercredi", "Wednesday"),
    ("thursday", "jeudi", "Jeudi", "Thursday"),
    ("friday", "vendredi", "Vendredi", "Friday"),
    ("saturday", "samedi", "Samedi", "Saturday"),
    ("sunday", "dimanche", "Dimanche", "Sunday"),
];

/// The fields of the form, as typed. Every kind's fields are kept (prefilled with
/// a sensible example) so that changing the kind in the form starts from values
/// that make sense; only the chosen kind's are read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RuleFields {
    pub organisation: String,
    pub libelle_fr: String,
    pub libelle_en: String,
    /// `type`, `entite` or `groupe`.
    pub cible: String,
    pub cible_type: String,
    pub cible_entite: String,
    /// Entity ids, one per line (commas and spaces also separate).
    pub cible_groupe: String,
    pub gravite: String,
    /// The condition kind (`threshold`, `silence`…).
    pub genre: String,
    pub unite: String,
    /// Minutes the condition stays clear before the alert closes itself.
    pub delai_retour: String,
    /// `on` when the flap guard is on.
    pub anti_battement: String,
    pub battements: String,
    /// Minutes.
    pub battement_fenetre: String,
    /// `on` when the rule is active.
    pub active: String,

    pub seuil_attribut: String,
    /// `above` or `below`.
    pub seuil_sens: String,
    pub seuil_niveau: String,
    pub seuil_retour: String,
    /// Minutes.
    pub seuil_duree: String,

    pub silence_attribut: String,
    pub silence_heures: String,

    pub pile_attribut: String,
    pub pile_seuil: String,
    pub pile_retour: String,
    /// `ratio` or `percent`.
    pub pile_echelle: String,

    pub vitesse_attribut: String,
    /// `rising` or `falling`.
    pub vitesse_sens: String,
    pub vitesse_par_heure: String,
    pub vitesse_retour: String,
    /// Minutes.
    pub vitesse_fenetre: String,

    pub fuite_attribut: String,
    pub fuite_niveau: String,
    pub fuite_nuits: String,
    pub fuite_nuit: String,

    pub remplissage_attribut: String,
    pub remplissage_seuil: String,
    pub remplissage_retour: String,
    pub remplissage_echelle: String,

    pub occupation_attribut: String,
    pub occupation_niveau: String,
    /// Minutes.
    pub occupation_duree: String,
    pub occupation_lundi: String,
    pub occupation_mardi: String,
    pub occupation_mercredi: String,
    pub occupation_jeudi: String,
    pub occupation_vendredi: String,
    pub occupation_samedi: String,
    pub occupation_dimanche: String,
    /// Closed dates (`AAAA-MM-JJ`), separated by commas, spaces or lines.
    pub occupation_fermetures: String,
}

/// A field the form could not read: its label and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn number_text(v: f64, fr: bool) -> String {
    let s = format!("{}", (v * 1e6).round() / 1e6);
    if fr {
        s.replace('.', ",")
    } else {
        s
    }
}

fn minutes_text(seconds: u32, fr: bool) -> String {
    number_text(f64::from(seconds) / 60.0, fr)
}

fn scale_text(s: Scale) -> String {
    match s {
        Scale::Ratio => "ratio".into(),
        Scale::Percent => "percent".into(),
    }
}

impl RuleFields {
    /// A form for `spec`, the other kinds' fields holding the editor's examples.
    pub fn from_spec(spec: &RuleSpec, enabled: bool, lang: &str) -> Self {
        let mut f = Self::examples(lang);
        f.set_spec(spec, enabled, lang);
        f
    }

    /// Every kind's example values (`web::alerts::KINDS`), none chosen yet.
    pub fn examples(lang: &str) -> Self {
        let mut f =
            Self { gravite: "medium".into(), active: "on".into(), anti_battement: "on".into(), ..Self::default() };
        f.battements = "3".into();
        f.battement_fenetre = "60".into();
        f.delai_retour = "0".into();
        for (_, _, _, condition, _) in super::alerts::KINDS {
            if let Ok(kind) = serde_json::from_str::<RuleKind>(condition) {
                f.set_condition(&kind, lang == "fr");
            }
        }
        f
    }

    fn set_spec(&mut self, spec: &RuleSpec, enabled: bool, lang: &str) {
        let fr = lang == "fr";
        self.organisation = spec.organisation.to_string();
        self.libelle_fr = spec.label.fr().to_owned();
        self.libelle_en = spec.label.en().to_owned();
        match &spec.target {
            Target::Type(t) => {
                self.cible = "type".into();
                self.cible_type = t.to_string();
            }
            Target::Entity(e) => {
                self.cible = "entite".into();
                self.cible_entite = e.to_string();
            }
            Target::Group(ids) => {
                self.cible = "groupe".into();
                self.cible_groupe = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
            }
        }
        self.gravite = spec.severity.as_str().into();
        self.unite = spec.unit.as_ref().map(ToString::to_string).unwrap_or_default();
        self.delai_retour = minutes_text(spec.resolve_delay_seconds, fr);
        match spec.flap_guard {
            Some(g) => {
                self.anti_battement = "on".into();
                self.battements = g.rises.to_string();
                self.battement_fenetre = minutes_text(g.window_seconds, fr);
            }
            None => self.anti_battement = String::new(),
        }
        self.active = if enabled { "on".into() } else { String::new() };
        self.set_condition(&spec.kind, fr);
    }

    fn set_condition(&mut self, kind: &RuleKind, fr: bool) {
        let opt = |v: Option<f64>| v.map(|v| number_text(v, fr)).unwrap_or_default();
        self.genre = kind.as_str().into();
        match kind {
            RuleKind::Threshold(k) => {
                self.seuil_attribut = k.attribute.to_string();
                self.seuil_sens = match k.direction {
                    Direction::Above => "above".into(),
                    Direction::Below => "below".into(),
                };
                self.seuil_niveau = number_text(k.level, fr);
                self.seuil_retour = opt(k.clear);
                self.seuil_duree = minutes_text(k.min_duration_seconds, fr);
            }
            RuleKind::Silence(k) => {
                self.silence_attribut = k.attribute.as_ref().map(ToString::to_string).unwrap_or_default();
                self.silence_heures = number_text(f64::from(k.after_seconds) / 3600.0, fr);
            }
            RuleKind::BatteryLow(k) => {
                self.pile_attribut = k.attribute.to_string();
                self.pile_seuil = number_text(k.percent, fr);
                self.pile_retour = opt(k.clear_percent);
                self.pile_echelle = scale_text(k.scale);
            }
            RuleKind::Rate(k) => {
                self.vitesse_attribut = k.attribute.to_string();
                self.vitesse_sens = match k.direction {
                    Trend::Rising => "rising".into(),
                    Trend::Falling => "falling".into(),
                };
                self.vitesse_par_heure = number_text(k.per_hour, fr);
                self.vitesse_retour = opt(k.clear_per_hour);
                self.vitesse_fenetre = minutes_text(k.window_seconds, fr);
            }
            RuleKind::Leak(k) => {
                self.fuite_attribut = k.attribute.to_string();
                self.fuite_niveau = number_text(k.level, fr);
                self.fuite_nuits = k.nights.to_string();
                self.fuite_nuit = k.night.to_string();
            }
            RuleKind::Fill(k) => {
                self.remplissage_attribut = k.attribute.to_string();
                self.remplissage_seuil = number_text(k.percent, fr);
                self.remplissage_retour = opt(k.clear_percent);
                self.remplissage_echelle = scale_text(k.scale);
            }
            RuleKind::Occupancy(k) => {
                self.occupation_attribut = k.attribute.to_string();
                self.occupation_niveau = number_text(k.level, fr);
                self.occupation_duree = minutes_text(k.min_duration_seconds, fr);
                for (day, _, _, _) in WEEK {
                    let spans = k.calendar.week.day(weekday(day)).iter().map(ToString::to_string).collect::<Vec<_>>();
                    *self.day_mut(day) = spans.join(", ");
                }
                self.occupation_fermetures =
                    k.calendar.closed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            }
        }
    }

    /// The opening hours typed for a weekday (`monday`…).
    pub fn day(&self, day: &str) -> &str {
        match day {
            "monday" => &self.occupation_lundi,
            "tuesday" => &self.occupation_mardi,
            "wednesday" => &self.occupation_mercredi,
            "thursday" => &self.occupation_jeudi,
            "friday" => &self.occupation_vendredi,
            "saturday" => &self.occupation_samedi,
            _ => &self.occupation_dimanche,
        }
    }

    fn day_mut(&mut self, day: &str) -> &mut String {
        match day {
            "monday" => &mut self.occupation_lundi,
            "tuesday" => &mut self.occupation_mardi,
            "wednesday" => &mut self.occupation_mercredi,
            "thursday" => &mut self.occupation_jeudi,
            "friday" => &mut self.occupation_vendredi,
            "saturday" => &mut self.occupation_samedi,
            _ => &mut self.occupation_dimanche,
        }
    }

    /// The rule definition (the API's JSON) this form describes. Numbers and
    /// choices are read here; the rule's own checks (levels on the right side,
    /// spans, bounds) are `Rule`'s, applied by the caller.
    pub fn to_definition(&self, lang: &str) -> Result<Value, FieldError> {
        let w = words(lang);
        let mut d = Map::new();
        d.insert("organisation".into(), json!(self.organisation.trim()));
        d.insert("label".into(), json!({"fr": self.libelle_fr.trim(), "en": self.libelle_en.trim()}));
        let target = match self.cible.as_str() {
            "entite" => json!({"entity": required(w.target_entity, &self.cible_entite, w)?}),
            "groupe" => {
                let ids: Vec<&str> = split_list(&self.cible_groupe);
                if ids.is_empty() {
                    return Err(FieldError { field: w.target_group, message: w.required.into() });
                }
                json!({"group": ids})
            }
            _ => json!({"type": required(w.target_type, &self.cible_type, w)?}),
        };
        d.insert("target".into(), target);
        d.insert("severity".into(), json!(self.gravite));
        d.insert("resolveDelaySeconds".into(), json!(seconds(w.resolve_delay, &self.delai_retour, 60.0, w)?));
        let guard = if self.anti_battement.is_empty() {
            Value::Null
        } else {
            json!({
                "rises": whole(w.flap_rises, &self.battements, w)?,
                "windowSeconds": seconds(w.flap_window, &self.battement_fenetre, 60.0, w)?,
            })
        };
        d.insert("flapGuard".into(), guard);
        if !self.unite.trim().is_empty() {
            d.insert("unit".into(), json!(self.unite.trim()));
        }
        d.insert("condition".into(), self.condition(w)?);
        d.insert("enabled".into(), json!(!self.active.is_empty()));
        Ok(Value::Object(d))
    }

    fn condition(&self, w: &FormWords) -> Result<Value, FieldError> {
        let mut c = Map::new();
        let mut put = |k: &str, v: Value| {
            c.insert(k.into(), v);
        };
        match self.genre.as_str() {
            "threshold" => {
                put("type", json!("threshold"));
                put("attribute", json!(required(w.attribute, &self.seuil_attribut, w)?));
                put("direction", json!(if self.seuil_sens == "below" { "below" } else { "above" }));
                put("level", json!(number(w.level, &self.seuil_niveau, w)?));
                if let Some(v) = optional(w.clear_level, &self.seuil_retour, w)? {
                    put("clear", json!(v));
                }
                put("minDurationSeconds", json!(seconds(w.min_duration, &self.seuil_duree, 60.0, w)?));
            }
            "silence" => {
                put("type", json!("silence"));
                if !self.silence_attribut.trim().is_empty() {
                    put("attribute", json!(self.silence_attribut.trim()));
                }
                put("afterSeconds", json!(seconds(w.silent_for, &self.silence_heures, 3600.0, w)?));
            }
            "batteryLow" => {
                put("type", json!("batteryLow"));
                put("attribute", json!(required(w.attribute, &self.pile_attribut, w)?));
                put("percent", json!(number(w.percent, &self.pile_seuil, w)?));
                if let Some(v) = optional(w.clear_percent, &self.pile_retour, w)? {
                    put("clearPercent", json!(v));
                }
                put("scale", json!(if self.pile_echelle == "percent" { "percent" } else { "ratio" }));
            }
            "rate" => {
                put("type", json!("rate"));
                put("attribute", json!(required(w.attribute, &self.vitesse_attribut, w)?));
                put("direction", json!(if self.vitesse_sens == "falling" { "falling" } else { "rising" }));
                put("perHour", json!(number(w.per_hour, &self.vitesse_par_heure, w)?));
                if let Some(v) = optional(w.clear_per_hour, &self.vitesse_retour, w)? {
                    put("clearPerHour", json!(v));
                }
                put("windowSeconds", json!(seconds(w.window, &self.vitesse_fenetre, 60.0, w)?));
            }
            "leak" => {
                put("type", json!("leak"));
                put("attribute", json!(required(w.attribute, &self.fuite_attribut, w)?));
                put("level", json!(number(w.night_level, &self.fuite_niveau, w)?));
                put("nights", json!(whole(w.nights, &self.fuite_nuits, w)?));
                put("night", json!(required(w.night, &self.fuite_nuit, w)?));
            }
            "fill" => {
                put("type", json!("fill"));
                put("attribute", json!(required(w.attribute, &self.remplissage_attribut, w)?));
                put("percent", json!(number(w.percent, &self.remplissage_seuil, w)?));
                if let Some(v) = optional(w.clear_percent, &self.remplissage_retour, w)? {
                    put("clearPercent", json!(v));
                }
                put("scale", json!(if self.remplissage_echelle == "percent" { "percent" } else { "ratio" }));
            }
            "occupancy" => {
                put("type", json!("occupancy"));
                put("attribute", json!(required(w.attribute, &self.occupation_attribut, w)?));
                put("level", json!(number(w.level, &self.occupation_niveau, w)?));
                put("minDurationSeconds", json!(seconds(w.min_duration, &self.occupation_duree, 60.0, w)?));
                let mut week = Map::new();
                for (day, _, _, _) in WEEK {
                    let spans = split_list(self.day(day));
                    if !spans.is_empty() {
                        week.insert(day.into(), json!(spans));
                    }
                }
                let closed = split_list(&self.occupation_fermetures);
                put("calendar", json!({"week": week, "closed": closed}));
            }
            other => return Err(FieldError { field: w.kind, message: format!("{} « {other} »", w.unknown) }),
        }
        Ok(Value::Object(c))
    }
}

fn weekday(day: &str) -> chrono::Weekday {
    use chrono::Weekday::*;
    match day {
        "monday" => Mon,
        "tuesday" => Tue,
        "wednesday" => Wed,
        "thursday" => Thu,
        "friday" => Fri,
        "saturday" => Sat,
        _ => Sun,
    }
}

fn split_list(s: &str) -> Vec<&str> {
    s.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|p| !p.is_empty()).collect()
}

fn required<'a>(field: &'static str, v: &'a str, w: &FormWords) -> Result<&'a str, FieldError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(FieldError { field, message: w.required.into() });
    }
    Ok(v)
}

fn optional(field: &'static str, v: &str, w: &FormWords) -> Result<Option<f64>, FieldError> {
    if v.trim().is_empty() {
        return Ok(None);
    }
    number(field, v, w).map(Some)
}

fn number(field: &'static str, v: &str, w: &FormWords) -> Result<f64, FieldError> {
    let t = required(field, v, w)?.replace(',', ".").replace(['\u{a0}', '\u{202f}'], "");
    t.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| FieldError { field, message: format!("{} (« {} »)", w.not_a_number, v.trim()) })
}

fn whole(field: &'static str, v: &str, w: &FormWords) -> Result<u32, FieldError> {
    let n = number(field, v, w)?;
    if n.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&n) {
        return Err(FieldError { field, message: w.not_whole.into() });
    }
    Ok(n as u32)
}

/// A duration typed in `unit` seconds (60: minutes, 3600: hours), in seconds.
fn seconds(field: &'static str, v: &str, unit: f64, w: &FormWords) -> Result<u32, FieldError> {
    let n = number(field, v, w)? * unit;
    if !(0.0..=f64::from(u32::MAX)).contains(&n) {
        return Err(FieldError { field, message: w.out_of_range.into() });
    }
    Ok(n.round() as u32)
}

/// Labels and messages of the form, French first.
pub struct FormWords {
    pub organisation: &'static str,
    pub label_fr: &'static str,
    pub label_en: &'static str,
    pub target: &'static str,
    pub target_type: &'static str,
    pub target_entity: &'static str,
    pub target_group: &'static str,
    pub target_group_hint: &'static str,
    pub kind: &'static str,
    pub condition: &'static str,
    pub attribute: &'static str,
    pub attribute_any: &'static str,
    pub direction: &'static str,
    pub above: &'static str,
    pub below: &'static str,
    pub rising: &'static str,
    pub falling: &'static str,
    pub level: &'static str,
    pub clear_level: &'static str,
    pub min_duration: &'static str,
    pub silent_for: &'static str,
    pub percent: &'static str,
    pub clear_percent: &'static str,
    pub scale: &'static str,
    pub scale_ratio: &'static str,
    pub scale_percent: &'static str,
    pub per_hour: &'static str,
    pub clear_per_hour: &'static str,
    pub window: &'static str,
    pub night_level: &'static str,
    pub nights: &'static str,
    pub night: &'static str,
    pub opening: &'static str,
    pub opening_hint: &'static str,
    pub closed: &'static str,
    pub closed_hint: &'static str,
    pub behaviour: &'static str,
    pub unit: &'static str,
    pub unit_hint: &'static str,
    pub resolve_delay: &'static str,
    pub flap_guard: &'static str,
    pub flap_rises: &'static str,
    pub flap_window: &'static str,
    pub active: &'static str,
    pub advanced: &'static str,
    pub optional: &'static str,
    pub required: &'static str,
    pub not_a_number: &'static str,
    pub not_whole: &'static str,
    pub out_of_range: &'static str,
    pub unknown: &'static str,
}

pub const FR: FormWords = FormWords {
    organisation: "Collectivité",
    label_fr: "Intitulé (français)",
    label_en: "Intitulé (anglais)",
    target: "Équipements surveillés",
    target_type: "Tous les équipements d'un type",
    target_entity: "Un équipement (identifiant)",
    target_group: "Un groupe d'équipements",
    target_group_hint: "Un identifiant par ligne.",
    kind: "Type de condition",
    condition: "Condition",
    attribute: "Mesure (attribut)",
    attribute_any: "Mesure (attribut ; vide : n'importe laquelle)",
    direction: "Sens",
    above: "au-dessus du niveau",
    below: "en dessous du niveau",
    rising: "montée",
    falling: "baisse",
    level: "Niveau",
    clear_level: "Niveau de retour à la normale (hystérésis, facultatif)",
    min_duration: "Durée minimale avant l'alerte (minutes)",
    silent_for: "Sans donnée depuis (heures)",
    percent: "Seuil (%)",
    clear_percent: "Seuil de retour à la normale (%, facultatif)",
    scale: "Le capteur envoie",
    scale_ratio: "un rapport de 0 à 1",
    scale_percent: "un pourcentage de 0 à 100",
    per_hour: "Variation par heure (unité de la mesure)",
    clear_per_hour: "Variation de retour à la normale par heure (facultatif)",
    window: "Fenêtre de calcul (minutes)",
    night_level: "Débit minimal de nuit au-delà duquel on soupçonne une fuite",
    nights: "Nuits consécutives",
    night: "Plage de nuit (HH:MM-HH:MM, heure locale)",
    opening: "Heures d'occupation",
    opening_hint: "Plages où la consommation est normale, heure locale, séparées par des virgules (ex. 08:00-12:00, 13:30-19:00) ; vide : inoccupé toute la journée.",
    closed: "Jours de fermeture",
    closed_hint: "Dates AAAA-MM-JJ séparées par des virgules (jours fériés, vacances).",
    behaviour: "Comportement de l'alerte",
    unit: "Unité des messages (code UN/CEFACT, facultatif)",
    unit_hint: "Utilisée quand la mesure n'en porte pas : CEL (°C), MTR (m), KWT (kW)…",
    resolve_delay: "Délai avant clôture automatique quand la condition cesse (minutes)",
    flap_guard: "Anti-rebond : garder l'alerte ouverte si elle oscille",
    flap_rises: "Déclenchements",
    flap_window: "Dans une fenêtre de (minutes)",
    active: "Règle active",
    advanced: "Définition JSON (avancé)",
    optional: "facultatif",
    required: "à renseigner",
    not_a_number: "nombre attendu",
    not_whole: "nombre entier attendu",
    out_of_range: "valeur hors limites",
    unknown: "type inconnu",
};

pub const EN: FormWords = FormWords {
    organisation: "Authority",
    label_fr: "Title (French)",
    label_en: "Title (English)",
    target: "Equipment watched",
    target_type: "All equipment of a type",
    target_entity: "One piece of equipment (id)",
    target_group: "A group of equipment",
    target_group_hint: "One id per line.",
    kind: "Condition type",
    condition: "Condition",
    attribute: "Measurement (attribute)",
    attribute_any: "Measurement (attribute; empty: any)",
    direction: "Direction",
    above: "above the level",
    below: "below the level",
    rising: "rising",
    falling: "falling",
    level: "Level",
    clear_level: "Back-to-normal level (hysteresis, optional)",
    min_duration: "Minimum duration before alerting (minutes)",
    silent_for: "No data for (hours)",
    percent: "Threshold (%)",
    clear_percent: "Back-to-normal threshold (%, optional)",
    scale: "The sensor sends",
    scale_ratio: "a ratio from 0 to 1",
    scale_percent: "a percentage from 0 to 100",
    per_hour: "Change per hour (unit of the measurement)",
    clear_per_hour: "Back-to-normal change per hour (optional)",
    window: "Computation window (minutes)",
    night_level: "Minimum night flow above which a leak is suspected",
    nights: "Consecutive nights",
    night: "Night window (HH:MM-HH:MM, local time)",
    opening: "Occupancy hours",
    opening_hint: "Spans when consumption is normal, local time, comma-separated (e.g. 08:00-12:00, 13:30-19:00); empty: unoccupied all day.",
    closed: "Closed days",
    closed_hint: "Dates YYYY-MM-DD, comma-separated (public and school holidays).",
    behaviour: "Alert behaviour",
    unit: "Unit in messages (UN/CEFACT code, optional)",
    unit_hint: "Used when the measurement carries none: CEL (°C), MTR (m), KWT (kW)…",
    resolve_delay: "Delay before closing by itself once the condition clears (minutes)",
    flap_guard: "Flap guard: keep the alert open when it oscillates",
    flap_rises: "Rises",
    flap_window: "Within a window of (minutes)",
    active: "Rule enabled",
    advanced: "JSON definition (advanced)",
    optional: "optional",
    required: "required",
    not_a_number: "a number is expected",
    not_whole: "a whole number is expected",
    out_of_range: "value out of range",
    unknown: "unknown type",
};

pub fn words(lang: &str) -> &'static FormWords {
    if lang == "en" {
        &EN
    } else {
        &FR
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socle_rules::Rule;

    fn rule_of(f: &RuleFields) -> Rule {
        let mut d = f.to_definition("fr").expect("the form reads");
        let o = d.as_object_mut().unwrap();
        o.remove("enabled");
        o.insert("id".into(), json!("r"));
        serde_json::from_value(d).expect("a valid rule")
    }

    /// Every kind's example, shown in the form and read back, is the same rule:
    /// nothing is lost or changed on the way (French decimals included).
    #[test]
    fn every_kind_round_trips_through_the_form() {
        for (key, fr, en, condition, target) in super::super::alerts::KINDS {
            let spec: RuleSpec = serde_json::from_value(json!({
                "id": "r", "organisation": "commune-a", "label": {"fr": fr, "en": en},
                "target": {"type": target}, "severity": "high", "condition": serde_json::from_str::<Value>(condition).unwrap(),
                "resolveDelaySeconds": 900, "unit": "CEL",
            }))
            .unwrap();
            for lang in ["fr", "en"] {
                let f = RuleFields::from_spec(&spec, true, lang);
                assert_eq!(f.genre, key);
                let back = rule_of(&f);
                assert_eq!(back.spec(), &spec, "{key} in {lang}");
            }
        }
    }

    #[test]
    fn the_chosen_kind_alone_is_read_and_bad_numbers_name_their_field() {
        let mut f = RuleFields::examples("fr");
        f.organisation = "commune-a".into();
        f.libelle_fr = "Trop chaud".into();
        f.libelle_en = "Too hot".into();
        f.cible = "groupe".into();
        f.cible_groupe = "urn:ngsi-ld:Building:a\nurn:ngsi-ld:Building:b, urn:ngsi-ld:Building:a".into();
        f.genre = "threshold".into();
        f.seuil_niveau = "26,5".into();
        f.seuil_retour = String::new();
        f.anti_battement = String::new();
        f.active = String::new();
        f.pile_seuil = "pas un nombre".into(); // another kind: not read
        let d = f.to_definition("fr").unwrap();
        assert_eq!(d["condition"]["level"], json!(26.5));
        assert!(d["condition"].get("clear").is_none());
        assert_eq!(d["flapGuard"], Value::Null);
        assert_eq!(d["enabled"], json!(false));
        let rule = rule_of(&f);
        assert!(matches!(rule.target(), Target::Group(ids) if ids.len() == 2), "duplicates dropped by the rule");

        f.seuil_niveau = "vingt".into();
        let e = f.to_definition("fr").unwrap_err();
        assert_eq!(e.field, FR.level);
        f.seuil_niveau = "20".into();
        f.cible = "type".into();
        f.cible_type = " ".into();
        assert_eq!(f.to_definition("en").unwrap_err().field, EN.target_type);
        f.cible_type = "Building".into();
        f.genre = "nonsense".into();
        assert_eq!(f.to_definition("fr").unwrap_err().field, FR.kind);
    }

    #[test]
    fn occupancy_hours_and_closed_days_are_read_by_weekday() {
        let mut f = RuleFields::examples("fr");
        f.organisation = "commune-a".into();
        f.libelle_fr = "Chauffage".into();
        f.libelle_en = "Heating".into();
        f.cible = "type".into();
        f.cible_type = "Building".into();
        f.genre = "occupancy".into();
        f.occupation_lundi = "08:00-12:00, 13:30-19:00".into();
        f.occupation_samedi = String::new();
        f.occupation_fermetures = "2026-12-25, 2027-01-01".into();
        let rule = rule_of(&f);
        let RuleKind::Occupancy(k) = rule.kind() else { panic!("occupancy") };
        assert_eq!(k.calendar.week.monday.len(), 2);
        assert!(k.calendar.week.saturday.is_empty());
        assert_eq!(k.calendar.closed.len(), 2);
    }
}
