//! `/ngsi-ld/v1/entityOperations/{create,upsert,update,merge,delete}`:
//! many entities in one request. Every entity is checked first (rights,
//! existence, shape); the accepted ones are then written in one store
//! transaction, so a failure of the store leaves none of them written.
//! The answer is 201/204 when all succeeded, 207 with per-entity
//! `success`/`errors` otherwise.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use socle_domain::{Entity, EntityId, Observation};
use socle_ngsi::representation::{self, apply, observations, parse_fragment, parse_head, Change};
use socle_ngsi::{Context, NgsiError};

use super::entities::params;
use super::{bytes, read_body, tenant, Fail, NgsiResult};
use crate::policy::NgsiScoped;
use crate::{AppState, Caller};

/// Entities accepted in one batch.
pub const MAX_BATCH: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Upsert { replace: bool },
    Update { no_overwrite: bool },
    Merge,
}

#[derive(Default)]
struct Outcome {
    created: Vec<String>,
    updated: Vec<String>,
    errors: Vec<Value>,
}

impl Outcome {
    fn fail(&mut self, id: &str, e: &NgsiError) {
        self.errors.push(json!({"entityId": id, "error": e.to_problem()}));
    }

    fn into_response(self, op_creates: bool) -> Response {
        let json_res = |status: StatusCode, v: Value| {
            let mut res = (status, v.to_string()).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        };
        if !self.errors.is_empty() {
            let mut success = self.created;
            success.extend(self.updated);
            return json_res(StatusCode::MULTI_STATUS, json!({"success": success, "errors": self.errors}));
        }
        if op_creates && !self.created.is_empty() {
            return json_res(StatusCode::CREATED, json!(self.created));
        }
        StatusCode::NO_CONTENT.into_response()
    }
}

fn entities_of(body: &Value) -> NgsiResult<&Vec<Value>> {
    let items = body.as_array().ok_or_else(|| NgsiError::BadRequestData("A batch is a JSON array".into()))?;
    if items.len() > MAX_BATCH {
        return Err(Fail(NgsiError::BadRequestData(format!("A batch holds at most {MAX_BATCH} entities"))));
    }
    Ok(items)
}

/// What one entity of the batch becomes, or why not.
async fn prepare(
    n: &NgsiScoped,
    op: Op,
    item: &Value,
    ctx: &Context,
) -> Result<(Entity, Vec<Observation>, bool), NgsiError> {
    let id = match op {
        // Updates name the entity; its type is optional there.
        Op::Update { .. } | Op::Merge => {
            let raw = item.get("id").and_then(Value::as_str).unwrap_or_default();
            EntityId::parse(raw).map_err(|_| NgsiError::BadRequestData(format!("`{raw}` is not a valid entity id")))?
        }
        Op::Create | Op::Upsert { .. } => parse_head(item, ctx)?.0,
    };
    let fragment = parse_fragment(item, ctx)?;
    let obs = observations(&id, &fragment);
    let existing = n.entity(&id).await?;
    match (op, existing) {
        (Op::Create | Op::Upsert { .. }, None) => {
            if n.id_taken(&id).await? {
                return Err(NgsiError::AlreadyExists(format!("Entity {id} already exists")));
            }
            let e = representation::parse_entity(item, ctx, n.target_organisation()?)?;
            Ok((e, obs, true))
        }
        (Op::Create, Some(_)) => Err(NgsiError::AlreadyExists(format!("Entity {id} already exists"))),
        (Op::Update { .. } | Op::Merge, None) => Err(NgsiError::entity_not_found(id.as_str())),
        (_, Some(_)) => {
            let mut e = n.for_update(&id).await?;
            match op {
                Op::Upsert { replace: true } => {
                    if fragment.values().any(|c| matches!(c, Change::Delete)) {
                        return Err(NgsiError::BadRequestData("A replacement cannot hold null attributes".into()));
                    }
                    let (_, ty) = parse_head(item, ctx)?;
                    e.entity_type = ty;
                    e.attributes.clear();
                    e.location = None;
                    apply(&mut e, fragment);
                }
                Op::Update { no_overwrite: true } => {
                    let mut fragment = fragment;
                    fragment.retain(|name, _| {
                        if name == "location" {
                            e.location.is_none()
                        } else {
                            socle_domain::AttributeName::parse(name).is_ok_and(|k| !e.attributes.contains_key(&k))
                        }
                    });
                    apply(&mut e, fragment);
                }
                _ => apply(&mut e, fragment),
            }
            Ok((e, obs, false))
        }
    }
}

