//! `socle demo` end to end: the real binary, real HTTP, a real SQLite file.

mod common;

use std::time::Duration;

use common::{eventually, get_json, get_json_as, socle, Running};

fn demo(data_dir: &std::path::Path, extra: &[&str]) -> Running {
    let mut cmd = socle();
    cmd.env("SOCLE_DEMO__LIVE_INTERVAL_SECS", "1")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("demo")
        .args(extra);
    Running::spawn(cmd)
}

fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{base}/metrics")).unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics"))
}

#[test]
fn the_demo_territory_is_served_and_stays_live() {
    let dir = tempfile::tempdir().unwrap();
    let app = demo(dir.path(), &[]);
    let base = app.base_url(Duration::from_secs(60));
    eventually(Duration::from_secs(60), "healthz", || (get_json(&format!("{base}/healthz")).0 == 200).then_some(()));
    // The demo prints one token per role; the syndicate's administrator sees everything.
    let admin_line = app.wait_line(Duration::from_secs(60), |l| l.contains("admin@val-de-lemance.fr"));
    let token = admin_line.split_whitespace().last().unwrap().to_owned();
    assert!(token.starts_with("socle_pat_"), "{admin_line}");
    let get = |url: &str| get_json_as(url, &token);

    let orgs = eventually(Duration::from_secs(60), "the demo organisations", || {
        let (_, orgs) = get_json(&format!("{base}/api/v1/organisations"));
        (orgs["total"].as_u64() >= Some(4)).then_some(orgs)
    });
    let communes: Vec<_> = orgs["items"].as_array().unwrap().iter().filter(|o| o["kind"] == "commune").collect();
    assert_eq!(communes.len(), 3, "{orgs}");
    let populations: Vec<u64> = communes.iter().map(|c| c["population"].as_u64().unwrap()).collect();
    assert!(populations.iter().any(|p| (25_000..35_000).contains(p)), "{populations:?}");
    assert!(populations.iter().any(|p| (4_000..6_000).contains(p)), "{populations:?}");
    assert!(populations.iter().any(|p| (600..1_000).contains(p)), "{populations:?}");

    let total = eventually(Duration::from_secs(60), "the demo entities", || {
        let (_, entities) = get(&format!("{base}/api/v1/entities?limit=1"));
        entities["total"].as_u64().filter(|n| *n >= 1_350)
    });
    assert!((1_350..=1_650).contains(&total), "about 1,500 entities, got {total}");

    let (_, public) = get_json(&format!("{base}/api/v1/entities?limit=1"));
    let public = public["total"].as_u64().unwrap();
    assert!(public > 100 && public < total, "anonymous visitors see the open data only ({public} of {total})");
    let (_, meters) = get(&format!("{base}/api/v1/entities?type=SmartMeteringObservation&limit=1"));
    let meter = meters["items"][0]["id"].as_str().unwrap().to_owned();
    let days = eventually(Duration::from_secs(60), "90 days of meter history", || {
        let now = chrono::Utc::now();
        let from = (now - chrono::Duration::days(91)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let to = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = format!("{base}/api/v1/entities/{meter}/series/consumption?step=day&fn=sum&from={from}&to={to}");
        let (status, body) = get(&url);
        let n = body["points"].as_array().map_or(0, Vec::len);
        (status == 200 && n >= 90).then_some(n)
    });
    assert!(days <= 92, "{days} daily buckets");

    // Generous: the demo evaluates its rules over the history before it is ready,
    // and a debug build on a busy two-core machine is slow; how fast the demo
    // starts is the benchmarks' business, not this test's.
    app.wait_line(Duration::from_secs(600), |l| l.contains("demo ready"));
    // Live data arrives as ChirpStack uplinks through the ingestion endpoint:
    // counted there, and seen in the devices' health.
    let before = metric(&base, "socle_observations_written_total");
    let uplinks = r#"socle_ingest_bodies_total{source="chirpstack",result="stored"}"#;
    eventually(Duration::from_secs(60), "live uplinks", || {
        let stored = std::panic::catch_unwind(|| metric(&base, uplinks)).unwrap_or(0.0);
        (stored > 0.0 && metric(&base, "socle_observations_written_total") > before).then_some(())
    });
    // Every page: the first live frames may come from any device.
    let (mut heard, mut offset) = (0, 0);
    loop {
        let (status, devices) = get(&format!("{base}/api/v1/devices?limit=1000&offset={offset}"));
        assert_eq!(status, 200, "{devices}");
        let items = devices["items"].as_array().unwrap();
        assert!(devices["total"].as_u64() > Some(1_000), "one device per reporting equipment: {}", devices["total"]);
        heard += items.iter().filter(|d| d["health"]["framesReceived"].as_u64() > Some(0)).count();
        offset += items.len();
        if items.is_empty() || offset as u64 >= devices["total"].as_u64().unwrap() {
            break;
        }
    }
    assert!(heard > 0, "some devices have sent live frames");
    let (_, letters) = get(&format!("{base}/api/v1/dead-letters"));
    assert_eq!(letters["total"].as_u64(), Some(0), "no live uplink refused: {letters}");
}

#[test]
fn killing_the_demo_during_its_backfill_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo(dir.path(), &["--no-live"]);
    let base = app.base_url(Duration::from_secs(60));
    // Wait until history is being written, then kill without warning.
    eventually(Duration::from_secs(60), "backfill in progress", || {
        (metric(&base, "socle_series") > 50.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    app.kill9();
    let check = socle().arg("--data-dir").arg(dir.path()).arg("check").output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // The restarted demo completes its history and the database is still consistent.
    let app = demo(dir.path(), &["--no-live"]);
    app.wait_line(Duration::from_secs(600), |l| l.contains("demo ready"));
    drop(app);
    let check = socle().arg("--data-dir").arg(dir.path()).arg("check").output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = socle();
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).arg("serve");
    let mut app = Running::spawn(cmd);
    let base = app.base_url(Duration::from_secs(60));
    assert_eq!(get_json(&format!("{base}/readyz")).0, 200);
    let pid = nix::unistd::Pid::from_raw(app.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = eventually(Duration::from_secs(30), "exit after SIGTERM", || app.child.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
}
