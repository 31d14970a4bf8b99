//! The OpenAPI document, generated from the handlers' annotations. A test
//! compares it with the committed `docs/openapi.json`, so any change of the
//! API contract shows up in review.

use axum::Json;
use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Socle",
        description = "API de lecture de Socle, plateforme de données territoriale. \
                       Read API of Socle, the territorial data platform. \
                       Errors are RFC 9457 problem details, in French unless Accept-Language asks for English.",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::organisations::list,
        routes::organisations::get_one,
        routes::entities::list,
        routes::entities::get_one,
        routes::series::list,
        routes::series::points,
        routes::map::features,
        routes::live::live,
        routes::admin::users,
        routes::admin::audit,
        routes::ingest::chirpstack,
        routes::ingest::ttn,
        routes::ingest::generic,
        routes::devices::list,
        routes::devices::create,
        routes::devices::get_one,
        routes::devices::put,
        routes::devices::delete,
        routes::devices::import,
        routes::devices::dead_letters,
        routes::devices::dead_letter,
        routes::devices::replay,
        routes::devices::downlinks,
        routes::devices::send_downlink,
        routes::alerts::list,
        routes::alerts::get_one,
        routes::alerts::acknowledge,
        routes::alerts::resolve,
        routes::alerts::assign,
        routes::alerts::comment,
        routes::alerts::rules,
        routes::alerts::create_rule,
        routes::alerts::rule,
        routes::alerts::put_rule,
        routes::alerts::delete_rule,
        routes::alerts::preview,
        routes::notifications::subscriptions,
        routes::notifications::create_subscription,
        routes::notifications::subscription,
        routes::notifications::put_subscription,
        routes::notifications::delete_subscription,
        routes::notifications::webhooks,
        routes::notifications::create_webhook,
        routes::notifications::webhook,
        routes::notifications::delete_webhook,
        routes::notifications::add_push,
        routes::notifications::delete_push,
        routes::notifications::vapid_public_key,
        routes::explore::catalog_datasets,
        routes::explore::catalog_dataset,
        routes::explore::records,
        routes::explore::record,
        routes::explore::dataset_facets,
        routes::explore::catalog_facets,
        routes::explore::export,
        routes::explore::catalog_export,
        routes::explore::attachment,
        routes::datasets::create,
        routes::datasets::update,
        routes::datasets::upload,
        routes::datasets::usage,
        routes::datasets::put_attachment,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health and metrics"),
        (name = "organisations", description = "Collectivités: syndicates, communes, partners"),
        (name = "entities", description = "Équipements: buildings, street lights, containers…"),
        (name = "series", description = "Historiques: time series and their rollups"),
        (name = "administration", description = "Users and audit trail, for administrators"),
        (name = "ingestion", description = "Measurements pushed by network servers (ChirpStack, The Things Stack) and devices, with an ingestion token"),
        (name = "alerts", description = "Alertes: alerts, their lifecycle and history, alert rules and their 30-day preview"),
        (name = "notifications", description = "Abonnements: the caller's subscriptions and Web Push browsers, organisations' webhooks"),
        (name = "open data", description = "Opendatasoft Explore API v2.1: catalogue, records, facets, exports"),
        (name = "datasets", description = "Jeux de données: publishing and uploads, for staff with a write scope"),
        (name = "devices", description = "Capteurs: devices, mappings, health, dead letters, for administrators and agents"),
    )
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

/// Declares the bearer-token scheme used by protected routes.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Personal API token (socle_pat_…), created with `socle token create`"))
                    .build(),
            ),
        );
    }
}

/// Paths of the document, for the test that compares them with the route table.
pub fn documented_paths() -> Vec<String> {
    document().paths.paths.keys().cloned().collect()
}
