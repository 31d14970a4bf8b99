//! The hypervisor's pages: the map with its table, an entity's page with its
//! history and the CSV of its chart. Everything comes through the caller's
//! [`crate::policy::Scoped`] handle, so each person (or anonymous visitor)
//! sees exactly the entities they may see; an entity hidden from the caller
//! answers like an absent one.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use socle_domain::{
    Attribute, AttributeName, Entity, EntityFilter, EntityId, Geometry, SeriesPoints, SeriesQuery, Step, TimeRange,
};

use super::dashboards::{self, Dashboard, Kpi, Period as DashboardPeriod, Tr};
use super::layers::{self, Layer};
use super::words::attribute_label;
use super::{assets, chrome, html, internal, message, urlencode, Chrome};
use crate::routes::map::{address, all_entities};
use crate::{AppState, Caller};

const ROWS_PER_PAGE: usize = 100;

// ---------------------------------------------------------------- map

pub struct LayerChoice {
    pub layer: Layer,
    pub slug: &'static str,
    pub checked: bool,
    pub count: usize,
}

pub struct Row {
    pub href: String,
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub layer: &'static str,
    pub state: &'static str,
    pub state_label: &'static str,
    pub value: String,
    pub value_attribute: String,
    pub address: String,
    pub owner: String,
}

pub struct PageLink {
    pub href: String,
}

#[derive(Template)]
#[template(path = "map.html")]
struct MapPage {
    c: Chrome,
    public: bool,
    q: String,
    layers: Vec<LayerChoice>,
    states: Vec<(&'static str, &'static str)>,
    rows: Vec<Row>,
    shown: usize,
    page: usize,
    pages: usize,
    previous: Option<PageLink>,
    next: Option<PageLink>,
    worker: &'static str,
    tiles: String,
    attribution: String,
    max_zoom: u8,
    /// `west,south,east,north` of what the map shows, so the map opens
    /// there at once instead of moving (and drawing twice) once its data came.
    bounds: String,
}

/// The box around the communes' outlines, else around the entities.
fn map_bounds(entities: &[Entity]) -> String {
    let mut areas = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut points = areas;
    let grow = |b: &mut [f64; 4], p: &[f64; 2]| {
        if p[0].is_finite() && p[1].is_finite() {
            *b = [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])];
        }
    };
    for e in entities {
        match &e.location {
            Some(Geometry::Point(p)) if Layer::of_type(e.entity_type.as_str()).is_some() => grow(&mut points, p),
            Some(Geometry::Polygon(rings)) if e.entity_type.as_str() == layers::AREA_TYPE => {
                rings.iter().flatten().for_each(|p| grow(&mut areas, p))
            }
            Some(Geometry::MultiPolygon(polys)) if e.entity_type.as_str() == layers::AREA_TYPE => {
                polys.iter().flatten().flatten().for_each(|p| grow(&mut areas, p))
            }
            _ => {}
        }
    }
    let b = if areas[0].is_finite() { areas } else { points };
    if b[0].is_finite() {
        format!("{:.6},{:.6},{:.6},{:.6}", b[0], b[1], b[2], b[3])
    } else {
        String::new()
    }
}

fn current_value(e: &Entity, lang: &str) -> (String, String) {
    let Some(attr) = layers::state_attribute(e.entity_type.as_str()) else { return (String::new(), String::new()) };
    match e.attributes.iter().find(|(k, _)| k.as_str() == attr).map(|(_, a)| a) {
        Some(Attribute::Property { value, unit_code, .. }) => {
            (layers::format_value(value, unit_code.as_ref().map(|u| u.as_str()), lang), attr.to_owned())
        }
        _ => ("—".into(), attr.to_owned()),
    }
}

