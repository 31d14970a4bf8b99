//! The figures of one system and the Markdown table that sets them side by side.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::run::Settings;
use crate::workload::{READINGS_PER_YEAR, VALUES_PER_READING};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latencies {
    pub median: Duration,
    pub p95: Duration,
    /// Rows of the answer (the same on every system, checked).
    pub answer: usize,
}

impl Latencies {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let at = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
        Self { median: at(0.5), p95: at(0.95), answer: 0 }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub system: String,
    pub history_points_per_s: f64,
    pub slice_points_per_s: f64,
    /// Server CPU over both ingest phases, and over the slice alone.
    pub cpu_s_per_million: f64,
    pub slice_cpu_s_per_million: f64,
    pub peak_rss: u64,
    pub disk_bytes: u64,
    pub stored_points: u64,
    pub q_daily_one: Latencies,
    pub q_daily_all: Latencies,
    pub q_last_all: Latencies,
    pub q_bbox: Latencies,
    pub live_target: f64,
    pub live_rate: f64,
    pub live_failed: u64,
    pub live_daily_one: Latencies,
    pub live_bbox: Latencies,
    /// Sum of the year's daily sums of device 0 (the systems must agree).
    pub daily_sums_days: f64,
    pub answers: (usize, usize, usize, usize),
}

/// Which way is better, for the reader of a ratio.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

struct Row {
    name: String,
    better: Better,
    values: Vec<f64>,
    text: Vec<String>,
}

