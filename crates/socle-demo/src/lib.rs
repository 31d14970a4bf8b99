//! The demo territory of `socle demo`: the Syndicat mixte du Val de Lémance
//! and its three communes (Saint-Aubin-sur-Lémance, about 30,000
//! inhabitants; Montclar-en-Lémance, 5,000; Fontenelle-le-Haut, 800), plus
//! their lighting contractor, with about 1,500 equipped entities, 90
//! days of believable history and, for the energy meters and the weather
//! station, thirteen months of daily history (last year's comparison).
//!
//! Everything is a pure function of a fixed seed and of the anchor, the
//! moment the demo was first created (kept in the store under
//! [`ANCHOR_KEY`]): the scenario's events — a leak, a flood, a pollution
//! episode, a lighting fault, overflowing containers, a renovated school —
//! are placed relative to it, so a restart replays the same history and
//! re-generating any range gives identical points.
//!
//! ```no_run
//! # async fn demo(store: socle_storage::DynStore) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! let now = chrono::Utc::now();
//! let territory = socle_demo::setup(&store, now).await?;
//! let report = socle_demo::backfill(&store, &territory, now, 90).await?;
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! socle_demo::run_live(store.clone(), Arc::new(territory), report.until, std::time::Duration::from_secs(5), shutdown).await;
//! # Ok(()) }
//! ```

mod air;
mod backfill;
mod buildings;
mod calendar;
mod communes;
mod devices;
mod lighting;
mod live;
mod names;
mod noise;
mod outlines;
mod parking;
mod river;
mod rules;
mod scenario;
mod series;
mod territory;
mod waste;
mod water;
mod weather;

pub use backfill::{backfill, backfill_last_year, setup, BackfillReport, ANCHOR_KEY, LAST_YEAR_DAYS};
pub use devices::{application_id, uplinks, DemoDevice};
pub use live::{run_live, LiveGenerator, LiveReport, ObservationSink};
pub use rules::rules;
pub use scenario::{Scenario, RENOVATION_SAVINGS};
pub use series::{Cadence, SeriesSpec};
pub use territory::{Territory, PARTNER_ID, SYNDICATE_ID};

#[cfg(test)]
mod tests;
