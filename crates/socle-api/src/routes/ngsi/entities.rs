//! `/ngsi-ld/v1/entities` and `/ngsi-ld/v1/entityOperations/query`:
//! create, retrieve, query, update, merge, replace, delete.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use socle_domain::{AttributeName, Entity, EntityFilter, EntityId, EntityType};
use socle_ngsi::representation::{self, apply, observations, parse_fragment, Change, Format, Render};
use socle_ngsi::{Context, GeoQuery, NgsiError, Query, TypeExpr};

use super::{accept, bytes, no_content, parse_id, read_body, read_context, reply, tenant, Fail, NgsiResult, Out};
use crate::policy::NgsiScoped;
use crate::policy::ALERT_TYPE;
use crate::{AppState, Caller};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 1000;
/// Entities read to evaluate `q`/`geoQ` after the SQL prefilter; past it,
/// the query must be narrowed (TooManyResults).
pub const MAX_SCAN: u32 = 200_000;

pub(crate) fn params(raw: Option<&str>) -> NgsiResult<HashMap<String, String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|_| Fail(NgsiError::BadRequestData("The query string is malformed".into())))?;
    Ok(pairs.into_iter().collect())
}

fn options(p: &HashMap<String, String>) -> (Format, bool) {
    let o = p.get("options").map(String::as_str).unwrap_or_default();
    let format = match p.get("format").map(String::as_str) {
        Some("keyValues" | "simplified") => Format::KeyValues,
        Some("concise") => Format::Concise,
        _ => Format::from_options(o),
    };
    (format, o.split(',').any(|x| x == "sysAttrs"))
}

fn attrs_list(p: &HashMap<String, String>, ctx: &Context) -> Option<Vec<String>> {
    p.get("attrs").filter(|a| !a.is_empty()).map(|a| a.split(',').map(|t| ctx.to_stored(t.trim())).collect())
}

fn render_one(e: &Entity, p: &HashMap<String, String>, ctx: &Context) -> Value {
    let (format, sys_attrs) = options(p);
    let attrs = attrs_list(p, ctx);
    let lang = p.get("lang").map(String::as_str);
    representation::render(e, &Render { format, sys_attrs, attrs: attrs.as_deref(), ctx, lang })
}

async fn scope(state: &AppState, caller: &Caller, headers: &HeaderMap) -> NgsiResult<NgsiScoped> {
    Ok(state.ngsi(caller, tenant(headers)).await?)
}

/// `POST /entities`
pub async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Body) -> NgsiResult {
    let n = scope(&state, &caller, &headers).await?;
    let (body, ctx) = read_body(&n, &headers, &bytes(body).await?).await?;
    let org = n.target_organisation()?;
    let entity = representation::parse_entity(&body, &ctx, org)?;
    if n.id_taken(&entity.id).await? {
        return Err(Fail(NgsiError::AlreadyExists(format!("Entity {} already exists", entity.id))));
    }
    let obs = observations(&entity.id, &parse_fragment(&body, &ctx)?);
    n.save(std::slice::from_ref(&entity), &obs).await?;
    Ok(super::created(&format!("/ngsi-ld/v1/entities/{}", entity.id)))
}

/// `GET /entities/{id}`
pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let out = accept(&headers)?;
    let n = scope(&state, &caller, &headers).await?;
    let ctx = read_context(&n, &headers).await?;
    let p = params(raw.as_deref())?;
    let id = parse_id(&id)?;
    let e = n.entity(&id).await?.ok_or_else(|| NgsiError::entity_not_found(id.as_str()))?;
    if let Some(t) = p.get("type") {
        let mut te = TypeExpr::parse(t)?;
        te.rename(&|t| ctx.to_stored(t));
        if !te.matches(e.entity_type.as_str()) {
            return Err(Fail(NgsiError::entity_not_found(id.as_str())));
        }
    }
    Ok(reply(StatusCode::OK, render_one(&e, &p, &ctx), &ctx, out))
}

