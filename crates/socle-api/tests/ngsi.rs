//! The NGSI-LD API over real HTTP on loopback, on both storage backends:
//! the request and response shapes of ETSI GS CIM 009, the errors, and the
//! rules of tenants (a commune's token neither reads nor writes another's).

use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::AppState;
use socle_domain::{
    ApiToken, Attribute, AttributeName, Email, Entity, EntityId, EntityType, Geometry, NewOrganisation, Observation,
    ObservedValue, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope, UnitCode, Visibility,
};
use socle_storage::testing::TestStore;
use socle_storage::DynStore;

struct App {
    base: String,
    http: reqwest::Client,
    store: TestStore,
    /// Personal tokens: agent of commune A (write), reader of commune A (read), agent of commune B (write).
    writer_a: String,
    reader_a: String,
    writer_b: String,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn token(s: &DynStore, email: &str, org: &str, role: Role, scope: TokenScope) -> String {
    let u = s.create_user(&Email::parse(email).unwrap(), email, None).await.unwrap();
    s.grant(u.id, &OrganisationId::parse(org).unwrap(), role).await.unwrap();
    let secret = new_token_secret(TokenKind::Personal);
    let t = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Personal,
        label: "test".into(),
        user: Some(u.id),
        organisation: OrganisationId::parse(org).unwrap(),
        scope,
        created_at: Utc::now(),
        expires_at: Some(Utc::now() + Duration::days(1)),
        revoked_at: None,
    };
    s.create_token(&t, &hash_secret(&secret)).await.unwrap();
    secret
}

const METER: &str = "urn:ngsi-ld:SmartMeteringObservation:m-00";

impl App {
    async fn start(t: TestStore) -> Self {
        let s = &t.store;
        for (id, code, parent) in [
            ("syndicat", "200046977", None),
            ("commune-a", "86001", Some("syndicat")),
            ("commune-b", "86002", Some("syndicat")),
        ] {
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
        // Public meters of commune A, with history as ingestion writes it.
        let ty = EntityType::parse("SmartMeteringObservation").unwrap();
        let mut entities = Vec::new();
        for i in 0..12 {
            let mut e = Entity::new(
                EntityId::new(&ty, &format!("m-{i:02}")).unwrap(),
                ty.clone(),
                OrganisationId::parse("commune-a").unwrap(),
            );
            e.location = Some(Geometry::Point([0.30 + f64::from(i) * 0.01, 46.6]));
            e.visibility = Visibility::Public;
            entities.push(e.with("name", Attribute::property(format!("Compteur {i}"))).unwrap());
        }
        // A private building of commune B.
        let b = Entity::new(
            EntityId::parse("urn:ngsi-ld:Building:b-mairie").unwrap(),
            EntityType::parse("Building").unwrap(),
            OrganisationId::parse("commune-b").unwrap(),
        )
        .with("name", Attribute::property("Mairie B"))
        .unwrap();
        entities.push(b);
        s.upsert_entities(&entities).await.unwrap();
        let obs: Vec<Observation> = (0..96 * 2)
            .map(|k| Observation {
                entity: EntityId::parse(METER).unwrap(),
                attribute: AttributeName::parse("consumption").unwrap(),
                observed_at: at("2026-01-05T00:00:00Z") + Duration::minutes(15 * k),
                value: ObservedValue::number(1.0 + (k % 4) as f64).unwrap(),
                unit_code: Some(UnitCode::parse("KWH").unwrap()),
            })
            .collect();
        s.write_observations(&obs).await.unwrap();
        let writer_a = token(s, "agent-a@test.fr", "commune-a", Role::Agent, TokenScope::Write).await;
        let reader_a = token(s, "lecteur-a@test.fr", "commune-a", Role::Agent, TokenScope::Read).await;
        let writer_b = token(s, "agent-b@test.fr", "commune-b", Role::Agent, TokenScope::Write).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(socle_api::serve(listener, AppState::new(t.store.clone()), std::future::pending()));
        Self { base, http: reqwest::Client::new(), store: t, writer_a, reader_a, writer_b }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.call_with(method, path, token, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}/ngsi-ld/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }
}

fn assert_error(a: &Answer, status: u16, kind: &str) {
    assert_eq!(a.status.as_u16(), status, "{:?}", a.body);
    assert_eq!(a.body["type"], format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"), "{:?}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
}

async fn reading_socle_entities(app: &App) {
    // Measured through ingestion, read through NGSI-LD: observedAt and unitCode of the last value.
    let a = app.get(&format!("/entities/{METER}"), None).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["id"], METER);
    assert_eq!(a.body["type"], "SmartMeteringObservation");
    assert_eq!(a.body["consumption"]["type"], "Property");
    assert_eq!(a.body["consumption"]["unitCode"], "KWH");
    assert_eq!(a.body["consumption"]["observedAt"], "2026-01-06T23:45:00Z");
    assert_eq!(
        a.body["location"],
        json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [0.3, 46.6]}})
    );
    let link = a.headers["link"].to_str().unwrap();
    assert!(
        link.contains("ngsi-ld-core-context") && link.contains("rel=\"http://www.w3.org/ns/json-ld#context\""),
        "{link}"
    );
    let kv = app.get(&format!("/entities/{METER}?options=keyValues&attrs=consumption"), None).await;
    assert_eq!(kv.body, json!({"id": METER, "type": "SmartMeteringObservation", "consumption": 4.0}));
    let concise = app.get(&format!("/entities/{METER}?options=concise,sysAttrs"), None).await;
    assert_eq!(concise.body["name"], "Compteur 0");
    assert!(concise.body["createdAt"].is_string());
    // JSON-LD: the context travels in the body.
    let ld = app
        .call_with(Method::GET, &format!("/entities/{METER}"), None, None, &[("accept", "application/ld+json")])
        .await;
    assert_eq!(ld.headers["content-type"], "application/ld+json");
    assert!(ld.body["@context"].as_str().unwrap().contains("ngsi-ld-core-context"));
    let refused =
        app.call_with(Method::GET, &format!("/entities/{METER}"), None, None, &[("accept", "text/csv")]).await;
    assert_eq!(refused.status, 406);
    // Absent and hidden answer alike.
    let absent = app.get("/entities/urn:ngsi-ld:Building:nulle-part", None).await;
    assert_error(&absent, 404, "ResourceNotFound");
    let hidden = app.get("/entities/urn:ngsi-ld:Building:b-mairie", Some(&app.writer_a)).await;
    assert_error(&hidden, 404, "ResourceNotFound");
    assert_eq!(
        hidden.body["detail"].as_str().unwrap().replace("b-mairie", "X"),
        absent.body["detail"].as_str().unwrap().replace("nulle-part", "X")
    );
    assert_eq!(app.get("/entities/urn:ngsi-ld:Building:b-mairie", Some(&app.writer_b)).await.status, 200);
    assert_error(&app.get("/entities/pas-un-urn", None).await, 400, "BadRequestData");
    // The core context is served from the binary.
    let list = app.get("/jsonldContexts", None).await;
    assert_eq!(list.body, json!(["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"]));
    let core = app.get("/jsonldContexts/ngsi-ld-core-context-v1.9", None).await;
    assert_eq!(core.headers["content-type"], "application/ld+json");
    assert_eq!(core.body["@context"]["observedAt"]["@id"], "ngsi-ld:observedAt");
    assert_error(&app.get("/jsonldContexts/autre", None).await, 404, "ResourceNotFound");
}

