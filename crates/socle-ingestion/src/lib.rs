//! The ingestion pipeline: what the HTTP endpoints (and MQTT subscriptions)
//! call with a body, to get it stored exactly once or refused with a reason.
//!
//! ```text
//! Input (organisation, source, body, received at)
//!   → size check → parse (socle-ingest: ChirpStack, TTN, generic)
//!   → device lookup (the device must belong to the input's organisation)
//!   → decoded object (the network server's, or the device model's codec, in QuickJS on the blocking pool)
//!   → mappings (socle-ingest) with the entity's properties
//!   → Devices::write_frames: frame identity + observations + rollups + health, one transaction
//! ```
//!
//! Every refusal of a body (malformed, unknown device, codec error or
//! timeout, value out of range, oversized) records a dead letter before the
//! answer is given, so it can be inspected and replayed once fixed. A caller
//! may acknowledge its sender when the result is `Ok` or a refusal
//! ([`Rejection::is_final`]); on [`Rejection::Overloaded`] or
//! [`Rejection::Unavailable`] nothing was written and the sender must retry.
//!
//! A bounded number of ingests run at once; when they are all busy for
//! longer than [`PipelineConfig::queue_wait`], the next one is refused with
//! `Overloaded` and a retry delay, never dropped.

pub mod downlinks;
pub mod mqtt;
mod outcome;
mod pipeline;
pub mod registry;
mod source;

pub use downlinks::{DownlinkRefused, DownlinkRequest, DownlinkSender};
pub use outcome::{Accepted, IngestObserver, Outcome, Refusal, Rejection};
pub use pipeline::{Pipeline, PipelineConfig};
pub use source::{Input, Source};
