//! Web Push without a third-party push library: message encryption per
//! RFC 8291 (`aes128gcm` content coding of RFC 8188) and VAPID
//! authentication per RFC 8292 (an ES256 JWT), on RustCrypto primitives.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};

/// The record size announced in the header; one record carries the whole message.
const RECORD_SIZE: u32 = 4096;
/// Push services accept at least 4,096 bytes of body; header (86) and tag (16) come off it.
pub const MAX_PLAINTEXT: usize = 3993;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PushError {
    #[error("the subscription's key is not a P-256 public key")]
    BadPublicKey,
    #[error("the subscription's auth secret is not 16 bytes")]
    BadAuth,
    #[error("the message is too long for one push record")]
    TooLong,
    #[error("the message cannot be decrypted")]
    Decrypt,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Base64url with or without padding (browsers send both).
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random generator is available");
    b
}

fn random_secret() -> SecretKey {
    loop {
        // A random 32-byte string is a valid scalar except with negligible probability.
        if let Ok(k) = SecretKey::from_slice(&random::<32>()) {
            return k;
        }
    }
}

fn uncompressed(k: &PublicKey) -> Vec<u8> {
    k.to_sec1_point(false).as_bytes().to_vec()
}

/// HKDF-SHA256 extract then expand.
fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, out).expect("output lengths used here are valid for HKDF");
}

/// Keys shared by sender and receiver (RFC 8291 section 3.4, RFC 8188 section 2.2).
fn derive(ecdh_secret: &[u8], auth: &[u8], ua_public: &[u8], as_public: &[u8], salt: &[u8]) -> ([u8; 16], [u8; 12]) {
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    hkdf(auth, ecdh_secret, &key_info, &mut ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek);
    hkdf(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce);
    (cek, nonce)
}

/// Encrypts `plaintext` for a user agent's key and auth secret with the given
/// ephemeral key and salt (tests pass the RFC's; [`encrypt`] draws fresh ones).
pub fn encrypt_with(
    plaintext: &[u8],
    ua_public: &[u8],
    auth: &[u8],
    as_secret: &SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, PushError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(PushError::TooLong);
    }
    if auth.len() != 16 {
        return Err(PushError::BadAuth);
    }
    let ua = PublicKey::from_sec1_bytes(ua_public).map_err(|_| PushError::BadPublicKey)?;
    let as_public = uncompressed(&as_secret.public_key());
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua.as_affine());
    let (cek, nonce) = derive(shared.raw_secret_bytes(), auth, &uncompressed(&ua), &as_public, salt);
    let mut record = plaintext.to_vec();
    record.push(0x02); // the last (and only) record, no padding
    let cipher = Aes128Gcm::new(&cek.into());
    let sealed = cipher.encrypt(&Nonce::from(nonce), record.as_slice()).map_err(|_| PushError::TooLong)?;
    let mut out = Vec::with_capacity(86 + sealed.len());
    out.extend_from_slice(salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(as_public.len() as u8);
    out.extend_from_slice(&as_public);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Encrypts with a fresh ephemeral key and salt, as every push must.
pub fn encrypt(plaintext: &[u8], ua_public: &[u8], auth: &[u8]) -> Result<Vec<u8>, PushError> {
    encrypt_with(plaintext, ua_public, auth, &random_secret(), &random::<16>())
}

/// What a browser does with a pushed body: for the tests' push service, and
/// to check the protocol end to end.
pub fn decrypt(body: &[u8], ua_secret: &SecretKey, auth: &[u8]) -> Result<Vec<u8>, PushError> {
    if body.len() < 21 {
        return Err(PushError::Decrypt);
    }
    let (salt, rest) = body.split_at(16);
    let idlen = rest[4] as usize;
    let rest = &rest[5..];
    if rest.len() < idlen {
        return Err(PushError::Decrypt);
    }
    let (as_public, sealed) = rest.split_at(idlen);
    let sender = PublicKey::from_sec1_bytes(as_public).map_err(|_| PushError::Decrypt)?;
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), sender.as_affine());
    let ua_public = uncompressed(&ua_secret.public_key());
    let (cek, nonce) = derive(shared.raw_secret_bytes(), auth, &ua_public, as_public, salt);
    let mut record =
        Aes128Gcm::new(&cek.into()).decrypt(&Nonce::from(nonce), sealed).map_err(|_| PushError::Decrypt)?;
    while record.last() == Some(&0) {
        record.pop();
    }
    match record.pop() {
        Some(0x02) => Ok(record),
        _ => Err(PushError::Decrypt),
    }
}

/// The application server's VAPID key pair (RFC 8292). Browsers are given
/// the public key (`applicationServerKey`); push services check the JWT.
#[derive(Clone)]
pub struct VapidKey {
    secret: SecretKey,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VapidKey({})", self.public_key())
    }
}

impl VapidKey {
    pub fn generate() -> Self {
        Self { secret: random_secret() }
    }

