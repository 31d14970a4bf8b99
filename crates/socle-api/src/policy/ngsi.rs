//! The NGSI-LD API's side of the authorization point.
//!
//! `NGSILD-Tenant` names a Socle organisation. Reads see the caller's
//! audience, cut down to that tenant when one is named. Writes need a
//! personal token with the `write` scope or a staff session, and land in an
//! organisation the caller operates (administrators and agents): the named
//! tenant, else the token's organisation. An entity the caller may not see
//! answers exactly like an absent one; one it sees but may not change is
//! refused as forbidden.

use std::collections::HashMap;

use socle_domain::{
    Entity, EntityFilter, EntityId, EntityMatch, Geometry, Observation, OrganisationId, Page, SeriesInfo, SeriesPoints,
    SeriesQuery, TokenScope,
};
use socle_ngsi::NgsiError;
use socle_storage::{AlertRecord, ContextKind, DynStore, StoreError, StoredContext};

use super::AlertQuery;

/// Alerts shown as entities at most (a query over more answers the first ones, oldest open first).
const MAX_ALERT_ENTITIES: u32 = 10_000;

use super::{AppState, Caller, Principal};

/// The store as one NGSI-LD caller may see and change it.
pub struct NgsiScoped {
    pub(super) store: DynStore,
    pub(super) caller: Caller,
    pub(super) tenant: Option<OrganisationId>,
    /// Where committed measurements are announced (alert rules, live pages), as ingestion does.
    feed: socle_storage::CommitFeed,
    /// Alerts, with their own visibility rule (policy/alerts.rs).
    alerts: super::Scoped,
}

/// Storage failures in the NGSI-LD error shape; causes go to the log only.
pub fn ngsi_store_error(e: StoreError) -> NgsiError {
    match e {
        StoreError::UnknownEntity(id) => NgsiError::entity_not_found(&id),
        StoreError::Conflict(what) => NgsiError::AlreadyExists(format!("{what} already exists")),
        e if e.is_client_error() => NgsiError::BadRequestData(e.to_string()),
        e => {
            tracing::error!(error = %e, "storage failure");
            NgsiError::InternalError("The storage failed; the incident is logged.".into())
        }
    }
}

impl AppState {
    /// The NGSI-LD handle of a caller for the tenant named in `NGSILD-Tenant`.
    pub async fn ngsi(&self, caller: &Caller, tenant: Option<&str>) -> Result<NgsiScoped, NgsiError> {
        let tenant = match tenant.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let id = OrganisationId::parse(t)
                    .map_err(|_| NgsiError::NonexistentTenant(format!("Tenant {t} does not exist")))?;
                // The organisation directory is public: saying a tenant does not exist reveals nothing.
                if self.store.organisation(&id).await.map_err(ngsi_store_error)?.is_none() {
                    return Err(NgsiError::NonexistentTenant(format!("Tenant {t} does not exist")));
                }
                Some(id)
            }
        };
        Ok(NgsiScoped {
            store: self.store.clone(),
            caller: caller.clone(),
            tenant,
            feed: self.ingestion.feed().clone(),
            alerts: self.scoped(caller),
        })
    }
}

impl NgsiScoped {
    fn in_tenant(&self, e: &Entity) -> bool {
        self.tenant.as_ref().is_none_or(|t| t == &e.organisation)
    }

    /// The entity, or `None` when absent, hidden, or of another tenant.
    /// Alerts are entities of type `Alert` here, seen by whom sees them.
    pub async fn entity(&self, id: &EntityId) -> Result<Option<Entity>, NgsiError> {
        if is_alert_id(id) {
            return self.alert_entity(id).await;
        }
        let found = self.store.entity(id).await.map_err(ngsi_store_error)?;
        Ok(found.filter(|e| e.visible_to(&self.caller.audience()) && self.in_tenant(e)))
    }

    /// Entities the caller sees; `filter.audience` is always replaced.
    pub async fn query(&self, mut filter: EntityFilter) -> Result<Page<Entity>, NgsiError> {
        filter.audience = self.caller.audience();
        if let Some(t) = &self.tenant {
            filter.organisations = Some(vec![t.clone()]);
        }
        self.store.query_entities(&filter).await.map_err(ngsi_store_error)
    }

    /// Ids the caller sees that the filter selects, with whether its
    /// attribute conditions surely hold; `filter.audience` is always replaced.
    pub async fn matches(&self, mut filter: EntityFilter) -> Result<Vec<EntityMatch>, NgsiError> {
        filter.audience = self.caller.audience();
        if let Some(t) = &self.tenant {
            filter.organisations = Some(vec![t.clone()]);
        }
        self.store.match_entities(&filter).await.map_err(ngsi_store_error)
    }

    pub async fn list_series(&self, id: &EntityId) -> Result<Vec<SeriesInfo>, NgsiError> {
        self.entity(id).await?.ok_or_else(|| NgsiError::entity_not_found(id.as_str()))?;
        if is_alert_id(id) {
            // An alert's history is its events (/api/v1/alerts/{id}), not series.
            return Ok(Vec::new());
        }
        self.store.list_series(id).await.map_err(ngsi_store_error)
    }

