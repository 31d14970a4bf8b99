//! Socle's HTTP server: health, metrics, the read API and its OpenAPI
//! document, and the web pages of sign-in and account. Access is decided in
//! [`policy`]; handlers reach storage only through the caller-scoped handle
//! it gives them. Every response carries the security headers of [`security`].

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub mod auth;
pub mod dto;
pub mod i18n;
mod mail;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod policy;
pub mod problem;
mod query;
pub mod ratelimit;
mod routes;
pub mod security;
pub mod session;
pub mod settings;
pub mod web;

pub use metrics::Metrics;
pub use policy::{Access, AppState, Caller};
pub use problem::Problem;
pub use settings::WebSettings;

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

/// One route: its path, what it requires, its handlers. The router is built
/// from this table only, and the isolation tests walk the same table, so a
/// route cannot exist without a declared access rule and a test.
pub struct RouteSpec {
    pub path: &'static str,
    pub methods: &'static [Method],
    pub access: Access,
    /// A server-rendered page (HTML), not part of the API and its OpenAPI document.
    pub web_page: bool,
    handler: MethodRouter<AppState>,
}

fn spec(path: &'static str, methods: &'static [Method], access: Access, handler: MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { path, methods, access, web_page: false, handler }
}

fn page(path: &'static str, methods: &'static [Method], access: Access, handler: MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { path, methods, access, web_page: true, handler }
}

pub fn route_table() -> Vec<RouteSpec> {
    use routes::*;
    const GET: &[Method] = &[Method::GET];
    const POST: &[Method] = &[Method::POST];
    const GET_POST: &[Method] = &[Method::GET, Method::POST];
    vec![
        spec("/healthz", GET, Access::Open, get(health::healthz)),
        spec("/readyz", GET, Access::Open, get(health::readyz)),
        spec("/metrics", GET, Access::Operator, get(health::metrics)),
        spec("/api/openapi.json", GET, Access::Open, get(openapi::serve)),
        spec("/api/v1/organisations", GET, Access::Open, get(organisations::list)),
        spec("/api/v1/organisations/{id}", GET, Access::Open, get(organisations::get_one)),
        spec("/api/v1/entities", GET, Access::Open, get(entities::list)),
        spec("/api/v1/entities/{id}", GET, Access::Open, get(entities::get_one)),
        spec("/api/v1/entities/{id}/series", GET, Access::Open, get(series::list)),
        spec("/api/v1/entities/{id}/series/{attribute}", GET, Access::Open, get(series::points)),
        spec("/api/v1/map", GET, Access::Open, get(map::features)),
        spec("/api/v1/live", GET, Access::Open, get(live::live)),
        spec("/api/v1/users", GET, Access::Admin, get(admin::users)),
        spec("/api/v1/audit", GET, Access::Admin, get(admin::audit)),
        // Ingestion (network servers, devices) and its management.
        spec("/ingest/chirpstack", POST, Access::Ingestion, post(ingest::chirpstack)),
        spec("/ingest/ttn", POST, Access::Ingestion, post(ingest::ttn)),
        spec("/ingest/generic", POST, Access::Ingestion, post(ingest::generic)),
        spec("/api/v1/devices", GET_POST, Access::Staff, get(devices::list).post(devices::create)),
        spec("/api/v1/devices/import", POST, Access::Staff, post(devices::import)),
        spec(
            "/api/v1/devices/{devEui}",
            &[Method::GET, Method::PUT, Method::DELETE],
            Access::Staff,
            get(devices::get_one).put(devices::put).delete(devices::delete),
        ),
        spec(
            "/api/v1/devices/{devEui}/downlinks",
            GET_POST,
            Access::Staff,
            get(devices::downlinks).post(devices::send_downlink),
        ),
        spec("/api/v1/dead-letters", GET, Access::Staff, get(devices::dead_letters)),
        spec("/api/v1/dead-letters/{id}", GET, Access::Staff, get(devices::dead_letter)),
        spec("/api/v1/dead-letters/{id}/replay", POST, Access::Staff, post(devices::replay)),
        // Open data: the Opendatasoft Explore API v2.1 (visibility decided in policy/opendata.rs).
        spec("/api/explore/v2.1/catalog/datasets", GET, Access::Open, get(explore::catalog_datasets)),
        spec("/api/explore/v2.1/catalog/datasets/{id}", GET, Access::Open, get(explore::catalog_dataset)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/records", GET, Access::Open, get(explore::records)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/records/{record_id}", GET, Access::Open, get(explore::record)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/facets", GET, Access::Open, get(explore::dataset_facets)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/exports/{format}", GET, Access::Open, get(explore::export)),
        spec("/api/explore/v2.1/catalog/facets", GET, Access::Open, get(explore::catalog_facets)),
        spec("/api/explore/v2.1/catalog/exports/{format}", GET, Access::Open, get(explore::catalog_export)),
        spec("/api/v1/datasets", POST, Access::Staff, post(datasets::create)),
        spec("/api/v1/datasets/{id}", &[Method::PUT], Access::Staff, put(datasets::update)),
        spec("/api/v1/datasets/{id}/data", &[Method::PUT], Access::Staff, put(datasets::upload)),
        spec("/api/v1/datasets/{id}/usage", GET, Access::Staff, get(datasets::usage)),
        // Web pages (French paths: the interface speaks French first).
        page("/", GET, Access::Open, get(web::home)),
        page("/connexion", GET_POST, Access::Open, get(web::login_page).post(web::login_submit)),
        page("/deconnexion", POST, Access::Open, post(web::logout)),
        page("/mot-de-passe-oublie", GET_POST, Access::Open, get(web::forgot_page).post(web::forgot_submit)),
        page("/mot-de-passe/{token}", GET_POST, Access::Open, get(web::reset_page).post(web::reset_submit)),
        page("/connexion/oidc", GET, Access::Open, get(web::oidc_start)),
        page("/connexion/oidc/retour", GET, Access::Open, get(web::oidc_callback)),
        page("/compte", GET, Access::Session, get(web::account_page)),
        page("/compte/jetons", POST, Access::Session, post(web::token_create)),
        page("/compte/jetons/{id}/revocation", POST, Access::Session, post(web::token_revoke)),
        page("/langue", GET, Access::Open, get(web::switch_lang)),
        // The hypervisor: what each caller may see, anonymous visitors included (public data).
        page("/carte", GET, Access::Open, get(web::hypervisor::map_page)),
        page("/entites/{id}", GET, Access::Open, get(web::hypervisor::entity_page)),
        page("/entites/{id}/csv", GET, Access::Open, get(web::hypervisor::entity_csv)),
        page("/tableaux", GET, Access::Open, get(web::hypervisor::dashboards_index)),
        page("/tableaux/{domaine}", GET, Access::Open, get(web::hypervisor::dashboard_page)),
        page("/elu", GET, Access::Open, get(web::hypervisor::elected_page)),
        page("/static/{file}", GET, Access::Open, get(web::asset)),
    ]
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in route_table() {
        let guard = middleware::from_fn_with_state((state.clone(), route.access), policy::enforce);
        router = router.route(route.path, route.handler.route_layer(guard));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(middleware::from_fn_with_state(state.clone(), limit_uri))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, state.limits.request_timeout))
        .layer(CatchPanicLayer::custom(|_| Problem::internal(Lang::Fr).into_response()))
        // Spans name the route pattern, never the URI: paths and queries can
        // hold secrets (reset links, OpenID codes) that logs must not keep.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map_or("(no route)", MatchedPath::as_str);
            tracing::info_span!("request", method = %req.method(), route)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), security::headers))
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
    axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
