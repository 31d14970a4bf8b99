//! The tenant-isolation matrix: every route of the route table × every kind
//! of caller (anonymous, tokens, web sessions) × objects of its own and of
//! another organisation, on both backends. A route missing from the match
//! below fails the suite, so a new route cannot ship without its access rule
//! being tested.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::{Access, AppState};
use socle_domain::{
    ApiToken, Attribute, AttributeName, Email, Entity, EntityId, EntityType, NewOrganisation, Observation,
    ObservedValue, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope, Visibility,
};
use socle_storage::testing::TestStore;
use socle_storage::{DynStore, WebSession};

const VISIBILITIES: [Visibility; 4] =
    [Visibility::Private, Visibility::Internal, Visibility::Partners, Visibility::Public];

fn entity_id(commune: &str, v: Visibility) -> String {
    format!("urn:ngsi-ld:Building:{commune}-{}", v.as_str())
}

/// Each entity's name carries a marker that must never appear in an answer
/// to someone who may not see it.
fn marker(commune: &str, v: Visibility) -> String {
    format!("MARKER-{commune}-{}", v.as_str())
}

struct Caller {
    name: &'static str,
    token: Option<String>,
    /// A web session: its cookie value and its CSRF token.
    session: Option<(String, String)>,
    /// The e-mail of the person behind a session.
    email: Option<&'static str>,
    /// Entities it may see: (commune, visibility).
    sees: BTreeSet<(String, Visibility)>,
    /// Whether it administers an organisation (admin routes).
    admin: bool,
    /// E-mails of users it may list.
    sees_users: BTreeSet<String>,
}

fn org(id: &str, code: &str, kind: OrganisationKind, parent: Option<&str>) -> NewOrganisation {
    NewOrganisation {
        id: OrganisationId::parse(id).unwrap(),
        kind,
        name: id.to_owned(),
        code: OfficialCode::parse(code).unwrap(),
        parent: parent.map(|p| OrganisationId::parse(p).unwrap()),
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    }
}

async fn token(
    s: &DynStore,
    kind: TokenKind,
    user: Option<socle_domain::UserId>,
    org: &str,
    scope: TokenScope,
) -> String {
    let secret = new_token_secret(kind);
    let t = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind,
        label: "test".into(),
        user,
        organisation: OrganisationId::parse(org).unwrap(),
        scope,
        created_at: Utc::now(),
        expires_at: Some(Utc::now() + Duration::days(1)),
        revoked_at: None,
    };
    s.create_token(&t, &hash_secret(&secret)).await.unwrap();
    secret
}

fn all_of(commune: &str) -> Vec<(String, Visibility)> {
    VISIBILITIES.iter().map(|v| (commune.to_owned(), *v)).collect()
}

fn publics() -> Vec<(String, Visibility)> {
    vec![("a".into(), Visibility::Public), ("b".into(), Visibility::Public)]
}

async fn fixture(s: &DynStore) -> Vec<Caller> {
    s.upsert_organisation(&org("syndicat", "200046977", OrganisationKind::Syndicat, None)).await.unwrap();
    s.upsert_organisation(&org("commune-a", "86001", OrganisationKind::Commune, Some("syndicat"))).await.unwrap();
    s.upsert_organisation(&org("commune-b", "86002", OrganisationKind::Commune, Some("syndicat"))).await.unwrap();
    s.upsert_organisation(&org("prestataire", "812473965", OrganisationKind::Partenaire, None)).await.unwrap();
    let ty = EntityType::parse("Building").unwrap();
    let mut entities = Vec::new();
    let mut obs = Vec::new();
    for commune in ["a", "b"] {
        for v in VISIBILITIES {
            let id = EntityId::parse(&entity_id(commune, v)).unwrap();
            let mut e =
                Entity::new(id.clone(), ty.clone(), OrganisationId::parse(&format!("commune-{commune}")).unwrap());
            e.visibility = v;
            e.location = Some(socle_domain::Geometry::Point([0.5, 46.5]));
            if v == Visibility::Partners {
                e.shared_with = vec![OrganisationId::parse("prestataire").unwrap()];
            }
            entities.push(e.with("name", Attribute::property(marker(commune, v))).unwrap());
            obs.push(Observation {
                entity: id,
                attribute: AttributeName::parse("consumption").unwrap(),
                observed_at: Utc::now() - Duration::hours(1),
                value: ObservedValue::number(1.0).unwrap(),
                unit_code: None,
            });
        }
    }
    s.upsert_entities(&entities).await.unwrap();
    s.write_observations(&obs).await.unwrap();

    let mut callers = vec![Caller {
        name: "anonymous",
        token: None,
        session: None,
        email: None,
        sees: publics().into_iter().collect(),
        admin: false,
        sees_users: BTreeSet::new(),
    }];
    let a_admin = user(s, "admin-a@test.fr", vec![("commune-a", Role::Admin)]).await;
    let a_agent = user(s, "agent-a@test.fr", vec![("commune-a", Role::Agent)]).await;
    let a_elected = user(s, "elu-a@test.fr", vec![("commune-a", Role::Elected)]).await;
    let b_agent = user(s, "agent-b@test.fr", vec![("commune-b", Role::Agent)]).await;
    let s_admin = user(s, "admin-syndicat@test.fr", vec![("syndicat", Role::Admin)]).await;
    let partner = user(s, "technicien@prestataire.fr", vec![("prestataire", Role::Partner)]).await;
    // Holds roles in two communes, but its token is bound to commune-a only.
    let both = user(s, "double@test.fr", vec![("commune-a", Role::Agent), ("commune-b", Role::Admin)]).await;

    let a_users: BTreeSet<String> =
        ["admin-a@test.fr", "agent-a@test.fr", "elu-a@test.fr", "double@test.fr"].map(String::from).into();
    let mut everyone = a_users.clone();
    everyone.extend(["agent-b@test.fr", "admin-syndicat@test.fr"].map(String::from));
    let a_view: BTreeSet<_> = all_of("a").into_iter().chain(publics()).collect();
    for (name, u, org, scope, admin, users) in [
        ("admin of commune A", &a_admin, "commune-a", TokenScope::Admin, true, a_users.clone()),
        ("admin of commune A, read-only token", &a_admin, "commune-a", TokenScope::Read, false, BTreeSet::new()),
        ("agent of commune A", &a_agent, "commune-a", TokenScope::Write, false, BTreeSet::new()),
        ("elected of commune A", &a_elected, "commune-a", TokenScope::Read, false, BTreeSet::new()),
        ("A agent and B admin, token for A", &both, "commune-a", TokenScope::Admin, false, BTreeSet::new()),
    ] {
        callers.push(Caller {
            name,
            token: Some(token(s, TokenKind::Personal, Some(u.id), org, scope).await),
            session: None,
            email: None,
            sees: a_view.clone(),
            admin,
            sees_users: users,
        });
    }
    callers.push(Caller {
        name: "agent of commune B",
        token: Some(token(s, TokenKind::Personal, Some(b_agent.id), "commune-b", TokenScope::Admin).await),
        session: None,
        email: None,
        sees: all_of("b").into_iter().chain(publics()).collect(),
        admin: false,
        sees_users: BTreeSet::new(),
    });
    callers.push(Caller {
        name: "admin of the syndicate",
        token: Some(token(s, TokenKind::Personal, Some(s_admin.id), "syndicat", TokenScope::Admin).await),
        session: None,
        email: None,
        sees: all_of("a").into_iter().chain(all_of("b")).collect(),
        admin: true,
        sees_users: everyone.clone(),
    });
    callers.push(Caller {
        name: "partner",
        token: Some(token(s, TokenKind::Personal, Some(partner.id), "prestataire", TokenScope::Admin).await),
        session: None,
        email: None,
        sees: [("a", Visibility::Partners), ("b", Visibility::Partners)]
            .map(|(c, v)| (c.to_owned(), v))
            .into_iter()
            .chain(publics())
            .collect(),
        admin: false,
        sees_users: BTreeSet::new(),
    });
    callers.push(Caller {
        name: "ingestion token of commune A",
        token: Some(token(s, TokenKind::Ingestion, None, "commune-a", TokenScope::Write).await),
        session: None,
        email: None,
        sees: publics().into_iter().collect(),
        admin: false,
        sees_users: BTreeSet::new(),
    });
    callers.push(Caller {
        name: "revoked admin token",
        token: Some({
            let secret = token(s, TokenKind::Personal, Some(a_admin.id), "commune-a", TokenScope::Admin).await;
            let t = s.token_by_secret_hash(&hash_secret(&secret)).await.unwrap().unwrap();
            s.revoke_token(t.id, Utc::now()).await.unwrap();
            secret
        }),
        session: None,
        email: None,
        sees: BTreeSet::new(),
        admin: false,
        sees_users: BTreeSet::new(),
    });
    // Web sessions: every membership of the person counts (no token narrows it).
    let both_view: BTreeSet<_> = all_of("a").into_iter().chain(all_of("b")).collect();
    for (name, u, email, sees, admin, users) in [
        ("session of the agent of commune A", &a_agent, "agent-a@test.fr", a_view.clone(), false, BTreeSet::new()),
        (
            "session of the admin of the syndicate",
            &s_admin,
            "admin-syndicat@test.fr",
            both_view.clone(),
            true,
            everyone,
        ),
        (
            "session of A agent and B admin",
            &both,
            "double@test.fr",
            both_view,
            true,
            ["agent-b@test.fr", "double@test.fr"].map(String::from).into(),
        ),
        (
            "session of the partner",
            &partner,
            "technicien@prestataire.fr",
            [("a", Visibility::Partners), ("b", Visibility::Partners)]
                .map(|(c, v)| (c.to_owned(), v))
                .into_iter()
                .chain(publics())
                .collect(),
            false,
            BTreeSet::new(),
        ),
    ] {
        callers.push(Caller {
            name,
            token: None,
            session: Some(session(s, u.id).await),
            email: Some(email),
            sees,
            admin,
            sees_users: users,
        });
    }
    callers
}

async fn session(s: &DynStore, user: socle_domain::UserId) -> (String, String) {
    let (id, csrf) = (socle_api::security::random_secret(), socle_api::security::random_secret());
    let now = Utc::now();
    let session = WebSession {
        user,
        csrf_token: csrf.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::days(1),
    };
    s.create_session(&hash_secret(&id), &session).await.unwrap();
    (id, csrf)
}

