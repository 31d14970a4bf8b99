//! `socle-bench [--quick | --full] [options]`: see `bench/run` and the README.

use std::path::PathBuf;

use clap::Parser;
use socle_bench::Mode;

#[derive(Parser)]
#[command(version, about = "Socle against InfluxDB 1.x, side by side on this machine")]
struct Cli {
    /// A small run that checks everything works (under 2 minutes).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The year of history for every device (hours, not minutes).
    #[arg(long)]
    full: bool,
    /// Seed of the workload: the same seed gives the same data.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Devices of the territory (default 10,000; --quick 200).
    #[arg(long)]
    devices: Option<u64>,
    /// Devices whose whole year is loaded for the queries (default 10; --quick 1; --full all).
    #[arg(long)]
    history_devices: Option<u64>,
    /// Hours of readings of every device in the recent ingest (default 2; --quick 6).
    #[arg(long)]
    slice_hours: Option<u64>,
    /// Live uplinks per second (default 200; --quick 50).
    #[arg(long)]
    live_rate: Option<u64>,
    /// Length of the live phase in seconds (default 30; --quick 5).
    #[arg(long)]
    live_seconds: Option<u64>,
    /// Repetitions of each query (default 10; --quick 3).
    #[arg(long)]
    repetitions: Option<usize>,
    /// The socle binary (default: next to this one, else on the PATH).
    #[arg(long)]
    socle: Option<PathBuf>,
    /// The influxd binary.
    #[arg(long, default_value = "influxd")]
    influxd: PathBuf,
    /// PostgreSQL server for Socle's PostgreSQL backend (a schema is created and dropped there).
    #[arg(long, env = "SOCLE_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Where the Markdown table is written.
    #[arg(long, default_value = "bench/results/latest.md")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mode = if cli.quick {
        Mode::Quick
    } else if cli.full {
        Mode::Full
    } else {
        Mode::Default
    };
    let mut settings = socle_bench::run::defaults(mode);
    settings.seed = cli.seed;
    settings.devices = cli.devices.unwrap_or(settings.devices);
    settings.history_devices =
        cli.history_devices.unwrap_or(if mode == Mode::Full { settings.devices } else { settings.history_devices });
    settings.history_devices = settings.history_devices.min(settings.devices);
    settings.slice_hours = cli.slice_hours.unwrap_or(settings.slice_hours);
    settings.live_rate = cli.live_rate.unwrap_or(settings.live_rate);
    settings.live_seconds = cli.live_seconds.unwrap_or(settings.live_seconds);
    settings.repetitions = cli.repetitions.unwrap_or(settings.repetitions).max(1);
    settings.socle = cli.socle.unwrap_or_else(socle_bench::socle::default_binary);
    settings.influxd = cli.influxd;
    settings.postgres_url = cli.postgres_url;
    let started = std::time::Instant::now();
    let md = socle_bench::bench(&settings, mode, &cli.out, |line| {
        eprintln!("[{:>5.0} s] {line}", started.elapsed().as_secs_f64());
    })
    .await?;
    println!("{md}");
    eprintln!("written to {} in {:.0} s", cli.out.display(), started.elapsed().as_secs_f64());
    Ok(())
}
