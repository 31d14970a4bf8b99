//! Ingestion endpoints for network servers and devices: ChirpStack v4 HTTP
//! integration, The Things Stack v3 webhook, Socle's generic JSON push.
//!
//! Authenticated by an ingestion token (`Authorization: Bearer …` or
//! `X-Socle-Token: …`). A `200` is sent only once the body's observations are
//! committed; a refused body is kept as a dead letter named in the problem's
//! `instance`; under overload the answer is `429`/`503` with `Retry-After`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use socle_ingestion::{Accepted, Refusal, Rejection, Source};
use utoipa::{IntoParams, ToSchema};

use crate::i18n::Lang;
use crate::problem::Problem;
use crate::query::ApiQuery;
use crate::{AppState, Caller};

/// What an accepted body did (sent once it is committed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestOutcome {
    /// `stored`, `duplicate` (nothing new: a retry or a copy), `recorded`
    /// (status or join: device health) or `ignored` (no measurement in it).
    pub outcome: String,
    /// The body brought nothing new.
    pub duplicate: bool,
    /// Frames (generic messages) stored now, and already stored before.
    pub frames: u32,
    pub duplicate_frames: u32,
    /// Observations stored now, and those their series already had.
    pub observations: u64,
    pub duplicate_observations: u64,
    /// Mapped fields the decoded payload did not have (a sensor without reading).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_fields: Vec<String>,
}

