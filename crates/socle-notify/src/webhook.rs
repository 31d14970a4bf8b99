//! Webhook signatures.
//!
//! Every attempt of a delivery is a `POST` of the same JSON body with:
//! - `Socle-Delivery: <uuid>`: the delivery id, the same on every attempt:
//!   a receiver that already processed it answers 2xx and does nothing;
//! - `Socle-Signature: t=<unix seconds>,v1=<hex>`, where `v1` is
//!   HMAC-SHA256(secret, `"<t>.<body>"`). Receivers recompute it, compare in
//!   constant time, and refuse a `t` too far from their clock (replays).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const DELIVERY_HEADER: &str = "Socle-Delivery";
pub const SIGNATURE_HEADER: &str = "Socle-Signature";

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Socle-Signature` header value for `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

/// Checks a `Socle-Signature` header (what a receiver does); returns its timestamp.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> Option<i64> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (t, v1) = (t?, v1?);
    mac(secret, t, body).verify_slice(&v1).ok().map(|_| t)
}

/// A new webhook secret: 32 random bytes, hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    format!("whsec_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let h = signature("k", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify("k", &h, b"{\"a\":1}"), Some(1_700_000_000));
        assert_eq!(verify("k", &h, b"{\"a\":2}"), None);
        assert_eq!(verify("other", &h, b"{\"a\":1}"), None);
        assert_eq!(verify("k", &h.replace("t=1700000000", "t=1700000001"), b"{\"a\":1}"), None);
        assert_eq!(verify("k", "garbage", b""), None);
        // RFC 4231 test case 2 shape: HMAC-SHA256 over "<t>.<body>" is plain HMAC.
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
