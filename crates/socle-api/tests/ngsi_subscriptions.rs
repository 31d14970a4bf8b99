//! NGSI-LD subscriptions over real HTTP on loopback, on both storage
//! backends: the CRUD shapes and errors of ETSI GS CIM 009 5.8, who may see
//! and change a subscription, and notifications end to end — an update
//! through the NGSI-LD API is matched by the running matcher (q, watched
//! attributes, the owner's visibility), written to the outbox and POSTed to
//! a loopback receiver, or published on a real Mosquitto.

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::http::HeaderMap as AxumHeaders;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::AppState;
use socle_domain::{
    ApiToken, Attribute, Email, Entity, EntityId, EntityType, Geometry, NewOrganisation, OfficialCode, OrganisationId,
    OrganisationKind, Role, TokenKind, TokenScope, Visibility,
};
use socle_ngsi_notify::{Deliverer, MatcherHandle, SubscriptionsConfig};
use socle_storage::testing::TestStore;
use socle_storage::DynStore;
use tokio_util::sync::CancellationToken;

struct App {
    base: String,
    http: reqwest::Client,
    store: TestStore,
    matcher: MatcherHandle,
    /// Agent of commune A (write), agent of commune A with a read token, agent of commune B (write).
    writer_a: String,
    reader_a: String,
    writer_b: String,
    _stop: tokio_util::sync::DropGuard,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
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

const BIN: &str = "urn:ngsi-ld:WasteContainer:a-verre-1";
const PRIVATE_BIN: &str = "urn:ngsi-ld:WasteContainer:a-prive-1";

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
        let ty = EntityType::parse("WasteContainer").unwrap();
        let mut public =
            Entity::new(EntityId::parse(BIN).unwrap(), ty.clone(), OrganisationId::parse("commune-a").unwrap());
        public.visibility = Visibility::Public;
        public.location = Some(Geometry::Point([0.34, 46.58]));
        let private =
            Entity::new(EntityId::parse(PRIVATE_BIN).unwrap(), ty, OrganisationId::parse("commune-a").unwrap());
        s.upsert_entities(&[
            public.with("name", Attribute::property("Verre place du marché")).unwrap(),
            private.with("name", Attribute::property("Bac du dépôt")).unwrap(),
        ])
        .await
        .unwrap();
        let writer_a = token(s, "agent-a@test.fr", "commune-a", Role::Agent, TokenScope::Write).await;
        let reader_a = token(s, "lecteur-a@test.fr", "commune-a", Role::Agent, TokenScope::Read).await;
        let writer_b = token(s, "agent-b@test.fr", "commune-b", Role::Agent, TokenScope::Write).await;