    /// From the 32-byte private scalar, base64url (how it is stored).
    pub fn from_private(b64url: &str) -> Option<Self> {
        SecretKey::from_slice(&unb64(b64url.trim())?).ok().map(|secret| Self { secret })
    }

    pub fn private_b64(&self) -> String {
        b64(&self.secret.to_bytes())
    }

    /// The uncompressed public point, base64url: `applicationServerKey` and the `k=` parameter.
    pub fn public_key(&self) -> String {
        b64(&uncompressed(&self.secret.public_key()))
    }

    /// The `Authorization` header for a push to `endpoint`: `vapid t=<JWT>, k=<public key>`,
    /// the JWT's audience being the endpoint's origin, valid until `expires` (unix seconds).
    pub fn authorization(&self, endpoint: &str, subject: &str, expires: i64) -> Option<String> {
        let url = reqwest::Url::parse(endpoint).ok()?;
        let audience = url.origin().ascii_serialization();
        let header = b64(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = b64(serde_json::json!({"aud": audience, "exp": expires, "sub": subject}).to_string().as_bytes());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = SigningKey::from(&self.secret).sign(signing_input.as_bytes());
        Some(format!("vapid t={signing_input}.{}, k={}", b64(&signature.to_bytes()), self.public_key()))
    }
}

/// Checks a VAPID `Authorization` header as a push service does: the
/// signature against `k`, and returns the claims.
pub fn verify_vapid(header: &str) -> Option<(String, serde_json::Value)> {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;
    let rest = header.strip_prefix("vapid ")?;
    let (mut t, mut k) = (None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("k", v)) => k = Some(v.to_owned()),
            _ => {}
        }
    }
    let (t, k) = (t?, k?);
    let (signing_input, sig) = t.rsplit_once('.')?;
    let key = VerifyingKey::from_sec1_bytes(&unb64(&k)?).ok()?;
    let sig = Signature::from_slice(&unb64(sig)?).ok()?;
    key.verify(signing_input.as_bytes(), &sig).ok()?;
    let (header, claims) = signing_input.split_once('.')?;
    let header: serde_json::Value = serde_json::from_slice(&unb64(header)?).ok()?;
    if header["alg"] != "ES256" {
        return None;
    }
    Some((k, serde_json::from_slice(&unb64(claims)?).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8291, Appendix A.
    const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn rfc8291_appendix_a_is_reproduced_exactly() {
        let as_secret = SecretKey::from_slice(&unb64(AS_PRIVATE).unwrap()).unwrap();
        assert_eq!(b64(&uncompressed(&as_secret.public_key())), AS_PUBLIC);
        let ua = PublicKey::from_sec1_bytes(&unb64(UA_PUBLIC).unwrap()).unwrap();
        let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua.as_affine());
        assert_eq!(b64(shared.raw_secret_bytes()), ECDH_SECRET);
        let salt: [u8; 16] = unb64(SALT).unwrap().try_into().unwrap();
        let body =
            encrypt_with(PLAINTEXT.as_bytes(), &unb64(UA_PUBLIC).unwrap(), &unb64(AUTH).unwrap(), &as_secret, &salt)
                .unwrap();
        assert_eq!(b64(&body), BODY);
        // And the user agent's side opens it.
        let ua_secret = SecretKey::from_slice(&unb64(UA_PRIVATE).unwrap()).unwrap();
        assert_eq!(decrypt(&body, &ua_secret, &unb64(AUTH).unwrap()).unwrap(), PLAINTEXT.as_bytes());
    }

    #[test]
    fn fresh_encryptions_differ_and_decrypt() {
        let ua = random_secret();
        let auth = random::<16>();
        let pub_ua = uncompressed(&ua.public_key());
        let a = encrypt(b"bonjour", &pub_ua, &auth).unwrap();
        let b = encrypt(b"bonjour", &pub_ua, &auth).unwrap();
        assert_ne!(a, b);
        assert_eq!(decrypt(&a, &ua, &auth).unwrap(), b"bonjour");
        assert_eq!(decrypt(&a[..40], &ua, &auth), Err(PushError::Decrypt));
        assert_eq!(encrypt(b"x", b"not a key", &auth), Err(PushError::BadPublicKey));
        assert_eq!(encrypt(&[0; MAX_PLAINTEXT + 1], &pub_ua, &auth), Err(PushError::TooLong));
    }

    #[test]
    fn vapid_jwt_is_es256_signed_for_the_endpoint_origin() {
        let key = VapidKey::generate();
        let again = VapidKey::from_private(&key.private_b64()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let h = key
            .authorization("https://push.example.net:8443/wpush/v2/abc", "mailto:ops@socle.fr", 1_800_000_000)
            .unwrap();
        let (k, claims) = verify_vapid(&h).unwrap();
        assert_eq!(k, key.public_key());
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["exp"], 1_800_000_000);
        assert_eq!(claims["sub"], "mailto:ops@socle.fr");
        // Another key's signature does not verify.
        let other = VapidKey::generate().public_key();
        let forged = format!("{}k={other}", &h[..h.find("k=").unwrap()]);
        assert!(verify_vapid(&forged).is_none());
    }
}
