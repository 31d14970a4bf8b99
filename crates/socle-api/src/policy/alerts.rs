//! The alerting side of the authorization point: who sees which alert and
//! rule, who may act on them, and each person's own notification settings.
//!
//! - An alert is seen by whoever sees its entity *as a member*: an alert is
//!   operational information, never public, so the alert of a public entity
//!   follows the `internal` rule (members of the owner, of its parent and of
//!   its children). Hidden alerts answer like absent ones.
//! - Acting on an alert (acknowledge, resolve, assign, comment) is for the
//!   staff of its organisation ([`Caller::operated`] with a `write` scope:
//!   administrators, with their member communes, and agents); elected members
//!   and partners read only (403).
//! - Rules are read by the members of their organisation (administrators of a
//!   parent included) and written by its administrators.
//! - Subscriptions and push subscriptions belong to the caller; webhooks to the
//!   organisations the caller administers.
//!
//! Every change is recorded in the audit trail and, for alerts and rules, told
//! to the alerting service (its broadcast feeds notifications and live pages).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use chrono::Utc;
use socle_alerting::AlertingHandle;
use socle_domain::{Entity, EntityId, OrganisationId, Page, Role, TokenScope, UserId, Visibility};
use socle_rules::{Preview, Rule};
use socle_storage::{
    ActionRefusal, AlertAction, AlertChange, AlertEventRecord, AlertFilter, AlertRecord, AlertStatus,
    PushSubscriptionRecord, RuleFilter, RuleRecord, StoreError, StoredSubscription, StoredWebhook,
};
use uuid::Uuid;

use super::{AppState, Caller, Principal, Scoped};

/// The alerting service and the Web Push key, attached once they are started
/// (the demo starts its alerting service after the server).
#[derive(Default)]
pub struct AlertWiring {
    alerting: OnceLock<AlertingHandle>,
    vapid_public_key: OnceLock<String>,
}

impl AppState {
    /// Rule edits and alert actions are told to this service from now on.
    pub fn attach_alerting(&self, handle: AlertingHandle) {
        if self.alerts.alerting.set(handle).is_err() {
            tracing::warn!("an alerting service was already attached; the first one stays");
        }
    }

    /// The alerting service, if started (pages subscribe to its changes).
    pub fn alerting(&self) -> Option<&AlertingHandle> {
        self.alerts.alerting.get()
    }

    /// The public VAPID key browsers subscribe with (base64url, uncompressed P-256).
    pub fn set_vapid_public_key(&self, key: String) {
        let _ = self.alerts.vapid_public_key.set(key);
    }

    pub fn vapid_public_key(&self) -> Option<&str> {
        self.alerts.vapid_public_key.get().map(String::as_str)
    }
}

/// Why an alerting operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Absent, or hidden from the caller.
    #[error("no such alert or rule")]
    NotFound,
    /// Visible, but the caller may not do this.
    #[error("not allowed")]
    Forbidden,
    /// The request cannot be carried out as it is (a rule that does not validate…).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Resolved alerts only take comments.
    #[error("the alert is resolved")]
    Resolved,
    /// The preview could not run.
    #[error("the preview failed: {0}")]
    Preview(String),
    // Not `#[from]`: an unknown organisation or user is the request's fault.
    #[error("storage: {0}")]
    Store(StoreError),
}

impl From<StoreError> for AlertError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownOrganisation(id) => Self::Invalid(format!("organisation {id} does not exist")),
            StoreError::UnknownUser(id) => Self::Invalid(format!("user {id} does not exist")),
            other => Self::Store(other),
        }
    }
}

/// What a list of alerts is narrowed to (on top of what the caller may see).
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub organisations: Option<Vec<OrganisationId>>,
    pub statuses: Option<Vec<AlertStatus>>,
    pub severities: Option<Vec<String>>,
    /// Entity types of a domain (`eclairage` → street lights and cabinets).
    pub entity_types: Option<Vec<String>>,
    pub entity: Option<EntityId>,
    pub rule: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

/// One alert with what its page shows.
pub struct AlertView {
    pub alert: AlertRecord,
    /// `None` when the entity was deleted since.
    pub entity: Option<Entity>,
    pub events: Vec<AlertEventRecord>,
    /// Whether the caller may acknowledge, resolve, assign and comment.
    pub may_act: bool,
}