/// The map: commune outlines and entities by layer (script), and the same
/// entities as a searchable, paged table (no script needed).
pub async fn map_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let (mut c, cookie) = chrome(&state, &caller, &headers, "/carte");
    c.section = "carte";
    let (t, h) = (c.t, c.h);
    let q: String =
        query.iter().find(|(k, _)| k == "q").map(|(_, v)| v.trim().chars().take(100).collect()).unwrap_or_default();
    let wanted: Vec<Layer> =
        query.iter().filter(|(k, _)| k == "couche").filter_map(|(_, v)| Layer::from_slug(v)).collect();
    let page: usize = query.iter().find(|(k, _)| k == "page").and_then(|(_, v)| v.parse().ok()).unwrap_or(1).max(1);
    let scoped = state.scoped(&caller);
    let (entities, orgs) = match (all_entities(&scoped, EntityFilter::default()).await, state.organisations().await) {
        (Ok(e), Ok(o)) => (e, o),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let owner: HashMap<_, _> = orgs.iter().map(|o| (o.id.clone(), o.name.clone())).collect();
    let needle = q.to_lowercase();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut rows = Vec::new();
    for e in &entities {
        let Some(layer) = Layer::of_type(e.entity_type.as_str()) else { continue };
        *counts.entry(layer.slug()).or_default() += 1;
        if !wanted.is_empty() && !wanted.contains(&layer) {
            continue;
        }
        let name = e.name().unwrap_or(e.id.as_str()).to_owned();
        let address = address(e).unwrap_or_default();
        if !needle.is_empty()
            && !name.to_lowercase().contains(&needle)
            && !address.to_lowercase().contains(&needle)
            && !owner.get(&e.organisation).is_some_and(|o| o.to_lowercase().contains(&needle))
        {
            continue;
        }
        let state_key = layers::state(e);
        let (value, value_attribute) = current_value(e, t.lang);
        rows.push(Row {
            href: format!("/entites/{}", urlencode(e.id.as_str())),
            id: e.id.to_string(),
            name,
            kind: h.entity_type(e.entity_type.as_str()),
            layer: h.layer(&layer),
            state: state_key,
            state_label: h.state(state_key),
            value,
            value_attribute,
            address,
            owner: owner.get(&e.organisation).cloned().unwrap_or_else(|| e.organisation.to_string()),
        });
    }
    let shown = rows.len();
    let pages = shown.div_ceil(ROWS_PER_PAGE).max(1);
    let page = page.min(pages);
    let rows: Vec<Row> = rows.into_iter().skip((page - 1) * ROWS_PER_PAGE).take(ROWS_PER_PAGE).collect();
    let link = |p: usize| {
        let mut params: Vec<(&str, String)> = vec![("q", q.clone())];
        params.extend(wanted.iter().map(|l| ("couche", l.slug().to_owned())));
        params.push(("page", p.to_string()));
        PageLink { href: format!("/carte?{}#tableau", serde_urlencoded::to_string(&params).unwrap_or_default()) }
    };
    let settings = &state.web.settings.map;
    let page = MapPage {
        public: !caller.is_authenticated(),
        q: q.clone(),
        layers: Layer::ALL
            .into_iter()
            .map(|layer| LayerChoice {
                layer,
                slug: layer.slug(),
                checked: wanted.is_empty() || wanted.contains(&layer),
                count: counts.get(layer.slug()).copied().unwrap_or(0),
            })
            .collect(),
        states: ["ok", "on", "off", "warn", "alert", "fault", "unknown"].map(|s| (s, h.state(s))).to_vec(),
        rows,
        shown,
        page,
        pages,
        previous: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        worker: assets::MAP_WORKER.href.as_str(),
        tiles: settings.tiles_url.clone(),
        attribution: settings.attribution.clone(),
        max_zoom: settings.max_zoom,
        bounds: map_bounds(&entities),
        c,
    };
    html(StatusCode::OK, t.lang, &page, cookie.into_iter().collect())
}

// ---------------------------------------------------------------- entity

pub struct ValueRow {
    pub attribute: String,
    pub label: String,
    pub value: String,
    pub observed: String,
    pub observed_iso: String,
    pub age_id: String,
}

pub struct DeviceRow {
    pub name: String,
    pub dev_eui: String,
    pub last_seen: String,
    pub battery: String,
    pub radio: String,
    pub frames: u64,
}

