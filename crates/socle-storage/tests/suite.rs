//! The storage suite: every test runs against SQLite and against PostgreSQL
//! (modules `sqlite::` and `postgres::` in the test output).

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use socle_domain::DownlinkStatus;
use socle_domain::{
    Attribute, AttributeName, Audience, BBox, Entity, EntityFilter, EntityId, EntityType, Geometry, NewOrganisation,
    Observation, ObservedValue, OfficialCode, OrganisationId, OrganisationKind, SeriesPoints, SeriesQuery, Step,
    TimeRange, UnitCode,
};
use socle_storage::testing::TestStore;
use socle_storage::{
    ActionRefusal, AlertAction, AlertEventKind, AlertFilter, AlertStatus, AlertWrite, DeadLetterFilter, DeviceFilter,
    DeviceHealth, DeviceRoute, DownlinkChange, DynStore, EngineState, FrameWrite, HealthUpdate, NewDeadLetter,
    NewDevice, NewDownlink, ObservationScan, RuleFilter, RuleRecord, StoreError,
};

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

/// Attribute conditions: what surely matches, what may (arrays, text against
/// a number), what never does; ids; both with audiences.
async fn entity_queries_on_attribute_values(t: &TestStore) {
    use socle_domain::{AttributeCondition, Comparison, Scalar, ValueTest};
    let s = &t.store;
    territory(s).await;
    let mut es = Vec::new();
    for (i, level) in [json!(1), json!(5.5), json!("5.5"), json!([1, 9]), json!("haut"), json!(true), json!({"v": 9})]
        .into_iter()
        .enumerate()
    {
        let e = meter("commune-a", &format!("v-{i}"), 1.0, 45.0).with("level", Attribute::property(level)).unwrap();
        es.push(e);
    }
    s.upsert_entities(&es).await.unwrap();
    let cond = |test: ValueTest| EntityFilter {
        audience: Audience::System,
        entity_type: Some(EntityType::parse("SmartMeteringObservation").unwrap()),
        attributes: vec![AttributeCondition { attribute: AttributeName::parse("level").unwrap(), test }],
        limit: 100,
        ..Default::default()
    };
    let found = |m: Vec<socle_domain::EntityMatch>| -> Vec<(String, bool)> {
        m.into_iter().map(|m| (m.id.as_str().rsplit(':').next().unwrap().to_owned(), m.sure)).collect()
    };
    let owned = |v: &[(&str, bool)]| -> Vec<(String, bool)> { v.iter().map(|(a, b)| ((*a).to_owned(), *b)).collect() };
    let gt = cond(ValueTest::Compare(Comparison::Gt, Scalar::Number(2.0)));
    assert_eq!(
        found(s.match_entities(&gt).await.unwrap()),
        owned(&[("v-1", true), ("v-2", false), ("v-3", false), ("v-4", false)])
    );
    assert_eq!(s.query_entities(&gt).await.unwrap().total, 4);
    let text = cond(ValueTest::Compare(Comparison::Eq, Scalar::Text("haut".into())));
    assert_eq!(found(s.match_entities(&text).await.unwrap()), owned(&[("v-3", false), ("v-4", true)]));
    let ge = cond(ValueTest::Compare(Comparison::Ge, Scalar::Text("5".into())));
    assert_eq!(
        found(s.match_entities(&ge).await.unwrap()),
        owned(&[("v-2", true), ("v-3", false), ("v-4", true)]),
        "text compares by code point: \"5.5\" and \"haut\" are >= \"5\""
    );
    let yes = cond(ValueTest::Compare(Comparison::Eq, Scalar::Bool(true)));
    assert_eq!(found(s.match_entities(&yes).await.unwrap()), owned(&[("v-3", false), ("v-5", true)]));
    let any = cond(ValueTest::AnyOf(vec![Scalar::Number(1.0), Scalar::Text("haut".into())]));
    assert_eq!(
        found(s.match_entities(&any).await.unwrap()),
        owned(&[("v-0", true), ("v-2", false), ("v-3", false), ("v-4", true)])
    );
    let between = cond(ValueTest::Between(Scalar::Number(1.0), Scalar::Number(5.5)));
    assert_eq!(
        found(s.match_entities(&between).await.unwrap()),
        owned(&[("v-0", true), ("v-1", true), ("v-2", false), ("v-3", false), ("v-4", false)])
    );
    let exists = cond(ValueTest::Exists);
    assert_eq!(s.match_entities(&exists).await.unwrap().len(), 7);
    assert!(s.match_entities(&exists).await.unwrap().iter().all(|m| m.sure));
    // Two conditions: sure only when both are.
    let mut both = cond(ValueTest::Compare(Comparison::Ge, Scalar::Number(1.0)));
    both.attributes.push(AttributeCondition {
        attribute: AttributeName::parse("name").unwrap(),
        test: ValueTest::Compare(Comparison::Eq, Scalar::Text("Compteur v-0".into())),
    });
    assert_eq!(found(s.match_entities(&both).await.unwrap()), owned(&[("v-0", true)]));
    // Ids, paging, and an audience that sees nothing private.
    let ids = EntityFilter {
        audience: Audience::System,
        ids: Some(vec![es[1].id.clone(), es[4].id.clone(), EntityId::parse("urn:ngsi-ld:X:absent").unwrap()]),
        limit: 1,
        offset: 1,
        ..Default::default()
    };
    let page = s.query_entities(&ids).await.unwrap();
    assert_eq!((page.total, page.items[0].id.clone()), (2, es[4].id.clone()));
    assert!(s.match_entities(&EntityFilter { ids: Some(vec![]), ..ids.clone() }).await.unwrap().is_empty());
    let public = EntityFilter { audience: Audience::Public, ..gt };
    assert!(s.match_entities(&public).await.unwrap().is_empty());
    assert_eq!(s.query_entities(&public).await.unwrap().total, 0);
}

