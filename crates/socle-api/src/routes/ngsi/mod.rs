//! The NGSI-LD API (ETSI GS CIM 009) under `/ngsi-ld/v1/`, over Socle's own
//! entities and history. What is computed (contexts, representations, `q`,
//! `geoQ`) lives in the `socle-ngsi` crate; access is decided in
//! `policy::ngsi`; this module does HTTP: content negotiation, bodies,
//! headers, and the NGSI-LD error shape.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use socle_domain::EntityId;
use socle_ngsi::context::{is_core_url, CORE_CONTEXT, CORE_CONTEXT_URL};

use crate::policy::NgsiScoped;
use socle_ngsi::{Context, NgsiError};

pub mod batch;
pub mod contexts;
pub mod discovery;
pub mod entities;
pub mod subscriptions;
pub mod temporal;

/// Longest NGSI-LD body accepted (batch operations included).
pub const MAX_BODY_BYTES: usize = 1 << 20;
pub const TENANT_HEADER: &str = "ngsild-tenant";
const LINK_REL: &str = "http://www.w3.org/ns/json-ld#context";

/// An NGSI-LD error as a response.
pub struct Fail(pub NgsiError);

impl From<NgsiError> for Fail {
    fn from(e: NgsiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_vec(&self.0.to_problem()).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}

pub type NgsiResult<T = Response> = Result<T, Fail>;

/// A refusal of the shared gate (a token that is invalid, expired or
/// revoked) in the NGSI-LD error shape rather than Socle's RFC 9457 one:
/// NGSI-LD clients parse one shape.
pub(crate) fn gate_refusal(status: StatusCode) -> Response {
    let e = match status.as_u16() {
        401 => NgsiError::Unauthorized("A valid API token is needed (Authorization: Bearer …)".into()),
        403 => NgsiError::Forbidden("Your rights do not allow this operation".into()),
        _ => NgsiError::InternalError("The request could not be authenticated; the incident is logged.".into()),
    };
    Fail(e).into_response()
}

/// Whether the client prefers French (`Accept-Language`, by quality).
fn prefers_french(headers: &HeaderMap) -> bool {
    let Some(al) = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else { return false };
    let mut best: Option<(f32, bool)> = None;
    for part in al.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
        let french = tag == "fr" || tag.starts_with("fr-");
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, french));
        }
    }
    best.is_some_and(|(q, french)| french && q > 0.0)
}

/// Largest error body rewritten in French.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// NGSI-LD errors with a French `detail` for clients asking for French;
/// `title` and `type` stay the standard's (programs branch on them).
pub(crate) async fn localize(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let french = prefers_french(req.headers());
    let res = next.run(req).await;
    if !french || !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return Fail(NgsiError::InternalError("The error could not be read".into())).into_response();
    };
    let mut v: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    let name =
        v.get("type").and_then(Value::as_str).and_then(|t| t.strip_prefix("https://uri.etsi.org/ngsi-ld/errors/"));
    let Some(fr) = name.and_then(socle_ngsi::error::french_summary) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let detail = v.get("detail").and_then(Value::as_str).unwrap_or_default().to_owned();
    v["detail"] = Value::from(if detail.is_empty() { fr.to_owned() } else { format!("{fr}. ({detail})") });
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(lang) = HeaderValue::from_str("fr") {
        parts.headers.insert(header::CONTENT_LANGUAGE, lang);
    }
    Response::from_parts(parts, Body::from(serde_json::to_vec(&v).unwrap_or_default()))
}

pub fn tenant(headers: &HeaderMap) -> Option<&str> {
    headers.get(TENANT_HEADER).and_then(|v| v.to_str().ok())
}

pub fn parse_id(id: &str) -> NgsiResult<EntityId> {
    EntityId::parse(id).map_err(|_| Fail(NgsiError::BadRequestData(format!("`{id}` is not a valid entity id"))))
}

/// How the client wants its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Json,
    JsonLd,
}

pub fn accept(headers: &HeaderMap) -> NgsiResult<Out> {
    let Some(a) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(Out::Json) };
    let pos = |t: &str| a.find(t);
    match (pos("application/ld+json"), pos("application/json"), pos("*/*").or(pos("application/*"))) {
        (Some(ld), Some(j), _) if j < ld => Ok(Out::Json),
        (Some(_), _, _) => Ok(Out::JsonLd),
        (None, Some(_), _) | (None, None, Some(_)) => Ok(Out::Json),
        _ if a.trim().is_empty() => Ok(Out::Json),
        _ => Err(Fail(NgsiError::NotAcceptable(format!(
            "Accept `{a}`: this API answers application/json or application/ld+json"
        )))),
    }
}

