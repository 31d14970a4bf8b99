//! The ingestion commands on the real binary: device import and list, codec
//! vectors, and a historical import killed mid-way then resumed.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::socle;
use socle_domain::{
    AttributeName, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind,
    SeriesPoints, SeriesQuery, Step, TimeRange,
};
use socle_storage::testing::TestStore;
use socle_storage::{DynStore, StorageConfig};

fn data_dir(t: &TestStore) -> std::path::PathBuf {
    match &t.config {
        StorageConfig::Sqlite { path } => path.parent().unwrap().to_path_buf(),
        StorageConfig::Postgres { .. } => unreachable!(),
    }
}

fn run(t: &TestStore, args: &[&str]) -> Output {
    let mut cmd: Command = socle();
    cmd.arg("--data-dir").arg(data_dir(t)).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn entity(i: u32) -> String {
    format!("urn:ngsi-ld:WaterMeter:cli-{i}")
}

async fn territory(s: &DynStore) {
    for (id, code) in [("commune-a", "86001"), ("commune-b", "86002")] {
        s.upsert_organisation(&NewOrganisation {
            id: OrganisationId::parse(id).unwrap(),
            kind: OrganisationKind::Commune,
            name: id.into(),
            code: OfficialCode::parse(code).unwrap(),
            parent: None,
            population: None,
            timezone: chrono_tz::Europe::Paris,
            retention_days: None,
        })
        .await
        .unwrap();
    }
    let ty = EntityType::parse("WaterMeter").unwrap();
    let org = OrganisationId::parse("commune-a").unwrap();
    let entities: Vec<Entity> =
        (0..3).map(|i| Entity::new(EntityId::parse(&entity(i)).unwrap(), ty.clone(), org.clone())).collect();
    s.upsert_entities(&entities).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_codecs_from_the_command_line() {
    let t = TestStore::sqlite().await;
    territory(&t.store).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    std::fs::write(
        &csv,
        format!(
            "dev_eui;name;model;organisation;entity;field;attribute;unit;kind;scale\n\
             a84041000181c7e2;compteur-0;socle-water-meter;commune-a;{e0};index;volume;MTQ;number;0,001\n\
             a84041000181c7e3;compteur-1;socle-water-meter;commune-a;{e1};index;volume;MTQ;number;\n\
             a84041000181c7e4;compteur-b;socle-water-meter;commune-b;{e2};index;volume;MTQ;;\n",
            e0 = entity(0),
            e1 = entity(1),
            e2 = entity(2)
        ),
    )
    .unwrap();
    let csv = csv.to_str().unwrap();
    // A device of another organisation is refused; the others are imported; the exit code says so.
    let out = run(&t, &["device", "import", csv, "--org", "commune-a", "--dry-run"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("belongs to commune-b"), "{}", text(&out));
    assert!(t.store.device("a84041000181c7e2").await.unwrap().is_none(), "a dry run imports nothing");
    let out = run(&t, &["device", "import", csv, "--org", "commune-a"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("2 capteurs importés"), "{}", text(&out));
    let d = t.store.device("a84041000181c7e2").await.unwrap().unwrap();
    assert_eq!(d.device.mappings[0]["transform"], serde_json::json!({"type": "linear", "scale": 0.001, "offset": 0.0}));
    assert!(t.store.device("a84041000181c7e4").await.unwrap().is_none());

    let out = run(&t, &["device", "list", "--org", "commune-a"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.lines().next().unwrap().starts_with("a84041000181c7e2\tcommune-a\tcompteur-0\tsocle-water-meter"));

    let out = run(&t, &["codec", "test"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("dragino-ldds75: 7/7 vectors passed"), "{}", text(&out));
    let out = run(&t, &["codec", "test", "socle-parking"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&t, &["codec", "test", "unknown-model"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("built-in models"), "{}", text(&out));
}

async fn points(s: &DynStore, i: u32) -> Vec<(chrono::DateTime<chrono::Utc>, f64)> {
    let q = SeriesQuery {
        entity: EntityId::parse(&entity(i)).unwrap(),
        attribute: AttributeName::parse("volume").unwrap(),
        range: TimeRange::new("2020-01-01T00:00:00Z".parse().unwrap(), "2030-01-01T00:00:00Z".parse().unwrap())
            .unwrap(),
        step: Step::Raw,
        limit: u32::MAX,
    };
    match s.series(&q).await {
        Ok(SeriesPoints::Raw(p)) => p.into_iter().map(|p| (p.t, p.value.as_f64().unwrap())).collect(),
        Err(socle_storage::StoreError::UnknownSeries { .. }) => Vec::new(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn historical_import_resumes_after_a_kill_and_reports_bad_lines() {
    let t = TestStore::sqlite().await;
    territory(&t.store).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("historique.csv");
    const LINES: u32 = 60_000;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(f, "entity,attribute,observedAt,value,unitCode").unwrap();
        // Three bad lines up front: unknown entity, bad instant, bad unit.
        writeln!(f, "urn:ngsi-ld:WaterMeter:nobody,volume,2024-01-01T00:00:00Z,1,MTQ").unwrap();
        writeln!(f, "{},volume,yesterday,1,MTQ", entity(0)).unwrap();
        writeln!(f, "{},volume,2024-01-01T00:00:00Z,1,cubic metres", entity(0)).unwrap();
        let t0: chrono::DateTime<chrono::Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
        for k in 0..LINES {
            let at = t0 + chrono::Duration::minutes(i64::from(k / 3) * 15);
            writeln!(f, "{},volume,{},{},MTQ", entity(k % 3), at.to_rfc3339(), f64::from(k) / 10.0).unwrap();
        }
    }
    let file = path.to_str().unwrap();

    // First run, killed once some batches are committed.
    let mut cmd: Command = socle();
    cmd.arg("--data-dir").arg(data_dir(&t)).args(["import", "observations", file, "--batch", "1000"]);
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    common::eventually(Duration::from_secs(60), "a first committed batch", || {
        let n = futures_lite_block(points(&t.store, 0)).len();
        (n > 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the import was killed before its end");
    let partial: usize = (0..3).map(|i| futures_lite_block(points(&t.store, i)).len()).sum();
    assert!(partial > 0 && partial < LINES as usize, "killed mid-way: {partial} of {LINES}");

    // The rerun continues where the killed run stopped. Refused lines are
    // reported in a file, not fatal (the exit code tells whether this run refused any).
    let out = run(&t, &["import", "observations", file, "--batch", "1000"]);
    assert!(text(&out).contains("resuming at byte"), "{}", text(&out));
    for i in 0..3 {
        let p = points(&t.store, i).await;
        assert_eq!(p.len(), LINES as usize / 3, "entity {i}: every line once");
    }
    let last = points(&t.store, 2).await.pop().unwrap();
    assert_eq!(last.1, f64::from(LINES - 1) / 10.0);
    let errors = std::fs::read_to_string(dir.path().join("historique.csv.errors.csv")).unwrap();
    let reported: std::collections::BTreeSet<&str> = errors.lines().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(reported, ["2", "3", "4"].into(), "{errors}");
    assert!(
        errors.contains("does not exist") && errors.contains("observedAt") && errors.contains("unitCode"),
        "{errors}"
    );
    assert!(t.store.check_consistency().await.unwrap().problems.is_empty());

    // A third run has nothing left to do.
    let out = run(&t, &["import", "observations", file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already imported"), "{}", text(&out));
}

/// Runs a future to completion from a synchronous closure inside the test's runtime.
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
