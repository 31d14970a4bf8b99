//! The read API over real HTTP on loopback, against both storage backends.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use socle_api::AppState;
use socle_domain::{
    Attribute, AttributeName, Entity, EntityId, EntityType, Geometry, NewOrganisation, Observation, ObservedValue,
    OfficialCode, OrganisationId, OrganisationKind, UnitCode,
};
use socle_storage::testing::TestStore;

struct App {
    base: String,
    http: reqwest::Client,
    _store: TestStore,
}

impl App {
    async fn start(t: TestStore) -> Self {
        seed(&t).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(t.store.clone());
        tokio::spawn(socle_api::serve(listener, state, std::future::pending()));
        Self { base, http: reqwest::Client::new(), _store: t }
    }

    async fn get(&self, path: &str) -> (StatusCode, String, Value) {
        self.get_lang(path, None).await
    }

    async fn get_lang(&self, path: &str, lang: Option<&str>) -> (StatusCode, String, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(l) = lang {
            req = req.header("Accept-Language", l);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = res.text().await.unwrap();
        (status, ct, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn seed(t: &TestStore) {
    let s = &t.store;
    for (id, code, parent) in [("syndicat", "200046977", None), ("commune-a", "86001", Some("syndicat"))] {
        s.upsert_organisation(&NewOrganisation {
            id: OrganisationId::parse(id).unwrap(),
            kind: if parent.is_some() { OrganisationKind::Commune } else { OrganisationKind::Syndicat },
            name: format!("Organisation {id}"),
            code: OfficialCode::parse(code).unwrap(),
            parent: parent.map(|p| OrganisationId::parse(p).unwrap()),
            population: Some(5000),
            timezone: chrono_tz::Europe::Paris,
            retention_days: None,
        })
        .await
        .unwrap();
    }
    let ty = EntityType::parse("SmartMeteringObservation").unwrap();
    let mut entities = Vec::new();
    for i in 0..30 {
        let mut e = Entity::new(
            EntityId::new(&ty, &format!("m-{i:02}")).unwrap(),
            ty.clone(),
            OrganisationId::parse("commune-a").unwrap(),
        );
        e.location = Some(Geometry::Point([0.30 + f64::from(i) * 0.01, 46.6]));
        // Open data, so anonymous requests see it; access rules have their own test.
        e.visibility = socle_domain::Visibility::Public;
        entities.push(e.with("name", Attribute::property(format!("Compteur {i}"))).unwrap());
    }
    s.upsert_entities(&entities).await.unwrap();
    let m = entities[0].id.clone();
    let obs: Vec<Observation> = (0..96 * 3)
        .map(|k| Observation {
            entity: m.clone(),
            attribute: AttributeName::parse("consumption").unwrap(),
            observed_at: at("2026-01-05T00:00:00Z") + Duration::minutes(15 * k),
            value: ObservedValue::number(1.0).unwrap(),
            unit_code: Some(UnitCode::parse("KWH").unwrap()),
        })
        .chain([Observation {
            entity: m.clone(),
            attribute: AttributeName::parse("status").unwrap(),
            observed_at: at("2026-01-05T00:00:00Z"),
            value: ObservedValue::Text("ok".into()),
            unit_code: None,
        }])
        .collect();
    s.write_observations(&obs).await.unwrap();
}

const METER: &str = "urn:ngsi-ld:SmartMeteringObservation:m-00";

async fn operations_endpoints(app: &App) {
    let (status, _, body) = app.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let (status, _, _) = app.get("/readyz").await;
    assert_eq!(status, 200);
    let (status, ct, body) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = body.as_str().unwrap();
    for metric in [
        "socle_http_requests_total",
        "socle_http_request_duration_seconds",
        "socle_storage_bytes",
        "socle_observations_written_total",
        "socle_entities 30",
    ] {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
    assert!(text.contains("route=\"/healthz\""), "requests are labelled by route template");
}

async fn organisations_and_entities(app: &App) {
    let (status, _, body) = app.get("/api/v1/organisations").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 2);
    assert_eq!(body["items"][0]["id"], "commune-a");
    assert_eq!(body["items"][0]["parent"], "syndicat");
    let (status, _, body) = app.get("/api/v1/organisations/syndicat").await;
    assert_eq!((status, body["kind"].as_str()), (StatusCode::OK, Some("syndicat")));

    let (status, _, body) =
        app.get("/api/v1/entities?organisation=commune-a&type=SmartMeteringObservation&limit=5&offset=10").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 30);
    assert_eq!(body["items"].as_array().unwrap().len(), 5);
    assert_eq!(body["items"][0]["id"], "urn:ngsi-ld:SmartMeteringObservation:m-10");
    let (_, _, body) = app.get("/api/v1/entities?bbox=0.295,46.5,0.345,46.7").await;
    assert_eq!(body["total"], 5);
    let (_, _, body) = app.get("/api/v1/entities?organisation=syndicat").await;
    assert_eq!(body["total"], 0);

    let (status, _, body) = app.get(&format!("/api/v1/entities/{METER}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Compteur 0");
    assert_eq!(body["location"]["type"], "Point");
    assert_eq!(body["attributes"]["consumption"]["unitCode"], "KWH");
    assert_eq!(body["attributes"]["consumption"]["observedAt"], "2026-01-07T23:45:00Z");
}

async fn series_endpoints(app: &App) {
    let (status, _, body) = app.get(&format!("/api/v1/entities/{METER}/series")).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    let base = format!("/api/v1/entities/{METER}/series/consumption?from=2026-01-05T00:00:00Z&to=2026-01-08T00:00:00Z");
    // Daily buckets are Paris days; a bucket is returned when its start lies in the range.
    let days = format!(
        "/api/v1/entities/{METER}/series/consumption?step=day&from=2026-01-05T00:00:00%2B01:00&to=2026-01-09T00:00:00%2B01:00"
    );
    let (status, _, body) = app.get(&days).await;
    assert_eq!(status, 200, "{body}");
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.iter().map(|p| p["count"].as_u64().unwrap()).collect::<Vec<_>>(), [92, 96, 96, 4]);
    assert_eq!(points[0]["t"], "2026-01-04T23:00:00Z");
    assert_eq!(body["unitCode"], "KWH");
    let (_, _, body) = app.get(&format!("{base}&step=hour&fn=sum,max")).await;
    assert_eq!(body["points"].as_array().unwrap().len(), 72);
    assert_eq!(body["points"][0], serde_json::json!({"t": "2026-01-05T00:00:00Z", "max": 1.0, "sum": 4.0}));
    let (_, _, body) = app.get(&format!("{base}&limit=10")).await;
    assert_eq!(body["points"].as_array().unwrap().len(), 10);
    assert_eq!(body["truncated"], true);
    let (_, _, body) = app.get(&format!("/api/v1/entities/{METER}/series/status?from=2026-01-01T00:00:00Z")).await;
    assert_eq!(body["points"][0]["value"], "ok");
}

async fn assert_problem(app: &App, path: &str, status: u16, code: &str) -> Value {
    let (got, ct, body) = app.get(path).await;
    assert_eq!(got.as_u16(), status, "{path}: {body}");
    assert_eq!(ct, "application/problem+json", "{path}");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{path}: {body}");
    assert!(body["type"].as_str().unwrap().starts_with("urn:socle:problem:"));
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body
}

async fn bad_requests_get_problem_details(app: &App) {
    let series = format!("/api/v1/entities/{METER}/series");
    let unknown = assert_problem(app, "/api/v1/entities/urn:ngsi-ld:Building:nope", 404, "unknown-entity").await;
    assert!(unknown["detail"].as_str().unwrap().contains("Aucun équipement"), "French by default: {unknown}");
    let (_, _, en) = app.get_lang("/api/v1/entities/urn:ngsi-ld:Building:nope", Some("en-GB,en;q=0.9")).await;
    assert!(en["detail"].as_str().unwrap().starts_with("No visible entity"), "{en}");
    assert_problem(app, "/api/v1/entities/not-a-urn", 400, "invalid-parameter").await;
    assert_problem(app, "/api/v1/organisations/nobody", 404, "unknown-organisation").await;
    assert_problem(app, "/api/v1/entities?limit=1000000", 400, "invalid-parameter").await;
    assert_problem(app, "/api/v1/entities?limit=-1", 400, "invalid-parameter").await;
    assert_problem(app, "/api/v1/entities?offset=99999999999999999999", 400, "invalid-parameter").await;
    assert_problem(app, "/api/v1/entities?bbox=1,2,3", 400, "invalid-parameter").await;
    assert_problem(app, "/api/v1/entities?bbox=10,50,0,40", 400, "invalid-parameter").await;
    assert_problem(app, "/api/v1/entities?type=Bad%20Type", 400, "invalid-parameter").await;
    assert_problem(app, "/api/v1/entities?organisation=COMMUNE", 400, "invalid-parameter").await;
    assert_problem(app, &format!("{series}/consumption?step=week"), 400, "invalid-parameter").await;
    assert_problem(app, &format!("{series}/consumption?step=day&fn=median"), 400, "invalid-parameter").await;
    assert_problem(app, &format!("{series}/consumption?fn=avg"), 400, "invalid-parameter").await;
    assert_problem(app, &format!("{series}/consumption?from=yesterday"), 400, "invalid-time").await;
    assert_problem(
        app,
        &format!("{series}/consumption?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"),
        400,
        "invalid-parameter",
    )
    .await;
    assert_problem(app, &format!("{series}/consumption?limit=100000000"), 400, "invalid-parameter").await;
    assert_problem(app, &format!("{series}/status?step=hour"), 400, "not-numeric").await;
    assert_problem(app, &format!("{series}/nothing"), 404, "unknown-series").await;
    assert_problem(app, "/api/v1/entities/urn:ngsi-ld:Building:nope/series/x", 404, "unknown-entity").await;
    assert_problem(app, "/nowhere", 404, "no-such-route").await;
    assert_problem(app, &format!("/api/v1/entities?type={}", "A".repeat(10_000)), 414, "uri-too-long").await;
    let res = app.http.post(format!("{}/api/v1/entities", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let app = super::App::start(super::TestStore::sqlite().await).await;
                    super::$test(&app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let app = super::App::start(super::TestStore::postgres().await).await;
                    super::$test(&app).await;
                }
            )*
        }
    };
}

both_backends!(operations_endpoints, organisations_and_entities, series_endpoints, bad_requests_get_problem_details);

#[test]
fn openapi_document_matches_the_committed_contract() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = serde_json::to_string_pretty(&socle_api::openapi::document()).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "the API changed: review it, then run `UPDATE_OPENAPI=1 cargo test -p socle-api --test http openapi` to update docs/openapi.json"
    );
}
