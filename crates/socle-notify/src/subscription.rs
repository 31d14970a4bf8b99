//! What a user subscribes to, and what an organisation's webhook receives:
//! filters (organisations, domains, minimum severity, an area drawn on the
//! map), channels, quiet hours and escalation. Parsed and checked here once;
//! storage keeps them as JSON.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use socle_domain::{Geometry, OrganisationId};

use crate::{AlertNotice, NoticeKind, Severity};

/// The domains an alert belongs to.
pub const DOMAINS: [&str; 7] = ["eau", "dechets", "risques", "eclairage", "batiments", "stationnement", "air"];

/// Most filters a subscription may list, most vertices of its area.
const MAX_LIST: usize = 100;
const MAX_AREA_POSITIONS: usize = 10_000;
/// Longest escalation delay: a week.
const MAX_ESCALATION_MINUTES: u32 = 7 * 24 * 60;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("unknown domain {0:?} (expected one of eau, dechets, risques, eclairage, batiments, stationnement, air)")]
    UnknownDomain(String),
    #[error("the area must be a GeoJSON Polygon or MultiPolygon")]
    AreaNotPolygon,
    #[error("the area has more than {MAX_AREA_POSITIONS} positions")]
    AreaTooLarge,
    #[error("more than {MAX_LIST} entries in a list")]
    TooMany,
    #[error("no channel chosen (email, webpush or sms)")]
    NoChannel,
    #[error("{0:?} is not a phone number in international form (+33…)")]
    BadPhone(String),
    #[error("{0:?} is not a time of day (HH:MM)")]
    BadTime(String),
    #[error("quiet hours must not start and end at the same time")]
    EmptyWindow,
    #[error("escalation delay must be between 1 and {MAX_ESCALATION_MINUTES} minutes")]
    BadDelay,
    #[error("the escalation target must be another person")]
    SelfEscalation,
    #[error("{0}")]
    BadUrl(String),
}

/// How a subscriber is reached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Channels {
    #[serde(default)]
    pub email: bool,
    /// Every browser the user registered for Web Push.
    #[serde(default)]
    pub webpush: bool,
    /// A phone number in international form (`+33612345678`).
    #[serde(default)]
    pub sms: Option<String>,
}

/// A local time window when only critical alerts go through; others wait for its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, local time.
    pub from: String,
    pub to: String,
    /// Defaults to the alert's organisation's time zone (Europe/Paris by default).
    #[serde(default)]
    pub timezone: Option<Tz>,
}

/// To whom an alert goes when nobody acknowledged it in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Escalation {
    pub after_minutes: u32,
    /// The user id of the person to alert (e-mail and their registered browsers).
    pub to: uuid::Uuid,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Fr,
    En,
}

fn informational() -> Severity {
    Severity::Informational
}

fn yes() -> bool {
    true
}

/// A user's subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Organisations whose alerts to receive; empty: every one the user may see.
    #[serde(default)]
    pub organisations: Vec<OrganisationId>,
    /// Empty: every domain.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default = "informational")]
    pub min_severity: Severity,
    /// Only alerts located inside this polygon (an alert without location does not match).
    #[serde(default)]
    pub area: Option<Geometry>,
    pub channels: Channels,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default)]
    pub escalation: Option<Escalation>,
    /// Also tell when the alert ends.
    #[serde(default = "yes")]
    pub resolved: bool,
    #[serde(default)]
    pub language: Language,
}

/// What an organisation's webhook receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSpec {
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default = "informational")]
    pub min_severity: Severity,
}

fn check_domains(domains: &[String]) -> Result<(), SpecError> {
    if domains.len() > MAX_LIST {
        return Err(SpecError::TooMany);
    }
    match domains.iter().find(|d| !DOMAINS.contains(&d.as_str())) {
        Some(d) => Err(SpecError::UnknownDomain(d.clone())),
        None => Ok(()),
    }
}

fn parse_time(s: &str) -> Result<NaiveTime, SpecError> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| SpecError::BadTime(s.to_owned()))
}

