//! The alerting API over real HTTP, with the real alerting service on the
//! commit feed, on both backends: rules (create, read, replace, delete, the
//! 30-day preview), alerts (list and filters, detail with history, the
//! Smart Data Models form, acknowledge, assign, comment, resolve, each
//! announced on the service's broadcast and written to the audit trail),
//! subscriptions, webhooks and Web Push subscriptions; bad bodies answer
//! problem details; commune B's people neither see nor act on commune A's.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use socle_alerting::AlertingConfig;
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::AppState;
use socle_domain::{
    ApiToken, Attribute, AttributeName, Email, Entity, EntityId, EntityType, NewOrganisation, Observation,
    ObservedValue, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope, Visibility,
};
use socle_storage::testing::TestStore;
use socle_storage::{AlertEventKind, DynStore, RuleRecord};
use tokio_util::sync::CancellationToken;

fn org(id: &str, code: &str, parent: Option<&str>) -> NewOrganisation {
    NewOrganisation {
        id: OrganisationId::parse(id).unwrap(),
        kind: if parent.is_some() { OrganisationKind::Commune } else { OrganisationKind::Syndicat },
        name: id.into(),
        code: OfficialCode::parse(code).unwrap(),
        parent: parent.map(|p| OrganisationId::parse(p).unwrap()),
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    }
}

struct Person {
    id: String,
    token: String,
}

async fn person(s: &DynStore, email: &str, org: &str, role: Role, scope: TokenScope) -> Person {
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
    Person { id: u.id.to_string(), token: secret }
}

fn container(commune: &str) -> EntityId {
    EntityId::parse(&format!("urn:ngsi-ld:WasteContainer:{commune}-mairie")).unwrap()
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(&self, who: &Person, method: Method, path: &str, body: Option<&str>) -> (StatusCode, String, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&who.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let ct = res.headers().get("content-type").map_or(String::new(), |v| v.to_str().unwrap().to_owned());
        (status, ct, res.text().await.unwrap())
    }
    async fn get(&self, who: &Person, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.send(who, Method::GET, path, None).await;
        (s, serde_json::from_str(&b).unwrap_or(Value::Null))
    }
    async fn post(&self, who: &Person, path: &str, body: &Value) -> (StatusCode, Value) {
        let (s, _, b) = self.send(who, Method::POST, path, Some(&body.to_string())).await;
        (s, serde_json::from_str(&b).unwrap_or(Value::Null))
    }
}

fn observation(entity: &EntityId, value: f64, at: chrono::DateTime<Utc>) -> Observation {
    Observation {
        entity: entity.clone(),
        attribute: AttributeName::parse("fillingLevel").unwrap(),
        observed_at: at,
        value: ObservedValue::number(value).unwrap(),
        unit_code: None,
    }
}

fn fill_rule(id: &str, org: &str, percent: f64) -> Value {
    json!({
        "id": id, "organisation": org,
        "label": {"fr": "Conteneur", "en": "Container"},
        "target": {"type": "WasteContainer"}, "severity": "medium",
        "condition": {"type": "fill", "percent": percent, "clearPercent": 60.0},
    })
}