/// The context URL of a `Link` header, if any.
fn link_context(headers: &HeaderMap) -> NgsiResult<Option<String>> {
    let Some(link) = headers.get(header::LINK) else { return Ok(None) };
    let link = link.to_str().map_err(|_| Fail(NgsiError::BadRequestData("Link header is not text".into())))?;
    for part in link.split(',') {
        if !part.contains(LINK_REL) {
            continue;
        }
        let url = part.trim().strip_prefix('<').and_then(|p| p.split_once('>')).map(|(u, _)| u.trim().to_owned());
        return url.map(Some).ok_or_else(|| Fail(NgsiError::BadRequestData("Link header is malformed".into())));
    }
    Ok(None)
}

/// Where a request's context comes from, before remote documents are read.
enum Source {
    Core,
    /// A `Link` header's URL.
    Link(String),
    /// `@context` of an `application/ld+json` body.
    Inline(Value),
}

fn link_source(headers: &HeaderMap) -> NgsiResult<Source> {
    Ok(match link_context(headers)? {
        None => Source::Core,
        Some(url) if is_core_url(&url) => Source::Core,
        Some(url) => Source::Link(url),
    })
}

/// Builds the context, reading the remote documents it names from the
/// store, or fetching them once (see `contexts::document`).
async fn resolve(n: &NgsiScoped, source: Source) -> NgsiResult<Context> {
    let doc = match source {
        Source::Core => return Ok(Context::core()),
        Source::Link(url) => Value::String(url),
        Source::Inline(v) => v,
    };
    let docs = contexts::documents(n, &doc).await?;
    let lookup = |url: &str| -> Option<Value> {
        if is_core_url(url) {
            serde_json::from_str(CORE_CONTEXT).ok()
        } else {
            docs.get(url).cloned()
        }
    };
    Ok(Context::with_user(&doc, &lookup)?)
}

/// The context of a request without a body (GET, DELETE).
pub async fn read_context(n: &NgsiScoped, headers: &HeaderMap) -> NgsiResult<Context> {
    resolve(n, link_source(headers)?).await
}

/// The JSON body and its context: `application/json` with an optional
/// `Link` header, or `application/ld+json` with `@context` in the body.
pub async fn read_body(n: &NgsiScoped, headers: &HeaderMap, bytes: &Bytes) -> NgsiResult<(Value, Context)> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let ld = ct.starts_with("application/ld+json");
    if !ld && !ct.starts_with("application/json") && !ct.starts_with("application/merge-patch+json") {
        return Err(Fail(NgsiError::UnsupportedMediaType(format!(
            "Content-Type `{ct}`: send application/json or application/ld+json"
        ))));
    }
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Fail(NgsiError::PayloadTooLarge(format!("Bodies are limited to {MAX_BODY_BYTES} bytes"))));
    }
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| Fail(NgsiError::InvalidRequest(format!("The body is not valid JSON: {e}"))))?;
    let inline = match &body {
        Value::Object(o) => o.get("@context").cloned(),
        Value::Array(items) => items.first().and_then(|i| i.get("@context")).cloned(),
        _ => None,
    };
    let source =
        if ld {
            if link_context(headers)?.is_some() {
                return Err(Fail(NgsiError::BadRequestData(
                    "application/ld+json carries @context, not a Link header".into(),
                )));
            }
            Source::Inline(inline.ok_or_else(|| {
                Fail(NgsiError::BadRequestData("application/ld+json needs @context in the body".into()))
            })?)
        } else {
            if inline.is_some() {
                return Err(Fail(NgsiError::BadRequestData(
                    "application/json carries its context in a Link header, not @context".into(),
                )));
            }
            link_source(headers)?
        };
    let ctx = resolve(n, source).await?;
    Ok((body, ctx))
}

/// Bytes of a body, refused past the limit in the NGSI-LD shape.
pub async fn bytes(body: Body) -> NgsiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Fail(NgsiError::PayloadTooLarge(format!("Bodies are limited to {MAX_BODY_BYTES} bytes"))))
}

/// A JSON answer with its context: a `Link` header, or `@context` inside.
pub fn reply(status: StatusCode, mut v: Value, ctx: &Context, out: Out) -> Response {
    let ctx_value = socle_ngsi::representation::context_value(ctx);
    if out == Out::JsonLd {
        match &mut v {
            Value::Object(o) => {
                o.insert("@context".into(), ctx_value);
            }
            Value::Array(items) => {
                for i in items.iter_mut().filter_map(Value::as_object_mut) {
                    i.insert("@context".into(), ctx_value.clone());
                }
            }
            _ => {}
        }
    }
    let mut res = (status, serde_json::to_vec(&v).unwrap_or_default()).into_response();
    let h = res.headers_mut();
    match out {
        Out::JsonLd => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
        }
        Out::Json => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let url = ctx.urls.first().map_or(CORE_CONTEXT_URL, String::as_str);
            let link = format!("<{url}>; rel=\"{LINK_REL}\"; type=\"application/ld+json\"");
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.insert(header::LINK, v);
            }
        }
    }
    res
}

/// `201 Created` with the new resource's `Location`.
pub fn created(location: &str) -> Response {
    let mut res = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
