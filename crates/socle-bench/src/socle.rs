//! Socle under test: the real `socle` binary serving its own database
//! (a SQLite file in a temporary folder, or a schema of its own on the
//! PostgreSQL server), fed and queried over HTTP like a network server and
//! a dashboard would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{stream, StreamExt};
use socle_domain::{
    Entity, EntityId, EntityType, Geometry, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, Visibility,
};
use socle_storage::{NewDevice, StorageConfig};

use crate::process;
use crate::workload::{self, Workload};

const ORGANISATION: &str = "commune-banc-essai";
/// Socle's `/ingest/generic` takes at most this many messages per body.
pub const BATCH: usize = 1000;
/// Entities per page of `/api/v1/entities` (its maximum).
const PAGE: u64 = 1000;

pub enum Backend {
    Sqlite,
    /// An administrative URL of the server; Socle gets a schema of its own there.
    Postgres {
        admin_url: String,
    },
}

enum Place {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin: tokio_postgres::Client, schema: String },
}

pub struct SocleServer {
    child: Child,
    pub base: String,
    token: String,
    place: Place,
    http: reqwest::Client,
}

impl SocleServer {
    /// Creates the territory (organisation, one entity and one device per
    /// sensor, an ingestion token) in a fresh database, then starts
    /// `socle serve` on it.
    pub async fn start(binary: &Path, backend: Backend, w: &Workload) -> anyhow::Result<Self> {
        let (place, storage, args) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new().prefix("socle-bench-").tempdir()?;
                let storage = StorageConfig::Sqlite { path: dir.path().join("socle.db") };
                let args = vec!["--data-dir".to_owned(), dir.path().display().to_string()];
                (Place::Sqlite { dir }, storage, args)
            }
            Backend::Postgres { admin_url } => {
                let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                    .await
                    .with_context(|| format!("PostgreSQL at {admin_url}"))?;
                tokio::spawn(conn);
                let schema = format!("socle_bench_{}", std::process::id());
                admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")).await?;
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                // application_name lets the PostgreSQL backends serving Socle be found, to count their CPU.
                let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}&application_name={schema}");
                let storage = StorageConfig::Postgres { url: url.clone(), max_connections: 16 };
                (Place::Postgres { admin, schema }, storage, vec!["--postgres-url".to_owned(), url])
            }
        };
        populate(&storage, w).await?;
        let token = {
            let out = Command::new(binary)
                .args(&args)
                .args(["token", "create", "--ingestion", "--org", ORGANISATION, "--days", "30", "--label", "bench"])
                .env_remove("SOCLE_CONFIG")
                .env("SOCLE_LOG__FILTER", "warn")
                .output()
                .with_context(|| format!("running {}", binary.display()))?;
            if !out.status.success() {
                bail!("socle token create failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            String::from_utf8(out.stdout)?.trim().to_owned()
        };
        let mut child = Command::new(binary)
            .args(&args)
            .args(["--listen", "127.0.0.1:0", "serve"])
            .env_remove("SOCLE_CONFIG")
            .env("SOCLE_LOG__FILTER", "warn")
            // A dashboard's queries come from one address; the API's per-address limit would measure itself.
            .env("SOCLE_RATE_LIMIT__PER_IP_PER_MINUTE", "1000000000")
            .env("SOCLE_RATE_LIMIT__PER_TOKEN_PER_MINUTE", "1000000000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let base = listening_address(&mut child)?;
        Ok(Self { child, base, token, place, http: reqwest::Client::new() })
    }

    pub fn label(&self) -> &'static str {
        match self.place {
            Place::Sqlite { .. } => "Socle SQLite",
            Place::Postgres { .. } => "Socle PostgreSQL",
        }
    }

    /// CPU seconds of Socle and, on PostgreSQL, of the database backends
    /// serving it (they do the storage work SQLite does in-process).
    pub async fn cpu_seconds(&self) -> f64 {
        let own = process::cpu_seconds(self.child.id());
        let backends = match &self.place {
            Place::Sqlite { .. } => 0.0,
            Place::Postgres { admin, schema } => admin
                .query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", &[schema])
                .await
                .map(|rows| rows.iter().map(|r| process::cpu_seconds(r.get::<_, i32>(0) as u32)).sum())
                .unwrap_or(0.0),
        };
        own + backends
    }

    pub fn peak_rss(&self) -> u64 {
        process::peak_rss(self.child.id())
    }

    /// Bytes the data takes: the SQLite files, or the schema's relations
    /// with their indexes and TOAST.
    pub async fn disk_bytes(&self) -> anyhow::Result<u64> {
        Ok(match &self.place {
            Place::Sqlite { dir } => process::dir_size(dir.path()),
            Place::Postgres { admin, schema } => {
                let row = admin
                    .query_one(
                        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
                        &[schema],
                    )
                    .await?;
                row.get::<_, i64>(0) as u64
            }
        })
    }

    /// Posts a body of up to [`BATCH`] generic messages; waits and retries
    /// when Socle answers 429/503 (backpressure), as a client should.
    pub async fn post_generic(&self, body: String) -> anyhow::Result<()> {
        loop {
            let res = self
                .http
                .post(format!("{}/ingest/generic", self.base))
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            match res.status().as_u16() {
                200..=299 => return Ok(()),
                429 | 503 => tokio::time::sleep(Duration::from_millis(200)).await,
                s => bail!("/ingest/generic answered {s}: {}", res.text().await.unwrap_or_default()),
            }
        }
    }

    /// One ChirpStack uplink; true if stored.
    pub async fn post_uplink(&self, body: String) -> bool {
        let res = self
            .http
            .post(format!("{}/ingest/chirpstack?event=up", self.base))
            .header("x-socle-token", &self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        matches!(res, Ok(r) if r.status().is_success())
    }

    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let res = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Daily sums of one device's temperature over the year; returns the days.
    pub async fn daily_sums(&self, device: u64, range: (&str, &str)) -> anyhow::Result<Vec<f64>> {
        self.daily_sums_of(&workload::entity_id(device), range).await
    }

    async fn daily_sums_of(&self, entity: &str, (from, to): (&str, &str)) -> anyhow::Result<Vec<f64>> {
        let v = self
            .get(&format!(
                "/api/v1/entities/{entity}/series/temperature?step=day&fn=sum&limit=1000&from={}&to={}",
                encode(from),
                encode(to)
            ))
            .await?;
        Ok(v["points"].as_array().map_or_else(Vec::new, |p| p.iter().filter_map(|p| p["sum"].as_f64()).collect()))
    }

    /// The entities of the type (all pages), with their current values.
    async fn entities(&self, bbox: Option<[f64; 4]>) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        let filter = bbox.map_or_else(String::new, |b| format!("&bbox={},{},{},{}", b[0], b[1], b[2], b[3]));
        loop {
            let v = self
                .get(&format!(
                    "/api/v1/entities?type={}&limit={PAGE}&offset={}{filter}",
                    workload::ENTITY_TYPE,
                    out.len()
                ))
                .await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            let total = v["total"].as_u64().unwrap_or(0);
            let n = items.len();
            out.extend(items);
            if n == 0 || out.len() as u64 >= total {
                return Ok(out);
            }
        }
    }

    /// Daily sums for every series of the type. Socle has no endpoint for
    /// that: a client lists the entities, then asks each series (4 at a
    /// time). Returns the number of (series, day) sums.
    pub async fn daily_sums_all(&self, range: (&str, &str)) -> anyhow::Result<usize> {
        let ids: Vec<String> =
            self.entities(None).await?.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
        let mut answers = stream::iter(ids.iter().map(|id| self.daily_sums_of(id, range))).buffer_unordered(4);
        let mut total = 0;
        while let Some(days) = answers.next().await {
            total += days?.len();
        }
        Ok(total)
    }

    /// Current temperature of every entity: number of entities with one.
    pub async fn last_values(&self, bbox: Option<[f64; 4]>) -> anyhow::Result<usize> {
        Ok(self.entities(bbox).await?.iter().filter(|e| !e["attributes"]["temperature"].is_null()).count())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        let child = &mut self.child;
        process::stop(child, Duration::from_secs(20));
        if let Place::Postgres { admin, schema } = &self.place {
            admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
        }
        Ok(())
    }
}

