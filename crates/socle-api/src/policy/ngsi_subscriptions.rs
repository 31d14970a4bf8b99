//! NGSI-LD subscriptions at the authorization point.
//!
//! A subscription belongs to an organisation (the tenant named, else the
//! token's organisation, as for entity writes) and to the person who made
//! it. Staff of the organisation (administrators, with those of a parent,
//! and agents: `Caller::operated`) read its subscriptions; changing them
//! needs the `write` scope. A subscription the caller may not read answers
//! `ResourceNotFound` like an absent one. Under `NGSILD-Tenant`, only that
//! organisation's subscriptions exist.
//!
//! What a subscription notifies is what its owner may see *now*: the same
//! audience a session of that person would have, cut down to the memberships
//! that reach the subscription's organisation (as a token bound to it), and
//! nothing once the person no longer operates that organisation or is
//! disabled. The matcher asks [`AppState::ngsi_subscription_visibility`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{Role, TokenScope};
use socle_ngsi::subscription::{DeliveryStatus, Subscription};
use socle_ngsi::NgsiError;
use socle_ngsi_notify::{Viewer, Visibility};
use socle_storage::{DynStore, NgsiDeliveryCounters, StoreError, StoredNgsiSubscription};

use super::ngsi::ngsi_store_error;
use super::{AppState, Caller, NgsiScoped, Principal};

fn not_found(id: &str) -> NgsiError {
    NgsiError::ResourceNotFound(format!("Subscription {id} not found"))
}

/// A stored subscription as the API shows it.
pub struct SubscriptionView {
    pub subscription: Subscription,
    pub status: DeliveryStatus,
}

fn view(s: StoredNgsiSubscription) -> Result<SubscriptionView, NgsiError> {
    let subscription = serde_json::from_value(s.spec).map_err(|e| {
        tracing::error!(subscription = s.id, error = %e, "stored subscription cannot be read");
        NgsiError::InternalError("A stored subscription cannot be read; the incident is logged.".into())
    })?;
    let c = s.counters;
    let status = DeliveryStatus {
        times_sent: c.times_sent,
        times_failed: c.times_failed,
        last_notification: c.last_notification,
        last_success: c.last_success,
        last_failure: c.last_failure,
    };
    Ok(SubscriptionView { subscription, status })
}

impl NgsiScoped {
    fn subscription_readable(&self, s: &StoredNgsiSubscription) -> bool {
        self.caller.operated(TokenScope::Read).contains(&s.organisation)
            && self.tenant.as_ref().is_none_or(|t| t == &s.organisation)
    }

    fn refuse_subscriptions(&self) -> NgsiError {
        if self.caller.is_authenticated() {
            NgsiError::Forbidden("Your rights do not allow managing subscriptions here".into())
        } else {
            NgsiError::Unauthorized("Subscriptions need an API token or a session of the organisation's staff".into())
        }
    }