pub struct Summary {
    pub points: usize,
    pub min: String,
    pub max: String,
    pub mean: String,
    pub total: Option<String>,
    pub last: String,
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct Related {
    pub href: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "entity.html")]
struct EntityPage {
    c: Chrome,
    id: String,
    name: String,
    kind: &'static str,
    layer: Option<&'static str>,
    state: &'static str,
    state_label: &'static str,
    owner: String,
    visibility: &'static str,
    address: String,
    point: Option<(f64, f64)>,
    worker: &'static str,
    tiles: String,
    attribution: String,
    max_zoom: u8,
    values: Vec<ValueRow>,
    devices: Option<Vec<DeviceRow>>,
    related: Vec<Related>,
    chart: Option<ChartView>,
    period_error: bool,
    /// Unresolved alerts of the entity, for members who may see them.
    open_alerts: Vec<super::alerts::AlertRow>,
    aw: &'static super::alerts::AlertWords,
}

pub struct ChartView {
    pub attributes: Vec<Choice>,
    pub steps: Vec<Choice>,
    pub attribute: String,
    pub label: String,
    pub unit: String,
    pub step: &'static str,
    pub from: String,
    pub to: String,
    pub from_date: String,
    pub to_date: String,
    pub compare: bool,
    pub presets: Vec<(String, &'static str)>,
    pub csv: String,
    pub summary: Option<Summary>,
    pub live: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChartQuery {
    attribut: Option<String>,
    pas: Option<String>,
    du: Option<String>,
    au: Option<String>,
    periode: Option<String>,
    comparer: Option<String>,
}

/// A date (`2026-01-15`, midnight UTC) or an RFC 3339 instant.
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).ok().or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
    })
}

struct Period {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Step,
    compare: bool,
}

/// The period asked for: explicit dates, else a preset (`1j`, `7j`, `30j`, `90j`), else 7 days;
/// the step asked for, else one that suits the length. `None` when the dates make no sense.
fn period(q: &ChartQuery, now: DateTime<Utc>) -> Option<Period> {
    let preset_days = match q.periode.as_deref() {
        Some("1j") => 1,
        Some("30j") => 30,
        Some("90j") => 90,
        _ => 7,
    };
    let to = match q.au.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_instant(s)?,
        None => now,
    };
    let from = match q.du.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_instant(s)?,
        None => to - Duration::days(preset_days),
    };
    if from >= to || to - from > Duration::days(400) {
        return None;
    }
    let length = to - from;
    let step = match q.pas.as_deref() {
        Some("raw") if length <= Duration::days(31) => Step::Raw,
        Some("hour") if length <= Duration::days(92) => Step::Hour,
        Some("day") => Step::Day,
        _ if length <= Duration::days(2) => Step::Raw,
        _ if length <= Duration::days(14) => Step::Hour,
        _ => Step::Day,
    };
    Some(Period { from, to, step, compare: q.comparer.as_deref() == Some("1") })
}

fn step_str(s: Step) -> &'static str {
    match s {
        Step::Raw => "raw",
        Step::Hour => "hour",
        Step::Day => "day",
    }
}