fn encode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Reads `socle serve`'s stdout until it prints its address.
fn listening_address(child: &mut Child) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(i) = line.find("http://") {
                let _ = tx.send(line[i..].split_whitespace().next().unwrap_or_default().to_owned());
            }
            // Keep reading so that the server never blocks on a full pipe.
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).context("socle serve printed no address within 120 s")
}

async fn populate(storage: &StorageConfig, w: &Workload) -> anyhow::Result<()> {
    let store = socle_storage::open(storage).await?;
    let org = OrganisationId::parse(ORGANISATION)?;
    store
        .upsert_organisation(&NewOrganisation {
            id: org.clone(),
            kind: OrganisationKind::Commune,
            name: "Commune du banc d'essai".into(),
            code: OfficialCode::parse("99998")?,
            parent: None,
            population: Some(30_000),
            timezone: chrono_tz::Europe::Paris,
            retention_days: None,
        })
        .await?;
    let kind = EntityType::parse(workload::ENTITY_TYPE)?;
    let devices: Vec<u64> = (0..w.devices).collect();
    for chunk in devices.chunks(1000) {
        let entities = chunk
            .iter()
            .map(|&d| {
                let mut e = Entity::new(EntityId::parse(&workload::entity_id(d))?, kind.clone(), org.clone());
                let (lon, lat) = w.location(d);
                e.location = Some(Geometry::Point([lon, lat]));
                e.visibility = Visibility::Public;
                Ok(e)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.upsert_entities(&entities).await?;
        let devices: Vec<NewDevice> = chunk
            .iter()
            .map(|&d| NewDevice {
                dev_eui: workload::dev_eui(d),
                name: workload::device_name(d),
                model: "socle-th-indoor".into(),
                organisation: org.clone(),
                entity: EntityId::parse(&workload::entity_id(d)).expect("valid by construction"),
                mappings: serde_json::json!([
                    {"field": "temperature", "attribute": "temperature", "unitCode": "CEL"},
                    {"field": "humidity", "attribute": "relativeHumidity", "unitCode": "P1"},
                    {"field": "co2", "attribute": "co2", "unitCode": "59"},
                ]),
            })
            .collect();
        store.upsert_devices(&devices).await?;
    }
    Ok(())
}

/// The `socle` binary next to the running executable (`target/<profile>/`),
/// or on the PATH.
pub fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("socle");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("socle")
}