impl Caller {
    /// Whether the caller sees an alert on an entity owned by `owner` with this visibility.
    pub(super) fn sees_alert_of(
        &self,
        owner: &OrganisationId,
        visibility: Visibility,
        shared_with: &[OrganisationId],
    ) -> bool {
        if !matches!(self.principal, Principal::Token { .. } | Principal::Session { .. }) {
            return false;
        }
        let visibility = if visibility == Visibility::Public { Visibility::Internal } else { visibility };
        self.audience().can_see(owner, visibility, shared_with)
    }

    /// Organisations whose rules the caller reads: its memberships (partners
    /// excepted: rules are the organisation's own business) and, for
    /// administrators, the organisations below.
    pub fn rule_readers_of(&self) -> Vec<OrganisationId> {
        let mut out = BTreeSet::new();
        for m in &self.memberships {
            match m.role {
                Role::Admin => out.extend(self.with_descendants(&m.organisation)),
                Role::Agent | Role::Elected => {
                    out.insert(m.organisation.clone());
                }
                Role::Partner => {}
            }
        }
        out.into_iter().collect()
    }

    /// Whether the caller may act on alerts of `org`.
    pub fn acts_on_alerts_of(&self, org: &OrganisationId) -> bool {
        self.operated(TokenScope::Write).contains(org)
    }

    /// Whether the caller may create, edit and delete the rules of `org`.
    pub fn edits_rules_of(&self, org: &OrganisationId) -> bool {
        self.administered().contains(org)
    }
}

impl Scoped {
    fn handle(&self) -> Option<&AlertingHandle> {
        self.alerts.alerting.get()
    }

    /// The alert's entity if the caller may see the alert; `Err(())` if it may not.
    async fn alert_entity(
        &self,
        alert: &AlertRecord,
        cache: &mut HashMap<EntityId, Option<Entity>>,
    ) -> Result<Result<Option<Entity>, ()>, StoreError> {
        let entity = match cache.get(&alert.entity) {
            Some(e) => e.clone(),
            None => {
                let e = self.store.entity(&alert.entity).await?;
                cache.insert(alert.entity.clone(), e.clone());
                e
            }
        };
        let visible = match &entity {
            Some(e) => self.caller.sees_alert_of(&e.organisation, e.visibility, &e.shared_with),
            // A deleted entity: its organisation's members still see the alert's history.
            None => self.caller.sees_alert_of(&alert.organisation, Visibility::Private, &[]),
        };
        Ok(if visible { Ok(entity) } else { Err(()) })
    }

    /// Alerts the caller may see, unresolved first, then by severity, then oldest,
    /// each with its entity's name (when the entity still exists and has one).
    /// Visibility is decided in the query itself (`rows::alert_audience_condition`,
    /// the SQL form of `sees_alert_of`), so counts and pages are exact however
    /// many alerts there are.
    pub async fn alerts(&self, q: AlertQuery) -> Result<Page<(AlertRecord, Option<String>)>, StoreError> {
        if !self.caller.is_member() {
            return Ok(Page { items: Vec::new(), total: 0 });
        }
        let filter = AlertFilter {
            audience: Some(self.caller.audience()),
            organisations: q.organisations,
            statuses: q.statuses,
            severities: q.severities,
            entity: q.entity,
            entity_types: q.entity_types,
            rule: q.rule,
            limit: q.limit,
            offset: q.offset,
        };
        let page = self.store.list_alerts(&filter).await?;
        let mut cache = HashMap::new();
        let mut items = Vec::with_capacity(page.items.len());
        for a in page.items {
            // Checked again in Rust: the two forms of the rule must agree, and a
            // disagreement hides an alert rather than showing one.
            if let Ok(entity) = self.alert_entity(&a, &mut cache).await? {
                let name = entity.as_ref().and_then(|e| e.name().map(str::to_owned));
                items.push((a, name));
            }
        }
        Ok(Page { items, total: page.total })
    }

    /// Whether the caller may see this alert (for the live feed of changes).
    pub async fn sees_alert(&self, alert: &AlertRecord) -> Result<bool, StoreError> {
        Ok(self.alert_entity(alert, &mut HashMap::new()).await?.is_ok())
    }

    /// The changes of alerts from now on, if the alerting service runs and the caller is a member.
    pub fn alert_changes(&self) -> Option<tokio::sync::broadcast::Receiver<AlertChange>> {
        if !self.caller.is_member() {
            return None;
        }
        self.handle().map(AlertingHandle::subscribe)
    }