impl From<Accepted> for IngestOutcome {
    fn from(a: Accepted) -> Self {
        let outcome = serde_json::to_value(a.outcome).ok().and_then(|v| v.as_str().map(str::to_owned));
        Self {
            outcome: outcome.unwrap_or_default(),
            duplicate: a.duplicate,
            frames: a.frames,
            duplicate_frames: a.duplicate_frames,
            observations: a.observations,
            duplicate_observations: a.duplicate_observations,
            missing_fields: a.missing_fields,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// ChirpStack event type: `up`, `status`, `join`, `ack`, `txack`, `log` or `location`.
    pub event: Option<String>,
}

/// A ChirpStack v4 HTTP integration event (JSON encoding).
#[utoipa::path(post, path = "/ingest/chirpstack", tag = "ingestion", params(EventParams),
    request_body(content = Object, content_type = "application/json",
        description = "ChirpStack v4 integration event, as the HTTP integration posts it"),
    security(("bearer" = [])),
    responses((status = 200, body = IngestOutcome, description = "Committed (or recognised as already stored)"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "Unknown device"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn chirpstack(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<EventParams>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let source = Source::ChirpStack { event: p.event.unwrap_or_default() };
    ingest(&state, &caller, lang, source, &headers, body).await
}

/// A The Things Stack v3 webhook message (uplink messages; others are accepted and ignored).
#[utoipa::path(post, path = "/ingest/ttn", tag = "ingestion",
    request_body(content = Object, content_type = "application/json",
        description = "The Things Stack v3 `ApplicationUp` message with an `uplink_message`"),
    security(("bearer" = [])),
    responses((status = 200, body = IngestOutcome, description = "Committed (or recognised as already stored)"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "Unknown device"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn ttn(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(&state, &caller, lang, Source::Ttn, &headers, body).await
}

/// Socle's generic JSON push: `{"device", "observedAt"?, "values": {…}, "id"?}` or an array of them (at most 1,000), stored all or nothing.
#[utoipa::path(post, path = "/ingest/generic", tag = "ingestion",
    request_body(content = Object, content_type = "application/json",
        description = "One message or an array of messages: device name or DevEUI, optional observedAt (RFC 3339), values, optional id"),
    security(("bearer" = [])),
    responses((status = 200, body = IngestOutcome, description = "Committed (or recognised as already stored)"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "Unknown device"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn generic(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(&state, &caller, lang, Source::Generic, &headers, body).await
}

/// A body read up to a limit: the whole of it, or its beginning and the size seen.
pub(crate) enum Read {
    Whole(Vec<u8>),
    TooLarge {
        head: Vec<u8>,
        size: u64,
    },
    /// The client stopped sending or the connection failed.
    Broken,
}

/// Reads at most `limit` bytes; stops reading (and keeps the first
/// `keep` bytes) as soon as the body is known to be larger, announced
/// (`Content-Length`) or sent.
pub(crate) async fn read_limited(headers: &HeaderMap, body: Body, limit: usize, keep: usize) -> Read {
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = announced.filter(|s| *s > limit as u64) {
        return Read::TooLarge { head: Vec::new(), size };
    }
    let mut body = body;
    let mut buf: Vec<u8> = Vec::with_capacity(announced.map_or(4096, |s| s as usize));
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Read::Broken };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                let size = (buf.len() + data.len()) as u64;
                buf.extend_from_slice(&data[..keep.saturating_sub(buf.len()).min(data.len())]);
                buf.truncate(keep);
                return Read::TooLarge { head: buf, size };
            }
            buf.extend_from_slice(&data);
        }
    }
    Read::Whole(buf)
}

async fn ingest(
    state: &AppState,
    caller: &Caller,
    lang: Lang,
    source: Source,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let scoped = state.scoped(caller);
    let limit = state.pipeline().config().max_body_bytes;
    let result = match read_limited(headers, body, limit, 4096).await {
        Read::Whole(bytes) => scoped.ingest(source, bytes).await,
        Read::TooLarge { head, size } => scoped.refuse_oversized(source, head, size).await.map(Err),
        Read::Broken => {
            return Problem::bad_request(
                lang,
                "unreadable-body",
                "Le corps de la requête n'a pas pu être lu en entier.".into(),
                "The request body could not be read whole.".into(),
            )
            .into_response()
        }
    };
    match result {
        None => crate::problem::Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            lang,
            ("Accès refusé", "Forbidden"),
            lang.pick(
                "Seul un jeton d'ingestion peut envoyer des mesures.",
                "Only an ingestion token can push measurements.",
            ),
        )
        .into_response(),
        // Counted by the pipeline's observer (`metrics::IngestMetrics`), as MQTT bodies are.
        Some(Ok(accepted)) => (StatusCode::OK, Json(IngestOutcome::from(accepted))).into_response(),
        Some(Err(rejection)) => rejection_response(lang, rejection),
    }
}

/// The problem details of a rejection: the dead letter is its `instance`.
pub(crate) fn rejection_response(lang: Lang, rejection: Rejection) -> Response {
    match rejection {
        Rejection::Overloaded { retry_after } => {
            let secs = retry_after.as_secs().max(1);
            with_retry_after(
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "overloaded",
                    lang,
                    ("Trop d'envois simultanés", "Too many concurrent pushes"),
                    lang.pick(
                        format!("Socle reçoit plus de mesures qu'il n'en peut traiter ; rien n'a été enregistré. Renvoyez dans {secs} s."),
                        format!("Socle is receiving more than it can process; nothing was stored. Send again in {secs} s."),
                    ),
                ),
                secs,
            )
        }
        Rejection::Unavailable { retry_after, cause } => {
            tracing::error!(error = %cause, "ingestion could not reach storage");
            let secs = retry_after.as_secs().max(1);
            with_retry_after(
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage-unavailable",
                    lang,
                    ("Service indisponible", "Service unavailable"),
                    lang.pick(
                        format!("Le stockage ne répond pas ; rien n'a été enregistré. Renvoyez dans {secs} s."),
                        format!("Storage does not answer; nothing was stored. Send again in {secs} s."),
                    ),
                ),
                secs,
            )
        }
        Rejection::Refused { kind, code, message, dead_letter, .. } => {
            let (status, title) = match kind {
                Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, ("Corps trop volumineux", "Body too large")),
                Refusal::Malformed => (StatusCode::BAD_REQUEST, ("Corps illisible", "Unreadable body")),
                Refusal::UnknownDevice => (StatusCode::NOT_FOUND, ("Capteur inconnu", "Unknown device")),
                Refusal::Undecodable => {
                    (StatusCode::UNPROCESSABLE_ENTITY, ("Trame non décodée", "Payload not decoded"))
                }
                Refusal::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, ("Valeurs refusées", "Values refused")),
            };
            let kept = dead_letter.map(|id| (id, format!("/api/v1/dead-letters/{id}")));
            let detail = match &kept {
                Some((id, _)) => lang.pick(
                    format!("{message} — conservé comme lettre morte n° {id} : corrigez puis rejouez-la."),
                    format!("{message} — kept as dead letter {id}: fix the cause, then replay it."),
                ),
                None => message,
            };
            let mut problem = Problem::new(status, code, lang, title, detail);
            if let Some((_, path)) = kept {
                problem = problem.with_instance(&path);
            }
            problem.into_response()
        }
    }
}

fn with_retry_after(problem: Problem, secs: u64) -> Response {
    let mut res = problem.into_response();
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}
