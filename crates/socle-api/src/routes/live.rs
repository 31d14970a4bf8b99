//! `GET /api/v1/live`: Server-Sent Events of the observations just
//! committed, for the entities the caller may see (filtered by
//! [`crate::policy::LiveFeed`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use socle_domain::EntityId;
use utoipa::{IntoParams, ToSchema};

use crate::i18n::Lang;
use crate::problem::{ApiResult, Problem};
use crate::query::ApiQuery;
use crate::web::layers;
use crate::{AppState, Caller};

/// A connection ends after this long; the browser's `EventSource` reconnects
/// by itself (after `RETRY`), and the caller is authenticated afresh.
const CONNECTION: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// Only this entity's observations (its page).
    pub entity: Option<String>,
}

/// One observation as sent in an `observations` event (a JSON array of them).
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveValue {
    pub entity: String,
    pub attribute: String,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    #[serde(rename = "unitCode", skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
    #[serde(rename = "observedAt")]
    pub observed_at: chrono::DateTime<chrono::Utc>,
    /// The entity's new state on the map (`ok`, `on`, `off`, `warn`, `alert`, `fault`) when this attribute decides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
}

/// A change of an alert the caller may see, sent in an `alert` event (members only).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveAlert {
    pub id: i64,
    /// `opened`, `flapping`, `acknowledged`, `assigned`, `commented`, `resolved`.
    pub change: String,
    pub status: String,
    pub severity: String,
    pub entity: String,
}

/// Live values (Server-Sent Events, `text/event-stream`): each `observations`
/// event carries a JSON array of `LiveValue`; members also get an `alert` event
/// (`LiveAlert`) for each change of an alert they may see. The connection closes after five
/// minutes; `EventSource` reconnects by itself.
#[utoipa::path(get, path = "/api/v1/live", tag = "entities", params(LiveParams),
    responses((status = 200, description = "Server-Sent Events; `observations` events hold a JSON array of LiveValue",
               body = [LiveValue], content_type = "text/event-stream"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn live(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<LiveParams>,
) -> ApiResult<Response> {
    let scoped = state.scoped(&caller);
    let only = match p.entity.as_deref() {
        Some(raw) => {
            let id = EntityId::parse(raw).map_err(|e| Problem::invalid_parameter(lang, "entity", &e))?;
            if scoped.entity(&id).await.map_err(|e| Problem::from_store(lang, e))?.is_none() {
                return Err(Problem::from_store(lang, socle_storage::StoreError::UnknownEntity(raw.to_owned())));
            }
            Some(id)
        }
        None => None,
    };
    let feed = scoped.live(only);
    let alerts = scoped.alert_changes().map(|changes| (scoped, changes));
    let mut res = Sse::new(events(feed, alerts)).keep_alive(KeepAlive::default()).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies (nginx) would otherwise hold events back.
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

fn events(
    feed: crate::policy::LiveFeed,
    alerts: Option<(crate::policy::Scoped, tokio::sync::broadcast::Receiver<socle_storage::AlertChange>)>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let deadline = tokio::time::Instant::now() + CONNECTION;
    let hello = stream::once(async { Ok(Event::default().retry(RETRY).comment("socle")) });
    let batches = stream::unfold(feed, move |mut feed| async move {
        let batch = tokio::time::timeout_at(deadline, feed.next()).await.ok()??;
        let values: Vec<LiveValue> = batch
            .iter()
            .map(|(o, entity)| {
                let value = o.value.to_json();
                LiveValue {
                    entity: o.entity.to_string(),
                    attribute: o.attribute.to_string(),
                    state: layers::state_with(entity, o.attribute.as_str(), &value),
                    value,
                    unit_code: o.unit_code.as_ref().map(ToString::to_string),
                    observed_at: o.observed_at,
                }
            })
            .collect();
        let event = Event::default().event("observations").json_data(&values).ok()?;
        Some((Ok(event), feed))
    });
    // Alert changes, each checked against what the caller may see; a lagging
    // reader skips to the newest (the page re-reads the list anyway).
    let changes = stream::unfold(alerts, move |alerts| async move {
        let (scoped, mut rx) = alerts?;
        loop {
            let change = match tokio::time::timeout_at(deadline, rx.recv()).await.ok()? {
                Ok(c) => c,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            if !scoped.sees_alert(&change.alert).await.unwrap_or(false) {
                continue;
            }
            let a = &change.alert;
            let live = LiveAlert {
                id: a.id,
                change: change.kind.as_str().to_owned(),
                status: a.status.as_str().to_owned(),
                severity: a.severity.clone(),
                entity: a.entity.to_string(),
            };
            let event = Event::default().event("alert").json_data(&live).ok()?;
            return Some((Ok(event), Some((scoped, rx))));
        }
    });
    hello.chain(stream::select(batches, changes))
}
