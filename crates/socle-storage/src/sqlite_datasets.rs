//! [`Datasets`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use crate::datasets::{
    parse_record, usage_column, DatasetUsage, Datasets, RawDataset, StoredAttachment, StoredDataset, StoredRecord,
    UsageKind, DATASET_COLUMNS,
};
use crate::rows::{from_ms, ms};
use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};

fn raw_dataset(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDataset> {
    Ok(RawDataset {
        id: r.get(0)?,
        uid: r.get(1)?,
        organisation: r.get(2)?,
        visibility: r.get(3)?,
        metadata: r.get(4)?,
        fields: r.get(5)?,
        records_count: r.get(6)?,
        data_modified_at: r.get(7)?,
        created_at: r.get(8)?,
        modified_at: r.get(9)?,
        shared_with: r.get(10)?,
    })
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

#[async_trait]
impl Datasets for SqliteStore {
    async fn put_dataset(&self, d: &StoredDataset) -> Result<()> {
        let d = d.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO datasets (id, uid, organisation_id, visibility, metadata, fields, records_count,
                                       data_modified_at, created_at, modified_at, shared_with)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO UPDATE SET visibility = excluded.visibility, metadata = excluded.metadata,
                     fields = excluded.fields, modified_at = excluded.modified_at,
                     shared_with = excluded.shared_with",
                params![
                    d.id,
                    d.uid,
                    d.organisation.to_string(),
                    d.visibility.as_str(),
                    d.metadata.to_string(),
                    d.fields.to_string(),
                    d.data_modified_at.map(ms),
                    ms(d.created_at),
                    ms(d.modified_at),
                    crate::datasets::shared_json(&d)
                ],
            )
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::UnknownOrganisation(d.organisation.to_string())
                } else {
                    e.into()
                }
            })?;
            c.execute("INSERT OR IGNORE INTO dataset_usage (dataset_id) VALUES (?1)", params![d.id])?;
            Ok(())
        })
        .await
    }

    async fn dataset(&self, id: &str) -> Result<Option<StoredDataset>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = ?1"), params![id], raw_dataset)
                .optional()?
                .map(RawDataset::parse)
                .transpose()
        })
        .await
    }

    async fn list_datasets(&self) -> Result<Vec<StoredDataset>> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!("SELECT {DATASET_COLUMNS} FROM datasets ORDER BY id"))?;
            let rows = stmt.query_map([], raw_dataset)?.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(RawDataset::parse).collect()
        })
        .await
    }

    async fn replace_records(
        &self,
        id: &str,
        fields: &serde_json::Value,
        records: &[StoredRecord],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let id = id.to_owned();
        let fields = fields.to_string();
        let records = records.to_vec();
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM dataset_records WHERE dataset_id = ?1", params![id])?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO dataset_records (dataset_id, row_number, record_id, data) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for r in &records {
                    insert.execute(params![id, r.row, r.id, serde_json::Value::Object(r.data.clone()).to_string()])?;
                }
            }
            let updated = tx.execute(
                "UPDATE datasets SET fields = ?2, records_count = ?3, data_modified_at = ?4, modified_at = ?4
                 WHERE id = ?1",
                params![id, fields, records.len() as i64, ms(at)],
            )?;
            if updated == 0 {
                return Err(StoreError::Corrupt(format!("dataset {id} does not exist")));
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn records_chunk(&self, id: &str, after_row: i64, limit: usize) -> Result<Vec<StoredRecord>> {
        let id = id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT row_number, record_id, data FROM dataset_records
                 WHERE dataset_id = ?1 AND row_number > ?2 ORDER BY row_number LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![id, after_row, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|(row, rid, data)| parse_record(row, rid, &data)).collect()
        })
        .await
    }

    async fn record(&self, id: &str, record_id: &str) -> Result<Option<StoredRecord>> {
        let (id, record_id) = (id.to_owned(), record_id.to_owned());
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT row_number, record_id, data FROM dataset_records WHERE dataset_id = ?1 AND record_id = ?2",
                    params![id, record_id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
                )
                .optional()?;
            row.map(|(row, rid, data)| parse_record(row, rid, &data)).transpose()
        })
        .await
    }

    async fn put_attachment(&self, id: &str, a: &StoredAttachment) -> Result<()> {
        let (id, a) = (id.to_owned(), a.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO dataset_attachments (dataset_id, name, title, media_type, content, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (dataset_id, name) DO UPDATE SET title = excluded.title,
                     media_type = excluded.media_type, content = excluded.content",
                params![id, a.name, a.title, a.media_type, a.content, ms(a.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn attachments(&self, id: &str) -> Result<Vec<StoredAttachment>> {
        let id = id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT name, title, media_type, length(content), created_at FROM dataset_attachments
                 WHERE dataset_id = ?1 ORDER BY name",
            )?;
            let rows = stmt
                .query_map(params![id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(name, title, media_type, size, at)| {
                    Ok(StoredAttachment {
                        name,
                        title,
                        media_type,
                        content: Vec::new(),
                        size: u64::try_from(size).unwrap_or(0),
                        created_at: from_ms(at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn attachment(&self, id: &str, name: &str) -> Result<Option<StoredAttachment>> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT name, title, media_type, content, created_at FROM dataset_attachments
                     WHERE dataset_id = ?1 AND name = ?2",
                    params![id, name],
                    |r| {
                        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, Vec<u8>>(3)?, r.get::<_, i64>(4)?))
                    },
                )
                .optional()?;
            row.map(|(name, title, media_type, content, at)| {
                Ok(StoredAttachment {
                    name,
                    title,
                    media_type,
                    size: content.len() as u64,
                    content,
                    created_at: from_ms(at)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn count_usage(&self, id: &str, kind: UsageKind) -> Result<()> {
        let id = id.to_owned();
        let column = usage_column(kind);
        self.write(move |c| {
            c.execute(&format!("UPDATE dataset_usage SET {column} = {column} + 1 WHERE dataset_id = ?1"), params![id])?;
            Ok(())
        })
        .await
    }

    async fn usage(&self, id: &str) -> Result<DatasetUsage> {
        let id = id.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT views, downloads, api_calls FROM dataset_usage WHERE dataset_id = ?1",
                    params![id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
                )
                .optional()?;
            Ok(row
                .map(|(v, d, a)| DatasetUsage { views: v as u64, downloads: d as u64, api_calls: a as u64 })
                .unwrap_or_default())
        })
        .await
    }
}
