//! The tenant-isolation matrix: every route of the route table × every kind
//! of caller × objects of its own and of another organisation, on both
//! backends. A route missing from `expectations` fails the suite, so a new
//! route cannot ship without its access rule being tested.

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
use socle_storage::DynStore;

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
            sees: a_view.clone(),
            admin,
            sees_users: users,
        });
    }
    callers.push(Caller {
        name: "agent of commune B",
        token: Some(token(s, TokenKind::Personal, Some(b_agent.id), "commune-b", TokenScope::Admin).await),
        sees: all_of("b").into_iter().chain(publics()).collect(),
        admin: false,
        sees_users: BTreeSet::new(),
    });
    callers.push(Caller {
        name: "admin of the syndicate",
        token: Some(token(s, TokenKind::Personal, Some(s_admin.id), "syndicat", TokenScope::Admin).await),
        sees: all_of("a").into_iter().chain(all_of("b")).collect(),
        admin: true,
        sees_users: everyone,
    });
    callers.push(Caller {
        name: "partner",
        token: Some(token(s, TokenKind::Personal, Some(partner.id), "prestataire", TokenScope::Admin).await),
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
        sees: BTreeSet::new(),
        admin: false,
        sees_users: BTreeSet::new(),
    });
    callers
}

async fn user(s: &DynStore, email: &str, memberships: Vec<(&str, Role)>) -> socle_domain::User {
    let u = s.create_user(&Email::parse(email).unwrap(), email, None).await.unwrap();
    for (o, r) in memberships {
        s.grant(u.id, &OrganisationId::parse(o).unwrap(), r).await.unwrap();
    }
    u
}

async fn call(base: &str, path: &str, caller: &Caller) -> (StatusCode, String) {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = &caller.token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
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

async fn matrix(t: TestStore) {
    let callers = fixture(&t.store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(socle_api::serve(listener, AppState::new(t.store.clone()), std::future::pending()));

    let table = socle_api::route_table();
    let mut documented: BTreeSet<String> = socle_api::openapi::documented_paths().into_iter().collect();
    documented.insert("/api/openapi.json".into()); // the document does not describe itself
    let routed: BTreeSet<String> = table.iter().map(|r| r.path.to_owned()).collect();
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
                "/api/v1/users" | "/api/v1/audit" => {
                    assert_eq!(route.access, Access::Admin, "{} must stay restricted to administrators", route.path);
                    let (status, body) = call(&base, route.path, caller).await;
                    let expected = if caller.admin {
                        StatusCode::OK
                    } else if caller.token.is_none() || revoked {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_isolation_matrix() {
    matrix(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_isolation_matrix() {
    matrix(TestStore::postgres().await).await;
}
