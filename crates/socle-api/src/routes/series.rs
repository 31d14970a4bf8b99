use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use socle_domain::{Aggregate, AttributeName, EntityId, SeriesPoints, SeriesQuery, Step, TimeRange};
use utoipa::IntoParams;

use crate::dto::{PointDto, SeriesList, SeriesResponse};
use crate::i18n::Lang;
use crate::problem::{ApiResult, Problem};
use crate::query::{ApiPath, ApiQuery};
use crate::routes::entities::parse_number;
use crate::{AppState, Caller};

pub const DEFAULT_POINTS: u32 = 10_000;
pub const MAX_POINTS: u32 = 100_000;

/// The series (attributes with history) of an entity.
#[utoipa::path(get, path = "/api/v1/entities/{id}/series", tag = "series",
    params(("id" = String, Path, description = "Entity id (URN)")),
    responses((status = 200, body = SeriesList),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SeriesList>> {
    let parsed = EntityId::parse(&id).map_err(|e| Problem::invalid_parameter(lang, "id", &e))?;
    let items = state.scoped(&caller).list_series(&parsed).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(SeriesList { entity: id, items: items.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Start (RFC 3339, inclusive). Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339, exclusive). Default: now.
    pub to: Option<String>,
    /// `raw` (default), `hour` or `day` (local days of the owning organisation).
    pub step: Option<String>,
    /// For `hour`/`day`: aggregates to return, comma-separated among avg, min, max, sum, count. Default: all.
    #[serde(rename = "fn")]
    #[param(rename = "fn")]
    pub functions: Option<String>,
    /// Maximum number of points, 1 to 100,000, default 10,000.
    pub limit: Option<String>,
}

fn parse_time(lang: Lang, name: &str, raw: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim()).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        Problem::bad_request(
            lang,
            "invalid-time",
            format!("Le paramètre « {name} » doit être une date RFC 3339, par exemple 2026-01-15T08:00:00+01:00 (reçu : {raw:?})."),
            format!("Parameter '{name}' must be an RFC 3339 date-time such as 2026-01-15T08:00:00+01:00 (got {raw:?})."),
        )
    })
}

/// Points of one series over a time range: raw, or hourly/daily aggregates served from rollups.
#[utoipa::path(get, path = "/api/v1/entities/{id}/series/{attribute}", tag = "series",
    params(("id" = String, Path, description = "Entity id (URN)"),
           ("attribute" = String, Path, description = "Attribute name, e.g. consumption"),
           SeriesParams),
    responses((status = 200, body = SeriesResponse),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn points(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath((id, attribute)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<SeriesParams>,
) -> ApiResult<Json<SeriesResponse>> {
    let entity = EntityId::parse(&id).map_err(|e| Problem::invalid_parameter(lang, "id", &e))?;
    let attribute = AttributeName::parse(&attribute).map_err(|e| Problem::invalid_parameter(lang, "attribute", &e))?;
    let to = p.to.as_deref().map(|t| parse_time(lang, "to", t)).transpose()?.unwrap_or_else(Utc::now);
    let from = match p.from.as_deref() {
        Some(f) => parse_time(lang, "from", f)?,
        None => to - Duration::hours(24),
    };
    let range = TimeRange::new(from, to).map_err(|e| Problem::invalid_parameter(lang, "from", &e))?;
    let step: Step =
        p.step.as_deref().unwrap_or("raw").parse().map_err(|e| Problem::invalid_parameter(lang, "step", &e))?;
    let functions: Vec<Aggregate> = match p.functions.as_deref() {
        None => vec![Aggregate::Count, Aggregate::Min, Aggregate::Max, Aggregate::Avg, Aggregate::Sum],
        Some(list) => list
            .split(',')
            .take(5)
            .map(|f| f.trim().parse().map_err(|e| Problem::invalid_parameter(lang, "fn", &e)))
            .collect::<ApiResult<_>>()?,
    };
    if step == Step::Raw && p.functions.is_some() {
        return Err(Problem::bad_request(
            lang,
            "invalid-parameter",
            "« fn » ne s'applique qu'aux pas « hour » et « day ».".into(),
            "'fn' only applies to steps 'hour' and 'day'.".into(),
        ));
    }
    let limit = parse_number(lang, "limit", p.limit.as_deref(), DEFAULT_POINTS, 1, MAX_POINTS)?;
    // One extra point tells whether the answer was cut short.
    let query = SeriesQuery { entity: entity.clone(), attribute: attribute.clone(), range, step, limit: limit + 1 };
    let scoped = state.scoped(&caller);
    let found = scoped.series(&query).await.map_err(|e| Problem::from_store(lang, e))?;
    let mut points: Vec<PointDto> = match found {
        SeriesPoints::Raw(raw) => raw
            .into_iter()
            .map(|r| PointDto { t: r.t, value: Some(r.value), count: None, min: None, max: None, avg: None, sum: None })
            .collect(),
        SeriesPoints::Buckets(b) => b.iter().map(|p| PointDto::bucket(p, &functions)).collect(),
    };
    let truncated = points.len() > limit as usize;
    points.truncate(limit as usize);
    let unit_code = scoped
        .list_series(&entity)
        .await
        .map_err(|e| Problem::from_store(lang, e))?
        .into_iter()
        .find(|s| s.attribute == attribute)
        .and_then(|s| s.unit_code.map(|u| u.to_string()));
    Ok(Json(SeriesResponse {
        entity: entity.to_string(),
        attribute: attribute.to_string(),
        unit_code,
        step: p.step.unwrap_or_else(|| "raw".into()),
        from,
        to,
        truncated,
        points,
    }))
}
