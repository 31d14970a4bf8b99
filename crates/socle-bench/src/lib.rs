//! `socle-bench`: Socle against the stack a technician would otherwise
//! assemble — InfluxDB 1.x fed from the network server — on the same
//! machine, with the same reproducible workload, each system running as its
//! own process so its CPU, memory and disk are measured apart from the load
//! generator. `bench/run` is the entry point; see the README.

pub mod influx;
pub mod process;
pub mod report;
pub mod run;
pub mod socle;
pub mod workload;

use std::path::Path;

pub use run::Settings;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A few hundred devices, seconds per phase: checks that everything runs (under 2 minutes).
    Quick,
    /// The default: 10,000 devices, sized to finish in under 15 minutes on 2 cores.
    Default,
    /// The year of history for every device (about a billion points with 10,000 devices: hours).
    Full,
}

impl Mode {
    pub fn flag(self) -> &'static str {
        match self {
            Self::Quick => "--quick",
            Self::Default => "",
            Self::Full => "--full",
        }
    }
}

/// Runs the benchmark, prints nothing but progress (to `progress`), writes
/// the Markdown report to `out` and returns it.
pub async fn bench(settings: &Settings, mode: Mode, out: &Path, progress: impl Fn(&str)) -> anyhow::Result<String> {
    let pg_version = postgres_version(&settings.postgres_url).await?;
    let machine = report::machine(settings, &pg_version);
    let figures = run::run(settings, progress).await?;
    let md = report::markdown(settings, mode.flag(), &figures, &machine);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, &md)?;
    Ok(md)
}

async fn postgres_version(url: &str) -> anyhow::Result<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client.query_one("SHOW server_version", &[]).await?.get(0))
}