fn date_time(t: DateTime<Utc>, lang: &str) -> String {
    // Europe/Paris is what the demo and most users run; the page says UTC otherwise.
    match lang {
        "fr" => t.format("%d/%m/%Y %H:%M UTC").to_string(),
        _ => t.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

fn number(v: f64, unit: Option<&str>, lang: &str) -> String {
    layers::format_value(&Value::from(v), unit, lang)
}

pub async fn entity_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ChartQuery>,
) -> Response {
    let path = format!("/entites/{}", urlencode(&id));
    let (mut c, cookie) = chrome(&state, &caller, &headers, &path);
    c.section = "carte";
    let (t, h) = (c.t, c.h);
    let scoped = state.scoped(&caller);
    let not_found =
        || message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found);
    let Ok(entity_id) = EntityId::parse(&id) else { return not_found() };
    let entity = match scoped.entity(&entity_id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(),
        Err(e) => return internal(e),
    };
    let (series, devices, orgs) = match (
        scoped.list_series(&entity_id).await,
        scoped.entity_devices(&entity_id).await,
        state.organisations().await,
    ) {
        (Ok(s), Ok(d), Ok(o)) => (s, d, o),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return internal(e),
    };
    let ty = entity.entity_type.as_str();
    let unit_of = |a: &AttributeName| {
        series.iter().find(|s| &s.attribute == a).and_then(|s| s.unit_code.as_ref()).map(|u| u.as_str().to_owned())
    };
    let mut values = Vec::new();
    let mut related = Vec::new();
    for (name, attr) in &entity.attributes {
        match attr {
            Attribute::Property { value, unit_code, observed_at } if name.as_str() != "name" => {
                let unit = unit_code.as_ref().map(|u| u.as_str().to_owned()).or_else(|| unit_of(name));
                values.push(ValueRow {
                    attribute: name.to_string(),
                    label: attribute_label(name.as_str(), t.lang).unwrap_or(name.as_str()).to_owned(),
                    value: layers::format_value(value, unit.as_deref(), t.lang),
                    observed: observed_at.map(|o| date_time(o, t.lang)).unwrap_or_default(),
                    observed_iso: observed_at.map(|o| o.to_rfc3339()).unwrap_or_default(),
                    age_id: format!("age-{}", name.as_str()),
                });
            }
            Attribute::Relationship { object, .. } => related.push(Related {
                href: format!("/entites/{}", urlencode(object.as_str())),
                label: format!(
                    "{} ({})",
                    object.as_str(),
                    attribute_label(name.as_str(), t.lang).unwrap_or(name.as_str())
                ),
            }),
            _ => {}
        }
    }
    // Measured values first, then descriptive properties.
    values.sort_by_key(|v| v.observed.is_empty());
    let settings = &state.web.settings.map;
    let now = Utc::now();
    let period = period(&q, now);
    let period_error = period.is_none();
    let numeric: Vec<_> = series.iter().filter(|s| s.numeric).collect();
    let chosen = q
        .attribut
        .as_deref()
        .and_then(|a| numeric.iter().find(|s| s.attribute.as_str() == a))
        .or_else(|| numeric.iter().find(|s| Some(s.attribute.as_str()) == layers::state_attribute(ty)))
        .or(numeric.first())
        .copied();
    let chart = match (chosen, period) {
        (Some(s), Some(p)) => {
            let unit = s.unit_code.as_ref().map(|u| u.as_str().to_owned());
            let summary = match summary(&scoped, &entity_id, &s.attribute, &p, unit.as_deref(), t.lang).await {
                Ok(sum) => sum,
                Err(e) => return internal(e),
            };
            let base = format!("/entites/{}", urlencode(&id));
            let query = |extra: &[(&str, String)]| {
                let mut params: Vec<(&str, String)> = vec![("attribut", s.attribute.to_string())];
                params.extend_from_slice(extra);
                serde_urlencoded::to_string(&params).unwrap_or_default()
            };
            let csv = format!(
                "{base}/csv?{}",
                query(&[("pas", step_str(p.step).into()), ("du", p.from.to_rfc3339()), ("au", p.to.to_rfc3339())])
            );
            let presets =
                [("1j", h.preset_day), ("7j", h.preset_week), ("30j", h.preset_month), ("90j", h.preset_quarter)]
                    .map(|(k, label)| (format!("{base}?{}#historique", query(&[("periode", k.into())])), label))
                    .to_vec();
            Some(ChartView {
                attributes: numeric
                    .iter()
                    .map(|x| Choice {
                        value: x.attribute.to_string(),
                        label: attribute_label(x.attribute.as_str(), t.lang).unwrap_or(x.attribute.as_str()).to_owned(),
                        selected: x.attribute == s.attribute,
                    })
                    .collect(),
                steps: [(Step::Raw, h.step_raw), (Step::Hour, h.step_hour), (Step::Day, h.step_day)]
                    .into_iter()
                    .map(|(st, label)| Choice {
                        value: step_str(st).into(),
                        label: label.into(),
                        selected: st == p.step,
                    })
                    .collect(),
                attribute: s.attribute.to_string(),
                label: attribute_label(s.attribute.as_str(), t.lang).unwrap_or(s.attribute.as_str()).to_owned(),
                unit: unit.clone().unwrap_or_default(),
                step: step_str(p.step),
                from: p.from.to_rfc3339(),
                to: p.to.to_rfc3339(),
                from_date: p.from.format("%Y-%m-%d").to_string(),
                to_date: p.to.format("%Y-%m-%d").to_string(),
                compare: p.compare,
                presets,
                csv,
                summary,
                live: p.to >= now - Duration::minutes(5),
            })
        }
        _ => None,
    };
    let open_alerts = if caller.is_member() {
        let q = crate::policy::AlertQuery {
            entity: Some(entity_id.clone()),
            statuses: Some(vec![socle_storage::AlertStatus::Open, socle_storage::AlertStatus::Acknowledged]),
            limit: 50,
            ..Default::default()
        };
        let zones = match super::alerts::Zones::load(&state).await {
            Ok(z) => z,
            Err(e) => return internal(e),
        };
        match scoped.alerts(q).await {
            Ok(page) => {
                page.items.iter().map(|(a, name)| super::alerts::row(a, name.as_deref(), &zones, t.lang)).collect()
            }
            Err(e) => return internal(e),
        }
    } else {
        Vec::new()
    };
    let state_key = layers::state(&entity);
    let page = EntityPage {
        open_alerts,
        aw: super::alerts::words(t.lang),
        id: entity.id.to_string(),
        name: entity.name().unwrap_or(entity.id.as_str()).to_owned(),
        kind: h.entity_type(ty),
        layer: Layer::of_type(ty).map(|l| h.layer(&l)),
        state: state_key,
        state_label: h.state(state_key),
        owner: orgs
            .iter()
            .find(|o| o.id == entity.organisation)
            .map_or_else(|| entity.organisation.to_string(), |o| o.name.clone()),
        visibility: h.visibility(entity.visibility.as_str()),
        address: address(&entity).unwrap_or_default(),
        point: match entity.location {
            Some(Geometry::Point([lon, lat])) => Some((lon, lat)),
            _ => None,
        },
        worker: assets::MAP_WORKER.href.as_str(),
        tiles: settings.tiles_url.clone(),
        attribution: settings.attribution.clone(),
        max_zoom: settings.max_zoom,
        values,
        devices: devices.map(|devices| {
            devices
                .iter()
                .map(|d| DeviceRow {
                    name: d.device.name.clone(),
                    dev_eui: d.device.dev_eui.to_string(),
                    last_seen: d.health.last_seen.map(|t| date_time(t, c.t.lang)).unwrap_or_else(|| "—".into()),
                    battery: d.health.battery.map(|b| format!("{b:.0} %")).unwrap_or_else(|| "—".into()),
                    radio: match (d.health.rssi, d.health.snr) {
                        (Some(r), Some(s)) => format!("{r} dBm / {s:.1} dB"),
                        _ => "—".into(),
                    },
                    frames: d.health.frames_received,
                })
                .collect()
        }),
        related,
        chart,
        period_error,
        c,
    };
    let status = if period_error { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    html(status, t.lang, &page, cookie.into_iter().collect())
}

async fn summary(
    scoped: &crate::policy::Scoped,
    entity: &EntityId,
    attribute: &AttributeName,
    p: &Period,
    unit: Option<&str>,
    lang: &str,
) -> Result<Option<Summary>, socle_storage::StoreError> {
    let Ok(range) = TimeRange::new(p.from, p.to) else { return Ok(None) };
    // Hourly rollups give exact count, min, max and sum over any whole-hour period.
    let step = if p.step == Step::Raw { Step::Raw } else { Step::Hour };
    let query = SeriesQuery { entity: entity.clone(), attribute: attribute.clone(), range, step, limit: 100_000 };
    let (count, min, max, sum, last) = match scoped.series(&query).await? {
        SeriesPoints::Raw(points) => {
            let v: Vec<f64> = points.iter().filter_map(|p| p.value.as_f64()).collect();
            if v.is_empty() {
                return Ok(None);
            }
            let last = *v.last().unwrap_or(&0.0);
            (
                v.len() as u64,
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                v.iter().sum::<f64>(),
                last,
            )
        }
        SeriesPoints::Buckets(b) => {
            if b.is_empty() {
                return Ok(None);
            }
            let count: u64 = b.iter().map(|x| x.count).sum();
            let last = b.last().map(|x| x.avg()).unwrap_or_default();
            (
                count,
                b.iter().map(|x| x.min).fold(f64::INFINITY, f64::min),
                b.iter().map(|x| x.max).fold(f64::NEG_INFINITY, f64::max),
                b.iter().map(|x| x.sum).sum(),
                last,
            )
        }
    };
    let cumulative = matches!(attribute.as_str(), "consumption");
    Ok(Some(Summary {
        points: count as usize,
        min: number(min, unit, lang),
        max: number(max, unit, lang),
        mean: number(sum / count.max(1) as f64, unit, lang),
        total: cumulative.then(|| number(sum, unit, lang)),
        last: number(last, unit, lang),
    }))
}

/// The chart's data as CSV: the same series, period and step (the script
/// narrows `du`/`au` to the zoomed range).
pub async fn entity_csv(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ChartQuery>,
) -> Response {
    let scoped = state.scoped(&caller);
    let bad = |status| message(&state, &caller, &headers, status, |t| t.not_found_title, |t| t.not_found);
    let (Ok(entity), Some(Ok(attribute)), Some(p)) =
        (EntityId::parse(&id), q.attribut.as_deref().map(AttributeName::parse), period(&q, Utc::now()))
    else {
        return bad(StatusCode::BAD_REQUEST);
    };
    let Ok(range) = TimeRange::new(p.from, p.to) else { return bad(StatusCode::BAD_REQUEST) };
    let query =
        SeriesQuery { entity: entity.clone(), attribute: attribute.clone(), range, step: p.step, limit: 100_000 };
    let points = match scoped.series(&query).await {
        Ok(points) => points,
        Err(socle_storage::StoreError::UnknownEntity(_)) => return bad(StatusCode::NOT_FOUND),
        Err(e) => return internal(e),
    };
    let mut out = String::new();
    match points {
        SeriesPoints::Raw(points) => {
            out.push_str("observedAt,value\r\n");
            for p in points {
                out.push_str(&format!("{},{}\r\n", p.t.to_rfc3339(), csv_field(&p.value)));
            }
        }
        SeriesPoints::Buckets(buckets) => {
            out.push_str("bucketStart,count,min,max,avg,sum\r\n");
            for b in buckets {
                out.push_str(&format!(
                    "{},{},{},{},{},{}\r\n",
                    b.t.to_rfc3339(),
                    b.count,
                    b.min,
                    b.max,
                    b.avg(),
                    b.sum
                ));
            }
        }
    }
    let file = format!(
        "attachment; filename=\"{}-{}-{}.csv\"",
        entity
            .as_str()
            .rsplit(':')
            .next()
            .unwrap_or("serie")
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        attribute.as_str(),
        step_str(p.step)
    );
    let mut res = out.into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&file) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    res
}