/// What a query asks for, names already stored ones.
pub(crate) struct Selection {
    pub types: Option<TypeExpr>,
    pub ids: Option<Vec<String>>,
    pub id_pattern: Option<regex::Regex>,
    pub attrs: Option<Vec<String>>,
    pub q: Option<Query>,
    pub geo: Option<GeoQuery>,
}

impl Selection {
    pub(crate) fn from_params(p: &HashMap<String, String>, ctx: &Context) -> NgsiResult<Self> {
        let types = p
            .get("type")
            .map(|t| {
                let mut te = TypeExpr::parse(t)?;
                te.rename(&|t| ctx.to_stored(t));
                Ok::<_, NgsiError>(te)
            })
            .transpose()?;
        let ids = p.get("id").map(|ids| ids.split(',').map(|s| s.trim().to_owned()).collect());
        let id_pattern = p
            .get("idPattern")
            .map(|re| {
                regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| NgsiError::BadRequestData(format!("Invalid idPattern: {e}")))
            })
            .transpose()?;
        let q = p
            .get("q")
            .map(|q| {
                let mut q = Query::parse(q)?;
                q.rename(&|a| ctx.to_stored(a));
                Ok::<_, NgsiError>(q)
            })
            .transpose()?;
        let geo = match (p.get("georel"), p.get("geometry"), p.get("coordinates")) {
            (None, None, None) => None,
            (Some(r), Some(g), Some(c)) => {
                let gp = p.get("geoproperty").map(|g| ctx.to_stored(g));
                Some(GeoQuery::parse(r, g, c, gp.as_deref())?)
            }
            _ => {
                return Err(Fail(NgsiError::BadRequestData(
                    "A geo-query needs georel, geometry and coordinates".into(),
                )))
            }
        };
        Ok(Self { types, ids, id_pattern, attrs: attrs_list(p, ctx), q, geo })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.types.is_none()
            && self.ids.is_none()
            && self.id_pattern.is_none()
            && self.attrs.is_none()
            && self.q.is_none()
            && self.geo.is_none()
    }

    pub(crate) fn matches(&self, e: &Entity) -> bool {
        self.types.as_ref().is_none_or(|t| t.matches(e.entity_type.as_str()))
            && self.ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == e.id.as_str()))
            && self.id_pattern.as_ref().is_none_or(|re| re.is_match(e.id.as_str()))
            && self.attrs.as_ref().is_none_or(|attrs| {
                attrs.iter().any(|a| {
                    (a == "location" && e.location.is_some())
                        || AttributeName::parse(a).is_ok_and(|n| e.attributes.contains_key(&n))
                })
            })
            && self.q.as_ref().is_none_or(|q| q.matches(e))
            && self.geo.as_ref().is_none_or(|g| g.matches(e))
    }

    /// Whether alerts (type `Alert`, read-only) may be among the results.
    fn wants_alerts(&self) -> bool {
        self.types.as_ref().is_none_or(|t| t.matches(ALERT_TYPE))
            && self.ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i.starts_with("urn:ngsi-ld:Alert:")))
    }

    /// Entities matching, one page of them, and how many match in all.
    pub(crate) async fn run(&self, n: &NgsiScoped, limit: u32, offset: u64) -> NgsiResult<(Vec<Entity>, u64)> {
        let single = self.types.as_ref().and_then(TypeExpr::single).and_then(|t| EntityType::parse(t).ok());
        if self.types.as_ref().is_some_and(|t| t.single().is_some()) && single.is_none() {
            // A type no entity can have (not a valid Socle type name).
            return Ok((Vec::new(), 0));
        }
        let wants_alerts = self.wants_alerts();
        let only_type = self.ids.is_none()
            && self.id_pattern.is_none()
            && self.attrs.is_none()
            && self.q.is_none()
            && self.geo.is_none();
        if only_type && !wants_alerts && single.is_some() {
            let page = n.query(EntityFilter { entity_type: single, limit, offset, ..Default::default() }).await?;
            return Ok((page.items, page.total));
        }
        // Alerts are never stored as entities (writes of type Alert are refused).
        let only_alerts = matches!(&self.types, Some(TypeExpr::Type(t)) if t == ALERT_TYPE);
        let mut all: Vec<(EntityId, Option<Entity>)> =
            if only_alerts { Vec::new() } else { self.stored(n, single.clone()).await? };
        if wants_alerts {
            all.extend(
                n.alert_entities().await?.into_iter().filter(|e| self.matches(e)).map(|e| (e.id.clone(), Some(e))),
            );
            all.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let total = all.len() as u64;
        let mut wanted: Vec<(EntityId, Option<Entity>)> =
            all.into_iter().skip(usize::try_from(offset).unwrap_or(usize::MAX)).take(limit as usize).collect();
        let missing: Vec<EntityId> = wanted.iter().filter(|(_, e)| e.is_none()).map(|(id, _)| id.clone()).collect();
        if !missing.is_empty() {
            let mut found: HashMap<EntityId, Entity> =
                load(n, single, missing).await?.into_iter().map(|e| (e.id.clone(), e)).collect();
            for (id, e) in &mut wanted {
                if e.is_none() {
                    *e = found.remove(id);
                }
            }
        }
        // An entity deleted between both reads is left out of the page.
        Ok((wanted.into_iter().filter_map(|(_, e)| e).collect(), total))
    }

    /// Stored entities matching, in id order; those read to be checked come
    /// with their entity, the others (storage was sure) with their id only.
    async fn stored(&self, n: &NgsiScoped, single: Option<EntityType>) -> NgsiResult<Vec<(EntityId, Option<Entity>)>> {
        // What storage evaluates: the type, the ids, the area's box and the
        // part of q it can; Rust then decides exactly for the entities
        // storage is not sure of.
        let pushed = self.q.as_ref().map(Query::pushdown);
        let ids = self.ids.as_ref().map(|ids| ids.iter().filter_map(|i| EntityId::parse(i).ok()).collect::<Vec<_>>());
        let exact = self.types.as_ref().is_none_or(|t| matches!(t, TypeExpr::Type(_)))
            && self.id_pattern.is_none()
            && self.attrs.is_none()
            && self.geo.is_none()
            && pushed.as_ref().is_none_or(|p| p.complete);
        let filter = EntityFilter {
            entity_type: single.clone(),
            ids,
            bbox: self.geo.as_ref().and_then(GeoQuery::prefilter),
            attributes: pushed.map(|p| p.conditions).unwrap_or_default(),
            ..Default::default()
        };
        let found = n.matches(filter).await?;
        let unsure: Vec<EntityId> = found.iter().filter(|m| !(exact && m.sure)).map(|m| m.id.clone()).collect();
        if unsure.len() > MAX_SCAN as usize {
            return Err(Fail(NgsiError::TooManyResults(format!(
                "More than {MAX_SCAN} entities to examine: narrow the query by type, area or q"
            ))));
        }
        let mut checked: HashMap<EntityId, Entity> = HashMap::new();
        for chunk in unsure.chunks(LOAD_CHUNK) {
            for e in load(n, single.clone(), chunk.to_vec()).await? {
                if self.matches(&e) {
                    checked.insert(e.id.clone(), e);
                }
            }
        }
        Ok(found
            .into_iter()
            .filter_map(|m| match checked.remove(&m.id) {
                Some(e) => Some((m.id, Some(e))),
                None if exact && m.sure => Some((m.id, None)),
                None => None,
            })
            .collect())
    }
}

