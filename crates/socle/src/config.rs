//! Configuration, layered: built-in defaults, then the TOML file given with
//! `--config`, then `SOCLE_*` environment variables (`__` separates sections:
//! `SOCLE_STORAGE__POSTGRES_URL`), then command-line flags. Secrets can be
//! read from files (`postgres_url_file`), so they stay out of the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use socle_storage::StorageConfig;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where Socle keeps its files (the SQLite database by default).
    pub data_dir: PathBuf,
    pub storage: StorageSection,
    pub log: LogSection,
    pub retention: RetentionSection,
    pub demo: DemoSection,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// PostgreSQL URL (`postgres://user@host/db`). Empty: embedded SQLite in `data_dir`.
    pub postgres_url: Option<String>,
    /// File holding the PostgreSQL URL (takes precedence; for secrets).
    pub postgres_url_file: Option<PathBuf>,
    /// PostgreSQL connection pool size.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// tracing filter, e.g. `info` or `socle=debug,tower_http=info`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// How often raw points past each organisation's retention are deleted.
    pub interval_minutes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DemoSection {
    /// Days of history generated on first start.
    pub history_days: u32,
    /// Seconds between two live ticks.
    pub live_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./socle-data"),
            storage: StorageSection { postgres_url: None, postgres_url_file: None, max_connections: 16 },
            log: LogSection { format: LogFormat::Text, filter: "info,tower_http=warn".into() },
            retention: RetentionSection { interval_minutes: 60 },
            demo: DemoSection { history_days: 90, live_interval_secs: 5 },
        }
    }
}

/// Flags that override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub postgres_url: Option<String>,
}

/// Environment variable names the configuration understands, derived from
/// the defaults so the list cannot drift from the struct.
fn known_env_names() -> Vec<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let name =
                        if prefix.is_empty() { k.to_uppercase() } else { format!("{prefix}__{}", k.to_uppercase()) };
                    walk(&name, v, out);
                }
            }
            _ => out.push(format!("SOCLE_{prefix}")),
        }
    }
    let mut out = Vec::new();
    walk("", &serde_json::to_value(Config::default()).unwrap_or_default(), &mut out);
    out
}

/// `SOCLE_*` variables that configure nothing: probably a typo worth a warning.
pub fn unknown_env_vars() -> Vec<String> {
    let known = known_env_names();
    // Variables read elsewhere, not by this struct.
    let other = ["SOCLE_CONFIG", "SOCLE_TEST_POSTGRES_URL"];
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("SOCLE_") && !known.contains(k) && !other.contains(&k.as_str()))
        .collect()
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("SOCLE_").split("__").ignore(&["config", "test_postgres_url"]));
        let mut config: Config = figment.extract().context("invalid configuration")?;
        if let Some(l) = overrides.listen {
            config.listen = l;
        }
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(u) = &overrides.postgres_url {
            config.storage.postgres_url = Some(u.clone());
        }
        if let Some(f) = &config.storage.postgres_url_file {
            let url = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            config.storage.postgres_url = Some(url.trim().to_owned());
        }
        Ok(config)
    }

    pub fn storage(&self) -> StorageConfig {
        match self.storage.postgres_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => StorageConfig::Postgres { url: url.to_owned(), max_connections: self.storage.max_connections },
            None => StorageConfig::Sqlite { path: self.data_dir.join("socle.db") },
        }
    }

    /// A documented configuration file with the defaults, for `socle config example`.
    pub fn example() -> String {
        let d = Config::default();
        format!(
            r#"# Socle configuration. Every key can also be set by an environment variable:
# SOCLE_LISTEN, SOCLE_DATA_DIR, SOCLE_STORAGE__POSTGRES_URL, SOCLE_LOG__FORMAT…

# Address the HTTP server listens on. Put a TLS reverse proxy in front of it.
listen = "{listen}"
# Where Socle keeps its files: the SQLite database (socle.db) by default.
data_dir = "{data_dir}"

[storage]
# PostgreSQL instead of the embedded SQLite, for syndicates hosting many communes:
# postgres_url = "postgres://socle@db.example.local/socle"
# or, to keep the secret out of this file and the environment:
# postgres_url_file = "/run/secrets/socle-postgres-url"
max_connections = {max_conn}

[log]
# text (people) or json (log collectors)
format = "text"
filter = "{filter}"

[retention]
# Raw points older than each organisation's retention are deleted this often.
interval_minutes = {retention}

[demo]
history_days = {history}
live_interval_secs = {live}
"#,
            listen = d.listen,
            data_dir = d.data_dir.display(),
            max_conn = d.storage.max_connections,
            filter = d.log.filter,
            retention = d.retention.interval_minutes,
            history = d.demo.history_days,
            live = d.demo.live_interval_secs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_to_defaults() {
        let parsed: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&Config::example()))
            .extract()
            .unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("socle.toml", "listen = \"127.0.0.1:9000\"\n[storage]\nmax_connections = 4\n")?;
            jail.set_env("SOCLE_STORAGE__MAX_CONNECTIONS", "6");
            jail.set_env("SOCLE_DATA_DIR", "/var/lib/socle");
            let overrides = Overrides { listen: Some("0.0.0.0:80".parse().unwrap()), ..Default::default() };
            let c = Config::load(Some(Path::new("socle.toml")), &overrides).unwrap();
            assert_eq!(c.listen.to_string(), "0.0.0.0:80");
            assert_eq!(c.storage.max_connections, 6);
            assert_eq!(c.data_dir, PathBuf::from("/var/lib/socle"));
            assert_eq!(c.storage(), StorageConfig::Sqlite { path: PathBuf::from("/var/lib/socle/socle.db") });
            jail.set_env("SOCLE_STORAGE__POSTGRES_URL", "postgres://x@localhost/y");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert!(matches!(c.storage(), StorageConfig::Postgres { .. }));
            jail.set_env("SOCLE_LISTEN", "not an address");
            assert!(Config::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn env_names_cover_nested_keys() {
        let names = known_env_names();
        assert!(names.contains(&"SOCLE_STORAGE__POSTGRES_URL".to_owned()));
        assert!(names.contains(&"SOCLE_LISTEN".to_owned()));
    }
}
