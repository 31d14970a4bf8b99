//! JSON-LD `@context` documents held for the NGSI-LD API: contexts users
//! host here, and remote ones fetched once and kept so that later requests
//! naming them work without the network (a commune's server may have none).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::rows::from_ms;
use crate::{Result, StoreError};

/// Where a context came from (the `kind` of NGSI-LD's `jsonldContexts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// Added by a user with `POST /jsonldContexts`, served by this server.
    Hosted,
    /// Fetched from its URL the first time a request named it.
    Cached,
    /// Given inline in a request and kept so that it has a URL.
    ImplicitlyCreated,
}

impl ContextKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hosted => "hosted",
            Self::Cached => "cached",
            Self::ImplicitlyCreated => "implicitlyCreated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Hosted, Self::Cached, Self::ImplicitlyCreated].into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredContext {
    /// The local id, the last segment of `/jsonldContexts/{id}`.
    pub id: String,
    /// The URL clients name it by (unique).
    pub url: String,
    pub kind: ContextKind,
    /// The JSON-LD document, as text.
    pub body: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) const CONTEXT_COLUMNS: &str = "id, url, kind, body, created_at";

pub(crate) fn parse_context(id: String, url: String, kind: String, body: String, at: i64) -> Result<StoredContext> {
    let kind = ContextKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("context kind {kind:?}")))?;
    Ok(StoredContext { id, url, kind, body, created_at: from_ms(at)? })
}

#[async_trait]
pub trait JsonLdContexts {
    /// Adds a context; one with the same URL already held is refused with
    /// [`StoreError::Conflict`] (two requests may fetch it at once).
    async fn add_context(&self, c: &StoredContext) -> Result<()>;
    /// Replaces the body of a held context (a cached one reloaded); `false` if absent.
    async fn replace_context_body(&self, id: &str, body: &str) -> Result<bool>;
    async fn context(&self, id: &str) -> Result<Option<StoredContext>>;
    async fn context_by_url(&self, url: &str) -> Result<Option<StoredContext>>;
    /// All held contexts, or those of one kind, oldest first.
    async fn list_contexts(&self, kind: Option<ContextKind>) -> Result<Vec<StoredContext>>;
    async fn delete_context(&self, id: &str) -> Result<bool>;
}
