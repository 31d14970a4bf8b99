//! Socle's HTTP server: health, metrics, the read API and its OpenAPI
//! document. Handlers reach storage only through [`AppState`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use socle_storage::DynStore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub mod dto;
pub mod i18n;
pub mod metrics;
pub mod openapi;
pub mod problem;
mod query;
mod routes;

pub use metrics::Metrics;
pub use problem::Problem;

use i18n::Lang;

/// Limits that protect the server from oversized requests.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_uri_bytes: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 1 << 20, max_uri_bytes: 8 * 1024, request_timeout: Duration::from_secs(30) }
    }
}

/// What every handler can reach. Cloned per request (all fields are shared).
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
}

impl AppState {
    pub fn new(store: DynStore) -> Self {
        Self { store, metrics: Arc::new(Metrics::default()), limits: Arc::new(Limits::default()) }
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/organisations", get(routes::organisations::list))
        .route("/organisations/{id}", get(routes::organisations::get_one))
        .route("/entities", get(routes::entities::list))
        .route("/entities/{id}", get(routes::entities::get_one))
        .route("/entities/{id}/series", get(routes::series::list))
        .route("/entities/{id}/series/{attribute}", get(routes::series::points));
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/api/openapi.json", get(openapi::serve))
        .nest("/api/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(middleware::from_fn_with_state(state.clone(), limit_uri))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, state.limits.request_timeout))
        .layer(CatchPanicLayer::custom(|_| Problem::internal(Lang::Fr).into_response()))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn limit_uri(State(state): State<AppState>, lang: Lang, req: Request, next: Next) -> Response {
    let len = req.uri().to_string().len();
    if len > state.limits.max_uri_bytes {
        let max = state.limits.max_uri_bytes;
        return Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            lang,
            ("Adresse trop longue", "URI too long"),
            lang.pick(
                format!("L'adresse de la requête dépasse {max} octets."),
                format!("The request URI exceeds {max} bytes."),
            ),
        )
        .into_response();
    }
    next.run(req).await
}

async fn not_found(lang: Lang, req: Request) -> Problem {
    let path = req.uri().path().to_owned();
    Problem::not_found(
        lang,
        "no-such-route",
        format!("Aucune ressource à l'adresse {path}. La documentation de l'API est à /api/openapi.json."),
        format!("Nothing at {path}. The API is documented at /api/openapi.json."),
    )
    .with_instance(&path)
}

async fn method_not_allowed(lang: Lang, req: Request) -> Problem {
    let method = req.method().to_string();
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        lang,
        ("Méthode non permise", "Method not allowed"),
        lang.pick(
            format!("La méthode {method} n'est pas permise ici."),
            format!("Method {method} is not allowed here."),
        ),
    )
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
