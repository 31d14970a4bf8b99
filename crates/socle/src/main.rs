//! The `socle` binary: parses the command line and hands over to the
//! library crates. Nothing here knows SQL or HTTP routes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod admin;
mod alert_notices;
mod alerting;
mod bench;
mod config;
mod debug;
mod demo_accounts;
mod demo_live;
mod demo_ngsi;
mod demo_opendata;
mod demo_subscriptions;
mod ingest_cli;
mod server;
mod telemetry;

use config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "socle",
    version,
    about = "Socle, la plateforme de données territoriale / the territorial data platform"
)]
struct Cli {
    /// TOML configuration file (see `socle config example`).
    #[arg(long, global = true, env = "SOCLE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct OverrideArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data directory (default ./socle-data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Use PostgreSQL at this URL instead of the embedded SQLite.
    #[arg(long, global = true)]
    postgres_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Run the server on a demo territory: a syndicate, three communes, 1,500 entities, live sensors.
    Demo {
        /// Do not produce live observations after the history is written.
        #[arg(long)]
        no_live: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Verify that every rollup equals the aggregate of its raw points.
    Check,
    /// Organisations (tenants).
    Org {
        #[command(subcommand)]
        command: admin::OrgCommand,
    },
    /// Users and their roles.
    User {
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// API tokens (personal and ingestion).
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Devices (capteurs) and their mappings.
    Device {
        #[command(subcommand)]
        command: ingest_cli::DeviceCommand,
    },
    /// Payload codecs.
    Codec {
        #[command(subcommand)]
        command: ingest_cli::CodecCommand,
    },
    /// Bulk imports of historical data.
    Import {
        #[command(subcommand)]
        command: ingest_cli::ImportCommand,
    },
    /// Measure the read paths against a raw-scan baseline on a throw-away database.
    Bench(bench::BenchArgs),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Tools for tests and troubleshooting.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        command: debug::DebugCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a documented configuration file with the defaults.
    Example,
    /// Print the effective configuration (defaults, file, environment, flags).
    Show,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.overrides.listen,
        data_dir: cli.overrides.data_dir.clone(),
        postgres_url: cli.overrides.postgres_url.clone(),
    };
    if let Command::Config { command: ConfigCommand::Example } = cli.command {
        print!("{}", Config::example());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("socle: {e:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    for var in config::unknown_env_vars() {
        tracing::warn!(variable = %var, "unknown SOCLE_ environment variable ignored");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("socle: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => server::serve(config, None).await,
            Command::Demo { no_live } => server::serve(config, Some(server::DemoMode { live: !no_live })).await,
            Command::Migrate => server::migrate(&config).await,
            Command::Check => server::check(&config).await,
            Command::Bench(args) => bench::run(&config, args).await,
            Command::Org { command } => admin::org(&config, command).await,
            Command::User { command } => admin::user(&config, command).await,
            Command::Token { command } => admin::token(&config, command).await,
            Command::Device { command } => ingest_cli::device(&config, command).await,
            Command::Codec { command } => ingest_cli::codec(command),
            Command::Import { command } => ingest_cli::import(&config, command).await,
            Command::Config { command: ConfigCommand::Show } => {
                println!("{}", toml::to_string_pretty(&redacted(&config))?);
                Ok(())
            }
            Command::Config { command: ConfigCommand::Example } => Ok(()),
            Command::Debug { command } => debug::run(&config, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "socle stopped on an error");
            eprintln!("socle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration without secrets, for display.
fn redacted(config: &Config) -> Config {
    let mut c = config.clone();
    if c.storage.postgres_url.is_some() {
        c.storage.postgres_url = Some("<hidden>".into());
    }
    if c.smtp.password.is_some() {
        c.smtp.password = Some("<hidden>".into());
    }
    if c.oidc.client_secret.is_some() {
        c.oidc.client_secret = Some("<hidden>".into());
    }
    c
}
