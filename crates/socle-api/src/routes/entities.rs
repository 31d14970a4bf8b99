use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use socle_domain::{BBox, EntityFilter, EntityId, EntityType, OrganisationId};
use utoipa::IntoParams;

use crate::dto::{EntityDto, EntityList};
use crate::i18n::Lang;
use crate::problem::{ApiResult, Problem};
use crate::query::{ApiPath, ApiQuery};
use crate::{AppState, Caller};

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
/// Deep paging is for exports, not for this API.
pub const MAX_OFFSET: u64 = 1_000_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntityParams {
    /// Organisation ids, comma-separated.
    pub organisation: Option<String>,
    /// Entity type, e.g. `WasteContainer`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub entity_type: Option<String>,
    /// `minLon,minLat,maxLon,maxLat` (WGS 84): entities whose location intersects the box.
    pub bbox: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<String>,
    /// Default 0, at most 1,000,000.
    pub offset: Option<String>,
}

pub(crate) fn parse_number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    lang: Lang,
    name: &str,
    raw: Option<&str>,
    default: T,
    min: T,
    max: T,
) -> ApiResult<T> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(Problem::bad_request(
            lang,
            "invalid-parameter",
            format!("Le paramètre « {name} » doit être un entier entre {min} et {max} (reçu : {raw:?})."),
            format!("Parameter '{name}' must be an integer between {min} and {max} (got {raw:?})."),
        )),
    }
}

/// Entities, filtered by organisation, type and bounding box, ordered by id.
#[utoipa::path(get, path = "/api/v1/entities", tag = "entities", params(EntityParams),
    responses((status = 200, body = EntityList),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<EntityParams>,
) -> ApiResult<Json<EntityList>> {
    let organisations = p
        .organisation
        .as_deref()
        .map(|list| {
            list.split(',')
                .take(1000)
                .map(|o| {
                    OrganisationId::parse(o.trim()).map_err(|e| Problem::invalid_parameter(lang, "organisation", &e))
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    let entity_type = p
        .entity_type
        .as_deref()
        .map(|t| EntityType::parse(t).map_err(|e| Problem::invalid_parameter(lang, "type", &e)))
        .transpose()?;
    let bbox = p
        .bbox
        .as_deref()
        .map(|b| BBox::parse(b).map_err(|e| Problem::invalid_parameter(lang, "bbox", &e)))
        .transpose()?;
    let limit = parse_number(lang, "limit", p.limit.as_deref(), DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = parse_number(lang, "offset", p.offset.as_deref(), 0, 0, MAX_OFFSET)?;
    let filter = EntityFilter { organisations, entity_type, bbox, limit, offset, ..Default::default() };
    let page = state.scoped(&caller).query_entities(filter).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(EntityList { total: page.total, limit, offset, items: page.items.into_iter().map(Into::into).collect() }))
}

/// One entity with the current value of each attribute.
#[utoipa::path(get, path = "/api/v1/entities/{id}", tag = "entities",
    params(("id" = String, Path, description = "Entity id (URN)")),
    responses((status = 200, body = EntityDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EntityDto>> {
    let parsed = EntityId::parse(&id).map_err(|e| Problem::invalid_parameter(lang, "id", &e))?;
    match state.scoped(&caller).entity(&parsed).await.map_err(|e| Problem::from_store(lang, e))? {
        Some(e) => Ok(Json(e.into())),
        None => Err(Problem::from_store(lang, socle_storage::StoreError::UnknownEntity(id))),
    }
}