/// Entities read at once to check them in Rust.
const LOAD_CHUNK: usize = 1000;

/// These entities (of this type, when the selection names one).
async fn load(n: &NgsiScoped, entity_type: Option<EntityType>, ids: Vec<EntityId>) -> NgsiResult<Vec<Entity>> {
    let limit = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    Ok(n.query(EntityFilter { entity_type, ids: Some(ids), limit, ..Default::default() }).await?.items)
}

pub(crate) fn paging(p: &HashMap<String, String>) -> NgsiResult<(u32, u64, bool)> {
    let count = p.get("count").is_some_and(|c| c == "true");
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l.parse::<u32>().map_err(|_| NgsiError::BadRequestData(format!("limit `{l}` is not a number")))?,
    };
    if limit > MAX_LIMIT {
        return Err(Fail(NgsiError::TooManyResults(format!("limit is at most {MAX_LIMIT}"))));
    }
    if limit == 0 && !count {
        return Err(Fail(NgsiError::BadRequestData("limit=0 only goes with count=true".into())));
    }
    let offset = match p.get("offset") {
        None => 0,
        Some(o) => o.parse::<u64>().map_err(|_| NgsiError::BadRequestData(format!("offset `{o}` is not a number")))?,
    };
    Ok((limit, offset, count))
}

