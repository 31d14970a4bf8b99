//! The ingestion side of the authorization point: who pushes measurements
//! (ingestion tokens, for their organisation's devices only) and who manages
//! devices and dead letters (administrators, with their member communes, and
//! agents of the organisation; writing needs a token scope of `write`).
//!
//! A device or dead letter of an organisation the caller does not manage
//! answers exactly like an absent one.

use std::collections::BTreeSet;

use socle_domain::{OrganisationId, Page, Role, TokenScope};
use socle_ingest::{DevEui, Device};
use socle_ingestion::{registry, Accepted, DownlinkRefused, DownlinkRequest, Input, Pipeline, Rejection, Source};
use socle_storage::{DeadLetter, DeadLetterFilter, DeviceFilter, DeviceRecord, Downlink, StoreError};

use super::{AppState, Caller, Principal, Scoped};

impl AppState {
    /// Replaces the ingestion pipeline (its limits, extra codecs).
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        pipeline.observe_with(std::sync::Arc::new(crate::metrics::IngestMetrics(self.metrics.clone())));
        self.ingestion = pipeline;
        self
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.ingestion
    }
}

impl Caller {
    /// Organisations whose devices and dead letters this caller manages,
    /// when its token allows `min`: those it administers (with the
    /// organisations below them) and those where it is an agent.
    pub fn operated(&self, min: TokenScope) -> Vec<OrganisationId> {
        if self.scope < Some(min) {
            return Vec::new();
        }
        let mut out = BTreeSet::new();
        for m in &self.memberships {
            match m.role {
                Role::Admin => out.extend(self.with_descendants(&m.organisation)),
                Role::Agent => {
                    out.insert(m.organisation.clone());
                }
                Role::Elected | Role::Partner => {}
            }
        }
        out.into_iter().collect()
    }

    /// The organisation an ingestion token pushes data for.
    pub fn ingestion_organisation(&self) -> Option<&OrganisationId> {
        match &self.principal {
            Principal::Ingestion { token } => Some(&token.organisation),
            _ => None,
        }
    }
}

/// Why a device or dead-letter operation did not happen.
#[derive(Debug)]
pub enum ManageError {
    /// Absent, or in an organisation the caller does not manage.
    NotFound,
    /// Visible, but the caller may only read (or may not act in that organisation).
    Forbidden,
    /// The DevEUI or the name is already taken.
    Conflict(String),
    /// The definition cannot be stored as it is.
    Invalid(String),
    Store(StoreError),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::UnknownEntity(id) => Self::Invalid(format!("entity {id} does not exist")),
            StoreError::UnknownOrganisation(id) => Self::Invalid(format!("organisation {id} does not exist")),
            other => Self::Store(other),
        }
    }
}

impl Scoped {
    /// Runs a body through the pipeline for the caller's organisation;
    /// `None` when the caller is not an ingestion token.
    pub async fn ingest(&self, source: Source, body: Vec<u8>) -> Option<Result<Accepted, Rejection>> {
        let org = self.caller.ingestion_organisation()?.clone();
        Some(self.ingestion.ingest(Input::new(org, source, body)).await)
    }

    /// Records the refusal of a body too large to read; `None` when the
    /// caller is not an ingestion token.
    pub async fn refuse_oversized(&self, source: Source, head: Vec<u8>, size: u64) -> Option<Rejection> {
        let org = self.caller.ingestion_organisation()?.clone();
        Some(self.ingestion.refuse_oversized(&Input::new(org, source, head), size).await)
    }

    fn may_read(&self, org: &OrganisationId) -> bool {
        self.caller.operated(TokenScope::Read).contains(org)
    }

    /// Read access hides; write access on something visible forbids.
    fn check_write(&self, org: &OrganisationId) -> Result<(), ManageError> {
        if self.caller.operated(TokenScope::Write).contains(org) {
            Ok(())
        } else if self.may_read(org) {
            Err(ManageError::Forbidden)
        } else {
            Err(ManageError::NotFound)
        }
    }

    /// Devices of the organisations the caller manages (within `organisations` if given).
    pub async fn devices(
        &self,
        organisations: Option<Vec<OrganisationId>>,
        limit: u32,
        offset: u64,
    ) -> Result<Page<DeviceRecord>, StoreError> {
        let mut orgs = self.caller.operated(TokenScope::Read);
        if let Some(wanted) = organisations {
            orgs.retain(|o| wanted.contains(o));
        }
        self.store.list_devices(&DeviceFilter { organisations: Some(orgs), entity: None, limit, offset }).await
    }

