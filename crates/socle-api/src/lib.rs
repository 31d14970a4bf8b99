//! Socle's HTTP server: health, metrics, the read API and its OpenAPI
//! document, and the web pages of sign-in and account. Access is decided in
//! [`policy`]; handlers reach storage only through the caller-scoped handle
//! it gives them. Every response carries the security headers of [`security`].

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put, MethodRouter};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
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
    /// An NGSI-LD route: its contract is ETSI GS CIM 009's own OpenAPI, not Socle's document.
    pub ngsi_ld: bool,
    handler: MethodRouter<AppState>,
}

fn spec(path: &'static str, methods: &'static [Method], access: Access, handler: MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { path, methods, access, web_page: false, ngsi_ld: false, handler }
}

/// NGSI-LD routes are open at the gate: `policy::ngsi` decides per tenant,
/// entity and operation (hidden answers like absent, in the NGSI-LD shape).
fn ngsi(path: &'static str, methods: &'static [Method], handler: MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { path, methods, access: Access::Open, web_page: false, ngsi_ld: true, handler }
}

fn page(path: &'static str, methods: &'static [Method], access: Access, handler: MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { path, methods, access, web_page: true, ngsi_ld: false, handler }
}

pub fn route_table() -> Vec<RouteSpec> {
    use routes::*;
    const GET: &[Method] = &[Method::GET];
    const POST: &[Method] = &[Method::POST];
    const GET_POST: &[Method] = &[Method::GET, Method::POST];
    const GET_PUT_DELETE: &[Method] = &[Method::GET, Method::PUT, Method::DELETE];
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
        // Alerts, rules and notification settings (decided in policy/alerts.rs).
        spec("/api/v1/alerts", GET, Access::Member, get(alerts::list)),
        spec("/api/v1/alerts/{id}", GET, Access::Member, get(alerts::get_one)),
        spec("/api/v1/alerts/{id}/acknowledge", POST, Access::Member, post(alerts::acknowledge)),
        spec("/api/v1/alerts/{id}/resolve", POST, Access::Member, post(alerts::resolve)),
        spec("/api/v1/alerts/{id}/assign", POST, Access::Member, post(alerts::assign)),
        spec("/api/v1/alerts/{id}/comments", POST, Access::Member, post(alerts::comment)),
        spec("/api/v1/rules", GET_POST, Access::Member, get(alerts::rules).post(alerts::create_rule)),
        spec("/api/v1/rules/preview", POST, Access::Member, post(alerts::preview)),
        spec(
            "/api/v1/rules/{id}",
            GET_PUT_DELETE,
            Access::Member,
            get(alerts::rule).put(alerts::put_rule).delete(alerts::delete_rule),
        ),
        spec(
            "/api/v1/me/subscriptions",
            GET_POST,
            Access::Member,
            get(notifications::subscriptions).post(notifications::create_subscription),
        ),
        spec(
            "/api/v1/me/subscriptions/{id}",
            GET_PUT_DELETE,
            Access::Member,
            get(notifications::subscription)
                .put(notifications::put_subscription)
                .delete(notifications::delete_subscription),
        ),
        spec(
            "/api/v1/webhooks",
            GET_POST,
            Access::Admin,
            get(notifications::webhooks).post(notifications::create_webhook),
        ),
        spec(
            "/api/v1/webhooks/{id}",
            &[Method::GET, Method::DELETE],
            Access::Admin,
            get(notifications::webhook).delete(notifications::delete_webhook),
        ),
        spec("/api/v1/push/subscriptions", POST, Access::Member, post(notifications::add_push)),
        spec(
            "/api/v1/push/subscriptions/{id}",
            &[Method::DELETE],
            Access::Member,
            axum::routing::delete(notifications::delete_push),
        ),
        spec("/api/v1/push/vapid-public-key", GET, Access::Open, get(notifications::vapid_public_key)),
        // NGSI-LD (ETSI GS CIM 009) over the same entities and history.
        ngsi("/ngsi-ld/v1/entities", GET_POST, get(ngsi::entities::query).post(ngsi::entities::create)),
        ngsi(
            "/ngsi-ld/v1/entities/{id}",
            &[Method::GET, Method::DELETE, Method::PATCH, Method::PUT],
            get(ngsi::entities::retrieve)
                .delete(ngsi::entities::delete)
                .patch(ngsi::entities::merge)
                .put(ngsi::entities::replace),
        ),
        ngsi(
            "/ngsi-ld/v1/entities/{id}/attrs",
            &[Method::POST, Method::PATCH],
            post(ngsi::entities::append).patch(ngsi::entities::update),
        ),
        ngsi(
            "/ngsi-ld/v1/entities/{id}/attrs/{attr}",
            &[Method::PATCH, Method::DELETE],
            patch(ngsi::entities::update_attribute).delete(ngsi::entities::delete_attribute),
        ),
        ngsi("/ngsi-ld/v1/entityOperations/query", POST, post(ngsi::entities::query_post)),
        ngsi("/ngsi-ld/v1/entityOperations/create", POST, post(ngsi::batch::create)),
        ngsi("/ngsi-ld/v1/entityOperations/upsert", POST, post(ngsi::batch::upsert)),
        ngsi("/ngsi-ld/v1/entityOperations/update", POST, post(ngsi::batch::update)),
        ngsi("/ngsi-ld/v1/entityOperations/merge", POST, post(ngsi::batch::merge)),
        ngsi("/ngsi-ld/v1/entityOperations/delete", POST, post(ngsi::batch::delete)),
        ngsi("/ngsi-ld/v1/jsonldContexts", GET_POST, get(ngsi::contexts::list).post(ngsi::contexts::create)),
        ngsi(
            "/ngsi-ld/v1/jsonldContexts/{id}",
            &[Method::GET, Method::DELETE],
            get(ngsi::contexts::serve).delete(ngsi::contexts::delete),
        ),
        ngsi("/ngsi-ld/v1/types", GET, get(ngsi::discovery::types)),
        ngsi("/ngsi-ld/v1/types/{type}", GET, get(ngsi::discovery::type_info)),
        ngsi("/ngsi-ld/v1/attributes", GET, get(ngsi::discovery::attributes)),
        ngsi("/ngsi-ld/v1/attributes/{attr}", GET, get(ngsi::discovery::attribute_info)),
        ngsi("/ngsi-ld/v1/subscriptions", GET_POST, get(ngsi::subscriptions::list).post(ngsi::subscriptions::create)),
        ngsi(
            "/ngsi-ld/v1/subscriptions/{id}",
            &[Method::GET, Method::PATCH, Method::DELETE],
            get(ngsi::subscriptions::retrieve).patch(ngsi::subscriptions::update).delete(ngsi::subscriptions::delete),
        ),
        ngsi("/ngsi-ld/v1/temporal/entities", GET, get(ngsi::temporal::query)),
        ngsi("/ngsi-ld/v1/temporal/entities/{id}", GET, get(ngsi::temporal::retrieve)),
        // Open data: the Opendatasoft Explore API v2.1 (visibility decided in policy/opendata.rs).
        spec("/api/explore/v2.1/catalog/datasets", GET, Access::Open, get(explore::catalog_datasets)),
        spec("/api/explore/v2.1/catalog/datasets/{id}", GET, Access::Open, get(explore::catalog_dataset)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/records", GET, Access::Open, get(explore::records)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/records/{record_id}", GET, Access::Open, get(explore::record)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/facets", GET, Access::Open, get(explore::dataset_facets)),
        spec("/api/explore/v2.1/catalog/datasets/{id}/exports/{format}", GET, Access::Open, get(explore::export)),
        spec(
            "/api/explore/v2.1/catalog/datasets/{id}/attachments/{attachment_id}",
            GET,
            Access::Open,
            get(explore::attachment),
        ),
        spec("/api/explore/v2.1/catalog/facets", GET, Access::Open, get(explore::catalog_facets)),
        spec("/api/explore/v2.1/catalog/exports/{format}", GET, Access::Open, get(explore::catalog_export)),
        spec("/api/v1/datasets", POST, Access::Staff, post(datasets::create)),
        spec("/api/v1/datasets/{id}", &[Method::PUT], Access::Staff, put(datasets::update)),
        spec("/api/v1/datasets/{id}/data", &[Method::PUT], Access::Staff, put(datasets::upload)),
        spec("/api/v1/datasets/{id}/usage", GET, Access::Staff, get(datasets::usage)),
        spec("/api/v1/datasets/{id}/attachments/{name}", &[Method::PUT], Access::Staff, put(datasets::put_attachment)),
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
        // The open-data portal.
        page("/donnees", GET, Access::Open, get(web::opendata::catalogue_page)),
        page("/donnees/{id}", GET, Access::Open, get(web::opendata::dataset_page)),
        page("/donnees/{id}/widget/{kind}", GET, Access::Open, get(web::opendata::widget)),
        // Alerts and rules: members of the organisations concerned (policy/alerts.rs).
        page("/alertes", GET, Access::Member, get(web::alerts::alerts_page)),
        page("/alertes/{id}", GET, Access::Member, get(web::alerts::alert_page)),
        page("/alertes/{id}/{action}", POST, Access::Member, post(web::alerts::alert_act)),
        page("/regles", GET, Access::Member, get(web::alerts::rules_page)),
        page("/regles/{id}", GET_POST, Access::Member, get(web::alerts::rule_page).post(web::alerts::rule_submit)),
        // The installable app: manifest, service worker (Web Push), icon.
        page("/manifest.webmanifest", GET, Access::Open, get(web::alerts::manifest)),
        page("/sw.js", GET, Access::Open, get(web::alerts::service_worker)),
        page("/icone.svg", GET, Access::Open, get(web::alerts::icon)),
        page("/static/{file}", GET, Access::Open, get(web::asset)),
    ]
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in route_table() {
        let guard = middleware::from_fn_with_state((state.clone(), route.access), policy::enforce);
        let mut handler = route.handler.route_layer(guard);
        if route.ngsi_ld {
            // Outside the guard: its refusals are NGSI-LD errors too.
            handler = handler.route_layer(middleware::from_fn(routes::ngsi::localize));
        }
        router = router.route(route.path, handler);
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
        // gzip for whoever asks (browsers do): the map's GeoJSON and the
        // script shrink about tenfold, which is what a phone on 4G feels.
        // Live streams (SSE) and images are left alone by the default predicate.
        .layer(CompressionLayer::new().gzip(true))
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