        let state = AppState::new(t.store.clone());
        let stop = CancellationToken::new();
        let config = SubscriptionsConfig {
            retry_base: StdDuration::from_millis(200),
            retry_max: StdDuration::from_millis(400),
            poll_interval: StdDuration::from_millis(100),
            http_timeout: StdDuration::from_secs(2),
            // Rights are read again at every change (the default reuses them 30 s).
            viewer_ttl: StdDuration::ZERO,
            ..SubscriptionsConfig::default()
        };
        let (matcher, _task) = socle_ngsi_notify::start(
            t.store.clone(),
            state.pipeline().feed(),
            state.ngsi_subscription_visibility(),
            config.clone(),
            stop.clone(),
        )
        .await
        .unwrap();
        let deliverer = Arc::new(Deliverer::new(t.store.clone(), config, matcher.wake()));
        tokio::spawn(deliverer.run(stop.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(socle_api::serve(listener, state, std::future::pending()));
        Self {
            base,
            http: reqwest::Client::new(),
            store: t,
            matcher,
            writer_a,
            reader_a,
            writer_b,
            _stop: stop.drop_guard(),
        }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}/ngsi-ld/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            let ct = if b.get("@context").is_some() { "application/ld+json" } else { "application/json" };
            req = req.header("content-type", ct).body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    /// Sets the fill level of a bin through NGSI-LD, as a sensor gateway would.
    async fn fill(&self, id: &str, level: f64, at: &str) {
        let body = json!({"fillingLevel": {"type": "Property", "value": level, "observedAt": at}});
        let a = self.call(Method::POST, &format!("/entities/{id}/attrs"), Some(&self.writer_a), Some(body)).await;
        assert_eq!(a.status, 204, "{:?}", a.body);
    }
}

fn assert_error(a: &Answer, status: u16, kind: &str) {
    assert_eq!(a.status.as_u16(), status, "{:?}", a.body);
    assert_eq!(a.body["type"], format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"), "{:?}", a.body);
}

fn subscription(uri: &str) -> Value {
    json!({
        "type": "Subscription",
        "subscriptionName": "Collecte nord",
        "description": "Conteneurs presque pleins",
        "entities": [{"type": "WasteContainer"}],
        "watchedAttributes": ["fillingLevel"],
        "q": "fillingLevel>0.8",
        "notification": {
            "attributes": ["fillingLevel", "name"],
            "format": "normalized",
            "endpoint": {"uri": uri, "accept": "application/json",
                         "receiverInfo": [{"key": "X-Collecte", "value": "tournee-nord"}]}
        }
    })
}

async fn crud_and_errors(app: &App) {
    // Created with a generated id, 201 + Location.
    let a =
        app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(subscription("http://127.0.0.1:9/n"))).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let location = a.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:"), "{location}");
    let id = location.trim_start_matches("/ngsi-ld/v1/subscriptions/").to_owned();
    let got = app.call(Method::GET, &format!("/subscriptions/{id}"), Some(&app.writer_a), None).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(got.body["id"], id.as_str());
    assert_eq!(got.body["type"], "Subscription");
    assert_eq!(got.body["status"], "active");
    assert_eq!(got.body["isActive"], true);
    assert_eq!(got.body["q"], "fillingLevel>0.8");
    assert_eq!(got.body["subscriptionName"], "Collecte nord");
    assert_eq!(got.body["description"], "Conteneurs presque pleins");
    assert_eq!(got.body["entities"], json!([{"type": "WasteContainer"}]));
    assert_eq!(got.body["watchedAttributes"], json!(["fillingLevel"]));
    assert_eq!(got.body["notification"]["format"], "normalized");
    assert_eq!(got.body["notification"]["timesSent"], 0);
    assert_eq!(got.body["notification"]["status"], "ok");
    assert_eq!(got.body["notification"]["endpoint"]["receiverInfo"][0]["key"], "X-Collecte");
    assert!(got.headers["link"].to_str().unwrap().contains("ngsi-ld-core-context"));
    // The read token of the same commune reads it too.
    assert_eq!(app.call(Method::GET, &format!("/subscriptions/{id}"), Some(&app.reader_a), None).await.status, 200);

    // A chosen id; the same id again is AlreadyExists, whoever holds it.
    let mut named = subscription("mqtt://127.0.0.1:1883/socle/bacs");
    named["id"] = json!("urn:ngsi-ld:Subscription:bacs-pleins");
    let a = app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(named.clone())).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_error(
        &app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(named.clone())).await,
        409,
        "AlreadyExists",
    );
    assert_error(
        &app.call(Method::POST, "/subscriptions", Some(&app.writer_b), Some(named)).await,
        409,
        "AlreadyExists",
    );

    // Listing: paging and count.
    let list = app.call(Method::GET, "/subscriptions?limit=1&count=true", Some(&app.writer_a), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.headers["ngsild-results-count"], "2");
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["id"], id.as_str(), "oldest first");
    let second = app.call(Method::GET, "/subscriptions?limit=5&offset=1", Some(&app.writer_a), None).await;
    assert_eq!(second.body[0]["id"], "urn:ngsi-ld:Subscription:bacs-pleins");
    assert_error(
        &app.call(Method::GET, "/subscriptions?limit=abc", Some(&app.writer_a), None).await,
        400,
        "BadRequestData",
    );

    // Invalid bodies.
    for (what, body) in [
        (
            "type",
            json!({"type": "Abonnement", "entities": [{"type": "T"}], "notification": {"endpoint": {"uri": "http://x/y"}}}),
        ),
        ("no endpoint", json!({"type": "Subscription", "entities": [{"type": "T"}], "notification": {}})),
        (
            "bad q",
            json!({"type": "Subscription", "entities": [{"type": "T"}], "q": "((", "notification": {"endpoint": {"uri": "http://x/y"}}}),
        ),
        (
            "scheme",
            json!({"type": "Subscription", "entities": [{"type": "T"}], "notification": {"endpoint": {"uri": "file:///etc/passwd"}}}),
        ),
        (
            "past",
            json!({"type": "Subscription", "entities": [{"type": "T"}], "expiresAt": "2001-01-01T00:00:00Z", "notification": {"endpoint": {"uri": "http://x/y"}}}),
        ),
        (
            "periodic+watched",
            json!({"type": "Subscription", "watchedAttributes": ["a"], "timeInterval": 60, "notification": {"endpoint": {"uri": "http://x/y"}}}),
        ),
    ] {
        let a = app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(body)).await;
        assert_eq!(a.status, 400, "{what}: {:?}", a.body);
        assert_eq!(a.body["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData", "{what}");
    }
    let not_json = app
        .http
        .post(format!("{}/ngsi-ld/v1/subscriptions", app.base))
        .bearer_auth(&app.writer_a)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    // Who may: anonymous 401; another commune sees nothing (404 like absent), lists none.
    assert_error(
        &app.call(Method::POST, "/subscriptions", None, Some(subscription("http://x/y"))).await,
        401,
        "Unauthorized",
    );
    assert_error(&app.call(Method::GET, "/subscriptions", None, None).await, 401, "Unauthorized");
    let hidden = app.call(Method::GET, &format!("/subscriptions/{id}"), Some(&app.writer_b), None).await;
    assert_error(&hidden, 404, "ResourceNotFound");
    let absent =
        app.call(Method::GET, "/subscriptions/urn:ngsi-ld:Subscription:absente", Some(&app.writer_b), None).await;
    assert_error(&absent, 404, "ResourceNotFound");
    assert_eq!(app.call(Method::GET, "/subscriptions", Some(&app.writer_b), None).await.body, json!([]));
    let patch = json!({"isActive": false});
    assert_error(
        &app.call(Method::PATCH, &format!("/subscriptions/{id}"), Some(&app.writer_b), Some(patch.clone())).await,
        404,
        "ResourceNotFound",
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/subscriptions/{id}"), Some(&app.writer_b), None).await,
        404,
        "ResourceNotFound",
    );
    // A read token reads but does not change.
    assert_error(
        &app.call(Method::PATCH, &format!("/subscriptions/{id}"), Some(&app.reader_a), Some(patch.clone())).await,
        403,
        "Forbidden",
    );
    // Tenants: commune B's tenant holds none of A's subscriptions.
    let tenant_b = app
        .http
        .get(format!("{}/ngsi-ld/v1/subscriptions/{id}", app.base))
        .bearer_auth(&app.writer_a)
        .header("NGSILD-Tenant", "commune-b")
        .send()
        .await
        .unwrap();
    assert_eq!(tenant_b.status(), 404);

    // PATCH: pause, then a bad fragment changes nothing.
    let a = app.call(Method::PATCH, &format!("/subscriptions/{id}"), Some(&app.writer_a), Some(patch)).await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let got = app.call(Method::GET, &format!("/subscriptions/{id}"), Some(&app.writer_a), None).await;
    assert_eq!(got.body["status"], "paused");
    assert_eq!(got.body["q"], "fillingLevel>0.8", "members not in the fragment are kept");
    let bad =
        app.call(Method::PATCH, &format!("/subscriptions/{id}"), Some(&app.writer_a), Some(json!({"q": "(("}))).await;
    assert_error(&bad, 400, "BadRequestData");
    assert_eq!(
        app.call(Method::GET, &format!("/subscriptions/{id}"), Some(&app.writer_a), None).await.body["q"],
        "fillingLevel>0.8"
    );

    // DELETE, then it is gone.
    assert_eq!(app.call(Method::DELETE, &format!("/subscriptions/{id}"), Some(&app.writer_a), None).await.status, 204);
    assert_error(
        &app.call(Method::GET, &format!("/subscriptions/{id}"), Some(&app.writer_a), None).await,
        404,
        "ResourceNotFound",
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/subscriptions/{id}"), Some(&app.writer_a), None).await,
        404,
        "ResourceNotFound",
    );
}

