//! The words of a notification, in French (default) or English: what
//! happened, where (a link to the map), since when (local time), the last value.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::subscription::Language;
use crate::{AlertNotice, NoticeKind, Severity};

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// E-mail subject, push title.
    pub subject: String,
    /// Plain text with every detail (e-mail).
    pub body: String,
    /// One short line (SMS, push body).
    pub short: String,
    /// The entity on the map.
    pub link: String,
}

/// Symbols of the UN/CEFACT unit codes Socle's sensors report; others print as their code.
pub fn unit_symbol(code: &str) -> &str {
    match code {
        "MQH" => "m³/h",
        "MTQ" => "m³",
        "LTR" => "L",
        "L2" => "L/min",
        "CEL" => "°C",
        "P1" => "%",
        "KWH" => "kWh",
        "WTT" => "W",
        "KWT" => "kW",
        "BAR" => "bar",
        "MTR" => "m",
        "CMT" => "cm",
        "MMT" => "mm",
        "GQ" => "µg/m³",
        "59" => "ppm",
        "VLT" => "V",
        "LUX" => "lx",
        "2N" => "dB",
        "A97" => "hPa",
        "KMH" => "km/h",
        other => other,
    }
}

/// `4,2` in French, `4.2` in English; at most two decimals, no trailing zeros.
pub fn number(v: f64, lang: Language) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    let s = if s == "-0" { "0" } else { s };
    match lang {
        Language::Fr => s.replace('.', ","),
        Language::En => s.to_owned(),
    }
}

fn severity_en(s: Severity) -> &'static str {
    match s {
        Severity::Informational => "informational",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The notice in words. `tz` is the organisation's time zone.
pub fn render(n: &AlertNotice, lang: Language, public_url: &str, tz: Tz) -> Message {
    let link = format!("{}/carte?entite={}", public_url.trim_end_matches('/'), n.entity_id);
    let since = n.since.with_timezone(&tz);
    let value = n.last_value.as_ref().map(|(v, unit)| {
        let unit = unit.as_deref().map(unit_symbol).map(|u| format!("\u{a0}{u}")).unwrap_or_default();
        format!("{}{unit}", number(*v, lang))
    });
    match lang {
        Language::Fr => {
            let sev = n.severity.label_fr();
            let head = match n.change {
                NoticeKind::Opened => format!("Alerte {sev}"),
                NoticeKind::Escalated => format!("Alerte {sev} non acquittée"),
                NoticeKind::Resolved => "Fin d'alerte".to_owned(),
            };
            let subject = format!("[Socle] {head} — {} — {}", n.title_fr, n.entity_name);
            let since_text = since.format("%d/%m/%Y à %H:%M").to_string();
            let mut body = format!(
                "{head} : {}\n\nOù : {}\nDepuis le {since_text} (heure locale, {tz})\n",
                n.title_fr, n.entity_name
            );
            if let Some(v) = &value {
                body.push_str(&format!("Dernière valeur : {v}\n"));
            }
            if n.change == NoticeKind::Escalated {
                body.push_str("\nPersonne n'a encore acquitté cette alerte : elle vous est transmise.\n");
            }
            body.push_str(&format!("\nVoir sur la carte : {link}\n"));
            let short = format!(
                "{head} : {} — {} depuis le {since_text}{}",
                n.title_fr,
                n.entity_name,
                value.as_ref().map(|v| format!(" ({v})")).unwrap_or_default()
            );
            Message { subject, body, short, link }
        }
        Language::En => {
            let sev = severity_en(n.severity);
            let head = match n.change {
                NoticeKind::Opened => format!("{} alert", capitalise(sev)),
                NoticeKind::Escalated => format!("Unacknowledged {sev} alert"),
                NoticeKind::Resolved => "Alert resolved".to_owned(),
            };
            let subject = format!("[Socle] {head} — {} — {}", n.title_en, n.entity_name);
            let since_text = since.format("%Y-%m-%d %H:%M").to_string();
            let mut body =
                format!("{head}: {}\n\nWhere: {}\nSince {since_text} (local time, {tz})\n", n.title_en, n.entity_name);
            if let Some(v) = &value {
                body.push_str(&format!("Last value: {v}\n"));
            }
            if n.change == NoticeKind::Escalated {
                body.push_str("\nNobody has acknowledged this alert yet: it is passed on to you.\n");
            }
            body.push_str(&format!("\nSee it on the map: {link}\n"));
            let short = format!(
                "{head}: {} — {} since {since_text}{}",
                n.title_en,
                n.entity_name,
                value.as_ref().map(|v| format!(" ({v})")).unwrap_or_default()
            );
            Message { subject, body, short, link }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use socle_domain::{EntityId, OrganisationId};

    use super::*;

    pub(crate) fn notice() -> AlertNotice {
        AlertNotice {
            alert_id: "a1".into(),
            change: NoticeKind::Opened,
            organisation: OrganisationId::parse("commune-a").unwrap(),
            entity_id: EntityId::parse("urn:ngsi-ld:WaterMeter:nord").unwrap(),
            entity_name: "Compteur secteur Nord".into(),
            domain: "eau".into(),
            severity: Severity::High,
            title_fr: "Fuite suspectée".into(),
            title_en: "Suspected leak".into(),
            since: chrono::Utc.with_ymd_and_hms(2026, 11, 29, 23, 12, 0).unwrap(),
            last_value: Some((4.2, Some("MQH".into()))),
            location: Some((0.34, 46.58)),
        }
    }

    #[test]
    fn french_by_default_with_map_link_local_time_and_unit() {
        let m = render(&notice(), Language::Fr, "https://socle.example.fr/", chrono_tz::Europe::Paris);
        assert_eq!(m.subject, "[Socle] Alerte élevée — Fuite suspectée — Compteur secteur Nord");
        assert!(m.body.contains("Depuis le 30/11/2026 à 00:12"), "{}", m.body);
        assert!(m.body.contains("Dernière valeur : 4,2\u{a0}m³/h"), "{}", m.body);
        assert_eq!(m.link, "https://socle.example.fr/carte?entite=urn:ngsi-ld:WaterMeter:nord");
        let en = render(&notice(), Language::En, "https://socle.example.fr", chrono_tz::Europe::Paris);
        assert_eq!(en.subject, "[Socle] High alert — Suspected leak — Compteur secteur Nord");
        assert!(en.body.contains("Last value: 4.2\u{a0}m³/h"));
    }

    #[test]
    fn numbers() {
        assert_eq!(number(4.2, Language::Fr), "4,2");
        assert_eq!(number(12.0, Language::Fr), "12");
        assert_eq!(number(-0.001, Language::En), "0");
        assert_eq!(number(1234.567, Language::En), "1234.57");
    }
}
