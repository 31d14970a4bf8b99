//! Socle's alert rules: the pure core that turns observations into alerts.
//!
//! No I/O, no database and no clock of its own: time comes in with each call
//! (observation times, tick times), so the same code runs live, in tests, and in the
//! rule editor's preview over 30 days of history.
//!
//! - [`Rule`]: what to watch (one entity, a type, a group, within one organisation),
//!   the condition ([`RuleKind`]: threshold, silence, battery, rate of change, night
//!   leak, fill level, occupancy calendar), a [`Severity`], a resolve delay and a
//!   [`FlapGuard`].
//! - [`Evaluation`]: the state machine of one (rule, entity), serialisable; it emits
//!   [`Transition`]s with messages in French and English.
//! - [`Engine`]: all active rules, indexed by (entity, attribute) and (type,
//!   attribute), with a [`Snapshot`] to persist across restarts.
//! - [`preview()`]: how often a rule would have fired over a history.
//!
//! Wiring: after a batch of observations is stored, pass each to [`Engine::observe`];
//! call [`Engine::tick`] from a timer (every minute, or at [`Engine::next_deadline`]);
//! save [`Engine::snapshot`] now and then and at shutdown, and rebuild with
//! [`Engine::restore`] at start-up, then [`Engine::track`] the entities that silence
//! rules watch. The [`Event`]s go to the alert store (one open alert per rule and
//! entity, by construction) and to notifications.

mod engine;
mod error;
mod evaluation;
mod fill;
mod leak;
mod localtime;
mod message;
mod occupancy;
mod preview;
mod rate;
mod rule;
mod silence;
mod threshold;

pub use engine::{Engine, Event, SavedEvaluation, Snapshot};
pub use error::RuleError;
pub use evaluation::{Evaluation, OpenAlert, ResolveReason, Transition};
pub use fill::Fill;
pub use leak::Leak;
pub use localtime::LocalSpan;
pub use message::Message;
pub use occupancy::{Calendar, Occupancy, Week};
pub use preview::{preview, Preview, PreviewAlert, MAX_LISTED};
pub use rate::{Rate, Trend};
pub use rule::{EntityRef, FlapGuard, Label, Rule, RuleId, RuleKind, RuleSpec, Scale, Severity, Target, MAX_SECONDS};
pub use silence::Silence;
pub use threshold::{BatteryLow, Direction, Threshold};
