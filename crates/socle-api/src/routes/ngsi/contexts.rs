//! `/ngsi-ld/v1/jsonldContexts` and the user contexts of requests.
//!
//! The core context is bundled. A user context named by URL (a `Link`
//! header, a URL inside `@context`) is read from the store; the first time,
//! it is fetched (bounded in time and size, no redirect to another host)
//! and kept as `cached`, so that later requests work without the network.
//! Contexts users add with `POST` are `hosted` and served from here.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use socle_ngsi::context::{is_core_url, CORE_CONTEXT, CORE_CONTEXT_URL};
use socle_ngsi::NgsiError;
use socle_storage::{ContextKind, StoredContext};

use super::entities::params;
use super::{bytes, tenant, Fail, NgsiResult};
use crate::policy::NgsiScoped;
use crate::{AppState, Caller};

/// The local id of the core context.
pub const CORE_ID: &str = "ngsi-ld-core-context-v1.9";
/// Largest context document fetched or hosted.
pub const MAX_CONTEXT_BYTES: usize = 1 << 20;
/// Remote documents one request may name, nested ones included.
const MAX_DOCUMENTS: usize = 16;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 3;

fn unavailable(url: &str, why: impl std::fmt::Display) -> Fail {
    Fail(NgsiError::LdContextNotAvailable(format!("The @context {url} is not available: {why}")))
}

/// The one client that fetches contexts; `None` if it could not be built
/// (no TLS backend): then nothing is fetched rather than fetched unsafely.
fn client() -> Option<&'static reqwest_rustls::Client> {
    static CLIENT: OnceLock<Option<reqwest_rustls::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // A redirect may stay on the host that was named, never leave it.
            let policy = reqwest_rustls::redirect::Policy::custom(|attempt| {
                let same_host = attempt.previous().first().map(|u| (u.host_str(), u.port_or_known_default()))
                    == Some((attempt.url().host_str(), attempt.url().port_or_known_default()));
                if attempt.previous().len() > MAX_REDIRECTS || !same_host {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            });
            reqwest_rustls::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                .redirect(policy)
                .build()
                .map_err(|e| tracing::error!(error = %e, "no HTTP client for JSON-LD contexts"))
                .ok()
        })
        .as_ref()
}