fn list_reply(
    entities: &[Entity],
    total: u64,
    count: bool,
    p: &HashMap<String, String>,
    ctx: &Context,
    out: Out,
) -> Response {
    let items: Vec<Value> = entities.iter().map(|e| render_one(e, p, ctx)).collect();
    let mut res = reply(StatusCode::OK, Value::Array(items), ctx, out);
    if count {
        res.headers_mut().insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    res
}

/// `GET /entities`
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let out = accept(&headers)?;
    let n = scope(&state, &caller, &headers).await?;
    let ctx = read_context(&n, &headers).await?;
    let p = params(raw.as_deref())?;
    let sel = Selection::from_params(&p, &ctx)?;
    if sel.is_empty() {
        return Err(Fail(NgsiError::BadRequestData(
            "Name at least one of type, id, idPattern, attrs, q or a geo-query".into(),
        )));
    }
    let (limit, offset, count) = paging(&p)?;
    let (entities, total) = sel.run(&n, limit, offset).await?;
    Ok(list_reply(&entities, total, count, &p, &ctx, out))
}

/// `POST /entityOperations/query`: the same query, in a body.
pub async fn query_post(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Body,
) -> NgsiResult {
    let out = accept(&headers)?;
    let n = scope(&state, &caller, &headers).await?;
    let (body, ctx) = read_body(&n, &headers, &bytes(body).await?).await?;
    let mut p = params(raw.as_deref())?;
    let o = body.as_object().ok_or_else(|| NgsiError::BadRequestData("The query must be a JSON object".into()))?;
    if o.get("type").and_then(Value::as_str).is_some_and(|t| t != "Query") {
        return Err(Fail(NgsiError::BadRequestData("The query's type must be Query".into())));
    }
    if let Some(Value::Array(sel)) = o.get("entities") {
        let types: Vec<&str> = sel.iter().filter_map(|s| s.get("type").and_then(Value::as_str)).collect();
        let ids: Vec<&str> = sel.iter().filter_map(|s| s.get("id").and_then(Value::as_str)).collect();
        let patterns: Vec<&str> = sel.iter().filter_map(|s| s.get("idPattern").and_then(Value::as_str)).collect();
        if !types.is_empty() {
            p.insert("type".into(), types.join(","));
        }
        if !ids.is_empty() {
            p.insert("id".into(), ids.join(","));
        }
        if !patterns.is_empty() {
            p.insert("idPattern".into(), patterns.join("|"));
        }
    }
    if let Some(Value::Array(attrs)) = o.get("attrs") {
        p.insert("attrs".into(), attrs.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","));
    }
    if let Some(Value::String(q)) = o.get("q") {
        p.insert("q".into(), q.clone());
    }
    let mut sel = Selection::from_params(&p, &ctx)?;
    if let Some(g) = o.get("geoQ") {
        let s = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let gp = g.get("geoproperty").and_then(Value::as_str).map(|g| ctx.to_stored(g));
        let coords = g.get("coordinates").cloned().unwrap_or(Value::Null);
        sel.geo = Some(GeoQuery::from_json(&s("georel"), &s("geometry"), coords, gp.as_deref())?);
    }
    if sel.is_empty() {
        return Err(Fail(NgsiError::BadRequestData("The query selects nothing".into())));
    }
    let (limit, offset, count) = paging(&p)?;
    let (entities, total) = sel.run(&n, limit, offset).await?;
    Ok(list_reply(&entities, total, count, &p, &ctx, out))
}