    /// An alert, its entity and history, or `None` if absent or hidden.
    pub async fn alert(&self, id: i64) -> Result<Option<AlertView>, StoreError> {
        let Some(alert) = self.store.alert(id).await? else { return Ok(None) };
        let Ok(entity) = self.alert_entity(&alert, &mut HashMap::new()).await? else { return Ok(None) };
        let events = self.store.alert_events(id).await?;
        let may_act = self.caller.acts_on_alerts_of(&alert.organisation);
        Ok(Some(AlertView { alert, entity, events, may_act }))
    }

    /// Acknowledges, resolves, assigns or comments an alert; the change is
    /// recorded, told to the alerting service and written to the audit trail.
    pub async fn act_on_alert(&self, id: i64, action: AlertAction) -> Result<AlertChange, AlertError> {
        let Some(view) = self.alert(id).await? else { return Err(AlertError::NotFound) };
        if !view.may_act {
            return Err(AlertError::Forbidden);
        }
        let actor = self.caller.user().ok_or(AlertError::Forbidden)?;
        match &action {
            AlertAction::Comment { text } => {
                let n = text.trim().chars().count();
                if n == 0 || n > socle_storage::alerts::MAX_COMMENT {
                    return Err(AlertError::Invalid(format!(
                        "a comment holds 1 to {} characters",
                        socle_storage::alerts::MAX_COMMENT
                    )));
                }
            }
            AlertAction::Assign { assignee: Some(who) } => self.check_assignee(who, &view.alert).await?,
            _ => {}
        }
        let change = match self.store.act_on_alert(id, &action, &actor.to_string(), Utc::now()).await? {
            None => return Err(AlertError::NotFound),
            Some(Err(ActionRefusal::Resolved)) => return Err(AlertError::Resolved),
            Some(Ok(change)) => change,
        };
        let detail = match &action {
            AlertAction::Assign { assignee } => {
                assignee.clone().map_or("unassigned".into(), |a| format!("to user:{a}"))
            }
            _ => String::new(),
        };
        self.audit(
            Some(change.alert.organisation.clone()),
            &format!("alert.{}", change.kind.as_str()),
            &format!("alert:{id}"),
            &detail,
        )
        .await?;
        match self.handle() {
            Some(h) => h.publish(change.clone()),
            None => tracing::warn!(alert = id, "no alerting service attached: the change is stored but not announced"),
        }
        Ok(change)
    }

    /// An assignee is a person who may act on the alert.
    async fn check_assignee(&self, who: &str, alert: &AlertRecord) -> Result<(), AlertError> {
        let refused = || AlertError::Invalid(format!("{who} is not a person who may act on this alert"));
        let id = Uuid::parse_str(who).map_err(|_| refused())?;
        let Some(user) = self.store.user(UserId(id)).await? else { return Err(refused()) };
        let person = Caller {
            principal: Principal::Session { user: user.id },
            memberships: user.memberships,
            scope: Some(TokenScope::Admin),
            parents: self.caller.parents.clone(),
            from_loopback: false,
            ip: None,
            session: None,
        };
        if user.disabled || !person.acts_on_alerts_of(&alert.organisation) {
            return Err(refused());
        }
        Ok(())
    }