/// The labels of every row, in order (the smoke test checks each is printed).
pub fn row_names(s: &Settings) -> Vec<String> {
    rows(s, &[]).into_iter().map(|r| r.name).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rows(s: &Settings, f: &[Figures]) -> Vec<Row> {
    let row = |name: String, better, value: &dyn Fn(&Figures) -> f64, text: &dyn Fn(&Figures) -> String| Row {
        name,
        better,
        values: f.iter().map(value).collect(),
        text: f.iter().map(text).collect(),
    };
    let num = |v: f64| if v >= 100.0 { thousands(v.round() as u64) } else { format!("{v:.2}") };
    let lat = |name: &str, get: &dyn Fn(&Figures) -> &Latencies| {
        vec![
            row(format!("{name}, median (ms)"), Better::Lower, &|f| ms(get(f).median), &|f| num(ms(get(f).median))),
            row(format!("{name}, p95 (ms)"), Better::Lower, &|f| ms(get(f).p95), &|f| num(ms(get(f).p95))),
        ]
    };
    let mut out = vec![
        row(
            format!("Ingest, history: {} devices × 1 year, best batches (points/s)", s.history_devices),
            Better::Higher,
            &|f| f.history_points_per_s,
            &|f| num(f.history_points_per_s),
        ),
        row(
            format!("Ingest, recent: {} devices × {} h, best batches (points/s)", thousands(s.devices), s.slice_hours),
            Better::Higher,
            &|f| f.slice_points_per_s,
            &|f| num(f.slice_points_per_s),
        ),
        row(
            "Ingest CPU, server, both loads (CPU-s per million points)".into(),
            Better::Lower,
            &|f| f.cpu_s_per_million,
            &|f| num(f.cpu_s_per_million),
        ),
        row(
            "Ingest CPU, server, recent load (CPU-s per million points)".into(),
            Better::Lower,
            &|f| f.slice_cpu_s_per_million,
            &|f| num(f.slice_cpu_s_per_million),
        ),
        row("Peak RSS, server (MiB)".into(), Better::Lower, &|f| f.peak_rss as f64 / 1048576.0, &|f| {
            num(f.peak_rss as f64 / 1048576.0)
        }),
        row(
            "Disk (bytes per point)".into(),
            Better::Lower,
            &|f| f.disk_bytes as f64 / f.stored_points.max(1) as f64,
            &|f| num(f.disk_bytes as f64 / f.stored_points.max(1) as f64),
        ),
    ];
    out.extend(lat("Query: daily sums over a year, one series", &|f| &f.q_daily_one));
    out.extend(lat("Query: daily sums over a year, all series of the type", &|f| &f.q_daily_all));
    out.extend(lat("Query: last value of every series", &|f| &f.q_last_all));
    out.extend(lat("Query: entities in a box (1 % of the area) with their last value", &|f| &f.q_bbox));
    out.push(row(
        format!("Live: uplinks stored per second, target {} for {} s", s.live_rate, s.live_seconds),
        Better::Higher,
        &|f| f.live_rate,
        &|f| {
            let held = if f.live_failed == 0 && f.live_rate >= 0.98 * f.live_target { "held" } else { "NOT held" };
            format!("{} ({held})", num(f.live_rate))
        },
    ));
    out.extend(lat("Live: daily sums, one series, under load", &|f| &f.live_daily_one));
    out.extend(lat("Live: entities in a box, under load", &|f| &f.live_bbox));
    out
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Socle / InfluxDB, and whether that is ahead (▲) or behind (▼) for this row.
fn ratio(better: Better, socle: f64, peer: f64) -> String {
    if peer <= 0.0 || !peer.is_finite() || !socle.is_finite() {
        return "–".into();
    }
    let r = socle / peer;
    let ahead = match better {
        Better::Higher => r >= 1.0,
        Better::Lower => r <= 1.0,
    };
    // Within 2 %, neither is ahead (a held live rate is the target on both sides).
    let mark = if (r - 1.0).abs() < 0.02 {
        "="
    } else if ahead {
        "▲"
    } else {
        "▼"
    };
    let r = if r >= 10.0 { format!("{r:.0}") } else { format!("{r:.2}") };
    format!("{r}× {mark}")
}

/// The whole report: machine, workload and scaling, then the table.
pub fn markdown(s: &Settings, mode: &str, figures: &[Figures], machine: &str) -> String {
    let mut out = String::new();
    let full = s.devices * READINGS_PER_YEAR * VALUES_PER_READING;
    let _ = writeln!(out, "## Socle against InfluxDB — `bench/run {mode}`\n");
    let _ = writeln!(out, "{machine}\n");
    let _ = writeln!(
        out,
        "Workload (seed {}): {} indoor sensors × 3 values (temperature, humidity, CO₂) every 15 min. \
         The full year for all of them would be {} points; this run loads the year for {} devices ({} points, \
         the query data) and {} h of every device ({} points), then sends {} ChirpStack uplinks/s for {} s. \
         Socle: `/ingest/generic`, 1,000 messages per request; live uplinks to `/ingest/chirpstack` with the \
         payload decoded by ChirpStack (`object`). InfluxDB: `/write`, 5,000 lines per request; live, one \
         line per request. {} writers. A point is one value.\n",
        s.seed,
        thousands(s.devices),
        thousands(full),
        s.history_devices,
        thousands(s.history_points()),
        s.slice_hours,
        thousands(s.slice_points()),
        s.live_rate,
        s.live_seconds,
        2
    );
    let names: Vec<&str> = figures.iter().map(|f| f.system.as_str()).collect();
    let _ = writeln!(
        out,
        "| Measurement | {} | SQLite / InfluxDB | PostgreSQL / InfluxDB |\n|---|{}---|---|",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for r in rows(s, figures) {
        let peer = r.values.get(2).copied().unwrap_or(0.0);
        let ratios: Vec<String> = r.values.iter().take(2).map(|&v| ratio(r.better, v, peer)).collect();
        let _ = writeln!(out, "| {} | {} | {} |", r.name, r.text.join(" | "), ratios.join(" | "));
    }
    let _ = writeln!(
        out,
        "\n▲ Socle ahead, ▼ behind, = within 2 %. CPU counts the server process, plus the PostgreSQL backends serving Socle; \
         peak RSS is the server process only (not PostgreSQL's shared buffers). Disk: SQLite files, the PostgreSQL \
         schema's relations with indexes, InfluxDB's data and WAL folders after compaction. Socle has no endpoint \
         for daily sums of all series of a type: that row is what a client does today (list the entities, then \
         one request per series, 4 at a time). InfluxDB knows no place: the box query takes the devices from the \
         register, then asks their last values in one InfluxQL query."
    );
    out
}

/// Cores, memory, CPU model and versions, for the table header.
pub fn machine(s: &Settings, postgres_version: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1048576.0);
    let version = |cmd: &std::path::Path, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_owned())
            .unwrap_or_default()
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: {cores} cores ({model}), {mem_gib:.1} GiB RAM, Linux {}. {} (binary {}), {}, PostgreSQL {postgres_version}.",
        kernel.trim(),
        version(&s.socle, "--version"),
        s.socle.display(),
        version(&s.influxd, "version"),
    )
}