/// `DELETE /entities/{id}`
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> NgsiResult {
    let n = scope(&state, &caller, &headers).await?;
    n.delete(&parse_id(&id)?).await?;
    Ok(no_content())
}

/// Reads a write's body and the entity it changes.
async fn for_update(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    body: Body,
) -> NgsiResult<(NgsiScoped, Entity, Value, Context)> {
    let n = scope(state, caller, headers).await?;
    let (body, ctx) = read_body(&n, headers, &bytes(body).await?).await?;
    let id = parse_id(id)?;
    let e = n.for_update(&id).await?;
    Ok((n, e, body, ctx))
}

fn updated_reply(updated: Vec<String>, not_updated: Vec<(String, &str)>) -> Response {
    if not_updated.is_empty() {
        return no_content();
    }
    let body = json!({
        "updated": updated,
        "notUpdated": not_updated.iter().map(|(a, r)| json!({"attributeName": a, "reason": r})).collect::<Vec<_>>(),
    });
    let mut res = (StatusCode::MULTI_STATUS, body.to_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// `POST /entities/{id}/attrs`: appends (or overwrites, unless `options=noOverwrite`).
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> NgsiResult {
    let p = params(raw.as_deref())?;
    let no_overwrite = p.get("options").is_some_and(|o| o.split(',').any(|x| x == "noOverwrite"));
    let (n, mut e, body, ctx) = for_update(&state, &caller, &headers, &id, body).await?;
    let mut fragment = parse_fragment(&body, &ctx)?;
    let mut skipped = Vec::new();
    if no_overwrite {
        fragment.retain(|name, _| {
            let exists = if name == "location" {
                e.location.is_some()
            } else {
                AttributeName::parse(name).is_ok_and(|n| e.attributes.contains_key(&n))
            };
            if exists {
                skipped.push((ctx.from_stored(name), "attribute exists and noOverwrite was asked"));
            }
            !exists
        });
    }
    let names: Vec<String> = fragment.keys().map(|k| ctx.from_stored(k)).collect();
    let obs = observations(&e.id, &fragment);
    apply(&mut e, fragment);
    n.save(&[e], &obs).await?;
    Ok(updated_reply(names, skipped))
}

/// `PATCH /entities/{id}/attrs`: updates the attributes that exist.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> NgsiResult {
    let (n, mut e, body, ctx) = for_update(&state, &caller, &headers, &id, body).await?;
    let mut fragment = parse_fragment(&body, &ctx)?;
    let mut missing = Vec::new();
    fragment.retain(|name, _| {
        let exists = if name == "location" {
            e.location.is_some()
        } else {
            AttributeName::parse(name).is_ok_and(|n| e.attributes.contains_key(&n))
        };
        if !exists {
            missing.push((ctx.from_stored(name), "attribute does not exist"));
        }
        exists
    });
    let names: Vec<String> = fragment.keys().map(|k| ctx.from_stored(k)).collect();
    let obs = observations(&e.id, &fragment);
    apply(&mut e, fragment);
    n.save(&[e], &obs).await?;
    Ok(updated_reply(names, missing))
}

/// `PATCH /entities/{id}/attrs/{attr}`: a partial update of one attribute.
pub async fn update_attribute(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, attr)): Path<(String, String)>,
    body: Body,
) -> NgsiResult {
    let (n, mut e, body, ctx) = for_update(&state, &caller, &headers, &id, body).await?;
    let name = ctx.to_stored(&attr);
    let not_found = || Fail(NgsiError::ResourceNotFound(format!("Attribute {attr} was not found")));
    let key = AttributeName::parse(&name).map_err(|_| not_found())?;
    let current = e.attributes.get(&key).cloned().ok_or_else(not_found)?;
    // Partial: keys not sent keep their value (a new value without unitCode keeps the unit).
    let mut merged = serde_json::to_value(&current).unwrap_or_default();
    if let (Some(m), Some(b)) = (merged.as_object_mut(), body.as_object()) {
        for (k, v) in b {
            if k != "@context" {
                m.insert(k.clone(), v.clone());
            }
        }
    } else {
        merged = body.clone();
    }
    let change = representation::parse_attribute(&name, &merged)?;
    let fragment = std::collections::BTreeMap::from([(name, change)]);
    let obs = observations(&e.id, &fragment);
    apply(&mut e, fragment);
    n.save(&[e], &obs).await?;
    Ok(no_content())
}

