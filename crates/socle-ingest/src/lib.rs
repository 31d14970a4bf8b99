//! The pure core of IoT ingestion: what the HTTP and MQTT endpoints call.
//!
//! No network, no database, no clock: bodies in, typed events out.
//!
//! ```text
//! body ─ chirpstack::parse / ttn::parse_uplink ─→ NetworkEvent::Uplink ─┐
//!                                   (payload bytes)                     │
//!        codec::Codec::decode_uplink (QuickJS, sandboxed) ─→ decoded ───┤ or the server's own `decoded`
//! body ─ generic::parse ─→ GenericMessage.values ───────────────────────┤
//!                                                                       ↓
//!                    mapping::apply(device.mappings) ─→ Vec<Observation> + per-field errors
//! ```
//!
//! Every input is bounded ([`MAX_BODY_BYTES`], codec limits, CSV size,
//! expression length) and every failure is a typed error that names the
//! place of the problem. Nothing here panics on input.

pub mod chirpstack;
pub mod codec;
pub mod device;
pub mod downlink;
mod error;
pub mod event;
pub mod expr;
pub mod frame;
pub mod generic;
mod json;
pub mod mapping;
pub mod ttn;

pub use codec::{run_vectors, Codec, CodecError, CodecLimits, Decoded, ModelId, Report, UplinkInput};
pub use device::{import_csv, DevEui, DevEuiError, Device, DeviceImport, LineError};
pub use error::IngestError;
pub use event::{LogLevel, NetworkEvent, Radio, Uplink};
pub use expr::{ExprError, Expression};
pub use frame::FrameKey;
pub use generic::{DeviceKey, GenericMessage};
pub use json::MAX_BODY_BYTES;
pub use mapping::{FieldError, FieldPath, FieldProblem, Mapped, Mapping, MappingContext, Transform, ValueKind};
