//! The open-data side of the authorization point. A dataset is read through a
//! [`VisibleDataset`], which only this module can make, after the caller's audience
//! (`Audience::can_see`, the rule of every other object) has accepted it; a private
//! dataset outside the audience answers exactly like an absent one everywhere
//! (catalogue, records, facets, exports, search). Writing needs a
//! [`ManagedDataset`]: an organisation the caller operates with a `write` scope.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use socle_domain::{OrganisationId, Role, TokenScope, Visibility};
use socle_storage::{DatasetUsage, DynStore, StoreError, StoredAttachment, StoredDataset, StoredRecord, UsageKind};

use socle_domain::{
    Attribute, AttributeName, Audience, Entity, EntityFilter, EntityId, EntityType, Geometry, SeriesPoints,
    SeriesQuery, Step, TimeRange,
};
use socle_opendata::dataset::{energy_label, unit_label, LiveDailySeries, LiveEntities, LiveSource};

use super::Scoped;

fn live_source(d: &StoredDataset) -> Option<LiveSource> {
    d.metadata.get("live").and_then(|l| serde_json::from_value(l.clone()).ok())
}

/// A live dataset's fields follow from its source.
fn live_fields(metadata: &serde_json::Value) -> Option<serde_json::Value> {
    let source: LiveSource = serde_json::from_value(metadata.get("live")?.clone()).ok()?;
    serde_json::to_value(&source.schema().fields).ok()
}

fn point_json(e: &Entity) -> serde_json::Value {
    match &e.location {
        Some(Geometry::Point([lon, lat])) => serde_json::json!({"lon": lon, "lat": lat}),
        _ => serde_json::Value::Null,
    }
}

fn live_record(row: i64, e: &Entity, source: &LiveEntities) -> StoredRecord {
    use serde_json::{json, Value};
    let mut data = serde_json::Map::new();
    data.insert("id".into(), json!(e.id.to_string()));
    data.insert("nom".into(), json!(e.name()));
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
    data.insert("geo_point_2d".into(), point_json(e));
    StoredRecord { row, id: e.id.to_string(), data }
}

/// Entities read per step of a live dataset: a daily dataset reads a year of rollups
/// for each, so a step of 20 meters makes about 7,000 records.
const LIVE_ENTITIES_PAGE: u32 = 20;

/// The records of a dataset, a chunk at a time, whatever its source: stored rows, the
/// current state of entities, or daily rollups. Made by [`Scoped::dataset_records`]
/// for a [`VisibleDataset`] only.
pub struct DatasetRecords {
    store: DynStore,
    dataset: StoredDataset,
    source: Option<LiveSource>,
    /// Stored rows: the last row read; live records: the number made so far.
    row: i64,
    /// Live sources: the entities read so far.
    offset: u64,
    done: bool,
    /// Organisation id → (name, time zone), read at the first live step.
    organisations: Option<HashMap<OrganisationId, (String, chrono_tz::Tz)>>,
    /// Names of the places (buildings) already looked up.
    places: HashMap<EntityId, Option<String>>,
    chunk: usize,
}

impl DatasetRecords {
    /// The next chunk of records in a stable order, `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<StoredRecord>>, StoreError> {
        while !self.done {
            let chunk = match self.source.clone() {
                None => {
                    let chunk = self.store.records_chunk(&self.dataset.id, self.row, self.chunk).await?;
                    match chunk.last() {
                        Some(last) => self.row = last.row,
                        None => self.done = true,
                    }
                    chunk
                }
                Some(LiveSource::Entities(source)) => {
                    let entities = self.live_entities(&source.entity_type, 1000).await?;
                    entities
                        .iter()
                        .map(|e| {
                            self.row += 1;
                            live_record(self.row, e, &source)
                        })
                        .collect()
                }
                Some(LiveSource::DailySeries(source)) => {
                    let entities = self.live_entities(&source.entity_type, LIVE_ENTITIES_PAGE).await?;
                    let mut out = Vec::new();
                    for e in &entities {
                        self.daily_records(e, &source, &mut out).await?;
                    }
                    out
                }
            };
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
        Ok(None)
    }

    /// The next page of the live dataset's entities: those of its type owned by the
    /// dataset's organisation or one directly below it. Publishing them is the
    /// publisher's choice (the dataset's visibility), made when it was created.
    async fn live_entities(&mut self, entity_type: &str, limit: u32) -> Result<Vec<Entity>, StoreError> {
        let Ok(entity_type) = EntityType::parse(entity_type) else {
            self.done = true;
            return Ok(Vec::new());
        };
        if self.organisations.is_none() {
            let all = self.store.list_organisations().await?;
            let owner = &self.dataset.organisation;
            self.organisations = Some(
                all.into_iter()
                    .filter(|o| o.id == *owner || o.parent.as_ref() == Some(owner))
                    .map(|o| (o.id, (o.name, o.timezone)))
                    .collect(),
            );
        }
        let mut organisations: Vec<OrganisationId> =
            self.organisations.as_ref().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        organisations.sort();
        let filter = EntityFilter {
            audience: Audience::System,
            organisations: Some(organisations),
            entity_type: Some(entity_type),
            limit,
            offset: self.offset,
            ..Default::default()
        };
        let page = self.store.query_entities(&filter).await?;
        self.offset += page.items.len() as u64;
        if page.items.is_empty() || self.offset >= page.total {
            self.done = true;
        }
        Ok(page.items)
    }

