//! Configuration, layered: built-in defaults, then the TOML file given with
//! `--config`, then `SOCLE_*` environment variables (`__` separates sections:
//! `SOCLE_STORAGE__POSTGRES_URL`), then command-line flags. Secrets can be
//! read from files (`postgres_url_file`, `smtp.password_file`,
//! `oidc.client_secret_file`), so they stay out of the environment.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use socle_api::settings::{
    LoginThrottle, MapSettings, OidcSettings, RateLimits, SmtpSecurity, SmtpSettings, WebSettings,
};
use socle_storage::StorageConfig;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where Socle keeps its files (the SQLite database by default).
    pub data_dir: PathBuf,
    /// The address people use (`https://donnees.example.fr`), for links in
    /// mails and the OpenID Connect redirect; https turns on Secure cookies and
    /// HSTS. Empty: `http://` + the listening address.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpAddr>,
    pub storage: StorageSection,
    pub log: LogSection,
    pub retention: RetentionSection,
    pub ingestion: IngestionSection,
    pub demo: DemoSection,
    pub session: SessionSection,
    pub login: LoginSection,
    pub rate_limit: RateLimitSection,
    pub smtp: SmtpSection,
    pub oidc: OidcSection,
    pub mqtt: MqttSection,
    pub map: MapSection,
    pub notify: NotifySection,
}

/// The basemap of the hypervisor's map (see README, « Fond de carte »).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MapSection {
    /// Raster tile URL template with `{z}`, `{x}`, `{y}`. Empty: no basemap
    /// (commune outlines and entities only, no request to another host).
    pub tiles_url: String,
    pub attribution: String,
    pub max_zoom: u8,
}

