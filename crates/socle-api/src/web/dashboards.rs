//! Domain dashboards and the élu view: figures computed on the server from
//! the stored rollups (hourly and daily sums, never raw scans), read through
//! the caller's [`Scoped`] handle so each person counts only what they may
//! see. Every figure states its period and what it is compared with.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use socle_domain::{
    Attribute, AttributeName, Entity, EntityFilter, EntityId, EntityType, RollupPoint, SeriesPoints, SeriesQuery, Step,
    TimeRange,
};
use socle_storage::StoreError;

use super::layers::{self, Layer};
use super::urlencode;
use crate::policy::Scoped;
use crate::routes::map::{address, all_entities, text_attr};

/// A headline figure.
pub struct Kpi {
    pub label: String,
    pub value: String,
    pub note: String,
}

pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    pub num: bool,
}

pub struct Table {
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// What a dashboard shows; the same template renders every domain.
#[derive(Default)]
pub struct Dashboard {
    pub period: String,
    pub kpis: Vec<Kpi>,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
    /// Plain sentences for the élu view.
    pub sentences: Vec<String>,
}

/// French or English.
#[derive(Clone, Copy)]
pub struct Tr {
    pub fr: bool,
}

impl Tr {
    fn s(self, fr: &str, en: &str) -> String {
        if self.fr { fr } else { en }.to_owned()
    }
    fn num(self, v: f64, digits: usize) -> String {
        let s = format!("{v:.digits$}");
        let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
        let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("−", i));
        let sep = if self.fr { '\u{202f}' } else { ',' };
        let mut grouped = String::new();
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(sep);
            }
            grouped.push(ch);
        }
        match frac {
            Some(f) => format!("{sign}{grouped}{}{f}", if self.fr { ',' } else { '.' }),
            None => format!("{sign}{grouped}"),
        }
    }
    fn pct(self, v: f64) -> String {
        let sign = if v > 0.0 { "+" } else { "" };
        format!("{sign}{} %", self.num(v, 0))
    }
    fn date(self, t: DateTime<Tz>) -> String {
        if self.fr {
            t.format("%d/%m/%Y").to_string()
        } else {
            t.format("%Y-%m-%d").to_string()
        }
    }
}

fn cell(text: impl Into<String>) -> Cell {
    Cell { text: text.into(), href: None, num: false }
}
fn num_cell(text: impl Into<String>) -> Cell {
    Cell { text: text.into(), href: None, num: true }
}
fn link(e: &Entity) -> Cell {
    Cell {
        text: e.name().unwrap_or(e.id.as_str()).to_owned(),
        href: Some(format!("/entites/{}", urlencode(e.id.as_str()))),
        num: false,
    }
}

/// The period of a dashboard: the last `days` whole local days up to now,
/// and the one it is compared with.
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: i64,
    pub tz: Tz,
}

impl Period {
    pub fn last_days(days: i64, now: DateTime<Utc>, tz: Tz) -> Period {
        let today = now.with_timezone(&tz).date_naive();
        let start = today - Duration::days(days - 1);
        let from = tz
            .from_local_datetime(&start.and_time(NaiveTime::MIN))
            .earliest()
            .map_or(now - Duration::days(days), |t| t.with_timezone(&Utc));
        Period { from, to: now, days, tz }
    }
    fn previous(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.from - Duration::days(self.days), self.from)
    }
    fn describe(&self, tr: Tr) -> String {
        let (f, t) = (tr.date(self.from.with_timezone(&self.tz)), tr.date(self.to.with_timezone(&self.tz)));
        if tr.fr {
            format!("{} derniers jours, du {f} au {t} (heure locale)", self.days)
        } else {
            format!("last {} days, {f} to {t} (local time)", self.days)
        }
    }
}

async fn of_types(scoped: &Scoped, types: &[&str]) -> Result<Vec<Entity>, StoreError> {
    let mut out = Vec::new();
    for t in types {
        let Ok(entity_type) = EntityType::parse(t) else { continue };
        out.extend(all_entities(scoped, EntityFilter { entity_type: Some(entity_type), ..Default::default() }).await?);
    }
    Ok(out)
}

