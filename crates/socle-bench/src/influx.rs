//! The peer: a private InfluxDB 1.x (`influxd` from Debian's `influxdb`
//! package) with its own configuration, folders and ports — never the
//! system service — written to over its HTTP `/write` API (line protocol)
//! and queried in InfluxQL.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::process;
use crate::workload;

const DATABASE: &str = "socle_bench";
/// Lines per write request: InfluxData recommends batches of 5,000 to 10,000 points.
pub const BATCH: usize = 5000;

pub struct InfluxServer {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl InfluxServer {
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("influx-bench-").tempdir()?;
        let (http_port, rpc_port) = (process::free_port()?, process::free_port()?);
        let d = dir.path().display();
        // Cold shards are snapshotted and compacted within seconds instead of
        // the default 10 min and 4 h, so the size on disk is the compressed
        // TSM one when it is measured, not the write-ahead log.
        let config = format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "2s"
  compact-full-write-cold-duration = "5s"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
[logging]
  level = "warn"
"#
        );
        let config_path = dir.path().join("influxdb.conf");
        std::fs::write(&config_path, config)?;
        let child = Command::new(binary)
            .arg("-config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (apt-get install influxdb)", binary.display()))?;
        let server = Self { child, base: format!("http://127.0.0.1:{http_port}"), dir, http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match server.http.get(format!("{}/ping", server.base)).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > deadline => bail!("influxd did not answer /ping within 60 s"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        server.query(&format!("CREATE DATABASE {DATABASE}")).await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes lines; retries on 5xx (InfluxDB's way of saying "busy").
    pub async fn write(&self, lines: String) -> anyhow::Result<()> {
        loop {
            let res = self
                .http
                .post(format!("{}/write?db={DATABASE}&precision=s", self.base))
                .body(lines.clone())
                .send()
                .await?;
            match res.status().as_u16() {
                200..=299 => return Ok(()),
                500..=599 => tokio::time::sleep(Duration::from_millis(200)).await,
                s => bail!("/write answered {s}: {}", res.text().await.unwrap_or_default()),
            }
        }
    }

    /// One line per request, as a network server's integration writes one uplink.
    pub async fn write_one(&self, line: String) -> bool {
        let res = self.http.post(format!("{}/write?db={DATABASE}&precision=s", self.base)).body(line).send().await;
        matches!(res, Ok(r) if r.status().is_success())
    }

    /// Runs InfluxQL; returns the series of the first result.
    pub async fn query(&self, q: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let res = self.http.post(format!("{}/query?db={DATABASE}&epoch=s", self.base)).form_body(q).send().await?;
        let status = res.status();
        let v: serde_json::Value = serde_json::from_slice(&res.bytes().await?)?;
        let result = &v["results"][0];
        if !status.is_success() || !result["error"].is_null() || !v["error"].is_null() {
            bail!("InfluxQL {q:?} failed ({status}): {v}");
        }
        Ok(result["series"].as_array().cloned().unwrap_or_default())
    }

    pub async fn daily_sums(&self, device: u64, (from, to): (&str, &str)) -> anyhow::Result<Vec<f64>> {
        let series = self
            .query(&format!(
                "SELECT sum(temperature) FROM {} WHERE device = '{}' AND time >= '{from}' AND time < '{to}' \
                 GROUP BY time(1d) tz('Europe/Paris')",
                workload::MEASUREMENT,
                workload::device_name(device)
            ))
            .await?;
        Ok(series
            .first()
            .and_then(|s| s["values"].as_array())
            .map_or_else(Vec::new, |rows| rows.iter().filter_map(|r| r[1].as_f64()).collect()))
    }

    /// Daily sums of every series of the measurement: number of (series, day) sums.
    pub async fn daily_sums_all(&self, (from, to): (&str, &str)) -> anyhow::Result<usize> {
        let series = self
            .query(&format!(
                "SELECT sum(temperature) FROM {} WHERE time >= '{from}' AND time < '{to}' \
                 GROUP BY time(1d), device tz('Europe/Paris')",
                workload::MEASUREMENT
            ))
            .await?;
        Ok(non_null_rows(&series))
    }

    /// Last value of every series (or of the given devices): number of devices answered.
    pub async fn last_values(&self, devices: Option<&[u64]>) -> anyhow::Result<usize> {
        let filter = devices.map_or_else(String::new, |ds| {
            let names: Vec<String> = ds.iter().map(|&d| format!("device = '{}'", workload::device_name(d))).collect();
            format!(" WHERE {}", names.join(" OR "))
        });
        if devices.is_some_and(<[u64]>::is_empty) {
            return Ok(0);
        }
        let series = self
            .query(&format!(
                "SELECT last(temperature), last(humidity), last(co2) FROM {}{filter} GROUP BY device",
                workload::MEASUREMENT
            ))
            .await?;
        Ok(series.len())
    }

    pub fn disk_bytes(&self) -> u64 {
        process::dir_size(&self.dir.path().join("data")) + process::dir_size(&self.dir.path().join("wal"))
    }

    /// Waits until the write-ahead log has been snapshotted to TSM files
    /// (its size stops changing), at most `limit`.
    pub async fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = (self.disk_bytes(), Instant::now());
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.disk_bytes();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(8) {
                return;
            }
        }
    }

    pub fn stop(mut self) {
        process::stop(&mut self.child, Duration::from_secs(20));
    }
}

fn non_null_rows(series: &[serde_json::Value]) -> usize {
    series
        .iter()
        .filter_map(|s| s["values"].as_array())
        .map(|rows| rows.iter().filter(|r| !r[1].is_null()).count())
        .sum()
}

/// `q=<InfluxQL>` as a form body (reqwest's `form` needs a feature this crate does not pull).
trait FormBody {
    fn form_body(self, q: &str) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, q: &str) -> Self {
        let mut encoded = String::with_capacity(q.len() + 2);
        encoded.push_str("q=");
        for b in q.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(b as char),
                _ => encoded.push_str(&format!("%{b:02X}")),
            }
        }
        self.header("content-type", "application/x-www-form-urlencoded").body(encoded)
    }
}
