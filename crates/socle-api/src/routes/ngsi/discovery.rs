//! `/ngsi-ld/v1/types` and `/ngsi-ld/v1/attributes`: what entity types and
//! attributes the caller's visible entities have. Computed from the entities
//! the caller sees (so a hidden type is not revealed), up to the same scan
//! limit as queries.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use socle_domain::{Attribute, Entity, EntityFilter};
use socle_ngsi::{Context, NgsiError};

use super::entities::{params, MAX_SCAN};
use super::{accept, read_context, reply, tenant, Fail, NgsiResult};
use crate::{AppState, Caller};

fn kind(a: &Attribute) -> &'static str {
    match a {
        Attribute::Property { .. } => "Property",
        Attribute::Relationship { .. } => "Relationship",
        Attribute::GeoProperty { .. } => "GeoProperty",
        Attribute::LanguageProperty { .. } => "LanguageProperty",
        Attribute::ListProperty { .. } => "ListProperty",
    }
}

/// Per attribute (stored name): its kinds, the types holding it, how many entities.
#[derive(Default)]
struct AttrInfo {
    kinds: BTreeSet<&'static str>,
    types: BTreeSet<String>,
    count: u64,
}

#[derive(Default)]
struct TypeInfo {
    count: u64,
    attributes: BTreeMap<String, BTreeSet<&'static str>>,
}

async fn visible(state: &AppState, caller: &Caller, headers: &HeaderMap) -> NgsiResult<Vec<Entity>> {
    let n = state.ngsi(caller, tenant(headers)).await?;
    let page = n.query(EntityFilter { limit: MAX_SCAN, ..Default::default() }).await?;
    if page.total > u64::from(MAX_SCAN) {
        return Err(Fail(NgsiError::TooManyResults(format!(
            "More than {MAX_SCAN} entities: narrow with NGSILD-Tenant"
        ))));
    }
    let mut all = page.items;
    all.extend(n.alert_entities().await?);
    Ok(all)
}

fn survey(entities: &[Entity]) -> (BTreeMap<String, TypeInfo>, BTreeMap<String, AttrInfo>) {
    let mut types: BTreeMap<String, TypeInfo> = BTreeMap::new();
    let mut attrs: BTreeMap<String, AttrInfo> = BTreeMap::new();
    for e in entities {
        let ty = e.entity_type.to_string();
        let t = types.entry(ty.clone()).or_default();
        t.count += 1;
        let mut note = |name: String, k: &'static str| {
            t.attributes.entry(name.clone()).or_default().insert(k);
            let a = attrs.entry(name).or_default();
            a.kinds.insert(k);
            a.types.insert(ty.clone());
            a.count += 1;
        };
        if e.location.is_some() {
            note("location".into(), "GeoProperty");
        }
        for (name, a) in &e.attributes {
            note(name.to_string(), kind(a));
        }
    }
    (types, attrs)
}

fn details(p: &std::collections::HashMap<String, String>) -> bool {
    p.get("details").is_some_and(|d| d == "true")
}

/// `GET /types`
pub async fn types(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let out = accept(&headers)?;
    let ctx = read_context(&state.ngsi(&caller, tenant(&headers)).await?, &headers).await?;
    let p = params(raw.as_deref())?;
    let (types, _) = survey(&visible(&state, &caller, &headers).await?);
    let body = if details(&p) {
        Value::Array(
            types
                .iter()
                .map(|(t, info)| {
                    json!({"id": ctx.expand(&ctx.from_stored(t)), "type": "EntityType", "typeName": ctx.from_stored(t),
                           "attributeNames": info.attributes.keys().map(|a| ctx.from_stored(a)).collect::<Vec<_>>()})
                })
                .collect(),
        )
    } else {
        json!({"id": format!("urn:ngsi-ld:EntityTypeList:{}", uuid::Uuid::new_v4()), "type": "EntityTypeList",
               "typeList": types.keys().map(|t| ctx.from_stored(t)).collect::<Vec<_>>()})
    };
    Ok(reply(StatusCode::OK, body, &ctx, out))
}

/// `GET /types/{type}`
pub async fn type_info(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(ty): Path<String>,
) -> NgsiResult {
    let out = accept(&headers)?;
    let ctx = read_context(&state.ngsi(&caller, tenant(&headers)).await?, &headers).await?;
    let stored = ctx.to_stored(&ty);
    let (types, _) = survey(&visible(&state, &caller, &headers).await?);
    let info =
        types.get(&stored).ok_or_else(|| NgsiError::ResourceNotFound(format!("Entity type {ty} was not found")))?;
    let body = json!({
        "id": ctx.expand(&ty), "type": "EntityTypeInfo", "typeName": ctx.from_stored(&stored), "entityCount": info.count,
        "attributeDetails": info.attributes.iter().map(|(a, kinds)| json!({
            "id": ctx.expand(&ctx.from_stored(a)), "type": "Attribute", "attributeName": ctx.from_stored(a),
            "attributeTypes": kinds.iter().collect::<Vec<_>>()})).collect::<Vec<_>>(),
    });
    Ok(reply(StatusCode::OK, body, &ctx, out))
}

fn attribute_json(ctx: &Context, name: &str, a: &AttrInfo, with_count: bool) -> Value {
    let mut v = json!({"id": ctx.expand(&ctx.from_stored(name)), "type": "Attribute", "attributeName": ctx.from_stored(name),
                       "attributeTypes": a.kinds.iter().collect::<Vec<_>>(),
                       "typeNames": a.types.iter().map(|t| ctx.from_stored(t)).collect::<Vec<_>>()});
    if with_count {
        v["attributeCount"] = json!(a.count);
    }
    v
}

/// `GET /attributes`
pub async fn attributes(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let out = accept(&headers)?;
    let ctx = read_context(&state.ngsi(&caller, tenant(&headers)).await?, &headers).await?;
    let p = params(raw.as_deref())?;
    let (_, attrs) = survey(&visible(&state, &caller, &headers).await?);
    let body = if details(&p) {
        Value::Array(attrs.iter().map(|(n, a)| attribute_json(&ctx, n, a, false)).collect())
    } else {
        json!({"id": format!("urn:ngsi-ld:AttributeList:{}", uuid::Uuid::new_v4()), "type": "AttributeList",
               "attributeList": attrs.keys().map(|a| ctx.from_stored(a)).collect::<Vec<_>>()})
    };
    Ok(reply(StatusCode::OK, body, &ctx, out))
}

/// `GET /attributes/{attr}`
pub async fn attribute_info(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(attr): Path<String>,
) -> NgsiResult {
    let out = accept(&headers)?;
    let ctx = read_context(&state.ngsi(&caller, tenant(&headers)).await?, &headers).await?;
    let stored = ctx.to_stored(&attr);
    let (_, attrs) = survey(&visible(&state, &caller, &headers).await?);
    let a = attrs.get(&stored).ok_or_else(|| NgsiError::ResourceNotFound(format!("Attribute {attr} was not found")))?;
    Ok(reply(StatusCode::OK, attribute_json(&ctx, &stored, a, true), &ctx, out))
}