    pub async fn series(&self, q: &SeriesQuery) -> Result<SeriesPoints, NgsiError> {
        self.entity(&q.entity).await?.ok_or_else(|| NgsiError::entity_not_found(q.entity.as_str()))?;
        self.store.series(q).await.map_err(ngsi_store_error)
    }

    /// The alerts the caller sees (never an anonymous caller: an alert is
    /// never public), within the tenant, as Smart Data Models `Alert` entities.
    pub async fn alert_entities(&self) -> Result<Vec<Entity>, NgsiError> {
        let q = AlertQuery {
            organisations: self.tenant.clone().map(|t| vec![t]),
            limit: MAX_ALERT_ENTITIES,
            ..Default::default()
        };
        let page = self.alerts.alerts(q).await.map_err(ngsi_store_error)?;
        let mut places: HashMap<EntityId, Option<Geometry>> = HashMap::new();
        let mut out = Vec::with_capacity(page.items.len());
        for (alert, _) in page.items {
            if !places.contains_key(&alert.entity) {
                let e = self.store.entity(&alert.entity).await.map_err(ngsi_store_error)?;
                places.insert(alert.entity.clone(), e.and_then(|e| e.location));
            }
            let place = places.get(&alert.entity).and_then(Option::as_ref);
            out.push(alert_as_entity(&alert, place)?);
        }
        Ok(out)
    }

    async fn alert_entity(&self, id: &EntityId) -> Result<Option<Entity>, NgsiError> {
        // urn:ngsi-ld:Alert:{organisation}:{number}
        let Some(number) = id.as_str().rsplit(':').next().and_then(|n| n.parse::<i64>().ok()) else {
            return Ok(None);
        };
        let Some(view) = self.alerts.alert(number).await.map_err(ngsi_store_error)? else { return Ok(None) };
        if socle_alerting::ngsi::alert_id(&view.alert) != id.as_str()
            || self.tenant.as_ref().is_some_and(|t| t != &view.alert.organisation)
        {
            return Ok(None);
        }
        let place = view.entity.as_ref().and_then(|e| e.location.as_ref());
        Ok(Some(alert_as_entity(&view.alert, place)?))
    }

    /// Organisations this caller may write into.
    fn writable(&self) -> Vec<OrganisationId> {
        match self.caller.principal {
            Principal::Token { .. } | Principal::Session { .. } => self.caller.operated(TokenScope::Write),
            Principal::Anonymous | Principal::Ingestion { .. } => Vec::new(),
        }
    }

    fn refuse(&self) -> NgsiError {
        if self.caller.is_authenticated() {
            NgsiError::Forbidden("Your rights do not allow changing entities here".into())
        } else {
            NgsiError::Unauthorized("Changing entities needs an API token with the write scope".into())
        }
    }

    /// Where a new entity goes: the tenant named, else the token's
    /// organisation, else the one organisation a session operates.
    pub fn target_organisation(&self) -> Result<OrganisationId, NgsiError> {
        let writable = self.writable();
        let chosen = match (&self.tenant, &self.caller.principal) {
            (Some(t), _) => Some(t.clone()),
            (None, Principal::Token { token, .. }) => Some(token.organisation.clone()),
            (None, _) if writable.len() == 1 => writable.first().cloned(),
            (None, _) if writable.is_empty() => None,
            (None, _) => {
                return Err(NgsiError::BadRequestData(
                    "Name the organisation to write into with the NGSILD-Tenant header".into(),
                ))
            }
        };
        chosen.filter(|o| writable.contains(o)).ok_or_else(|| self.refuse())
    }

    /// An existing entity the caller may change: 404 if it does not see it,
    /// 403 if it sees it without the right to change it.
    pub async fn for_update(&self, id: &EntityId) -> Result<Entity, NgsiError> {
        let e = self.entity(id).await?.ok_or_else(|| NgsiError::entity_not_found(id.as_str()))?;
        if is_alert_id(id) {
            return Err(alerts_read_only());
        }
        if self.writable().contains(&e.organisation) {
            Ok(e)
        } else {
            Err(self.refuse())
        }
    }

    /// Stores entities exactly as given (they were built from what
    /// `target_organisation`/`for_update` allowed) and their measurements.
    /// An id held by another organisation is refused as existing.
    pub async fn save(&self, entities: &[Entity], observations: &[Observation]) -> Result<(), NgsiError> {
        let writable = self.writable();
        if entities.iter().any(|e| !writable.contains(&e.organisation)) {
            return Err(self.refuse());
        }
        if entities.iter().any(|e| e.entity_type.as_str() == ALERT_TYPE || is_alert_id(&e.id)) {
            return Err(alerts_read_only());
        }
        self.store.replace_entities(entities).await.map_err(ngsi_store_error)?;
        if !observations.is_empty() {
            self.store.write_observations(observations).await.map_err(ngsi_store_error)?;
            // After the commit: rules and live pages see NGSI-LD measurements
            // like those that came through ingestion.
            self.feed.publish(observations.to_vec()).await;
        }
        Ok(())
    }

