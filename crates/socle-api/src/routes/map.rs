//! `GET /api/v1/map`: every entity the caller may see with a location, as
//! one GeoJSON FeatureCollection made for the map (id, name, layer, state),
//! and the outlines of the communes.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use socle_domain::{Attribute, Entity, EntityFilter, Geometry};

use crate::i18n::Lang;
use crate::policy::Scoped;
use crate::problem::{ApiResult, Problem};
use crate::web::layers::{self, Layer};
use crate::{AppState, Caller};

/// More entities than a territory's map should ever hold in one answer.
pub const MAX_MAP_ENTITIES: u64 = 100_000;

/// Every visible entity matching `filter` (its limit and offset are ignored), page by page.
pub(crate) async fn all_entities(
    scoped: &Scoped,
    filter: EntityFilter,
) -> Result<Vec<Entity>, socle_storage::StoreError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        // Large pages: each one counts the matches again and skips the rows before it.
        let page = scoped.query_entities(EntityFilter { limit: 5000, offset, ..filter.clone() }).await?;
        let n = page.items.len() as u64;
        out.extend(page.items);
        offset += n;
        if n == 0 || offset >= page.total || offset >= MAX_MAP_ENTITIES {
            return Ok(out);
        }
    }
}

/// A text attribute, or the street of an `address`.
pub(crate) fn text_attr(e: &Entity, name: &str) -> Option<String> {
    match e.attributes.iter().find(|(k, _)| k.as_str() == name).map(|(_, a)| a)? {
        Attribute::Property { value: Value::String(s), .. } => Some(s.clone()),
        Attribute::Property { value: Value::Object(o), .. } => {
            o.get("streetAddress").and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

/// Where an entity is, as people say it: its address, else the area it serves.
pub(crate) fn address(e: &Entity) -> Option<String> {
    text_attr(e, "address").or_else(|| text_attr(e, "areaServed"))
}

/// Coordinates to the tenth of a metre (six decimals): what a map can show,
/// and a third fewer bytes than full doubles for 10,000 points.
fn rounded(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(rounded),
        Value::Object(o) => o.values_mut().for_each(rounded),
        Value::Number(n) => {
            if let Some(r) = n.as_f64().and_then(|f| serde_json::Number::from_f64((f * 1e6).round() / 1e6)) {
                *n = r;
            }
        }
        _ => {}
    }
}

fn feature(e: &Entity) -> Option<Value> {
    let mut geometry = serde_json::to_value(e.location.as_ref()?).ok()?;
    rounded(&mut geometry);
    let ty = e.entity_type.as_str();
    let mut properties = json!({ "id": e.id.as_str(), "type": ty, "name": e.name().unwrap_or(e.id.as_str()) });
    if ty == layers::AREA_TYPE {
        properties["area"] = Value::Bool(true);
    } else {
        let layer = Layer::of_type(ty)?;
        properties["layer"] = Value::from(layer.slug());
        properties["state"] = Value::from(layers::state(e));
        if let Some(a) = address(e) {
            properties["address"] = Value::from(a);
        }
    }
    // Street lights and meters are points; a commune outline is a polygon.
    if !matches!(e.location, Some(Geometry::Point(_))) && ty != layers::AREA_TYPE {
        return None;
    }
    Some(json!({ "type": "Feature", "geometry": geometry, "properties": properties }))
}

/// The map's data: a GeoJSON FeatureCollection of the visible entities
/// (properties `id`, `name`, `type`, `layer`, `state`, `address`) and of the
/// commune outlines (property `area`).
#[utoipa::path(get, path = "/api/v1/map", tag = "entities",
    responses((status = 200, description = "GeoJSON FeatureCollection", body = Object, content_type = "application/geo+json")))]
pub async fn features(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let entities = all_entities(&state.scoped(&caller), EntityFilter::default())
        .await
        .map_err(|e| Problem::from_store(lang, e))?;
    let features: Vec<Value> = entities.iter().filter_map(feature).collect();
    let body = serde_json::to_vec(&json!({ "type": "FeatureCollection", "features": features }))
        .map_err(|_| Problem::internal(lang))?;
    // The same map opened again (back from an entity page) is answered by
    // the browser's copy when nothing changed: revalidated every time
    // (`no-cache`), kept only by the caller's browser (`private`).
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag));
    let mut res = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { body.into_response() };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(res)
}
