//! `/ngsi-ld/v1/temporal/entities`: the history of entities from Socle's
//! series. Plain instances come from raw points; aggregations come from the
//! hourly rollups when the period is a whole number of hours and every
//! method asked can be computed from min/max/sum/count, from raw points
//! otherwise (stddev, sumsq, distinctCount, periods such as PT15M).

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Map, Value};
use socle_domain::{Entity, SeriesPoints, SeriesQuery, Step, TimeRange};
use socle_ngsi::temporal::{aggregate_raw, aggregate_rollups, format_instant, parse_duration, time_range, AggrMethod};
use socle_ngsi::{Context, NgsiError};

use super::entities::{paging, params, Selection};
use super::{accept, parse_id, read_context, reply, tenant, Fail, NgsiResult};
use crate::policy::NgsiScoped;
use crate::{AppState, Caller};

/// Instances returned per attribute before paging (206 + Content-Range).
pub const MAX_INSTANCES: u32 = 1000;
/// Raw points read to aggregate one attribute (a year of 15-minute data is 35,040).
pub const MAX_AGGREGATED_POINTS: u32 = 500_000;

struct Ask {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    attrs: Option<Vec<String>>,
    last_n: Option<u32>,
    temporal_values: bool,
    aggregation: Option<(BTreeSet<AggrMethod>, Option<Duration>)>,
}

impl Ask {
    fn from_params(p: &HashMap<String, String>, ctx: &Context) -> NgsiResult<Self> {
        let get = |k: &str| p.get(k).map(String::as_str);
        let (from, to) = time_range(get("timerel"), get("timeAt"), get("endTimeAt"), Utc::now())?;
        let options: Vec<&str> = get("options").unwrap_or_default().split(',').collect();
        let last_n = get("lastN")
            .map(|n| {
                n.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| NgsiError::BadRequestData(format!("lastN `{n}` is not a positive integer")))
            })
            .transpose()?;
        let aggregated = options.contains(&"aggregatedValues") || get("format") == Some("aggregatedValues");
        let aggregation = match (get("aggrMethods"), aggregated) {
            (Some(m), _) => {
                let period = get("aggrPeriodDuration").map(parse_duration).transpose()?.filter(|d| !d.is_zero());
                Some((AggrMethod::parse_list(m)?, period))
            }
            (None, true) => return Err(Fail(NgsiError::BadRequestData("aggregatedValues needs aggrMethods".into()))),
            (None, false) => None,
        };
        Ok(Self {
            from,
            to,
            attrs: p
                .get("attrs")
                .filter(|a| !a.is_empty())
                .map(|a| a.split(',').map(|t| ctx.to_stored(t.trim())).collect()),
            last_n,
            temporal_values: options.contains(&"temporalValues") || get("format") == Some("temporalValues"),
            aggregation,
        })
    }
}

