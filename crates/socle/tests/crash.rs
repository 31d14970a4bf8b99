//! Killing Socle with SIGKILL in the middle of writes leaves a consistent
//! database: every acknowledged batch is whole, no batch is partial, every
//! rollup equals its raw points. Run against both backends.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{socle, Running};
use socle_domain::{AttributeName, EntityId, SeriesPoints, SeriesQuery, Step, TimeRange};
use socle_storage::testing::TestStore;
use socle_storage::{DynStore, StorageConfig};

const SIZE: u32 = 40;

fn storage_args(t: &TestStore, dir: &std::path::Path) -> Vec<String> {
    match &t.config {
        StorageConfig::Sqlite { .. } => vec!["--data-dir".into(), dir.display().to_string()],
        StorageConfig::Postgres { url, .. } => vec!["--postgres-url".into(), url.clone()],
    }
}

async fn points_per_batch(store: &DynStore) -> BTreeMap<DateTime<Utc>, u32> {
    let mut per_time = BTreeMap::new();
    let range =
        TimeRange::new(DateTime::from_timestamp(0, 0).unwrap(), Utc::now() + chrono::Duration::days(3650)).unwrap();
    for i in 0..SIZE {
        let q = SeriesQuery {
            entity: EntityId::parse(&format!("urn:ngsi-ld:Device:crash-{i}")).unwrap(),
            attribute: AttributeName::parse("value").unwrap(),
            range,
            step: Step::Raw,
            limit: u32::MAX,
        };
        match store.series(&q).await {
            Ok(SeriesPoints::Raw(points)) => {
                for p in points {
                    *per_time.entry(p.t).or_insert(0) += 1;
                }
            }
            Ok(SeriesPoints::Buckets(_)) => unreachable!(),
            Err(socle_storage::StoreError::UnknownSeries { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    per_time
}

async fn kill_during_writes(t: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    // The SQLite test store lives in its own directory; point the child at it.
    let data_dir = match &t.config {
        StorageConfig::Sqlite { path } => path.parent().unwrap().to_path_buf(),
        StorageConfig::Postgres { .. } => dir.path().to_path_buf(),
    };
    for round in 0..3 {
        let mut cmd = socle();
        cmd.args(storage_args(&t, &data_dir)).args(["debug", "write-batches", "--size", &SIZE.to_string()]);
        let mut child = Running::spawn(cmd);
        // Let it commit a few batches, then kill it wherever it is.
        child.wait_line(Duration::from_secs(60), |l| l == "committed 25");
        std::thread::sleep(Duration::from_millis(37 * (round + 1)));
        child.kill9();
        let acknowledged: Vec<u64> =
            child.drain().iter().filter_map(|l| l.strip_prefix("committed ")?.parse().ok()).collect();
        let last_ack = acknowledged.last().copied().unwrap_or(25);

        let store = t.reopen().await.expect("reopen after SIGKILL");
        let per_time = points_per_batch(&store).await;
        for (at, n) in &per_time {
            assert_eq!(*n, SIZE, "round {round}: batch at {at} is partial ({n} of {SIZE} points)");
        }
        // Each round restarts at batch 0, so the stored batches are those of the longest round.
        assert!(per_time.len() as u64 > last_ack, "round {round}: acknowledged batch {last_ack} lost");
        let report = store.check_consistency().await.unwrap();
        assert!(report.problems.is_empty(), "round {round}: {:?}", &report.problems[..report.problems.len().min(5)]);
        assert!(report.series_checked >= u64::from(SIZE));
    }
    // And the command-line check agrees.
    let status = socle().args(storage_args(&t, &data_dir)).arg("check").status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_during_writes_leaves_a_consistent_database() {
    kill_during_writes(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_during_writes_leaves_a_consistent_database() {
    kill_during_writes(TestStore::postgres().await).await;
}
