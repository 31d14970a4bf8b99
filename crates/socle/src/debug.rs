//! Hidden helpers for crash tests: a writer that commits numbered batches
//! and says so on stdout, so a test can kill it at any moment and then
//! check that every acknowledged batch is whole and no other batch is partial.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::Subcommand;
use socle_domain::{
    AttributeName, Entity, EntityId, EntityType, NewOrganisation, Observation, ObservedValue, OfficialCode,
    OrganisationId, OrganisationKind,
};

use crate::config::Config;
use crate::server::open_store;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Write numbered batches of one observation per entity, printing `committed N` after each commit.
    WriteBatches {
        #[arg(long, default_value_t = 1_000_000)]
        batches: u64,
        #[arg(long, default_value_t = 50)]
        size: u32,
    },
}

pub const CRASH_ORGANISATION: &str = "crash-test";

pub fn crash_entity(i: u32) -> EntityId {
    EntityId::parse(&format!("urn:ngsi-ld:Device:crash-{i}")).expect("constant-shaped id")
}

/// Instant of batch `b`: batches are one second apart from a fixed origin.
pub fn batch_time(b: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default() + Duration::seconds(b as i64)
}

pub async fn run(config: &Config, command: DebugCommand) -> anyhow::Result<()> {
    match command {
        DebugCommand::WriteBatches { batches, size } => write_batches(config, batches, size).await,
    }
}

async fn write_batches(config: &Config, batches: u64, size: u32) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let org = OrganisationId::parse(CRASH_ORGANISATION)?;
    store
        .upsert_organisation(&NewOrganisation {
            id: org.clone(),
            kind: OrganisationKind::Commune,
            name: "Crash test".into(),
            code: OfficialCode::parse("99999")?,
            parent: None,
            population: None,
            timezone: chrono_tz::Europe::Paris,
            retention_days: None,
        })
        .await?;
    let ty = EntityType::parse("Device")?;
    let entities: Vec<Entity> = (0..size).map(|i| Entity::new(crash_entity(i), ty.clone(), org.clone())).collect();
    store.upsert_entities(&entities).await?;
    let attribute = AttributeName::parse("value")?;
    let mut out = std::io::stdout().lock();
    for b in 0..batches {
        let batch: Vec<Observation> = (0..size)
            .map(|i| Observation {
                entity: crash_entity(i),
                attribute: attribute.clone(),
                observed_at: batch_time(b),
                value: ObservedValue::number(b as f64).expect("finite"),
                unit_code: None,
            })
            .collect();
        store.write_observations(&batch).await.with_context(|| format!("batch {b}"))?;
        writeln!(out, "committed {b}")?;
        out.flush()?;
    }
    Ok(())
}
