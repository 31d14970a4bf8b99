//! Integration tests of socle-ingest, one binary (linking QuickJS once).

mod chirpstack;
mod codec;
mod device;
mod generic;
mod mapping;
mod props;
mod ttn;

/// The reference bodies of `shared/reference/payloads`, copied into the crate.
pub fn body(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A reference body as JSON, to derive variants from.
pub fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&body(name)).expect("reference body is JSON")
}

pub fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialisable")
}