fn is_phone(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

impl SubscriptionSpec {
    pub fn validate(&self, owner: uuid::Uuid) -> Result<(), SpecError> {
        check_domains(&self.domains)?;
        if self.organisations.len() > MAX_LIST {
            return Err(SpecError::TooMany);
        }
        match &self.area {
            None => {}
            Some(Geometry::Polygon(rings)) if rings.iter().map(Vec::len).sum::<usize>() > MAX_AREA_POSITIONS => {
                return Err(SpecError::AreaTooLarge)
            }
            Some(Geometry::MultiPolygon(p)) if p.iter().flatten().map(Vec::len).sum::<usize>() > MAX_AREA_POSITIONS => {
                return Err(SpecError::AreaTooLarge)
            }
            Some(Geometry::Polygon(_) | Geometry::MultiPolygon(_)) => {}
            Some(_) => return Err(SpecError::AreaNotPolygon),
        }
        let c = &self.channels;
        if !c.email && !c.webpush && c.sms.is_none() {
            return Err(SpecError::NoChannel);
        }
        if let Some(p) = c.sms.as_deref().filter(|p| !is_phone(p)) {
            return Err(SpecError::BadPhone(p.to_owned()));
        }
        if let Some(q) = &self.quiet_hours {
            if parse_time(&q.from)? == parse_time(&q.to)? {
                return Err(SpecError::EmptyWindow);
            }
        }
        if let Some(e) = &self.escalation {
            if e.after_minutes == 0 || e.after_minutes > MAX_ESCALATION_MINUTES {
                return Err(SpecError::BadDelay);
            }
            if e.to == owner {
                return Err(SpecError::SelfEscalation);
            }
        }
        Ok(())
    }

    /// Whether the notice passes this subscription's filters. Whether the
    /// user may see it at all is decided separately, by the policy.
    pub fn matches(&self, n: &AlertNotice) -> bool {
        if n.change == NoticeKind::Resolved && !self.resolved {
            return false;
        }
        (self.organisations.is_empty() || self.organisations.contains(&n.organisation))
            && (self.domains.is_empty() || self.domains.contains(&n.domain))
            && n.severity >= self.min_severity
            && match &self.area {
                None => true,
                Some(area) => n.location.is_some_and(|(lon, lat)| contains(area, lon, lat)),
            }
    }

    /// When a delivery decided at `now` may go out: at once, or at the end
    /// of the quiet hours. Critical alerts always go at once.
    pub fn due_at(&self, now: DateTime<Utc>, severity: Severity, organisation_tz: Tz) -> DateTime<Utc> {
        match &self.quiet_hours {
            Some(q) if severity < Severity::Critical => q.end_if_inside(now, organisation_tz).unwrap_or(now),
            _ => now,
        }
    }
}

impl QuietHours {
    /// The end of the window if `now` is inside it.
    pub fn end_if_inside(&self, now: DateTime<Utc>, default_tz: Tz) -> Option<DateTime<Utc>> {
        let (from, to) = (parse_time(&self.from).ok()?, parse_time(&self.to).ok()?);
        let tz = self.timezone.unwrap_or(default_tz);
        let local = now.with_timezone(&tz);
        let t = local.time();
        let inside = if from < to { t >= from && t < to } else { t >= from || t < to };
        if !inside {
            return None;
        }
        // A window across midnight, entered before midnight, ends tomorrow.
        let day = if from > to && t >= from { local.date_naive() + Duration::days(1) } else { local.date_naive() };
        let end = day.and_time(to);
        // A time skipped by a clock change (spring) does not exist: the hour after it does.
        let end = tz
            .from_local_datetime(&end)
            .earliest()
            .or_else(|| tz.from_local_datetime(&(end + Duration::hours(1))).earliest())?;
        Some(end.with_timezone(&Utc).max(now))
    }
}

impl WebhookSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        check_domains(&self.domains)
    }

    pub fn matches(&self, n: &AlertNotice) -> bool {
        (self.domains.is_empty() || self.domains.contains(&n.domain)) && n.severity >= self.min_severity
    }
}

/// A webhook URL: http or https, with a host, at most 2,048 characters.
pub fn check_webhook_url(url: &str) -> Result<(), SpecError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| SpecError::BadUrl(format!("not a URL: {e}")))?;
    if url.len() > 2048 {
        return Err(SpecError::BadUrl("URL longer than 2,048 characters".into()));
    }
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(SpecError::BadUrl("only http and https URLs with a host".into()));
    }
    Ok(())
}

/// Whether the point lies in the polygon (outer ring in, holes out), by ray casting.
fn contains(area: &Geometry, lon: f64, lat: f64) -> bool {
    let in_polygon = |rings: &Vec<Vec<[f64; 2]>>| {
        let mut rings = rings.iter();
        rings.next().is_some_and(|outer| in_ring(outer, lon, lat)) && !rings.any(|hole| in_ring(hole, lon, lat))
    };
    match area {
        Geometry::Polygon(rings) => in_polygon(rings),
        Geometry::MultiPolygon(polys) => polys.iter().any(in_polygon),
        _ => false,
    }
}

