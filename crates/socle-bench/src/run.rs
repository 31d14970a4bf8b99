//! The benchmark itself: the same phases, in the same order, against each
//! system in turn (never two at once: they would share the 2 cores).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::influx::{self, InfluxServer};
use crate::report::{Figures, Latencies};
use crate::socle::{self, Backend, SocleServer};
use crate::workload::{self, Workload, READINGS_PER_YEAR, VALUES_PER_READING};
use crate::Mode;

/// Concurrent writers in the batched ingest phases (2 cores: more only queue).
const WRITERS: usize = 2;
/// Live requests in flight at most; beyond, the rate is not held.
const LIVE_IN_FLIGHT: u64 = 256;

#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    /// Devices of the territory (all get the recent slice and the live traffic).
    pub devices: u64,
    /// Devices whose whole year of history is loaded (the query benchmarks' data).
    pub history_devices: u64,
    /// Hours of readings of every device loaded as the ingest benchmark.
    pub slice_hours: u64,
    /// Uplinks per second of the live phase, and its length.
    pub live_rate: u64,
    pub live_seconds: u64,
    /// Repetitions of each query (the all-series daily sums: a third of them, at least 2).
    pub repetitions: usize,
    pub socle: PathBuf,
    pub influxd: PathBuf,
    pub postgres_url: String,
}

impl Settings {
    pub fn history_points(&self) -> u64 {
        self.history_devices * READINGS_PER_YEAR * VALUES_PER_READING
    }

    pub fn slice_points(&self) -> u64 {
        self.devices * self.slice_hours * 4 * VALUES_PER_READING
    }

    fn workload(&self) -> Workload {
        Workload { seed: self.seed, devices: self.devices }
    }
}

/// The settings of a mode, before command-line overrides.
pub fn defaults(mode: Mode) -> Settings {
    let quick = mode == Mode::Quick;
    Settings {
        seed: 2026,
        devices: if quick { 200 } else { 10_000 },
        history_devices: if quick { 1 } else { 10 },
        slice_hours: if quick { 6 } else { 2 },
        live_rate: if quick { 50 } else { 200 },
        live_seconds: if quick { 5 } else { 30 },
        repetitions: if quick { 3 } else { 10 },
        socle: PathBuf::from("socle"),
        influxd: PathBuf::from("influxd"),
        postgres_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
    }
}

/// The year as local (Europe/Paris) days, in UTC, for both systems.
const YEAR: (&str, &str) = ("2024-12-31T23:00:00Z", "2025-12-31T23:00:00Z");

/// One system under test, whichever it is.
enum System {
    Socle(SocleServer),
    Influx(InfluxServer),
}

impl System {
    fn label(&self) -> &'static str {
        match self {
            Self::Socle(s) => s.label(),
            Self::Influx(_) => "InfluxDB",
        }
    }

    fn batch(&self) -> usize {
        match self {
            Self::Socle(_) => socle::BATCH,
            Self::Influx(_) => influx::BATCH,
        }
    }

    /// The body carrying these readings, in the system's best batch format.
    fn body(&self, w: &Workload, readings: impl Iterator<Item = (u64, u64)>) -> String {
        match self {
            Self::Socle(_) => {
                let msgs: Vec<String> = readings.map(|(d, i)| workload::generic_message(w, d, i)).collect();
                format!("[{}]", msgs.join(","))
            }
            Self::Influx(_) => readings.map(|(d, i)| workload::line(w, d, i)).collect(),
        }
    }

    async fn write(&self, body: String) -> anyhow::Result<()> {
        match self {
            Self::Socle(s) => s.post_generic(body).await,
            Self::Influx(s) => s.write(body).await,
        }
    }

    /// One uplink, as the network server sends it live.
    async fn write_one(&self, w: &Workload, device: u64, index: u64) -> bool {
        match self {
            Self::Socle(s) => s.post_uplink(workload::chirpstack_uplink(w, device, index)).await,
            Self::Influx(s) => s.write_one(workload::line(w, device, index)).await,
        }
    }

    async fn cpu_seconds(&self) -> f64 {
        match self {
            Self::Socle(s) => s.cpu_seconds().await,
            Self::Influx(s) => crate::process::cpu_seconds(s.pid()),
        }
    }

    fn peak_rss(&self) -> u64 {
        match self {
            Self::Socle(s) => s.peak_rss(),
            Self::Influx(s) => crate::process::peak_rss(s.pid()),
        }
    }

    async fn daily_sums(&self, device: u64) -> anyhow::Result<Vec<f64>> {
        match self {
            Self::Socle(s) => s.daily_sums(device, YEAR).await,
            Self::Influx(s) => s.daily_sums(device, YEAR).await,
        }
    }

    async fn daily_sums_all(&self) -> anyhow::Result<usize> {
        match self {
            Self::Socle(s) => s.daily_sums_all(YEAR).await,
            Self::Influx(s) => s.daily_sums_all(YEAR).await,
        }
    }

    async fn last_values(&self) -> anyhow::Result<usize> {
        match self {
            Self::Socle(s) => s.last_values(None).await,
            Self::Influx(s) => s.last_values(None).await,
        }
    }

    /// Entities in a box with their last value. InfluxDB knows no place: the
    /// technician's device register gives the devices in the box, then one
    /// query asks their last values.
    async fn bbox_last(&self, bbox: [f64; 4], inside: &[u64]) -> anyhow::Result<usize> {
        match self {
            Self::Socle(s) => s.last_values(Some(bbox)).await,
            Self::Influx(s) => s.last_values(Some(inside)).await,
        }
    }

    async fn disk_bytes(&self) -> anyhow::Result<u64> {
        match self {
            Self::Socle(s) => s.disk_bytes().await,
            Self::Influx(s) => {
                s.settle(Duration::from_secs(60)).await;
                Ok(s.disk_bytes())
            }
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Self::Socle(s) => s.stop().await,
            Self::Influx(s) => {
                s.stop();
                Ok(())
            }
        }
    }
}

