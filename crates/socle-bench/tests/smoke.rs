//! `bench/run --quick` end to end against the debug `socle` binary, a
//! private `influxd` and the local PostgreSQL: it runs, every system gives
//! the same answers, and the table has every row. Timings are not checked.

use std::path::PathBuf;

use socle_bench::{report, run, Mode};

/// `target/debug/socle`, built by `cargo test --workspace` for the socle
/// crate's own tests (this test's executable is in `target/debug/deps`).
fn socle_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("socle");
    assert!(bin.is_file(), "{} is missing: cargo build -p socle (cargo test --workspace builds it)", bin.display());
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_runs_and_prints_every_row() {
    let mut settings = run::defaults(Mode::Quick);
    settings.socle = socle_binary();
    settings.postgres_url = std::env::var("SOCLE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("results").join("quick.md");
    let md = socle_bench::bench(&settings, Mode::Quick, &file, |l| eprintln!("{l}")).await.expect("bench --quick");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), md);
    assert!(md.contains("| Measurement | Socle SQLite | Socle PostgreSQL | InfluxDB |"), "{md}");
    assert!(md.contains("Machine: "), "{md}");
    for name in report::row_names(&settings) {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row {name:?}:\n{md}"));
        // Five cells after the name: three systems and two ratios, none empty.
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 6, "{line}");
        assert!(cells.iter().all(|c| !c.is_empty()), "{line}");
    }
}
