//! [`JsonLdContexts`] on SQLite.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use crate::contexts::{parse_context, ContextKind, JsonLdContexts, StoredContext, CONTEXT_COLUMNS};
use crate::rows::ms;
use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};

type Row = (String, String, String, String, i64);
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

#[async_trait]
impl JsonLdContexts for SqliteStore {
    async fn add_context(&self, c: &StoredContext) -> Result<()> {
        let c = c.clone();
        self.write(move |conn| {
            let n = conn.execute(
                "INSERT INTO jsonld_contexts (id, url, kind, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![c.id, c.url, c.kind.as_str(), c.body, ms(c.created_at)],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("context {}", c.url)));
            }
            Ok(())
        })
        .await
    }

    async fn replace_context_body(&self, id: &str, body: &str) -> Result<bool> {
        let (id, body) = (id.to_owned(), body.to_owned());
        self.write(move |c| Ok(c.execute("UPDATE jsonld_contexts SET body = ?2 WHERE id = ?1", params![id, body])? > 0))
            .await
    }

    async fn context(&self, id: &str) -> Result<Option<StoredContext>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {CONTEXT_COLUMNS} FROM jsonld_contexts WHERE id = ?1"))?
                .query_row([id], row)
                .optional()?
                .map(|(a, b, k, d, e)| parse_context(a, b, k, d, e))
                .transpose()
        })
        .await
    }

    async fn context_by_url(&self, url: &str) -> Result<Option<StoredContext>> {
        let url = url.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {CONTEXT_COLUMNS} FROM jsonld_contexts WHERE url = ?1"))?
                .query_row([url], row)
                .optional()?
                .map(|(a, b, k, d, e)| parse_context(a, b, k, d, e))
                .transpose()
        })
        .await
    }

    async fn list_contexts(&self, kind: Option<ContextKind>) -> Result<Vec<StoredContext>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CONTEXT_COLUMNS} FROM jsonld_contexts WHERE ?1 IS NULL OR kind = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([kind.map(ContextKind::as_str)], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|(a, b, k, d, e)| parse_context(a, b, k, d, e)).collect()
        })
        .await
    }

    async fn delete_context(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM jsonld_contexts WHERE id = ?1", [id])? > 0)).await
    }
}
