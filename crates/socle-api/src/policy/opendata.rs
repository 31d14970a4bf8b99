//! The open-data side of the authorization point. A dataset is read through a
//! [`VisibleDataset`], which only this module can make, after the caller's audience
//! (`Audience::can_see`, the rule of every other object) has accepted it; a private
//! dataset outside the audience answers exactly like an absent one everywhere
//! (catalogue, records, facets, exports, search). Writing needs a
//! [`ManagedDataset`]: an organisation the caller operates with a `write` scope.

use chrono::Utc;
use socle_domain::{OrganisationId, Role, TokenScope, Visibility};
use socle_storage::{DatasetUsage, StoreError, StoredDataset, StoredRecord, UsageKind};

use socle_domain::{Attribute, Audience, Entity, EntityFilter, EntityType, Geometry};
use socle_opendata::dataset::LiveSource;

use super::Scoped;

fn live_source(d: &StoredDataset) -> Option<LiveSource> {
    d.metadata.get("live").and_then(|l| serde_json::from_value(l.clone()).ok())
}

fn live_record(row: i64, e: &Entity, source: &LiveSource) -> StoredRecord {
    use serde_json::{json, Value};
    let mut data = serde_json::Map::new();
    data.insert("id".into(), json!(e.id.to_string()));
    let name = e.attributes.iter().find(|(k, _)| k.as_str() == "name").and_then(|(_, a)| match a {
        Attribute::Property { value, .. } => value.as_str().map(str::to_string),
        _ => None,
    });
    data.insert("nom".into(), json!(name));
    data.insert("organisation".into(), json!(e.organisation.to_string()));
    let mut latest = None;
    for wanted in &source.attributes {
        let value = e.attributes.iter().find(|(k, _)| k.as_str() == wanted).and_then(|(_, a)| match a {
            Attribute::Property { value, observed_at, .. } => {
                latest = latest.max(*observed_at);
                value.as_f64()
            }
            _ => None,
        });
        data.insert(wanted.clone(), value.map_or(Value::Null, |v| json!(v)));
    }
    data.insert("observe_le".into(), json!(latest.map(|t| t.to_rfc3339())));
    let point = match &e.location {
        Some(Geometry::Point([lon, lat])) => json!({"lon": lon, "lat": lat}),
        _ => Value::Null,
    };
    data.insert("geo_point_2d".into(), point);
    StoredRecord { row, id: e.id.to_string(), data }
}

/// A dataset the caller may read.
#[derive(Debug, Clone)]
pub struct VisibleDataset(StoredDataset);

impl VisibleDataset {
    pub fn get(&self) -> &StoredDataset {
        &self.0
    }
}

/// A dataset the caller may change.
#[derive(Debug, Clone)]
pub struct ManagedDataset(StoredDataset);

impl ManagedDataset {
    pub fn get(&self) -> &StoredDataset {
        &self.0
    }
}

#[derive(Debug)]
pub enum DatasetError {
    /// Absent, or not visible to the caller.
    NotFound,
    /// Visible but not the caller's to change.
    Forbidden,
    Conflict,
    Store(StoreError),
}

impl From<StoreError> for DatasetError {
    fn from(e: StoreError) -> Self {
        DatasetError::Store(e)
    }
}

impl Scoped {
    fn sees(&self, d: &StoredDataset) -> bool {
        self.caller.audience().can_see(&d.organisation, d.visibility, &d.shared_with)
    }

    fn manages(&self, organisation: &OrganisationId) -> bool {
        self.caller.operated(TokenScope::Write).contains(organisation)
    }

    /// The catalogue as this caller may see it.
    pub async fn datasets(&self) -> Result<Vec<VisibleDataset>, StoreError> {
        Ok(self.store.list_datasets().await?.into_iter().filter(|d| self.sees(d)).map(VisibleDataset).collect())
    }

    pub async fn dataset(&self, id: &str) -> Result<Option<VisibleDataset>, StoreError> {
        Ok(self.store.dataset(id).await?.filter(|d| self.sees(d)).map(VisibleDataset))
    }

    pub async fn dataset_records_chunk(
        &self,
        d: &VisibleDataset,
        after_row: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        match live_source(&d.0) {
            Some(source) => {
                let all = self.live_records(&d.0, &source).await?;
                Ok(all.into_iter().skip(usize::try_from(after_row).unwrap_or(0)).take(limit).collect())
            }
            None => self.store.records_chunk(&d.0.id, after_row, limit).await,
        }
    }

    pub async fn dataset_record(
        &self,
        d: &VisibleDataset,
        record_id: &str,
    ) -> Result<Option<StoredRecord>, StoreError> {
        match live_source(&d.0) {
            Some(source) => Ok(self.live_records(&d.0, &source).await?.into_iter().find(|r| r.id == record_id)),
            None => self.store.record(&d.0.id, record_id).await,
        }
    }