async fn querying(app: &App) {
    let a = app.get("/entities?type=SmartMeteringObservation&limit=5&offset=2&count=true", None).await;
    assert_eq!(a.status, 200);
    let ids: Vec<&str> = a.body.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.first(), Some(&"urn:ngsi-ld:SmartMeteringObservation:m-02"));
    assert_eq!(ids.len(), 5);
    assert_eq!(a.headers["ngsild-results-count"], "12");
    // q: numbers, patterns, logic; geoQ: metres around a point.
    let q = app.get("/entities?type=SmartMeteringObservation&q=consumption>=4;name~=Compteur&count=true", None).await;
    assert_eq!(q.headers["ngsild-results-count"], "1", "{:?}", q.body);
    let q = app
        .get(
            "/entities?type=SmartMeteringObservation&q=name==%22Compteur%203%22|name==%22Compteur%205%22&count=true",
            None,
        )
        .await;
    assert_eq!(q.headers["ngsild-results-count"], "2", "{:?}", q.body);
    let near = app
        .get("/entities?type=SmartMeteringObservation&georel=near;maxDistance==1600&geometry=Point&coordinates=%5B0.35,46.6%5D&count=true", None)
        .await;
    // 0.01° of longitude is ~765 m here: m-03 … m-07.
    assert_eq!(near.headers["ngsild-results-count"], "5", "{:?}", near.body);
    let within = app
        .get("/entities?type=SmartMeteringObservation&georel=within&geometry=Polygon&coordinates=%5B%5B%5B0.295,46.5%5D,%5B0.325,46.5%5D,%5B0.325,46.7%5D,%5B0.295,46.7%5D,%5B0.295,46.5%5D%5D%5D&count=true", None)
        .await;
    assert_eq!(within.headers["ngsild-results-count"], "3");
    let by_pattern = app.get("/entities?idPattern=m-1%5B01%5D$&count=true", None).await;
    assert_eq!(by_pattern.headers["ngsild-results-count"], "2");
    let by_type_list =
        app.get("/entities?type=Building,SmartMeteringObservation&count=true&limit=0", Some(&app.writer_b)).await;
    assert_eq!(by_type_list.headers["ngsild-results-count"], "13");
    assert_eq!(by_type_list.body, json!([]));
    // Tenants: B's token with the tenant header of A sees only A's (public) entities.
    let tenant = app
        .call_with(
            Method::GET,
            "/entities?type=Building,SmartMeteringObservation&count=true",
            Some(&app.writer_b),
            None,
            &[("NGSILD-Tenant", "commune-a")],
        )
        .await;
    assert_eq!(tenant.headers["ngsild-results-count"], "12");
    let nobody =
        app.call_with(Method::GET, "/entities?type=Building", None, None, &[("NGSILD-Tenant", "atlantide")]).await;
    assert_error(&nobody, 404, "NonexistentTenant");
    // The same query, posted.
    let posted = app
        .call(
            Method::POST,
            "/entityOperations/query?count=true",
            None,
            Some(json!({"type": "Query", "entities": [{"type": "SmartMeteringObservation"}], "q": "consumption>1",
                        "geoQ": {"georel": "near;maxDistance==100", "geometry": "Point", "coordinates": [0.3, 46.6]}})),
        )
        .await;
    assert_eq!(posted.status, 200, "{:?}", posted.body);
    assert_eq!(posted.headers["ngsild-results-count"], "1");
    // Errors.
    assert_error(&app.get("/entities", None).await, 400, "BadRequestData");
    assert_error(&app.get("/entities?type=Building&limit=5000", None).await, 403, "TooManyResults");
    assert_error(&app.get("/entities?type=Building&q=(a==1", None).await, 400, "BadRequestData");
    assert_error(
        &app.get("/entities?type=Building&georel=near&geometry=Point&coordinates=%5B0,0%5D", None).await,
        400,
        "BadRequestData",
    );
    assert_error(&app.get("/entities?type=Building&georel=within", None).await, 400, "BadRequestData");
}