    /// People the caller may assign an alert of `org` to (id, display name).
    pub async fn assignable(&self, org: &OrganisationId) -> Result<Vec<(UserId, String)>, StoreError> {
        if !self.caller.acts_on_alerts_of(org) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for u in self.store.list_users().await? {
            let person = Caller {
                principal: Principal::Session { user: u.id },
                memberships: u.memberships.clone(),
                scope: Some(TokenScope::Admin),
                parents: self.caller.parents.clone(),
                from_loopback: false,
                ip: None,
                session: None,
            };
            if !u.disabled && person.acts_on_alerts_of(org) {
                out.push((u.id, u.display_name.clone()));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    /// Rules of the organisations the caller reads (within `organisations` if given).
    pub async fn rules(&self, organisations: Option<Vec<OrganisationId>>) -> Result<Vec<RuleRecord>, StoreError> {
        let mut orgs = self.caller.rule_readers_of();
        if let Some(wanted) = organisations {
            orgs.retain(|o| wanted.contains(o));
        }
        if orgs.is_empty() {
            return Ok(Vec::new());
        }
        self.store.list_rules(&RuleFilter { organisations: Some(orgs), enabled_only: false }).await
    }

    pub async fn rule(&self, id: &str) -> Result<Option<RuleRecord>, StoreError> {
        Ok(self.store.rule(id).await?.filter(|r| self.caller.rule_readers_of().contains(&r.organisation)))
    }

    /// Whether the caller may edit the rules of `org` (the editor shows its form).
    pub fn may_edit_rules_of(&self, org: &OrganisationId) -> bool {
        self.caller.edits_rules_of(org)
    }

    /// Organisations whose rules the caller may edit.
    pub fn rule_editable_organisations(&self) -> Vec<OrganisationId> {
        self.caller.administered()
    }

    /// Creates (`create_only`) or replaces a validated rule. Returns the stored
    /// rule and whether it is new.
    pub async fn save_rule(
        &self,
        rule: &Rule,
        enabled: bool,
        create_only: bool,
    ) -> Result<(RuleRecord, bool), AlertError> {
        let id = rule.id().as_str();
        let existing = self.store.rule(id).await?;
        if let Some(old) = &existing {
            if !self.caller.rule_readers_of().contains(&old.organisation) {
                // Another organisation's rule id: taken, without saying by whom.
                return Err(AlertError::Invalid(format!("the rule id {id} is already taken")));
            }
            if create_only {
                return Err(AlertError::Invalid(format!("rule {id} already exists")));
            }
            if !self.caller.edits_rules_of(&old.organisation) {
                return Err(AlertError::Forbidden);
            }
        }
        if !self.caller.edits_rules_of(rule.organisation()) {
            return Err(AlertError::Forbidden);
        }
        let now = Utc::now();
        let record = RuleRecord {
            id: id.to_owned(),
            organisation: rule.organisation().clone(),
            definition: serde_json::to_value(rule).map_err(|e| AlertError::Invalid(e.to_string()))?,
            enabled,
            author: self.caller.user().map(|u| u.to_string()),
            created_at: existing.as_ref().map_or(now, |r| r.created_at),
            modified_at: now,
        };
        let saved = self.store.upsert_rule(&record).await?;
        let action = if existing.is_some() { "rule.update" } else { "rule.create" };
        self.audit(Some(saved.organisation.clone()), action, &format!("rule:{id}"), rule.kind().as_str()).await?;
        if let Some(old) = existing.as_ref().filter(|o| o.organisation != saved.organisation) {
            self.audit(Some(old.organisation.clone()), "rule.move", &format!("rule:{id}"), "").await?;
        }
        if let Some(h) = self.handle() {
            h.rule_changed(id);
        }
        Ok((saved, existing.is_none()))
    }

    pub async fn delete_rule(&self, id: &str) -> Result<(), AlertError> {
        let Some(old) = self.rule(id).await? else { return Err(AlertError::NotFound) };
        if !self.caller.edits_rules_of(&old.organisation) {
            return Err(AlertError::Forbidden);
        }
        self.store.delete_rule(id).await?;
        self.audit(Some(old.organisation), "rule.delete", &format!("rule:{id}"), "").await?;
        if let Some(h) = self.handle() {
            h.rule_changed(id);
        }
        Ok(())
    }

    /// How often `rule` would have fired over the last 30 days; for those who
    /// read the rules of its organisation.
    pub async fn preview_rule(&self, rule: &Rule) -> Result<Preview, AlertError> {
        if !self.caller.rule_readers_of().contains(rule.organisation()) {
            return Err(AlertError::Forbidden);
        }
        socle_alerting::preview(&self.store, rule, Utc::now()).await.map_err(|e| match e {
            socle_alerting::AlertingError::Store(e) => AlertError::Store(e),
            other => AlertError::Preview(other.to_string()),
        })
    }

    fn owner(&self) -> Result<UserId, AlertError> {
        self.caller.user().ok_or(AlertError::Forbidden)
    }

    fn check_scope(&self, min: TokenScope) -> Result<(), AlertError> {
        if self.caller.scope >= Some(min) {
            Ok(())
        } else {
            Err(AlertError::Forbidden)
        }
    }

    /// The caller's own subscriptions.
    pub async fn my_subscriptions(&self) -> Result<Vec<StoredSubscription>, AlertError> {
        Ok(self.store.list_subscriptions(Some(self.owner()?)).await?)
    }

    pub async fn my_subscription(&self, id: Uuid) -> Result<Option<StoredSubscription>, AlertError> {
        let me = self.owner()?;
        Ok(self.store.subscription(id).await?.filter(|s| s.user == me))
    }

    /// Creates (`id` none) or replaces one of the caller's subscriptions; the spec
    /// is validated by the caller of this function (`SubscriptionSpec::validate`).
    pub async fn save_my_subscription(
        &self,
        id: Option<Uuid>,
        spec: serde_json::Value,
    ) -> Result<StoredSubscription, AlertError> {
        let me = self.owner()?;
        let now = Utc::now();
        // Someone else's subscription answers like an absent one, before any scope check.
        let created_at = match id {
            Some(id) => self.my_subscription(id).await?.ok_or(AlertError::NotFound)?.created_at,
            None => now,
        };
        self.check_scope(TokenScope::Write)?;
        let s =
            StoredSubscription { id: id.unwrap_or_else(Uuid::new_v4), user: me, spec, created_at, modified_at: now };
        self.store.put_subscription(&s).await?;
        Ok(s)
    }

    pub async fn delete_my_subscription(&self, id: Uuid) -> Result<(), AlertError> {
        if self.my_subscription(id).await?.is_none() {
            return Err(AlertError::NotFound);
        }
        self.check_scope(TokenScope::Write)?;
        self.store.delete_subscription(id).await?;
        Ok(())
    }

    /// Webhooks of the organisations the caller administers.
    pub async fn webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        let orgs = self.caller.administered();
        if orgs.is_empty() {
            return Ok(Vec::new());
        }
        self.store.list_webhooks(Some(&orgs)).await
    }

    pub async fn webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>, StoreError> {
        Ok(self.store.webhook(id).await?.filter(|w| self.caller.administered().contains(&w.organisation)))
    }

    /// Creates a webhook with a fresh secret (returned here, never again).
    pub async fn create_webhook(
        &self,
        organisation: OrganisationId,
        url: String,
        spec: serde_json::Value,
    ) -> Result<StoredWebhook, AlertError> {
        if !self.caller.administered().contains(&organisation) {
            return Err(AlertError::Forbidden);
        }
        let now = Utc::now();
        let w = StoredWebhook {
            id: Uuid::new_v4(),
            organisation,
            url,
            secret: socle_notify::webhook::new_secret(),
            spec,
            created_at: now,
            modified_at: now,
        };
        self.store.put_webhook(&w).await?;
        self.audit(Some(w.organisation.clone()), "webhook.create", &format!("webhook:{}", w.id), "").await?;
        Ok(w)
    }

    pub async fn delete_webhook(&self, id: Uuid) -> Result<(), AlertError> {
        let Some(w) = self.webhook(id).await? else { return Err(AlertError::NotFound) };
        self.store.delete_webhook(id).await?;
        self.audit(Some(w.organisation), "webhook.delete", &format!("webhook:{id}"), "").await?;
        Ok(())
    }

    /// Registers a browser of the caller for Web Push; a browser registering
    /// again replaces its row.
    pub async fn add_push_subscription(
        &self,
        endpoint: String,
        p256dh: String,
        auth: String,
    ) -> Result<Uuid, AlertError> {
        // Endpoints are capability URLs known only to the browser and its push
        // service: registering one again (same browser, maybe another person
        // signed in) moves it to the caller.
        let me = self.owner()?;
        let record =
            PushSubscriptionRecord { id: Uuid::new_v4(), user: me, endpoint, p256dh, auth, created_at: Utc::now() };
        Ok(self.store.put_push_subscription(&record).await?)
    }

    /// The caller's registered browsers.
    pub async fn my_push_subscriptions(&self) -> Result<Vec<PushSubscriptionRecord>, AlertError> {
        Ok(self.store.list_push_subscriptions(self.owner()?).await?)
    }

    pub async fn delete_push_subscription(&self, id: Uuid) -> Result<(), AlertError> {
        let me = self.owner()?;
        match self.store.push_subscription(id).await? {
            Some(p) if p.user == me => {
                self.store.delete_push_subscription(id).await?;
                Ok(())
            }
            _ => Err(AlertError::NotFound),
        }
    }
}

/// For the wiring in `AppState`.
pub(super) fn wiring() -> Arc<AlertWiring> {
    Arc::new(AlertWiring::default())
}