async fn user(s: &DynStore, email: &str, memberships: Vec<(&str, Role)>) -> socle_domain::User {
    let u = s.create_user(&Email::parse(email).unwrap(), email, None).await.unwrap();
    for (o, r) in memberships {
        s.grant(u.id, &OrganisationId::parse(o).unwrap(), r).await.unwrap();
    }
    u
}

async fn call(base: &str, path: &str, caller: &Caller) -> (StatusCode, String) {
    send(base, reqwest::Method::GET, path, caller, None).await
}

/// A request as `caller`, never following redirects; `form` is posted as a
/// browser would (urlencoded), `{csrf}` in it replaced by the session's token.
async fn send(
    base: &str,
    method: reqwest::Method,
    path: &str,
    caller: &Caller,
    form: Option<&str>,
) -> (StatusCode, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = &caller.token {
        req = req.bearer_auth(t);
    }
    if let Some((id, _)) = &caller.session {
        req = req.header("cookie", format!("socle_session={id}"));
    }
    if let Some(form) = form {
        let csrf = caller.session.as_ref().map_or("", |(_, c)| c.as_str());
        req = req.header("content-type", "application/x-www-form-urlencoded").body(form.replace("{csrf}", csrf));
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    (status, location.map_or(body.clone(), |l| format!("{l}\n{body}")))
}

/// No name of an invisible entity, and no id the caller did not send itself.
fn assert_no_foreign_marker(body: &str, caller: &Caller, what: &str) {
    for commune in ["a", "b"] {
        for v in VISIBILITIES {
            if !caller.sees.contains(&(commune.to_owned(), v)) {
                assert!(!body.contains(&marker(commune, v)), "{}: {what} leaks {}", caller.name, marker(commune, v));
                let id = entity_id(commune, v);
                if !what.contains(&id) {
                    assert!(!body.contains(&id), "{}: {what} leaks {id}", caller.name);
                }
            }
        }
    }
}

fn dataset_id(commune: &str, v: Visibility) -> String {
    format!("jeu-{commune}-{}", v.as_str())
}

/// One dataset per commune and visibility, its title and its one record carrying the
/// same marker as the entities.
async fn datasets_fixture(s: &DynStore) {
    for commune in ["a", "b"] {
        for v in VISIBILITIES {
            let id = dataset_id(commune, v);
            let d = socle_storage::StoredDataset {
                id: id.clone(),
                uid: format!("da_{commune}{}", v.as_str()),
                organisation: OrganisationId::parse(&format!("commune-{commune}")).unwrap(),
                visibility: v,
                shared_with: if v == Visibility::Partners {
                    vec![OrganisationId::parse("prestataire").unwrap()]
                } else {
                    vec![]
                },
                metadata: serde_json::json!({"title": marker(commune, v)}),
                fields: serde_json::json!([{"name": "nom", "label": "Nom", "type": "text", "facet": true}]),
                records_count: 0,
                data_modified_at: None,
                created_at: Utc::now(),
                modified_at: Utc::now(),
            };
            s.put_dataset(&d).await.unwrap();
            let mut data = serde_json::Map::new();
            data.insert("nom".into(), Value::String(marker(commune, v)));
            let record = socle_storage::StoredRecord { row: 1, id: "r1".into(), data };
            s.replace_records(&id, &d.fields, &[record], Utc::now()).await.unwrap();
        }
    }
}

async fn matrix(t: TestStore) {
    let callers = fixture(&t.store).await;
    let letters = ingestion::fixture(&t.store).await;
    let alerts = alerting::fixture(&t.store).await;
    subscriptions::fixture(&t.store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(t.store.clone());
    let feed = state.pipeline().feed().clone();
    tokio::spawn(socle_api::serve(listener, state, std::future::pending()));

    datasets_fixture(&t.store).await;
    let table = socle_api::route_table();
    let mut documented: BTreeSet<String> = socle_api::openapi::documented_paths().into_iter().collect();
    documented.insert("/api/openapi.json".into()); // the document does not describe itself
    let routed: BTreeSet<String> =
        table.iter().filter(|r| !r.web_page && !r.ngsi_ld).map(|r| r.path.to_owned()).collect();
    assert_eq!(documented, routed, "every route is documented in OpenAPI and every documented path is routed");

    for route in &table {
        for caller in &callers {
            let revoked = caller.name.starts_with("revoked");
            match route.path {
                "/healthz" | "/readyz" | "/api/openapi.json" | "/metrics" | "/api/v1/organisations" => {
                    let (status, body) = call(&base, route.path, caller).await;
                    let expected = if revoked { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
                    assert_eq!(status, expected, "{} {}", caller.name, route.path);
                    assert_no_foreign_marker(&body, caller, route.path);
                }
                "/api/v1/organisations/{id}" => {
                    let (status, _) = call(&base, "/api/v1/organisations/commune-b", caller).await;
                    assert_eq!(status.is_success(), !revoked, "{} {}", caller.name, route.path);
                }
                "/api/v1/entities" => {
                    let (status, body) = call(&base, "/api/v1/entities?limit=1000", caller).await;
                    if revoked {
                        assert_eq!(status, StatusCode::UNAUTHORIZED);
                        continue;
                    }
                    let json: Value = serde_json::from_str(&body).unwrap();
                    let got: BTreeSet<String> = json["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["id"].as_str().unwrap().to_owned())
                        .collect();
                    let expected: BTreeSet<String> = caller.sees.iter().map(|(c, v)| entity_id(c, *v)).collect();
                    assert_eq!(got, expected, "{}: entity list", caller.name);
                    assert_eq!(
                        json["total"].as_u64(),
                        Some(expected.len() as u64),
                        "{}: counts leak nothing",
                        caller.name
                    );
                    for filter in ["organisation=commune-b", "type=Building", "bbox=-180,-90,180,90"] {
                        let (_, body) = call(&base, &format!("/api/v1/entities?{filter}"), caller).await;
                        assert_no_foreign_marker(&body, caller, filter);
                    }
                }
                "/api/v1/entities/{id}"
                | "/api/v1/entities/{id}/series"
                | "/api/v1/entities/{id}/series/{attribute}" => {
                    for commune in ["a", "b"] {
                        for v in VISIBILITIES {
                            let path = route
                                .path
                                .replace("{id}", &entity_id(commune, v))
                                .replace("{attribute}", "consumption");
                            let (status, body) = call(&base, &path, caller).await;
                            let visible = caller.sees.contains(&(commune.to_owned(), v));
                            let expected = if revoked {
                                StatusCode::UNAUTHORIZED
                            } else if visible {
                                StatusCode::OK
                            } else {
                                // Not 403: "hidden" and "absent" must be indistinguishable.
                                StatusCode::NOT_FOUND
                            };
                            assert_eq!(status, expected, "{} {path}", caller.name);
                            assert_no_foreign_marker(&body, caller, &path);
                        }
                    }
                    // An absent entity answers exactly like a hidden one.
                    let hidden = call(
                        &base,
                        &route
                            .path
                            .replace("{id}", &entity_id("b", Visibility::Private))
                            .replace("{attribute}", "consumption"),
                        &callers[0],
                    )
                    .await;
                    let absent = call(
                        &base,
                        &route
                            .path
                            .replace("{id}", "urn:ngsi-ld:Building:b-private-x")
                            .replace("{attribute}", "consumption"),
                        &callers[0],
                    )
                    .await;
                    assert_eq!(hidden.0, absent.0);
                    assert_eq!(
                        hidden.1.replace("b-private", "ID").replace("-x", ""),
                        absent.1.replace("b-private-x", "ID")
                    );
                }
                "/api/v1/map" => {
                    let (status, body) = call(&base, route.path, caller).await;
                    if revoked {
                        assert_eq!(status, StatusCode::UNAUTHORIZED);
                        continue;
                    }
                    let json: Value = serde_json::from_str(&body).unwrap();
                    let got: BTreeSet<String> = json["features"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f["properties"]["id"].as_str().unwrap().to_owned())
                        .collect();
                    let expected: BTreeSet<String> = caller.sees.iter().map(|(c, v)| entity_id(c, *v)).collect();
                    assert_eq!(got, expected, "{}: map features", caller.name);
                    assert_no_foreign_marker(&body, caller, route.path);
                }
                "/api/v1/live" => live_rule(&base, caller, &feed).await,
                "/api/v1/users" | "/api/v1/audit" => {
                    assert_eq!(route.access, Access::Admin, "{} must stay restricted to administrators", route.path);
                    let (status, body) = call(&base, route.path, caller).await;
                    let expected = if caller.admin {
                        StatusCode::OK
                    } else if (caller.token.is_none() && caller.session.is_none()) || revoked {
                        StatusCode::UNAUTHORIZED
                    } else {
                        StatusCode::FORBIDDEN
                    };
                    assert_eq!(status, expected, "{} {}", caller.name, route.path);
                    if route.path == "/api/v1/users" {
                        for email in [
                            "admin-a@test.fr",
                            "agent-b@test.fr",
                            "admin-syndicat@test.fr",
                            "technicien@prestataire.fr",
                        ] {
                            assert_eq!(
                                body.contains(email),
                                caller.sees_users.contains(email),
                                "{} sees {email}?",
                                caller.name
                            );
                        }
                    }
                }
                path if alerting::covers(path) => alerting::rules(&base, route, caller, &alerts).await,
                path if route.ngsi_ld => ngsi_rules(&base, path, caller).await,
                "/api/explore/v2.1/catalog/datasets"
                | "/api/explore/v2.1/catalog/facets"
                | "/api/explore/v2.1/catalog/exports/{format}" => {
                    let path = route.path.replace("{format}", "json");
                    let (status, body) = call(&base, &format!("{path}?limit=100&facet=title"), caller).await;
                    if revoked {
                        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
                        continue;
                    }
                    assert_eq!(status, StatusCode::OK, "{} {path}: {body}", caller.name);
                    assert_no_foreign_marker(&body, caller, &path);
                    for commune in ["a", "b"] {
                        for v in VISIBILITIES {
                            if !caller.sees.contains(&(commune.to_owned(), v)) {
                                assert!(
                                    !body.contains(&dataset_id(commune, v)),
                                    "{} {path} leaks a dataset",
                                    caller.name
                                );
                            }
                        }
                    }
                    if path == "/api/explore/v2.1/catalog/datasets" {
                        let json: Value = serde_json::from_str(&body).unwrap();
                        let got: BTreeSet<String> = json["results"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|d| d["dataset_id"].as_str().unwrap().to_owned())
                            .collect();
                        let expected: BTreeSet<String> = caller.sees.iter().map(|(c, v)| dataset_id(c, *v)).collect();
                        assert_eq!(got, expected, "{}: catalogue", caller.name);
                        assert_eq!(
                            json["total_count"].as_u64(),
                            Some(expected.len() as u64),
                            "{}: counts leak nothing",
                            caller.name
                        );
                    }
                }
                "/api/explore/v2.1/catalog/datasets/{id}"
                | "/api/explore/v2.1/catalog/datasets/{id}/records"
                | "/api/explore/v2.1/catalog/datasets/{id}/records/{record_id}"
                | "/api/explore/v2.1/catalog/datasets/{id}/facets"
                | "/api/explore/v2.1/catalog/datasets/{id}/exports/{format}" => {
                    let absent = call(
                        &base,
                        &route.path.replace("{id}", "absent").replace("{record_id}", "r1").replace("{format}", "csv"),
                        caller,
                    )
                    .await;
                    for commune in ["a", "b"] {
                        for v in VISIBILITIES {
                            let path = route
                                .path
                                .replace("{id}", &dataset_id(commune, v))
                                .replace("{record_id}", "r1")
                                .replace("{format}", "csv");
                            let (status, body) = call(&base, &path, caller).await;
                            if revoked {
                                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
                                continue;
                            }
                            if caller.sees.contains(&(commune.to_owned(), v)) {
                                assert_eq!(status, StatusCode::OK, "{} {path}: {body}", caller.name);
                            } else {
                                // Hidden answers exactly like absent.
                                assert_eq!(status, StatusCode::NOT_FOUND, "{} {path}", caller.name);
                                assert_eq!(
                                    body.replace(&dataset_id(commune, v), "absent"),
                                    absent.1,
                                    "{} {path}",
                                    caller.name
                                );
                            }
                            assert_no_foreign_marker(&body, caller, &path);
                        }
                    }
                }
                "/api/v1/datasets"
                | "/api/v1/datasets/{id}"
                | "/api/v1/datasets/{id}/data"
                | "/api/v1/datasets/{id}/usage" => {
                    assert_eq!(route.access, Access::Staff, "{} must stay restricted to staff", route.path);
                    for commune in ["a", "b"] {
                        for v in VISIBILITIES {
                            let path = route.path.replace("{id}", &dataset_id(commune, v));
                            let (status, body) = if route.path.ends_with("/usage") {
                                call(&base, &path, caller).await
                            } else {
                                send(&base, reqwest::Method::PUT, &path, caller, None).await
                            };
                            assert!(
                                !status.is_success() || caller.sees.contains(&(commune.to_owned(), v)),
                                "{} {path}: {status}",
                                caller.name
                            );
                            assert!(!status.is_server_error(), "{} {path}: {status}", caller.name);
                            assert_no_foreign_marker(&body, caller, &path);
                        }
                    }
                }
                path if ingestion::covers(path) => {
                    ingestion::rules(&base, route, caller, &letters, &t.store).await;
                    if caller.token.is_some() || caller.session.is_some() {
                        // Device answers name entities; none the caller may not see.
                        let (_, body) = call(&base, "/api/v1/devices", caller).await;
                        assert_no_foreign_marker(&body, caller, path);
                    }
                }
                path if route.web_page => web_rules(&base, path, caller, &callers, &t.store).await,
                other => panic!("route {other} has no isolation rule: add one to this matrix"),
            }
        }
    }

    // Reading personal data left a trace, visible to the administrators concerned.
    let admin = callers.iter().find(|c| c.name == "admin of commune A").unwrap();
    let (_, body) = call(&base, "/api/v1/audit", admin).await;
    let log: Value = serde_json::from_str(&body).unwrap();
    assert!(log["items"].as_array().unwrap().iter().any(|e| e["action"] == "personal.read"), "{log}");
    assert!(!body.contains("@"), "the audit trail holds no e-mail address");
    ingestion::after_matrix(&t.store).await;
}

/// The live feed sends a caller the observations of the entities it may
/// see, and nothing of the others; asking for a hidden entity answers like
/// an absent one.
async fn live_rule(base: &str, caller: &Caller, feed: &socle_storage::CommitFeed) {
    let client = reqwest::Client::new();
    let get = |path: String| {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(t) = &caller.token {
            req = req.bearer_auth(t);
        }
        if let Some((id, _)) = &caller.session {
            req = req.header("cookie", format!("socle_session={id}"));
        }
        req.send()
    };
    let mut res = get("/api/v1/live".into()).await.unwrap();
    if caller.name.starts_with("revoked") {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        return;
    }
    assert_eq!(res.status(), StatusCode::OK, "{}", caller.name);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    // The handler has subscribed before answering: everything published now reaches it.
    let batch: Vec<Observation> = ["a", "b"]
        .iter()
        .flat_map(|c| VISIBILITIES.map(|v| (c.to_owned(), v)))
        .map(|(c, v)| Observation {
            entity: EntityId::parse(&entity_id(c, v)).unwrap(),
            attribute: AttributeName::parse("consumption").unwrap(),
            observed_at: Utc::now(),
            value: ObservedValue::number(2.0).unwrap(),
            unit_code: None,
        })
        .collect();
    feed.publish(batch).await;
    let mut text = String::new();
    let data = loop {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), res.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        const FIELDS: &str = "event: observations\ndata: ";
        if let Some(start) = text.find(FIELDS) {
            let rest = &text[start + FIELDS.len()..];
            if let Some(end) = rest.find('\n') {
                break rest[..end].to_owned();
            }
        }
    };
    let values: Value = serde_json::from_str(&data).unwrap();
    let got: BTreeSet<String> =
        values.as_array().unwrap().iter().map(|v| v["entity"].as_str().unwrap().to_owned()).collect();
    let expected: BTreeSet<String> = caller.sees.iter().map(|(c, v)| entity_id(c, *v)).collect();
    assert_eq!(got, expected, "{}: live values", caller.name);
    // One entity's feed: a hidden one answers exactly like an absent one.
    let hidden = get(format!("/api/v1/live?entity={}", entity_id("b", Visibility::Private))).await.unwrap();
    let visible = caller.sees.contains(&("b".to_owned(), Visibility::Private));
    assert_eq!(hidden.status(), if visible { StatusCode::OK } else { StatusCode::NOT_FOUND }, "{}", caller.name);
    if !visible {
        let absent = get("/api/v1/live?entity=urn:ngsi-ld:Building:b-private-x".into()).await.unwrap();
        assert_eq!(absent.status(), StatusCode::NOT_FOUND);
        let (h, a) = (hidden.text().await.unwrap(), absent.text().await.unwrap());
        assert_eq!(h.replace("b-private", "ID"), a.replace("b-private-x", "ID"));
    }
}

fn kind(caller: &Caller) -> &'static str {
    if caller.name.starts_with("revoked") {
        "revoked"
    } else if caller.session.is_some() {
        "session"
    } else if caller.token.is_some() {
        "token"
    } else {
        "anonymous"
    }
}

/// The web pages: open pages answer everyone the same; account pages only
/// sessions, each its own; every state-changing form refuses a missing CSRF token.
async fn web_rules(base: &str, path: &str, caller: &Caller, callers: &[Caller], store: &DynStore) {
    use reqwest::Method;
    let k = kind(caller);
    let name = caller.name;
    let expect = |got: StatusCode, want: StatusCode, what: &str| assert_eq!(got, want, "{name} ({k}) {what}");
    if k == "revoked" {
        // A revoked bearer token is refused everywhere, pages included.
        let (status, _) =
            call(base, &path.replace("{token}", "x").replace("{file}", "x").replace("{id}", "x"), caller).await;
        let status = if status == StatusCode::METHOD_NOT_ALLOWED {
            send(base, Method::POST, &path.replace("{id}", "x"), caller, Some("csrf=x")).await.0
        } else {
            status
        };
        expect(status, StatusCode::UNAUTHORIZED, path);
        return;
    }
    // What a state-changing form without a valid CSRF token gets: tokens carry no ambient
    // credential and pass to the handler; browsers (anonymous or signed in) are refused.
    let no_csrf = |handler_status: StatusCode| if k == "token" { handler_status } else { StatusCode::FORBIDDEN };
    match path {
        "/" | "/langue" => expect(call(base, path, caller).await.0, StatusCode::SEE_OTHER, path),
        "/connexion" | "/mot-de-passe-oublie" => {
            let (status, body) = call(base, path, caller).await;
            expect(status, StatusCode::OK, path);
            assert_no_foreign_marker(&body, caller, path);
            let (status, _) = send(base, Method::POST, path, caller, Some("csrf=wrong")).await;
            expect(status, no_csrf(StatusCode::UNPROCESSABLE_ENTITY), &format!("POST {path} without CSRF"));
        }
        "/deconnexion" => {
            let (status, _) = send(base, Method::POST, path, caller, Some("csrf=wrong")).await;
            expect(status, no_csrf(StatusCode::SEE_OTHER), "sign-out without CSRF");
            if k == "session" {
                let (status, _) = call(base, "/compte", caller).await;
                expect(status, StatusCode::OK, "the session survives a forged sign-out");
            }
        }
        "/mot-de-passe/{token}" => {
            let p = path.replace("{token}", &"ab".repeat(32));
            expect(call(base, &p, caller).await.0, StatusCode::NOT_FOUND, "unknown reset link");
            let (status, _) = send(base, Method::POST, &p, caller, Some("csrf=wrong&password=x&confirm=x")).await;
            expect(status, no_csrf(StatusCode::UNPROCESSABLE_ENTITY), "reset without CSRF");
        }
        "/connexion/oidc" | "/connexion/oidc/retour" => {
            expect(call(base, path, caller).await.0, StatusCode::NOT_FOUND, "no provider configured")
        }
        "/static/{file}" => {
            let css = format!("/static/{}", *socle_api::web::CSS_FILE);
            expect(call(base, &css, caller).await.0, StatusCode::OK, &css);
            expect(call(base, "/static/socle.css", caller).await.0, StatusCode::NOT_FOUND, "unhashed name");
        }
        "/carte" => {
            let (status, body) = call(base, path, caller).await;
            expect(status, StatusCode::OK, path);
            for (c, v) in &caller.sees {
                assert!(body.contains(&marker(c, *v)), "{name}: the map's table lists {}", marker(c, *v));
            }
            assert_no_foreign_marker(&body, caller, path);
        }
        "/tableaux" | "/tableaux/{domaine}" | "/elu" => {
            let pages: Vec<String> = if path == "/tableaux/{domaine}" {
                ["batiments", "eclairage", "eau", "dechets", "stationnement", "air", "risques"]
                    .iter()
                    .map(|d| format!("/tableaux/{d}"))
                    .collect()
            } else {
                vec![path.to_owned()]
            };
            for page in pages {
                let (status, body) = call(base, &page, caller).await;
                expect(status, StatusCode::OK, &page);
                assert_no_foreign_marker(&body, caller, &page);
            }
            expect(call(base, "/tableaux/nulle-part", caller).await.0, StatusCode::NOT_FOUND, "unknown domain");
        }
        "/entites/{id}" | "/entites/{id}/csv" => {
            for commune in ["a", "b"] {
                for v in VISIBILITIES {
                    let id = entity_id(commune, v);
                    let page = path.replace("{id}", &id) + "?attribut=consumption&periode=1j";
                    let (status, body) = call(base, &page, caller).await;
                    let visible = caller.sees.contains(&(commune.to_owned(), v));
                    expect(status, if visible { StatusCode::OK } else { StatusCode::NOT_FOUND }, &page);
                    assert_no_foreign_marker(&body, caller, &page);
                    if visible && path.ends_with("csv") {
                        assert!(body.starts_with("observedAt,value"), "{name}: {body}");
                    }
                }
            }
        }
        "/compte" => {
            let (status, body) = call(base, path, caller).await;
            match k {
                "anonymous" => {
                    expect(status, StatusCode::SEE_OTHER, path);
                    assert!(body.starts_with("/connexion?retour=%2Fcompte"), "{body}");
                }
                "token" => expect(status, StatusCode::FORBIDDEN, "tokens do not reach account pages"),
                _ => {
                    expect(status, StatusCode::OK, path);
                    let own = caller.email.unwrap();
                    assert!(body.contains(own), "{name} sees its own address");
                    for other in callers.iter().filter_map(|c| c.email).filter(|e| *e != own) {
                        assert!(!body.contains(other), "{name} sees {other}");
                    }
                    assert_no_foreign_marker(&body, caller, path);
                }
            }
        }
        "/compte/jetons" => {
            let form = "csrf={csrf}&label=test&organisation=commune-b&scope=admin&days=30";
            let (status, body) = send(base, Method::POST, path, caller, Some(&form.replace("{csrf}", "wrong"))).await;
            match k {
                "anonymous" => expect(status, StatusCode::UNAUTHORIZED, path),
                "token" => expect(status, StatusCode::FORBIDDEN, "tokens cannot mint tokens"),
                _ => {
                    expect(status, StatusCode::FORBIDDEN, "token creation without CSRF");
                    assert!(!body.contains("socle_pat_"));
                    // With the right CSRF token: only for an organisation of one's own.
                    let (status, body) = send(base, Method::POST, path, caller, Some(form)).await;
                    if name.contains("B admin") {
                        expect(status, StatusCode::CREATED, "token for an own organisation");
                        assert!(body.contains("socle_pat_"), "the secret is shown once");
                    } else {
                        // The syndicate's admin administers commune B but holds no membership there.
                        expect(status, StatusCode::UNPROCESSABLE_ENTITY, "token for another organisation");
                        assert!(!body.contains("socle_pat_"));
                    }
                }
            }
        }
        "/compte/jetons/{id}/revocation" => {
            // Someone else's token: the agent of commune B has no session here.
            let victim = callers.iter().find(|c| c.name == "agent of commune B").unwrap().token.clone().unwrap();
            let victim_id = store.token_by_secret_hash(&hash_secret(&victim)).await.unwrap().unwrap().id.to_string();
            let p = path.replace("{id}", &victim_id);
            let (status, _) = send(base, Method::POST, &p, caller, Some("csrf={csrf}")).await;
            let want = match k {
                "anonymous" => StatusCode::UNAUTHORIZED,
                "token" => StatusCode::FORBIDDEN,
                _ => StatusCode::NOT_FOUND,
            };
            expect(status, want, "revoking someone else's token");
            let probe = Caller {
                name: "probe",
                token: Some(victim),
                session: None,
                email: None,
                sees: BTreeSet::new(),
                admin: false,
                sees_users: BTreeSet::new(),
            };
            expect(
                call(base, "/api/v1/entities?limit=1", &probe).await.0,
                StatusCode::OK,
                "the victim's token still works",
            );
        }
        "/alertes" | "/regles" | "/alertes/{id}" | "/regles/{id}" | "/alertes/{id}/{action}" => {
            let ingestion = name.starts_with("ingestion");
            let page = match path {
                "/alertes/{id}" => "/alertes/999999".to_owned(),
                "/regles/{id}" => "/regles/rule-b".to_owned(),
                "/alertes/{id}/{action}" => "/alertes/999999/commentaire".to_owned(),
                p => p.to_owned(),
            };
            if path == "/alertes/{id}/{action}" || path == "/regles/{id}" {
                let form = "csrf=wrong&texte=x&definition=%7B%7D&action=apercu";
                let (status, _) = send(base, Method::POST, &page, caller, Some(form)).await;
                let reads_b = [
                    "agent of commune B",
                    "admin of the syndicate",
                    "session of the admin of the syndicate",
                    "session of A agent and B admin",
                ]
                .contains(&name);
                // A rule hidden from the caller answers like an absent one, before the body is read.
                let handler = if path == "/regles/{id}" && reads_b {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::NOT_FOUND
                };
                let want = match k {
                    "anonymous" => StatusCode::UNAUTHORIZED,
                    _ if ingestion => StatusCode::FORBIDDEN,
                    _ => no_csrf(handler),
                };
                expect(status, want, &format!("POST {page} without CSRF"));
                if path == "/alertes/{id}/{action}" {
                    return;
                }
            }
            let (status, body) = call(base, &page, caller).await;
            let visible = match path {
                "/alertes/{id}" => false,
                "/regles/{id}" => body.contains("rule-b") && status == StatusCode::OK,
                _ => true,
            };
            let want = match k {
                "anonymous" => StatusCode::SEE_OTHER,
                _ if ingestion => StatusCode::FORBIDDEN,
                _ if visible => StatusCode::OK,
                _ => StatusCode::NOT_FOUND,
            };
            expect(status, want, &page);
            if path == "/regles/{id}" && status == StatusCode::OK {
                let reads_b = [
                    "agent of commune B",
                    "admin of the syndicate",
                    "session of the admin of the syndicate",
                    "session of A agent and B admin",
                ];
                assert!(reads_b.contains(&name), "{name} reads commune B's rule page");
            }
            alerting::assert_no_foreign_alert(&body, caller, &page);
            assert_no_foreign_marker(&body, caller, &page);
        }
        "/donnees" => {
            let (status, body) = call(base, path, caller).await;
            expect(status, StatusCode::OK, path);
            for (c, v) in &caller.sees {
                assert!(body.contains(&marker(c, *v)), "{name}: the catalogue lists {}", marker(c, *v));
            }
            for commune in ["a", "b"] {
                for v in VISIBILITIES {
                    if !caller.sees.contains(&(commune.to_owned(), v)) {
                        assert!(!body.contains(&dataset_id(commune, v)), "{name}: the catalogue leaks a dataset");
                    }
                }
            }
            assert_no_foreign_marker(&body, caller, path);
            // A search and a facet never widen what is listed.
            let (status, body) = call(base, "/donnees?q=jeu&producteur=x&licence=etalab-2.0", caller).await;
            expect(status, StatusCode::OK, "catalogue search");
            assert_no_foreign_marker(&body, caller, path);
        }
        "/donnees/{id}" | "/donnees/{id}/widget/{kind}" => {
            let widget = path.ends_with("{kind}");
            for commune in ["a", "b"] {
                for v in VISIBILITIES {
                    let id = dataset_id(commune, v);
                    for kind in if widget { &["table", "chart"][..] } else { &[""][..] } {
                        let page = path.replace("{id}", &id).replace("{kind}", kind) + "?where=true";
                        let (status, body) = call(base, &page, caller).await;
                        // Widgets are framed by other sites: public datasets only, whoever asks.
                        let visible = if widget {
                            v == Visibility::Public
                        } else {
                            caller.sees.contains(&(commune.to_owned(), v))
                        };
                        expect(status, if visible { StatusCode::OK } else { StatusCode::NOT_FOUND }, &page);
                        assert_no_foreign_marker(&body, caller, &page);
                        assert!(visible || !body.contains(&id), "{name}: {page} names the hidden dataset");
                    }
                }
            }
            let absent = path.replace("{id}", "absent").replace("{kind}", "table");
            expect(call(base, &absent, caller).await.0, StatusCode::NOT_FOUND, &absent);
        }
        "/manifest.webmanifest" | "/sw.js" | "/icone.svg" => {
            let (status, body) = call(base, path, caller).await;
            expect(status, StatusCode::OK, path);
            assert_no_foreign_marker(&body, caller, path);
        }
        other => panic!("web route {other} has no isolation rule: add one to this matrix"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_isolation_matrix() {
    matrix(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_isolation_matrix() {
    matrix(TestStore::postgres().await).await;
}

/// Ingestion endpoints (ingestion tokens only, for their own organisation's
/// devices) and the device and dead-letter routes (administrators with their
/// member communes, and agents; writing needs a `write` scope; another
/// organisation's device or letter answers like an absent one).
mod ingestion {
    use reqwest::{Method, StatusCode};
    use socle_api::Access;
    use socle_domain::{EntityId, OrganisationId};
    use socle_storage::{DynStore, NewDeadLetter, NewDevice};

    use super::{entity_id, Caller, VISIBILITIES};

    pub const EUI_A: &str = "a84041000181c7e2";
    pub const EUI_B: &str = "a84041000181c7e9";
    const CS_UP: &str = include_str!("../../socle-ingest/testdata/chirpstack-v4-up.json");
    const TTN_UP: &str = include_str!("../../socle-ingest/testdata/ttn-v3-up.json");

    pub fn covers(path: &str) -> bool {
        path.starts_with("/ingest/") || path.starts_with("/api/v1/devices") || path.starts_with("/api/v1/dead-letters")
    }

    /// The dead letters of each commune: (commune, id).
    pub type Letters = Vec<(&'static str, i64)>;

    /// A device per commune feeding its private building, and a dead letter
    /// per commune that a replay can store (a generic message for that device).
    pub async fn fixture(s: &DynStore) -> Letters {
        let _ = VISIBILITIES;
        let mut letters = Vec::new();
        for (commune, eui) in [("a", EUI_A), ("b", EUI_B)] {
            let org = OrganisationId::parse(&format!("commune-{commune}")).unwrap();
            s.upsert_devices(&[NewDevice {
                dev_eui: eui.into(),
                name: format!("DEVICE-MARKER-{commune}"),
                model: "dragino-ldds75".into(),
                organisation: org.clone(),
                entity: EntityId::parse(&entity_id(commune, socle_domain::Visibility::Private)).unwrap(),
                mappings: serde_json::json!([{"field": "Bat", "attribute": "batteryVoltage", "unitCode": "VLT"}]),
            }])
            .await
            .unwrap();
            let body = format!(r#"{{"device": "{eui}", "values": {{"Bat": 3.7}}, "id": "LETTER-MARKER-{commune}"}}"#);
            let id = s
                .add_dead_letter(&NewDeadLetter {
                    at: chrono::Utc::now(),
                    organisation: org,
                    source: "generic".into(),
                    event: None,
                    dev_eui: Some(eui.into()),
                    reason_code: "no-mapping".into(),
                    reason: "test".into(),
                    body_size: body.len() as u64,
                    body: body.into_bytes(),
                })
                .await
                .unwrap();
            letters.push((commune, id));
        }
        letters
    }

    /// Communes whose devices the caller reads, and those where it may change them.
    fn operates(caller: &Caller) -> (Vec<&'static str>, Vec<&'static str>) {
        match caller.name {
            "admin of commune A" | "agent of commune A" | "A agent and B admin, token for A" => (vec!["a"], vec!["a"]),
            "session of the agent of commune A" => (vec!["a"], vec!["a"]),
            "admin of commune A, read-only token" => (vec!["a"], vec![]),
            "agent of commune B" => (vec!["b"], vec!["b"]),
            "admin of the syndicate" | "session of the admin of the syndicate" | "session of A agent and B admin" => {
                (vec!["a", "b"], vec!["a", "b"])
            }
            "anonymous"
            | "elected of commune A"
            | "partner"
            | "ingestion token of commune A"
            | "revoked admin token"
            | "session of the partner" => (vec![], vec![]),
            other => panic!("caller {other:?} has no ingestion rule: say which devices it manages"),
        }
    }

    async fn request(
        base: &str,
        method: Method,
        path: &str,
        caller: &Caller,
        body: Option<String>,
    ) -> (StatusCode, String) {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut req = client.request(method, format!("{base}{path}"));
        if let Some(t) = &caller.token {
            req = req.bearer_auth(t);
        }
        if let Some((id, csrf)) = &caller.session {
            req = req.header("cookie", format!("socle_session={id}")).header("x-csrf-token", csrf);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// 401 for nobody (or a revoked token), 403 for anyone else not allowed.
    fn refused(caller: &Caller) -> StatusCode {
        if (caller.token.is_none() && caller.session.is_none()) || caller.name.starts_with("revoked") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        }
    }

    fn device_json(eui: &str, commune: &str, name: &str) -> String {
        serde_json::json!({"devEui": eui, "name": name, "model": "dragino-ldds75",
            "organisation": format!("commune-{commune}"),
            "entity": entity_id(commune, socle_domain::Visibility::Private),
            "mappings": [{"field": "Bat", "attribute": "batteryVoltage", "unitCode": "VLT"}]})
        .to_string()
    }

    pub async fn rules(base: &str, route: &socle_api::RouteSpec, caller: &Caller, letters: &Letters, s: &DynStore) {
        let (reads, writes) = operates(caller);
        let staff = !reads.is_empty();
        let name = caller.name;
        // A fresh DevEUI per caller, for creations.
        let fresh = format!("00000000000001{:02x}", name.len() * 7 % 256);
        match route.path {
            "/ingest/chirpstack" | "/ingest/ttn" | "/ingest/generic" => {
                assert_eq!(route.access, Access::Ingestion, "{} is for ingestion tokens only", route.path);
                for (commune, eui) in [("a", EUI_A), ("b", EUI_B)] {
                    let (path, body) = match route.path {
                        "/ingest/chirpstack" => ("/ingest/chirpstack?event=up", CS_UP.replace(EUI_A, eui)),
                        "/ingest/ttn" => ("/ingest/ttn", TTN_UP.replace(&EUI_A.to_uppercase(), &eui.to_uppercase())),
                        _ => ("/ingest/generic", format!(r#"{{"device": "{eui}", "values": {{"Bat": 3.338}}}}"#)),
                    };
                    let (status, text) = request(base, Method::POST, path, caller, Some(body)).await;
                    let expected = match (name, commune) {
                        ("ingestion token of commune A", "a") => StatusCode::OK,
                        // Another organisation's device is unknown to this token.
                        ("ingestion token of commune A", _) => StatusCode::NOT_FOUND,
                        _ => refused(caller),
                    };
                    assert_eq!(status, expected, "{name} {path} for commune {commune}: {text}");
                    assert!(!text.contains("DEVICE-MARKER"), "{name}: {text}");
                }
            }
            "/api/v1/devices" => {
                assert_eq!(route.access, Access::Staff);
                let (status, text) = request(base, Method::GET, route.path, caller, None).await;
                if !staff {
                    assert_eq!(status, refused(caller), "{name} lists devices");
                } else {
                    assert_eq!(status, StatusCode::OK, "{name}: {text}");
                    for (commune, eui) in [("a", EUI_A), ("b", EUI_B)] {
                        assert_eq!(text.contains(eui), reads.contains(&commune), "{name} lists {eui}? {text}");
                    }
                }
                let (status, text) =
                    request(base, Method::POST, route.path, caller, Some(device_json(&fresh, "b", &fresh))).await;
                let expected = match (staff, writes.contains(&"b")) {
                    (_, true) => StatusCode::CREATED,
                    (true, false) => StatusCode::FORBIDDEN,
                    (false, _) => refused(caller),
                };
                assert_eq!(status, expected, "{name} creates a device in commune B: {text}");
                s.delete_device(&fresh).await.unwrap();
            }
            "/api/v1/devices/import" => {
                let csv = format!(
                    "dev_eui,name,model,organisation,entity\n{fresh},{fresh},dragino-ldds75,commune-b,{}\n",
                    entity_id("b", socle_domain::Visibility::Private)
                );
                let (status, text) = request(base, Method::POST, route.path, caller, Some(csv)).await;
                let expected = match (staff, writes.contains(&"b")) {
                    (_, true) => StatusCode::OK,
                    (true, false) => StatusCode::FORBIDDEN,
                    (false, _) => refused(caller),
                };
                assert_eq!(status, expected, "{name} imports a device of commune B: {text}");
                s.delete_device(&fresh).await.unwrap();
            }
            "/api/v1/devices/{devEui}" => {
                for (commune, eui) in [("a", EUI_A), ("b", EUI_B)] {
                    let path = format!("/api/v1/devices/{eui}");
                    let (status, text) = request(base, Method::GET, &path, caller, None).await;
                    let expected = if reads.contains(&commune) {
                        StatusCode::OK
                    } else if staff {
                        StatusCode::NOT_FOUND
                    } else {
                        refused(caller)
                    };
                    assert_eq!(status, expected, "{name} GET {path}: {text}");
                    if !reads.contains(&commune) {
                        assert!(!text.contains("DEVICE-MARKER"), "{name}: {text}");
                    }
                    // Putting the same definition back changes nothing.
                    let same = device_json(eui, commune, &format!("DEVICE-MARKER-{commune}"));
                    let (status, text) = request(base, Method::PUT, &path, caller, Some(same)).await;
                    let expected = if writes.contains(&commune) {
                        StatusCode::OK
                    } else if reads.contains(&commune) {
                        StatusCode::FORBIDDEN
                    } else if staff {
                        // A DevEUI registered elsewhere is taken; where, is not said.
                        StatusCode::CONFLICT
                    } else {
                        refused(caller)
                    };
                    assert_eq!(status, expected, "{name} PUT {path}: {text}");
                    assert!(
                        !text.contains(&format!("commune-{commune}")) || reads.contains(&commune),
                        "{name}: {text}"
                    );
                    if !writes.contains(&commune) {
                        let (status, text) = request(base, Method::DELETE, &path, caller, None).await;
                        let expected = if reads.contains(&commune) {
                            StatusCode::FORBIDDEN
                        } else if staff {
                            StatusCode::NOT_FOUND
                        } else {
                            refused(caller)
                        };
                        assert_eq!(status, expected, "{name} DELETE {path}: {text}");
                    }
                }
                let (status, _) = request(base, Method::DELETE, "/api/v1/devices/00000000000000ff", caller, None).await;
                assert_eq!(status, if staff { StatusCode::NOT_FOUND } else { refused(caller) }, "{name} DELETE absent");
            }
            "/api/v1/devices/{devEui}/downlinks" => {
                for (commune, eui) in [("a", EUI_A), ("b", EUI_B)] {
                    let path = format!("/api/v1/devices/{eui}/downlinks");
                    let hidden = if staff { StatusCode::NOT_FOUND } else { refused(caller) };
                    let (status, text) = request(base, Method::GET, &path, caller, None).await;
                    let expected = if reads.contains(&commune) { StatusCode::OK } else { hidden };
                    assert_eq!(status, expected, "{name} GET {path}: {text}");
                    let command = r#"{"fPort": 10, "hex": "01ff", "confirmed": true}"#.to_owned();
                    let (status, text) = request(base, Method::POST, &path, caller, Some(command)).await;
                    let expected = if writes.contains(&commune) {
                        StatusCode::ACCEPTED
                    } else if reads.contains(&commune) {
                        StatusCode::FORBIDDEN
                    } else {
                        hidden
                    };
                    assert_eq!(status, expected, "{name} POST {path}: {text}");
                    if !reads.contains(&commune) {
                        assert!(!text.contains("01ff") && !text.contains("AwE"), "{name}: {text}");
                    }
                }
            }
            "/api/v1/dead-letters" => {
                let (status, text) = request(base, Method::GET, route.path, caller, None).await;
                if !staff {
                    assert_eq!(status, refused(caller), "{name} lists dead letters");
                } else {
                    assert_eq!(status, StatusCode::OK, "{name}: {text}");
                    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let ids: Vec<i64> =
                        json["items"].as_array().unwrap().iter().map(|l| l["id"].as_i64().unwrap()).collect();
                    for (commune, id) in letters {
                        assert_eq!(
                            ids.contains(id),
                            reads.contains(commune),
                            "{name} lists letter of {commune}? {text}"
                        );
                    }
                }
            }
            "/api/v1/dead-letters/{id}" | "/api/v1/dead-letters/{id}/replay" => {
                let replay = route.path.ends_with("/replay");
                for (commune, id) in letters {
                    let path = route.path.replace("{id}", &id.to_string());
                    let method = if replay { Method::POST } else { Method::GET };
                    let (status, text) = request(base, method, &path, caller, None).await;
                    let expected = if (replay && writes.contains(commune)) || (!replay && reads.contains(commune)) {
                        StatusCode::OK
                    } else if reads.contains(commune) {
                        StatusCode::FORBIDDEN
                    } else if staff {
                        StatusCode::NOT_FOUND
                    } else {
                        refused(caller)
                    };
                    assert_eq!(status, expected, "{name} {path}: {text}");
                    if !reads.contains(commune) {
                        assert!(!text.contains("LETTER-MARKER"), "{name}: {text}");
                    }
                }
            }
            other => panic!("route {other} has no ingestion rule"),
        }
    }

    /// What the whole matrix left: commune A's token stored only in A; B's
    /// device got only the replay of its own dead letter.
    pub async fn after_matrix(s: &DynStore) {
        let a = s.device(EUI_A).await.unwrap().unwrap().health;
        // ChirpStack's and TTN's reference frames (their own keys), the generic message, the replayed letter.
        assert_eq!(a.frames_received, 4);
        let b = s.device(EUI_B).await.unwrap().unwrap().health;
        assert_eq!(b.frames_received, 1, "only B's own replayed letter reached B's device");
        let b_entity = s.entity(&EntityId::parse(&entity_id("b", socle_domain::Visibility::Private)).unwrap()).await;
        let bat =
            &b_entity.unwrap().unwrap().attributes[&socle_domain::AttributeName::parse("batteryVoltage").unwrap()];
        assert!(
            matches!(bat, socle_domain::Attribute::Property { value, .. } if value == &serde_json::json!(3.7)),
            "B's value is its own letter's: {bat:?}"
        );
    }
}

/// Alerts, rules and notification settings: an alert is seen by whoever sees
/// its entity as a member (a public entity's alert as an internal one), acted
/// on by the staff of its organisation; rules are read by the organisation's
/// members and written by its administrators; subscriptions and browsers are
/// each person's own; webhooks belong to administrators.
mod alerting {
    use std::collections::BTreeSet;

    use chrono::Utc;
    use reqwest::{Method, StatusCode};
    use serde_json::{json, Value};
    use socle_domain::{EntityId, OrganisationId, Visibility};
    use socle_storage::{AlertWrite, DynStore, PushSubscriptionRecord, RuleRecord, StoredSubscription, StoredWebhook};

    use super::{entity_id, kind, Caller, VISIBILITIES};

    pub fn covers(path: &str) -> bool {
        ["/api/v1/alerts", "/api/v1/rules", "/api/v1/me/", "/api/v1/webhooks", "/api/v1/push/"]
            .iter()
            .any(|p| path.starts_with(p))
    }

    pub struct Fixture {
        /// (commune, visibility of the entity, alert id)
        alerts: Vec<(&'static str, Visibility, i64)>,
        /// Webhook of each commune.
        webhooks: Vec<(&'static str, uuid::Uuid)>,
        /// A subscription and a browser of somebody who is none of the callers.
        foreign_subscription: uuid::Uuid,
        foreign_push: uuid::Uuid,
    }

    fn rule(id: &str, commune: &str) -> Value {
        json!({
            "id": id, "organisation": format!("commune-{commune}"),
            "label": {"fr": "Consommation", "en": "Consumption"},
            "target": {"type": "Building"},
            "condition": {"type": "threshold", "attribute": "consumption", "direction": "above", "level": 10.0},
        })
    }

    pub async fn fixture(s: &DynStore) -> Fixture {
        let now = Utc::now();
        let mut writes = Vec::new();
        let mut webhooks = Vec::new();
        for commune in ["a", "b"] {
            let org = OrganisationId::parse(&format!("commune-{commune}")).unwrap();
            let id = format!("rule-{commune}");
            let r: socle_rules::Rule = serde_json::from_value(rule(&id, commune)).unwrap();
            s.upsert_rule(&RuleRecord {
                id: id.clone(),
                organisation: org.clone(),
                definition: serde_json::to_value(&r).unwrap(),
                enabled: true,
                author: None,
                created_at: now,
                modified_at: now,
            })
            .await
            .unwrap();
            for v in VISIBILITIES {
                writes.push(AlertWrite::Open {
                    rule: id.clone(),
                    entity: EntityId::parse(&entity_id(commune, v)).unwrap(),
                    entity_type: "Building".into(),
                    organisation: org.clone(),
                    severity: "high".into(),
                    at: now,
                    since: now,
                    value: Some(12.0),
                    message_fr: format!("ALERT-MARKER-{commune}-{}", v.as_str()),
                    message_en: format!("ALERT-MARKER-{commune}-{}", v.as_str()),
                });
            }
            let w = StoredWebhook {
                id: uuid::Uuid::new_v4(),
                organisation: org,
                url: "http://127.0.0.1:9/".into(),
                secret: format!("WEBHOOK-SECRET-{commune}"),
                spec: json!({}),
                created_at: now,
                modified_at: now,
            };
            s.put_webhook(&w).await.unwrap();
            webhooks.push((commune, w.id));
        }
        let changes = s.record_transitions(&writes, None).await.unwrap();
        let alerts = changes
            .iter()
            .map(|c| {
                let id = c.alert.entity.as_str();
                let commune = if id.contains(":a-") { "a" } else { "b" };
                let v = VISIBILITIES.into_iter().find(|v| id.ends_with(&format!("-{}", v.as_str()))).unwrap();
                (commune, v, c.alert.id)
            })
            .collect::<Vec<_>>();
        assert_eq!(alerts.len(), 8);
        let stranger =
            s.create_user(&socle_domain::Email::parse("stranger@test.fr").unwrap(), "stranger", None).await.unwrap();
        let sub = StoredSubscription {
            id: uuid::Uuid::new_v4(),
            user: stranger.id,
            spec: json!({"channels": {"email": true}}),
            created_at: now,
            modified_at: now,
        };
        s.put_subscription(&sub).await.unwrap();
        let push = s
            .put_push_subscription(&PushSubscriptionRecord {
                id: uuid::Uuid::new_v4(),
                user: stranger.id,
                endpoint: "https://push.example/stranger".into(),
                p256dh: "x".into(),
                auth: "y".into(),
                created_at: now,
            })
            .await
            .unwrap();
        Fixture { alerts, webhooks, foreign_subscription: sub.id, foreign_push: push }
    }

    /// Communes where the caller acts on alerts (staff with a write scope).
    fn acts(c: &Caller) -> Vec<&'static str> {
        match c.name {
            "admin of commune A" | "agent of commune A" | "A agent and B admin, token for A" => vec!["a"],
            "session of the agent of commune A" => vec!["a"],
            "agent of commune B" => vec!["b"],
            "admin of the syndicate" | "session of the admin of the syndicate" | "session of A agent and B admin" => {
                vec!["a", "b"]
            }
            _ => vec![],
        }
    }

    /// Communes whose rules the caller reads.
    fn reads_rules(c: &Caller) -> Vec<&'static str> {
        match c.name {
            "agent of commune B" => vec!["b"],
            "admin of the syndicate" | "session of the admin of the syndicate" | "session of A agent and B admin" => {
                vec!["a", "b"]
            }
            n if n.contains("commune A") || n.contains("token for A") => vec!["a"],
            _ => vec![],
        }
    }

    /// Communes whose rules and webhooks the caller administers.
    fn administers(c: &Caller) -> Vec<&'static str> {
        match c.name {
            "admin of commune A" => vec!["a"],
            "admin of the syndicate" | "session of the admin of the syndicate" => vec!["a", "b"],
            "session of A agent and B admin" => vec!["b"],
            _ => vec![],
        }
    }

    fn is_member(c: &Caller) -> bool {
        matches!(kind(c), "token" | "session") && !c.name.starts_with("ingestion")
    }

    /// Whether the caller sees the alert of this entity: as its entity, a public one as internal.
    fn sees_alert(c: &Caller, commune: &str, v: Visibility) -> bool {
        let v = if v == Visibility::Public { Visibility::Internal } else { v };
        is_member(c) && c.sees.contains(&(commune.to_owned(), v))
    }

    async fn request(base: &str, c: &Caller, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, String) {
        let client = reqwest::Client::new();
        let mut req = client.request(method, format!("{base}{path}"));
        if let Some(t) = &c.token {
            req = req.bearer_auth(t);
        }
        if let Some((id, csrf)) = &c.session {
            req = req.header("cookie", format!("socle_session={id}")).header("x-csrf-token", csrf);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let res = req.send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// What a route of `Access::Member` answers a caller that is no member.
    fn outsider(c: &Caller) -> Option<StatusCode> {
        match kind(c) {
            "anonymous" | "revoked" => Some(StatusCode::UNAUTHORIZED),
            _ if c.name.starts_with("ingestion") => Some(StatusCode::FORBIDDEN),
            _ => None,
        }
    }

    pub fn assert_no_foreign_alert(body: &str, c: &Caller, what: &str) {
        for commune in ["a", "b"] {
            for v in VISIBILITIES {
                if !sees_alert(c, commune, v) {
                    let m = format!("ALERT-MARKER-{commune}-{}", v.as_str());
                    assert!(!body.contains(&m), "{}: {what} leaks {m}", c.name);
                }
            }
        }
        assert!(!body.contains("WEBHOOK-SECRET"), "{}: {what} shows a webhook secret", c.name);
    }

    pub async fn rules(base: &str, route: &socle_api::RouteSpec, c: &Caller, f: &Fixture) {
        let name = c.name;
        let idx = name.len() + name.bytes().map(usize::from).sum::<usize>();
        match route.path {
            "/api/v1/alerts" => {
                let (status, body) = request(base, c, Method::GET, "/api/v1/alerts?limit=1000", None).await;
                if let Some(s) = outsider(c) {
                    assert_eq!(status, s, "{name} lists alerts");
                    return;
                }
                assert_eq!(status, StatusCode::OK, "{name}: {body}");
                let json: Value = serde_json::from_str(&body).unwrap();
                let got: BTreeSet<i64> =
                    json["items"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect();
                let expected: BTreeSet<i64> =
                    f.alerts.iter().filter(|(c_, v, _)| sees_alert(c, c_, *v)).map(|(_, _, id)| *id).collect();
                assert_eq!(got, expected, "{name}: alert list");
                assert_eq!(json["total"].as_u64(), Some(expected.len() as u64));
                let (_, body) = request(base, c, Method::GET, "/api/v1/alerts?organisation=commune-b", None).await;
                assert_no_foreign_alert(&body, c, "alerts of commune B");
            }
            "/api/v1/alerts/{id}" => {
                for (commune, v, id) in &f.alerts {
                    let (status, body) = request(base, c, Method::GET, &format!("/api/v1/alerts/{id}"), None).await;
                    let expected = outsider(c).unwrap_or(if sees_alert(c, commune, *v) {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    });
                    assert_eq!(status, expected, "{name} reads the alert of {commune}-{}", v.as_str());
                    assert_no_foreign_alert(&body, c, "an alert");
                    let (status, _) =
                        request(base, c, Method::GET, &format!("/api/v1/alerts/{id}?format=ngsi-ld"), None).await;
                    assert_eq!(status, expected, "{name}: NGSI-LD form");
                }
            }
            path if path.starts_with("/api/v1/alerts/{id}/") => {
                let action = path.rsplit('/').next().unwrap();
                let body = match action {
                    "comments" => json!({"text": "vu"}),
                    // An assignee nobody may be: refused after the access checks.
                    "assign" => json!({"assignee": "nobody"}),
                    _ => json!({}),
                };
                for (commune, v, id) in &f.alerts {
                    let (status, _) =
                        request(base, c, Method::POST, &format!("/api/v1/alerts/{id}/{action}"), Some(&body)).await;
                    let allowed: Vec<StatusCode> = match outsider(c) {
                        Some(s) => vec![s],
                        None if !sees_alert(c, commune, *v) => vec![StatusCode::NOT_FOUND],
                        None if !acts(c).contains(commune) => vec![StatusCode::FORBIDDEN],
                        // The first to resolve closes it; the others find it resolved.
                        None => match action {
                            "assign" => vec![StatusCode::UNPROCESSABLE_ENTITY, StatusCode::CONFLICT],
                            _ => vec![StatusCode::OK, StatusCode::CONFLICT],
                        },
                    };
                    assert!(allowed.contains(&status), "{name} {action} {commune}-{}: {status}", v.as_str());
                }
                if kind(c) == "session" {
                    // A browser without its CSRF token acts on nothing.
                    let (id, _) = c.session.as_ref().unwrap();
                    let res = reqwest::Client::new()
                        .post(format!("{base}/api/v1/alerts/{}/comments", f.alerts[0].2))
                        .header("cookie", format!("socle_session={id}"))
                        .header("content-type", "application/json")
                        .body(r#"{"text":"x"}"#)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}: no CSRF token");
                }
            }
            "/api/v1/rules" => {
                let (status, body) = request(base, c, Method::GET, "/api/v1/rules", None).await;
                if let Some(s) = outsider(c) {
                    assert_eq!(status, s, "{name} lists rules");
                    let (status, _) = request(base, c, Method::POST, "/api/v1/rules", Some(&rule("x", "a"))).await;
                    assert_eq!(status, s, "{name} creates a rule");
                    return;
                }
                let got: BTreeSet<String> = serde_json::from_str::<Value>(&body)
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["organisation"].as_str().unwrap().trim_start_matches("commune-").to_owned())
                    .collect();
                let expected: BTreeSet<String> = reads_rules(c).into_iter().map(String::from).collect();
                assert_eq!(got, expected, "{name}: rule list");
                for commune in ["a", "b"] {
                    let id = format!("m{idx}-{commune}");
                    let (status, body) =
                        request(base, c, Method::POST, "/api/v1/rules", Some(&rule(&id, commune))).await;
                    let expected =
                        if administers(c).contains(&commune) { StatusCode::CREATED } else { StatusCode::FORBIDDEN };
                    assert_eq!(status, expected, "{name} creates a rule of {commune}: {body}");
                }
            }
            "/api/v1/rules/preview" => {
                for commune in ["a", "b"] {
                    let (status, _) = request(base, c, Method::POST, route.path, Some(&rule("preview", commune))).await;
                    let expected = outsider(c).unwrap_or(if reads_rules(c).contains(&commune) {
                        StatusCode::OK
                    } else {
                        StatusCode::FORBIDDEN
                    });
                    assert_eq!(status, expected, "{name} previews a rule of {commune}");
                }
            }
            "/api/v1/rules/{id}" => {
                for commune in ["a", "b"] {
                    let path = format!("/api/v1/rules/rule-{commune}");
                    let reads = reads_rules(c).contains(&commune);
                    let edits = administers(c).contains(&commune);
                    let (status, _) = request(base, c, Method::GET, &path, None).await;
                    let expected = outsider(c).unwrap_or(if reads { StatusCode::OK } else { StatusCode::NOT_FOUND });
                    assert_eq!(status, expected, "{name} reads rule-{commune}");
                    let (status, _) =
                        request(base, c, Method::PUT, &path, Some(&rule(&format!("rule-{commune}"), commune))).await;
                    let expected = outsider(c).unwrap_or(match (reads, edits) {
                        (_, true) => StatusCode::OK,
                        (true, false) => StatusCode::FORBIDDEN,
                        // Taken by an organisation the caller does not read: refused, not revealed.
                        (false, false) => StatusCode::UNPROCESSABLE_ENTITY,
                    });
                    assert_eq!(status, expected, "{name} replaces rule-{commune}");
                    if outsider(c).is_none() && reads && edits {
                        // Deleting the shared fixture would change the next callers' answers:
                        // editors delete the rule they created themselves.
                        let mine = format!("/api/v1/rules/m{idx}-{commune}");
                        let (status, _) = request(base, c, Method::DELETE, &mine, None).await;
                        assert_eq!(status, StatusCode::NO_CONTENT, "{name} deletes its rule");
                        assert_eq!(request(base, c, Method::GET, &mine, None).await.0, StatusCode::NOT_FOUND);
                    } else {
                        let (status, _) = request(base, c, Method::DELETE, &path, None).await;
                        let expected =
                            outsider(c).unwrap_or(if reads { StatusCode::FORBIDDEN } else { StatusCode::NOT_FOUND });
                        assert_eq!(status, expected, "{name} deletes rule-{commune}");
                    }
                }
            }
            "/api/v1/me/subscriptions" | "/api/v1/me/subscriptions/{id}" => {
                let foreign = format!("/api/v1/me/subscriptions/{}", f.foreign_subscription);
                let (status, body) = request(base, c, Method::GET, "/api/v1/me/subscriptions", None).await;
                if let Some(s) = outsider(c) {
                    assert_eq!(status, s, "{name} lists subscriptions");
                    assert_eq!(request(base, c, Method::GET, &foreign, None).await.0, s);
                    return;
                }
                assert_eq!(status, StatusCode::OK);
                assert!(!body.contains(&f.foreign_subscription.to_string()), "{name} sees a stranger's subscription");
                for method in [Method::GET, Method::DELETE] {
                    assert_eq!(request(base, c, method, &foreign, None).await.0, StatusCode::NOT_FOUND, "{name}");
                }
                let put = json!({"channels": {"email": true}});
                assert_eq!(request(base, c, Method::PUT, &foreign, Some(&put)).await.0, StatusCode::NOT_FOUND);
            }
            "/api/v1/webhooks" | "/api/v1/webhooks/{id}" => {
                let (status, body) = request(base, c, Method::GET, "/api/v1/webhooks", None).await;
                let refused = match kind(c) {
                    "anonymous" | "revoked" => Some(StatusCode::UNAUTHORIZED),
                    _ if !c.admin => Some(StatusCode::FORBIDDEN),
                    _ => None,
                };
                if let Some(s) = refused {
                    assert_eq!(status, s, "{name} lists webhooks");
                    return;
                }
                let got: BTreeSet<String> = serde_json::from_str::<Value>(&body)
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w["organisation"].as_str().unwrap().trim_start_matches("commune-").to_owned())
                    .collect();
                let expected: BTreeSet<String> = administers(c).into_iter().map(String::from).collect();
                assert_eq!(got, expected, "{name}: webhooks");
                assert!(!body.contains("WEBHOOK-SECRET"));
                for (commune, id) in &f.webhooks {
                    let (status, _) = request(base, c, Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
                    let ok = administers(c).contains(commune);
                    assert_eq!(
                        status,
                        if ok { StatusCode::OK } else { StatusCode::NOT_FOUND },
                        "{name} webhook {commune}"
                    );
                }
            }
            "/api/v1/push/subscriptions" | "/api/v1/push/subscriptions/{id}" => {
                let path = format!("/api/v1/push/subscriptions/{}", f.foreign_push);
                let (status, _) = request(base, c, Method::DELETE, &path, None).await;
                assert_eq!(status, outsider(c).unwrap_or(StatusCode::NOT_FOUND), "{name} deletes a stranger's browser");
            }
            "/api/v1/push/vapid-public-key" => {
                let (status, _) = request(base, c, Method::GET, route.path, None).await;
                let expected =
                    if kind(c) == "revoked" { StatusCode::UNAUTHORIZED } else { StatusCode::SERVICE_UNAVAILABLE };
                assert_eq!(status, expected, "{name}: no key in this test server");
            }
            other => panic!("route {other} has no alerting rule"),
        }
    }
}

/// NGSI-LD: reads show exactly what the caller sees (hidden answers like
/// absent); writes to an entity the caller does not see answer like an
/// absent one, and change nothing.
async fn ngsi_rules(base: &str, path: &str, caller: &Caller) {
    let revoked = caller.name.starts_with("revoked");
    match path {
        "/ngsi-ld/v1/entities" | "/ngsi-ld/v1/entityOperations/query" | "/ngsi-ld/v1/temporal/entities" => {
            let list = if path.contains("temporal") { path } else { "/ngsi-ld/v1/entities" };
            let (status, body) = call(base, &format!("{list}?type=Building&limit=1000"), caller).await;
            if revoked {
                assert_eq!(status, StatusCode::UNAUTHORIZED);
                return;
            }
            let json: Value = serde_json::from_str(&body).unwrap();
            let got: BTreeSet<String> =
                json.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
            let expected: BTreeSet<String> = caller.sees.iter().map(|(c, v)| entity_id(c, *v)).collect();
            assert_eq!(got, expected, "{}: NGSI-LD entity list", caller.name);
            for q in ["q=name~=MARKER", "idPattern=.*", "attrs=name", "type=Building&NGSILD-Tenant=commune-b"] {
                let (_, body) = call(base, &format!("/ngsi-ld/v1/entities?{q}&type=Building"), caller).await;
                assert_no_foreign_marker(&body, caller, q);
            }
        }
        "/ngsi-ld/v1/jsonldContexts" | "/ngsi-ld/v1/jsonldContexts/{id}" => {
            // Only the standard's core context: the same for everyone, no tenant data.
            let (status, body) = call(base, "/ngsi-ld/v1/jsonldContexts/ngsi-ld-core-context-v1.9", caller).await;
            assert_eq!(status, if revoked { StatusCode::UNAUTHORIZED } else { StatusCode::OK }, "{}", caller.name);
            assert_no_foreign_marker(&body, caller, path);
        }
        "/ngsi-ld/v1/types"
        | "/ngsi-ld/v1/types/{type}"
        | "/ngsi-ld/v1/attributes"
        | "/ngsi-ld/v1/attributes/{attr}" => {
            // Types and attributes come from visible entities only: no name of a hidden one.
            for p in [
                "/ngsi-ld/v1/types?details=true",
                "/ngsi-ld/v1/types/Building",
                "/ngsi-ld/v1/attributes?details=true",
                "/ngsi-ld/v1/attributes/name",
            ] {
                let (status, body) = call(base, p, caller).await;
                if revoked {
                    assert_eq!(status, StatusCode::UNAUTHORIZED);
                    continue;
                }
                let count = caller.sees.len();
                if !p.contains('?') {
                    assert!(status.is_success() || status == StatusCode::NOT_FOUND, "{} {p}: {body}", caller.name);
                } else {
                    assert!(status.is_success(), "{} {p}: {body}", caller.name);
                }
                if p.ends_with("/types/Building") {
                    assert_eq!(status.is_success(), count > 0, "{} {p}: {body}", caller.name);
                }
                if p.ends_with("/types/Building") && count > 0 {
                    let json: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(json["entityCount"].as_u64(), Some(count as u64), "{} {p}", caller.name);
                }
                assert_no_foreign_marker(&body, caller, p);
            }
        }
        "/ngsi-ld/v1/subscriptions" | "/ngsi-ld/v1/subscriptions/{id}" => {
            subscriptions::rules(base, path, caller).await;
        }
        path if path.starts_with("/ngsi-ld/v1/entityOperations/") => {
            if caller.session.is_some() {
                return;
            }
            for commune in ["a", "b"] {
                for v in VISIBILITIES {
                    if caller.sees.contains(&(commune.to_owned(), v)) {
                        continue;
                    }
                    let id = entity_id(commune, v);
                    let body = if path.ends_with("/delete") {
                        format!(r#"["{id}"]"#)
                    } else {
                        format!(r#"[{{"id":"{id}","type":"Building","name":"pwned"}}]"#)
                    };
                    let mut req = reqwest::Client::new()
                        .post(format!("{base}{path}"))
                        .header("content-type", "application/json")
                        .body(body);
                    if let Some(t) = &caller.token {
                        req = req.bearer_auth(t);
                    }
                    let res = req.send().await.unwrap();
                    let status = res.status();
                    let text = res.text().await.unwrap();
                    let expected = if revoked { StatusCode::UNAUTHORIZED } else { StatusCode::MULTI_STATUS };
                    assert_eq!(status, expected, "{} {path} {id}: {text}", caller.name);
                    // Refused per entity: as absent (update, merge, delete) or as a taken id (create, upsert).
                    if !revoked {
                        let kind = if path.ends_with("/create") || path.ends_with("/upsert") {
                            "AlreadyExists"
                        } else {
                            "ResourceNotFound"
                        };
                        assert!(text.contains(kind), "{} {path} {id}: {text}", caller.name);
                    }
                    assert_no_foreign_marker(&text, caller, &format!("{path} {id}"));
                }
            }
        }
        _ => {
            for commune in ["a", "b"] {
                for v in VISIBILITIES {
                    let id = entity_id(commune, v);
                    let visible = caller.sees.contains(&(commune.to_owned(), v));
                    let (status, body) =
                        if path == "/ngsi-ld/v1/entities/{id}" || path == "/ngsi-ld/v1/temporal/entities/{id}" {
                            call(base, &path.replace("{id}", &id), caller).await
                        } else if caller.session.is_some() || visible {
                            // Writes to visible entities depend on roles (tested in ngsi.rs);
                            // sessions must first pass the CSRF check.
                            continue;
                        } else {
                            let p = path.replace("{id}", &id).replace("{attr}", "name");
                            let client = reqwest::Client::new();
                            let mut req = client.patch(format!("{base}{p}")).header("content-type", "application/json");
                            if let Some(t) = &caller.token {
                                req = req.bearer_auth(t);
                            }
                            let res = req.body(r#"{"name":"pwned"}"#).send().await.unwrap();
                            (res.status(), res.text().await.unwrap())
                        };
                    let expected = if revoked {
                        StatusCode::UNAUTHORIZED
                    } else if visible {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    };
                    assert_eq!(status, expected, "{} {path} {id}", caller.name);
                    assert_no_foreign_marker(&body, caller, &format!("{path} {id}"));
                    assert!(!body.contains("pwned"));
                }
            }
        }
    }
}

/// NGSI-LD subscriptions: the staff of an organisation (administrators, with
/// those of a parent, and agents) read its subscriptions; nobody else learns
/// they exist (404 like absent, lists without them); changes need `write`.
mod subscriptions {
    use std::collections::BTreeSet;

    use chrono::Utc;
    use reqwest::StatusCode;
    use serde_json::{json, Value};
    use socle_domain::{Email, OrganisationId, Role};
    use socle_storage::{DynStore, NgsiDeliveryCounters, StoredNgsiSubscription};

    use super::{send, Caller};

    fn id(commune: &str) -> String {
        format!("urn:ngsi-ld:Subscription:{commune}")
    }

    fn marker(commune: &str) -> String {
        format!("SUBMARKER-{commune}")
    }

    pub async fn fixture(s: &DynStore) {
        for commune in ["a", "b"] {
            let org = OrganisationId::parse(&format!("commune-{commune}")).unwrap();
            let owner =
                s.create_user(&Email::parse(&format!("proprio-{commune}@test.fr")).unwrap(), "x", None).await.unwrap();
            s.grant(owner.id, &org, Role::Agent).await.unwrap();
            let spec = json!({
                "id": id(commune), "description": marker(commune), "isActive": true,
                "entities": [{"type": "Building"}],
                "notification": {"format": "normalized",
                                 "endpoint": {"uri": format!("http://127.0.0.1:9/{}", marker(commune)), "accept": "application/json"}},
                "context": null,
            });
            s.create_ngsi_subscription(&StoredNgsiSubscription {
                id: id(commune),
                organisation: org,
                tenant_only: false,
                owner: owner.id,
                spec,
                created_at: Utc::now(),
                modified_at: Utc::now(),
                counters: NgsiDeliveryCounters::default(),
            })
            .await
            .unwrap();
        }
    }

    /// Whose subscriptions each caller reads (the organisations it operates).
    fn reads(caller: &Caller) -> BTreeSet<&'static str> {
        let n = caller.name;
        let mut out = BTreeSet::new();
        if n.contains("syndicate") || n == "session of A agent and B admin" {
            out.extend(["a", "b"]);
        } else if n.contains("of commune A") || n == "A agent and B admin, token for A" {
            if !n.contains("elected") {
                out.insert("a");
            }
        } else if n.contains("of commune B") {
            out.insert("b");
        }
        if n.starts_with("ingestion") {
            out.clear();
        }
        out
    }

    pub async fn rules(base: &str, path: &str, caller: &Caller) {
        let revoked = caller.name.starts_with("revoked");
        let anonymous = caller.token.is_none() && caller.session.is_none();
        let seen = reads(caller);
        match path {
            "/ngsi-ld/v1/subscriptions" => {
                let (status, body) =
                    send(base, reqwest::Method::GET, "/ngsi-ld/v1/subscriptions?limit=100", caller, None).await;
                if revoked || anonymous {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", caller.name);
                    return;
                }
                assert_eq!(status, StatusCode::OK, "{}: {body}", caller.name);
                let json: Value = serde_json::from_str(&body).unwrap();
                let got: BTreeSet<String> =
                    json.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
                let expected: BTreeSet<String> = seen.iter().map(|c| id(c)).collect();
                assert_eq!(got, expected, "{}: subscription list", caller.name);
                for c in ["a", "b"] {
                    assert_eq!(body.contains(&marker(c)), seen.contains(c), "{}: {c}", caller.name);
                }
                // Creating under another commune's tenant without the right to: refused, nothing stored.
                if caller.session.is_none() && !seen.contains("b") {
                    let res = reqwest::Client::new()
                        .post(format!("{base}/ngsi-ld/v1/subscriptions"))
                        .bearer_auth(caller.token.as_deref().unwrap())
                        .header("content-type", "application/json")
                        .header("NGSILD-Tenant", "commune-b")
                        .body(
                            json!({"type": "Subscription", "id": "urn:ngsi-ld:Subscription:intrus",
                                     "entities": [{"type": "Building"}],
                                     "notification": {"endpoint": {"uri": "http://127.0.0.1:9/x"}}})
                            .to_string(),
                        )
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), StatusCode::FORBIDDEN, "{}", caller.name);
                }
            }
            _ => {
                for c in ["a", "b"] {
                    let p = format!("/ngsi-ld/v1/subscriptions/{}", id(c));
                    let (status, body) = send(base, reqwest::Method::GET, &p, caller, None).await;
                    let expected = if revoked || anonymous {
                        StatusCode::UNAUTHORIZED
                    } else if seen.contains(c) {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    };
                    assert_eq!(status, expected, "{} GET {p}", caller.name);
                    assert_eq!(
                        body.contains(&marker(c)),
                        seen.contains(c) && !revoked && !anonymous,
                        "{}",
                        caller.name
                    );
                    if seen.contains(c) || caller.session.is_some() {
                        // Changes by those who read it depend on the scope (tested in ngsi_subscriptions.rs);
                        // sessions must first pass the CSRF check.
                        continue;
                    }
                    for method in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
                        let mut req = reqwest::Client::new().request(method.clone(), format!("{base}{p}"));
                        if let Some(t) = &caller.token {
                            req = req.bearer_auth(t);
                        }
                        if method == reqwest::Method::PATCH {
                            req = req.header("content-type", "application/json").body(r#"{"description":"pwned"}"#);
                        }
                        let res = req.send().await.unwrap();
                        let expected =
                            if revoked || anonymous { StatusCode::UNAUTHORIZED } else { StatusCode::NOT_FOUND };
                        assert_eq!(res.status(), expected, "{} {method} {p}", caller.name);
                        assert!(!res.text().await.unwrap().contains(&marker(c)));
                    }
                }
            }
        }
    }
}
