//! `/ngsi-ld/v1/subscriptions` (ETSI GS CIM 009 5.8): create, list,
//! retrieve, update, delete. The body is checked by `socle-ngsi`; who may
//! do what is decided in `policy::ngsi_subscriptions`; the notifications
//! themselves are written and sent by `socle-ngsi-notify`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;
use socle_ngsi::context::CORE_CONTEXT_URL;
use socle_ngsi::subscription::Subscription;

use super::entities::{paging, params};
use super::{accept, bytes, no_content, read_body, reply, tenant, NgsiResult, Out};
use crate::policy::{NgsiScoped, SubscriptionView};
use crate::{AppState, Caller};

async fn scope(state: &AppState, caller: &Caller, headers: &HeaderMap) -> NgsiResult<NgsiScoped> {
    Ok(state.ngsi(caller, tenant(headers)).await?)
}

/// The `@context` a request came with: inline (`application/ld+json`), the
/// `Link` header's URL, or `null` for the core context.
fn request_context(body: &Value, ctx: &socle_ngsi::Context) -> Value {
    if let Some(inline) = body.get("@context") {
        return inline.clone();
    }
    ctx.urls.first().map_or(Value::Null, |u| Value::String(u.clone()))
}

fn shown(v: &SubscriptionView, out: Out) -> Value {
    let mut json = v.subscription.to_json(&v.status, Utc::now());
    if out == Out::JsonLd {
        if let Some(o) = json.as_object_mut() {
            let ctx = match &v.subscription.context {
                Value::Null => Value::from(CORE_CONTEXT_URL),
                c => c.clone(),
            };
            o.insert("@context".into(), ctx);
        }
    }
    json
}

/// A subscription shows itself in its own terms: its own context goes in the
/// body (`application/ld+json`); with `application/json` the `Link` names the core.
fn answer(v: Value, out: Out) -> Response {
    match out {
        Out::Json => reply(StatusCode::OK, v, &socle_ngsi::Context::core(), Out::Json),
        Out::JsonLd => {
            let mut res = (StatusCode::OK, serde_json::to_vec(&v).unwrap_or_default()).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
            res
        }
    }
}

/// `POST /subscriptions`
pub async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Body) -> NgsiResult {
    let n = scope(&state, &caller, &headers).await?;
    let (body, ctx) = read_body(&n, &headers, &bytes(body).await?).await?;
    let new_id = format!("urn:ngsi-ld:Subscription:{}", uuid::Uuid::new_v4());
    let now = Utc::now();
    let sub = Subscription::from_json(&body, request_context(&body, &ctx), &new_id, now)?;
    n.create_subscription(&sub, now).await?;
    Ok(super::created(&format!("/ngsi-ld/v1/subscriptions/{}", sub.id)))
}

/// `GET /subscriptions`: `limit`, `offset`, `count`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let out = accept(&headers)?;
    let p = params(raw.as_deref())?;
    let (limit, offset, count) = paging(&p)?;
    let n = scope(&state, &caller, &headers).await?;
    let all = n.subscriptions().await?;
    let total = all.len() as u64;
    let page: Vec<Value> = all
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|v| shown(v, out))
        .collect();
    let mut res = answer(Value::Array(page), out);
    if count {
        res.headers_mut().insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    Ok(res)
}

/// `GET /subscriptions/{id}`
pub async fn retrieve(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> NgsiResult {
    let out = accept(&headers)?;
    let n = scope(&state, &caller, &headers).await?;
    let v = n.subscription(&id).await?;
    Ok(answer(shown(&v, out), out))
}

/// `PATCH /subscriptions/{id}`: the given members replace the stored ones.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> NgsiResult {
    let n = scope(&state, &caller, &headers).await?;
    let (fragment, ctx) = read_body(&n, &headers, &bytes(body).await?).await?;
    let current = n.subscription_for_update(&id).await?;
    let mut fragment = fragment;
    // A Link header on a PATCH changes the subscription's context like an inline one.
    if fragment.get("@context").is_none() && !ctx.urls.is_empty() {
        if let Some(o) = fragment.as_object_mut() {
            o.insert("@context".into(), request_context(&Value::Null, &ctx));
        }
    }
    let now = Utc::now();
    let next = current.subscription.patched(&fragment, now)?;
    n.update_subscription(&next, now).await?;
    Ok(no_content())
}

/// `DELETE /subscriptions/{id}`
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> NgsiResult {
    let n = scope(&state, &caller, &headers).await?;
    n.delete_subscription(&id).await?;
    Ok(no_content())
}
