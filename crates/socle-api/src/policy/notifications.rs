//! The notification side of the authorization point: whether a person may be
//! told about an alert. The same audience a web session of that person would
//! have (all memberships, a syndicate's admin reaching its communes), applied
//! to the alert's entity by the rule of alerts (`policy/alerts.rs`: an alert
//! is never public), so a notification never tells anyone what they could
//! not open.

use std::sync::Arc;

use async_trait::async_trait;
use socle_domain::{TokenScope, UserId};
use socle_notify::{AlertNotice, Visibility};
use socle_storage::DynStore;

use super::{AppState, Caller, Principal};

struct PolicyVisibility {
    store: DynStore,
}

#[async_trait]
impl Visibility for PolicyVisibility {
    async fn may_see(&self, user: UserId, notice: &AlertNotice) -> bool {
        let Ok(Some(user)) = self.store.user(user).await else { return false };
        if user.disabled {
            return false;
        }
        let Ok(orgs) = self.store.list_organisations().await else { return false };
        let caller = Caller {
            principal: Principal::Session { user: user.id },
            memberships: user.memberships,
            scope: Some(TokenScope::Admin),
            parents: Arc::new(orgs.into_iter().map(|o| (o.id, o.parent)).collect()),
            from_loopback: false,
            ip: None,
            session: None,
        };
        match self.store.entity(&notice.entity_id).await {
            // The notice must be about an entity of the organisation it names, and
            // tell only those who may open the alert (alerts are never public).
            Ok(Some(e)) => {
                e.organisation == notice.organisation
                    && caller.sees_alert_of(&e.organisation, e.visibility, &e.shared_with)
            }
            _ => false,
        }
    }
}

impl AppState {
    /// The visibility check notifications apply to every subscriber and escalation target.
    pub fn notification_visibility(&self) -> Arc<dyn Visibility> {
        Arc::new(PolicyVisibility { store: self.store.clone() })
    }
}