async fn run(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    raw: Option<String>,
    body: Body,
    op: fn(&str) -> Op,
) -> NgsiResult {
    let p = params(raw.as_deref())?;
    let op = op(p.get("options").map(String::as_str).unwrap_or_default());
    let n = state.ngsi(&caller, tenant(&headers)).await?;
    let (body, ctx) = read_body(&n, &headers, &bytes(body).await?).await?;
    let mut out = Outcome::default();
    let mut seen = HashSet::new();
    let mut accepted: Vec<(Entity, bool)> = Vec::new();
    let mut obs = Vec::new();
    for item in entities_of(&body)? {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !seen.insert(id.clone()) {
            out.fail(&id, &NgsiError::BadRequestData(format!("Entity {id} appears twice in the batch")));
            continue;
        }
        match prepare(&n, op, item, &ctx).await {
            Ok((e, o, created)) => {
                obs.extend(o);
                accepted.push((e, created));
            }
            Err(e) => out.fail(&id, &e),
        }
    }
    let entities: Vec<Entity> = accepted.iter().map(|(e, _)| e.clone()).collect();
    if !entities.is_empty() {
        if let Err(e) = n.save(&entities, &obs).await {
            // One transaction: none of them was written.
            for (entity, _) in &accepted {
                out.fail(entity.id.as_str(), &e);
            }
            accepted.clear();
        }
    }
    for (e, created) in accepted {
        if created {
            out.created.push(e.id.to_string());
        } else {
            out.updated.push(e.id.to_string());
        }
    }
    Ok(out.into_response(matches!(op, Op::Create | Op::Upsert { .. })))
}

pub async fn create(State(s): State<AppState>, c: Caller, h: HeaderMap, RawQuery(q): RawQuery, b: Body) -> NgsiResult {
    run(s, c, h, q, b, |_| Op::Create).await
}

pub async fn upsert(State(s): State<AppState>, c: Caller, h: HeaderMap, RawQuery(q): RawQuery, b: Body) -> NgsiResult {
    run(s, c, h, q, b, |o| Op::Upsert { replace: !o.split(',').any(|x| x == "update") }).await
}

pub async fn update(State(s): State<AppState>, c: Caller, h: HeaderMap, RawQuery(q): RawQuery, b: Body) -> NgsiResult {
    run(s, c, h, q, b, |o| Op::Update { no_overwrite: o.split(',').any(|x| x == "noOverwrite") }).await
}

pub async fn merge(State(s): State<AppState>, c: Caller, h: HeaderMap, RawQuery(q): RawQuery, b: Body) -> NgsiResult {
    run(s, c, h, q, b, |_| Op::Merge).await
}

/// `POST /entityOperations/delete`: a JSON array of entity ids.
pub async fn delete(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Body) -> NgsiResult {
    let n = state.ngsi(&caller, tenant(&headers)).await?;
    let (body, _) = read_body(&n, &headers, &bytes(body).await?).await?;
    let mut out = Outcome::default();
    for item in entities_of(&body)? {
        let id = item.as_str().unwrap_or_default();
        let result = match EntityId::parse(id) {
            Ok(eid) => n.delete(&eid).await,
            Err(_) => Err(NgsiError::BadRequestData(format!("`{id}` is not a valid entity id"))),
        };
        match result {
            Ok(()) => out.updated.push(id.to_owned()),
            Err(e) => out.fail(id, &e),
        }
    }
    Ok(out.into_response(false))
}
