//! Alert messages in French and English, for people who are not specialists:
//! what, where, compared with which level, since when, and the last value.
//!
//! « Niveau de la rivière en hausse de 42 cm/h à la station du Moulin (seuil
//! 30 cm/h), depuis le 12/03/2026 à 14 h 05. Dernière valeur : 3,12 m. »
//!
//! Units are written as people read them (`°C`, `m³/h`, not `CEL`, `MQH`); river
//! heights under a metre are written in centimetres; dates are in the
//! organisation's time zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use socle_domain::UnitCode;

use crate::rate::Trend;
use crate::rule::{Rule, RuleKind};
use crate::threshold::Direction;

/// The same message in both languages of the interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub fr: String,
    pub en: String,
}

/// What a message may say about the entity and its data.
pub(crate) struct Context<'a> {
    pub rule: &'a Rule,
    pub place: &'a str,
    /// The rule's unit, else the unit of the last observation.
    pub unit: Option<&'a UnitCode>,
    /// Last raw reading.
    pub last: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Fr,
    En,
}

/// A display unit: multiply the stored value by `factor` and write `symbol`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shown<'a> {
    factor: f64,
    symbol: &'a str,
}

const PERCENT: Shown<'static> = Shown { factor: 1.0, symbol: "%" };

/// How to show values of `unit` whose typical size is `reference` (the rule's level).
fn shown(unit: Option<&UnitCode>, reference: f64) -> Shown<'_> {
    let Some(unit) = unit else { return Shown { factor: 1.0, symbol: "" } };
    let symbol = match unit.as_str() {
        // A river that rises "0,42 m/h" reads better as "42 cm/h".
        "MTR" if reference.abs() < 1.0 => return Shown { factor: 100.0, symbol: "cm" },
        "MTR" => "m",
        "CMT" => "cm",
        "MMT" => "mm",
        "KMT" => "km",
        "CEL" => "°C",
        "FAH" => "°F",
        "KEL" => "K",
        "P1" => "%",
        "C62" => "",
        "KWH" => "kWh",
        "WHR" => "Wh",
        "MWH" => "MWh",
        "WTT" => "W",
        "KWT" => "kW",
        "MAW" => "MW",
        "MTQ" => "m³",
        "LTR" => "L",
        "MQH" => "m³/h",
        "GQ" => "µg/m³",
        "59" => "ppm",
        "2N" => "dB",
        "A97" => "hPa",
        "KMH" => "km/h",
        "MTS" => "m/s",
        "VLT" => "V",
        "AMP" => "A",
        "HUR" => "h",
        "MIN" => "min",
        "SEC" => "s",
        // The code itself is still better than nothing for the agent who set it up.
        other => other,
    };
    Shown { factor: 1.0, symbol }
}

/// A number as people write it: decimal comma in French, at most three significant
/// decimals, no trailing zeros.
fn number(v: f64, lang: Lang) -> String {
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    // Round half away from zero as people do (`format!` alone rounds 1234.5 to 1234).
    let p = 10f64.powi(decimals as i32);
    let rounded = (v * p).round() / p;
    let mut s = format!("{rounded:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".to_owned();
    }
    if lang == Lang::Fr {
        s = s.replace('.', ",");
    }
    s
}

fn quantity(v: f64, unit: Shown<'_>, lang: Lang) -> String {
    let n = number(v * unit.factor, lang);
    if unit.symbol.is_empty() {
        n
    } else {
        format!("{n} {}", unit.symbol)
    }
}

fn per_hour(v: f64, unit: Shown<'_>, lang: Lang) -> String {
    let n = number(v * unit.factor, lang);
    if unit.symbol.is_empty() {
        format!("{n}/h")
    } else {
        format!("{n} {}/h", unit.symbol)
    }
}

