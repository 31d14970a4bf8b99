//! The NGSI-LD API's side of the authorization point.
//!
//! `NGSILD-Tenant` names a Socle organisation. Reads see the caller's
//! audience, cut down to that tenant when one is named. Writes need a
//! personal token with the `write` scope or a staff session, and land in an
//! organisation the caller operates (administrators and agents): the named
//! tenant, else the token's organisation. An entity the caller may not see
//! answers exactly like an absent one; one it sees but may not change is
//! refused as forbidden.

use socle_domain::{
    Entity, EntityFilter, EntityId, Observation, OrganisationId, Page, SeriesInfo, SeriesPoints, SeriesQuery,
    TokenScope,
};
use socle_ngsi::NgsiError;
use socle_storage::{DynStore, StoreError};

use super::{AppState, Caller, Principal};

/// The store as one NGSI-LD caller may see and change it.
pub struct NgsiScoped {
    pub(super) store: DynStore,
    pub(super) caller: Caller,
    pub(super) tenant: Option<OrganisationId>,
    /// Where committed measurements are announced (alert rules, live pages), as ingestion does.
    feed: socle_storage::CommitFeed,
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
        })
    }
}

impl NgsiScoped {
    fn in_tenant(&self, e: &Entity) -> bool {
        self.tenant.as_ref().is_none_or(|t| t == &e.organisation)
    }

    /// The entity, or `None` when absent, hidden, or of another tenant.
    pub async fn entity(&self, id: &EntityId) -> Result<Option<Entity>, NgsiError> {
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

    pub async fn list_series(&self, id: &EntityId) -> Result<Vec<SeriesInfo>, NgsiError> {
        self.entity(id).await?.ok_or_else(|| NgsiError::entity_not_found(id.as_str()))?;
        self.store.list_series(id).await.map_err(ngsi_store_error)
    }

    pub async fn series(&self, q: &SeriesQuery) -> Result<SeriesPoints, NgsiError> {
        self.entity(&q.entity).await?.ok_or_else(|| NgsiError::entity_not_found(q.entity.as_str()))?;
        self.store.series(q).await.map_err(ngsi_store_error)
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
        self.store.replace_entities(entities).await.map_err(ngsi_store_error)?;
        if !observations.is_empty() {
            self.store.write_observations(observations).await.map_err(ngsi_store_error)?;
            // After the commit: rules and live pages see NGSI-LD measurements
            // like those that came through ingestion.
            self.feed.publish(observations.to_vec()).await;
        }
        Ok(())
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
