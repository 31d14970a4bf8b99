//! [`Datasets`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use crate::datasets::{
    parse_record, usage_column, DatasetUsage, Datasets, RawDataset, StoredAttachment, StoredDataset, StoredRecord,
    UsageKind, DATASET_COLUMNS,
};
use crate::postgres::PostgresStore;
use crate::rows::{from_ms, ms};
use crate::{Result, StoreError};

fn raw_dataset(r: &Row) -> RawDataset {
    RawDataset {
        id: r.get(0),
        uid: r.get(1),
        organisation: r.get(2),
        visibility: r.get(3),
        metadata: r.get(4),
        fields: r.get(5),
        records_count: r.get(6),
        data_modified_at: r.get(7),
        created_at: r.get(8),
        modified_at: r.get(9),
        shared_with: r.get(10),
    }
}

/// Rows are inserted this many at a time (one multi-row statement each).
const INSERT_CHUNK: usize = 500;

#[async_trait]
impl Datasets for PostgresStore {
    async fn put_dataset(&self, d: &StoredDataset) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO datasets (id, uid, organisation_id, visibility, metadata, fields, records_count,
                                   data_modified_at, created_at, modified_at, shared_with)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET visibility = excluded.visibility, metadata = excluded.metadata,
                 fields = excluded.fields, modified_at = excluded.modified_at,
                 shared_with = excluded.shared_with",
            &[
                &d.id,
                &d.uid,
                &d.organisation.to_string(),
                &d.visibility.as_str(),
                &d.metadata.to_string(),
                &d.fields.to_string(),
                &d.data_modified_at.map(ms),
                &ms(d.created_at),
                &ms(d.modified_at),
                &crate::datasets::shared_json(d),
            ],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                StoreError::UnknownOrganisation(d.organisation.to_string())
            } else {
                e.into()
            }
        })?;
        tx.execute("INSERT INTO dataset_usage (dataset_id) VALUES ($1) ON CONFLICT DO NOTHING", &[&d.id]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dataset(&self, id: &str) -> Result<Option<StoredDataset>> {
        let client = self.client().await?;
        let row = client.query_opt(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1"), &[&id]).await?;
        row.map(|r| raw_dataset(&r).parse()).transpose()
    }

    async fn list_datasets(&self) -> Result<Vec<StoredDataset>> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {DATASET_COLUMNS} FROM datasets ORDER BY id"), &[]).await?;
        rows.iter().map(|r| raw_dataset(r).parse()).collect()
    }

    async fn replace_records(
        &self,
        id: &str,
        fields: &serde_json::Value,
        records: &[StoredRecord],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM dataset_records WHERE dataset_id = $1", &[&id]).await?;
        for chunk in records.chunks(INSERT_CHUNK) {
            let rows: Vec<i64> = chunk.iter().map(|r| r.row).collect();
            let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
            let data: Vec<String> =
                chunk.iter().map(|r| serde_json::Value::Object(r.data.clone()).to_string()).collect();
            tx.execute(
                "INSERT INTO dataset_records (dataset_id, row_number, record_id, data)
                 SELECT $1, * FROM UNNEST($2::int8[], $3::text[], $4::text[])",
                &[&id, &rows, &ids, &data],
            )
            .await?;
        }
        let updated = tx
            .execute(
                "UPDATE datasets SET fields = $2, records_count = $3, data_modified_at = $4, modified_at = $4
                 WHERE id = $1",
                &[&id, &fields.to_string(), &(records.len() as i64), &ms(at)],
            )
            .await?;
        if updated == 0 {
            return Err(StoreError::Corrupt(format!("dataset {id} does not exist")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn records_chunk(&self, id: &str, after_row: i64, limit: usize) -> Result<Vec<StoredRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT row_number, record_id, data FROM dataset_records
                 WHERE dataset_id = $1 AND row_number > $2 ORDER BY row_number LIMIT $3",
                &[&id, &after_row, &(limit as i64)],
            )
            .await?;
        rows.iter().map(|r| parse_record(r.get(0), r.get(1), r.get::<_, &str>(2))).collect()
    }

    async fn record(&self, id: &str, record_id: &str) -> Result<Option<StoredRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT row_number, record_id, data FROM dataset_records WHERE dataset_id = $1 AND record_id = $2",
                &[&id, &record_id],
            )
            .await?;
        row.map(|r| parse_record(r.get(0), r.get(1), r.get::<_, &str>(2))).transpose()
    }

    async fn put_attachment(&self, id: &str, a: &StoredAttachment) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO dataset_attachments (dataset_id, name, title, media_type, content, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (dataset_id, name) DO UPDATE SET title = excluded.title,
                     media_type = excluded.media_type, content = excluded.content",
                &[&id, &a.name, &a.title, &a.media_type, &a.content, &ms(a.created_at)],
            )
            .await?;
        Ok(())
    }

    async fn attachments(&self, id: &str) -> Result<Vec<StoredAttachment>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, title, media_type, octet_length(content)::int8, created_at FROM dataset_attachments
                 WHERE dataset_id = $1 ORDER BY name",
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredAttachment {
                    name: r.get(0),
                    title: r.get(1),
                    media_type: r.get(2),
                    content: Vec::new(),
                    size: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                    created_at: from_ms(r.get(4))?,
                })
            })
            .collect()
    }

    async fn attachment(&self, id: &str, name: &str) -> Result<Option<StoredAttachment>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name, title, media_type, content, created_at FROM dataset_attachments
                 WHERE dataset_id = $1 AND name = $2",
                &[&id, &name],
            )
            .await?;
        row.map(|r| {
            let content: Vec<u8> = r.get(3);
            Ok(StoredAttachment {
                name: r.get(0),
                title: r.get(1),
                media_type: r.get(2),
                size: content.len() as u64,
                content,
                created_at: from_ms(r.get(4))?,
            })
        })
        .transpose()
    }

    async fn count_usage(&self, id: &str, kind: UsageKind) -> Result<()> {
        let client = self.client().await?;
        let column = usage_column(kind);
        client
            .execute(&format!("UPDATE dataset_usage SET {column} = {column} + 1 WHERE dataset_id = $1"), &[&id])
            .await?;
        Ok(())
    }

    async fn usage(&self, id: &str) -> Result<DatasetUsage> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT views, downloads, api_calls FROM dataset_usage WHERE dataset_id = $1", &[&id])
            .await?;
        Ok(row
            .map(|r| DatasetUsage {
                views: r.get::<_, i64>(0) as u64,
                downloads: r.get::<_, i64>(1) as u64,
                api_calls: r.get::<_, i64>(2) as u64,
            })
            .unwrap_or_default())
    }
}