fn csv_field(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.contains([',', '"', '\n', '\r']) => format!("\"{}\"", s.replace('"', "\"\"")),
        Value::String(s) => s.clone(),
        other => format!("\"{}\"", other.to_string().replace('"', "\"\"")),
    }
}

// ---------------------------------------------------------------- dashboards

#[derive(Template)]
#[template(path = "dashboards.html")]
struct DashboardsIndex {
    c: Chrome,
    public: bool,
    cards: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    c: Chrome,
    public: bool,
    title: &'static str,
    d: Dashboard,
    periods: Vec<(String, &'static str, bool)>,
}

#[derive(Template)]
#[template(path = "elected.html")]
struct ElectedPage {
    c: Chrome,
    public: bool,
    period: String,
    sentences: Vec<String>,
    sections: Vec<(&'static str, &'static str, Vec<Kpi>)>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DashboardQuery {
    jours: Option<String>,
}

/// The time zone dashboards count local days and hours in: the first organisation's (the instance's).
async fn local_zone(state: &AppState) -> chrono_tz::Tz {
    state.organisations().await.ok().and_then(|o| o.first().map(|o| o.timezone)).unwrap_or(chrono_tz::Europe::Paris)
}

fn days_of(q: &DashboardQuery) -> i64 {
    match q.jours.as_deref() {
        Some("7") => 7,
        Some("90") => 90,
        _ => 30,
    }
}

pub async fn dashboards_index(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    let (mut c, cookie) = chrome(&state, &caller, &headers, "/tableaux");
    c.section = "tableaux";
    let h = c.h;
    let lang = c.t.lang;
    let page = DashboardsIndex {
        public: !caller.is_authenticated(),
        cards: Layer::ALL.iter().map(|l| (l.slug(), h.layer(l))).collect(),
        c,
    };
    html(StatusCode::OK, lang, &page, cookie.into_iter().collect())
}

pub async fn dashboard_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(domain): Path<String>,
    Query(q): Query<DashboardQuery>,
) -> Response {
    let Some(layer) = Layer::from_slug(&domain) else {
        return message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found);
    };
    let path = format!("/tableaux/{}", layer.slug());
    let (mut c, cookie) = chrome(&state, &caller, &headers, &path);
    c.section = "tableaux";
    let (t, h) = (c.t, c.h);
    let days = days_of(&q);
    let period = DashboardPeriod::last_days(days, Utc::now(), local_zone(&state).await);
    let tr = Tr { fr: t.lang == "fr" };
    let d = match dashboards::dashboard(&state.scoped(&caller), layer, &period, tr).await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let periods = [(7, h.preset_week), (30, h.preset_month), (90, h.preset_quarter)]
        .into_iter()
        .map(|(n, label)| (format!("{path}?jours={n}"), label, n == days))
        .collect();
    let page = DashboardPage { public: !caller.is_authenticated(), title: h.layer(&layer), d, periods, c };
    html(StatusCode::OK, t.lang, &page, cookie.into_iter().collect())
}