type Received = Arc<Mutex<Vec<(AxumHeaders, Value)>>>;

/// A loopback receiver that records every notification (headers and body).
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/notifications",
        axum::routing::post(move |headers: AxumHeaders, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notifications", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + StdDuration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// The subscription once `pred` holds of it.
async fn wait_subscription(app: &App, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + StdDuration::from_secs(20);
    loop {
        let s = app.call(Method::GET, &format!("/subscriptions/{id}"), Some(&app.writer_a), None).await;
        if pred(&s.body) {
            return s.body;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", s.body);
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

async fn notifications_over_http(app: &App) {
    let (url, got) = receiver().await;
    // Commune A's subscription, and commune B's on the same type: B sees A's public bin, not its private one.
    let a = app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(subscription(&url))).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let sub_a = a.headers["location"].to_str().unwrap().trim_start_matches("/ngsi-ld/v1/subscriptions/").to_owned();
    let mut for_b = subscription(&url);
    for_b["id"] = json!("urn:ngsi-ld:Subscription:commune-b");
    for_b["notification"]["endpoint"]["receiverInfo"] = json!([{"key": "X-Collecte", "value": "commune-b"}]);
    assert_eq!(app.call(Method::POST, "/subscriptions", Some(&app.writer_b), Some(for_b)).await.status, 201);

    let t0 = Utc::now();
    let at = |s: i64| (t0 + Duration::seconds(s)).to_rfc3339();
    app.fill(BIN, 0.5, &at(1)).await; // q not met: nothing
    app.fill(BIN, 0.93, &at(2)).await; // both subscriptions
    app.fill(PRIVATE_BIN, 0.95, &at(3)).await; // commune A only
    app.matcher.flush().await.unwrap();
    let seen = wait_for("three notifications", || {
        let g = got.lock().unwrap();
        (g.len() >= 3).then(|| g.clone())
    })
    .await;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let seen_now = got.lock().unwrap().clone();
    assert_eq!(seen_now.len(), 3, "no other notification: {seen_now:?}");
    let of = |receiver: &str| -> Vec<Value> {
        seen.iter()
            .filter(|(h, _)| h.get("x-collecte").and_then(|v| v.to_str().ok()) == Some(receiver))
            .map(|(_, b)| b.clone())
            .collect()
    };
    let a_bodies = of("tournee-nord");
    let b_bodies = of("commune-b");
    assert_eq!(a_bodies.len(), 2, "{seen:?}");
    assert_eq!(b_bodies.len(), 1, "the private bin is not notified to commune B: {seen:?}");
    assert_eq!(b_bodies[0]["data"][0]["id"], BIN);
    for body in &a_bodies {
        assert_eq!(body["type"], "Notification");
        assert_eq!(body["subscriptionId"], sub_a.as_str());
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("urn:ngsi-ld:Notification:"), "{id}");
        assert!(body["notifiedAt"].is_string());
        let e = &body["data"][0];
        assert_eq!(e["type"], "WasteContainer");
        assert!(e["fillingLevel"]["value"].as_f64().unwrap() > 0.8);
        assert_eq!(e["fillingLevel"]["type"], "Property");
        assert!(e.get("location").is_none(), "only the attributes asked for");
    }
    let ids: std::collections::BTreeSet<&str> = a_bodies.iter().map(|b| b["data"][0]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [BIN, PRIVATE_BIN].into_iter().collect());
    let headers = &seen[0].0;
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers["link"].to_str().unwrap().contains("ngsi-ld-core-context"));

    // Status members follow the deliveries.
    let sub = wait_subscription(app, &sub_a, "the counters", |s| s["notification"]["timesSent"] == 2).await;
    assert_eq!(sub["notification"]["status"], "ok");
    assert_eq!(sub["notification"]["timesFailed"], 0);
    assert!(sub["notification"]["lastSuccess"].is_string());
    assert!(sub["notification"]["lastNotification"].is_string());

    // The outbox holds each notification once; sending the same change again writes nothing new.
    let rows = app.store.store.list_ngsi_notifications(Some(&sub_a), 100).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.delivered_at.is_some()));
    app.fill(BIN, 0.93, &at(2)).await;
    app.matcher.flush().await.unwrap();
    assert_eq!(app.store.store.list_ngsi_notifications(Some(&sub_a), 100).await.unwrap().len(), 2);

    // A paused subscription notifies nothing; an unreachable receiver counts failures.
    let patch = json!({"isActive": false});
    assert_eq!(
        app.call(Method::PATCH, "/subscriptions/urn:ngsi-ld:Subscription:commune-b", Some(&app.writer_b), Some(patch))
            .await
            .status,
        204
    );
    let dead = "http://127.0.0.1:9/nobody";
    let a = app
        .call(
            Method::PATCH,
            &format!("/subscriptions/{sub_a}"),
            Some(&app.writer_a),
            Some(json!({"notification": {"endpoint": {"uri": dead}}})),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let before = got.lock().unwrap().len();
    app.fill(BIN, 0.97, &at(4)).await;
    app.matcher.flush().await.unwrap();
    let failed = wait_subscription(app, &sub_a, "a failure recorded", |s| {
        s["notification"]["timesFailed"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(failed["notification"]["status"], "failed");
    assert!(failed["notification"]["lastFailure"].is_string());
    assert_eq!(failed["notification"]["endpoint"]["accept"], "application/json", "the endpoint was merged");
    assert_eq!(got.lock().unwrap().len(), before, "paused: commune B got nothing");
    // The receiver comes back (the endpoint is moved back): the same notification arrives.
    let a = app
        .call(
            Method::PATCH,
            &format!("/subscriptions/{sub_a}"),
            Some(&app.writer_a),
            Some(json!({"notification": {"endpoint": {"uri": url}}})),
        )
        .await;
    assert_eq!(a.status, 204);
    let late = wait_for("the retried notification", || {
        let g = got.lock().unwrap();
        (g.len() > before).then(|| g[before].1.clone())
    })
    .await;
    assert_eq!(late["data"][0]["fillingLevel"]["value"], 0.97);
    let pending = app.store.store.list_ngsi_notifications(Some(&sub_a), 100).await.unwrap();
    let retried = pending.iter().find(|r| r.notification.body["id"] == late["id"]).expect("the retried row");
    assert!(retried.attempts >= 2, "{retried:?}");
}

async fn notifications_over_mqtt(app: &App) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = socle_mqtt::testing::Broker::start();
    let mut options = MqttOptions::new("test-ngsi-listener", "127.0.0.1", broker.port);
    options.set_keep_alive(StdDuration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe("socle/bacs", QoS::AtLeastOnce).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.qos, p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.send((QoS::AtMostOnce, b"suback".to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(StdDuration::from_millis(100)).await,
            }
        }
    });
    let (_, first) = tokio::time::timeout(StdDuration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    assert_eq!(first, b"suback");

    let mut body = subscription(&format!("mqtt://127.0.0.1:{}/socle/bacs", broker.port));
    body["notification"]["format"] = json!("keyValues");
    body["notification"]["endpoint"]["accept"] = json!("application/ld+json");
    let a = app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(body)).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    app.fill(BIN, 0.91, &Utc::now().to_rfc3339()).await;
    app.matcher.flush().await.unwrap();
    let (qos, payload) =
        tokio::time::timeout(StdDuration::from_secs(20), rx.recv()).await.expect("an MQTT notification").unwrap();
    assert_eq!(qos, QoS::AtLeastOnce);
    let msg: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(msg["metadata"]["Content-Type"], "application/ld+json");
    assert_eq!(msg["metadata"]["X-Collecte"], "tournee-nord");
    assert_eq!(msg["body"]["type"], "Notification");
    assert!(msg["body"]["@context"].to_string().contains("ngsi-ld-core-context"));
    assert_eq!(msg["body"]["data"][0]["id"], BIN);
    assert_eq!(msg["body"]["data"][0]["fillingLevel"], 0.91, "keyValues");
    let sub_id = msg["body"]["subscriptionId"].as_str().unwrap().to_owned();
    let sub =
        wait_subscription(app, &sub_id, "the MQTT delivery recorded", |s| s["notification"]["timesSent"] == 1).await;
    assert_eq!(sub["notification"]["status"], "ok");
}

async fn periodic_notifications(app: &App) {
    let (url, got) = receiver().await;
    let body = json!({
        "type": "Subscription",
        "entities": [{"type": "WasteContainer", "idPattern": ".*verre.*"}],
        "timeInterval": 1,
        "notification": {"format": "concise", "endpoint": {"uri": url}},
    });
    let a = app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(body)).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let seen = wait_for("two periodic notifications", || {
        let g = got.lock().unwrap();
        (g.len() >= 2).then(|| g.clone())
    })
    .await;
    for (_, b) in &seen {
        let data = b["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "only the bin the pattern selects: {b}");
        assert_eq!(data[0]["id"], BIN);
    }
    assert_ne!(seen[0].1["id"], seen[1].1["id"], "one notification per period");
}

async fn throttling_expiry_and_triggers(app: &App) {
    let (url, got) = receiver().await;
    let post = |body: Value| app.call(Method::POST, "/subscriptions", Some(&app.writer_a), Some(body));
    // At most one notification an hour.
    let mut throttled = subscription(&url);
    throttled["throttling"] = json!(3600);
    throttled["notification"]["endpoint"]["receiverInfo"] = json!([{"key": "X-Collecte", "value": "throttled"}]);
    assert_eq!(post(throttled).await.status, 201);
    // Expires in a second.
    let mut expiring = subscription(&url);
    expiring["expiresAt"] = json!((Utc::now() + Duration::seconds(1)).to_rfc3339());
    expiring["notification"]["endpoint"]["receiverInfo"] = json!([{"key": "X-Collecte", "value": "expiring"}]);
    let a = post(expiring).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let expiring_id =
        a.headers["location"].to_str().unwrap().trim_start_matches("/ngsi-ld/v1/subscriptions/").to_owned();
    // Only about deletions: measurements do not trigger it.
    let mut deletions = subscription(&url);
    deletions["notificationTrigger"] = json!(["entityDeleted"]);
    deletions["notification"]["endpoint"]["receiverInfo"] = json!([{"key": "X-Collecte", "value": "deletions"}]);
    assert_eq!(post(deletions).await.status, 201);
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    let expired = app.call(Method::GET, &format!("/subscriptions/{expiring_id}"), Some(&app.writer_a), None).await;
    assert_eq!(expired.body["status"], "expired");

    let t0 = Utc::now();
    app.fill(BIN, 0.9, &t0.to_rfc3339()).await;
    app.fill(BIN, 0.95, &(t0 + Duration::seconds(1)).to_rfc3339()).await;
    app.matcher.flush().await.unwrap();
    wait_for("the first notification", || (!got.lock().unwrap().is_empty()).then_some(())).await;
    tokio::time::sleep(StdDuration::from_millis(800)).await;
    let seen = got.lock().unwrap().clone();
    let who: Vec<&str> = seen.iter().map(|(h, _)| h["x-collecte"].to_str().unwrap()).collect();
    assert_eq!(who, vec!["throttled"], "one notification in the throttling period; none expired or for deletions");
    assert_eq!(seen[0].1["data"][0]["fillingLevel"]["value"], 0.9);
}

async fn owner_rights_are_checked_at_each_change(app: &App) {
    let (url, got) = receiver().await;
    let mut for_b = subscription(&url);
    for_b["notification"]["endpoint"]["receiverInfo"] = json!([{"key": "X-Collecte", "value": "commune-b"}]);
    assert_eq!(app.call(Method::POST, "/subscriptions", Some(&app.writer_b), Some(for_b)).await.status, 201);
    let t0 = Utc::now();
    app.fill(BIN, 0.9, &t0.to_rfc3339()).await;
    app.matcher.flush().await.unwrap();
    wait_for("commune B told of the public bin", || (got.lock().unwrap().len() == 1).then_some(())).await;
    // The agent leaves commune B: its subscription tells nothing any more.
    let token = app.store.store.token_by_secret_hash(&hash_secret(&app.writer_b)).await.unwrap().unwrap();
    let b = OrganisationId::parse("commune-b").unwrap();
    assert!(app.store.store.revoke(token.user.unwrap(), &b, Role::Agent).await.unwrap());
    app.fill(BIN, 0.92, &(t0 + Duration::seconds(1)).to_rfc3339()).await;
    app.matcher.flush().await.unwrap();
    tokio::time::sleep(StdDuration::from_millis(800)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "no notification once the owner lost its rights");
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
    crud_and_errors,
    notifications_over_http,
    notifications_over_mqtt,
    periodic_notifications,
    throttling_expiry_and_triggers,
    owner_rights_are_checked_at_each_change,
);
