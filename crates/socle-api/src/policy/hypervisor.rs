//! The hypervisor's side of the authorization point: committed observations
//! as they arrive, cut down to the entities the caller may see, for pages
//! that update without reload (`GET /api/v1/live`); the devices behind an
//! entity, for those who manage them.

use std::collections::HashMap;
use std::sync::Arc;

use socle_domain::{Attribute, Audience, Entity, EntityId, Observation, TokenScope};
use socle_storage::{Committed, DeviceFilter, DeviceRecord, DynStore, StoreError};
use tokio::sync::broadcast::{self, error::RecvError};

use super::Scoped;

/// Entities remembered per live connection; beyond, the memory starts afresh.
const REMEMBERED: usize = 50_000;

impl Scoped {
    /// The live feed as this caller may see it, optionally of one entity only.
    pub fn live(&self, only: Option<EntityId>) -> LiveFeed {
        LiveFeed {
            store: self.store.clone(),
            audience: self.caller.audience(),
            rx: self.ingestion.feed().live(),
            only,
            known: HashMap::new(),
        }
    }

    /// The devices measuring `entity` (their health), for the people who
    /// manage devices (`None` for everybody else, who do not learn they exist).
    pub async fn entity_devices(&self, entity: &EntityId) -> Result<Option<Vec<DeviceRecord>>, StoreError> {
        let organisations = self.caller.operated(TokenScope::Read);
        if organisations.is_empty() {
            return Ok(None);
        }
        let filter =
            DeviceFilter { organisations: Some(organisations), entity: Some(entity.clone()), limit: 20, offset: 0 };
        Ok(Some(self.store.list_devices(&filter).await?.items))
    }
}

/// Visible observations, each with its entity (as last read, kept current
/// with the observations that went through). A hidden entity is skipped like
/// an absent one.
pub struct LiveFeed {
    store: DynStore,
    audience: Audience,
    rx: broadcast::Receiver<Committed>,
    only: Option<EntityId>,
    /// Visibility is decided once per entity and connection: connections are
    /// short-lived (the live route ends them after a few minutes and the
    /// browser reconnects), so a change of visibility or of session applies
    /// within that time.
    known: HashMap<EntityId, Option<Arc<Entity>>>,
}

impl LiveFeed {
    /// The next batch holding anything visible; `None` when the feed is closed.
    /// A reader that falls behind skips batches (live pages want the latest state).
    pub async fn next(&mut self) -> Option<Vec<(Observation, Arc<Entity>)>> {
        loop {
            let batch = match self.rx.recv().await {
                Ok(b) => b,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            };
            let mut out = Vec::new();
            for o in batch.iter() {
                if self.only.as_ref().is_some_and(|only| only != &o.entity) {
                    continue;
                }
                if let Some(entity) = self.visible(o).await {
                    out.push((o.clone(), entity));
                }
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
    }

    async fn visible(&mut self, o: &Observation) -> Option<Arc<Entity>> {
        if !self.known.contains_key(&o.entity) {
            // A storage error hides the observation without remembering the answer.
            let found = self.store.entity(&o.entity).await.ok()?;
            if self.known.len() >= REMEMBERED {
                self.known.clear();
            }
            let seen = found.filter(|e| e.visible_to(&self.audience)).map(Arc::new);
            self.known.insert(o.entity.clone(), seen);
        }
        let entity = self.known.get_mut(&o.entity)?.as_mut()?;
        Arc::make_mut(entity).attributes.insert(
            o.attribute.clone(),
            Attribute::Property {
                value: o.value.to_json(),
                unit_code: o.unit_code.clone(),
                observed_at: Some(o.observed_at),
            },
        );
        Some(entity.clone())
    }
}