    pub async fn device(&self, eui: &DevEui) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self.store.device(&eui.to_string()).await?.filter(|d| self.may_read(&d.device.organisation)))
    }

    /// A device's downlinks, newest first; `None` if the device is not visible.
    pub async fn downlinks(&self, eui: &DevEui, limit: u32) -> Result<Option<Vec<Downlink>>, StoreError> {
        if self.device(eui).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.list_downlinks(&eui.to_string(), limit).await?))
    }

    /// Queues a command for a device the caller manages with a `write` scope.
    pub async fn send_downlink(
        &self,
        eui: &DevEui,
        f_port: u8,
        data: Vec<u8>,
        confirmed: bool,
    ) -> Result<Downlink, ManageError> {
        let Some(device) = self.device(eui).await? else { return Err(ManageError::NotFound) };
        let organisation = device.device.organisation;
        self.check_write(&organisation)?;
        let size = data.len();
        let request = DownlinkRequest {
            organisation: organisation.clone(),
            dev_eui: eui.to_string(),
            f_port,
            data,
            confirmed,
            requested_by: Some(self.caller.actor()),
        };
        let queued = self.ingestion.enqueue_downlink(request).await.map_err(|e| match e {
            DownlinkRefused::Invalid(why) => ManageError::Invalid(why),
            DownlinkRefused::UnknownDevice => ManageError::NotFound,
            DownlinkRefused::Store(e) => ManageError::Store(e),
        })?;
        let detail = format!("downlink {}: fPort {f_port}, {size} bytes, confirmed {confirmed}", queued.downlink.id);
        self.audit(Some(organisation), "downlink.queue", &format!("device:{eui}"), &detail).await?;
        Ok(queued)
    }

    /// Creates (`create_only`) or replaces a device. The caller must manage,
    /// with write scope, the device's organisation and, for a replacement,
    /// the organisation it is in now; the entity must belong to the device's
    /// organisation. Returns the stored device and whether it is new.
    pub async fn save_device(&self, device: &Device, create_only: bool) -> Result<(DeviceRecord, bool), ManageError> {
        registry::validate(device).map_err(|e| ManageError::Invalid(e.0))?;
        let eui = device.dev_eui.to_string();
        let existing = self.store.device(&eui).await?;
        if let Some(old) = &existing {
            if !self.caller.operated(TokenScope::Read).contains(&old.device.organisation) {
                // Registered by another organisation: say it is taken, not where.
                return Err(ManageError::Conflict(format!("DevEUI {eui} is already registered")));
            }
            if create_only {
                return Err(ManageError::Conflict(format!("device {eui} already exists")));
            }
            self.check_write(&old.device.organisation)?;
        }
        self.check_write(&device.organisation).map_err(|_| ManageError::Forbidden)?;
        self.check_entity(device).await?;
        self.store.upsert_devices(&[registry::to_new(device)]).await?;
        self.audit(Some(device.organisation.clone()), "device.upsert", &format!("device:{eui}"), "").await?;
        let saved = self.store.device(&eui).await?.ok_or(ManageError::NotFound)?;
        Ok((saved, existing.is_none()))
    }

    async fn check_entity(&self, device: &Device) -> Result<(), ManageError> {
        match self.store.entity(&device.entity).await? {
            Some(e) if e.organisation == device.organisation => Ok(()),
            _ => Err(ManageError::Invalid(format!(
                "entity {} does not exist in organisation {}",
                device.entity, device.organisation
            ))),
        }
    }

    /// Creates or replaces many devices in one transaction: all or none.
    pub async fn import_devices(&self, devices: &[Device]) -> Result<(), ManageError> {
        for d in devices {
            registry::validate(d).map_err(|e| ManageError::Invalid(format!("{}: {}", d.dev_eui, e.0)))?;
            self.check_write(&d.organisation).map_err(|_| ManageError::Forbidden)?;
            if let Some(old) = self.store.device(&d.dev_eui.to_string()).await? {
                if !self.caller.operated(TokenScope::Write).contains(&old.device.organisation) {
                    return Err(ManageError::Conflict(format!("DevEUI {} is already registered", d.dev_eui)));
                }
            }
            self.check_entity(d).await?;
        }
        let rows: Vec<_> = devices.iter().map(registry::to_new).collect();
        self.store.upsert_devices(&rows).await?;
        let orgs: BTreeSet<_> = devices.iter().map(|d| d.organisation.clone()).collect();
        for org in orgs {
            let n = devices.iter().filter(|d| d.organisation == org).count();
            self.audit(Some(org), "device.import", "devices", &format!("{n} devices")).await?;
        }
        Ok(())
    }

    pub async fn delete_device(&self, eui: &DevEui) -> Result<(), ManageError> {
        let Some(old) = self.device(eui).await? else { return Err(ManageError::NotFound) };
        self.check_write(&old.device.organisation)?;
        self.store.delete_device(&eui.to_string()).await?;
        self.audit(Some(old.device.organisation), "device.delete", &format!("device:{eui}"), "").await?;
        Ok(())
    }

    pub async fn dead_letters(&self, mut filter: DeadLetterFilter) -> Result<Page<DeadLetter>, StoreError> {
        let mut orgs = self.caller.operated(TokenScope::Read);
        if let Some(wanted) = filter.organisations.take() {
            orgs.retain(|o| wanted.contains(o));
        }
        filter.organisations = Some(orgs);
        self.store.list_dead_letters(&filter).await
    }

    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self.store.dead_letter(id).await?.filter(|l| self.may_read(&l.letter.organisation)))
    }

    /// Runs a dead letter through the pipeline again; the outcome is the
    /// pipeline's (a refusal keeps the letter pending).
    pub async fn replay_dead_letter(&self, id: i64) -> Result<Result<Accepted, Rejection>, ManageError> {
        let Some(letter) = self.dead_letter(id).await? else { return Err(ManageError::NotFound) };
        self.check_write(&letter.letter.organisation)?;
        let outcome = self.ingestion.replay(&letter).await;
        let detail = match &outcome {
            Ok(a) => format!("{:?}, {} observations", a.outcome, a.observations).to_lowercase(),
            Err(r) => format!("refused: {}", r.code()),
        };
        self.audit(Some(letter.letter.organisation), "dead-letter.replay", &format!("dead-letter:{id}"), &detail)
            .await?;
        Ok(outcome)
    }
}