/// Brokers Socle subscribes to, one `[[mqtt.subscriptions]]` table each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    pub subscriptions: Vec<MqttSubscriptionSection>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttSubscriptionSection {
    pub host: String,
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Stable across restarts: the broker keeps the session (and what
    /// arrives while Socle is away) under this id.
    pub client_id: String,
    /// The organisation whose devices publish there (as an ingestion token's).
    pub organisation: String,
    /// chirpstack, ttn or generic.
    pub network: socle_ingestion::mqtt::Network,
    /// Topic filters; empty: the network server's usual uplink topics.
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the broker password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_mqtt_port() -> u16 {
    1883
}

impl MqttSubscriptionSection {
    pub fn subscription(&self) -> anyhow::Result<(socle_mqtt::Subscription, socle_domain::OrganisationId)> {
        let organisation = socle_domain::OrganisationId::parse(&self.organisation)
            .with_context(|| format!("mqtt subscription {}: organisation", self.client_id))?;
        let topics = if self.topics.is_empty() { self.network.default_topics() } else { self.topics.clone() };
        let mut sub = socle_mqtt::Subscription::new(&self.host, self.port, &self.client_id, topics);
        if let Some(user) = &self.username {
            let password = match &self.password_file {
                Some(f) => {
                    std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?.trim().to_owned()
                }
                None => String::new(),
            };
            sub.credentials = Some((user.clone(), password));
        }
        Ok((sub, organisation))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// A web session ends after this many hours without a request…
    pub idle_hours: u64,
    /// …and after this many days in any case.
    pub absolute_days: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoginSection {
    /// From this many wrong passwords in a row, growing delays (1 s, 2 s… 1 min).
    pub delay_after_failures: u32,
    /// At this many wrong passwords in a row, the account is locked for `lock_minutes`.
    pub lock_after_failures: u32,
    pub lock_minutes: u64,
    /// Sign-in and reset attempts allowed per minute from one address.
    pub attempts_per_ip_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    /// API requests per minute per address, for anonymous callers.
    pub per_ip_per_minute: u32,
    /// API requests per minute per token (or signed-in user).
    pub per_token_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    /// SMTP relay for password reset mails. Empty: no mail is sent.
    pub host: String,
    pub port: u16,
    /// Sender, e.g. `Socle <ne-pas-repondre@example.fr>`.
    pub from: String,
    /// `starttls` (port 587), `tls` (465) or `none` (a relay on the same host).
    pub security: SmtpSecurityName,
    pub username: Option<String>,
    pub password: Option<String>,
    /// File holding the password (takes precedence).
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurityName {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// Issuer URL of the OpenID Connect provider. Empty: no OpenID Connect sign-in.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// File holding the client secret (takes precedence).
    pub client_secret_file: Option<PathBuf>,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    /// Name on the sign-in button.
    pub label: String,
    /// Create an account (with no role) for an unknown person the provider vouches for.
    pub allow_registration: bool,
    /// Believe the provider's e-mail address without `email_verified` (ProConnect).
    pub trust_email: bool,
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
pub struct IngestionSection {
    /// Bodies processed at once by the ingestion endpoints.
    pub max_concurrent: usize,
    /// How long a body waits for a free slot before `429 Retry-After`.
    pub queue_wait_ms: u64,
    /// The `Retry-After` given to senders refused for overload.
    pub retry_after_secs: u64,
    /// Time limit of one codec call.
    pub codec_timeout_ms: u64,
    /// Days frame identities are kept (a later copy is still caught by its series and instant).
    pub frames_days: u32,
    /// Days dead letters are kept.
    pub dead_letters_days: u32,
}

impl IngestionSection {
    pub fn pipeline(&self) -> socle_ingestion::PipelineConfig {
        let defaults = socle_ingestion::PipelineConfig::default();
        socle_ingestion::PipelineConfig {
            max_concurrent: self.max_concurrent.max(1),
            queue_wait: std::time::Duration::from_millis(self.queue_wait_ms),
            retry_after: std::time::Duration::from_secs(self.retry_after_secs.max(1)),
            codec_limits: socle_ingest::CodecLimits {
                time: std::time::Duration::from_millis(self.codec_timeout_ms.clamp(1, 10_000)),
                ..defaults.codec_limits
            },
            ..defaults
        }
    }
}

/// Notifications of alerts (mail goes through `[smtp]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// Per attempt to a webhook, a push service or the SMS gateway.
    pub http_timeout_secs: u64,
    /// Attempts before a delivery is given up; the delay doubles from
    /// `retry_base_secs` up to `retry_max_secs`.
    pub max_attempts: u32,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Where the Web Push (VAPID) private key is kept; empty: in the database,
    /// shared by every instance. Generated at first start.
    pub vapid_key_file: Option<PathBuf>,
    /// Contact given to push services (`mailto:…`); empty: the `[smtp]` sender, else `public_url`.
    pub vapid_subject: Option<String>,
    /// SMS gateway: `POST sms_url` with `sms_body_template`, where `{to}` and
    /// `{text}` are replaced by JSON-escaped values. Empty URL: no SMS.
    pub sms_url: String,
    pub sms_body_template: String,
    /// Authentication header of the gateway, `Name: value` (e.g. `Authorization: Bearer …`).
    pub sms_auth_header: Option<String>,
    /// File holding that header (takes precedence).
    pub sms_auth_header_file: Option<PathBuf>,
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
            ingestion: IngestionSection {
                max_concurrent: 32,
                queue_wait_ms: 2000,
                retry_after_secs: 5,
                codec_timeout_ms: 100,
                frames_days: 30,
                dead_letters_days: 90,
            },
            demo: DemoSection { history_days: 90, live_interval_secs: 5 },
            public_url: None,
            trusted_proxies: Vec::new(),
            session: SessionSection { idle_hours: 12, absolute_days: 7 },
            login: LoginSection {
                delay_after_failures: 5,
                lock_after_failures: 20,
                lock_minutes: 15,
                attempts_per_ip_per_minute: 30,
            },
            rate_limit: RateLimitSection { per_ip_per_minute: 600, per_token_per_minute: 3000 },
            smtp: SmtpSection {
                host: String::new(),
                port: 587,
                from: String::new(),
                security: SmtpSecurityName::Starttls,
                username: None,
                password: None,
                password_file: None,
            },
            oidc: OidcSection {
                issuer: String::new(),
                client_id: String::new(),
                client_secret: None,
                client_secret_file: None,
                scopes: vec!["email".into(), "profile".into()],
                label: "ProConnect".into(),
                allow_registration: false,
                trust_email: false,
            },
            mqtt: MqttSection::default(),
            map: MapSection { tiles_url: String::new(), attribution: String::new(), max_zoom: 19 },
            notify: NotifySection {
                http_timeout_secs: 10,
                max_attempts: 12,
                retry_base_secs: 30,
                retry_max_secs: 3600,
                vapid_key_file: None,
                vapid_subject: None,
                sms_url: String::new(),
                sms_body_template: r#"{"to": "{to}", "text": "{text}"}"#.into(),
                sms_auth_header: None,
                sms_auth_header_file: None,
            },
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
        if let Some(f) = &config.smtp.password_file {
            let secret = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            config.smtp.password = Some(secret.trim_end_matches(['\n', '\r']).to_owned());
        }
        if let Some(f) = &config.oidc.client_secret_file {
            let secret = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            config.oidc.client_secret = Some(secret.trim().to_owned());
        }
        if let Some(f) = &config.notify.sms_auth_header_file {
            let secret = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            config.notify.sms_auth_header = Some(secret.trim_end_matches(['\n', '\r']).to_owned());
        }
        if config.notify.sms_auth_header.as_deref().is_some_and(|h| !h.contains(':')) {
            bail!("notify.sms_auth_header must read `Name: value`");
        }
        if !config.smtp.host.is_empty() && config.smtp.from.is_empty() {
            bail!("smtp.from is required when smtp.host is set");
        }
        let tiles = config.map.tiles_url.trim();
        if !tiles.is_empty() && (!tiles.contains("{z}") || !tiles.contains("{x}") || !tiles.contains("{y}")) {
            bail!("map.tiles_url must contain {{z}}, {{x}} and {{y}}");
        }
        if !tiles.is_empty() && config.web(config.listen).map.tile_origin().is_none() {
            bail!("map.tiles_url must be an http(s) URL with a plain host name");
        }
        if !config.oidc.issuer.is_empty() && (config.oidc.client_id.is_empty() || config.oidc.client_secret.is_none()) {
            bail!("oidc.client_id and oidc.client_secret (or client_secret_file) are required when oidc.issuer is set");
        }
        Ok(config)
    }

    /// The web settings; `bound` is the address actually listened on (for the default public URL).
    /// Notification settings, from `[notify]`, `[smtp]` and the web settings' public URL.
    /// NGSI-LD notifications retry like alert notifications (`[notify]`).
    pub fn ngsi_subscriptions(&self) -> socle_ngsi_notify::SubscriptionsConfig {
        let n = &self.notify;
        let http_timeout = Duration::from_secs(n.http_timeout_secs.max(1));
        socle_ngsi_notify::SubscriptionsConfig {
            http_timeout,
            // Longer than an attempt (an HTTP timeout, or the MQTT acknowledgement's 10 s).
            lease: (http_timeout * 3).max(Duration::from_secs(15)),
            retry_base: Duration::from_secs(n.retry_base_secs.max(1)),
            retry_max: Duration::from_secs(n.retry_max_secs.max(n.retry_base_secs).max(1)),
            max_attempts: n.max_attempts.max(1),
            ..socle_ngsi_notify::SubscriptionsConfig::default()
        }
    }

    pub fn notify(&self, web: &WebSettings) -> socle_notify::NotifyConfig {
        let n = &self.notify;
        let smtp = web.smtp.clone();
        let vapid_subject = n.vapid_subject.clone().unwrap_or_else(|| match &smtp {
            Some(s) => {
                let address = s.from.rsplit('<').next().unwrap_or(&s.from).trim_end_matches('>');
                format!("mailto:{address}")
            }
            None => web.public_url.clone(),
        });
        socle_notify::NotifyConfig {
            public_url: web.public_url.clone(),
            smtp,
            sms: (!n.sms_url.is_empty()).then(|| socle_notify::SmsGateway {
                url: n.sms_url.clone(),
                auth_header: n
                    .sms_auth_header
                    .as_deref()
                    .and_then(|h| h.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))),
                body_template: n.sms_body_template.clone(),
            }),
            http_timeout: Duration::from_secs(n.http_timeout_secs.max(1)),
            vapid_subject,
            retry_base: Duration::from_secs(n.retry_base_secs.max(1)),
            retry_max: Duration::from_secs(n.retry_max_secs.max(n.retry_base_secs).max(1)),
            max_attempts: n.max_attempts.max(1),
            ..Default::default()
        }
    }

    pub fn web(&self, bound: SocketAddr) -> WebSettings {
        let public_url = match self.public_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        };
        WebSettings {
            public_url,
            session_idle: Duration::from_secs(self.session.idle_hours.max(1) * 3600),
            session_absolute: Duration::from_secs(self.session.absolute_days.max(1) * 86_400),
            login: LoginThrottle {
                delay_after: self.login.delay_after_failures,
                lock_after: self.login.lock_after_failures,
                lock: Duration::from_secs(self.login.lock_minutes * 60),
                per_ip_per_minute: self.login.attempts_per_ip_per_minute,
            },
            rate_limit: RateLimits {
                per_ip_per_minute: self.rate_limit.per_ip_per_minute,
                per_token_per_minute: self.rate_limit.per_token_per_minute,
            },
            trusted_proxies: self.trusted_proxies.clone(),
            smtp: (!self.smtp.host.is_empty()).then(|| SmtpSettings {
                host: self.smtp.host.clone(),
                port: self.smtp.port,
                from: self.smtp.from.clone(),
                security: match self.smtp.security {
                    SmtpSecurityName::None => SmtpSecurity::None,
                    SmtpSecurityName::Starttls => SmtpSecurity::Starttls,
                    SmtpSecurityName::Tls => SmtpSecurity::Tls,
                },
                username: self.smtp.username.clone(),
                password: self.smtp.password.clone(),
            }),
            oidc: (!self.oidc.issuer.is_empty()).then(|| OidcSettings {
                issuer: self.oidc.issuer.clone(),
                client_id: self.oidc.client_id.clone(),
                client_secret: self.oidc.client_secret.clone().unwrap_or_default(),
                scopes: self.oidc.scopes.clone(),
                label: self.oidc.label.clone(),
                allow_registration: self.oidc.allow_registration,
                trust_email: self.oidc.trust_email,
            }),
            map: MapSettings {
                tiles_url: self.map.tiles_url.trim().to_owned(),
                attribution: self.map.attribution.clone(),
                max_zoom: self.map.max_zoom.clamp(1, 22),
            },
        }
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
# The address people use, behind the reverse proxy. With https, cookies are
# Secure and HSTS is sent. Used in password reset links and as the OpenID
# Connect redirect (<public_url>/connexion/oidc/retour). Default: http://<listen>.
# public_url = "https://donnees.example.fr"
# Reverse proxies whose X-Forwarded-For is believed (for rate limits, the audit trail).
trusted_proxies = []

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

[ingestion]
# Bodies from network servers processed at once; beyond, a body waits up to
# queue_wait_ms for a slot, then is refused with 429 and Retry-After (the
# network server sends it again): nothing is dropped.
max_concurrent = 32
queue_wait_ms = 2000
retry_after_secs = 5
# Time limit of one codec call (QuickJS).
codec_timeout_ms = 100
# Frame identities are kept this long to recognise retries and replays.
frames_days = 30
# Refused bodies (dead letters) are kept this long.
dead_letters_days = 90

# MQTT subscriptions, one table per broker (ChirpStack, The Things Stack, generic JSON):
# [[mqtt.subscriptions]]
# host = "127.0.0.1"
# port = 1883
# client_id = "socle-saint-aubin"        # keep it stable: the broker keeps the session under it
# organisation = "commune-saint-aubin"   # whose devices publish there
# network = "chirpstack"                 # chirpstack, ttn or generic
# topics = []                            # empty: application/+/device/+/event/+ (ChirpStack), v3/+/devices/+/up (TTN)

[demo]
history_days = {history}
live_interval_secs = {live}

[session]
# Web sessions end after this idle time, and after the absolute lifetime in any case.
idle_hours = 12
absolute_days = 7

[login]
# Wrong passwords in a row: growing delays from the first number, a lock of
# lock_minutes at the second. Attempts per minute from one address.
delay_after_failures = 5
lock_after_failures = 20
lock_minutes = 15
attempts_per_ip_per_minute = 30

[rate_limit]
# API requests per minute; beyond, 429 with Retry-After.
per_ip_per_minute = 600
per_token_per_minute = 3000

[smtp]
# Relay for password reset mails; empty host: no mail is sent.
host = ""
port = 587
from = ""
# starttls (587), tls (465) or none (a relay on the same host)
security = "starttls"
# username = "socle"
# password_file = "/run/secrets/socle-smtp-password"

[oidc]
# OpenID Connect provider (ProConnect, Keycloak…); empty issuer: password sign-in only.
# ProConnect, e.g.: issuer = "https://auth.proconnect.gouv.fr/api/v2", scopes = ["email", "given_name", "usual_name"], trust_email = true
issuer = ""
client_id = ""
# client_secret_file = "/run/secrets/socle-oidc-secret"
scopes = ["email", "profile"]
label = "ProConnect"
# Create an account, with no role, for a person the provider vouches for but Socle does not know.
allow_registration = false
# Believe the provider's e-mail address even without an email_verified claim.
trust_email = false

[map]
# Basemap tiles ({{z}}, {{x}}, {{y}}); empty: commune outlines only, and no request to any other host.
# IGN Géoplateforme, Plan IGN:
# tiles_url = "https://data.geopf.fr/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=GEOGRAPHICALGRIDSYSTEMS.PLANIGNV2&STYLE=normal&TILEMATRIXSET=PM&FORMAT=image/png&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}"
# attribution = "© IGN – Géoplateforme"
# max_zoom = 19
# OpenStreetMap (a tile server of your own or a provider's; tile.openstreetmap.org forbids heavy use):
# tiles_url = "https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png"
# attribution = "© les contributeurs d'OpenStreetMap"
tiles_url = ""
attribution = ""
max_zoom = 19
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
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn web_settings_follow_the_configuration() {
        figment::Jail::expect_with(|jail| {
            let bound: SocketAddr = "127.0.0.1:9999".parse().unwrap();
            let c = Config::load(None, &Overrides::default()).unwrap();
            let w = c.web(bound);
            assert_eq!(w.public_url, "http://127.0.0.1:9999", "default: the listening address");
            assert!(!w.https() && w.smtp.is_none() && w.oidc.is_none());
            assert_eq!(w.session_idle, Duration::from_secs(12 * 3600));
            assert_eq!(w.login.lock, Duration::from_secs(15 * 60));

            jail.create_file("smtp-password", "s3cret\n")?;
            jail.create_file("oidc-secret", "client-s3cret\n")?;
            jail.set_env("SOCLE_PUBLIC_URL", "https://donnees.example.fr/");
            jail.set_env("SOCLE_SMTP__HOST", "smtp.example.fr");
            jail.set_env("SOCLE_SMTP__SECURITY", "tls");
            jail.set_env("SOCLE_SMTP__PASSWORD_FILE", "smtp-password");
            jail.set_env("SOCLE_SMTP__USERNAME", "socle");
            // A relay without a sender is refused at start, not at the first reset.
            assert!(Config::load(None, &Overrides::default()).is_err());
            jail.set_env("SOCLE_SMTP__FROM", "Socle <ne-pas-repondre@example.fr>");
            jail.set_env("SOCLE_OIDC__ISSUER", "https://auth.example.fr");
            jail.set_env("SOCLE_OIDC__CLIENT_ID", "socle");
            assert!(Config::load(None, &Overrides::default()).is_err(), "an issuer without a secret");
            jail.set_env("SOCLE_OIDC__CLIENT_SECRET_FILE", "oidc-secret");
            jail.set_env("SOCLE_OIDC__SCOPES", "[\"email\", \"given_name\", \"usual_name\"]");
            jail.set_env("SOCLE_TRUSTED_PROXIES", "[\"127.0.0.1\"]");
            let c = Config::load(None, &Overrides::default()).unwrap();
            let w = c.web(bound);
            assert!(w.https());
            assert_eq!(w.public_url, "https://donnees.example.fr");
            assert_eq!(w.trusted_proxies, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
            let smtp = w.smtp.unwrap();
            assert_eq!((smtp.security, smtp.port, smtp.password.as_deref()), (SmtpSecurity::Tls, 587, Some("s3cret")));
            let oidc = w.oidc.unwrap();
            assert_eq!(oidc.client_secret, "client-s3cret");
            assert_eq!(oidc.scopes, ["email", "given_name", "usual_name"]);
            Ok(())
        });
    }

    #[test]
    fn env_names_cover_nested_keys() {
        let names = known_env_names();
        assert!(names.contains(&"SOCLE_STORAGE__POSTGRES_URL".to_owned()));
        assert!(names.contains(&"SOCLE_LISTEN".to_owned()));
    }

    #[test]
    fn mqtt_subscriptions_from_the_file() {
        let parsed: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(
                "[[mqtt.subscriptions]]\nhost = \"broker.local\"\nclient_id = \"socle-a\"\norganisation = \"commune-a\"\nnetwork = \"ttn\"\n",
            ))
            .extract()
            .unwrap();
        let (sub, org) = parsed.mqtt.subscriptions[0].subscription().unwrap();
        assert_eq!((sub.host.as_str(), sub.port, org.as_str()), ("broker.local", 1883, "commune-a"));
        assert_eq!(sub.topics, ["v3/+/devices/+/up", "v3/+/devices/+/down/+"]);
        let bad: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(
                "[[mqtt.subscriptions]]\nhost = \"b\"\nclient_id = \"c\"\norganisation = \"Not An Id\"\nnetwork = \"chirpstack\"\n",
            ))
            .extract()
            .unwrap();
        assert!(bad.mqtt.subscriptions[0].subscription().is_err());
    }
}
