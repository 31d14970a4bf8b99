//! Downlinks: commands Socle sends to a device through its network server
//! (ChirpStack, The Things Stack), and how far each one got.

use serde::{Deserialize, Serialize};

/// Where a downlink stands. It only moves forward (a late "transmitted"
/// after "acknowledged" changes nothing); `Acknowledged` and `Failed` end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownlinkStatus {
    /// Stored by Socle, not yet handed to the network server.
    Queued,
    /// Handed to the network server (its broker acknowledged the command).
    Sent,
    /// A gateway transmitted it (ChirpStack `txack`, TTN `down/sent`).
    Transmitted,
    /// The device acknowledged a confirmed downlink (ChirpStack `ack`, TTN `down/ack`).
    Acknowledged,
    /// Refused or lost: no route to the device, a negative or missing
    /// acknowledgement, a network-server error.
    Failed,
}

impl DownlinkStatus {
    pub const ALL: [Self; 5] = [Self::Queued, Self::Sent, Self::Transmitted, Self::Acknowledged, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Transmitted => "transmitted",
            Self::Acknowledged => "acknowledged",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether nothing can follow.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Acknowledged | Self::Failed)
    }

    /// The statuses a downlink may be in for `self` to be recorded: strictly
    /// earlier ones, so events arriving out of order never move it back.
    pub fn may_follow(self) -> &'static [Self] {
        match self {
            Self::Queued => &[],
            Self::Sent => &[Self::Queued],
            Self::Transmitted => &[Self::Queued, Self::Sent],
            Self::Acknowledged | Self::Failed => &[Self::Queued, Self::Sent, Self::Transmitted],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        for s in DownlinkStatus::ALL {
            assert_eq!(DownlinkStatus::parse(s.as_str()), Some(s));
            assert!(!s.may_follow().contains(&s), "{s:?} cannot follow itself");
            for earlier in s.may_follow() {
                assert!(!earlier.is_final());
                assert!(!s.may_follow().is_empty() && !earlier.may_follow().contains(&s));
            }
        }
        assert!(DownlinkStatus::Transmitted.may_follow().contains(&DownlinkStatus::Sent));
        assert!(!DownlinkStatus::Transmitted.may_follow().contains(&DownlinkStatus::Acknowledged));
    }
}