/// Runs every phase against the three systems and returns their figures
/// (in the order Socle SQLite, Socle PostgreSQL, InfluxDB).
pub async fn run(settings: &Settings, progress: impl Fn(&str)) -> anyhow::Result<Vec<Figures>> {
    let w = settings.workload();
    let mut all = Vec::new();
    for which in 0..3 {
        let system = match which {
            0 => System::Socle(SocleServer::start(&settings.socle, Backend::Sqlite, &w).await?),
            1 => System::Socle(
                SocleServer::start(&settings.socle, Backend::Postgres { admin_url: settings.postgres_url.clone() }, &w)
                    .await?,
            ),
            _ => System::Influx(InfluxServer::start(&settings.influxd).await?),
        };
        progress(&format!("{}: started", system.label()));
        let figures = measure(&system, settings, &w, &progress).await;
        system.stop().await?;
        all.push(
            figures.with_context(|| {
                format!("while measuring {}", ["Socle SQLite", "Socle PostgreSQL", "InfluxDB"][which])
            })?,
        );
    }
    check_same_answers(&all)?;
    Ok(all)
}

async fn measure(system: &System, s: &Settings, w: &Workload, progress: &impl Fn(&str)) -> anyhow::Result<Figures> {
    let mut f = Figures { system: system.label().to_owned(), ..Figures::default() };
    let cpu0 = system.cpu_seconds().await;

    // History: each device's year in order, as a bulk export of a sensor would be.
    let started = Instant::now();
    let history = s.history_devices * READINGS_PER_YEAR;
    ingest(system, w, history, |g| (g / READINGS_PER_YEAR, g % READINGS_PER_YEAR)).await?;
    f.history_points_per_s = s.history_points() as f64 / started.elapsed().as_secs_f64();
    progress(&format!("{}: history loaded, {:.0} points/s", f.system, f.history_points_per_s));

    // The recent slice: every device, reading after reading, as live traffic arrives.
    let cpu1 = system.cpu_seconds().await;
    let started = Instant::now();
    let devices = s.devices;
    let slice = s.devices * s.slice_hours * 4;
    ingest(system, w, slice, |g| (g % devices, READINGS_PER_YEAR + g / devices)).await?;
    f.slice_points_per_s = s.slice_points() as f64 / started.elapsed().as_secs_f64();
    let cpu2 = system.cpu_seconds().await;
    f.cpu_s_per_million = (cpu2 - cpu0) / (s.history_points() + s.slice_points()) as f64 * 1e6;
    f.slice_cpu_s_per_million = (cpu2 - cpu1) / s.slice_points() as f64 * 1e6;
    progress(&format!("{}: slice loaded, {:.0} points/s", f.system, f.slice_points_per_s));

    // Queries, on a quiet system.
    let bbox = w.bbox(0.01);
    let inside = w.devices_in(bbox);
    let heavy = (s.repetitions / 3).max(2);
    f.daily_sums_days = system.daily_sums(0).await?.iter().sum::<f64>();
    f.q_daily_one = time(s.repetitions, || async { system.daily_sums(0).await.map(|d| d.len()) }).await?;
    f.q_daily_all = time(heavy, || system.daily_sums_all()).await?;
    f.q_last_all = time(s.repetitions, || system.last_values()).await?;
    f.q_bbox = time(s.repetitions, || system.bbox_last(bbox, &inside)).await?;
    progress(&format!("{}: queries done", f.system));

    // Live: uplinks at the target rate while a dashboard keeps asking.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let live_start = READINGS_PER_YEAR + s.slice_hours * 4;
    let (writes, under_load) = tokio::join!(
        async {
            let r = live(system, w, s, live_start).await;
            stop.store(true, Ordering::Relaxed);
            r
        },
        async {
            let mut one = Vec::new();
            let mut boxed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                system.daily_sums(0).await?;
                one.push(t.elapsed());
                let t = Instant::now();
                system.bbox_last(bbox, &inside).await?;
                boxed.push(t.elapsed());
            }
            anyhow::Ok((Latencies::of(one), Latencies::of(boxed)))
        }
    );
    let (achieved, failed) = writes?;
    (f.live_daily_one, f.live_bbox) = under_load?;
    f.live_rate = achieved;
    f.live_failed = failed;
    f.live_target = s.live_rate as f64;
    progress(&format!("{}: live {:.0}/{} uplinks/s", f.system, achieved, s.live_rate));

    f.peak_rss = system.peak_rss();
    let live_points = s.live_rate * s.live_seconds * VALUES_PER_READING;
    f.stored_points = s.history_points() + s.slice_points() + live_points;
    f.disk_bytes = system.disk_bytes().await?;
    f.answers = (f.q_daily_one.answer, f.q_daily_all.answer, f.q_last_all.answer, f.q_bbox.answer);
    Ok(f)
}

