//! The storage suite: every test runs against SQLite and against PostgreSQL
//! (modules `sqlite::` and `postgres::` in the test output).

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use socle_domain::{
    Attribute, AttributeName, Audience, BBox, Entity, EntityFilter, EntityId, EntityType, Geometry, NewOrganisation,
    Observation, ObservedValue, OfficialCode, OrganisationId, OrganisationKind, SeriesPoints, SeriesQuery, Step,
    TimeRange, UnitCode,
};
use socle_storage::testing::TestStore;
use socle_storage::{DynStore, StoreError};

fn org(id: &str, code: &str, parent: Option<&str>, retention: Option<u32>) -> NewOrganisation {
    NewOrganisation {
        id: OrganisationId::parse(id).unwrap(),
        kind: if parent.is_some() { OrganisationKind::Commune } else { OrganisationKind::Syndicat },
        name: format!("Organisation {id}"),
        code: OfficialCode::parse(code).unwrap(),
        parent: parent.map(|p| OrganisationId::parse(p).unwrap()),
        population: Some(1000),
        timezone: "Europe/Paris".parse().unwrap(),
        retention_days: retention,
    }
}

fn meter(org: &str, local: &str, lon: f64, lat: f64) -> Entity {
    let ty = EntityType::parse("SmartMeteringObservation").unwrap();
    let mut e = Entity::new(EntityId::new(&ty, local).unwrap(), ty, OrganisationId::parse(org).unwrap());
    e.location = Some(Geometry::Point([lon, lat]));
    e.with("name", Attribute::property(format!("Compteur {local}"))).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn obs(entity: &Entity, attr: &str, t: DateTime<Utc>, v: f64) -> Observation {
    Observation {
        entity: entity.id.clone(),
        attribute: AttributeName::parse(attr).unwrap(),
        observed_at: t,
        value: ObservedValue::number(v).unwrap(),
        unit_code: Some(UnitCode::parse("KWH").unwrap()),
    }
}

fn text_obs(entity: &Entity, attr: &str, t: DateTime<Utc>, v: &str) -> Observation {
    Observation {
        entity: entity.id.clone(),
        attribute: AttributeName::parse(attr).unwrap(),
        observed_at: t,
        value: ObservedValue::Text(v.into()),
        unit_code: None,
    }
}

async fn territory(s: &DynStore) -> (Entity, Entity) {
    s.upsert_organisation(&org("syndicat", "200046977", None, None)).await.unwrap();
    s.upsert_organisation(&org("commune-a", "86001", Some("syndicat"), None)).await.unwrap();
    s.upsert_organisation(&org("commune-b", "86002", Some("syndicat"), Some(30))).await.unwrap();
    let a = meter("commune-a", "a-1", 0.34, 46.58);
    let b = meter("commune-b", "b-1", 0.50, 46.70);
    s.upsert_entities(&[a.clone(), b.clone()]).await.unwrap();
    (a, b)
}

fn query(e: &Entity, attr: &str, from: &str, to: &str, step: Step) -> SeriesQuery {
    SeriesQuery {
        entity: e.id.clone(),
        attribute: AttributeName::parse(attr).unwrap(),
        range: TimeRange::new(at(from), at(to)).unwrap(),
        step,
        limit: 10_000,
    }
}

fn buckets(p: SeriesPoints) -> Vec<socle_domain::RollupPoint> {
    match p {
        SeriesPoints::Buckets(b) => b,
        SeriesPoints::Raw(_) => panic!("expected buckets"),
    }
}

async fn migrations_are_idempotent_and_refuse_newer_schemas(t: &TestStore) {
    let again = t.reopen().await.expect("reopening applies no migration twice");
    again.ping().await.unwrap();
    t.exec_raw("INSERT INTO socle_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)").await;
    match t.reopen().await {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

async fn organisations_roundtrip(t: &TestStore) {
    let s = &t.store;
    territory(s).await;
    let orgs = s.list_organisations().await.unwrap();
    assert_eq!(orgs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["commune-a", "commune-b", "syndicat"]);
    let b = s.organisation(&OrganisationId::parse("commune-b").unwrap()).await.unwrap().unwrap();
    assert_eq!(b.parent.as_ref().map(|p| p.as_str()), Some("syndicat"));
    assert_eq!(b.retention_days, Some(30));
    assert_eq!(b.timezone.name(), "Europe/Paris");
    let mut renamed = org("commune-b", "86002", Some("syndicat"), Some(60));
    renamed.name = "Montclar".into();
    assert_eq!(s.upsert_organisation(&renamed).await.unwrap().name, "Montclar");
    assert_eq!(s.list_organisations().await.unwrap().len(), 3);
    let orphan = org("orphan", "86003", Some("nobody"), None);
    assert!(matches!(s.upsert_organisation(&orphan).await, Err(StoreError::UnknownOrganisation(_))));
    assert!(s.organisation(&OrganisationId::parse("nobody").unwrap()).await.unwrap().is_none());
}

async fn entities_roundtrip_and_merge(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let cabinet = EntityType::parse("StreetlightControlCabinet").unwrap();
    let mut full = a
        .clone()
        .with(
            "floorArea",
            Attribute::Property {
                value: 1250.0.into(),
                unit_code: Some(UnitCode::parse("MTK").unwrap()),
                observed_at: None,
            },
        )
        .unwrap()
        .with("refStreetlightControlCabinet", Attribute::relationship(EntityId::new(&cabinet, "c-1").unwrap()))
        .unwrap()
        .with(
            "zone",
            Attribute::GeoProperty {
                value: Geometry::Polygon(vec![vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]),
                observed_at: Some(at("2026-01-01T00:00:00Z")),
            },
        )
        .unwrap();
    s.upsert_entities(std::slice::from_ref(&full)).await.unwrap();
    let got = s.entity(&a.id).await.unwrap().unwrap();
    assert_eq!(got.attributes, full.attributes);
    assert_eq!(got.location, full.location);
    assert!(got.created_at.is_some());
    // Upsert merges: attributes not given are kept, given ones replaced.
    full.attributes.clear();
    full = full.with("name", Attribute::property("Compteur renommé")).unwrap();
    s.upsert_entities(&[full]).await.unwrap();
    let got = s.entity(&a.id).await.unwrap().unwrap();
    assert_eq!(got.name(), Some("Compteur renommé"));
    assert_eq!(got.attributes.len(), 4);
    let stray = meter("nowhere", "x-1", 0.0, 0.0);
    assert!(matches!(s.upsert_entities(&[stray]).await, Err(StoreError::UnknownOrganisation(_))));
    let unknown = EntityId::parse("urn:ngsi-ld:Building:nope").unwrap();
    assert!(s.entity(&unknown).await.unwrap().is_none());
}

async fn entity_queries_filter_and_page(t: &TestStore) {
    let s = &t.store;
    territory(s).await;
    let mut many = Vec::new();
    for i in 0..25 {
        many.push(meter("commune-a", &format!("grid-{i:02}"), 1.0 + f64::from(i) * 0.01, 45.0));
    }
    s.upsert_entities(&many).await.unwrap();
    let all =
        s.query_entities(&EntityFilter { audience: Audience::System, limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!((all.total, all.items.len()), (27, 10));
    let page3 = s
        .query_entities(&EntityFilter { audience: Audience::System, limit: 10, offset: 20, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page3.items.len(), 7);
    let ids: HashSet<_> = all.items.iter().chain(&page3.items).map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 17, "pages do not overlap");
    let only_b = EntityFilter {
        audience: Audience::System,
        organisations: Some(vec![OrganisationId::parse("commune-b").unwrap()]),
        limit: 100,
        ..Default::default()
    };
    let got = s.query_entities(&only_b).await.unwrap();
    assert_eq!(got.total, 1);
    assert_eq!(got.items[0].organisation.as_str(), "commune-b");
    let none =
        EntityFilter { audience: Audience::System, organisations: Some(vec![]), limit: 100, ..Default::default() };
    assert_eq!(s.query_entities(&none).await.unwrap().total, 0);
    let bbox = EntityFilter {
        audience: Audience::System,
        bbox: Some(BBox::new(1.045, 44.9, 1.105, 45.1).unwrap()),
        limit: 100,
        ..Default::default()
    };
    let got = s.query_entities(&bbox).await.unwrap();
    assert_eq!(
        got.total,
        6,
        "grid-05..grid-10 lie in the box: {:?}",
        got.items.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    let typed = EntityFilter {
        audience: Audience::System,
        entity_type: Some(EntityType::parse("Building").unwrap()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(s.query_entities(&typed).await.unwrap().total, 0);
}

async fn observations_are_stored_once_and_rolled_up(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let base = at("2026-01-10T22:30:00Z"); // 23:30 in Paris
    let batch: Vec<_> =
        (0..8).map(|i| obs(&a, "consumption", base + Duration::minutes(15 * i), f64::from(i as i32))).collect();
    let out = s.write_observations(&batch).await.unwrap();
    assert_eq!((out.stored, out.duplicates), (8, 0));
    // The same frames again, plus one duplicate inside the batch: all ignored.
    let mut again = batch.clone();
    again.push(batch[3].clone());
    let out = s.write_observations(&again).await.unwrap();
    assert_eq!((out.stored, out.duplicates), (0, 9));

    let hours = buckets(
        s.series(&query(&a, "consumption", "2026-01-10T00:00:00Z", "2026-01-12T00:00:00Z", Step::Hour)).await.unwrap(),
    );
    assert_eq!(hours.len(), 3);
    assert_eq!((hours[0].count, hours[0].sum, hours[0].min, hours[0].max), (2, 1.0, 0.0, 1.0));
    assert_eq!((hours[1].count, hours[1].sum), (4, 2.0 + 3.0 + 4.0 + 5.0));
    let days = buckets(
        s.series(&query(&a, "consumption", "2026-01-09T00:00:00Z", "2026-01-12T00:00:00Z", Step::Day)).await.unwrap(),
    );
    // Paris days: 10 January (23:30, 23:45 local) and 11 January (the rest).
    assert_eq!(days.iter().map(|d| d.count).collect::<Vec<_>>(), [2, 6]);
    assert_eq!(days[0].t, at("2026-01-09T23:00:00Z"));
    assert_eq!(days[1].avg(), (2.0 + 3.0 + 4.0 + 5.0 + 6.0 + 7.0) / 6.0);

    let raw =
        s.series(&query(&a, "consumption", "2026-01-10T23:00:00Z", "2026-01-11T00:00:00Z", Step::Raw)).await.unwrap();
    match raw {
        SeriesPoints::Raw(p) => {
            assert_eq!(p.iter().map(|p| p.value.as_f64().unwrap()).collect::<Vec<_>>(), [2.0, 3.0, 4.0, 5.0])
        }
        SeriesPoints::Buckets(_) => panic!("raw expected"),
    }
    let mut limited = query(&a, "consumption", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", Step::Raw);
    limited.limit = 3;
    match s.series(&limited).await.unwrap() {
        SeriesPoints::Raw(p) => assert_eq!(p.len(), 3),
        SeriesPoints::Buckets(_) => panic!("raw expected"),
    }

    // Current value: the latest point wins; an older late point does not replace it.
    let current = s.entity(&a.id).await.unwrap().unwrap();
    let c = &current.attributes[&AttributeName::parse("consumption").unwrap()];
    assert_eq!(
        c,
        &Attribute::Property {
            value: 7.0.into(),
            unit_code: Some(UnitCode::parse("KWH").unwrap()),
            observed_at: Some(base + Duration::minutes(105))
        }
    );
    s.write_observations(&[obs(&a, "consumption", base - Duration::days(1), 99.0)]).await.unwrap();
    let current = s.entity(&a.id).await.unwrap().unwrap();
    assert_eq!(
        current.attributes[&AttributeName::parse("consumption").unwrap()].observed_at(),
        Some(base + Duration::minutes(105))
    );

    let series = s.list_series(&a.id).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].last_at, Some(base + Duration::minutes(105)));
    assert_eq!(series[0].first_at, Some(base - Duration::days(1)));
    assert!(s.check_consistency().await.unwrap().problems.is_empty());
}

async fn text_series_keep_history(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let t0 = at("2026-03-01T17:00:00Z");
    let out = s
        .write_observations(&[
            text_obs(&a, "powerState", t0, "on"),
            text_obs(&a, "powerState", t0 + Duration::hours(12), "off"),
        ])
        .await
        .unwrap();
    assert_eq!(out.stored, 2);
    match s.series(&query(&a, "powerState", "2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z", Step::Raw)).await.unwrap() {
        SeriesPoints::Raw(p) => {
            assert_eq!(p.iter().map(|p| p.value.as_str().unwrap()).collect::<Vec<_>>(), ["on", "off"])
        }
        SeriesPoints::Buckets(_) => panic!("raw expected"),
    }
    let hourly = s.series(&query(&a, "powerState", "2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z", Step::Hour)).await;
    assert!(matches!(hourly, Err(StoreError::NotNumeric { .. })));
    let missing = s.series(&query(&a, "nothing", "2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z", Step::Raw)).await;
    assert!(matches!(missing, Err(StoreError::UnknownSeries { .. })));
    let entity = s.entity(&a.id).await.unwrap().unwrap();
    assert!(
        matches!(&entity.attributes[&AttributeName::parse("powerState").unwrap()], Attribute::Property { value, .. } if value == "off")
    );
}

async fn a_bad_batch_writes_nothing(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let t0 = at("2026-02-01T00:00:00Z");
    let ghost = meter("commune-a", "ghost", 0.0, 0.0);
    let batch = vec![
        obs(&a, "consumption", t0, 1.0),
        obs(&a, "consumption", t0 + Duration::hours(1), 2.0),
        obs(&ghost, "consumption", t0, 3.0),
    ];
    assert!(matches!(s.write_observations(&batch).await, Err(StoreError::UnknownEntity(_))));
    // A series first created inside the failed batch must not linger in caches.
    let mixed = vec![obs(&a, "level", t0, 1.0), text_obs(&a, "level", t0 + Duration::hours(1), "high")];
    assert!(matches!(s.write_observations(&mixed).await, Err(StoreError::ValueKindMismatch { .. })));
    assert!(matches!(
        s.series(&query(&a, "consumption", "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", Step::Raw)).await,
        Err(StoreError::UnknownSeries { .. })
    ));
    assert!(s.list_series(&a.id).await.unwrap().is_empty());
    let out = s.write_observations(&[obs(&a, "level", t0, 1.0)]).await.unwrap();
    assert_eq!(out.stored, 1);
    assert!(s.check_consistency().await.unwrap().problems.is_empty());
}

async fn retention_drops_raw_points_and_keeps_rollups(t: &TestStore) {
    let s = &t.store;
    let (a, b) = territory(s).await; // commune-b keeps 30 days
    let now = Utc::now();
    let old = now - Duration::days(45);
    let recent = now - Duration::days(2);
    for e in [&a, &b] {
        s.write_observations(&[obs(e, "consumption", old, 5.0), obs(e, "consumption", recent, 7.0)]).await.unwrap();
    }
    assert_eq!(s.apply_retention(now).await.unwrap(), 1);
    let range = TimeRange::new(now - Duration::days(60), now).unwrap();
    let q = |e: &Entity, step| SeriesQuery {
        entity: e.id.clone(),
        attribute: AttributeName::parse("consumption").unwrap(),
        range,
        step,
        limit: 100,
    };
    match s.series(&q(&b, Step::Raw)).await.unwrap() {
        SeriesPoints::Raw(p) => assert_eq!(p.len(), 1),
        SeriesPoints::Buckets(_) => panic!(),
    }
    match s.series(&q(&a, Step::Raw)).await.unwrap() {
        SeriesPoints::Raw(p) => assert_eq!(p.len(), 2, "no retention on commune-a"),
        SeriesPoints::Buckets(_) => panic!(),
    }
    assert_eq!(buckets(s.series(&q(&b, Step::Day)).await.unwrap()).len(), 2, "daily rollups survive retention");
    let report = s.check_consistency().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

async fn consistency_check_finds_tampering(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let t0 = Utc::now() - Duration::hours(3);
    s.write_observations(&[obs(&a, "consumption", t0, 1.0), obs(&a, "consumption", t0 + Duration::minutes(1), 2.0)])
        .await
        .unwrap();
    let clean = s.check_consistency().await.unwrap();
    assert!(clean.problems.is_empty());
    assert_eq!(clean.series_checked, 1);
    t.exec_raw("UPDATE rollups_hour SET count = count + 1").await;
    t.exec_raw("DELETE FROM rollups_day").await;
    let report = s.check_consistency().await.unwrap();
    assert!(report.problems.iter().any(|p| p.what.contains("hourly")), "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| p.what.contains("without a daily rollup")), "{:?}", report.problems);
}

async fn concurrent_writers_do_not_double_count(t: &TestStore) {
    let s = &t.store;
    let (a, b) = territory(s).await;
    let t0 = at("2026-05-01T00:00:00Z");
    let mut tasks = Vec::new();
    for w in 0..6 {
        let s = s.clone();
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            // Writers overlap: each point is sent by two writers.
            let mut total = socle_domain::WriteOutcome::default();
            for chunk in 0..5 {
                let batch: Vec<_> = (0..40)
                    .flat_map(|i| {
                        let k = ((w / 2) * 200 + chunk * 40 + i) as i64;
                        let t = t0 + Duration::minutes(k * 5);
                        [obs(&a, "consumption", t, k as f64), obs(&b, "consumption", t, 1.0)]
                    })
                    .collect();
                total += s.write_observations(&batch).await.unwrap();
            }
            total
        }));
    }
    let mut total = socle_domain::WriteOutcome::default();
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total.stored, 3 * 200 * 2);
    assert_eq!(total.duplicates, 3 * 200 * 2);
    let days = buckets(
        s.series(&query(&a, "consumption", "2026-04-30T00:00:00Z", "2026-05-10T00:00:00Z", Step::Day)).await.unwrap(),
    );
    assert_eq!(days.iter().map(|d| d.count).sum::<u64>(), 600);
    assert_eq!(days.iter().map(|d| d.sum).sum::<f64>(), (0..600).map(f64::from).sum::<f64>());
    assert!(s.check_consistency().await.unwrap().problems.is_empty());
}

async fn meta_and_stats(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    assert_eq!(s.get_meta("demo.anchor").await.unwrap(), None);
    s.set_meta("demo.anchor", "2026-11-22T04:00:00Z").await.unwrap();
    s.set_meta("demo.anchor", "2026-11-22T05:00:00Z").await.unwrap();
    assert_eq!(s.get_meta("demo.anchor").await.unwrap().as_deref(), Some("2026-11-22T05:00:00Z"));
    s.write_observations(&[obs(&a, "consumption", Utc::now(), 1.0)]).await.unwrap();
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.entities, stats.series), (2, 1));
    assert!(stats.bytes > 0);
}

async fn day_buckets_follow_each_organisation_time_zone(t: &TestStore) {
    let s = &t.store;
    s.upsert_organisation(&org("syndicat", "200046977", None, None)).await.unwrap();
    let mut reunion = org("saint-denis", "97411", Some("syndicat"), None);
    reunion.timezone = "Indian/Reunion".parse().unwrap(); // UTC+4, no DST
    s.upsert_organisation(&reunion).await.unwrap();
    let m = meter("saint-denis", "r-1", 55.45, -20.88);
    s.upsert_entities(std::slice::from_ref(&m)).await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 19, 30, 0).unwrap(); // 23:30 local
    s.write_observations(&[obs(&m, "consumption", t0, 1.0), obs(&m, "consumption", t0 + Duration::hours(1), 2.0)])
        .await
        .unwrap();
    let days = buckets(
        s.series(&query(&m, "consumption", "2026-05-31T00:00:00Z", "2026-06-03T00:00:00Z", Step::Day)).await.unwrap(),
    );
    assert_eq!(days.iter().map(|d| d.t).collect::<Vec<_>>(), [at("2026-05-31T20:00:00Z"), at("2026-06-01T20:00:00Z")]);
}

/// The SQL audience filter and `Entity::visible_to` must agree on every
/// combination of owner, visibility, share and caller.
async fn audience_filter_matches_the_policy_rule(t: &TestStore) {
    use socle_domain::{Reach, Visibility};
    let s = &t.store;
    territory(s).await;
    s.upsert_organisation(&NewOrganisation {
        kind: OrganisationKind::Partenaire,
        ..org("partner", "812473965", None, None)
    })
    .await
    .unwrap();
    let orgs = ["syndicat", "commune-a", "commune-b"];
    let mut all = Vec::new();
    for (i, owner) in orgs.iter().enumerate() {
        for (j, v) in Visibility::ALL.into_iter().enumerate() {
            for shared in [false, true] {
                let mut e = meter(owner, &format!("v-{i}-{j}-{shared}"), 0.3, 46.6);
                e.visibility = v;
                if shared {
                    e.shared_with = vec![OrganisationId::parse("partner").unwrap()];
                }
                all.push(e);
            }
        }
    }
    s.upsert_entities(&all).await.unwrap();
    let ids = |names: &[&str]| names.iter().map(|n| OrganisationId::parse(n).unwrap()).collect::<Vec<_>>();
    let audiences = [
        Audience::Public,
        Audience::Members(Reach {
            full: ids(&["commune-a"]),
            internal: ids(&["commune-a", "syndicat"]),
            partner: vec![],
        }),
        Audience::Members(Reach {
            full: ids(&["syndicat", "commune-a", "commune-b"]),
            internal: ids(&orgs),
            partner: vec![],
        }),
        Audience::Members(Reach { full: vec![], internal: vec![], partner: ids(&["partner"]) }),
        Audience::Members(Reach { full: ids(&["partner"]), internal: ids(&["partner"]), partner: ids(&["partner"]) }),
        Audience::System,
    ];
    for audience in audiences {
        let page = s
            .query_entities(&EntityFilter { audience: audience.clone(), limit: 1000, ..Default::default() })
            .await
            .unwrap();
        let got: HashSet<_> = page.items.iter().map(|e| e.id.clone()).collect();
        let stored: Vec<Entity> = {
            let mut v = Vec::new();
            for e in &all {
                v.push(s.entity(&e.id).await.unwrap().unwrap());
            }
            v
        };
        let expected: HashSet<_> = stored.iter().filter(|e| e.visible_to(&audience)).map(|e| e.id.clone()).collect();
        assert_eq!(
            got.iter().filter(|id| id.as_str().contains(":v-")).cloned().collect::<HashSet<_>>(),
            expected,
            "{audience:?}"
        );
        assert_eq!(page.total as usize, got.len(), "the count obeys the same filter");
    }
    let shared = s.entity(&all[7].id).await.unwrap().unwrap();
    assert_eq!(shared.shared_with, ids(&["partner"]));
    assert_eq!(shared.visibility, Visibility::Public);
}

async fn accounts_tokens_and_audit(t: &TestStore) {
    use socle_domain::{ApiToken, AuditEntry, Email, Role, TokenKind, TokenScope, UserId};
    let s = &t.store;
    territory(s).await;
    let email = Email::parse("Agent@Saint-Aubin.fr").unwrap();
    let user = s.create_user(&email, "Camille Agent", Some("$argon2id$fake")).await.unwrap();
    assert_eq!(user.email.as_str(), "agent@saint-aubin.fr");
    assert!(matches!(s.create_user(&email, "Twice", None).await, Err(StoreError::Conflict(_))));
    let a = OrganisationId::parse("commune-a").unwrap();
    s.grant(user.id, &a, Role::Agent).await.unwrap();
    s.grant(user.id, &a, Role::Agent).await.unwrap();
    s.grant(user.id, &OrganisationId::parse("syndicat").unwrap(), Role::Elected).await.unwrap();
    assert!(matches!(
        s.grant(user.id, &OrganisationId::parse("nowhere").unwrap(), Role::Agent).await,
        Err(StoreError::UnknownOrganisation(_))
    ));
    assert!(matches!(s.grant(UserId::new(), &a, Role::Agent).await, Err(StoreError::UnknownUser(_))));
    let got = s.user(user.id).await.unwrap().unwrap();
    assert_eq!(got.memberships.len(), 2);
    assert!(s.revoke(user.id, &a, Role::Agent).await.unwrap());
    assert!(!s.revoke(user.id, &a, Role::Agent).await.unwrap());
    assert_eq!(s.list_users().await.unwrap().len(), 1);

    let creds = s.credentials(&email).await.unwrap().unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("$argon2id$fake"));
    assert_eq!(creds.failed_logins, 0);
    let lock = Utc::now() + Duration::minutes(15);
    assert_eq!(s.record_login(user.id, false, None).await.unwrap(), 1);
    assert_eq!(s.record_login(user.id, false, Some(lock)).await.unwrap(), 2);
    let creds = s.credentials(&email).await.unwrap().unwrap();
    assert_eq!(creds.locked_until.map(|l| l.timestamp_millis()), Some(lock.timestamp_millis()));
    assert_eq!(s.record_login(user.id, true, None).await.unwrap(), 0);
    s.set_password(user.id, "$argon2id$new").await.unwrap();
    assert!(s.credentials(&Email::parse("nobody@x.fr").unwrap()).await.unwrap().is_none());

    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Personal,
        label: "tableau de bord".into(),
        user: Some(user.id),
        organisation: a.clone(),
        scope: TokenScope::Read,
        created_at: at("2026-01-01T00:00:00Z"),
        expires_at: Some(at("2027-01-01T00:00:00Z")),
        revoked_at: None,
    };
    s.create_token(&token, "hash-1").await.unwrap();
    assert_eq!(s.token_by_secret_hash("hash-1").await.unwrap(), Some(token.clone()));
    assert_eq!(s.token_by_secret_hash("hash-2").await.unwrap(), None);
    assert_eq!(s.list_tokens(Some(user.id)).await.unwrap().len(), 1);
    assert!(s.revoke_token(token.id, Utc::now()).await.unwrap());
    assert!(!s.revoke_token(token.id, Utc::now()).await.unwrap());
    assert!(!s.token_by_secret_hash("hash-1").await.unwrap().unwrap().is_usable(Utc::now()));

    for (i, org) in [Some(a.clone()), None, Some(OrganisationId::parse("commune-b").unwrap())].into_iter().enumerate() {
        s.append_audit(&AuditEntry {
            at: Utc::now(),
            actor: format!("user:{}", user.id),
            organisation: org,
            action: "entity.read".into(),
            object: format!("object-{i}"),
            detail: String::new(),
        })
        .await
        .unwrap();
    }
    assert_eq!(s.audit_log(None, 10).await.unwrap().len(), 3);
    let only_a = s.audit_log(Some(std::slice::from_ref(&a)), 10).await.unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].object, "object-0");
    assert_eq!(s.audit_log(None, 1).await.unwrap()[0].object, "object-2", "newest first");
    assert!(t.try_exec_raw("UPDATE audit_log SET actor = 'someone else'").await.is_err(), "audit log is append-only");
    assert!(t.try_exec_raw("DELETE FROM audit_log").await.is_err(), "audit log is append-only");
    assert_eq!(s.audit_log(None, 10).await.unwrap().len(), 3);
}