    /// A live dataset's records: the entities of its type owned by the dataset's
    /// organisation or one directly below it. Publishing them is the publisher's choice
    /// (the dataset's visibility), made when the live dataset was created.
    async fn live_records(&self, d: &StoredDataset, source: &LiveSource) -> Result<Vec<StoredRecord>, StoreError> {
        let Ok(entity_type) = EntityType::parse(&source.entity_type) else { return Ok(Vec::new()) };
        let mut organisations = vec![d.organisation.clone()];
        organisations.extend(
            self.store
                .list_organisations()
                .await?
                .into_iter()
                .filter(|o| o.parent.as_ref() == Some(&d.organisation))
                .map(|o| o.id),
        );
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let filter = EntityFilter {
                audience: Audience::System,
                organisations: Some(organisations.clone()),
                entity_type: Some(entity_type.clone()),
                limit: 1000,
                offset,
                ..Default::default()
            };
            let page = self.store.query_entities(&filter).await?;
            let n = page.items.len();
            for e in page.items {
                out.push(live_record(out.len() as i64 + 1, &e, source));
            }
            offset += n as u64;
            if n == 0 || offset >= page.total {
                break;
            }
        }
        Ok(out)
    }

    /// Counts a view, download or API call (a number, nothing about the caller).
    pub async fn count_dataset_usage(&self, d: &VisibleDataset, kind: UsageKind) {
        if let Err(e) = self.store.count_usage(&d.0.id, kind).await {
            tracing::warn!(error = %e, "dataset usage not counted");
        }
    }

    /// A public dataset, or nothing: an embeddable widget is framed by other sites,
    /// where no visitor's rights apply, so it shows what everyone may see and no more.
    pub async fn embeddable_dataset(&self, id: &str) -> Result<Option<VisibleDataset>, StoreError> {
        Ok(self.store.dataset(id).await?.filter(|d| d.visibility == Visibility::Public).map(VisibleDataset))
    }

    /// Members of the publishing organisation (partners excepted) and the administrators
    /// above it: the people the portal shows a dataset's usage figures to.
    fn publishes(&self, organisation: &OrganisationId) -> bool {
        self.caller.is_member()
            && (self.caller.memberships.iter().any(|m| &m.organisation == organisation && m.role != Role::Partner)
                || self.caller.administered().contains(organisation))
    }

    /// Usage figures for the dataset page: `None` unless the caller publishes it.
    pub async fn publisher_usage(&self, d: &VisibleDataset) -> Result<Option<DatasetUsage>, StoreError> {
        if !self.publishes(&d.0.organisation) {
            return Ok(None);
        }
        self.store.usage(&d.0.id).await.map(Some)
    }

    /// Usage figures, for the publisher only.
    pub async fn dataset_usage(&self, d: &ManagedDataset) -> Result<DatasetUsage, StoreError> {
        self.store.usage(&d.0.id).await
    }

    pub async fn managed_dataset(&self, id: &str) -> Result<ManagedDataset, DatasetError> {
        let d = self.store.dataset(id).await?.filter(|d| self.sees(d)).ok_or(DatasetError::NotFound)?;
        if !self.manages(&d.organisation) {
            return Err(DatasetError::Forbidden);
        }
        Ok(ManagedDataset(d))
    }

    /// Creates a dataset in an organisation the caller manages; its id is then fixed.
    pub async fn create_dataset(
        &self,
        id: &str,
        organisation: OrganisationId,
        visibility: Visibility,
        shared_with: Vec<OrganisationId>,
        metadata: serde_json::Value,
    ) -> Result<ManagedDataset, DatasetError> {
        if !self.manages(&organisation) {
            return Err(DatasetError::Forbidden);
        }
        if self.store.dataset(id).await?.is_some() {
            return Err(DatasetError::Conflict);
        }
        let now = Utc::now();
        let d = StoredDataset {
            id: id.to_string(),
            uid: format!("da_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            organisation,
            visibility,
            shared_with,
            metadata,
            fields: serde_json::json!([]),
            records_count: 0,
            data_modified_at: None,
            created_at: now,
            modified_at: now,
        };
        self.store.put_dataset(&d).await?;
        Ok(ManagedDataset(d))
    }

    pub async fn update_dataset(
        &self,
        d: &ManagedDataset,
        visibility: Visibility,
        shared_with: Vec<OrganisationId>,
        metadata: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut updated = d.0.clone();
        updated.visibility = visibility;
        updated.shared_with = shared_with;
        updated.metadata = metadata;
        updated.modified_at = Utc::now();
        self.store.put_dataset(&updated).await
    }

    pub async fn replace_dataset_records(
        &self,
        d: &ManagedDataset,
        fields: &serde_json::Value,
        records: &[StoredRecord],
    ) -> Result<(), StoreError> {
        self.store.replace_records(&d.0.id, fields, records, Utc::now()).await
    }
}