/// A context document from its URL: JSON with `@context`, at most 1 MiB.
async fn fetch(url: &str) -> NgsiResult<Value> {
    let parsed = reqwest_rustls::Url::parse(url).map_err(|e| unavailable(url, e))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(unavailable(url, "only http and https URLs are fetched"));
    }
    let http = client().ok_or_else(|| unavailable(url, "this server cannot make HTTP requests"))?;
    let mut res = http
        .get(parsed)
        .header(header::ACCEPT, "application/ld+json, application/json;q=0.9")
        .send()
        .await
        .map_err(|e| unavailable(url, e))?;
    if !res.status().is_success() {
        return Err(unavailable(url, format!("its server answered {}", res.status())));
    }
    if res.content_length().is_some_and(|n| n > MAX_CONTEXT_BYTES as u64) {
        return Err(unavailable(url, format!("larger than {MAX_CONTEXT_BYTES} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| unavailable(url, e))? {
        if body.len() + chunk.len() > MAX_CONTEXT_BYTES {
            return Err(unavailable(url, format!("larger than {MAX_CONTEXT_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let doc: Value = serde_json::from_slice(&body).map_err(|e| unavailable(url, format!("not JSON ({e})")))?;
    if doc.get("@context").is_none() {
        return Err(unavailable(url, "the document has no @context"));
    }
    Ok(doc)
}

/// URLs named by a context value (a URL, or an array holding URLs).
fn urls(v: &Value) -> Vec<String> {
    match v.get("@context").unwrap_or(v) {
        Value::String(u) if !is_core_url(u) => vec![u.clone()],
        Value::Array(items) => {
            items.iter().filter_map(Value::as_str).filter(|u| !is_core_url(u)).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

/// The document of one URL: held, else fetched and kept.
async fn document(n: &NgsiScoped, url: &str) -> NgsiResult<Value> {
    if let Some(c) = n.held_context(url).await? {
        return serde_json::from_str(&c.body).map_err(|e| unavailable(url, format!("the held copy is damaged ({e})")));
    }
    n.may_fetch_context(url)?;
    let doc = fetch(url).await?;
    let kept = n
        .keep_context(&StoredContext {
            id: uuid::Uuid::new_v4().simple().to_string(),
            url: url.to_owned(),
            kind: ContextKind::Cached,
            body: doc.to_string(),
            created_at: Utc::now(),
        })
        .await?;
    tracing::info!(url, id = %kept.id, "JSON-LD context fetched and kept");
    Ok(doc)
}

/// Every remote document a context value needs, by URL (nested ones too).
pub(super) async fn documents(n: &NgsiScoped, v: &Value) -> NgsiResult<HashMap<String, Value>> {
    let mut out = HashMap::new();
    let mut queue = urls(v);
    while let Some(url) = queue.pop() {
        if out.contains_key(&url) {
            continue;
        }
        if out.len() >= MAX_DOCUMENTS {
            return Err(Fail(NgsiError::BadRequestData(format!(
                "@context names more than {MAX_DOCUMENTS} remote documents"
            ))));
        }
        let doc = document(n, &url).await?;
        queue.extend(urls(&doc));
        out.insert(url, doc);
    }
    Ok(out)
}

fn json_response(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn kind_label(k: ContextKind) -> &'static str {
    match k {
        ContextKind::Hosted => "Hosted",
        ContextKind::Cached => "Cached",
        ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
    }
}

async fn scope(state: &AppState, caller: &Caller, headers: &HeaderMap) -> NgsiResult<NgsiScoped> {
    Ok(state.ngsi(caller, tenant(headers)).await?)
}

/// `GET /jsonldContexts`: URLs, or with `details=true` their descriptions;
/// `kind` keeps one kind (the bundled core context counts as cached).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let p = params(raw.as_deref())?;
    let kind = match p.get("kind") {
        None => None,
        Some(k) => Some(
            ContextKind::parse(k)
                .ok_or_else(|| NgsiError::BadRequestData(format!("kind `{k}`: hosted, cached or implicitlyCreated")))?,
        ),
    };
    let details = p.get("details").is_some_and(|d| d == "true");
    let n = scope(&state, &caller, &headers).await?;
    let mut items = Vec::new();
    if kind.is_none_or(|k| k == ContextKind::Cached) {
        items.push(if details {
            json!({"URL": CORE_CONTEXT_URL, "localId": CORE_ID, "kind": "Cached", "createdAt": "2025-01-01T00:00:00Z"})
        } else {
            json!(CORE_CONTEXT_URL)
        });
    }
    for c in n.contexts(kind).await? {
        items.push(if details {
            json!({"URL": c.url, "localId": c.id, "kind": kind_label(c.kind),
                "createdAt": c.created_at.to_rfc3339_opts(SecondsFormat::Millis, true)})
        } else {
            json!(c.url)
        });
    }
    Ok(json_response(StatusCode::OK, Value::Array(items).to_string(), "application/json"))
}

/// A held context by local id or by (URL-encoded) URL.
async fn held(n: &NgsiScoped, id: &str) -> NgsiResult<StoredContext> {
    if let Some(c) = n.context(id).await? {
        return Ok(c);
    }
    n.held_context(id).await?.ok_or_else(|| Fail(NgsiError::ResourceNotFound(format!("Context {id} was not found"))))
}

/// `GET /jsonldContexts/{id}`: by local id or by (URL-encoded) URL.
pub async fn serve(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> NgsiResult {
    if id == CORE_ID || is_core_url(&id) {
        return Ok(json_response(StatusCode::OK, CORE_CONTEXT.to_owned(), "application/ld+json"));
    }
    let n = scope(&state, &caller, &headers).await?;
    let c = held(&n, &id).await?;
    Ok(json_response(StatusCode::OK, c.body, "application/ld+json"))
}

/// `POST /jsonldContexts`: hosts a user context (`{"@context": …}`);
/// 201 with its URL in `Location`.
pub async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Body) -> NgsiResult {
    let n = scope(&state, &caller, &headers).await?;
    n.may_manage_contexts()?;
    let bytes = bytes(body).await?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Fail(NgsiError::InvalidRequest(format!("The body is not valid JSON: {e}"))))?;
    let inner = doc
        .get("@context")
        .filter(|c| c.is_object() || c.is_array() || c.is_string())
        .ok_or_else(|| Fail(NgsiError::BadRequestData("A context to host is a JSON object with @context".into())))?;
    // It must make a valid context now, not fail every request that names it later.
    let docs = documents(&n, inner).await?;
    socle_ngsi::Context::with_user(inner, &|u: &str| {
        if is_core_url(u) {
            serde_json::from_str(CORE_CONTEXT).ok()
        } else {
            docs.get(u).cloned()
        }
    })?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let base = state.web.settings.public_url.trim_end_matches('/');
    let url = format!("{base}/ngsi-ld/v1/jsonldContexts/{id}");
    let body = json!({"@context": inner}).to_string();
    n.keep_context(&StoredContext { id, url: url.clone(), kind: ContextKind::Hosted, body, created_at: Utc::now() })
        .await?;
    Ok(super::created(&url))
}

/// `DELETE /jsonldContexts/{id}`: drops a held context, or with
/// `reload=true` fetches a cached one again from its URL.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> NgsiResult {
    let p = params(raw.as_deref())?;
    let reload = match p.get("reload").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(Fail(NgsiError::BadRequestData(format!("reload `{other}`: true or false")))),
    };
    let n = scope(&state, &caller, &headers).await?;
    n.may_manage_contexts()?;
    if id == CORE_ID || is_core_url(&id) {
        return Err(Fail(NgsiError::BadRequestData("The core context is part of the server".into())));
    }
    let c = held(&n, &id).await?;
    if reload {
        if c.kind != ContextKind::Cached {
            return Err(Fail(NgsiError::BadRequestData(format!(
                "Only a cached context is reloaded; {id} is {}",
                c.kind.as_str()
            ))));
        }
        let doc = fetch(&c.url).await?;
        n.reload_context(&c.id, &doc.to_string()).await?;
    } else if !n.delete_context(&c.id).await? {
        return Err(Fail(NgsiError::ResourceNotFound(format!("Context {id} was not found"))));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