async fn web_sessions_resets_and_oidc_links(t: &TestStore) {
    use socle_domain::{Email, UserId};
    use socle_storage::{PendingOidcLogin, WebSession};
    let s = &t.store;
    let now = at("2026-03-01T10:00:00Z");
    let user = s.create_user(&Email::parse("elu@commune.fr").unwrap(), "Élu", None).await.unwrap();
    let other = s.create_user(&Email::parse("autre@commune.fr").unwrap(), "Autre", None).await.unwrap();

    // Sessions: stored under the hash of their id, touched, deleted one by one or all at once.
    let session = WebSession {
        user: user.id,
        csrf_token: "csrf-1".into(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::days(7),
    };
    s.create_session("hash-a", &session).await.unwrap();
    s.create_session("hash-b", &WebSession { csrf_token: "csrf-2".into(), ..session.clone() }).await.unwrap();
    s.create_session("hash-c", &WebSession { user: other.id, ..session.clone() }).await.unwrap();
    assert_eq!(s.session("hash-a").await.unwrap(), Some(session.clone()));
    assert_eq!(s.session("nope").await.unwrap(), None);
    s.touch_session("hash-a", now + Duration::hours(1)).await.unwrap();
    assert_eq!(s.session("hash-a").await.unwrap().unwrap().last_seen_at, now + Duration::hours(1));
    assert!(s.delete_session("hash-a").await.unwrap());
    assert!(!s.delete_session("hash-a").await.unwrap());
    assert_eq!(s.delete_user_sessions(user.id).await.unwrap(), 1);
    assert!(s.session("hash-c").await.unwrap().is_some(), "other users keep their sessions");

    // Reset tokens: usable once, within their expiry; using one retires the others.
    let hour = Duration::hours(1);
    s.create_password_reset("r1", user.id, now, now + hour).await.unwrap();
    s.create_password_reset("r2", user.id, now, now + hour).await.unwrap();
    s.create_password_reset("old", other.id, now - hour * 2, now - hour).await.unwrap();
    assert!(matches!(
        s.create_password_reset("r3", UserId::new(), now, now + hour).await,
        Err(StoreError::UnknownUser(_))
    ));
    assert_eq!(s.password_reset_user("r1", now).await.unwrap(), Some(user.id));
    assert_eq!(s.password_reset_user("old", now).await.unwrap(), None, "expired");
    assert_eq!(s.use_password_reset("old", now).await.unwrap(), None, "expired");
    assert_eq!(s.use_password_reset("r1", now + hour + Duration::seconds(1)).await.unwrap(), None, "expired");
    assert_eq!(s.use_password_reset("r1", now).await.unwrap(), Some(user.id));
    assert_eq!(s.use_password_reset("r1", now).await.unwrap(), None, "single use");
    assert_eq!(s.use_password_reset("r2", now).await.unwrap(), None, "retired with the first");

    // OpenID Connect: subject links, unique; pending logins taken once, not after expiry.
    s.set_oidc_subject(user.id, "sub-123").await.unwrap();
    assert_eq!(s.user_by_oidc_subject("sub-123").await.unwrap().map(|u| u.id), Some(user.id));
    assert_eq!(s.user_by_oidc_subject("sub-999").await.unwrap(), None);
    assert!(matches!(s.set_oidc_subject(other.id, "sub-123").await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.set_oidc_subject(UserId::new(), "sub-x").await, Err(StoreError::UnknownUser(_))));
    let pending = PendingOidcLogin {
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        return_to: "/compte".into(),
        expires_at: now + Duration::minutes(10),
    };
    s.create_oidc_login("state-1", &pending).await.unwrap();
    s.create_oidc_login("state-2", &pending).await.unwrap();
    assert_eq!(s.take_oidc_login("state-1", now).await.unwrap(), Some(pending.clone()));
    assert_eq!(s.take_oidc_login("state-1", now).await.unwrap(), None, "single use");
    assert_eq!(s.take_oidc_login("state-2", now + Duration::minutes(11)).await.unwrap(), None, "expired");

    // Housekeeping: expired and idle sessions, used or expired tokens, old logins go.
    s.create_session(
        "idle",
        &WebSession { user: other.id, last_seen_at: now - Duration::hours(13), ..session.clone() },
    )
    .await
    .unwrap();
    s.create_oidc_login("state-3", &pending).await.unwrap();
    let purged = s.purge_expired_sign_ins(now + Duration::minutes(20), now - Duration::hours(12)).await.unwrap();
    assert_eq!(purged, 5, "idle session, 3 reset tokens, expired pending login");
    assert!(s.session("idle").await.unwrap().is_none());
    assert!(s.session("hash-c").await.unwrap().is_some());
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = socle_storage::testing::TestStore::sqlite().await;
                    super::$test(&t).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = socle_storage::testing::TestStore::postgres().await;
                    super::$test(&t).await;
                }
            )*
        }
    };
}

suite!(
    migrations_are_idempotent_and_refuse_newer_schemas,
    organisations_roundtrip,
    entities_roundtrip_and_merge,
    entity_queries_filter_and_page,
    observations_are_stored_once_and_rolled_up,
    text_series_keep_history,
    a_bad_batch_writes_nothing,
    retention_drops_raw_points_and_keeps_rollups,
    consistency_check_finds_tampering,
    concurrent_writers_do_not_double_count,
    meta_and_stats,
    day_buckets_follow_each_organisation_time_zone,
    audience_filter_matches_the_policy_rule,
    accounts_tokens_and_audit,
    web_sessions_resets_and_oidc_links,
);
