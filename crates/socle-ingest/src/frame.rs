//! The identity of an uplink frame, so that storage keeps each frame once.
//!
//! One radio frame reaches Socle several times:
//!
//! - **gateway duplicates**: every gateway in range hears it. The network
//!   server merges them before its integration fires, but a frame heard late
//!   by a gateway can still produce a second event;
//! - **network-server retries**: an HTTP integration that got no `2xx` in time
//!   sends the same body again; an MQTT broker redelivers a QoS 1 message;
//! - **replays after restart**: a persistent MQTT session or a re-played
//!   integration log after Socle restarts;
//! - **device retransmissions**: a confirmed uplink repeated with the same
//!   frame counter (network servers usually drop them, not always).
//!
//! Two keys cover these, and [`FrameKey::same_frame`] is the rule storage applies:
//!
//! 1. the network server's own event id ([`FrameKey::ns_id`]): ChirpStack's
//!    `deduplicationId`, The Things Stack's `as:up:` correlation id. Retries and
//!    replays carry it unchanged;
//! 2. the LoRaWAN counter within a session: `(dev_eui, session, f_cnt)`. The
//!    frame counter alone is **not** enough: it restarts at 0 when a device
//!    re-joins (or an ABP device reboots), so `(dev_eui, f_cnt)` would take new
//!    frames for duplicates and lose them. The session (TTN `session_key_id`,
//!    ChirpStack `devAddr`, which the network server re-assigns at each join)
//!    tells the two apart. Without a session this key is not used.
//!
//! When neither key exists (a generic device), storage still refuses a second
//! point of the same series at the same instant.

use serde::{Deserialize, Serialize};

use crate::device::DevEui;

/// The dedup identity of one uplink. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameKey {
    pub dev_eui: DevEui,
    /// LoRaWAN uplink frame counter (`FCntUp`), when the frame has one.
    pub f_cnt: Option<u32>,
    /// The LoRaWAN session the counter belongs to: TTN `session_key_id`,
    /// ChirpStack `devAddr`.
    pub session: Option<String>,
    /// The network server's id for this (deduplicated) uplink: ChirpStack
    /// `deduplicationId`, TTN `as:up:…` correlation id.
    pub ns_id: Option<String>,
}

impl FrameKey {
    /// `dev_eui/session/f_cnt`, the counter key, when both parts are known.
    /// Suitable for a unique index.
    pub fn counter_key(&self) -> Option<String> {
        match (&self.session, self.f_cnt) {
            (Some(s), Some(f)) => Some(format!("{}/{s}/{f}", self.dev_eui)),
            _ => None,
        }
    }

    /// `dev_eui/ns_id`, the network-server key, when known. Suitable for a unique index.
    pub fn ns_key(&self) -> Option<String> {
        self.ns_id.as_ref().map(|id| format!("{}/{id}", self.dev_eui))
    }

    /// Whether `other` is the same radio frame (so must not be stored twice).
    pub fn same_frame(&self, other: &FrameKey) -> bool {
        let same = |a: Option<String>, b: Option<String>| matches!((a, b), (Some(a), Some(b)) if a == b);
        same(self.ns_key(), other.ns_key()) || same(self.counter_key(), other.counter_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f_cnt: u32, session: Option<&str>, ns: Option<&str>) -> FrameKey {
        FrameKey {
            dev_eui: DevEui::parse("a84041000181c7e2").unwrap(),
            f_cnt: Some(f_cnt),
            session: session.map(str::to_owned),
            ns_id: ns.map(str::to_owned),
        }
    }

    #[test]
    fn same_frame_rules() {
        // A retry: same ns id.
        assert!(key(7, Some("s1"), Some("d1")).same_frame(&key(7, Some("s1"), Some("d1"))));
        // A late gateway duplicate with a new dedup id: same counter in the same session.
        assert!(key(7, Some("s1"), Some("d1")).same_frame(&key(7, Some("s1"), Some("d2"))));
        // A re-join restarted the counter: a new session, a new frame.
        assert!(!key(7, Some("s1"), Some("d1")).same_frame(&key(7, Some("s2"), Some("d2"))));
        // Without session the counter alone proves nothing.
        assert!(!key(7, None, Some("d1")).same_frame(&key(7, None, Some("d2"))));
        assert!(!key(7, None, None).same_frame(&key(7, None, None)));
        assert_eq!(key(7, Some("s1"), None).counter_key().as_deref(), Some("a84041000181c7e2/s1/7"));
        assert_eq!(key(7, None, Some("d1")).ns_key().as_deref(), Some("a84041000181c7e2/d1"));
    }
}
