use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::dto::Health;
use crate::i18n::Lang;
use crate::problem::Problem;
use crate::AppState;

/// Liveness: the process answers. Never touches storage.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok".into(), backend: state.backend().into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Readiness: storage answers a round trip.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>, lang: Lang) -> Response {
    match state.ping().await {
        Ok(()) => healthz(State(state)).await.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Problem::unavailable(lang).into_response()
        }
    }
}

/// Prometheus text exposition; for local scrapers and administrators.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Sizes are read at scrape time: cheap queries, no background task.
    match state.stats().await {
        Ok(stats) => {
            state.metrics.storage_bytes.set(stats.bytes);
            state.metrics.entities.set(stats.entities);
            state.metrics.series.set(stats.series);
        }
        Err(e) => tracing::warn!(error = %e, "could not read storage statistics"),
    }
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &state.metrics.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}
