//! Notifications tell only people who may see the alert's entity: the
//! policy's audience rule, for every visibility, on both backends.

use chrono::Utc;
use socle_api::AppState;
use socle_domain::{
    Email, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, Role,
    Visibility,
};
use socle_notify::{AlertNotice, NoticeKind, Severity};
use socle_storage::testing::TestStore;

fn org(id: &str, code: &str, kind: OrganisationKind, parent: Option<&str>) -> NewOrganisation {
    NewOrganisation {
        id: OrganisationId::parse(id).unwrap(),
        kind,
        name: id.into(),
        code: OfficialCode::parse(code).unwrap(),
        parent: parent.map(|p| OrganisationId::parse(p).unwrap()),
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    }
}

async fn check(t: TestStore) {
    let s = &t.store;
    s.upsert_organisation(&org("syndicat", "200046977", OrganisationKind::Syndicat, None)).await.unwrap();
    s.upsert_organisation(&org("commune-a", "86001", OrganisationKind::Commune, Some("syndicat"))).await.unwrap();
    s.upsert_organisation(&org("commune-b", "86002", OrganisationKind::Commune, Some("syndicat"))).await.unwrap();
    let ty = EntityType::parse("WaterMeter").unwrap();
    let mut people = Vec::new();
    for (email, org, role) in [
        ("agent-a@t.fr", "commune-a", Role::Agent),
        ("agent-b@t.fr", "commune-b", Role::Agent),
        ("admin-s@t.fr", "syndicat", Role::Admin),
    ] {
        let u = s.create_user(&Email::parse(email).unwrap(), email, None).await.unwrap();
        s.grant(u.id, &OrganisationId::parse(org).unwrap(), role).await.unwrap();
        people.push(u.id);
    }
    let visibility = AppState::new(s.clone()).notification_visibility();
    // (visibility of commune A's meter) → (agent A, agent B, syndicate admin) may be told.
    for (v, expected) in [
        (Visibility::Private, [true, false, true]),
        (Visibility::Internal, [true, false, true]),
        // Alerts are never public: a public meter's alert stays within the circle of its commune.
        (Visibility::Public, [true, false, true]),
    ] {
        let id = EntityId::new(&ty, &format!("nord-{}", v.as_str())).unwrap();
        let mut e = Entity::new(id.clone(), ty.clone(), OrganisationId::parse("commune-a").unwrap());
        e.visibility = v;
        s.upsert_entities(&[e]).await.unwrap();
        let notice = AlertNotice {
            alert_id: format!("alert-{}", v.as_str()),
            change: NoticeKind::Opened,
            organisation: OrganisationId::parse("commune-a").unwrap(),
            entity_id: id,
            entity_name: "Compteur".into(),
            domain: "eau".into(),
            severity: Severity::High,
            title_fr: "Fuite".into(),
            title_en: "Leak".into(),
            since: Utc::now(),
            last_value: None,
            location: None,
        };
        for (who, want) in people.iter().zip(expected) {
            assert_eq!(visibility.may_see(*who, &notice).await, want, "{v:?} {who}");
        }
        // A notice naming another organisation than the entity's tells nobody.
        let forged = AlertNotice { organisation: OrganisationId::parse("commune-b").unwrap(), ..notice.clone() };
        assert!(!visibility.may_see(people[1], &forged).await);
        // An unknown person is told nothing.
        assert!(!visibility.may_see(socle_domain::UserId::new(), &notice).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_notifications_follow_the_audience_rule() {
    check(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifications_follow_the_audience_rule() {
    check(TestStore::postgres().await).await;
}
