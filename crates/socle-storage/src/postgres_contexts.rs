//! [`JsonLdContexts`] on PostgreSQL.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::contexts::{parse_context, ContextKind, JsonLdContexts, StoredContext, CONTEXT_COLUMNS};
use crate::postgres::PostgresStore;
use crate::rows::ms;
use crate::{Result, StoreError};

fn context(r: &Row) -> Result<StoredContext> {
    parse_context(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)
}

#[async_trait]
impl JsonLdContexts for PostgresStore {
    async fn add_context(&self, c: &StoredContext) -> Result<()> {
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO jsonld_contexts (id, url, kind, body, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[&c.id, &c.url, &c.kind.as_str(), &c.body, &ms(c.created_at)],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("context {}", c.url)));
        }
        Ok(())
    }

    async fn replace_context_body(&self, id: &str, body: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("UPDATE jsonld_contexts SET body = $2 WHERE id = $1", &[&id, &body]).await? > 0)
    }

    async fn context(&self, id: &str) -> Result<Option<StoredContext>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {CONTEXT_COLUMNS} FROM jsonld_contexts WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(context)
            .transpose()
    }

    async fn context_by_url(&self, url: &str) -> Result<Option<StoredContext>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {CONTEXT_COLUMNS} FROM jsonld_contexts WHERE url = $1"), &[&url])
            .await?
            .as_ref()
            .map(context)
            .transpose()
    }

    async fn list_contexts(&self, kind: Option<ContextKind>) -> Result<Vec<StoredContext>> {
        let client = self.client().await?;
        let kind = kind.map(ContextKind::as_str);
        client
            .query(
                &format!(
                    "SELECT {CONTEXT_COLUMNS} FROM jsonld_contexts WHERE $1::text IS NULL OR kind = $1 ORDER BY created_at, id"
                ),
                &[&kind],
            )
            .await?
            .iter()
            .map(context)
            .collect()
    }

    async fn delete_context(&self, id: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM jsonld_contexts WHERE id = $1", &[&id]).await? > 0)
    }
}