fn when(t: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = t.with_timezone(&tz);
    match lang {
        Lang::Fr => local.format("%d/%m/%Y à %H h %M").to_string(),
        Lang::En => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

fn day(t: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = t.with_timezone(&tz);
    match lang {
        Lang::Fr => local.format("%d/%m/%Y").to_string(),
        Lang::En => local.format("%Y-%m-%d").to_string(),
    }
}

/// A duration in plain words: "6 h", "1 h 30 min", "2 jours" / "2 days".
fn duration(seconds: u32, lang: Lang) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(match (lang, d) {
            (Lang::Fr, 1) => "1 jour".to_owned(),
            (Lang::Fr, _) => format!("{d} jours"),
            (Lang::En, 1) => "1 day".to_owned(),
            (Lang::En, _) => format!("{d} days"),
        });
    }
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

impl Context<'_> {
    fn label(&self, lang: Lang) -> &str {
        match lang {
            Lang::Fr => self.rule.label().fr(),
            Lang::En => self.rule.label().en(),
        }
    }

    /// The last reading in the unit people expect for it; levels in percent.
    fn last_value(&self, lang: Lang) -> Option<String> {
        let v = self.last?;
        Some(match self.rule.kind() {
            RuleKind::Fill(k) => quantity(k.scale.to_percent(v), PERCENT, lang),
            RuleKind::BatteryLow(k) => quantity(k.scale.to_percent(v), PERCENT, lang),
            _ => quantity(v, shown(self.unit, v), lang),
        })
    }

    fn last_sentence(&self, lang: Lang) -> String {
        match (self.last_value(lang), lang) {
            (Some(v), Lang::Fr) => format!(" Dernière valeur : {v}."),
            (Some(v), Lang::En) => format!(" Last value: {v}."),
            (None, _) => String::new(),
        }
    }

    fn both(&self, f: impl Fn(Lang) -> String) -> Message {
        Message { fr: f(Lang::Fr), en: f(Lang::En) }
    }

    /// The alert opens: `value` is what was compared with the level.
    pub(crate) fn opened(&self, since: DateTime<Utc>, value: Option<f64>) -> Message {
        self.both(|lang| self.opened_in(lang, since, value))
    }

    fn opened_in(&self, lang: Lang, since: DateTime<Utc>, value: Option<f64>) -> String {
        let (label, place, tz) = (self.label(lang), self.place, self.rule.timezone());
        let date = when(since, tz, lang);
        let last = self.last_sentence(lang);
        let fr = lang == Lang::Fr;
        let v = value.unwrap_or(f64::NAN);
        match self.rule.kind() {
            RuleKind::Threshold(k) => {
                let u = shown(self.unit, k.level);
                let (val, level) = (quantity(v, u, lang), quantity(k.level, u, lang));
                match (k.direction, fr) {
                    (Direction::Above, true) => {
                        format!("{label} : {val} à {place}, au-dessus du seuil de {level}, depuis le {date}.")
                    }
                    (Direction::Below, true) => {
                        format!("{label} : {val} à {place}, en dessous du seuil de {level}, depuis le {date}.")
                    }
                    (Direction::Above, false) => {
                        format!("{label}: {val} at {place}, above the {level} threshold, since {date}.")
                    }
                    (Direction::Below, false) => {
                        format!("{label}: {val} at {place}, below the {level} threshold, since {date}.")
                    }
                }
            }
            RuleKind::Silence(k) => {
                let allowed = duration(k.after_seconds, lang);
                if fr {
                    format!("{label} : aucune donnée reçue à {place} depuis le {date} (délai admis : {allowed}).{last}")
                } else {
                    format!("{label}: no data received at {place} since {date} (allowed delay: {allowed}).{last}")
                }
            }
            RuleKind::BatteryLow(k) => {
                let (val, level) = (quantity(v, PERCENT, lang), quantity(k.percent, PERCENT, lang));
                if fr {
                    format!("{label} : pile faible à {place} ({val}, seuil {level}), depuis le {date}.")
                } else {
                    format!("{label}: low battery at {place} ({val}, threshold {level}), since {date}.")
                }
            }
            RuleKind::Rate(k) => {
                let u = shown(self.unit, k.per_hour);
                let (rate, level) = (per_hour(v, u, lang), per_hour(k.per_hour, u, lang));
                match (k.direction, fr) {
                    (Trend::Rising, true) => {
                        format!("{label} en hausse de {rate} à {place} (seuil {level}), depuis le {date}.{last}")
                    }
                    (Trend::Falling, true) => {
                        format!("{label} en baisse de {rate} à {place} (seuil {level}), depuis le {date}.{last}")
                    }
                    (Trend::Rising, false) => {
                        format!("{label} rising by {rate} at {place} (threshold {level}), since {date}.{last}")
                    }
                    (Trend::Falling, false) => {
                        format!("{label} falling by {rate} at {place} (threshold {level}), since {date}.{last}")
                    }
                }
            }
            RuleKind::Leak(k) => {
                let u = shown(self.unit, k.level);
                let (val, level) = (quantity(v, u, lang), quantity(k.level, u, lang));
                let night = day(since, tz, lang);
                let n = k.nights;
                match (fr, n) {
                    (true, 1) => format!(
                        "{label} : fuite probable à {place}, débit minimal de la nuit {val} (seuil {level}), nuit du {night}."
                    ),
                    (true, _) => format!(
                        "{label} : fuite probable à {place}, débit minimal de nuit au-dessus de {level} {n} nuits de suite \
                         (dernière nuit : {val}), depuis la nuit du {night}."
                    ),
                    (false, 1) => format!(
                        "{label}: probable leak at {place}, minimum night flow {val} (threshold {level}), night of {night}."
                    ),
                    (false, _) => format!(
                        "{label}: probable leak at {place}, minimum night flow above {level} for {n} nights in a row \
                         (last night: {val}), since the night of {night}."
                    ),
                }
            }
            RuleKind::Fill(k) => {
                let (val, level) = (quantity(v, PERCENT, lang), quantity(k.percent, PERCENT, lang));
                if fr {
                    format!("{label} à collecter à {place} : rempli à {val} (seuil {level}), depuis le {date}.")
                } else {
                    format!("{label} to collect at {place}: {val} full (threshold {level}), since {date}.")
                }
            }
            RuleKind::Occupancy(k) => {
                let u = shown(self.unit, k.level);
                let (val, level) = (quantity(v, u, lang), quantity(k.level, u, lang));
                if fr {
                    format!("{label} : {val} à {place} alors que le site est fermé (seuil {level}), depuis le {date}.")
                } else {
                    format!("{label}: {val} at {place} while the site is closed (threshold {level}), since {date}.")
                }
            }
        }
    }

    /// The condition cleared and the alert resolves by itself.
    pub(crate) fn resolved(&self) -> Message {
        self.both(|lang| {
            let (label, place, last) = (self.label(lang), self.place, self.last_sentence(lang));
            match (self.rule.kind(), lang) {
                (RuleKind::Silence(_), Lang::Fr) => {
                    format!("{label} : les données arrivent de nouveau à {place}.{last}")
                }
                (RuleKind::Silence(_), Lang::En) => format!("{label}: data is arriving again at {place}.{last}"),
                (_, Lang::Fr) => format!("{label} : retour à la normale à {place}.{last}"),
                (_, Lang::En) => format!("{label}: back to normal at {place}.{last}"),
            }
        })
    }

    /// The rule that opened the alert was deleted or no longer watches the entity.
    pub(crate) fn withdrawn(&self) -> Message {
        self.both(|lang| {
            let (label, place) = (self.label(lang), self.place);
            match lang {
                Lang::Fr => format!("{label} : alerte close à {place}, la règle a été supprimée ou modifiée."),
                Lang::En => format!("{label}: alert closed at {place}, the rule was deleted or changed."),
            }
        })
    }

    /// The alert is flapping and stays open until things stay normal for a window.
    pub(crate) fn flapping(&self, rises: u32, window_seconds: u32) -> Message {
        self.both(|lang| {
            let (label, place, window) = (self.label(lang), self.place, duration(window_seconds, lang));
            match lang {
                Lang::Fr => format!(
                    "{label} : situation instable à {place} ({rises} déclenchements en moins de {window}) ; \
                     l'alerte reste ouverte jusqu'à {window} sans anomalie."
                ),
                Lang::En => format!(
                    "{label}: unstable situation at {place} ({rises} triggers within {window}); \
                     the alert stays open until {window} without anomaly."
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_people_write_them() {
        assert_eq!(number(42.000000001, Lang::Fr), "42");
        assert_eq!(number(3.12, Lang::Fr), "3,12");
        assert_eq!(number(3.12, Lang::En), "3.12");
        assert_eq!(number(28.54, Lang::Fr), "28,5");
        assert_eq!(number(0.0042, Lang::Fr), "0,004");
        assert_eq!(number(-0.0001, Lang::Fr), "0");
        assert_eq!(number(1234.5, Lang::En), "1235");
    }

    #[test]
    fn units_and_durations() {
        let m = UnitCode::parse("MTR").unwrap();
        assert_eq!(quantity(0.3, shown(Some(&m), 0.3), Lang::Fr), "30 cm");
        assert_eq!(quantity(3.12, shown(Some(&m), 3.12), Lang::Fr), "3,12 m");
        assert_eq!(per_hour(0.42, shown(Some(&m), 0.3), Lang::Fr), "42 cm/h");
        let c = UnitCode::parse("CEL").unwrap();
        assert_eq!(quantity(26.0, shown(Some(&c), 26.0), Lang::En), "26 °C");
        assert_eq!(quantity(5.0, shown(None, 5.0), Lang::En), "5");
        assert_eq!(duration(6 * 3600, Lang::Fr), "6 h");
        assert_eq!(duration(5400, Lang::En), "1 h 30 min");
        assert_eq!(duration(2 * 86_400, Lang::Fr), "2 jours");
        assert_eq!(duration(86_400 + 60, Lang::En), "1 day 1 min");
    }
}