/// JSON-LD contexts: kept once per URL, listed by kind, reloaded, deleted.
async fn jsonld_contexts_are_kept(t: &TestStore) {
    use socle_storage::{ContextKind, StoredContext};
    let s = &t.store;
    let c = |id: &str, url: &str, kind| StoredContext {
        id: id.into(),
        url: url.into(),
        kind,
        body: r#"{"@context":{"a":"http://x/a"}}"#.into(),
        created_at: at("2026-03-01T10:00:00Z"),
    };
    s.add_context(&c("c1", "http://exemple.fr/ctx.jsonld", ContextKind::Cached)).await.unwrap();
    s.add_context(&c("h1", "http://socle.local/ngsi-ld/v1/jsonldContexts/h1", ContextKind::Hosted)).await.unwrap();
    let again = s.add_context(&c("c2", "http://exemple.fr/ctx.jsonld", ContextKind::Cached)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(s.context_by_url("http://exemple.fr/ctx.jsonld").await.unwrap().unwrap().id, "c1");
    assert_eq!(s.context("h1").await.unwrap().unwrap().kind, ContextKind::Hosted);
    assert_eq!(s.list_contexts(None).await.unwrap().len(), 2);
    assert_eq!(s.list_contexts(Some(ContextKind::Hosted)).await.unwrap()[0].id, "h1");
    assert!(s.list_contexts(Some(ContextKind::ImplicitlyCreated)).await.unwrap().is_empty());
    assert!(s.replace_context_body("c1", r#"{"@context":{}}"#).await.unwrap());
    assert_eq!(s.context("c1").await.unwrap().unwrap().body, r#"{"@context":{}}"#);
    assert!(!s.replace_context_body("absent", "{}").await.unwrap());
    assert!(s.delete_context("c1").await.unwrap());
    assert!(!s.delete_context("c1").await.unwrap());
    assert!(s.context_by_url("http://exemple.fr/ctx.jsonld").await.unwrap().is_none());
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
    let audiences = vec![
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
    for audience in audiences.clone() {
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

    // Alerts follow their entity, never public: the alert of a public entity is
    // seen as an internal one, that of a deleted entity as a private one.
    let t0 = at("2026-03-01T10:00:00Z");
    let writes: Vec<_> = all.iter().map(|e| open_write("r1", e, t0)).collect();
    assert_eq!(s.record_transitions(&writes, None).await.unwrap().len(), all.len());
    let gone = all[5].clone(); // the syndicate's meter shared with the partner
    assert!(s.delete_entity(&gone.id).await.unwrap());
    let rule_of = |e: &Entity| {
        let visibility = if e.id == gone.id {
            Visibility::Private
        } else if e.visibility == Visibility::Public {
            Visibility::Internal
        } else {
            e.visibility
        };
        (visibility, if e.id == gone.id { Vec::new() } else { e.shared_with.clone() })
    };
    let mut stored = Vec::new();
    for e in &all {
        stored.push(s.entity(&e.id).await.unwrap().unwrap_or_else(|| gone.clone()));
    }
    for audience in audiences {
        let page = s
            .list_alerts(&AlertFilter { audience: Some(audience.clone()), limit: 1000, ..Default::default() })
            .await
            .unwrap();
        let got: HashSet<_> = page.items.iter().map(|a| a.entity.clone()).collect();
        let expected: HashSet<_> = stored
            .iter()
            .filter(|e| {
                let (visibility, shared) = rule_of(e);
                !matches!(audience, Audience::Public) && audience.can_see(&e.organisation, visibility, &shared)
            })
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(got, expected, "alerts seen by {audience:?}");
        assert_eq!(page.total as usize, got.len(), "the count obeys the same filter");
    }
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

fn device(eui: &str, name: &str, org: &str, entity: &Entity) -> NewDevice {
    NewDevice {
        dev_eui: eui.into(),
        name: name.into(),
        model: "dragino-ldds75".into(),
        organisation: OrganisationId::parse(org).unwrap(),
        entity: entity.id.clone(),
        mappings: serde_json::json!([{"field": "Distance", "attribute": "distance", "unitCode": "MMT"}]),
    }
}

fn frame(eui: &str, ns: Option<&str>, session: Option<&str>, f_cnt: Option<u32>, obs: Vec<Observation>) -> FrameWrite {
    let at = obs.first().map_or_else(Utc::now, |o| o.observed_at);
    FrameWrite {
        dev_eui: eui.into(),
        ns_id: ns.map(Into::into),
        session: session.map(Into::into),
        f_cnt,
        observations: obs,
        health: HealthUpdate {
            at,
            rssi: Some(-90 - f_cnt.unwrap_or(0) as i32),
            snr: Some(7.5),
            f_cnt,
            ..Default::default()
        },
    }
}

async fn devices_roundtrip(t: &TestStore) {
    let s = &t.store;
    let (a, b) = territory(s).await;
    let d1 = device("a84041000181c7e2", "bac-verre-mairie", "commune-a", &a);
    let d2 = device("a84041000181c7e3", "bac-verre-ecole", "commune-a", &a);
    let d3 = device("a84041000181c7e4", "bac-verre-mairie", "commune-b", &b);
    s.upsert_devices(&[d1.clone(), d2.clone(), d3.clone()]).await.unwrap();
    let got = s.device("a84041000181c7e2").await.unwrap().unwrap();
    assert_eq!(got.device, d1);
    assert_eq!(got.health, DeviceHealth::default());
    let by_name = s.device_by_name(&d3.organisation, "bac-verre-mairie").await.unwrap().unwrap();
    assert_eq!(by_name.device.dev_eui, "a84041000181c7e4");
    assert!(s.device_by_name(&d3.organisation, "bac-verre-ecole").await.unwrap().is_none());
    assert!(s.device("0000000000000000").await.unwrap().is_none());

    let page = s
        .list_devices(&DeviceFilter { organisations: Some(vec![d1.organisation.clone()]), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(
        page.items.iter().map(|d| d.device.name.as_str()).collect::<Vec<_>>(),
        ["bac-verre-ecole", "bac-verre-mairie"]
    );
    let all = s.list_devices(&DeviceFilter { limit: 1, offset: 2, ..Default::default() }).await.unwrap();
    assert_eq!((all.total, all.items.len()), (3, 1));
    assert_eq!(all.items[0].device.organisation.as_str(), "commune-b");
    let by_entity = s.list_devices(&DeviceFilter { entity: Some(b.id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(by_entity.total, 1);
    assert_eq!(
        s.list_devices(&DeviceFilter { organisations: Some(vec![]), ..Default::default() }).await.unwrap().total,
        0
    );

    // A name is unique within its organisation; the whole import fails.
    let clash = device("a84041000181c7e5", "bac-verre-ecole", "commune-a", &a);
    let fresh = device("a84041000181c7e6", "neuf", "commune-a", &a);
    assert!(matches!(s.upsert_devices(&[fresh.clone(), clash]).await, Err(StoreError::Conflict(_))));
    assert!(s.device(&fresh.dev_eui).await.unwrap().is_none(), "nothing of a failed import is kept");
    let ghost = meter("commune-a", "ghost", 0.0, 0.0);
    assert!(matches!(
        s.upsert_devices(&[device("a84041000181c7e7", "x", "commune-a", &ghost)]).await,
        Err(StoreError::UnknownEntity(_))
    ));
    assert!(matches!(
        s.upsert_devices(&[device("a84041000181c7e7", "x", "nowhere", &a)]).await,
        Err(StoreError::UnknownOrganisation(_))
    ));

    // An update replaces the definition and keeps the health.
    let t0 = at("2026-06-01T10:00:00Z");
    s.write_frames(&[frame(&d1.dev_eui, Some("n1"), None, Some(3), vec![obs(&a, "distance", t0, 1.0)])]).await.unwrap();
    let mut renamed = d1.clone();
    renamed.name = "bac-verre-place".into();
    renamed.mappings = serde_json::json!([]);
    s.upsert_devices(&[renamed.clone()]).await.unwrap();
    let got = s.device(&d1.dev_eui).await.unwrap().unwrap();
    assert_eq!(got.device, renamed);
    assert_eq!(got.health.frames_received, 1);
    assert!(got.modified_at >= got.created_at);

    assert!(s.delete_device(&d2.dev_eui).await.unwrap());
    assert!(!s.delete_device(&d2.dev_eui).await.unwrap());
    assert!(s.device(&d2.dev_eui).await.unwrap().is_none());
}

async fn frames_are_stored_once_across_restarts(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let eui = "a84041000181c7e2";
    s.upsert_devices(&[device(eui, "capteur", "commune-a", &a)]).await.unwrap();
    let t0 = at("2026-06-01T10:00:00Z");
    let o = |min: i64, v: f64| {
        vec![obs(&a, "distance", t0 + Duration::minutes(min), v), obs(&a, "battery", t0 + Duration::minutes(min), 3.3)]
    };

    let first = s.write_frames(&[frame(eui, Some("d1"), Some("s1"), Some(7), o(0, 10.0))]).await.unwrap();
    assert_eq!(first.stored, [true]);
    assert_eq!(first.observations.stored, 2);
    // A network-server retry (same id), a late gateway duplicate (new id, same
    // counter in the same session, another instant): nothing written.
    let again = s
        .write_frames(&[
            frame(eui, Some("d1"), Some("s1"), Some(7), o(0, 10.0)),
            frame(eui, Some("d2"), Some("s1"), Some(7), o(1, 11.0)),
        ])
        .await
        .unwrap();
    assert_eq!(again.stored, [false, false]);
    assert_eq!(again.observations, socle_domain::WriteOutcome::default());
    // After a re-join the counter restarts in a new session: a new frame.
    // Inside one call, the second copy of a frame is a duplicate of the first.
    let out = s
        .write_frames(&[
            frame(eui, Some("d3"), Some("s2"), Some(7), o(2, 12.0)),
            frame(eui, Some("d3"), Some("s2"), Some(7), o(2, 12.0)),
            frame(eui, None, None, Some(8), o(3, 13.0)),
            frame(eui, None, None, Some(8), o(3, 13.0)),
        ])
        .await
        .unwrap();
    // Without identity a frame is stored again; its points are duplicates of the series.
    assert_eq!(out.stored, [true, false, true, true]);
    assert_eq!((out.observations.stored, out.observations.duplicates), (4, 2));

    // A restart (new store on the same database) still knows every frame.
    let reopened = t.reopen().await.unwrap();
    let replay = reopened.write_frames(&[frame(eui, Some("d1"), Some("s1"), Some(7), o(0, 10.0))]).await.unwrap();
    assert_eq!(replay.stored, [false]);
    let raw = reopened
        .series(&query(&a, "distance", "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z", Step::Raw))
        .await
        .unwrap();
    match raw {
        SeriesPoints::Raw(p) => {
            assert_eq!(p.iter().map(|p| p.value.as_f64().unwrap()).collect::<Vec<_>>(), [10.0, 12.0, 13.0])
        }
        SeriesPoints::Buckets(_) => panic!("raw expected"),
    }
    let health = reopened.device(eui).await.unwrap().unwrap().health;
    assert_eq!(health.frames_received, 4, "duplicates are not counted");
    assert_eq!(health.last_seen, Some(t0 + Duration::minutes(3)));
    assert_eq!(health.f_cnt, Some(8));
    assert_eq!(health.rssi, Some(-98));

    // An older frame arriving late counts but does not replace newer radio values.
    reopened.write_frames(&[frame(eui, Some("d0"), Some("s1"), Some(5), o(-60, 9.0))]).await.unwrap();
    let health = reopened.device(eui).await.unwrap().unwrap().health;
    assert_eq!((health.frames_received, health.f_cnt, health.last_seen), (5, Some(8), Some(t0 + Duration::minutes(3))));
    // A status event brings battery and margin.
    assert!(reopened
        .update_device_health(
            eui,
            &HealthUpdate {
                at: t0 + Duration::minutes(4),
                battery: Some(88.3),
                margin: Some(12),
                ..Default::default()
            }
        )
        .await
        .unwrap());
    assert!(!reopened.update_device_health("0000000000000000", &HealthUpdate::default()).await.unwrap());
    let health = reopened.device(eui).await.unwrap().unwrap().health;
    assert_eq!(
        (health.battery, health.margin, health.f_cnt, health.frames_received),
        (Some(88.3), Some(12), Some(8), 5)
    );

    // A frame whose observations cannot be stored leaves no identity behind:
    // once the entity exists, the same frame goes through.
    let ghost = meter("commune-a", "ghost", 0.0, 0.0);
    let bad = frame(eui, Some("d9"), Some("s2"), Some(9), vec![obs(&ghost, "distance", t0, 1.0)]);
    assert!(matches!(reopened.write_frames(std::slice::from_ref(&bad)).await, Err(StoreError::UnknownEntity(_))));
    reopened.upsert_entities(&[ghost]).await.unwrap();
    assert_eq!(reopened.write_frames(&[bad]).await.unwrap().stored, [true]);

    // Rollups follow the rows actually inserted.
    assert!(reopened.check_consistency().await.unwrap().problems.is_empty());
    // Purging old identities forgets them; the per-series guard still holds.
    let purged = reopened.purge_ingestion(Utc::now() + Duration::minutes(1), t0).await.unwrap();
    assert_eq!(purged, 4, "the four frames with an identity");
    let late = reopened.write_frames(&[frame(eui, Some("d1"), Some("s1"), Some(7), o(0, 10.0))]).await.unwrap();
    assert_eq!((late.stored[0], late.observations.stored), (true, 0));
}

async fn concurrent_copies_of_a_frame_are_stored_once(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let eui = "a84041000181c7e2";
    s.upsert_devices(&[device(eui, "capteur", "commune-a", &a)]).await.unwrap();
    let t0 = at("2026-06-01T10:00:00Z");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (s, a) = (s.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for f in 0..20u32 {
                // Every frame is sent by every writer, with a different instant
                // each time, so only the frame identity can catch the copies.
                let o = vec![obs(&a, "distance", t0 + Duration::minutes(i64::from(f)) + Duration::seconds(w), 1.0)];
                let ns = if w % 2 == 0 { Some(format!("dedup-{f}")) } else { None };
                let out = s.write_frames(&[frame(eui, ns.as_deref(), Some("s1"), Some(f), o)]).await.unwrap();
                stored += out.stored.iter().filter(|s| **s).count();
            }
            stored
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    assert_eq!(stored, 20);
    let days = buckets(
        s.series(&query(&a, "distance", "2026-05-31T00:00:00Z", "2026-06-03T00:00:00Z", Step::Day)).await.unwrap(),
    );
    assert_eq!(days.iter().map(|d| d.count).sum::<u64>(), 20);
    assert_eq!(s.device(eui).await.unwrap().unwrap().health.frames_received, 20);
    assert!(s.check_consistency().await.unwrap().problems.is_empty());
}

async fn dead_letters_keep_rejected_bodies(t: &TestStore) {
    let s = &t.store;
    territory(s).await;
    let t0 = at("2026-06-01T10:00:00Z");
    let letter = |org: &str, eui: Option<&str>, body: &[u8], min: i64| NewDeadLetter {
        at: t0 + Duration::minutes(min),
        organisation: OrganisationId::parse(org).unwrap(),
        source: "chirpstack".into(),
        event: Some("up".into()),
        dev_eui: eui.map(Into::into),
        reason_code: "unknown-device".into(),
        reason: "no such device".into(),
        body: body.to_vec(),
        body_size: body.len() as u64,
    };
    let l1 = letter("commune-a", Some("a84041000181c7e2"), b"{\"a\":1}", 0);
    let id1 = s.add_dead_letter(&l1).await.unwrap();
    let id2 = s.add_dead_letter(&letter("commune-a", None, &[0xff, 0x00, b'{'], 1)).await.unwrap();
    let id3 = s.add_dead_letter(&letter("commune-b", Some("a84041000181c7e2"), b"{}", 2)).await.unwrap();
    assert!(id1 < id2 && id2 < id3);
    let got = s.dead_letter(id1).await.unwrap().unwrap();
    assert_eq!((got.id, &got.letter, got.replayed_at), (id1, &l1, None));
    assert_eq!(s.dead_letter(id2).await.unwrap().unwrap().letter.body, [0xff, 0x00, b'{'], "bytes kept as received");
    assert!(s.dead_letter(id3 + 100).await.unwrap().is_none());

    let a_only = DeadLetterFilter {
        organisations: Some(vec![OrganisationId::parse("commune-a").unwrap()]),
        ..Default::default()
    };
    let page = s.list_dead_letters(&a_only).await.unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.items.iter().map(|l| l.id).collect::<Vec<_>>(), [id2, id1], "newest first");
    assert!(page.items.iter().all(|l| l.letter.body.is_empty() && l.letter.body_size > 0), "lists carry no body");
    let by_device = DeadLetterFilter { dev_eui: Some("a84041000181c7e2".into()), ..Default::default() };
    assert_eq!(s.list_dead_letters(&by_device).await.unwrap().total, 2);
    let paged = s.list_dead_letters(&DeadLetterFilter { limit: 1, offset: 1, ..Default::default() }).await.unwrap();
    assert_eq!((paged.total, paged.items[0].id), (3, id2));

    assert!(s.mark_dead_letter_replayed(id1, t0 + Duration::hours(1)).await.unwrap());
    assert!(!s.mark_dead_letter_replayed(id1, t0 + Duration::hours(2)).await.unwrap(), "marked once");
    assert_eq!(s.dead_letter(id1).await.unwrap().unwrap().replayed_at, Some(t0 + Duration::hours(1)));
    let pending = s.list_dead_letters(&DeadLetterFilter { pending: true, ..a_only.clone() }).await.unwrap();
    assert_eq!(pending.items.iter().map(|l| l.id).collect::<Vec<_>>(), [id2]);

    assert_eq!(s.purge_ingestion(t0, t0 + Duration::seconds(90)).await.unwrap(), 2);
    assert_eq!(s.list_dead_letters(&DeadLetterFilter::default()).await.unwrap().total, 1);
    // Ids are never reused, even after the newest letter is deleted.
    s.purge_ingestion(t0, t0 + Duration::hours(1)).await.unwrap();
    assert!(s.add_dead_letter(&l1).await.unwrap() > id3);
}

async fn notifications_subscriptions_webhooks_and_outbox(t: &TestStore) {
    use socle_storage::{DeliveryFilter, NewDelivery, PushSubscriptionRecord, StoredSubscription, StoredWebhook};
    let s = &t.store;
    s.upsert_organisation(&org("syndicat", "200046977", None, None)).await.unwrap();
    s.upsert_organisation(&org("commune-a", "86001", Some("syndicat"), None)).await.unwrap();
    let u = s.create_user(&socle_domain::Email::parse("agent@a.fr").unwrap(), "Agent", None).await.unwrap();
    // Storage keeps milliseconds.
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();

    // Subscriptions: created, replaced in place, listed per user, deleted.
    let mut sub = StoredSubscription {
        id: uuid::Uuid::new_v4(),
        user: u.id,
        spec: serde_json::json!({"domains": ["eau"], "minSeverity": "high"}),
        created_at: now,
        modified_at: now,
    };
    s.put_subscription(&sub).await.unwrap();
    sub.spec = serde_json::json!({"domains": ["eau", "air"]});
    s.put_subscription(&sub).await.unwrap();
    assert_eq!(s.subscription(sub.id).await.unwrap().unwrap().spec, sub.spec);
    assert_eq!(s.list_subscriptions(Some(u.id)).await.unwrap().len(), 1);
    assert_eq!(s.list_subscriptions(Some(socle_domain::UserId::new())).await.unwrap().len(), 0);
    let ghost = StoredSubscription { id: uuid::Uuid::new_v4(), user: socle_domain::UserId::new(), ..sub.clone() };
    assert!(matches!(s.put_subscription(&ghost).await, Err(StoreError::UnknownUser(_))));

    // Webhooks, per organisation.
    let hook = StoredWebhook {
        id: uuid::Uuid::new_v4(),
        organisation: OrganisationId::parse("commune-a").unwrap(),
        url: "http://127.0.0.1:9/hook".into(),
        secret: "s3cret".into(),
        spec: serde_json::json!({}),
        created_at: now,
        modified_at: now,
    };
    s.put_webhook(&hook).await.unwrap();
    assert_eq!(s.webhook(hook.id).await.unwrap().unwrap(), StoredWebhook { ..hook.clone() });
    let a = [OrganisationId::parse("commune-a").unwrap()];
    let other = [OrganisationId::parse("syndicat").unwrap()];
    assert_eq!(s.list_webhooks(Some(&a)).await.unwrap().len(), 1);
    assert!(s.list_webhooks(Some(&other)).await.unwrap().is_empty());
    let bad = StoredWebhook {
        id: uuid::Uuid::new_v4(),
        organisation: OrganisationId::parse("nulle-part").unwrap(),
        ..hook.clone()
    };
    assert!(matches!(s.put_webhook(&bad).await, Err(StoreError::UnknownOrganisation(_))));

    // Push subscriptions: the same endpoint registered again keeps one row.
    let push = PushSubscriptionRecord {
        id: uuid::Uuid::new_v4(),
        user: u.id,
        endpoint: "http://127.0.0.1:9/push/abc".into(),
        p256dh: "key".into(),
        auth: "auth".into(),
        created_at: now,
    };
    let kept = s.put_push_subscription(&push).await.unwrap();
    assert_eq!(kept, push.id);
    let again = PushSubscriptionRecord { id: uuid::Uuid::new_v4(), p256dh: "key2".into(), ..push.clone() };
    assert_eq!(s.put_push_subscription(&again).await.unwrap(), push.id);
    let listed = s.list_push_subscriptions(u.id).await.unwrap();
    assert_eq!((listed.len(), listed[0].p256dh.as_str()), (1, "key2"));

    // Outbox: enqueued in one go, claimed once per lease, retried, delivered.
    let rows: Vec<NewDelivery> = (0..3)
        .map(|i| NewDelivery {
            id: uuid::Uuid::new_v4(),
            channel: "webhook".into(),
            recipient: hook.id.to_string(),
            alert_id: "alert-1".into(),
            payload: serde_json::json!({"n": i}),
            due_at: now + Duration::seconds(i * 10),
        })
        .collect();
    s.enqueue_deliveries(&rows).await.unwrap();
    s.enqueue_deliveries(&rows[..1]).await.unwrap(); // the same ids again: nothing new
    let all = DeliveryFilter { alert_id: Some("alert-1".into()), limit: 100, ..Default::default() };
    assert_eq!(s.list_deliveries(&all).await.unwrap().len(), 3);
    let lease = now + Duration::seconds(60);
    let claimed = s.claim_deliveries(now + Duration::seconds(10), lease, 10).await.unwrap();
    let ids: HashSet<_> = claimed.iter().map(|d| d.delivery.id).collect();
    assert_eq!(ids, HashSet::from([rows[0].id, rows[1].id]));
    assert!(claimed.iter().all(|d| d.attempts == 1 && d.delivery.due_at == lease));
    // Under lease: not claimed again until it is over.
    assert_eq!(s.claim_deliveries(now + Duration::seconds(20), lease, 10).await.unwrap().len(), 1);
    assert!(s.claim_deliveries(now + Duration::seconds(30), lease, 10).await.unwrap().is_empty());
    s.retry_delivery(rows[0].id, now + Duration::seconds(5), &"x".repeat(2000)).await.unwrap();
    s.complete_delivery(rows[1].id, now).await.unwrap();
    s.fail_delivery(rows[2].id, now, "gone").await.unwrap();
    let again = s.claim_deliveries(now + Duration::seconds(5), lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].attempts, again[0].last_error.as_ref().map(|e| e.len())), (2, Some(500)));
    let pending = DeliveryFilter { pending: true, limit: 100, ..Default::default() };
    assert_eq!(s.list_deliveries(&pending).await.unwrap().len(), 1);
    // Finished rows are purged, pending ones stay.
    assert_eq!(s.purge_deliveries(now + Duration::seconds(1)).await.unwrap(), 2);
    assert_eq!(s.list_deliveries(&all).await.unwrap().len(), 1);

    // Deletes report whether the row existed.
    assert!(s.delete_webhook(hook.id).await.unwrap());
    assert!(!s.delete_webhook(hook.id).await.unwrap());
    assert!(s.delete_push_subscription(push.id).await.unwrap());
    assert!(s.delete_subscription(sub.id).await.unwrap());
    assert!(s.subscription(sub.id).await.unwrap().is_none());
}

async fn datasets_records_attachments_and_usage(t: &TestStore) {
    use socle_storage::{StoredAttachment, StoredDataset, StoredRecord, UsageKind};
    let s = &t.store;
    s.upsert_organisation(&org("commune-a", "86001", None, None)).await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
    let mut d = StoredDataset {
        id: "equipements-sportifs".into(),
        uid: "da_equip1".into(),
        organisation: OrganisationId::parse("commune-a").unwrap(),
        visibility: socle_domain::Visibility::Public,
        shared_with: vec![],
        metadata: serde_json::json!({"title": "Équipements sportifs"}),
        fields: serde_json::json!([]),
        records_count: 0,
        data_modified_at: None,
        created_at: at,
        modified_at: at,
    };
    s.put_dataset(&d).await.unwrap();
    let unknown = StoredDataset {
        id: "x".into(),
        uid: "da_x".into(),
        organisation: OrganisationId::parse("nope").unwrap(),
        ..d.clone()
    };
    assert!(matches!(s.put_dataset(&unknown).await, Err(StoreError::UnknownOrganisation(_))));
    let record = |row: i64, name: &str| StoredRecord {
        row,
        id: format!("r{row}"),
        data: serde_json::from_value(serde_json::json!({"nom": name, "n": row})).unwrap(),
    };
    let records: Vec<StoredRecord> = (1..=1203).map(|i| record(i, &format!("équipement {i}"))).collect();
    s.replace_records(&d.id, &serde_json::json!([{"name": "nom"}]), &records, at).await.unwrap();
    let got = s.dataset(&d.id).await.unwrap().unwrap();
    assert_eq!(got.records_count, 1203);
    assert_eq!(got.fields, serde_json::json!([{"name": "nom"}]));
    assert_eq!(got.data_modified_at, Some(at));
    // Chunks come back in row order and end.
    let mut after = 0;
    let mut seen = 0;
    loop {
        let chunk = s.records_chunk(&d.id, after, 500).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        assert_eq!(chunk[0].row, after + 1);
        after = chunk.last().unwrap().row;
        seen += chunk.len();
    }
    assert_eq!(seen, 1203);
    assert_eq!(s.record(&d.id, "r42").await.unwrap().unwrap().data["nom"], "équipement 42");
    // Re-upload replaces the data, keeps the dataset and its metadata.
    s.replace_records(&d.id, &serde_json::json!([]), &[record(1, "piscine")], at).await.unwrap();
    assert_eq!(s.dataset(&d.id).await.unwrap().unwrap().records_count, 1);
    assert!(s.record(&d.id, "r42").await.unwrap().is_none());
    d.metadata = serde_json::json!({"title": "Équipements"});
    d.visibility = socle_domain::Visibility::Private;
    d.shared_with = vec![OrganisationId::parse("commune-a").unwrap()];
    s.put_dataset(&d).await.unwrap();
    let got = s.dataset(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (got.records_count, got.visibility, got.uid.as_str()),
        (1, socle_domain::Visibility::Private, "da_equip1")
    );
    assert_eq!(got.shared_with, d.shared_with);
    assert_eq!(s.list_datasets().await.unwrap().len(), 1);

    let pdf = StoredAttachment {
        name: "notice.pdf".into(),
        title: "Notice".into(),
        media_type: "application/pdf".into(),
        content: b"%PDF-1.7 ...".to_vec(),
        size: 0,
        created_at: at,
    };
    s.put_attachment(&d.id, &pdf).await.unwrap();
    let list = s.attachments(&d.id).await.unwrap();
    assert_eq!((list.len(), list[0].size, list[0].content.len()), (1, 12, 0));
    assert_eq!(s.attachment(&d.id, "notice.pdf").await.unwrap().unwrap().content, pdf.content);

    s.count_usage(&d.id, UsageKind::View).await.unwrap();
    s.count_usage(&d.id, UsageKind::ApiCall).await.unwrap();
    s.count_usage(&d.id, UsageKind::ApiCall).await.unwrap();
    let u = s.usage(&d.id).await.unwrap();
    assert_eq!((u.views, u.downloads, u.api_calls), (1, 0, 2));
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

async fn downlinks_only_move_forward(t: &TestStore) {
    let s = &t.store;
    let (a, _) = territory(s).await;
    let eui = "a84041000181c7e2";
    s.upsert_devices(&[device(eui, "armoire-12", "commune-a", &a)]).await.unwrap();
    assert_eq!(s.device_route(eui).await.unwrap(), None);
    let route = DeviceRoute { network: "chirpstack".into(), application: "app-1".into(), device_id: None };
    s.set_device_route(eui, &route).await.unwrap();
    let moved =
        DeviceRoute { network: "ttn".into(), application: "eclairage@ttn".into(), device_id: Some("a-12".into()) };
    s.set_device_route(eui, &moved).await.unwrap();
    assert_eq!(s.device_route(eui).await.unwrap(), Some(moved));

    let t0 = at("2026-06-01T10:00:00Z");
    let org_a = OrganisationId::parse("commune-a").unwrap();
    let new = |id: &str, min: i64| NewDownlink {
        id: id.into(),
        organisation: org_a.clone(),
        dev_eui: eui.into(),
        f_port: 10,
        payload: vec![0x01, 0xff],
        confirmed: true,
        requested_by: Some("user:x".into()),
        created_at: t0 + Duration::minutes(min),
    };
    s.add_downlink(&new("d1", 0)).await.unwrap();
    s.add_downlink(&new("d2", 1)).await.unwrap();
    assert!(matches!(s.add_downlink(&new("d1", 2)).await, Err(StoreError::Conflict(_))));
    let orphan = NewDownlink { dev_eui: "0000000000000001".into(), ..new("d3", 3) };
    assert!(matches!(s.add_downlink(&orphan).await, Err(StoreError::Conflict(_))));
    let d1 = s.downlink("d1").await.unwrap().unwrap();
    assert_eq!((d1.downlink.clone(), d1.status, d1.sent_at), (new("d1", 0), DownlinkStatus::Queued, None));
    let queued: Vec<String> = s.queued_downlinks(10).await.unwrap().into_iter().map(|d| d.downlink.id).collect();
    assert_eq!(queued, ["d1", "d2"]);

    let change = |status, min: i64, org: Option<&str>| DownlinkChange {
        id: "d1".into(),
        organisation: org.map(|o| OrganisationId::parse(o).unwrap()),
        status,
        at: t0 + Duration::minutes(min),
        detail: None,
        f_cnt_down: Some(7),
    };
    assert!(s.advance_downlink(&change(DownlinkStatus::Sent, 1, None)).await.unwrap());
    // Another organisation's network server cannot move it.
    assert!(!s.advance_downlink(&change(DownlinkStatus::Acknowledged, 2, Some("commune-b"))).await.unwrap());
    assert!(s.advance_downlink(&change(DownlinkStatus::Acknowledged, 3, Some("commune-a"))).await.unwrap());
    // A late transmission report, or a second acknowledgement, changes nothing.
    assert!(!s.advance_downlink(&change(DownlinkStatus::Transmitted, 4, None)).await.unwrap());
    assert!(!s.advance_downlink(&change(DownlinkStatus::Failed, 5, None)).await.unwrap());
    let d1 = s.downlink("d1").await.unwrap().unwrap();
    assert_eq!(d1.status, DownlinkStatus::Acknowledged);
    assert_eq!(
        (d1.sent_at, d1.acknowledged_at, d1.transmitted_at),
        (Some(t0 + Duration::minutes(1)), Some(t0 + Duration::minutes(3)), None)
    );
    assert_eq!(d1.f_cnt_down, Some(7));
    let failed =
        DownlinkChange { id: "d2".into(), detail: Some("no route".into()), ..change(DownlinkStatus::Failed, 6, None) };
    assert!(s.advance_downlink(&failed).await.unwrap());
    assert!(s.queued_downlinks(10).await.unwrap().is_empty());
    let listed: Vec<(String, Option<String>)> =
        s.list_downlinks(eui, 10).await.unwrap().into_iter().map(|d| (d.downlink.id, d.detail)).collect();
    assert_eq!(listed, [("d2".to_owned(), Some("no route".to_owned())), ("d1".to_owned(), None)]);
    // Deleting the device deletes its downlinks and route.
    s.delete_device(eui).await.unwrap();
    assert!(s.downlink("d1").await.unwrap().is_none());
    assert_eq!(s.device_route(eui).await.unwrap(), None);
}

fn open_write(rule: &str, e: &Entity, at_: DateTime<Utc>) -> AlertWrite {
    AlertWrite::Open {
        rule: rule.into(),
        entity: e.id.clone(),
        entity_type: e.entity_type.to_string(),
        organisation: e.organisation.clone(),
        severity: "high".into(),
        at: at_,
        since: at_ - Duration::minutes(15),
        value: Some(27.5),
        message_fr: "Température élevée".into(),
        message_en: "High temperature".into(),
    }
}

fn resolve_write(rule: &str, e: &Entity, at_: DateTime<Utc>) -> AlertWrite {
    AlertWrite::Resolve {
        rule: rule.into(),
        entity: e.id.clone(),
        at: at_,
        reason: "cleared".into(),
        message_fr: "Retour à la normale".into(),
        message_en: "Back to normal".into(),
    }
}

async fn rules_roundtrip(t: &TestStore) {
    let s = &t.store;
    territory(s).await;
    let t0 = at("2026-03-01T10:00:00Z");
    let rule = RuleRecord {
        id: "r1".into(),
        organisation: OrganisationId::parse("commune-a").unwrap(),
        definition: serde_json::json!({"id": "r1", "label": {"fr": "Température"}}),
        enabled: true,
        author: Some("user-1".into()),
        created_at: t0,
        modified_at: t0,
    };
    assert_eq!(s.upsert_rule(&rule).await.unwrap(), rule);
    let mut other = rule.clone();
    other.id = "r2".into();
    other.organisation = OrganisationId::parse("commune-b").unwrap();
    other.enabled = false;
    s.upsert_rule(&other).await.unwrap();
    let mut edited = rule.clone();
    edited.created_at = t0 + Duration::hours(1);
    edited.modified_at = t0 + Duration::hours(1);
    let back = s.upsert_rule(&edited).await.unwrap();
    assert_eq!((back.created_at, back.modified_at), (t0, t0 + Duration::hours(1)), "creation time kept");
    let a_only = RuleFilter { organisations: Some(vec![rule.organisation.clone()]), enabled_only: false };
    assert_eq!(s.list_rules(&a_only).await.unwrap().len(), 1);
    let enabled = RuleFilter { organisations: None, enabled_only: true };
    assert_eq!(s.list_rules(&enabled).await.unwrap().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r1"]);
    assert_eq!(s.list_rules(&RuleFilter::default()).await.unwrap().len(), 2);
    let mut orphan = rule.clone();
    orphan.organisation = OrganisationId::parse("nobody").unwrap();
    assert!(matches!(s.upsert_rule(&orphan).await, Err(StoreError::UnknownOrganisation(_))));
    assert!(s.delete_rule("r1").await.unwrap());
    assert!(!s.delete_rule("r1").await.unwrap());
    assert!(s.rule("r1").await.unwrap().is_none());
    assert!(s.rule("r2").await.unwrap().is_some());
}

async fn alerts_are_opened_once_and_replays_change_nothing(t: &TestStore) {
    let s = &t.store;
    let (a, b) = territory(s).await;
    let t0 = at("2026-03-01T10:00:00Z");
    let state = EngineState { snapshot: "{\"evaluations\":[]}".into(), watermark: t0, saved_at: t0 };
    let first = [open_write("r1", &a, t0), open_write("r1", &b, t0), open_write("r2", &a, t0)];
    let changes = s.record_transitions(&first, Some(&state)).await.unwrap();
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|c| c.kind == AlertEventKind::Opened && c.alert.status == AlertStatus::Open));
    assert_eq!(s.engine_state().await.unwrap(), Some(state));

    // The same batch again (a replay after a crash): nothing new.
    assert!(s.record_transitions(&first, None).await.unwrap().is_empty());
    // Another opening while one is unresolved: refused by the partial unique index.
    assert!(s.record_transitions(&[open_write("r1", &a, t0 + Duration::minutes(5))], None).await.unwrap().is_empty());
    assert_eq!(s.list_alerts(&AlertFilter { limit: 100, ..Default::default() }).await.unwrap().total, 3);
    let dup = format!(
        "INSERT INTO alerts (rule_id, entity_id, entity_type, organisation_id, severity, severity_rank, status,
             opened_at, since, message_fr, message_en, modified_at)
         VALUES ('r1', '{}', 'SmartMeteringObservation', 'commune-a', 'low', 1, 'open', 5, 5, 'x', 'x', 5)",
        a.id
    );
    assert!(t.try_exec_raw(&dup).await.is_err(), "the database itself refuses a second unresolved alert");

    // Open, resolve, open again; then the whole sequence replayed: still two alerts.
    let t1 = t0 + Duration::hours(1);
    let t2 = t0 + Duration::hours(2);
    let sequence = [resolve_write("r1", &a, t1), open_write("r1", &a, t2)];
    let changes = s.record_transitions(&sequence, None).await.unwrap();
    assert_eq!(changes.iter().map(|c| c.kind).collect::<Vec<_>>(), [AlertEventKind::Resolved, AlertEventKind::Opened]);
    assert_eq!(changes[0].alert.resolved_at, Some(t1));
    assert_eq!(changes[0].alert.resolution.as_deref(), Some("cleared"));
    assert!(s.record_transitions(&first, None).await.unwrap().is_empty());
    assert!(s.record_transitions(&sequence, None).await.unwrap().is_empty());
    let a_r1 = AlertFilter { entity: Some(a.id.clone()), rule: Some("r1".into()), limit: 100, ..Default::default() };
    let page = s.list_alerts(&a_r1).await.unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.items[0].status, AlertStatus::Open, "unresolved first");
    assert_eq!(page.items[0].opened_at, t2);
    let events = s.alert_events(page.items[1].id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [AlertEventKind::Opened, AlertEventKind::Resolved]);
    assert_eq!(events[1].note.as_deref(), Some("Retour à la normale"));
    assert_eq!(events[1].actor, None);

    // People act on alerts.
    let id = page.items[0].id;
    let ack = s.act_on_alert(id, &AlertAction::Acknowledge, "user-1", t2).await.unwrap().unwrap().unwrap();
    assert_eq!((ack.alert.status, ack.alert.acknowledged_by.as_deref()), (AlertStatus::Acknowledged, Some("user-1")));
    let assign = AlertAction::Assign { assignee: Some("user-2".into()) };
    let assigned = s.act_on_alert(id, &assign, "user-1", t2).await.unwrap().unwrap().unwrap();
    assert_eq!(assigned.alert.assignee.as_deref(), Some("user-2"));
    let comment = AlertAction::Comment { text: "Technicien prévenu".into() };
    s.act_on_alert(id, &comment, "user-2", t2).await.unwrap().unwrap().unwrap();
    let resolved = s
        .act_on_alert(id, &AlertAction::Resolve { note: Some("Vanne refermée".into()) }, "user-2", t2)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resolved.alert.status, AlertStatus::Resolved);
    assert_eq!(resolved.alert.resolution.as_deref(), Some("manual"));
    assert_eq!(s.alert(id).await.unwrap().unwrap(), resolved.alert);
    assert!(matches!(
        s.act_on_alert(id, &AlertAction::Acknowledge, "user-1", t2).await.unwrap(),
        Some(Err(ActionRefusal::Resolved))
    ));
    assert!(s.act_on_alert(id, &comment, "user-1", t2).await.unwrap().unwrap().is_ok(), "comments stay possible");
    assert!(s.act_on_alert(9_999, &AlertAction::Acknowledge, "user-1", t2).await.unwrap().is_none());
    // The engine's later resolution of a manually resolved alert changes nothing.
    assert!(s.record_transitions(&[resolve_write("r1", &a, t2 + Duration::hours(1))], None).await.unwrap().is_empty());
    let kinds: Vec<_> = s.alert_events(id).await.unwrap().iter().map(|e| e.kind).collect();
    use AlertEventKind::*;
    assert_eq!(kinds, [Opened, Acknowledged, Assigned, Commented, Resolved, Commented]);

    // Filters.
    let open_in_b = AlertFilter {
        organisations: Some(vec![b.organisation.clone()]),
        statuses: Some(vec![AlertStatus::Open, AlertStatus::Acknowledged]),
        severities: Some(vec!["high".into()]),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(s.list_alerts(&open_in_b).await.unwrap().total, 1);
    let low = AlertFilter { severities: Some(vec!["low".into()]), limit: 100, ..Default::default() };
    assert_eq!(s.list_alerts(&low).await.unwrap().total, 0);
    let by_type =
        AlertFilter { entity_types: Some(vec!["SmartMeteringObservation".into()]), limit: 1, ..Default::default() };
    let page = s.list_alerts(&by_type).await.unwrap();
    assert_eq!((page.total, page.items.len()), (4, 1));
}

async fn observations_can_be_scanned_by_time(t: &TestStore) {
    let s = &t.store;
    let (a, b) = territory(s).await;
    let t0 = at("2026-03-01T00:00:00Z");
    let mut batch = Vec::new();
    for h in 0..5 {
        batch.push(obs(&a, "energy", t0 + Duration::hours(h), h as f64));
        batch.push(obs(&b, "energy", t0 + Duration::hours(h) + Duration::minutes(30), 10.0 + h as f64));
    }
    batch.push(text_obs(&a, "status", t0 + Duration::minutes(90), "fault"));
    s.write_observations(&batch).await.unwrap();
    let all = ObservationScan {
        from: t0,
        to: t0 + Duration::hours(3),
        organisation: None,
        entity_type: None,
        entities: None,
        attribute: None,
    };
    let got = s.scan_observations(&all).await.unwrap();
    // (t0, t0+3h]: a at 1h, 2h, 3h; b at 0h30 … 2h30; the text at 1h30.
    assert_eq!(got.len(), 7);
    assert!(got.windows(2).all(|w| w[0].observed_at <= w[1].observed_at), "in time order");
    assert!(got.iter().any(|o| o.value == ObservedValue::Text("fault".into())));
    let of_a = ObservationScan { organisation: Some(a.organisation.clone()), ..all.clone() };
    assert_eq!(s.scan_observations(&of_a).await.unwrap().len(), 4);
    let energy_of_b = ObservationScan {
        entities: Some(vec![b.id.clone()]),
        attribute: Some("energy".into()),
        entity_type: Some("SmartMeteringObservation".into()),
        ..all.clone()
    };
    assert_eq!(s.scan_observations(&energy_of_b).await.unwrap().len(), 3);
    assert!(s.scan_observations(&ObservationScan { entities: Some(vec![]), ..all }).await.unwrap().is_empty());
}

suite!(
    migrations_are_idempotent_and_refuse_newer_schemas,
    organisations_roundtrip,
    entities_roundtrip_and_merge,
    entities_are_replaced_and_deleted,
    entity_queries_filter_and_page,
    entity_queries_on_attribute_values,
    jsonld_contexts_are_kept,
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
    devices_roundtrip,
    frames_are_stored_once_across_restarts,
    concurrent_copies_of_a_frame_are_stored_once,
    dead_letters_keep_rejected_bodies,
    downlinks_only_move_forward,
    notifications_subscriptions_webhooks_and_outbox,
    rules_roundtrip,
    alerts_are_opened_once_and_replays_change_nothing,
    observations_can_be_scanned_by_time,
    datasets_records_attachments_and_usage,
    ngsi_subscriptions_and_their_outbox,
);

async fn entities_are_replaced_and_deleted(t: &TestStore) {
    let s = &t.store;
    let (a, b) = territory(s).await;
    s.write_observations(&[obs(&a, "consumption", at("2026-01-05T10:00:00Z"), 2.0)]).await.unwrap();
    // Replacing keeps exactly the attributes given.
    let mut a2 = a.clone().with("status", Attribute::property("ok")).unwrap();
    a2.attributes.remove(&AttributeName::parse("name").unwrap());
    s.replace_entities(&[a2.clone()]).await.unwrap();
    let got = s.entity(&a.id).await.unwrap().unwrap();
    assert_eq!(got.attributes.keys().map(|k| k.as_str()).collect::<Vec<_>>(), vec!["status"]);
    // An entity of another organisation is never taken over, and the batch writes nothing.
    let mut stolen = b.clone();
    stolen.organisation = OrganisationId::parse("commune-a").unwrap();
    let fresh = meter("commune-a", "a-2", 0.3, 46.5);
    let err = s.replace_entities(&[fresh.clone(), stolen]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(s.entity(&fresh.id).await.unwrap().is_none());
    assert_eq!(s.entity(&b.id).await.unwrap().unwrap().organisation.as_str(), "commune-b");
    // Deleting takes the history along; a second delete finds nothing.
    assert!(s.delete_entity(&a.id).await.unwrap());
    assert!(s.entity(&a.id).await.unwrap().is_none());
    assert!(!s.delete_entity(&a.id).await.unwrap());
    let page = s
        .query_entities(&EntityFilter {
            audience: Audience::Members(socle_domain::Reach {
                full: vec![OrganisationId::parse("commune-a").unwrap()],
                internal: vec![],
                partner: vec![],
            }),
            bbox: Some(BBox::new(0.0, 46.0, 1.0, 47.0).unwrap()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 0);
    // Recreated under the same id, it starts without the old history.
    s.upsert_entities(std::slice::from_ref(&a)).await.unwrap();
    assert!(s.list_series(&a.id).await.unwrap().is_empty());
}

async fn ngsi_subscriptions_and_their_outbox(t: &TestStore) {
    use socle_storage::{NewNgsiNotification, NgsiDeliveryCounters, StoredNgsiSubscription};
    let s = &t.store;
    s.upsert_organisation(&org("syndicat", "200046977", None, None)).await.unwrap();
    s.upsert_organisation(&org("commune-a", "86001", Some("syndicat"), None)).await.unwrap();
    s.upsert_organisation(&org("commune-b", "86002", Some("syndicat"), None)).await.unwrap();
    let u = s.create_user(&socle_domain::Email::parse("agent@a.fr").unwrap(), "Agent", None).await.unwrap();
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let sub = |id: &str, org_: &str| StoredNgsiSubscription {
        id: id.into(),
        organisation: OrganisationId::parse(org_).unwrap(),
        tenant_only: org_ == "commune-b",
        owner: u.id,
        spec: serde_json::json!({"id": id, "q": "fillingLevel>0.8"}),
        created_at: now,
        modified_at: now,
        counters: NgsiDeliveryCounters::default(),
    };
    let a = sub("urn:ngsi-ld:Subscription:a", "commune-a");
    s.create_ngsi_subscription(&a).await.unwrap();
    s.create_ngsi_subscription(&sub("urn:ngsi-ld:Subscription:b", "commune-b")).await.unwrap();
    // Ids are global.
    assert!(matches!(
        s.create_ngsi_subscription(&sub("urn:ngsi-ld:Subscription:a", "commune-b")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.create_ngsi_subscription(&sub("urn:ngsi-ld:Subscription:x", "nulle-part")).await.is_err());
    assert_eq!(s.ngsi_subscription("urn:ngsi-ld:Subscription:a").await.unwrap().unwrap(), a);
    let only_a = s.list_ngsi_subscriptions(Some(&[OrganisationId::parse("commune-a").unwrap()])).await.unwrap();
    assert_eq!(only_a.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), vec!["urn:ngsi-ld:Subscription:a"]);
    assert_eq!(s.list_ngsi_subscriptions(None).await.unwrap().len(), 2);
    assert!(s.list_ngsi_subscriptions(Some(&[])).await.unwrap().is_empty());
    assert!(s.ngsi_subscription("urn:ngsi-ld:Subscription:b").await.unwrap().unwrap().tenant_only);
    let later = now + Duration::seconds(5);
    assert!(s.update_ngsi_subscription(&a.id, &serde_json::json!({"id": a.id}), later).await.unwrap());
    assert!(!s
        .update_ngsi_subscription("urn:ngsi-ld:Subscription:absente", &serde_json::json!({}), later)
        .await
        .unwrap());
    let got = s.ngsi_subscription(&a.id).await.unwrap().unwrap();
    assert_eq!((got.modified_at, got.created_at), (later, now));

    // The outbox: idempotent on the notification id, nothing for an unknown subscription.
    let n = |k: u128, sub_: &str| NewNgsiNotification {
        id: uuid::Uuid::from_u128(k),
        subscription: sub_.into(),
        body: serde_json::json!({"id": format!("urn:ngsi-ld:Notification:{k}"), "data": [k as u64]}),
        due_at: now,
    };
    let rows = [n(1, &a.id), n(2, &a.id), n(3, "urn:ngsi-ld:Subscription:b"), n(4, "urn:ngsi-ld:Subscription:absente")];
    assert_eq!(s.enqueue_ngsi_notifications(&rows).await.unwrap(), 3);
    assert_eq!(s.enqueue_ngsi_notifications(&rows[..2]).await.unwrap(), 0, "the same ids write nothing");
    assert_eq!(s.list_ngsi_notifications(None, 100).await.unwrap().len(), 3);

    // Claims count an attempt and hide rows until the lease ends.
    let lease = now + Duration::seconds(60);
    let claimed = s.claim_ngsi_notifications(now, lease, 2).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|c| c.attempts == 1 && c.notification.due_at == lease));
    let third = s.claim_ngsi_notifications(now, lease, 10).await.unwrap();
    assert_eq!(third.len(), 1);
    assert!(s.claim_ngsi_notifications(now, lease, 10).await.unwrap().is_empty(), "all leased");
    let again = s.claim_ngsi_notifications(lease, lease + Duration::seconds(60), 10).await.unwrap();
    assert_eq!(again.len(), 3, "due again once the lease is over");
    assert!(again.iter().all(|c| c.attempts == 2));

    // Outcomes, and the subscription's counters with them.
    let (one, two) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
    s.retry_ngsi_notification(one, later, later + Duration::seconds(30), "connection refused").await.unwrap();
    s.complete_ngsi_notification(one, later + Duration::seconds(40)).await.unwrap();
    s.complete_ngsi_notification(one, later + Duration::seconds(50)).await.unwrap(); // a late second completion
    s.fail_ngsi_notification(two, later + Duration::seconds(60), "410 Gone").await.unwrap();
    let c = s.ngsi_subscription(&a.id).await.unwrap().unwrap().counters;
    assert_eq!((c.times_sent, c.times_failed), (3, 2));
    assert_eq!(c.last_success, Some(later + Duration::seconds(40)));
    assert_eq!(c.last_failure, Some(later + Duration::seconds(60)));
    assert_eq!(c.last_notification, Some(later + Duration::seconds(60)));
    let mine = s.list_ngsi_notifications(Some(&a.id), 100).await.unwrap();
    assert_eq!(mine.len(), 2);
    let first = mine.iter().find(|r| r.notification.id == one).unwrap();
    assert_eq!(first.delivered_at, Some(later + Duration::seconds(40)));
    assert_eq!(first.last_error, None);
    let second = mine.iter().find(|r| r.notification.id == two).unwrap();
    assert_eq!(second.last_error.as_deref(), Some("410 Gone"));
    assert!(second.failed_at.is_some());
    assert_eq!(first.notification.body["data"][0], 1);

    // Finished rows are purged; deleting a subscription takes its pending rows.
    assert_eq!(s.purge_ngsi_notifications(later + Duration::seconds(61)).await.unwrap(), 2);
    assert!(s.delete_ngsi_subscription("urn:ngsi-ld:Subscription:b").await.unwrap());
    assert!(!s.delete_ngsi_subscription("urn:ngsi-ld:Subscription:b").await.unwrap());
    assert!(s.list_ngsi_notifications(None, 100).await.unwrap().is_empty());
}
