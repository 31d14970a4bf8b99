//! The demo's NGSI-LD context: a context hosted by the instance that names
//! the territory's types and attributes in French, as a commune's own tools
//! would (`GET /ngsi-ld/v1/entities?type=Conteneur&q=niveauRemplissage>0.8`
//! with its `Link`). Served from the store, so it works off-line.

use chrono::Utc;
use serde_json::json;
use socle_storage::{ContextKind, DynStore, StoreError, StoredContext};

/// Local id of the demo's context.
pub const CONTEXT_ID: &str = "contexte-communes-fr";

/// Hosts the context once (a restart keeps the one stored); returns its URL.
pub async fn create(store: &DynStore, public_url: &str) -> anyhow::Result<String> {
    let vocab = "https://uri.etsi.org/ngsi-ld/default-context/";
    let terms = [
        ("Conteneur", "WasteContainer"),
        ("Lampadaire", "Streetlight"),
        ("Armoire", "StreetlightControlCabinet"),
        ("Alerte", "Alert"),
        ("niveauRemplissage", "fillingLevel"),
        ("etat", "status"),
        ("puissanceActive", "activePower"),
        ("gravite", "severity"),
        ("source", "alertSource"),
        ("nom", "name"),
    ];
    let context: serde_json::Map<String, serde_json::Value> =
        terms.iter().map(|(fr, term)| ((*fr).to_owned(), json!(format!("{vocab}{term}")))).collect();
    let url = format!("{}/ngsi-ld/v1/jsonldContexts/{CONTEXT_ID}", public_url.trim_end_matches('/'));
    let c = StoredContext {
        id: CONTEXT_ID.into(),
        url: url.clone(),
        kind: ContextKind::Hosted,
        body: json!({"@context": context}).to_string(),
        created_at: Utc::now(),
    };
    match store.add_context(&c).await {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(url),
        Err(e) => Err(e.into()),
    }
}
