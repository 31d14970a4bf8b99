//! Storage of open datasets: metadata and field schema (JSON documents validated by
//! `socle-opendata` before they get here), records as JSON rows with a stable id and
//! the order of the source file, attachments, and usage counters without personal data.
//!
//! Records are read in chunks (`records_chunk`) so an export of a million rows never
//! holds them all in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{OrganisationId, Visibility};

use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredDataset {
    /// The slug, chosen at creation and never changed.
    pub id: String,
    pub uid: String,
    pub organisation: OrganisationId,
    pub visibility: Visibility,
    /// Organisations a `partners` dataset is shared with.
    pub shared_with: Vec<OrganisationId>,
    pub metadata: serde_json::Value,
    pub fields: serde_json::Value,
    pub records_count: u64,
    pub data_modified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub row: i64,
    pub id: String,
    pub data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttachment {
    pub name: String,
    pub title: String,
    pub media_type: String,
    /// Empty in listings; filled when one attachment is read.
    pub content: Vec<u8>,
    pub size: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKind {
    View,
    Download,
    ApiCall,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DatasetUsage {
    pub views: u64,
    pub downloads: u64,
    pub api_calls: u64,
}

#[async_trait]
pub trait Datasets: Send + Sync {
    /// Creates the dataset or updates its metadata, visibility and fields (same id;
    /// records untouched). The organisation must exist.
    async fn put_dataset(&self, dataset: &StoredDataset) -> Result<()>;
    async fn dataset(&self, id: &str) -> Result<Option<StoredDataset>>;
    /// Every dataset; the caller's policy handle filters them.
    async fn list_datasets(&self) -> Result<Vec<StoredDataset>>;
    /// Replaces all records and the field schema in one transaction: a reader sees the
    /// old data or the new, never a mix.
    async fn replace_records(
        &self,
        id: &str,
        fields: &serde_json::Value,
        records: &[StoredRecord],
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Up to `limit` records after row `after_row`, in row order.
    async fn records_chunk(&self, id: &str, after_row: i64, limit: usize) -> Result<Vec<StoredRecord>>;
    async fn record(&self, id: &str, record_id: &str) -> Result<Option<StoredRecord>>;
    async fn put_attachment(&self, id: &str, attachment: &StoredAttachment) -> Result<()>;
    async fn attachments(&self, id: &str) -> Result<Vec<StoredAttachment>>;
    async fn attachment(&self, id: &str, name: &str) -> Result<Option<StoredAttachment>>;
    async fn count_usage(&self, id: &str, kind: UsageKind) -> Result<()>;
    async fn usage(&self, id: &str) -> Result<DatasetUsage>;
}

pub(crate) const DATASET_COLUMNS: &str =
    "id, uid, organisation_id, visibility, metadata, fields, records_count, data_modified_at, created_at, modified_at, shared_with";

pub(crate) struct RawDataset {
    pub id: String,
    pub uid: String,
    pub organisation: String,
    pub visibility: String,
    pub metadata: String,
    pub fields: String,
    pub records_count: i64,
    pub data_modified_at: Option<i64>,
    pub created_at: i64,
    pub modified_at: i64,
    pub shared_with: String,
}

impl RawDataset {
    pub(crate) fn parse(self) -> Result<StoredDataset> {
        use crate::rows::from_ms;
        let corrupt = |what: &str| crate::StoreError::Corrupt(format!("dataset {}: {what}", self.id));
        Ok(StoredDataset {
            organisation: OrganisationId::parse(&self.organisation).map_err(|_| corrupt("organisation"))?,
            visibility: self.visibility.parse().map_err(|_| corrupt("visibility"))?,
            shared_with: serde_json::from_str::<Vec<String>>(&self.shared_with)
                .map_err(|_| corrupt("shared_with"))?
                .iter()
                .map(|o| OrganisationId::parse(o).map_err(|_| corrupt("shared_with")))
                .collect::<Result<_>>()?,
            metadata: serde_json::from_str(&self.metadata).map_err(|_| corrupt("metadata"))?,
            fields: serde_json::from_str(&self.fields).map_err(|_| corrupt("fields"))?,
            records_count: u64::try_from(self.records_count).unwrap_or(0),
            data_modified_at: self.data_modified_at.map(from_ms).transpose()?,
            created_at: from_ms(self.created_at)?,
            modified_at: from_ms(self.modified_at)?,
            uid: self.uid,
            id: self.id,
        })
    }
}

pub(crate) fn parse_record(row: i64, id: String, data: &str) -> Result<StoredRecord> {
    match serde_json::from_str(data) {
        Ok(serde_json::Value::Object(data)) => Ok(StoredRecord { row, id, data }),
        _ => Err(crate::StoreError::Corrupt(format!("record {id} is not a JSON object"))),
    }
}

pub(crate) fn usage_column(kind: UsageKind) -> &'static str {
    match kind {
        UsageKind::View => "views",
        UsageKind::Download => "downloads",
        UsageKind::ApiCall => "api_calls",
    }
}

pub(crate) fn shared_json(d: &StoredDataset) -> String {
    serde_json::Value::from(d.shared_with.iter().map(|o| o.to_string()).collect::<Vec<_>>()).to_string()
}