    /// One record per local day of the entity's daily rollup of the attribute.
    async fn daily_records(
        &mut self,
        e: &Entity,
        source: &LiveDailySeries,
        out: &mut Vec<StoredRecord>,
    ) -> Result<(), StoreError> {
        use serde_json::json;
        let Ok(attribute) = AttributeName::parse(&source.daily_sum_of) else { return Ok(()) };
        let unit = match e.attributes.get(&attribute) {
            Some(Attribute::Property { unit_code, .. }) => unit_code.as_ref().map(|u| u.as_str().to_string()),
            _ => return Ok(()),
        };
        if source.unit.is_some() && source.unit != unit {
            return Ok(());
        }
        let (commune, tz) = self
            .organisations
            .as_ref()
            .and_then(|o| o.get(&e.organisation))
            .cloned()
            .unwrap_or_else(|| (e.organisation.to_string(), chrono_tz::Europe::Paris));
        let place = match source.place.as_deref().and_then(|p| AttributeName::parse(p).ok()) {
            Some(p) => match e.attributes.get(&p) {
                Some(Attribute::Relationship { object, .. }) => self.place_name(object).await?,
                _ => None,
            },
            None => None,
        };
        let kind = source.kind.as_deref().and_then(|k| AttributeName::parse(k).ok()).and_then(|k| {
            match e.attributes.get(&k) {
                Some(Attribute::Property { value: serde_json::Value::String(s), .. }) => {
                    Some(energy_label(s).to_string())
                }
                _ => None,
            }
        });
        let now = Utc::now();
        let Ok(range) = TimeRange::new(now - Duration::days(i64::from(source.days)), now + Duration::days(1)) else {
            return Ok(());
        };
        let query = SeriesQuery { entity: e.id.clone(), attribute, range, step: Step::Day, limit: source.days + 2 };
        // A meter without readings yet (just installed, or its history still being
        // written) has no series: it has no record, rather than failing the dataset.
        let days = match self.store.series(&query).await {
            Ok(SeriesPoints::Buckets(days)) => days,
            Ok(_) | Err(StoreError::UnknownSeries { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let point = point_json(e);
        for day in days {
            // A daily bucket starts at local midnight of the owner's time zone.
            let date = day.t.with_timezone(&tz).date_naive().format("%Y-%m-%d").to_string();
            self.row += 1;
            let mut data = serde_json::Map::new();
            data.insert("date".into(), json!(date));
            data.insert("commune".into(), json!(commune));
            data.insert("batiment".into(), json!(place));
            data.insert("compteur".into(), json!(e.name()));
            data.insert("compteur_id".into(), json!(e.id.to_string()));
            data.insert("type_energie".into(), json!(kind));
            data.insert(
                "consommation".into(),
                socle_opendata::odsql::value::number_json((day.sum * 1000.0).round() / 1000.0),
            );
            data.insert("unite".into(), json!(unit.as_deref().map(unit_label)));
            data.insert("mesures".into(), json!(day.count));
            data.insert("geo_point_2d".into(), point.clone());
            out.push(StoredRecord { row: self.row, id: format!("{}:{date}", e.id), data });
        }
        Ok(())
    }

    async fn place_name(&mut self, id: &EntityId) -> Result<Option<String>, StoreError> {
        if let Some(name) = self.places.get(id) {
            return Ok(name.clone());
        }
        let name = self.store.entity(id).await?.and_then(|p| p.name().map(str::to_string));
        self.places.insert(id.clone(), name.clone());
        Ok(name)
    }
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

    /// The dataset's records, read `chunk` at a time (a live dataset's come a page of
    /// entities at a time).
    pub fn dataset_records(&self, d: &VisibleDataset, chunk: usize) -> DatasetRecords {
        DatasetRecords {
            store: self.store.clone(),
            source: live_source(&d.0),
            dataset: d.0.clone(),
            row: 0,
            offset: 0,
            done: false,
            organisations: None,
            places: HashMap::new(),
            chunk: chunk.max(1),
        }
    }

    pub async fn dataset_record(
        &self,
        d: &VisibleDataset,
        record_id: &str,
    ) -> Result<Option<StoredRecord>, StoreError> {
        if live_source(&d.0).is_none() {
            return self.store.record(&d.0.id, record_id).await;
        }
        let mut records = self.dataset_records(d, 1000);
        while let Some(chunk) = records.next_chunk().await? {
            if let Some(r) = chunk.into_iter().find(|r| r.id == record_id) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// The attachments of a dataset the caller may read (without their content).
    pub async fn dataset_attachments(&self, d: &VisibleDataset) -> Result<Vec<StoredAttachment>, StoreError> {
        self.store.attachments(&d.0.id).await
    }

    pub async fn dataset_attachment(
        &self,
        d: &VisibleDataset,
        name: &str,
    ) -> Result<Option<StoredAttachment>, StoreError> {
        self.store.attachment(&d.0.id, name).await
    }

    /// Adds or replaces an attachment of a dataset the caller manages.
    pub async fn put_dataset_attachment(
        &self,
        d: &ManagedDataset,
        attachment: &StoredAttachment,
    ) -> Result<(), StoreError> {
        self.store.put_attachment(&d.0.id, attachment).await
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
        let fields = live_fields(&metadata).unwrap_or_else(|| serde_json::json!([]));
        let d = StoredDataset {
            id: id.to_string(),
            uid: format!("da_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            organisation,
            visibility,
            shared_with,
            metadata,
            fields,
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
        if let Some(fields) = live_fields(&metadata) {
            updated.fields = fields;
        }
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