fn in_ring(ring: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = ring.len().saturating_sub(1);
    for i in 0..ring.len() {
        let ([xi, yi], [xj, yj]) = (ring[i], ring[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> SubscriptionSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn quiet_hours_across_midnight_defer_to_the_morning_in_paris() {
        let q = QuietHours { from: "22:00".into(), to: "07:00".into(), timezone: None };
        let paris = chrono_tz::Europe::Paris;
        // 23:30 in Paris (winter, UTC+1) → 07:00 the next morning.
        let at = Utc.with_ymd_and_hms(2026, 1, 15, 22, 30, 0).unwrap();
        assert_eq!(q.end_if_inside(at, paris), Some(Utc.with_ymd_and_hms(2026, 1, 16, 6, 0, 0).unwrap()));
        // 05:00 in Paris → 07:00 the same day.
        let at = Utc.with_ymd_and_hms(2026, 1, 16, 4, 0, 0).unwrap();
        assert_eq!(q.end_if_inside(at, paris), Some(Utc.with_ymd_and_hms(2026, 1, 16, 6, 0, 0).unwrap()));
        // 12:00: outside.
        assert_eq!(q.end_if_inside(Utc.with_ymd_and_hms(2026, 1, 16, 11, 0, 0).unwrap(), paris), None);
        // In La Réunion (UTC+4), the organisation's zone applies.
        let at = Utc.with_ymd_and_hms(2026, 1, 15, 19, 0, 0).unwrap(); // 23:00 local
        assert_eq!(
            q.end_if_inside(at, chrono_tz::Indian::Reunion),
            Some(Utc.with_ymd_and_hms(2026, 1, 16, 3, 0, 0).unwrap())
        );
    }

    #[test]
    fn critical_alerts_ignore_quiet_hours() {
        let s = spec(serde_json::json!({"channels": {"email": true}, "quietHours": {"from": "00:00", "to": "23:59"}}));
        let now = Utc.with_ymd_and_hms(2026, 1, 16, 11, 0, 0).unwrap();
        assert_eq!(s.due_at(now, Severity::Critical, chrono_tz::Europe::Paris), now);
        assert!(s.due_at(now, Severity::High, chrono_tz::Europe::Paris) > now);
    }

    #[test]
    fn validation_refuses_what_cannot_work() {
        let me = uuid::Uuid::new_v4();
        let ok = spec(serde_json::json!({"channels": {"sms": "+33612345678"}, "domains": ["eau"]}));
        assert_eq!(ok.validate(me), Ok(()));
        for (bad, err) in [
            (serde_json::json!({"channels": {}}), SpecError::NoChannel),
            (serde_json::json!({"channels": {"sms": "0612"}}), SpecError::BadPhone("0612".into())),
            (
                serde_json::json!({"channels": {"email": true}, "domains": ["feu"]}),
                SpecError::UnknownDomain("feu".into()),
            ),
            (
                serde_json::json!({"channels": {"email": true}, "area": {"type": "Point", "coordinates": [0.3, 46.5]}}),
                SpecError::AreaNotPolygon,
            ),
            (
                serde_json::json!({"channels": {"email": true}, "quietHours": {"from": "25:00", "to": "07:00"}}),
                SpecError::BadTime("25:00".into()),
            ),
            (
                serde_json::json!({"channels": {"email": true}, "escalation": {"afterMinutes": 10, "to": me}}),
                SpecError::SelfEscalation,
            ),
        ] {
            assert_eq!(spec(bad).validate(me), Err(err));
        }
        assert!(serde_json::from_value::<SubscriptionSpec>(serde_json::json!({"channels": {}, "x": 1})).is_err());
    }

    #[test]
    fn areas_contain_points_and_exclude_holes() {
        let square = |x0: f64, y0: f64, x1: f64, y1: f64| vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]];
        let area = Geometry::Polygon(vec![square(0.0, 46.0, 1.0, 47.0), square(0.4, 46.4, 0.6, 46.6)]);
        assert!(contains(&area, 0.2, 46.2));
        assert!(!contains(&area, 0.5, 46.5));
        assert!(!contains(&area, 1.5, 46.5));
        assert!(contains(&Geometry::MultiPolygon(vec![vec![square(2.0, 2.0, 3.0, 3.0)]]), 2.5, 2.5));
    }
}