    /// Subscriptions the caller may read, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionView>, NgsiError> {
        let mut orgs = self.caller.operated(TokenScope::Read);
        if let Some(t) = &self.tenant {
            orgs.retain(|o| o == t);
        }
        if orgs.is_empty() {
            return if self.caller.is_authenticated() { Ok(Vec::new()) } else { Err(self.refuse_subscriptions()) };
        }
        let rows = self.store.list_ngsi_subscriptions(Some(&orgs)).await.map_err(ngsi_store_error)?;
        rows.into_iter().map(view).collect()
    }

    /// One subscription, or `ResourceNotFound` when absent or not the caller's to read.
    pub async fn subscription(&self, id: &str) -> Result<SubscriptionView, NgsiError> {
        view(self.readable_subscription(id).await?)
    }

    async fn readable_subscription(&self, id: &str) -> Result<StoredNgsiSubscription, NgsiError> {
        if !self.caller.is_authenticated() {
            return Err(self.refuse_subscriptions());
        }
        let s = self.store.ngsi_subscription(id).await.map_err(ngsi_store_error)?;
        s.filter(|s| self.subscription_readable(s)).ok_or_else(|| not_found(id))
    }

    /// Stores a new subscription in the organisation writes go to.
    pub async fn create_subscription(&self, sub: &Subscription, now: DateTime<Utc>) -> Result<(), NgsiError> {
        let organisation = self.target_organisation().map_err(|e| match e {
            NgsiError::BadRequestData(_) => e,
            _ => self.refuse_subscriptions(),
        })?;
        let owner = self.caller.user().ok_or_else(|| self.refuse_subscriptions())?;
        let stored = StoredNgsiSubscription {
            id: sub.id.clone(),
            organisation,
            tenant_only: self.tenant.is_some(),
            owner,
            spec: serde_json::to_value(sub).map_err(|e| NgsiError::InternalError(e.to_string()))?,
            created_at: now,
            modified_at: now,
            counters: NgsiDeliveryCounters::default(),
        };
        match self.store.create_ngsi_subscription(&stored).await {
            // Ids are global: a hidden subscription's id is taken, like an entity's.
            Err(StoreError::Conflict(_)) => {
                Err(NgsiError::AlreadyExists(format!("Subscription {} already exists", sub.id)))
            }
            other => other.map_err(ngsi_store_error),
        }
    }

    /// A subscription the caller may change: 404 if it may not read it, 403
    /// if it reads it without the `write` scope.
    pub async fn subscription_for_update(&self, id: &str) -> Result<SubscriptionView, NgsiError> {
        let s = self.readable_subscription(id).await?;
        if self.caller.operated(TokenScope::Write).contains(&s.organisation) {
            view(s)
        } else {
            Err(self.refuse_subscriptions())
        }
    }

    pub async fn update_subscription(&self, sub: &Subscription, now: DateTime<Utc>) -> Result<(), NgsiError> {
        self.subscription_for_update(&sub.id).await?;
        let spec = serde_json::to_value(sub).map_err(|e| NgsiError::InternalError(e.to_string()))?;
        match self.store.update_ngsi_subscription(&sub.id, &spec, now).await.map_err(ngsi_store_error)? {
            true => Ok(()),
            false => Err(not_found(&sub.id)),
        }
    }

    pub async fn delete_subscription(&self, id: &str) -> Result<(), NgsiError> {
        self.subscription_for_update(id).await?;
        match self.store.delete_ngsi_subscription(id).await.map_err(ngsi_store_error)? {
            true => Ok(()),
            false => Err(not_found(id)),
        }
    }
}

struct OwnerVisibility {
    store: DynStore,
}

#[async_trait]
impl Visibility for OwnerVisibility {
    async fn viewer(&self, s: &StoredNgsiSubscription) -> Option<Viewer> {
        let user = self.store.user(s.owner).await.ok()??;
        if user.disabled {
            return None;
        }
        let orgs = self.store.list_organisations().await.ok()?;
        let parents = Arc::new(orgs.into_iter().map(|o| (o.id, o.parent)).collect());
        let full = Caller {
            principal: Principal::Session { user: user.id },
            memberships: user.memberships.clone(),
            scope: Some(TokenScope::Read),
            parents,
            from_loopback: false,
            ip: None,
            session: None,
        };
        // The memberships that reach the subscription's organisation, as a token bound to it.
        let memberships = user
            .memberships
            .into_iter()
            .filter(|m| {
                m.organisation == s.organisation
                    || (m.role == Role::Admin && full.with_descendants(&m.organisation).contains(&s.organisation))
            })
            .collect();
        let owner = Caller { memberships, ..full };
        if !owner.operated(TokenScope::Read).contains(&s.organisation) {
            return None;
        }
        Some(Viewer { audience: owner.audience(), tenant: s.tenant_only.then(|| s.organisation.clone()) })
    }
}

impl AppState {
    /// What each NGSI-LD subscription's owner may see, for the matcher.
    pub fn ngsi_subscription_visibility(&self) -> Arc<dyn Visibility> {
        Arc::new(OwnerVisibility { store: self.store.clone() })
    }
}