    /// Hosting, reloading or dropping a JSON-LD context changes what terms
    /// mean for every client of the instance: operators only (administrators
    /// and agents of an organisation, with a write token or a staff session).
    pub fn may_manage_contexts(&self) -> Result<(), NgsiError> {
        if self.writable().is_empty() {
            Err(if self.caller.is_authenticated() {
                NgsiError::Forbidden("Managing JSON-LD contexts needs an administrator or an agent".into())
            } else {
                NgsiError::Unauthorized("Managing JSON-LD contexts needs an API token with the write scope".into())
            })
        } else {
            Ok(())
        }
    }

    /// A held context (hosted, fetched before, or implicitly created), by URL.
    pub async fn held_context(&self, url: &str) -> Result<Option<StoredContext>, NgsiError> {
        self.store.context_by_url(url).await.map_err(ngsi_store_error)
    }

    pub async fn context(&self, id: &str) -> Result<Option<StoredContext>, NgsiError> {
        self.store.context(id).await.map_err(ngsi_store_error)
    }

    pub async fn contexts(&self, kind: Option<ContextKind>) -> Result<Vec<StoredContext>, NgsiError> {
        self.store.list_contexts(kind).await.map_err(ngsi_store_error)
    }

    /// Only an authenticated caller makes the server fetch a URL it names:
    /// an anonymous one could point it at any address its network reaches.
    /// Contexts already held serve everyone.
    pub fn may_fetch_context(&self, url: &str) -> Result<(), NgsiError> {
        if self.caller.is_authenticated() {
            Ok(())
        } else {
            Err(NgsiError::LdContextNotAvailable(format!(
                "The @context {url} is not held by this server; an authenticated request may have it fetched"
            )))
        }
    }

    /// Keeps a fetched or hosted context. Fetching needs no operator (any
    /// authenticated request naming a URL does it); hosting does.
    pub async fn keep_context(&self, c: &StoredContext) -> Result<StoredContext, NgsiError> {
        if c.kind == ContextKind::Hosted {
            self.may_manage_contexts()?;
        }
        match self.store.add_context(c).await {
            Ok(()) => Ok(c.clone()),
            // Fetched meanwhile by another request: its copy stands.
            Err(StoreError::Conflict(_)) if c.kind == ContextKind::Cached => self
                .store
                .context_by_url(&c.url)
                .await
                .map_err(ngsi_store_error)?
                .ok_or_else(|| NgsiError::InternalError("A context vanished while being kept".into())),
            Err(e) => Err(ngsi_store_error(e)),
        }
    }

    pub async fn reload_context(&self, id: &str, body: &str) -> Result<bool, NgsiError> {
        self.may_manage_contexts()?;
        self.store.replace_context_body(id, body).await.map_err(ngsi_store_error)
    }

    pub async fn delete_context(&self, id: &str) -> Result<bool, NgsiError> {
        self.may_manage_contexts()?;
        self.store.delete_context(id).await.map_err(ngsi_store_error)
    }

    /// Whether an id is taken, visible or not (ids are global: a new entity
    /// cannot take the id of a hidden one).
    pub async fn id_taken(&self, id: &EntityId) -> Result<bool, NgsiError> {
        Ok(self.store.entity(id).await.map_err(ngsi_store_error)?.is_some())
    }

    pub async fn delete(&self, id: &EntityId) -> Result<(), NgsiError> {
        self.for_update(id).await?;
        match self.store.delete_entity(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(NgsiError::entity_not_found(id.as_str())),
            Err(StoreError::Conflict(_)) => Err(NgsiError::OperationNotSupported(format!(
                "{id} is measured by devices; remove them first (/api/v1/devices)"
            ))),
            Err(e) => Err(ngsi_store_error(e)),
        }
    }
}

/// The type of the alerts shown as entities.
pub const ALERT_TYPE: &str = "Alert";

pub fn is_alert_id(id: &EntityId) -> bool {
    id.type_segment() == ALERT_TYPE
}

/// Alerts are raised and resolved by rules; people act on them through the
/// Socle API, where each action is recorded in the alert's history.
fn alerts_read_only() -> NgsiError {
    NgsiError::OperationNotSupported(
        "Alert entities are read-only: alerts are raised by rules; acknowledge or resolve them with /api/v1/alerts"
            .into(),
    )
}

/// An alert as a domain entity (the Smart Data Models `Alert` of
/// `socle_alerting::ngsi`), so that `q`, `attrs` and the representations
/// apply to it as to any entity. Descriptions are in French, the platform's
/// first language.
fn alert_as_entity(alert: &AlertRecord, place: Option<&Geometry>) -> Result<Entity, NgsiError> {
    let json = socle_alerting::ngsi::to_entity(alert, place, false);
    let mut e =
        socle_ngsi::representation::parse_entity(&json, &socle_ngsi::Context::core(), alert.organisation.clone())
            .map_err(|e| {
                tracing::error!(error = %e, alert = alert.id, "an alert does not make an NGSI-LD entity");
                NgsiError::InternalError("An alert could not be shown as an entity; the incident is logged.".into())
            })?;
    e.created_at = Some(alert.opened_at);
    e.modified_at = Some(alert.modified_at);
    Ok(e)
}