async fn buckets(
    scoped: &Scoped,
    id: &EntityId,
    attribute: &str,
    step: Step,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RollupPoint>, StoreError> {
    let (Ok(attribute), Ok(range)) = (AttributeName::parse(attribute), TimeRange::new(from, to)) else {
        return Ok(Vec::new());
    };
    let q = SeriesQuery { entity: id.clone(), attribute, range, step, limit: 100_000 };
    match scoped.series(&q).await {
        Ok(SeriesPoints::Buckets(b)) => Ok(b),
        Ok(SeriesPoints::Raw(_)) | Err(StoreError::UnknownEntity(_)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The sum of a series over a period from daily rollups; `None` without any point.
async fn total(
    scoped: &Scoped,
    id: &EntityId,
    attribute: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<f64>, StoreError> {
    let b = buckets(scoped, id, attribute, Step::Day, from, to).await?;
    Ok((!b.is_empty()).then(|| b.iter().map(|x| x.sum).sum()))
}

fn number_attr(e: &Entity, name: &str) -> Option<f64> {
    match e.attributes.iter().find(|(k, _)| k.as_str() == name).map(|(_, a)| a)? {
        Attribute::Property { value, .. } => value.as_f64(),
        _ => None,
    }
}

fn current(e: &Entity) -> Option<&Value> {
    let attr = layers::state_attribute(e.entity_type.as_str())?;
    match e.attributes.iter().find(|(k, _)| k.as_str() == attr).map(|(_, a)| a)? {
        Attribute::Property { value, .. } => Some(value),
        _ => None,
    }
}

fn relation(e: &Entity, name: &str) -> Option<EntityId> {
    match e.attributes.iter().find(|(k, _)| k.as_str() == name).map(|(_, a)| a)? {
        Attribute::Relationship { object, .. } => Some(object.clone()),
        _ => None,
    }
}

fn change(now: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| (now - before) / before * 100.0)
}

/// The dashboard of one domain.
pub async fn dashboard(scoped: &Scoped, layer: Layer, period: &Period, tr: Tr) -> Result<Dashboard, StoreError> {
    let mut d = Dashboard { period: period.describe(tr), ..Default::default() };
    match layer {
        Layer::Buildings => buildings(scoped, period, tr, &mut d).await?,
        Layer::Lighting => lighting(scoped, period, tr, &mut d).await?,
        Layer::Water => water(scoped, period, tr, &mut d).await?,
        Layer::Waste => waste(scoped, period, tr, &mut d).await?,
        Layer::Parking => parking(scoped, period, tr, &mut d).await?,
        Layer::Air => air(scoped, period, tr, &mut d).await?,
        Layer::Risks => risks(scoped, period, tr, &mut d).await?,
    }
    Ok(d)
}

// ---------------------------------------------------------------- buildings

/// Base of the unified heating degree days (DJU): 18 °C.
pub const DJU_BASE: f64 = 18.0;

/// Heating degree days of a period from daily temperature rollups:
/// Σ max(0, 18 °C − the day's mean), a day cut by the end of the period
/// counting for the share of it that is inside.
fn degree_days(days: &[RollupPoint], to: DateTime<Utc>) -> f64 {
    days.iter().map(|d| (DJU_BASE - d.avg()).max(0.0) * share_before(d.t, to)).sum()
}

/// The share of the day starting at `t` that lies before `to` (0 to 1).
fn share_before(t: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - t).num_seconds() as f64 / 86_400.0).clamp(0.0, 1.0)
}

/// Whether daily rollups cover a period (a day of slack for the edges).
fn covers(days: &[RollupPoint], from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    !days.is_empty() && days.len() as i64 + 1 >= (to - from).num_days()
}

/// The same instant a year earlier (29 February becomes the 28th).
fn a_year_before(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_sub_months(chrono::Months::new(12)).unwrap_or(t - Duration::days(365))
}

/// What a period's energy is compared with, said the same way by every
/// figure, table and sentence of the dashboard and the élu view.
struct Comparison {
    days: i64,
    basis: Basis,
}

enum Basis {
    /// The same dates a year earlier; with the heating degree days of
    /// (this period, last year's) when a weather station covers both.
    LastYear { dju: Option<(f64, f64)> },
    /// The previous period of the same length: last year is not stored.
    Previous,
}

impl Comparison {
    /// Last year's heating energy brought to this year's weather:
    /// consumption × DJU_ref / DJU_period, the reference being this period.
    fn corrected_heating(&self, before: f64) -> f64 {
        match self.basis {
            Basis::LastYear { dju: Some((now, then)) } if then > 0.0 => before * now / then,
            _ => before,
        }
    }

    fn corrected(&self, slot: &Use) -> f64 {
        slot.electricity_before + self.corrected_heating(slot.heating_before)
    }

    /// The change of `now` against the (corrected) reference, in per cent.
    fn change(&self, now: f64, before: f64) -> Option<f64> {
        change(now, before)
    }

    /// "par rapport à …", after a percentage.
    fn against(&self, tr: Tr) -> String {
        match self.basis {
            Basis::LastYear { dju: Some(_) } => tr.s(
                "par rapport à la même période l'an dernier, corrigée du climat",
                "against the same period last year, weather-corrected",
            ),
            Basis::LastYear { dju: None } => {
                tr.s("par rapport à la même période l'an dernier", "against the same period last year")
            }
            Basis::Previous => {
                if tr.fr {
                    format!("par rapport aux {} jours précédents", self.days)
                } else {
                    format!("against the previous {} days", self.days)
                }
            }
        }
    }

    /// The heading of the reference column.
    fn column(&self, tr: Tr) -> String {
        match self.basis {
            Basis::LastYear { dju: Some(_) } => {
                tr.s("L'an dernier, corrigé du climat (kWh)", "Last year, weather-corrected (kWh)")
            }
            Basis::LastYear { dju: None } => tr.s("Même période l'an dernier (kWh)", "Same period last year (kWh)"),
            Basis::Previous => tr.s("Période précédente (kWh)", "Previous period (kWh)"),
        }
    }

    /// How the comparison is made, with the formula and its figures.
    fn explanation(&self, tr: Tr) -> String {
        match self.basis {
            Basis::LastYear { dju: Some((now, then)) } => {
                let factor = if then > 0.0 { now / then } else { 1.0 };
                if tr.fr {
                    format!(
                        "Comparaison avec les mêmes dates l'an dernier, corrigée du climat par les degrés-jours unifiés \
                         (DJU, base {base} °C : pour chaque jour, 18 °C moins la température moyenne relevée par la station \
                         météo, si elle est plus basse). Consommation de chauffage (gaz) corrigée = consommation de l'an dernier \
                         × DJU de cette période / DJU de l'an dernier = × {now} / {then} = × {factor}. L'électricité n'est pas \
                         corrigée : elle dépend peu de la météo.",
                        base = tr.num(DJU_BASE, 0),
                        now = tr.num(now, 0),
                        then = tr.num(then, 0),
                        factor = tr.num(factor, 2),
                    )
                } else {
                    format!(
                        "Compared with the same dates last year, weather-corrected with heating degree days (DJU, base \
                         {base} °C: for each day, 18 °C minus the mean temperature read by the weather station, when lower). \
                         Corrected heating (gas) use = last year's use × this period's DJU / last year's DJU = × {now} / {then} \
                         = × {factor}. Electricity is not corrected: it depends little on the weather.",
                        base = tr.num(DJU_BASE, 0),
                        now = tr.num(now, 0),
                        then = tr.num(then, 0),
                        factor = tr.num(factor, 2),
                    )
                }
            }
            Basis::LastYear { dju: None } => tr.s(
                "Comparaison avec les mêmes dates l'an dernier. Aucune station météo ne couvre les deux périodes : les chiffres ne sont pas corrigés des degrés-jours.",
                "Compared with the same dates last year. No weather station covers both periods: figures are not degree-day corrected.",
            ),
            Basis::Previous => tr.s(
                "Comparaison avec la période précédente de même durée : l'historique ne couvre pas la même période l'an dernier, les chiffres ne sont donc pas corrigés des degrés-jours.",
                "Compared with the previous period of the same length: the history does not cover the same period last year, so figures are not degree-day corrected.",
            ),
        }
    }
}

/// A building's energy and water, this period and its reference.
#[derive(Default, Clone, Copy)]
struct Use {
    energy: f64,
    electricity_before: f64,
    heating_before: f64,
    water: f64,
}

/// Heating degree days of this period and of the same dates last year, from
/// the first weather station whose temperature covers both.
async fn weather_correction(
    scoped: &Scoped,
    now: (DateTime<Utc>, DateTime<Utc>),
    then: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Option<(f64, f64)>, StoreError> {
    for station in of_types(scoped, &["WeatherObserved"]).await? {
        let a = buckets(scoped, &station.id, "temperature", Step::Day, now.0, now.1).await?;
        let b = buckets(scoped, &station.id, "temperature", Step::Day, then.0, then.1).await?;
        if covers(&a, now.0, now.1) && covers(&b, then.0, then.1) {
            return Ok(Some((degree_days(&a, now.1), degree_days(&b, then.1))));
        }
    }
    Ok(None)
}

async fn buildings(scoped: &Scoped, p: &Period, tr: Tr, d: &mut Dashboard) -> Result<(), StoreError> {
    let all = of_types(scoped, &["Building", "SmartMeteringObservation"]).await?;
    let buildings: HashMap<EntityId, &Entity> =
        all.iter().filter(|e| e.entity_type.as_str() == "Building").map(|e| (e.id.clone(), e)).collect();
    let last_year = (a_year_before(p.from), a_year_before(p.to));
    let previous = p.previous();
    // Each meter's use this period, the same dates last year (when stored
    // for the whole period) and the previous period.
    struct Reading {
        building: EntityId,
        kind: Option<String>,
        now: f64,
        last_year: Option<f64>,
        previous: f64,
    }
    let mut readings = Vec::new();
    for meter in all.iter().filter(|e| e.entity_type.as_str() == "SmartMeteringObservation") {
        let Some(building) = relation(meter, "refBuilding").filter(|b| buildings.contains_key(b)) else { continue };
        let now = total(scoped, &meter.id, "consumption", p.from, p.to).await?.unwrap_or(0.0);
        let ly = buckets(scoped, &meter.id, "consumption", Step::Day, last_year.0, last_year.1).await?;
        // Last year's last day counts for the part of it this period has reached today.
        let ly = covers(&ly, last_year.0, last_year.1)
            .then(|| ly.iter().map(|b| b.sum * share_before(b.t, last_year.1)).sum::<f64>());
        let previous = total(scoped, &meter.id, "consumption", previous.0, previous.1).await?.unwrap_or(0.0);
        readings.push(Reading { building, kind: text_attr(meter, "meterType"), now, last_year: ly, previous });
    }
    let has_last_year = !readings.is_empty() && readings.iter().all(|r| r.now == 0.0 || r.last_year.is_some());
    let cmp = Comparison {
        days: p.days,
        basis: if has_last_year {
            Basis::LastYear { dju: weather_correction(scoped, (p.from, p.to), last_year).await? }
        } else {
            Basis::Previous
        },
    };
    let mut per: BTreeMap<EntityId, Use> = BTreeMap::new();
    for r in &readings {
        let before = if has_last_year { r.last_year.unwrap_or(0.0) } else { r.previous };
        let slot = per.entry(r.building.clone()).or_default();
        match r.kind.as_deref() {
            Some("Water") => slot.water += r.now,
            Some("Gas") => {
                slot.energy += r.now;
                slot.heating_before += before;
            }
            _ => {
                slot.energy += r.now;
                slot.electricity_before += before;
            }
        }
    }
    // Per building: its use, and its reference corrected for the weather.
    let mut rows: Vec<(&Entity, Use, f64, Option<f64>)> = per
        .iter()
        .filter_map(|(id, u)| buildings.get(id).map(|b| (*b, *u, cmp.corrected(u), number_attr(b, "floorArea"))))
        .collect();
    rows.sort_by(|a, b| b.1.energy.total_cmp(&a.1.energy));
    let energy: f64 = rows.iter().map(|r| r.1.energy).sum();
    let energy_before: f64 = rows.iter().map(|r| r.2).sum();
    let water: f64 = rows.iter().map(|r| r.1.water).sum();
    let area: f64 = rows.iter().filter_map(|r| r.3).sum();
    d.kpis.push(Kpi {
        label: tr.s("Énergie consommée (électricité + gaz)", "Energy used (electricity + gas)"),
        value: format!("{} MWh", tr.num(energy / 1000.0, 1)),
        note: cmp
            .change(energy, energy_before)
            .map_or_else(String::new, |c| format!("{} {}", tr.pct(c), cmp.against(tr))),
    });
    if area > 0.0 {
        d.kpis.push(Kpi {
            label: tr.s("Énergie par m²", "Energy per m²"),
            value: format!("{} kWh/m²", tr.num(energy / area, 1)),
            note: tr.s(
                &format!("{} m² de surface chauffée", tr.num(area, 0)),
                &format!("{} m² of heated floor area", tr.num(area, 0)),
            ),
        });
    }
    d.kpis.push(Kpi {
        label: tr.s("Eau consommée", "Water used"),
        value: format!("{} m³", tr.num(water, 0)),
        note: String::new(),
    });
    let saved: f64 = rows.iter().map(|r| (r.2 - r.1.energy).max(0.0)).sum();
    d.kpis.push(Kpi {
        label: tr.s("Économies constatées", "Savings observed"),
        value: format!("{} kWh", tr.num(saved, 0)),
        note: format!(
            "{} {}",
            tr.s(
                "somme des baisses des bâtiments qui consomment moins,",
                "sum of the decreases of the buildings using less,"
            ),
            cmp.against(tr)
        ),
    });
    d.tables.push(Table {
        caption: tr.s(
            "Consommation par bâtiment (les plus gros consommateurs en premier)",
            "Use per building (largest first)",
        ),
        headers: vec![
            tr.s("Bâtiment", "Building"),
            tr.s("Énergie (kWh)", "Energy (kWh)"),
            cmp.column(tr),
            tr.s("Évolution", "Change"),
            "kWh/m²".into(),
            tr.s("Eau (m³)", "Water (m³)"),
        ],
        rows: rows
            .iter()
            .map(|(b, u, before, area)| {
                vec![
                    link(b),
                    num_cell(tr.num(u.energy, 0)),
                    num_cell(tr.num(*before, 0)),
                    num_cell(cmp.change(u.energy, *before).map_or_else(|| "—".into(), |c| tr.pct(c))),
                    num_cell(area.filter(|a| *a > 0.0).map_or_else(|| "—".into(), |a| tr.num(u.energy / a, 1))),
                    num_cell(tr.num(u.water, 1)),
                ]
            })
            .collect(),
    });
    // The largest decrease, for the élu view.
    if let Some((b, u, before, _)) = rows
        .iter()
        .filter(|r| r.2 > 0.0)
        .min_by(|a, b| (a.1.energy / a.2).total_cmp(&(b.1.energy / b.2)))
        .filter(|r| r.1.energy < r.2 * 0.97)
    {
        let c = cmp.change(u.energy, *before).unwrap_or(0.0);
        let name = b.name().unwrap_or(b.id.as_str());
        d.sentences.push(if tr.fr {
            format!("{} d'énergie à « {name} » {}.", tr.pct(c), cmp.against(tr))
        } else {
            format!("{} energy at “{name}” {}.", tr.pct(c), cmp.against(tr))
        });
    }
    d.sentences.push(match cmp.change(energy, energy_before) {
        Some(c) if tr.fr => format!(
            "Les bâtiments publics ont consommé {} MWh d'énergie ({} {}).",
            tr.num(energy / 1000.0, 1),
            tr.pct(c),
            cmp.against(tr)
        ),
        Some(c) => format!(
            "Public buildings used {} MWh of energy ({} {}).",
            tr.num(energy / 1000.0, 1),
            tr.pct(c),
            cmp.against(tr)
        ),
        None => tr.s(
            "Pas encore assez de mesures pour comparer la consommation des bâtiments.",
            "Not enough measurements yet to compare the buildings' energy use.",
        ),
    });
    d.notes.push(cmp.explanation(tr));
    Ok(())
}

// ---------------------------------------------------------------- lighting

fn local_hour(t: DateTime<Utc>, tz: Tz) -> u32 {
    t.with_timezone(&tz).hour()
}

async fn lighting(scoped: &Scoped, p: &Period, tr: Tr, d: &mut Dashboard) -> Result<(), StoreError> {
    let all = of_types(scoped, &["StreetlightControlCabinet", "Streetlight"]).await?;
    let cabinets: Vec<&Entity> = all.iter().filter(|e| e.entity_type.as_str() == "StreetlightControlCabinet").collect();
    let lights: Vec<&Entity> = all.iter().filter(|e| e.entity_type.as_str() == "Streetlight").collect();
    let faults: Vec<&&Entity> = lights.iter().filter(|l| layers::state(l) == "fault").collect();
    let mut rows = Vec::new();
    let mut total_kwh = 0.0;
    let mut night_kwh_without_switch_off = 0.0;
    let mut day_on = Vec::new();
    let day_from = p.to - Duration::hours(24);
    for c in &cabinets {
        let hours = buckets(scoped, &c.id, "activePower", Step::Hour, p.from, p.to).await?;
        // Hourly mean power (kW) × 1 h = kWh.
        let kwh: f64 = hours.iter().map(RollupPoint::avg).sum();
        total_kwh += kwh;
        let switch_off = text_attr(c, "description").is_some_and(|s| s.contains("Extinction"));
        let night: f64 =
            hours.iter().filter(|h| matches!(local_hour(h.t, p.tz), 23 | 0..=4)).map(RollupPoint::avg).sum();
        if !switch_off {
            night_kwh_without_switch_off += night;
        }
        // Lit in broad daylight (10 h – 15 h local) during the last 24 hours.
        let lit_by_day =
            hours.iter().any(|h| h.t >= day_from && (10..15).contains(&local_hour(h.t, p.tz)) && h.avg() > 0.05);
        if lit_by_day {
            day_on.push(*c);
        }
        rows.push((*c, kwh, switch_off, lit_by_day));
    }
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    d.kpis.push(Kpi {
        label: tr.s("Consommation de l'éclairage", "Street-lighting use"),
        value: format!("{} kWh", tr.num(total_kwh, 0)),
        note: format!("{} {}", cabinets.len(), tr.s("armoires", "cabinets")),
    });
    d.kpis.push(Kpi {
        label: tr.s("Armoires allumées en journée (24 dernières heures)", "Cabinets lit in daytime (last 24 hours)"),
        value: day_on.len().to_string(),
        note: tr.s("entre 10 h et 15 h, heure locale", "between 10:00 and 15:00 local time"),
    });
    d.kpis.push(Kpi {
        label: tr.s("Points lumineux en panne", "Street lights out of order"),
        value: faults.len().to_string(),
        note: format!("{} {}", lights.len(), tr.s("points lumineux", "street lights")),
    });
    d.kpis.push(Kpi {
        label: tr.s("Économie possible d'une extinction de 23 h à 5 h", "Possible savings of a 23:00–05:00 switch-off"),
        value: format!("{} kWh", tr.num(night_kwh_without_switch_off, 0)),
        note: tr.s(
            "consommation nocturne, sur la période, des armoires qui n'éteignent pas",
            "night-time use, over the period, of the cabinets that stay on",
        ),
    });
    d.tables.push(Table {
        caption: tr.s("Consommation par armoire", "Use per cabinet"),
        headers: vec![
            tr.s("Armoire", "Cabinet"),
            "kWh".into(),
            tr.s("Extinction nocturne", "Night switch-off"),
            tr.s("Allumée en journée", "Lit in daytime"),
        ],
        rows: rows
            .iter()
            .map(|(c, kwh, off, day)| {
                vec![
                    link(c),
                    num_cell(tr.num(*kwh, 0)),
                    cell(if *off { tr.s("oui", "yes") } else { tr.s("non", "no") }),
                    cell(if *day { tr.s("oui", "yes") } else { tr.s("non", "no") }),
                ]
            })
            .collect(),
    });
    if !faults.is_empty() {
        d.tables.push(Table {
            caption: tr.s("Points lumineux en panne", "Street lights out of order"),
            headers: vec![tr.s("Point lumineux", "Street light"), tr.s("Rue", "Street")],
            rows: faults.iter().take(200).map(|l| vec![link(l), cell(address(l).unwrap_or_default())]).collect(),
        });
    }
    for c in &day_on {
        let name = c.name().unwrap_or(c.id.as_str());
        d.sentences.push(if tr.fr {
            format!("L'armoire « {name} » est restée allumée en journée : à vérifier.")
        } else {
            format!("Cabinet “{name}” stayed lit in daytime: to be checked.")
        });
    }
    if night_kwh_without_switch_off > 0.0 {
        d.sentences.push(if tr.fr {
            format!(
                "Éteindre l'éclairage de 23 h à 5 h partout aurait économisé environ {} kWh en {} jours.",
                tr.num(night_kwh_without_switch_off, 0),
                p.days
            )
        } else {
            format!(
                "Switching lights off from 23:00 to 05:00 everywhere would have saved about {} kWh in {} days.",
                tr.num(night_kwh_without_switch_off, 0),
                p.days
            )
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- water

async fn water(scoped: &Scoped, p: &Period, tr: Tr, d: &mut Dashboard) -> Result<(), StoreError> {
    let sectors = of_types(scoped, &["WaterConsumptionObserved"]).await?;
    let mut rows = Vec::new();
    let mut suspects = Vec::new();
    for s in &sectors {
        let hours = buckets(scoped, &s.id, "flow", Step::Hour, p.from, p.to).await?;
        let volume: f64 = hours.iter().map(RollupPoint::avg).sum();
        // Night minimum flow: the lowest hourly mean between 2 h and 5 h, per local night.
        let mut nights: BTreeMap<chrono::NaiveDate, f64> = BTreeMap::new();
        for h in hours.iter().filter(|h| (2..5).contains(&local_hour(h.t, p.tz))) {
            let day = h.t.with_timezone(&p.tz).date_naive();
            let v = nights.entry(day).or_insert(f64::INFINITY);
            *v = v.min(h.avg());
        }
        let mins: Vec<f64> = nights.values().copied().collect();
        let last = mins.last().copied();
        let mut sorted = mins.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied();
        // Suspicion: the last three nights all 30 % above the period's median night.
        let leak =
            mins.len() >= 6 && median.is_some_and(|m| m > 0.0 && mins.iter().rev().take(3).all(|v| *v > m * 1.3));
        if leak {
            suspects.push(s);
        }
        rows.push((s, volume, last, median, leak));
    }
    let volume: f64 = rows.iter().map(|r| r.1).sum();
    d.kpis.push(Kpi {
        label: tr.s("Volume distribué", "Volume supplied"),
        value: format!("{} m³", tr.num(volume, 0)),
        note: format!("{} {}", sectors.len(), tr.s("secteurs", "sectors")),
    });
    d.kpis.push(Kpi {
        label: tr.s("Secteurs suspects de fuite", "Sectors suspected of a leak"),
        value: suspects.len().to_string(),
        note: tr.s(
            "débit de nuit des 3 dernières nuits au-dessus de 130 % de la médiane",
            "night flow of the last 3 nights above 130 % of the median",
        ),
    });
    d.tables.push(Table {
        caption: tr.s("Consommation et débit minimum de nuit par secteur", "Use and night minimum flow per sector"),
        headers: vec![
            tr.s("Secteur", "Sector"),
            "m³".into(),
            tr.s("Débit min. dernière nuit (m³/h)", "Min. flow last night (m³/h)"),
            tr.s("Médiane des nuits (m³/h)", "Median of nights (m³/h)"),
            tr.s("Fuite suspectée", "Leak suspected"),
        ],
        rows: rows
            .iter()
            .map(|(s, v, last, median, leak)| {
                vec![
                    link(s),
                    num_cell(tr.num(*v, 0)),
                    num_cell(last.map_or_else(|| "—".into(), |x| tr.num(x, 2))),
                    num_cell(median.map_or_else(|| "—".into(), |x| tr.num(x, 2))),
                    cell(if *leak { tr.s("oui", "yes") } else { tr.s("non", "no") }),
                ]
            })
            .collect(),
    });
    for s in suspects {
        let name = s.name().unwrap_or(s.id.as_str());
        d.sentences.push(if tr.fr {
            format!("Fuite probable sur le secteur « {name} » : le débit de nuit reste anormalement haut.")
        } else {
            format!("Probable leak in sector “{name}”: the night flow stays abnormally high.")
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- waste

async fn waste(scoped: &Scoped, p: &Period, tr: Tr, d: &mut Dashboard) -> Result<(), StoreError> {
    let containers = of_types(scoped, &["WasteContainer"]).await?;
    let levels: Vec<(&Entity, f64)> =
        containers.iter().filter_map(|c| current(c).and_then(Value::as_f64).map(|v| (c, v))).collect();
    let mut to_collect: Vec<&(&Entity, f64)> = levels.iter().filter(|(_, v)| *v >= 0.8).collect();
    to_collect.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mean = if levels.is_empty() { 0.0 } else { levels.iter().map(|x| x.1).sum::<f64>() / levels.len() as f64 };
    // Fill at collection: the level just before each drop of more than 30 points, over the last 7 days.
    let since = (p.to - Duration::days(7)).max(p.from);
    let mut at_collection = Vec::new();
    for c in &containers {
        let hours = buckets(scoped, &c.id, "fillingLevel", Step::Hour, since, p.to).await?;
        for w in hours.windows(2) {
            if w[1].min < w[0].max - 0.3 {
                at_collection.push(w[0].max);
            }
        }
    }
    let mut bands = [0usize; 4];
    for (_, v) in &levels {
        bands[match v {
            v if *v < 0.5 => 0,
            v if *v < 0.8 => 1,
            v if *v < 0.95 => 2,
            _ => 3,
        }] += 1;
    }
    d.kpis.push(Kpi {
        label: tr.s("Conteneurs à collecter aujourd'hui", "Containers to collect today"),
        value: to_collect.len().to_string(),
        note: tr.s("remplis à 80 % ou plus", "80 % full or more"),
    });
    d.kpis.push(Kpi {
        label: tr.s("Remplissage moyen actuel", "Current mean fill"),
        value: format!("{} %", tr.num(mean * 100.0, 0)),
        note: format!("{} {}", levels.len(), tr.s("conteneurs mesurés", "containers measured")),
    });
    if !at_collection.is_empty() {
        let avg = at_collection.iter().sum::<f64>() / at_collection.len() as f64;
        d.kpis.push(Kpi {
            label: tr.s("Remplissage moyen à la collecte", "Mean fill at collection"),
            value: format!("{} %", tr.num(avg * 100.0, 0)),
            note: if tr.fr {
                format!("{} collectes sur 7 jours ; sous 70 %, des tournées peuvent être espacées", at_collection.len())
            } else {
                format!("{} collections in 7 days; below 70 %, rounds can be spaced out", at_collection.len())
            },
        });
    }
    d.tables.push(Table {
        caption: tr.s("Répartition des niveaux de remplissage", "Fill levels"),
        headers: vec![tr.s("Niveau", "Level"), tr.s("Conteneurs", "Containers")],
        rows: [("< 50 %", bands[0]), ("50 – 80 %", bands[1]), ("80 – 95 %", bands[2]), ("≥ 95 %", bands[3])]
            .iter()
            .map(|(l, n)| vec![cell(*l), num_cell(n.to_string())])
            .collect(),
    });
    d.tables.push(Table {
        caption: tr.s("Conteneurs à collecter aujourd'hui", "Containers to collect today"),
        headers: vec![tr.s("Conteneur", "Container"), tr.s("Adresse", "Address"), tr.s("Remplissage", "Fill")],
        rows: to_collect
            .iter()
            .take(300)
            .map(|(c, v)| {
                vec![link(c), cell(address(c).unwrap_or_default()), num_cell(format!("{} %", tr.num(v * 100.0, 0)))]
            })
            .collect(),
    });
    d.sentences.push(if tr.fr {
        format!("{} conteneurs sont à collecter aujourd'hui (remplis à 80 % ou plus).", to_collect.len())
    } else {
        format!("{} containers are to be collected today (80 % full or more).", to_collect.len())
    });
    Ok(())
}

// ---------------------------------------------------------------- parking

async fn parking(scoped: &Scoped, p: &Period, tr: Tr, d: &mut Dashboard) -> Result<(), StoreError> {
    let spots = of_types(scoped, &["ParkingSpot"]).await?;
    let since = (p.to - Duration::days(7)).max(p.from);
    // Occupancy (0–1 hourly means) per zone and local hour of day, over the last 7 days.
    let mut zones: BTreeMap<String, [(f64, u32); 24]> = BTreeMap::new();
    let mut now_occupied: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in &spots {
        let zone = text_attr(s, "areaServed").unwrap_or_else(|| tr.s("Sans zone", "No zone"));
        let n = now_occupied.entry(zone.clone()).or_default();
        n.1 += 1;
        if current(s).and_then(Value::as_str) == Some("occupied") {
            n.0 += 1;
        }
        let slot = zones.entry(zone).or_insert([(0.0, 0); 24]);
        for h in buckets(scoped, &s.id, "occupancy", Step::Hour, since, p.to).await? {
            let hour = local_hour(h.t, p.tz) as usize;
            slot[hour].0 += h.avg();
            slot[hour].1 += 1;
        }
    }
    let occupied: usize = now_occupied.values().map(|v| v.0).sum();
    d.kpis.push(Kpi {
        label: tr.s("Places occupées maintenant", "Spots occupied now"),
        value: format!("{occupied} / {}", spots.len()),
        note: if spots.is_empty() {
            String::new()
        } else {
            format!("{} %", tr.num(occupied as f64 * 100.0 / spots.len() as f64, 0))
        },
    });
    let hours = [8usize, 10, 12, 14, 16, 18, 20];
    let mut headers = vec![tr.s("Zone", "Zone"), tr.s("Occupées maintenant", "Occupied now")];
    headers.extend(hours.iter().map(|h| format!("{h} h")));
    d.tables.push(Table {
        caption: tr.s(
            "Taux d'occupation moyen par zone et par heure (7 derniers jours)",
            "Mean occupancy by zone and hour (last 7 days)",
        ),
        headers,
        rows: zones
            .iter()
            .map(|(zone, by_hour)| {
                let (o, n) = now_occupied.get(zone).copied().unwrap_or_default();
                let mut row = vec![cell(zone.clone()), num_cell(format!("{o} / {n}"))];
                row.extend(hours.iter().map(|h| {
                    let (sum, count) = by_hour[*h];
                    num_cell(if count == 0 {
                        "—".into()
                    } else {
                        format!("{} %", tr.num(sum / f64::from(count) * 100.0, 0))
                    })
                }));
                row
            })
            .collect(),
    });
    if !spots.is_empty() {
        d.sentences.push(if tr.fr {
            format!("{occupied} places de stationnement équipées sur {} sont occupées en ce moment.", spots.len())
        } else {
            format!("{occupied} of {} equipped parking spots are occupied right now.", spots.len())
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- air

/// ATMO 2021 sub-index thresholds (µg/m³): good, fair, degraded, poor, very poor; above: extremely poor.
fn atmo(pollutant: &str, v: f64) -> usize {
    let t: [f64; 5] = match pollutant {
        "pm10" => [20.0, 40.0, 50.0, 100.0, 150.0],
        "pm25" => [10.0, 20.0, 25.0, 50.0, 75.0],
        "no2" => [40.0, 90.0, 120.0, 230.0, 340.0],
        _ => [50.0, 100.0, 130.0, 240.0, 380.0],
    };
    t.iter().position(|x| v <= *x).unwrap_or(5)
}

fn atmo_label(tr: Tr, i: usize) -> String {
    let fr = ["Bon", "Moyen", "Dégradé", "Mauvais", "Très mauvais", "Extrêmement mauvais"];
    let en = ["Good", "Fair", "Degraded", "Poor", "Very poor", "Extremely poor"];
    (if tr.fr { fr } else { en })[i.min(5)].to_owned()
}

async fn air(scoped: &Scoped, p: &Period, tr: Tr, d: &mut Dashboard) -> Result<(), StoreError> {
    let stations = of_types(scoped, &["AirQualityObserved"]).await?;
    let pollutants = ["pm10", "pm25", "no2", "o3"];
    let mut rows = Vec::new();
    let mut worst = 0;
    for s in &stations {
        let mut row = vec![link(s)];
        let mut index = 0;
        for pol in pollutants {
            let v = number_attr(s, pol);
            if let Some(v) = v {
                index = index.max(atmo(pol, v));
            }
            row.push(num_cell(v.map_or_else(|| "—".into(), |v| tr.num(v, 0))));
        }
        // Days over the PM10 daily limit (50 µg/m³) in the period.
        let days = buckets(scoped, &s.id, "pm10", Step::Day, p.from, p.to).await?;
        let over = days.iter().filter(|b| b.avg() > 50.0).count();
        row.insert(1, cell(atmo_label(tr, index)));
        row.push(num_cell(over.to_string()));
        worst = worst.max(index);
        rows.push(row);
    }
    d.kpis.push(Kpi {
        label: tr.s("Indice le plus dégradé (maintenant)", "Worst index (now)"),
        value: atmo_label(tr, worst),
        note: tr.s("sous-indices ATMO des dernières mesures horaires", "ATMO sub-indices of the latest hourly values"),
    });
    d.tables.push(Table {
        caption: tr.s(
            "Indice par station et polluant (µg/m³, dernière mesure horaire)",
            "Index by station and pollutant (µg/m³, latest hourly value)",
        ),
        headers: vec![
            tr.s("Station", "Station"),
            tr.s("Indice", "Index"),
            "PM10".into(),
            "PM2,5".into(),
            "NO₂".into(),
            "O₃".into(),
            tr.s("Jours PM10 > 50 µg/m³", "Days PM10 > 50 µg/m³"),
        ],
        rows,
    });
    d.notes.push(tr.s(
        "Indice calculé comme le plus mauvais des sous-indices ATMO des quatre polluants sur la dernière mesure horaire ; l'indice officiel est publié par l'AASQA.",
        "Index computed as the worst ATMO sub-index of the four pollutants on the latest hourly value; the official index is published by the regional air agency.",
    ));
    d.sentences.push(if tr.fr {
        format!("Qualité de l'air en ce moment : {}.", atmo_label(tr, worst).to_lowercase())
    } else {
        format!("Air quality right now: {}.", atmo_label(tr, worst).to_lowercase())
    });
    Ok(())
}

// ---------------------------------------------------------------- risks

async fn risks(scoped: &Scoped, p: &Period, tr: Tr, d: &mut Dashboard) -> Result<(), StoreError> {
    let gauges = of_types(scoped, &["FloodMonitoring"]).await?;
    let mut rows = Vec::new();
    for g in &gauges {
        let level = number_attr(g, "currentLevel");
        let (alert, danger) = (number_attr(g, "alertLevel"), number_attr(g, "dangerLevel"));
        // Rate of rise over the last three hours, from hourly means.
        let hours = buckets(scoped, &g.id, "currentLevel", Step::Hour, p.to - Duration::hours(4), p.to).await?;
        let rise = match (hours.first(), hours.last()) {
            (Some(a), Some(b)) if b.t > a.t => {
                Some((b.avg() - a.avg()) * 100.0 / ((b.t - a.t).num_minutes() as f64 / 60.0))
            }
            _ => None,
        };
        let peak = buckets(scoped, &g.id, "currentLevel", Step::Day, p.from, p.to)
            .await?
            .iter()
            .map(|b| b.max)
            .fold(f64::NEG_INFINITY, f64::max);
        let state = layers::state(g);
        let name = g.name().unwrap_or(g.id.as_str()).to_owned();
        if state == "warn" || state == "alert" {
            d.sentences.push(if tr.fr {
                format!("La Lémance dépasse le seuil de vigilance à « {name} ».")
            } else {
                format!("The river is above its vigilance threshold at “{name}”.")
            });
        }
        rows.push(vec![
            link(g),
            num_cell(level.map_or_else(|| "—".into(), |v| format!("{} m", tr.num(v, 2)))),
            num_cell(alert.map_or_else(|| "—".into(), |v| format!("{} m", tr.num(v, 2)))),
            num_cell(danger.map_or_else(|| "—".into(), |v| format!("{} m", tr.num(v, 2)))),
            num_cell(rise.map_or_else(|| "—".into(), |r| format!("{} cm/h", tr.num(r, 1)))),
            num_cell(if peak.is_finite() { format!("{} m", tr.num(peak, 2)) } else { "—".into() }),
            cell(
                super::words::Words::of(if tr.fr { crate::i18n::Lang::Fr } else { crate::i18n::Lang::En }).state(state),
            ),
        ]);
    }
    let above = gauges.iter().filter(|g| matches!(layers::state(g), "warn" | "alert")).count();
    d.kpis.push(Kpi {
        label: tr.s("Stations au-dessus du seuil de vigilance", "Gauges above the vigilance threshold"),
        value: format!("{above} / {}", gauges.len()),
        note: String::new(),
    });
    d.tables.push(Table {
        caption: tr.s("Hauteur d'eau par station et seuils", "River level per gauge and thresholds"),
        headers: vec![
            tr.s("Station", "Gauge"),
            tr.s("Hauteur", "Level"),
            tr.s("Seuil de vigilance", "Vigilance threshold"),
            tr.s("Seuil de danger", "Danger threshold"),
            tr.s("Vitesse de montée (3 h)", "Rate of rise (3 h)"),
            tr.s("Maximum de la période", "Period maximum"),
            tr.s("État", "State"),
        ],
        rows,
    });
    if above == 0 && !gauges.is_empty() {
        d.sentences
            .push(tr.s("La Lémance est sous ses seuils de vigilance.", "The river is below its vigilance thresholds."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(t: DateTime<Utc>, mean: f64) -> RollupPoint {
        RollupPoint { t, count: 2, sum: mean * 2.0, min: mean - 1.0, max: mean + 1.0 }
    }

    #[test]
    fn degree_days_count_the_cold_and_share_the_last_day() {
        let t0 = Utc.with_ymd_and_hms(2025, 11, 1, 0, 0, 0).unwrap();
        let days = [day(t0, 8.0), day(t0 + Duration::days(1), 20.0), day(t0 + Duration::days(2), 14.0)];
        // 10 + 0 (warmer than 18 °C) + 4 for a whole third day.
        assert!((degree_days(&days, t0 + Duration::days(3)) - 14.0).abs() < 1e-9);
        // The period ends at noon of the third day: half of its 4.
        assert!((degree_days(&days, t0 + Duration::hours(60)) - 12.0).abs() < 1e-9);
        assert!(covers(&days, t0, t0 + Duration::days(3)));
        assert!(!covers(&days[..1], t0, t0 + Duration::days(30)));
        assert!(!covers(&[], t0, t0 + Duration::days(1)));
    }

    #[test]
    fn last_years_heating_is_brought_to_this_years_weather() {
        let cmp = Comparison { days: 30, basis: Basis::LastYear { dju: Some((300.0, 400.0)) } };
        let u = Use { energy: 0.0, electricity_before: 1000.0, heating_before: 4000.0, water: 0.0 };
        // A milder winter: 4,000 kWh of gas last year are worth 3,000 this year; electricity stays.
        assert!((cmp.corrected(&u) - 4000.0).abs() < 1e-9);
        let fr = Tr { fr: true };
        assert!(cmp.explanation(fr).contains("DJU"), "the formula is on the page");
        assert!(cmp.against(fr).contains("l'an dernier"));
        let plain = Comparison { days: 30, basis: Basis::LastYear { dju: None } };
        assert!((plain.corrected(&u) - 5000.0).abs() < 1e-9);
        let previous = Comparison { days: 7, basis: Basis::Previous };
        assert_eq!(previous.against(Tr { fr: false }), "against the previous 7 days");
        let leap = Utc.with_ymd_and_hms(2028, 2, 29, 10, 0, 0).unwrap();
        assert_eq!(a_year_before(leap), Utc.with_ymd_and_hms(2027, 2, 28, 10, 0, 0).unwrap());
    }
}