/// One entity's temporal representation, and the time span returned when
/// instances were cut (for Content-Range).
async fn temporal_entity(
    n: &NgsiScoped,
    e: &Entity,
    ask: &Ask,
    ctx: &Context,
) -> NgsiResult<(Value, Option<(DateTime<Utc>, DateTime<Utc>)>)> {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(e.id.as_str()));
    out.insert("type".into(), Value::from(ctx.from_stored(e.entity_type.as_str())));
    let mut cut = None;
    let range = TimeRange::new(ask.from, ask.to).map_err(|e| NgsiError::BadRequestData(e.to_string()))?;
    for s in n.list_series(&e.id).await? {
        let name = s.attribute.as_str();
        if ask.attrs.as_ref().is_some_and(|a| !a.iter().any(|x| x == name)) {
            continue;
        }
        let unit = s.unit_code.as_ref().map(|u| Value::from(u.as_str()));
        let mut attr = Map::new();
        attr.insert("type".into(), Value::from("Property"));
        if let Some((methods, period)) = &ask.aggregation {
            if !s.numeric {
                continue;
            }
            let hours = period.map_or(Some(0), |p| (p.num_milliseconds() % 3_600_000 == 0).then_some(1));
            let aligned = |t: DateTime<Utc>| t.duration_trunc(Duration::hours(1)).ok() == Some(t);
            let to_hour = ask.to.duration_trunc(Duration::hours(1)).unwrap_or(ask.to);
            let use_rollups = methods.iter().all(|m| m.from_rollups())
                && hours.is_some()
                && aligned(ask.from)
                && (aligned(ask.to) || to_hour > Utc::now());
            let q =
                |step, limit| SeriesQuery { entity: e.id.clone(), attribute: s.attribute.clone(), range, step, limit };
            let values = if use_rollups {
                match n.series(&q(Step::Hour, MAX_AGGREGATED_POINTS)).await? {
                    SeriesPoints::Buckets(b) => aggregate_rollups(&b, ask.from, ask.to, *period, methods),
                    SeriesPoints::Raw(_) => Map::new(),
                }
            } else {
                let points = match n.series(&q(Step::Raw, MAX_AGGREGATED_POINTS)).await? {
                    SeriesPoints::Raw(r) => r,
                    SeriesPoints::Buckets(_) => Vec::new(),
                };
                if points.len() >= MAX_AGGREGATED_POINTS as usize {
                    return Err(Fail(NgsiError::TooManyResults(format!(
                        "More than {MAX_AGGREGATED_POINTS} points to aggregate: narrow the time range or use a whole number of hours"
                    ))));
                }
                let pts: Vec<(DateTime<Utc>, f64)> =
                    points.iter().filter_map(|p| Some((p.t, p.value.as_f64()?))).collect();
                aggregate_raw(&pts, ask.from, ask.to, *period, methods)
            };
            attr.extend(values);
            if let Some(u) = unit {
                attr.insert("unitCode".into(), u);
            }
            out.insert(ctx.from_stored(name), Value::Object(attr));
            continue;
        }
        // lastN wants the newest: read them all within the limit, keep the tail.
        let limit = if ask.last_n.is_some() { MAX_AGGREGATED_POINTS } else { MAX_INSTANCES };
        let q = SeriesQuery { entity: e.id.clone(), attribute: s.attribute.clone(), range, step: Step::Raw, limit };
        let SeriesPoints::Raw(mut points) = n.series(&q).await? else { continue };
        if s.numeric {
            // Both backends answer the same JSON number (PostgreSQL would give 2 for 2.0).
            for p in &mut points {
                if let Some(f) = p.value.as_f64() {
                    p.value = Value::from(f);
                }
            }
        }
        if let Some(last) = ask.last_n {
            let skip = points.len().saturating_sub(last as usize);
            points.drain(..skip);
        } else if points.len() >= MAX_INSTANCES as usize {
            let span = (points[0].t, points[points.len() - 1].t);
            cut = Some(cut.map_or(span, |(a, b): (DateTime<Utc>, DateTime<Utc>)| (a.min(span.0), b.min(span.1))));
        }
        let value = if ask.temporal_values {
            attr.insert(
                "values".into(),
                Value::Array(points.iter().map(|p| json!([p.value, format_instant(p.t)])).collect()),
            );
            if let Some(u) = unit {
                attr.insert("unitCode".into(), u);
            }
            Value::Object(attr)
        } else {
            Value::Array(
                points
                    .iter()
                    .map(|p| {
                        let mut i = json!({"type": "Property", "value": p.value, "observedAt": format_instant(p.t)});
                        if let (Some(u), Some(o)) = (&unit, i.as_object_mut()) {
                            o.insert("unitCode".into(), u.clone());
                        }
                        i
                    })
                    .collect(),
            )
        };
        out.insert(ctx.from_stored(name), value);
    }
    Ok((Value::Object(out), cut))
}

fn with_range(mut res: Response, cut: Option<(DateTime<Utc>, DateTime<Utc>)>) -> Response {
    if let Some((a, b)) = cut {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        let range = format!("date-time {}-{}/*", format_instant(a), format_instant(b));
        if let Ok(v) = HeaderValue::from_str(&range) {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    res
}

/// `GET /temporal/entities/{id}`
pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let out = accept(&headers)?;
    let n = state.ngsi(&caller, tenant(&headers)).await?;
    let ctx = read_context(&n, &headers).await?;
    let p = params(raw.as_deref())?;
    let ask = Ask::from_params(&p, &ctx)?;
    let id = parse_id(&id)?;
    let e = n.entity(&id).await?.ok_or_else(|| NgsiError::entity_not_found(id.as_str()))?;
    let (v, cut) = temporal_entity(&n, &e, &ask, &ctx).await?;
    Ok(with_range(reply(StatusCode::OK, v, &ctx, out), cut))
}

/// `GET /temporal/entities`: the entities of a query, each with its history.
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let out = accept(&headers)?;
    let n = state.ngsi(&caller, tenant(&headers)).await?;
    let ctx = read_context(&n, &headers).await?;
    let p = params(raw.as_deref())?;
    let ask = Ask::from_params(&p, &ctx)?;
    let mut sel_params = p.clone();
    // `attrs` selects the history shown, not the entities.
    sel_params.remove("attrs");
    let sel = Selection::from_params(&sel_params, &ctx)?;
    if sel.is_empty() {
        return Err(Fail(NgsiError::BadRequestData(
            "Name at least one of type, id, idPattern, q or a geo-query".into(),
        )));
    }
    let (limit, offset, count) = paging(&p)?;
    let (entities, total) = sel.run(&n, limit, offset).await?;
    let mut items = Vec::new();
    let mut cut: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for e in &entities {
        let (v, c) = temporal_entity(&n, e, &ask, &ctx).await?;
        if let Some((a, b)) = c {
            cut = Some(cut.map_or((a, b), |(x, y)| (x.min(a), y.min(b))));
        }
        items.push(v);
    }
    let mut res = with_range(reply(StatusCode::OK, Value::Array(items), &ctx, out), cut);
    if count {
        res.headers_mut().insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    Ok(res)
}
