//! The security baseline of every response (headers), and the small tools
//! the sign-in code shares: random secrets, constant-time comparison,
//! cookies, and the client address behind trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::settings::WebSettings;
use crate::AppState;

/// Scripts, styles and workers from Socle's own files only (no inline code,
/// no `eval`, no `blob:`: MapLibre's CSP build runs its worker from a
/// same-origin file); data fetched from Socle and, when one is configured,
/// the map's tile server; images from Socle, `data:` (MapLibre's control
/// icons) and the tiles; forms posting to Socle only; never framed, except
/// the open-data widgets (see [`Embeddable`]).
pub fn csp(settings: &WebSettings) -> String {
    policy_with_ancestors(settings, "'none'")
}

/// The policy of an embeddable widget: the same, but any site may frame it.
pub fn embeddable_csp(settings: &WebSettings) -> String {
    policy_with_ancestors(settings, "*")
}

fn policy_with_ancestors(settings: &WebSettings, ancestors: &str) -> String {
    let tiles = settings.map.tile_origin().map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{tiles}; \
         connect-src 'self'{tiles}; worker-src 'self'; manifest-src 'self'; form-action 'self'; \
         frame-ancestors {ancestors}; base-uri 'none'"
    )
}

/// Put in a response's extensions by the open-data widget pages, and by them only:
/// those pages show public data and hold no form or secret, so other sites may
/// frame them. Every other response keeps refusing to be framed.
#[derive(Debug, Clone, Copy)]
pub struct Embeddable;
pub const PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=(), browsing-topics=()";
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Adds the security headers to every response, errors and fallbacks included.
pub async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let https = state.web.settings.https();
    let mut res = next.run(req).await;
    let embeddable = res.extensions().get::<Embeddable>().is_some();
    let policy = if embeddable { embeddable_csp(&state.web.settings) } else { csp(&state.web.settings) };
    let policy = HeaderValue::from_str(&policy).expect("the tile origin is checked to be a plain host");
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, policy);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Reset links carry a secret in their path: never send it anywhere.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("permissions-policy", HeaderValue::from_static(PERMISSIONS_POLICY));
    if !embeddable {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    res
}

/// 32 random bytes from the operating system, hex-encoded (256 bits).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    hex::encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https.
/// `max_age: None` makes a browser-session cookie; `Some(0)` deletes it.
pub fn set_cookie(settings: &WebSettings, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if settings.https() {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("cookie names and values are ASCII tokens")
}

/// A cookie name, with the `__Host-` prefix over https (the browser then
/// refuses it unless Secure, host-only and for the whole site).
pub fn cookie_name(settings: &WebSettings, base: &str) -> String {
    if settings.https() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The client's address: the peer, or the last address added by a trusted
/// proxy in `X-Forwarded-For`.
pub fn client_ip(parts_headers: &HeaderMap, peer: Option<SocketAddr>, settings: &WebSettings) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !settings.trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = parts_headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    // Walk from the nearest hop; the first address not a trusted proxy is the client.
    Some(forwarded.into_iter().rev().find(|ip| !settings.trusted_proxies.contains(ip)).unwrap_or(peer))
}

pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_cookies() {
        let a = random_secret();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_secret());
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &random_secret()));
        assert!(!same_secret("abc", "abcd"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; socle_session=xyz"));
        h.append(header::COOKIE, HeaderValue::from_static("lang=en"));
        assert_eq!(cookie(&h, "socle_session"), Some("xyz"));
        assert_eq!(cookie(&h, "lang"), Some("en"));
        assert_eq!(cookie(&h, "b"), None);
        let https = WebSettings { public_url: "https://x.fr".into(), ..Default::default() };
        assert_eq!(cookie_name(&https, "s"), "__Host-s");
        assert!(set_cookie(&https, "s", "v", Some(0)).to_str().unwrap().contains("Secure; Max-Age=0"));
        assert!(!set_cookie(&WebSettings::default(), "s", "v", None).to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn the_policy_allows_the_tile_server_only_when_configured() {
        let plain = csp(&WebSettings::default());
        assert!(plain.contains("connect-src 'self';") && plain.contains("script-src 'self';"));
        assert!(!plain.contains("http") && !plain.contains("blob:") && !plain.contains("unsafe"));
        let mut ign = WebSettings::default();
        ign.map.tiles_url = "https://data.geopf.fr/wmts?SERVICE=WMTS&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}".into();
        let with_tiles = csp(&ign);
        assert!(with_tiles.contains("img-src 'self' data: https://data.geopf.fr;"), "{with_tiles}");
        assert!(with_tiles.contains("connect-src 'self' https://data.geopf.fr;"), "{with_tiles}");
        assert!(with_tiles.contains("frame-ancestors 'none'"), "{with_tiles}");
        let widget = embeddable_csp(&ign);
        assert!(widget.contains("frame-ancestors *;"), "{widget}");
        assert_eq!(widget.replace("frame-ancestors *", "frame-ancestors 'none'"), with_tiles);
        ign.map.tiles_url = "https://evil.example; script-src *".into();
        assert_eq!(ign.map.tile_origin(), None);
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 198.51.100.7"));
        let peer = Some(SocketAddr::new(proxy, 4000));
        let plain = WebSettings::default();
        assert_eq!(client_ip(&h, peer, &plain), Some(proxy));
        let behind = WebSettings { trusted_proxies: vec![proxy], ..Default::default() };
        assert_eq!(client_ip(&h, peer, &behind), Some("198.51.100.7".parse().unwrap()));
    }
}