async fn writing(app: &App) {
    let id = "urn:ngsi-ld:WasteContainer:verre-01";
    let body = json!({
        "id": id,
        "type": "WasteContainer",
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [0.341, 46.581]}},
        "fillingLevel": {"type": "Property", "value": 0.4, "unitCode": "P1", "observedAt": "2026-03-01T10:00:00Z"},
        "wasteType": "glass",
    });
    // Who may create.
    assert_error(&app.call(Method::POST, "/entities", None, Some(body.clone())).await, 401, "Unauthorized");
    assert_error(&app.call(Method::POST, "/entities", Some(&app.reader_a), Some(body.clone())).await, 403, "Forbidden");
    let into_b = app
        .call_with(
            Method::POST,
            "/entities",
            Some(&app.writer_a),
            Some(body.clone()),
            &[("NGSILD-Tenant", "commune-b")],
        )
        .await;
    assert_error(&into_b, 403, "Forbidden");
    let created = app.call(Method::POST, "/entities", Some(&app.writer_a), Some(body.clone())).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.headers["location"], format!("/ngsi-ld/v1/entities/{id}"));
    assert_error(
        &app.call(Method::POST, "/entities", Some(&app.writer_a), Some(body.clone())).await,
        409,
        "AlreadyExists",
    );
    // B cannot take the id either, and does not see the entity (private by default).
    assert_error(
        &app.call(Method::POST, "/entities", Some(&app.writer_b), Some(body.clone())).await,
        409,
        "AlreadyExists",
    );
    assert_error(&app.get(&format!("/entities/{id}"), Some(&app.writer_b)).await, 404, "ResourceNotFound");
    // It is a Socle entity: on the hypervisor map of commune A, with history.
    let map: Value = app
        .http
        .get(format!("{}/api/v1/map", app.base))
        .bearer_auth(&app.writer_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(map["features"].as_array().unwrap().iter().any(|f| f["properties"]["id"] == id), "{map}");
    let series: Value = app
        .http
        .get(format!(
            "{}/api/v1/entities/{id}/series/fillingLevel?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z",
            app.base
        ))
        .bearer_auth(&app.writer_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(series["points"].as_array().map(Vec::len), Some(1), "{series}");

    // Append; noOverwrite keeps what exists (207 names what was left).
    let path = format!("/entities/{id}/attrs");
    let a = app.call(Method::POST, &path, Some(&app.writer_a), Some(json!({"status": "ok"}))).await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let a = app
        .call(
            Method::POST,
            &format!("{path}?options=noOverwrite"),
            Some(&app.writer_a),
            Some(json!({"status": "ko", "color": "green"})),
        )
        .await;
    assert_eq!(a.status, 207, "{:?}", a.body);
    assert_eq!(a.body["notUpdated"][0]["attributeName"], "status");
    // Update touches only what exists.
    let a = app
        .call(Method::PATCH, &path, Some(&app.writer_a), Some(json!({"fillingLevel": {"type": "Property", "value": 0.6, "unitCode": "P1", "observedAt": "2026-03-01T11:00:00Z"}, "nope": 1})))
        .await;
    assert_eq!(a.status, 207, "{:?}", a.body);
    assert_eq!(a.body["updated"], json!(["fillingLevel"]));
    // Partial update of one attribute keeps its unit.
    let a = app
        .call(Method::PATCH, &format!("{path}/fillingLevel"), Some(&app.writer_a), Some(json!({"value": 0.7})))
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let got = app.get(&format!("/entities/{id}"), Some(&app.writer_a)).await.body;
    assert_eq!(got["fillingLevel"]["value"], 0.7);
    assert_eq!(got["fillingLevel"]["unitCode"], "P1");
    assert_eq!(got["status"]["value"], "ok");
    assert_eq!(got["color"]["value"], "green");
    assert_error(
        &app.call(Method::PATCH, &format!("{path}/absent"), Some(&app.writer_a), Some(json!({"value": 1}))).await,
        404,
        "ResourceNotFound",
    );
    // Delete an attribute.
    assert_eq!(app.call(Method::DELETE, &format!("{path}/color"), Some(&app.writer_a), None).await.status, 204);
    assert_error(
        &app.call(Method::DELETE, &format!("{path}/color"), Some(&app.writer_a), None).await,
        404,
        "ResourceNotFound",
    );
    // Merge-patch: null deletes.
    let a = app
        .call(
            Method::PATCH,
            &format!("/entities/{id}"),
            Some(&app.writer_a),
            Some(json!({"status": null, "wasteType": "paper"})),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let got = app.get(&format!("/entities/{id}?options=keyValues"), Some(&app.writer_a)).await.body;
    assert_eq!(got["wasteType"], "paper");
    assert!(got.get("status").is_none());
    // Replace: exactly the attributes given.
    let a = app
        .call(
            Method::PUT,
            &format!("/entities/{id}"),
            Some(&app.writer_a),
            Some(json!({"type": "WasteContainer", "wasteType": "glass"})),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let got = app.get(&format!("/entities/{id}?options=keyValues"), Some(&app.writer_a)).await.body;
    assert_eq!(got, json!({"id": id, "type": "WasteContainer", "wasteType": "glass"}));
    // B can neither change nor delete it: it does not exist for B.
    for (m, p, b) in [
        (Method::PATCH, path.clone(), Some(json!({"wasteType": "x"}))),
        (Method::DELETE, format!("/entities/{id}"), None),
        (Method::PUT, format!("/entities/{id}"), Some(json!({"type": "WasteContainer"}))),
    ] {
        assert_error(&app.call(m, &p, Some(&app.writer_b), b).await, 404, "ResourceNotFound");
    }
    // A read-only token sees it but may not change it.
    assert_error(
        &app.call(Method::DELETE, &format!("/entities/{id}"), Some(&app.reader_a), None).await,
        403,
        "Forbidden",
    );
    // Content types and bodies.
    let wrong = app
        .http
        .post(format!("{}/ngsi-ld/v1/entities", app.base))
        .bearer_auth(&app.writer_a)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 415);
    let ld = app
        .http
        .post(format!("{}/ngsi-ld/v1/entities", app.base))
        .bearer_auth(&app.writer_a)
        .header("content-type", "application/ld+json")
        .body(
            json!({"id": "urn:ngsi-ld:WasteContainer:verre-02", "type": "WasteContainer", "niveau": 0.1,
                     "@context": [{"niveau": "https://uri.etsi.org/ngsi-ld/default-context/fillingLevel"},
                                  "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ld.status(), 201);
    let got =
        app.get("/entities/urn:ngsi-ld:WasteContainer:verre-02?options=keyValues", Some(&app.writer_a)).await.body;
    assert_eq!(got["fillingLevel"], 0.1, "the user context's term is stored under its IRI's name: {got}");
    let ld_missing = app
        .http
        .post(format!("{}/ngsi-ld/v1/entities", app.base))
        .bearer_auth(&app.writer_a)
        .header("content-type", "application/ld+json")
        .body(json!({"id": "urn:ngsi-ld:WasteContainer:verre-03", "type": "WasteContainer"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ld_missing.status(), 400);
    let remote = app
        .call_with(Method::GET, &format!("/entities/{id}"), Some(&app.writer_a), None, &[("link", "<https://example.org/ctx.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"")])
        .await;
    assert_error(&remote, 503, "LdContextNotAvailable");
    let not_json = app
        .http
        .post(format!("{}/ngsi-ld/v1/entities", app.base))
        .bearer_auth(&app.writer_a)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    // Its own client: the server answers before reading the whole body and
    // closes the connection, which a pooled client might try to reuse.
    let big = reqwest::Client::new()
        .post(format!("{}/ngsi-ld/v1/entities", app.base))
        .bearer_auth(&app.writer_a)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    // Delete.
    assert_eq!(app.call(Method::DELETE, &format!("/entities/{id}"), Some(&app.writer_a), None).await.status, 204);
    assert_error(&app.get(&format!("/entities/{id}"), Some(&app.writer_a)).await, 404, "ResourceNotFound");
    assert!(app.store.store.entity(&EntityId::parse(id).unwrap()).await.unwrap().is_none());
}

async fn batches(app: &App) {
    let c = |i: u32| {
        json!({"id": format!("urn:ngsi-ld:WasteContainer:lot-{i}"), "type": "WasteContainer",
                           "fillingLevel": {"type": "Property", "value": 0.1 * f64::from(i), "observedAt": "2026-03-01T10:00:00Z"}})
    };
    let created =
        app.call(Method::POST, "/entityOperations/create", Some(&app.writer_a), Some(json!([c(1), c(2), c(3)]))).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body.as_array().unwrap().len(), 3);
    // Mixed: an existing id, a malformed one, a duplicate, a new one.
    let mixed = app
        .call(
            Method::POST,
            "/entityOperations/create",
            Some(&app.writer_a),
            Some(json!([c(1), {"id": "x", "type": "T"}, c(4), c(4)])),
        )
        .await;
    assert_eq!(mixed.status, 207, "{:?}", mixed.body);
    assert_eq!(mixed.body["success"], json!(["urn:ngsi-ld:WasteContainer:lot-4"]));
    let errors = mixed.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0]["entityId"], "urn:ngsi-ld:WasteContainer:lot-1");
    assert_eq!(errors[0]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists");
    // Upsert replaces by default, updates with options=update.
    let up = app
        .call(
            Method::POST,
            "/entityOperations/upsert",
            Some(&app.writer_a),
            Some(json!([{"id": "urn:ngsi-ld:WasteContainer:lot-1", "type": "WasteContainer", "status": "ok"}, c(5)])),
        )
        .await;
    assert_eq!(up.status, 201, "{:?}", up.body);
    let one = app.get("/entities/urn:ngsi-ld:WasteContainer:lot-1?options=keyValues", Some(&app.writer_a)).await.body;
    assert_eq!(one, json!({"id": "urn:ngsi-ld:WasteContainer:lot-1", "type": "WasteContainer", "status": "ok"}));
    let up = app
        .call(
            Method::POST,
            "/entityOperations/upsert?options=update",
            Some(&app.writer_a),
            Some(json!([{"id": "urn:ngsi-ld:WasteContainer:lot-1", "type": "WasteContainer", "color": "green"}])),
        )
        .await;
    assert_eq!(up.status, 204, "{:?}", up.body);
    let one = app.get("/entities/urn:ngsi-ld:WasteContainer:lot-1?options=keyValues", Some(&app.writer_a)).await.body;
    assert_eq!((one["status"].as_str(), one["color"].as_str()), (Some("ok"), Some("green")));
    // Update: noOverwrite keeps; absent entities are errors.
    let upd = app
        .call(Method::POST, "/entityOperations/update?options=noOverwrite", Some(&app.writer_a), Some(json!([{"id": "urn:ngsi-ld:WasteContainer:lot-1", "status": "ko", "size": 2}, {"id": "urn:ngsi-ld:WasteContainer:nope", "size": 1}])))
        .await;
    assert_eq!(upd.status, 207, "{:?}", upd.body);
    assert_eq!(upd.body["errors"][0]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound");
    let one = app.get("/entities/urn:ngsi-ld:WasteContainer:lot-1?options=keyValues", Some(&app.writer_a)).await.body;
    assert_eq!((one["status"].as_str(), one["size"].as_i64()), (Some("ok"), Some(2)));
    // Merge deletes with null.
    let m = app
        .call(
            Method::POST,
            "/entityOperations/merge",
            Some(&app.writer_a),
            Some(json!([{"id": "urn:ngsi-ld:WasteContainer:lot-1", "color": null}])),
        )
        .await;
    assert_eq!(m.status, 204, "{:?}", m.body);
    // B can touch none of A's entities.
    let b = app
        .call(
            Method::POST,
            "/entityOperations/merge",
            Some(&app.writer_b),
            Some(json!([{"id": "urn:ngsi-ld:WasteContainer:lot-2", "status": "x"}])),
        )
        .await;
    assert_eq!(b.status, 207);
    let b = app
        .call(
            Method::POST,
            "/entityOperations/delete",
            Some(&app.writer_b),
            Some(json!(["urn:ngsi-ld:WasteContainer:lot-2"])),
        )
        .await;
    assert_eq!(b.body["errors"][0]["error"]["type"], "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound");
    // Delete.
    let d = app
        .call(
            Method::POST,
            "/entityOperations/delete",
            Some(&app.writer_a),
            Some(json!([
                "urn:ngsi-ld:WasteContainer:lot-1",
                "urn:ngsi-ld:WasteContainer:lot-2",
                "urn:ngsi-ld:WasteContainer:lot-3",
                "urn:ngsi-ld:WasteContainer:lot-4",
                "urn:ngsi-ld:WasteContainer:lot-5"
            ])),
        )
        .await;
    assert_eq!(d.status, 204, "{:?}", d.body);
    let left = app.get("/entities?type=WasteContainer&count=true&limit=0", Some(&app.writer_a)).await;
    assert_eq!(left.headers["ngsild-results-count"], "0");
    assert_error(
        &app.call(Method::POST, "/entityOperations/create", Some(&app.writer_a), Some(json!({"id": 1}))).await,
        400,
        "BadRequestData",
    );
}

async fn discovery(app: &App) {
    let anon = app.get("/types", None).await;
    assert_eq!(anon.status, 200, "{:?}", anon.body);
    assert_eq!(anon.body["type"], "EntityTypeList");
    assert_eq!(anon.body["typeList"], json!(["SmartMeteringObservation"]));
    let b = app.get("/types?details=true", Some(&app.writer_b)).await;
    assert_eq!(b.body[0]["typeName"], "Building");
    assert_eq!(b.body[0]["id"], "https://uri.etsi.org/ngsi-ld/default-context/Building");
    let info = app.get("/types/SmartMeteringObservation", None).await;
    assert_eq!(info.body["entityCount"], 12);
    let names: Vec<&str> = info.body["attributeDetails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attributeName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["consumption", "location", "name"]);
    assert_error(&app.get("/types/Building", None).await, 404, "ResourceNotFound");
    let attrs = app.get("/attributes", None).await;
    assert_eq!(attrs.body["attributeList"], json!(["consumption", "location", "name"]));
    let one = app.get("/attributes/consumption", None).await;
    assert_eq!(
        (one.body["attributeCount"].as_u64(), one.body["attributeTypes"].clone()),
        (Some(1), json!(["Property"]))
    );
    assert_eq!(one.body["typeNames"], json!(["SmartMeteringObservation"]));
    let details = app.get("/attributes?details=true", Some(&app.writer_b)).await;
    let name = details.body.as_array().unwrap().iter().find(|a| a["attributeName"] == "name").unwrap().clone();
    assert_eq!(name["typeNames"], json!(["Building", "SmartMeteringObservation"]));
}

async fn history(app: &App) {
    let base = format!("/temporal/entities/{METER}");
    let a = app
        .get(&format!("{base}?timerel=between&timeAt=2026-01-05T00:00:00Z&endTimeAt=2026-01-05T01:00:00Z"), None)
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let instances = a.body["consumption"].as_array().unwrap();
    assert_eq!(instances.len(), 4);
    assert_eq!(
        instances[1],
        json!({"type": "Property", "value": 2.0, "observedAt": "2026-01-05T00:15:00Z", "unitCode": "KWH"})
    );
    let tv = app.get(&format!("{base}?timerel=after&timeAt=2026-01-06T23:00:00Z&options=temporalValues"), None).await;
    assert_eq!(tv.body["consumption"]["type"], "Property");
    assert_eq!(tv.body["consumption"]["values"][3], json!([4.0, "2026-01-06T23:45:00Z"]));
    let last = app.get(&format!("{base}?lastN=2&attrs=consumption"), None).await;
    let values: Vec<&str> =
        last.body["consumption"].as_array().unwrap().iter().map(|i| i["observedAt"].as_str().unwrap()).collect();
    assert_eq!(values, vec!["2026-01-06T23:30:00Z", "2026-01-06T23:45:00Z"]);
    // Aggregations: per hour, from raw points (stddev asks for them).
    let agg = app
        .get(&format!("{base}?timerel=between&timeAt=2026-01-05T00:00:00Z&endTimeAt=2026-01-05T02:00:00Z&aggrMethods=sum,avg,max,stddev,totalCount,distinctCount,sumsq,min&aggrPeriodDuration=PT1H"), None)
        .await;
    assert_eq!(agg.status, 200, "{:?}", agg.body);
    let c = &agg.body["consumption"];
    assert_eq!(
        c["sum"],
        json!([
            [10.0, "2026-01-05T00:00:00Z", "2026-01-05T01:00:00Z"],
            [10.0, "2026-01-05T01:00:00Z", "2026-01-05T02:00:00Z"]
        ])
    );
    assert_eq!(c["avg"][0][0], 2.5);
    assert_eq!(c["totalCount"][0][0], 4);
    assert_eq!(c["distinctCount"][0][0], 4);
    assert_eq!(c["sumsq"][0][0], 30.0);
    assert_eq!(c["unitCode"], "KWH");
    // Per day: from hourly rollups, equal to the raw computation.
    let days = "timerel=between&timeAt=2026-01-05T00:00:00Z&endTimeAt=2026-01-07T00:00:00Z&aggrPeriodDuration=P1D";
    let rolled = app.get(&format!("{base}?{days}&aggrMethods=sum,totalCount,max"), None).await;
    let raw = app.get(&format!("{base}?{days}&aggrMethods=sum,totalCount,max,stddev"), None).await;
    assert_eq!(
        rolled.body["consumption"]["sum"],
        json!([
            [240.0, "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"],
            [240.0, "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"]
        ])
    );
    for m in ["sum", "totalCount", "max"] {
        assert_eq!(rolled.body["consumption"][m], raw.body["consumption"][m], "{m}");
    }
    // The list: every meter, with the history asked for.
    let list =
        app.get("/temporal/entities?type=SmartMeteringObservation&attrs=consumption&lastN=1&count=true", None).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.headers["ngsild-results-count"], "12");
    assert_eq!(list.body[0]["consumption"][0]["value"], 4.0);
    assert!(list.body[1].get("consumption").is_none());
    // Errors and hiding.
    assert_error(
        &app.get(&format!("{base}?timerel=between&timeAt=2026-01-05T00:00:00Z"), None).await,
        400,
        "BadRequestData",
    );
    assert_error(&app.get(&format!("{base}?aggrMethods=sum&aggrPeriodDuration=1H"), None).await, 400, "BadRequestData");
    assert_error(&app.get(&format!("{base}?aggrMethods=median"), None).await, 400, "BadRequestData");
    assert_error(
        &app.get("/temporal/entities/urn:ngsi-ld:Building:b-mairie", Some(&app.writer_a)).await,
        404,
        "ResourceNotFound",
    );
}

/// A measurement written through NGSI-LD is announced after its commit, as
/// ingestion's are: live pages (and alert rules, on the same feed) see it.
async fn measurements_reach_the_live_feed(app: &App) {
    let mut live = app
        .http
        .get(format!("{}/api/v1/live?entity={METER}", app.base))
        .bearer_auth(&app.writer_a)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let patch = json!({"consumption": {"type": "Property", "value": 7.5, "unitCode": "KWH", "observedAt": "2026-01-07T00:00:00Z"}});
    let a = app.call(Method::PATCH, &format!("/entities/{METER}/attrs"), Some(&app.writer_a), Some(patch)).await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let mut text = String::new();
    while !(text.contains("event: observations") && text.contains("7.5")) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), live.chunk())
            .await
            .expect("the NGSI-LD measurement on the live feed within 10 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(METER), "{text}");
}

/// `q` evaluated partly in SQL must give exactly what Rust evaluation gives:
/// counts and pages over values of every kind (numbers, text, numbers held
/// as text, arrays, booleans, relationships).
async fn q_in_storage(app: &App) {
    let mut batch = Vec::new();
    for i in 0..40 {
        let mut e = json!({"id": format!("urn:ngsi-ld:Sensor:s-{i:02}"), "type": "Sensor",
            "level": i, "state": if i % 3 == 0 { "off" } else { "on" },
            "active": i % 2 == 0,
            "refDevice": {"type": "Relationship", "object": format!("urn:ngsi-ld:Device:d-{}", i % 4)}});
        if i == 7 {
            e["level"] = json!("7"); // a number held as text still compares as a number
        }
        if i == 8 {
            e["level"] = json!([1, 50]); // one item of an array may match
        }
        if i % 10 == 5 {
            e["tags"] = json!(["verre", "apport"]);
        }
        if i == 39 {
            e.as_object_mut().unwrap().remove("state");
        }
        batch.push(e);
    }
    let created =
        app.call(Method::POST, "/entityOperations/create", Some(&app.writer_a), Some(Value::Array(batch))).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let level = |i: i64| -> Vec<f64> {
        match i {
            7 => vec![7.0],
            8 => vec![1.0, 50.0],
            _ => vec![i as f64],
        }
    };
    type Expected = Box<dyn Fn(i64) -> bool>;
    let cases: Vec<(&str, Expected)> = vec![
        ("level>25", Box::new(move |i| level(i).iter().any(|l| *l > 25.0))),
        ("level==7", Box::new(|i| i == 7)),
        ("level==1", Box::new(|i| i == 1 || i == 8)),
        ("level==10..12", Box::new(|i| (10..=12).contains(&i))),
        ("level==3,33,50", Box::new(|i| i == 3 || i == 33 || i == 8)),
        ("state==%22off%22;level>=10", Box::new(|i| i % 3 == 0 && i != 39 && i >= 10)),
        ("state==off|level<2", Box::new(|i| (i % 3 == 0 && i != 39) || i < 2 || i == 8)),
        ("state", Box::new(|i| i != 39)),
        ("state!=off", Box::new(|i| i % 3 != 0 && i != 39)),
        ("tags==verre", Box::new(|i| i % 10 == 5)),
        ("active==true;level<=9", Box::new(|i| i % 2 == 0 && i <= 9)),
        ("refDevice==urn:ngsi-ld:Device:d-1;level<20", Box::new(|i| i % 4 == 1 && i < 20)),
        ("state~=^of", Box::new(|i| i % 3 == 0 && i != 39)),
        ("level>%22a%22", Box::new(|_| false)),
        ("nothing==1", Box::new(|_| false)),
    ];
    for (q, want) in cases {
        let expected: Vec<String> =
            (0..40).filter(|i| want(*i)).map(|i| format!("urn:ngsi-ld:Sensor:s-{i:02}")).collect();
        let a = app.get(&format!("/entities?type=Sensor&q={q}&count=true&limit=1000"), Some(&app.writer_a)).await;
        assert_eq!(a.status, 200, "{q}: {:?}", a.body);
        let got: Vec<&str> = a.body.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(got, expected, "{q}");
        assert_eq!(a.headers["ngsild-results-count"], expected.len().to_string().as_str(), "{q}");
        // A page in the middle.
        let page =
            app.get(&format!("/entities?type=Sensor&q={q}&count=true&limit=3&offset=2"), Some(&app.writer_a)).await;
        let got: Vec<&str> = page.body.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        let want_page: Vec<&str> = expected.iter().skip(2).take(3).map(String::as_str).collect();
        assert_eq!(got, want_page, "{q} (page)");
        assert_eq!(page.headers["ngsild-results-count"], expected.len().to_string().as_str(), "{q}");
    }
    // Ids and q together; a hidden entity stays hidden from q.
    let a = app
        .get("/entities?id=urn:ngsi-ld:Sensor:s-01,urn:ngsi-ld:Sensor:s-02,pas-un-id&q=level>1", Some(&app.writer_a))
        .await;
    assert_eq!(a.body[0]["id"], "urn:ngsi-ld:Sensor:s-02");
    let anon = app.get("/entities?type=Sensor&q=level>1&count=true", None).await;
    assert_eq!(anon.headers["ngsild-results-count"], "0", "private to commune A");
    assert_eq!(a.body.as_array().unwrap().len(), 1, "{:?}", a.body);
    let hidden = app.get("/entities?type=Building&q=name==%22Mairie%20B%22&count=true", Some(&app.writer_a)).await;
    assert_eq!(hidden.headers["ngsild-results-count"], "0");
    let seen = app.get("/entities?type=Building&q=name==%22Mairie%20B%22&count=true", Some(&app.writer_b)).await;
    assert_eq!(seen.headers["ngsild-results-count"], "1");
}

/// A one-route HTTP server on loopback serving `body` at `/ctx.jsonld`,
/// counting its hits; dropping the handle's sender stops it.
async fn context_server(
    body: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ctx.jsonld", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/ctx.jsonld",
        axum::routing::get(move || {
            let (h, body) = (h.clone(), body.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                ([("content-type", "application/ld+json")], body)
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, hits, task)
}

async fn user_contexts(app: &App) {
    use std::sync::atomic::Ordering;
    let doc = json!({"@context": {
        "niveau": "https://uri.etsi.org/ngsi-ld/default-context/fillingLevel",
        "Conteneur": "https://uri.etsi.org/ngsi-ld/default-context/WasteContainer"
    }});
    let (url, hits, server) = context_server(doc.to_string()).await;
    let link = format!("<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"");
    let with_link = [("link", link.as_str())];
    // An anonymous caller cannot make the server fetch a URL.
    let anon = app.call_with(Method::GET, "/entities?type=Conteneur", None, None, &with_link).await;
    assert_error(&anon, 503, "LdContextNotAvailable");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // A write with the Link header: fetched once, terms translated.
    let id = "urn:ngsi-ld:WasteContainer:ctx-1";
    let body = json!({"id": id, "type": "Conteneur", "niveau": {"type": "Property", "value": 0.5}});
    let created = app.call_with(Method::POST, "/entities", Some(&app.writer_a), Some(body), &with_link).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let core = app.get(&format!("/entities/{id}"), Some(&app.writer_a)).await;
    assert_eq!(core.body["type"], "WasteContainer");
    assert_eq!(core.body["fillingLevel"]["value"], 0.5);
    let mine = app.call_with(Method::GET, &format!("/entities/{id}"), Some(&app.writer_a), None, &with_link).await;
    assert_eq!(mine.body["type"], "Conteneur");
    assert_eq!(mine.body["niveau"]["value"], 0.5);
    assert!(mine.headers["link"].to_str().unwrap().contains(&url));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let cached = app.get("/jsonldContexts?kind=cached&details=true", None).await;
    let entry = cached.body.as_array().unwrap().iter().find(|c| c["URL"] == url.as_str()).cloned();
    let entry = entry.unwrap_or_else(|| panic!("{:?}", cached.body));
    assert_eq!(entry["kind"], "Cached");
    let local = entry["localId"].as_str().unwrap().to_owned();
    // The server stops: the context keeps working, for everyone, from the store.
    server.abort();
    let _ = server.await;
    assert!(reqwest::get(&url).await.is_err(), "the context server is down");
    let offline = app.call_with(Method::GET, "/entities?type=Conteneur&q=niveau>0.1", None, None, &with_link).await;
    assert_eq!(offline.status, 200, "{:?}", offline.body);
    let offline = app.call_with(Method::GET, &format!("/entities/{id}"), Some(&app.reader_a), None, &with_link).await;
    assert_eq!(offline.body["niveau"]["value"], 0.5, "{:?}", offline.body);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let served = app.get(&format!("/jsonldContexts/{local}"), None).await;
    assert_eq!(served.headers["content-type"], "application/ld+json");
    assert_eq!(served.body, doc);
    // Reloading needs the server; deleting needs an operator.
    let reload =
        app.call(Method::DELETE, &format!("/jsonldContexts/{local}?reload=true"), Some(&app.writer_a), None).await;
    assert_error(&reload, 503, "LdContextNotAvailable");
    assert_error(&app.call(Method::DELETE, &format!("/jsonldContexts/{local}"), None, None).await, 401, "Unauthorized");
    assert_error(
        &app.call(Method::DELETE, &format!("/jsonldContexts/{local}"), Some(&app.reader_a), None).await,
        403,
        "Forbidden",
    );
    assert_eq!(
        app.call(Method::DELETE, &format!("/jsonldContexts/{local}"), Some(&app.writer_a), None).await.status,
        204
    );
    assert_error(&app.get(&format!("/jsonldContexts/{local}"), None).await, 404, "ResourceNotFound");
    let gone = app.call_with(Method::GET, &format!("/entities/{id}"), Some(&app.writer_a), None, &with_link).await;
    assert_error(&gone, 503, "LdContextNotAvailable");
    // A URL nobody answers, and a document too large.
    let dead = "<http://127.0.0.1:9/ctx.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"";
    let a = app.call_with(Method::GET, "/entities?type=X", Some(&app.writer_a), None, &[("link", dead)]).await;
    assert_error(&a, 503, "LdContextNotAvailable");
    let big = json!({"@context": {"x": "y".repeat(1 << 20)}}).to_string();
    let (big_url, _, big_server) = context_server(big).await;
    let big_link = format!("<{big_url}>; rel=\"http://www.w3.org/ns/json-ld#context\"");
    let a = app.call_with(Method::GET, "/entities?type=X", Some(&app.writer_a), None, &[("link", &big_link)]).await;
    assert_error(&a, 503, "LdContextNotAvailable");
    assert!(a.body["detail"].as_str().unwrap().contains("larger than"), "{:?}", a.body);
    big_server.abort();
    // Hosting a context: operators only; then it serves by its URL.
    let hosted = json!({"@context": {"remplissage": "https://uri.etsi.org/ngsi-ld/default-context/fillingLevel"}});
    assert_error(&app.call(Method::POST, "/jsonldContexts", None, Some(hosted.clone())).await, 401, "Unauthorized");
    assert_error(
        &app.call(Method::POST, "/jsonldContexts", Some(&app.reader_a), Some(hosted.clone())).await,
        403,
        "Forbidden",
    );
    assert_error(
        &app.call(Method::POST, "/jsonldContexts", Some(&app.writer_a), Some(json!({"pas": "de contexte"}))).await,
        400,
        "BadRequestData",
    );
    let made = app.call(Method::POST, "/jsonldContexts", Some(&app.writer_a), Some(hosted.clone())).await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let location = made.headers["location"].to_str().unwrap().to_owned();
    let hosted_id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(app.get(&format!("/jsonldContexts/{hosted_id}"), None).await.body, hosted);
    let hosted_link = format!("<{location}>; rel=\"http://www.w3.org/ns/json-ld#context\"");
    let a = app.call_with(Method::GET, &format!("/entities/{id}"), None, None, &[("link", &hosted_link)]).await;
    assert_eq!(a.status, 404, "anonymous: the container is private to commune A");
    let a = app
        .call_with(Method::GET, &format!("/entities/{id}"), Some(&app.writer_a), None, &[("link", &hosted_link)])
        .await;
    assert_eq!(a.body["remplissage"]["value"], 0.5, "{:?}", a.body);
    let listed = app.get("/jsonldContexts?kind=hosted", None).await;
    assert_eq!(listed.body, json!([location]));
    assert_error(&app.get("/jsonldContexts?kind=autre", None).await, 400, "BadRequestData");
    let reload =
        app.call(Method::DELETE, &format!("/jsonldContexts/{hosted_id}?reload=true"), Some(&app.writer_a), None).await;
    assert_error(&reload, 400, "BadRequestData");
    assert_error(
        &app.call(Method::DELETE, "/jsonldContexts/ngsi-ld-core-context-v1.9", Some(&app.writer_a), None).await,
        400,
        "BadRequestData",
    );
}

/// Alerts are `Alert` entities for whom sees them (policy/alerts.rs), read-only.
async fn alerts_as_entities(app: &App) {
    let s = &app.store.store;
    let now = Utc::now();
    let open = |entity: &str, org: &str, severity: &str| socle_storage::AlertWrite::Open {
        rule: format!("regle-{severity}"),
        entity: EntityId::parse(entity).unwrap(),
        entity_type: EntityId::parse(entity).unwrap().type_segment().to_owned(),
        organisation: OrganisationId::parse(org).unwrap(),
        severity: severity.into(),
        at: now,
        since: now - Duration::minutes(20),
        value: Some(12.0),
        message_fr: "Consommation au-dessus du seuil".into(),
        message_en: "Consumption above the threshold".into(),
    };
    s.record_transitions(
        &[
            open(METER, "commune-a", "high"),
            open("urn:ngsi-ld:SmartMeteringObservation:m-05", "commune-a", "low"),
            open("urn:ngsi-ld:Building:b-mairie", "commune-b", "high"),
        ],
        None,
    )
    .await
    .unwrap();
    // Never public.
    let anon = app.get("/entities?type=Alert&count=true", None).await;
    assert_eq!(anon.status, 200, "{:?}", anon.body);
    assert_eq!(anon.headers["ngsild-results-count"], "0");
    assert_eq!(app.get("/types", None).await.body["typeList"], json!(["SmartMeteringObservation"]));
    // Commune A's members see A's two.
    let a = app.get("/entities?type=Alert&count=true", Some(&app.reader_a)).await;
    assert_eq!(a.headers["ngsild-results-count"], "2", "{:?}", a.body);
    let high = app
        .get(
            "/entities?type=Alert&q=severity==%22high%22&options=keyValues&attrs=severity,alertSource",
            Some(&app.reader_a),
        )
        .await;
    assert_eq!(high.body.as_array().unwrap().len(), 1, "{:?}", high.body);
    let alert_id = high.body[0]["id"].as_str().unwrap().to_owned();
    assert!(alert_id.starts_with("urn:ngsi-ld:Alert:commune-a:"), "{alert_id}");
    assert_eq!(high.body[0]["severity"], "high");
    assert_eq!(high.body[0]["alertSource"], METER);
    assert_eq!(high.body[0].as_object().unwrap().len(), 4, "{:?}", high.body);
    let one = app.get(&format!("/entities/{alert_id}"), Some(&app.writer_a)).await;
    assert_eq!(one.status, 200, "{:?}", one.body);
    assert_eq!(one.body["type"], "Alert");
    assert_eq!(one.body["category"]["value"], "environment");
    assert_eq!(one.body["description"]["value"], "Consommation au-dessus du seuil");
    assert_eq!(one.body["location"]["value"]["type"], "Point");
    assert!(app.get("/types", Some(&app.reader_a)).await.body["typeList"]
        .as_array()
        .unwrap()
        .contains(&json!("Alert")));
    let temporal = app.get("/temporal/entities?type=Alert", Some(&app.reader_a)).await;
    assert_eq!(temporal.status, 200, "{:?}", temporal.body);
    assert_eq!(temporal.body.as_array().unwrap().len(), 2, "alerts have no series, but are listed");
    // Others: B sees its own only; nobody sees through a tenant they do not reach; anonymous sees none.
    let b = app.get("/entities?type=Alert&count=true", Some(&app.writer_b)).await;
    assert_eq!(b.headers["ngsild-results-count"], "1");
    assert_error(&app.get(&format!("/entities/{alert_id}"), Some(&app.writer_b)).await, 404, "ResourceNotFound");
    assert_error(&app.get(&format!("/entities/{alert_id}"), None).await, 404, "ResourceNotFound");
    let tenant = app
        .call_with(
            Method::GET,
            "/entities?type=Alert&count=true",
            Some(&app.writer_a),
            None,
            &[("NGSILD-Tenant", "commune-b")],
        )
        .await;
    assert_eq!(tenant.headers["ngsild-results-count"], "0");
    // Mixed with entities, in id order, paged across both.
    let mixed =
        app.get("/entities?type=Alert,SmartMeteringObservation&count=true&limit=3&offset=1", Some(&app.reader_a)).await;
    assert_eq!(mixed.headers["ngsild-results-count"], "14");
    assert_eq!(mixed.body[0]["type"], "Alert", "{:?}", mixed.body);
    assert_eq!(mixed.body[1]["id"], "urn:ngsi-ld:SmartMeteringObservation:m-00");
    // Read-only.
    let patch = app
        .call(
            Method::PATCH,
            &format!("/entities/{alert_id}/attrs"),
            Some(&app.writer_a),
            Some(json!({"severity": "low"})),
        )
        .await;
    assert_error(&patch, 422, "OperationNotSupported");
    assert_error(
        &app.call(Method::DELETE, &format!("/entities/{alert_id}"), Some(&app.writer_a), None).await,
        422,
        "OperationNotSupported",
    );
    let create = app
        .call(
            Method::POST,
            "/entities",
            Some(&app.writer_a),
            Some(json!({"id": "urn:ngsi-ld:Alert:faux", "type": "Alert"})),
        )
        .await;
    assert_error(&create, 422, "OperationNotSupported");
    let still = app.get(&format!("/entities/{alert_id}?options=keyValues&attrs=severity"), Some(&app.writer_a)).await;
    assert_eq!(still.body["severity"], "high");
}

/// LanguageProperty and ListProperty are stored as such and come back the same;
/// `lang` picks a language; `q` sees every language and every list item.
async fn language_and_list_properties(app: &App) {
    let id = "urn:ngsi-ld:Building:mairie-a";
    let body = json!({"id": id, "type": "Building",
        "label": {"type": "LanguageProperty", "languageMap": {"fr": "Mairie", "en": "Town hall"}},
        "openingDays": {"type": "ListProperty", "valueList": ["lundi", "mardi"]}});
    let created = app.call(Method::POST, "/entities", Some(&app.writer_a), Some(body.clone())).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let got = app.get(&format!("/entities/{id}"), Some(&app.writer_a)).await;
    assert_eq!(got.body["label"], body["label"]);
    assert_eq!(got.body["openingDays"], body["openingDays"]);
    let en = app.get(&format!("/entities/{id}?lang=en"), Some(&app.writer_a)).await;
    assert_eq!(en.body["label"], json!({"type": "Property", "value": "Town hall", "lang": "en"}));
    let kv = app.get(&format!("/entities/{id}?lang=fr&options=keyValues"), Some(&app.writer_a)).await;
    assert_eq!(kv.body["label"], "Mairie");
    let concise = app.get(&format!("/entities/{id}?options=concise"), Some(&app.writer_a)).await;
    assert_eq!(concise.body["openingDays"], json!({"valueList": ["lundi", "mardi"]}));
    for (q, n) in [
        ("label==%22Town%20hall%22", "1"),
        ("label==Mairie", "1"),
        ("openingDays==mardi", "1"),
        ("openingDays==dimanche", "0"),
    ] {
        let a = app.get(&format!("/entities?type=Building&q={q}&count=true"), Some(&app.writer_a)).await;
        assert_eq!(a.headers["ngsild-results-count"], n, "{q}: {:?}", a.body);
    }
    let patch = json!({"label": {"type": "LanguageProperty", "languageMap": {"fr": "Hôtel de ville"}}});
    let a = app.call(Method::PATCH, &format!("/entities/{id}/attrs"), Some(&app.writer_a), Some(patch)).await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let got = app.get(&format!("/entities/{id}?attrs=label&options=keyValues"), Some(&app.writer_a)).await;
    assert_eq!(got.body["label"], json!({"languageMap": {"fr": "Hôtel de ville"}}));
    let types = app.get("/attributes/openingDays", Some(&app.writer_a)).await;
    assert_eq!(types.body["attributeTypes"], json!(["ListProperty"]));
    let bad = json!({"label": {"type": "LanguageProperty", "languageMap": {"fr": 1}}});
    assert_error(
        &app.call(Method::POST, &format!("/entities/{id}/attrs"), Some(&app.writer_a), Some(bad)).await,
        400,
        "BadRequestData",
    );
}

/// Refusals of the gate are NGSI-LD errors; details in French on request.
async fn errors_shape_and_language(app: &App) {
    let bad = app.get("/entities?type=Building", Some("pas-un-jeton")).await;
    assert_error(&bad, 401, "Unauthorized");
    assert_eq!(bad.body["title"], "Unauthorized");
    assert!(bad.body["detail"].as_str().unwrap().starts_with("A valid API token"), "{:?}", bad.body);
    let fr = app
        .call_with(
            Method::GET,
            "/entities?type=Building",
            Some("pas-un-jeton"),
            None,
            &[("accept-language", "fr-FR,fr;q=0.9,en;q=0.5")],
        )
        .await;
    assert_error(&fr, 401, "Unauthorized");
    assert_eq!(fr.body["title"], "Unauthorized");
    assert!(fr.body["detail"].as_str().unwrap().starts_with("Authentification requise"), "{:?}", fr.body);
    let missing = "/entities/urn:ngsi-ld:Building:nulle-part";
    let en = app.call_with(Method::GET, missing, None, None, &[("accept-language", "en-GB,fr;q=0.5")]).await;
    assert_eq!(en.body["detail"], "Entity urn:ngsi-ld:Building:nulle-part was not found");
    let fr = app.call_with(Method::GET, missing, None, None, &[("accept-language", "fr")]).await;
    assert_error(&fr, 404, "ResourceNotFound");
    assert_eq!(fr.headers["content-language"], "fr");
    assert_eq!(fr.body["detail"], "Ressource introuvable. (Entity urn:ngsi-ld:Building:nulle-part was not found)");
    // Successful answers are left alone.
    let ok = app.call_with(Method::GET, &format!("/entities/{METER}"), None, None, &[("accept-language", "fr")]).await;
    assert_eq!(ok.body["id"], METER);
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&super::App::start(TestStore::sqlite().await).await).await; }
        )* use socle_storage::testing::TestStore; }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&super::App::start(TestStore::postgres().await).await).await; }
        )* use socle_storage::testing::TestStore; }
    };
}

both_backends!(
    reading_socle_entities,
    querying,
    writing,
    batches,
    discovery,
    history,
    measurements_reach_the_live_feed,
    q_in_storage,
    user_contexts,
    alerts_as_entities,
    language_and_list_properties,
    errors_shape_and_language
);
