//! "No data for a duration": a device that stopped talking (battery dead, radio
//! masked, sensor stolen). Only the clock can reveal it, so this rule fires from
//! ticks, and the first observation that arrives again resolves it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::AttributeName;

use crate::localtime::after;
use crate::rule::{check_seconds, Status};
use crate::RuleError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Silence {
    /// The attribute that must keep arriving; `None`: any attribute of the entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<AttributeName>,
    /// Allowed time without data (at least a minute).
    pub after_seconds: u32,
}

impl Silence {
    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        check_seconds("condition.afterSeconds", self.after_seconds, 60)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SilenceState {
    /// Last data, or when watching started if nothing came yet: a device that never
    /// spoke since it was installed is silent too.
    last_seen: DateTime<Utc>,
}

impl SilenceState {
    pub(crate) fn new(start: DateTime<Utc>) -> Self {
        Self { last_seen: start }
    }

    pub(crate) fn observe(&mut self, t: DateTime<Utc>) {
        self.last_seen = self.last_seen.max(t);
    }

    pub(crate) fn status(&self, spec: &Silence, now: DateTime<Utc>) -> Status {
        if after(self.last_seen, spec.after_seconds) <= now {
            Status::Active { since: self.last_seen, value: None }
        } else {
            Status::Clear
        }
    }

    pub(crate) fn deadline(&self, spec: &Silence, later_than: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(after(self.last_seen, spec.after_seconds)).filter(|d| *d > later_than)
    }
}
