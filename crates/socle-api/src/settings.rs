//! What the web sign-in and the security baseline need from configuration.
//! The binary fills this from its layered configuration; tests build it
//! directly. Defaults are the documented production defaults.

use std::net::IpAddr;
use std::time::Duration;

pub use socle_notify::{SmtpSecurity, SmtpSettings};

/// Settings of sessions, sign-in, mail, OpenID Connect and rate limits.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The address people use to reach Socle (`https://donnees.example.fr`):
    /// links in e-mails, the OpenID Connect redirect URI. When it is https,
    /// cookies are `Secure` (with the `__Host-` prefix) and HSTS is sent.
    pub public_url: String,
    /// A session ends after this long without a request…
    pub session_idle: Duration,
    /// …and after this long whatever the activity.
    pub session_absolute: Duration,
    pub login: LoginThrottle,
    pub rate_limit: RateLimits,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Empty: the peer
    /// address is the client address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Password reset mails; without it, no mail is sent (the page still answers the same).
    pub smtp: Option<SmtpSettings>,
    pub oidc: Option<OidcSettings>,
    pub map: MapSettings,
}

/// The basemap of the hypervisor's map. Without a tile server the map
/// shows the commune outlines and the entities only, and the pages make no
/// request to any other host.
#[derive(Debug, Clone)]
pub struct MapSettings {
    /// An XYZ raster template with `{z}`, `{x}`, `{y}`, e.g. IGN Géoplateforme's Plan IGN
    /// (WMTS KVP with `TILEMATRIX={z}&TILEROW={y}&TILECOL={x}`) or an OpenStreetMap tile server.
    pub tiles_url: String,
    /// Credit shown on the map (« © IGN », « © les contributeurs d'OpenStreetMap »).
    pub attribution: String,
    pub max_zoom: u8,
}

impl Default for MapSettings {
    fn default() -> Self {
        Self { tiles_url: String::new(), attribution: String::new(), max_zoom: 19 }
    }
}

impl MapSettings {
    /// The origin (`https://data.geopf.fr`) the Content-Security-Policy must allow, if any.
    pub fn tile_origin(&self) -> Option<String> {
        let rest = self
            .tiles_url
            .strip_prefix("https://")
            .map(|r| ("https://", r))
            .or_else(|| self.tiles_url.strip_prefix("http://").map(|r| ("http://", r)))?;
        let host = rest.1.split(['/', '?', '#']).next().filter(|h| {
            !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })?;
        Some(format!("{}{host}", rest.0))
    }
}

/// Brute-force protection of the sign-in form.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    /// From this many failures in a row, each further failure locks the account
    /// for a delay that doubles (1 s, 2 s, 4 s… up to a minute).
    pub delay_after: u32,
    /// At this many failures in a row the account is locked for `lock`.
    pub lock_after: u32,
    pub lock: Duration,
    /// Sign-in and reset attempts per minute from one address.
    pub per_ip_per_minute: u32,
}

/// Requests per minute on `/api/…`, with bursts of the same size.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Per client address for anonymous callers.
    pub per_ip_per_minute: u32,
    /// Per token (or per signed-in user).
    pub per_token_per_minute: u32,
}

#[derive(Clone)]
pub struct OidcSettings {
    /// Issuer URL; its `/.well-known/openid-configuration` is read at first use.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes besides `openid`, e.g. `email`, `profile` (ProConnect: `email given_name usual_name`).
    pub scopes: Vec<String>,
    /// Name on the sign-in button (« ProConnect », « Keycloak de la métropole »).
    pub label: String,
    /// Creates an account (without any role) for a person the provider
    /// vouches for but Socle does not know. Off by default.
    pub allow_registration: bool,
    /// Treats the provider's e-mail as verified even without `email_verified`
    /// (ProConnect vouches for its agents' addresses but sends no such claim).
    pub trust_email: bool,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            session_idle: Duration::from_secs(12 * 3600),
            session_absolute: Duration::from_secs(7 * 24 * 3600),
            login: LoginThrottle::default(),
            rate_limit: RateLimits::default(),
            trusted_proxies: Vec::new(),
            smtp: None,
            oidc: None,
            map: MapSettings::default(),
        }
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self { delay_after: 5, lock_after: 20, lock: Duration::from_secs(15 * 60), per_ip_per_minute: 30 }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { per_ip_per_minute: 600, per_token_per_minute: 3000 }
    }
}

impl WebSettings {
    /// Whether Socle is reached over TLS (through its reverse proxy).
    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn public_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }
}