/// The élu view: every domain's headline figures and its plain sentences.
pub async fn elected_page(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    let (mut c, cookie) = chrome(&state, &caller, &headers, "/elu");
    c.section = "elu";
    let (t, h) = (c.t, c.h);
    let period = DashboardPeriod::last_days(30, Utc::now(), local_zone(&state).await);
    let tr = Tr { fr: t.lang == "fr" };
    let scoped = state.scoped(&caller);
    let mut sentences = Vec::new();
    let mut sections = Vec::new();
    for layer in Layer::ALL {
        let d = match dashboards::dashboard(&scoped, layer, &period, tr).await {
            Ok(d) => d,
            Err(e) => return internal(e),
        };
        // A domain the caller sees nothing of says nothing.
        if d.tables.iter().all(|t| t.rows.is_empty()) {
            continue;
        }
        sentences.extend(d.sentences);
        sections.push((layer.slug(), h.layer(&layer), d.kpis));
    }
    let page =
        ElectedPage { public: !caller.is_authenticated(), period: period_text(&period, tr), sentences, sections, c };
    html(StatusCode::OK, t.lang, &page, cookie.into_iter().collect())
}

fn period_text(p: &DashboardPeriod, tr: Tr) -> String {
    let f = p.from.with_timezone(&p.tz).format(if tr.fr { "%d/%m/%Y" } else { "%Y-%m-%d" });
    let t = p.to.with_timezone(&p.tz).format(if tr.fr { "%d/%m/%Y" } else { "%Y-%m-%d" });
    // Each figure says what it is compared with: last year when stored, else the previous days.
    if tr.fr {
        format!("{} derniers jours, du {f} au {t}", p.days)
    } else {
        format!("last {} days, {f} to {t}", p.days)
    }
}
