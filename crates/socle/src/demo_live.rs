//! The demo's live data enters like real data: each tick's observations
//! become ChirpStack v4 uplinks posted to this server's own
//! `/ingest/chirpstack` endpoint with each organisation's ingestion token —
//! the path (HTTP, token, frame identity, mapping, device health, commit feed
//! and the alert rules behind it) that a network server's integration takes.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Context;
use chrono::Utc;
use socle_demo::DemoDevice;
use socle_domain::{EntityId, Observation, OrganisationId, TokenKind, TokenScope, WriteOutcome};
use socle_storage::DynStore;

use crate::admin::issue_token;

const LABEL: &str = "démo : capteurs en direct / demo live sensors";
/// Uplinks posted at once: a dusk burst (whole streets switching) goes out
/// in parallel without flooding the server's ingest slots.
const PARALLEL: usize = 8;

pub struct UplinkSink {
    client: reqwest::Client,
    url: String,
    tokens: HashMap<OrganisationId, String>,
    devices: HashMap<EntityId, DemoDevice>,
}

impl UplinkSink {
    /// Issues the ingestion tokens (those of a previous run are revoked).
    pub async fn new(store: &DynStore, server: SocketAddr, devices: Vec<DemoDevice>) -> anyhow::Result<Self> {
        for t in store.list_tokens(None).await? {
            if t.label == LABEL && t.revoked_at.is_none() {
                store.revoke_token(t.id, Utc::now()).await?;
            }
        }
        let mut tokens = HashMap::new();
        for d in &devices {
            let org = &d.device.organisation;
            if !tokens.contains_key(org) {
                let (_, secret) = issue_token(store, TokenKind::Ingestion, None, org, TokenScope::Write, 30, LABEL)
                    .await
                    .with_context(|| format!("ingestion token of {org}"))?;
                tokens.insert(org.clone(), secret);
            }
        }
        // A server listening on every interface is reached on loopback.
        let host = match server.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
            ip if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        Ok(Self {
            client: reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?,
            url: format!("http://{host}:{}/ingest/chirpstack?event=up", server.port()),
            tokens,
            devices: devices.into_iter().map(|d| (d.device.entity.clone(), d)).collect(),
        })
    }
}

async fn post(
    client: reqwest::Client,
    url: String,
    token: String,
    name: String,
    body: Vec<u8>,
) -> anyhow::Result<WriteOutcome> {
    let response = client
        .post(&url)
        .header("X-Socle-Token", token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .context("posting a demo uplink")?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("uplink of {name} refused ({status}): {}", answer["detail"]);
    }
    let count = |k: &str| answer[k].as_u64().unwrap_or(0);
    Ok(WriteOutcome { stored: count("observations"), duplicates: count("duplicateObservations") })
}

impl socle_demo::ObservationSink for UplinkSink {
    async fn accept(&mut self, batch: &[Observation]) -> anyhow::Result<WriteOutcome> {
        let frames = socle_demo::uplinks(&self.devices, batch);
        let mut outcome = WriteOutcome::default();
        let mut refused = None;
        for chunk in frames.chunks(PARALLEL) {
            let mut posts = tokio::task::JoinSet::new();
            for (device, body) in chunk {
                let token = self.tokens[&device.device.organisation].clone();
                let name = device.device.name.clone();
                posts.spawn(post(self.client.clone(), self.url.clone(), token, name, body.clone()));
            }
            while let Some(result) = posts.join_next().await {
                match result.map_err(anyhow::Error::from).and_then(|r| r) {
                    Ok(o) => outcome += o,
                    Err(e) => refused = Some(e),
                }
            }
        }
        // Everything is offered again at the next tick; what was stored is
        // then recognised by its frame id and not stored twice.
        match refused {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }
}
