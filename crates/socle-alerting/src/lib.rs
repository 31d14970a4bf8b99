//! Socle's alerting service: the pure rule engine of `socle-rules`, wired to storage
//! and to the commit feed.
//!
//! - [`start`] subscribes to the [`CommitFeed`](socle_storage::CommitFeed) as a
//!   *reliable* consumer (every committed batch, backpressure instead of loss),
//!   restores the engine from its saved state, re-evaluates the observations stored
//!   since its watermark, then evaluates each batch as it comes, ticks for rules
//!   that fire without data, and saves its state now and then and at shutdown.
//! - Transitions are recorded in one transaction per batch; storage makes them
//!   idempotent (see `socle_storage::alerts`), so a replay after a crash opens no
//!   duplicate.
//! - Every change of an alert (engine or person) goes out on a broadcast of
//!   [`AlertChange`] for notifications and live pages ([`AlertingHandle::subscribe`]).
//! - [`targets`] and [`preview`] serve the rule editor; [`ngsi`] renders an alert as
//!   a Smart Data Models `Alert` entity.

mod error;
pub mod ngsi;
mod service;
mod targets;

pub use error::AlertingError;
pub use service::{start, AlertingConfig, AlertingHandle};
pub use socle_storage::{AlertChange, AlertEventKind as ChangeKind};
pub use targets::{preview, rule_from_record, targets, PREVIEW_DAYS};