async fn scenario(t: TestStore) {
    let s = &t.store;
    s.upsert_organisation(&org("syndicat", "200046977", None)).await.unwrap();
    s.upsert_organisation(&org("commune-a", "86001", Some("syndicat"))).await.unwrap();
    s.upsert_organisation(&org("commune-b", "86002", Some("syndicat"))).await.unwrap();
    let ty = EntityType::parse("WasteContainer").unwrap();
    for commune in ["a", "b"] {
        let mut e =
            Entity::new(container(commune), ty.clone(), OrganisationId::parse(&format!("commune-{commune}")).unwrap())
                .with("name", Attribute::property(format!("le conteneur de la mairie {commune}")))
                .unwrap();
        // Public: an alert is still never shown outside the organisation's circle.
        e.visibility = Visibility::Public;
        e.location = Some(socle_domain::Geometry::Point([0.5, 46.5]));
        s.upsert_entities(&[e]).await.unwrap();
    }
    let admin_a = person(s, "admin-a@t.fr", "commune-a", Role::Admin, TokenScope::Admin).await;
    let agent_a = person(s, "agent-a@t.fr", "commune-a", Role::Agent, TokenScope::Write).await;
    let elu_a = person(s, "elu-a@t.fr", "commune-a", Role::Elected, TokenScope::Read).await;
    let agent_b = person(s, "agent-b@t.fr", "commune-b", Role::Agent, TokenScope::Write).await;

    let state = AppState::new(s.clone());
    let feed = state.pipeline().feed().clone();
    let stop = CancellationToken::new();
    let config = AlertingConfig { auto_tick: false, ..AlertingConfig::default() };
    let (alerting, _task) = socle_alerting::start(s.clone(), &feed, config, stop.clone()).await.unwrap();
    let mut changes = alerting.subscribe();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Api { base: format!("http://{}", listener.local_addr().unwrap()), client: reqwest::Client::new() };
    let served = state.clone();
    tokio::spawn(socle_api::serve(listener, served, std::future::pending()));

    // The Web Push key is served once the notifier gave it.
    let (status, _) = api.get(&agent_a, "/api/v1/push/vapid-public-key").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    state.set_vapid_public_key("BPublicKey".into());
    let (status, body) = api.get(&agent_a, "/api/v1/push/vapid-public-key").await;
    assert_eq!((status, body["publicKey"].as_str()), (StatusCode::OK, Some("BPublicKey")));
    state.attach_alerting(alerting.clone());
    // The installable app.
    let res = api.client.get(format!("{}/manifest.webmanifest", api.base)).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "application/manifest+json");
    let manifest: Value = res.json().await.unwrap();
    assert_eq!((manifest["start_url"].as_str(), manifest["display"].as_str()), (Some("/alertes"), Some("standalone")));
    assert_eq!(manifest["icons"][0]["src"], "/icone.svg");
    let res = api.client.get(format!("{}/sw.js", api.base)).send().await.unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(res.text().await.unwrap().contains("showNotification"));
    let res = api.client.get(format!("{}/icone.svg", api.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Rules: administrators of the organisation write them.
    let rule = fill_rule("conteneurs-a", "commune-a", 80.0);
    assert_eq!(api.post(&agent_a, "/api/v1/rules", &rule).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.post(&agent_b, "/api/v1/rules", &rule).await.0, StatusCode::FORBIDDEN);
    let (status, ct, body) = api.send(&admin_a, Method::POST, "/api/v1/rules", Some("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let mut wrong = rule.clone();
    wrong["condition"] = json!({"type": "fill", "percent": 180.0});
    let (status, problem) = api.post(&admin_a, "/api/v1/rules", &wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "invalid-rule");
    let mut unknown = rule.clone();
    unknown["colour"] = json!("red");
    assert_eq!(api.post(&admin_a, "/api/v1/rules", &unknown).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, created) = api.post(&admin_a, "/api/v1/rules", &rule).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["author"].as_str(), Some(admin_a.id.as_str()));
    assert_eq!(api.post(&admin_a, "/api/v1/rules", &rule).await.0, StatusCode::UNPROCESSABLE_ENTITY, "ids are unique");
    // Without an id, Socle chooses one.
    let mut anonymous_rule = fill_rule("x", "commune-a", 95.0);
    anonymous_rule.as_object_mut().unwrap().remove("id");
    anonymous_rule["enabled"] = json!(false);
    let (status, other) = api.post(&admin_a, "/api/v1/rules", &anonymous_rule).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_eq!(other["enabled"], false);
    let other_id = other["id"].as_str().unwrap().to_owned();
    // Commune B's rule, stored as the demo does.
    let now = Utc::now();
    let b_rule: socle_rules::Rule = serde_json::from_value(fill_rule("conteneurs-b", "commune-b", 80.0)).unwrap();
    s.upsert_rule(&RuleRecord {
        id: "conteneurs-b".into(),
        organisation: OrganisationId::parse("commune-b").unwrap(),
        definition: serde_json::to_value(&b_rule).unwrap(),
        enabled: true,
        author: None,
        created_at: now,
        modified_at: now,
    })
    .await
    .unwrap();
    alerting.rule_changed("conteneurs-b");

    let (status, list) = api.get(&elu_a, "/api/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"conteneurs-a") && !ids.contains(&"conteneurs-b"), "{ids:?}");
    assert_eq!(api.get(&agent_b, "/api/v1/rules/conteneurs-a").await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.get(&agent_a, "/api/v1/rules/conteneurs-a").await.0, StatusCode::OK);
    assert_eq!(api.get(&admin_a, "/api/v1/rules/conteneurs-b").await.0, StatusCode::NOT_FOUND);

    // Preview over stored history, nothing saved.
    let history: Vec<_> = (0..48)
        .map(|h| {
            observation(&container("a"), if (10..20).contains(&h) { 0.9 } else { 0.3 }, now - Duration::hours(60 - h))
        })
        .collect();
    s.write_observations(&history).await.unwrap();
    let (status, preview) = api.post(&agent_a, "/api/v1/rules/preview", &fill_rule("essai", "commune-a", 80.0)).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["opened"], 1, "{preview}");
    assert_eq!(preview["resolved"], 1, "{preview}");
    assert_eq!(preview["entities"], 1, "{preview}");
    assert_eq!(api.get(&agent_a, "/api/v1/rules/essai").await.0, StatusCode::NOT_FOUND, "a preview saves nothing");
    assert_eq!(
        api.post(&agent_b, "/api/v1/rules/preview", &fill_rule("essai", "commune-a", 80.0)).await.0,
        StatusCode::FORBIDDEN
    );

    // Both containers fill up: each commune gets its alert.
    let full = vec![observation(&container("a"), 0.95, now), observation(&container("b"), 0.97, now)];
    s.write_observations(&full).await.unwrap();
    feed.publish(full).await;
    alerting.flush().await.unwrap();

    let (status, list) = api.get(&agent_a, "/api/v1/alerts").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let alert = &list["items"][0];
    assert_eq!(alert["entity"], container("a").as_str());
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["entityName"], "le conteneur de la mairie a");
    assert!(alert["message"].as_str().unwrap().contains("conteneur"), "French by default: {alert}");
    let id = alert["id"].as_i64().unwrap();
    let (_, list_b) = api.get(&agent_b, "/api/v1/alerts").await;
    assert_eq!(list_b["total"], 1, "{list_b}");
    let id_b = list_b["items"][0]["id"].as_i64().unwrap();
    assert_ne!(id, id_b);

    // Filters.
    for (query, expected) in [
        ("status=open", 1),
        ("status=resolved", 0),
        ("status=unresolved&severity=medium,high", 1),
        ("domain=dechets", 1),
        ("domain=eau", 0),
        ("organisation=commune-b", 0),
        ("entity=urn:ngsi-ld:WasteContainer:a-mairie", 1),
        ("rule=conteneurs-a", 1),
    ] {
        let (status, list) = api.get(&agent_a, &format!("/api/v1/alerts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(list["total"], expected, "{query}: {list}");
    }
    for query in ["status=closed", "severity=huge", "domain=nowhere", "limit=0", "entity=not-an-id"] {
        let (status, problem) = api.get(&agent_a, &format!("/api/v1/alerts?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert!(problem["code"].is_string());
    }

    // Commune B sees and touches nothing of A's alert; hidden answers like absent.
    let hidden = api.send(&agent_b, Method::GET, &format!("/api/v1/alerts/{id}"), None).await;
    let absent = api.send(&agent_b, Method::GET, "/api/v1/alerts/999999", None).await;
    assert_eq!(hidden.0, StatusCode::NOT_FOUND);
    assert_eq!(hidden.2.replace(&id.to_string(), "ID"), absent.2.replace("999999", "ID"));
    for (action, body) in [
        ("acknowledge", json!({})),
        ("resolve", json!({})),
        ("comments", json!({"text": "vu"})),
        ("assign", json!({"assignee": agent_b.id})),
    ] {
        let (status, _) = api.post(&agent_b, &format!("/api/v1/alerts/{id}/{action}"), &body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "B: {action} on A's alert");
    }
    // The elected member reads but does not act.
    assert_eq!(api.get(&elu_a, &format!("/api/v1/alerts/{id}")).await.0, StatusCode::OK);
    assert_eq!(
        api.post(&elu_a, &format!("/api/v1/alerts/{id}/acknowledge"), &json!({})).await.0,
        StatusCode::FORBIDDEN
    );

    // The agent acts; each change is announced.
    let (status, acked) = api.post(&agent_a, &format!("/api/v1/alerts/{id}/acknowledge"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledgedBy"].as_str(), Some(agent_a.id.as_str()));
    let announced = loop {
        let c = tokio::time::timeout(std::time::Duration::from_secs(10), changes.recv()).await.unwrap().unwrap();
        if c.alert.id == id && c.kind == AlertEventKind::Acknowledged {
            break c;
        }
    };
    assert_eq!(announced.alert.acknowledged_by.as_deref(), Some(agent_a.id.as_str()));
    let (status, problem) = api.post(&agent_a, &format!("/api/v1/alerts/{id}/comments"), &json!({"text": "  "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _) = api.post(&agent_a, &format!("/api/v1/alerts/{id}/comments"), &json!({"txt": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        api.post(&agent_a, &format!("/api/v1/alerts/{id}/comments"), &json!({"text": "Tournée prévue demain."})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        api.post(&agent_a, &format!("/api/v1/alerts/{id}/assign"), &json!({"assignee": agent_b.id})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "B's agent cannot be put in charge of A's alert");
    let (status, _) = api.post(&agent_a, &format!("/api/v1/alerts/{id}/assign"), &json!({"assignee": elu_a.id})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an elected member does not act on alerts");
    let (status, assigned) =
        api.post(&agent_a, &format!("/api/v1/alerts/{id}/assign"), &json!({"assignee": agent_a.id})).await;
    assert_eq!((status, assigned["assignee"].as_str()), (StatusCode::OK, Some(agent_a.id.as_str())));

    let (status, detail) = api.get(&agent_a, &format!("/api/v1/alerts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["mayAct"], true);
    assert_eq!(detail["entityName"], "le conteneur de la mairie a");
    let kinds: Vec<&str> = detail["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "acknowledged", "commented", "assigned"]);
    assert_eq!(detail["history"][2]["note"], "Tournée prévue demain.");

    // The Smart Data Models form.
    let (status, ct, body) =
        api.send(&agent_a, Method::GET, &format!("/api/v1/alerts/{id}?format=ngsi-ld"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/ld+json"), "{ct}");
    let entity: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(entity["type"], "Alert");
    assert_eq!(entity["alertSource"]["value"], container("a").as_str());
    assert_eq!(entity["location"]["value"]["type"], "Point");
    assert_eq!(api.get(&agent_a, &format!("/api/v1/alerts/{id}?format=xml")).await.0, StatusCode::BAD_REQUEST);

    // Resolve; afterwards only comments.
    let (status, resolved) =
        api.post(&agent_a, &format!("/api/v1/alerts/{id}/resolve"), &json!({"note": "Collecté."})).await;
    assert_eq!((status, resolved["status"].as_str()), (StatusCode::OK, Some("resolved")));
    let (status, problem) = api.post(&agent_a, &format!("/api/v1/alerts/{id}/acknowledge"), &json!({})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("alert-resolved")));

    // Every act is in the audit trail.
    let (_, audit) = api.get(&admin_a, "/api/v1/audit").await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["rule.create", "alert.acknowledged", "alert.commented", "alert.assigned", "alert.resolved"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }

    // Replace and delete rules.
    let mut edited = fill_rule("conteneurs-a", "commune-a", 85.0);
    assert_eq!(
        api.send(&agent_a, Method::PUT, "/api/v1/rules/conteneurs-a", Some(&edited.to_string())).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _, body) =
        api.send(&admin_a, Method::PUT, "/api/v1/rules/conteneurs-a", Some(&edited.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["definition"]["condition"]["percent"], 85.0);
    edited["id"] = json!("autre");
    let (status, _, _) = api.send(&admin_a, Method::PUT, "/api/v1/rules/conteneurs-a", Some(&edited.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the body's id must be the path's");
    let (status, _, _) = api
        .send(
            &admin_a,
            Method::PUT,
            "/api/v1/rules/conteneurs-b",
            Some(&fill_rule("conteneurs-b", "commune-a", 80.0).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "another organisation's rule id is taken");
    assert_eq!(api.send(&agent_b, Method::DELETE, "/api/v1/rules/conteneurs-a", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.send(&agent_a, Method::DELETE, "/api/v1/rules/conteneurs-a", None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        api.send(&admin_a, Method::DELETE, &format!("/api/v1/rules/{other_id}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get(&admin_a, &format!("/api/v1/rules/{other_id}")).await.0, StatusCode::NOT_FOUND);

    // Subscriptions: each person's own.
    let sub = json!({"domains": ["dechets"], "minSeverity": "medium", "channels": {"email": true}});
    let (status, created) = api.post(&agent_a, "/api/v1/me/subscriptions", &sub).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let sub_id = created["id"].as_str().unwrap().to_owned();
    for bad in [
        json!({"channels": {}}),
        json!({"channels": {"email": true}, "domains": ["mars"]}),
        json!({"channels": {"email": true}, "colour": 1}),
        json!({"channels": {"sms": "0612"}}),
    ] {
        let (status, problem) = api.post(&agent_a, "/api/v1/me/subscriptions", &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        assert_eq!(problem["code"], "invalid-subscription");
    }
    let (_, mine) = api.get(&agent_a, "/api/v1/me/subscriptions").await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, theirs) = api.get(&agent_b, "/api/v1/me/subscriptions").await;
    assert_eq!(theirs.as_array().unwrap().len(), 0);
    assert_eq!(api.get(&agent_b, &format!("/api/v1/me/subscriptions/{sub_id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.send(&agent_b, Method::DELETE, &format!("/api/v1/me/subscriptions/{sub_id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let changed = json!({"channels": {"email": true, "webpush": true}, "quietHours": {"from": "22:00", "to": "07:00"}});
    let (status, _, body) = api
        .send(&agent_a, Method::PUT, &format!("/api/v1/me/subscriptions/{sub_id}"), Some(&changed.to_string()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["spec"]["channels"]["webpush"], true);
    assert_eq!(
        api.send(&elu_a, Method::POST, "/api/v1/me/subscriptions", Some(&sub.to_string())).await.0,
        StatusCode::FORBIDDEN,
        "a read-only token changes nothing"
    );
    assert_eq!(
        api.send(&agent_a, Method::DELETE, &format!("/api/v1/me/subscriptions/{sub_id}"), None).await.0,
        StatusCode::NO_CONTENT
    );

    // Webhooks: administrators, secret shown once.
    let hook = json!({"organisation": "commune-a", "url": "http://127.0.0.1:9/alertes", "domains": ["dechets"]});
    assert_eq!(api.post(&agent_a, "/api/v1/webhooks", &hook).await.0, StatusCode::FORBIDDEN);
    let (status, created) = api.post(&admin_a, "/api/v1/webhooks", &hook).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["secret"].as_str().is_some_and(|s| s.len() >= 32), "{created}");
    let hook_id = created["id"].as_str().unwrap().to_owned();
    let (_, listed) = api.get(&admin_a, "/api/v1/webhooks").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("secret").is_none(), "the secret is not shown again: {listed}");
    let (_, one) = api.get(&admin_a, &format!("/api/v1/webhooks/{hook_id}")).await;
    assert!(one.get("secret").is_none());
    for bad in [
        json!({"organisation": "commune-a", "url": "ftp://x"}),
        json!({"organisation": "commune-a", "url": "http://127.0.0.1/", "domains": ["mars"]}),
        json!({"organisation": "commune-a"}),
    ] {
        assert_eq!(api.post(&admin_a, "/api/v1/webhooks", &bad).await.0, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let for_b = json!({"organisation": "commune-b", "url": "http://127.0.0.1:9/"});
    assert_eq!(api.post(&admin_a, "/api/v1/webhooks", &for_b).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        api.send(&admin_a, Method::DELETE, &format!("/api/v1/webhooks/{hook_id}"), None).await.0,
        StatusCode::NO_CONTENT
    );

    // Web Push subscriptions as the page posts them.
    let key = socle_notify::webpush::b64(&[[4u8].as_slice(), &[7u8; 64]].concat());
    let auth = socle_notify::webpush::b64(&[9u8; 16]);
    let push =
        json!({"endpoint": "https://push.example/abc", "expirationTime": null, "keys": {"p256dh": key, "auth": auth}});
    let (status, created) = api.post(&agent_a, "/api/v1/push/subscriptions", &push).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let push_id = created["id"].as_str().unwrap().to_owned();
    let mut bad = push.clone();
    bad["keys"]["auth"] = json!("short");
    assert_eq!(api.post(&agent_a, "/api/v1/push/subscriptions", &bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        api.send(&agent_b, Method::DELETE, &format!("/api/v1/push/subscriptions/{push_id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.send(&agent_a, Method::DELETE, &format!("/api/v1/push/subscriptions/{push_id}"), None).await.0,
        StatusCode::NO_CONTENT
    );

    // The pages, for a person signed in: commune B's agent and B's open alert.
    let (cookie, csrf) = session(s, "agent-b@t.fr").await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = |path: String| {
        let req = browser.get(format!("{}{path}", api.base)).header("cookie", format!("socle_session={cookie}"));
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let (status, body) = page("/alertes".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("/alertes/{id_b}")) && !body.contains(&format!("/alertes/{id}\"")), "{body}");
    let (status, body) = page(format!("/alertes/{id_b}")).await;
    assert_eq!(status, StatusCode::OK);
    for form in ["prise-en-compte", "affectation", "cloture", "commentaire"] {
        assert!(body.contains(&format!("action=\"/alertes/{id_b}/{form}\"")), "{form} form: {body}");
    }
    assert!(body.contains("/carte?entite="), "a link to the map");
    assert_eq!(page(format!("/alertes/{id}")).await.0, StatusCode::NOT_FOUND);
    let (status, body) = page(format!("/entites/{}", container("b").as_str())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Alertes en cours") && body.contains(&format!("/alertes/{id_b}")), "{body}");
    let post = |path: String, form: String| {
        let req = browser
            .post(format!("{}{path}", api.base))
            .header("cookie", format!("socle_session={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        async move { req.send().await.unwrap().status() }
    };
    // Live changes (SSE): B's agent hears of B's alert, A's agent does not.
    let live = |who: &Person| {
        let req = api.client.get(format!("{}/api/v1/live", api.base)).bearer_auth(&who.token);
        async move { req.send().await.unwrap() }
    };
    let (mut live_b, mut live_a) = (live(&agent_b).await, live(&agent_a).await);
    let comment = format!("csrf={csrf}&texte=Vu+depuis+la+page");
    assert_eq!(post(format!("/alertes/{id_b}/commentaire"), comment.clone()).await, StatusCode::SEE_OTHER);
    assert_eq!(post(format!("/alertes/{id_b}/commentaire"), "csrf=faux&texte=x".into()).await, StatusCode::FORBIDDEN);
    assert_eq!(post(format!("/alertes/{id_b}/prise-en-compte"), format!("csrf={csrf}")).await, StatusCode::SEE_OTHER);
    let b_event = format!("\"id\":{id_b}");
    let heard = read_until(&mut live_b, &b_event).await;
    assert!(heard.contains("event: alert") && heard.contains("\"change\":\"commented\""), "{heard}");
    let (status, _) =
        api.post(&agent_a, &format!("/api/v1/alerts/{id}/comments"), &json!({"text": "Après clôture."})).await;
    assert_eq!(status, StatusCode::OK);
    let heard = read_until(&mut live_a, &format!("\"id\":{id}")).await;
    assert!(!heard.contains(&b_event), "A's agent hears of B's alert: {heard}");
    let (_, body) = page(format!("/alertes/{id_b}")).await;
    assert!(body.contains("Vu depuis la page") && body.contains("prise en compte"), "{body}");
    // The rule page: preview of an edited definition before saving.
    let (status, body) = page("/regles/conteneurs-b".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let definition = serde_json::to_string(&fill_rule("essai", "commune-b", 70.0)).unwrap();
    let form =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("definition", &definition), ("action", "apercu")])
            .unwrap();
    let res = browser
        .post(format!("{}/regles/nouvelle", api.base))
        .header("cookie", format!("socle_session={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("aurait ouvert"), "{body}");
    assert!(!body.contains("value=\"enregistrer\""), "an agent previews but is not offered to save");

    // The form editor, for A's administrator: a threshold rule in words and numbers
    // (French decimals), previewed, refused with the field named, then saved and
    // shown back in the same fields.
    let (cookie, csrf) = session(s, "admin-a@t.fr").await;
    let send_form = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let req = browser
            .post(format!("{}{path}", api.base))
            .header("cookie", format!("socle_session={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&fields).unwrap());
        async move {
            let res = req.send().await.unwrap();
            let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
            (res.status(), location, res.text().await.unwrap())
        }
    };
    let res = browser
        .get(format!("{}/regles/nouvelle?type=threshold", api.base))
        .header("cookie", format!("socle_session={cookie}"))
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"genre\"") && body.contains("<option value=\"threshold\" selected>"), "{body}");
    assert!(body.contains("name=\"seuil_niveau\" value=\"26\""), "the example's level, prefilled: {body}");
    let fields = |level: &str, action: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", action.to_owned()),
            ("organisation", "commune-a".to_owned()),
            ("libelle_fr", "Conteneur trop plein".to_owned()),
            ("libelle_en", "Container too full".to_owned()),
            ("gravite", "high".to_owned()),
            ("active", "on".to_owned()),
            ("cible", "type".to_owned()),
            ("cible_type", "WasteContainer".to_owned()),
            ("genre", "threshold".to_owned()),
            ("seuil_attribut", "fillingLevel".to_owned()),
            ("seuil_sens", "above".to_owned()),
            ("seuil_niveau", level.to_owned()),
            ("seuil_retour", "0,5".to_owned()),
            ("seuil_duree", "15".to_owned()),
            ("pile_seuil", "not read: another kind".to_owned()),
            ("delai_retour", "30".to_owned()),
            ("battements", "3".to_owned()),
            ("battement_fenetre", "60".to_owned()),
        ]
    };
    let (status, _, body) = send_form("/regles/nouvelle", fields("0,8", "apercu")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("aurait ouvert"), "{body}");
    let (status, _, body) = send_form("/regles/nouvelle", fields("huit", "apercu")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("« Niveau » : nombre attendu"), "{body}");
    assert!(body.contains("value=\"huit\""), "what was typed is kept: {body}");
    let (status, location, body) = send_form("/regles/nouvelle", fields("0,8", "enregistrer")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = location.unwrap();
    let id = location.trim_start_matches("/regles/").split('?').next().unwrap().to_owned();
    let (status, stored) = api.get(&admin_a, &format!("/api/v1/rules/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let condition = &stored["definition"]["condition"];
    assert_eq!(
        (condition["level"].as_f64(), condition["clear"].as_f64(), condition["minDurationSeconds"].as_u64()),
        (Some(0.8), Some(0.5), Some(900)),
        "{stored}"
    );
    assert_eq!(stored["definition"]["resolveDelaySeconds"], json!(1800));
    let res = browser
        .get(format!("{}{location}", api.base))
        .header("cookie", format!("socle_session={cookie}"))
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert!(body.contains("Règle enregistrée") && body.contains("name=\"seuil_niveau\" value=\"0,8\""), "{body}");
    stop.cancel();
}

/// Reads an event stream until `needle` appears (10 s at most), returning what was read.
async fn read_until(res: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle} within 10 s: {text}"))
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

async fn session(s: &DynStore, email: &str) -> (String, String) {
    let user = s.credentials(&Email::parse(email).unwrap()).await.unwrap().unwrap().user;
    let (id, csrf) = (socle_api::security::random_secret(), socle_api::security::random_secret());
    let now = Utc::now();
    let session = socle_storage::WebSession {
        user: user.id,
        csrf_token: csrf.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::days(1),
    };
    s.create_session(&hash_secret(&id), &session).await.unwrap();
    (id, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_alerts_api() {
    scenario(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_alerts_api() {
    scenario(TestStore::postgres().await).await;
}