/// `DELETE /entities/{id}/attrs/{attr}`
pub async fn delete_attribute(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, attr)): Path<(String, String)>,
) -> NgsiResult {
    let n = scope(&state, &caller, &headers).await?;
    let ctx = read_context(&n, &headers).await?;
    let mut e = n.for_update(&parse_id(&id)?).await?;
    let name = ctx.to_stored(&attr);
    let removed = if name == "location" {
        e.location.take().is_some()
    } else {
        AttributeName::parse(&name).is_ok_and(|k| e.attributes.remove(&k).is_some())
    };
    if !removed {
        return Err(Fail(NgsiError::ResourceNotFound(format!("Attribute {attr} was not found"))));
    }
    n.save(&[e], &[]).await?;
    Ok(no_content())
}

/// `PATCH /entities/{id}`: merge-patch (null or `urn:ngsi-ld:null` deletes).
pub async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> NgsiResult {
    let (n, mut e, body, ctx) = for_update(&state, &caller, &headers, &id, body).await?;
    check_body_id(&body, &e)?;
    let fragment = parse_fragment(&body, &ctx)?;
    let obs = observations(&e.id, &fragment);
    apply(&mut e, fragment);
    n.save(&[e], &obs).await?;
    Ok(no_content())
}

/// `PUT /entities/{id}`: replaces every attribute (the owner and the
/// Socle visibility stay).
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> NgsiResult {
    let (n, mut e, body, ctx) = for_update(&state, &caller, &headers, &id, body).await?;
    check_body_id(&body, &e)?;
    if let Some(t) = body.get("type").and_then(Value::as_str) {
        e.entity_type = EntityType::parse(&ctx.to_stored(t))
            .map_err(|_| NgsiError::BadRequestData(format!("`{t}` is not a valid entity type")))?;
    }
    let fragment = parse_fragment(&body, &ctx)?;
    if fragment.values().any(|c| matches!(c, Change::Delete)) {
        return Err(Fail(NgsiError::BadRequestData("A replacement cannot hold null attributes".into())));
    }
    e.attributes.clear();
    e.location = None;
    let obs = observations(&e.id, &fragment);
    apply(&mut e, fragment);
    n.save(&[e], &obs).await?;
    Ok(no_content())
}

fn check_body_id(body: &Value, e: &Entity) -> NgsiResult<()> {
    match body.get("id").and_then(Value::as_str) {
        Some(id) if id != e.id.as_str() => {
            Err(Fail(NgsiError::BadRequestData(format!("The body's id {id} differs from the path's"))))
        }
        _ => Ok(()),
    }
}
