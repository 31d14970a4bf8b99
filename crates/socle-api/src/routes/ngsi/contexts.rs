//! `/ngsi-ld/v1/jsonldContexts`: the contexts this server holds. For now the
//! bundled core context only, served from the binary so that clients on a
//! network without Internet access can resolve it too.

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use socle_ngsi::context::{is_core_url, CORE_CONTEXT, CORE_CONTEXT_URL};
use socle_ngsi::NgsiError;

use super::entities::params;
use super::{Fail, NgsiResult};

/// The local id of the core context.
pub const CORE_ID: &str = "ngsi-ld-core-context-v1.9";

fn json_response(body: String, content_type: &'static str) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// `GET /jsonldContexts`: URLs, or with `details=true` their descriptions.
pub async fn list(RawQuery(raw): RawQuery) -> NgsiResult {
    let p = params(raw.as_deref())?;
    let body = if p.get("details").is_some_and(|d| d == "true") {
        json!([{"URL": CORE_CONTEXT_URL, "localId": CORE_ID, "kind": "Cached", "createdAt": "2025-01-01T00:00:00Z"}])
    } else {
        json!([CORE_CONTEXT_URL])
    };
    Ok(json_response(body.to_string(), "application/json"))
}

/// `GET /jsonldContexts/{id}`: by local id or by (URL-encoded) URL.
pub async fn serve(Path(id): Path<String>) -> NgsiResult {
    if id == CORE_ID || is_core_url(&id) {
        return Ok(json_response(CORE_CONTEXT.to_owned(), "application/ld+json"));
    }
    Err(Fail(NgsiError::ResourceNotFound(format!("Context {id} was not found"))))
}

/// `POST /jsonldContexts` and `DELETE /jsonldContexts/{id}`: hosting user
/// contexts is not offered yet; the core context cannot be deleted.
pub async fn not_supported() -> NgsiResult {
    Err(Fail(NgsiError::OperationNotSupported(
        "Hosting user contexts is not supported yet: send them inline with application/ld+json".into(),
    )))
}