/// Writes readings 0..count (mapped to (device, index) by `at`) in the
/// system's best batches, with [`WRITERS`] writers.
async fn ingest(system: &System, w: &Workload, count: u64, at: impl Fn(u64) -> (u64, u64)) -> anyhow::Result<()> {
    let next = AtomicU64::new(0);
    let batch = system.batch() as u64;
    let writer = || async {
        loop {
            let first = next.fetch_add(batch, Ordering::Relaxed);
            if first >= count {
                return anyhow::Ok(());
            }
            let body = system.body(w, (first..count.min(first + batch)).map(&at));
            system.write(body).await?;
        }
    };
    let results = futures_util::future::join_all((0..WRITERS).map(|_| writer())).await;
    results.into_iter().collect()
}

/// Sends uplinks at `s.live_rate` per second for `s.live_seconds`; returns
/// the rate of stored uplinks (over the time until the last answer) and the
/// number refused or lost.
async fn live(system: &System, w: &Workload, s: &Settings, first_index: u64) -> anyhow::Result<(f64, u64)> {
    let total = s.live_rate * s.live_seconds;
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let in_flight = AtomicU64::new(0);
    let started = Instant::now();
    let (ok_ref, failed_ref, in_flight) = (&ok, &failed, &in_flight);
    let sender = async {
        let mut sent = 0u64;
        let mut tasks = futures_util::stream::FuturesUnordered::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while sent < total {
            tokio::select! {
                _ = tick.tick() => {
                    let due = ((started.elapsed().as_secs_f64() * s.live_rate as f64) as u64).min(total);
                    while sent < due {
                        if in_flight.load(Ordering::Relaxed) >= LIVE_IN_FLIGHT {
                            // The system does not keep up: the uplink is lost for this measurement.
                            failed_ref.fetch_add(1, Ordering::Relaxed);
                        } else {
                            let g = sent;
                            in_flight.fetch_add(1, Ordering::Relaxed);
                            tasks.push(async move {
                                let stored = system.write_one(w, g % w.devices, first_index + g / w.devices).await;
                                in_flight.fetch_sub(1, Ordering::Relaxed);
                                if stored { ok_ref.fetch_add(1, Ordering::Relaxed) } else { failed_ref.fetch_add(1, Ordering::Relaxed) };
                            });
                        }
                        sent += 1;
                    }
                }
                Some(()) = futures_util::StreamExt::next(&mut tasks), if !tasks.is_empty() => {}
            }
        }
        while futures_util::StreamExt::next(&mut tasks).await.is_some() {}
    };
    sender.await;
    let elapsed = started.elapsed().as_secs_f64().max(s.live_seconds as f64);
    Ok((ok.load(Ordering::Relaxed) as f64 / elapsed, failed.load(Ordering::Relaxed)))
}

/// Runs `query` `n` times (after one unmeasured warm-up) and keeps its latencies.
async fn time<F, Fut>(n: usize, query: F) -> anyhow::Result<Latencies>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let answer = query().await?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let got = query().await?;
        samples.push(t.elapsed());
        if got != answer {
            bail!("the same query answered {got} then {answer} rows");
        }
    }
    let mut l = Latencies::of(samples);
    l.answer = answer;
    Ok(l)
}

/// The systems hold the same data, so they must give the same answers: a
/// fast wrong answer is no result.
fn check_same_answers(all: &[Figures]) -> anyhow::Result<()> {
    let Some(first) = all.first() else { return Ok(()) };
    for f in all {
        if f.answers != first.answers {
            bail!(
                "answers differ: {} gave {:?}, {} gave {:?} (days of one series, daily sums, series with a last value, entities in the box)",
                first.system,
                first.answers,
                f.system,
                f.answers
            );
        }
        if (f.daily_sums_days - first.daily_sums_days).abs() > 1e-6 * first.daily_sums_days.abs().max(1.0) {
            bail!(
                "the year's daily sums differ: {} {} vs {} {}",
                first.system,
                first.daily_sums_days,
                f.system,
                f.daily_sums_days
            );
        }
    }
    Ok(())
}
