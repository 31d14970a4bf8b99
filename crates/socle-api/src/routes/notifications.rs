//! Notification settings: the caller's subscriptions, the browsers it
//! registered for Web Push, and its organisations' webhooks (administrators).
//! Bodies are checked by `socle_notify` (`SubscriptionSpec`, `WebhookSpec`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use socle_domain::OrganisationId;
use socle_notify::{SubscriptionSpec, WebhookSpec};
use socle_storage::{StoredSubscription, StoredWebhook};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::i18n::Lang;
use crate::policy::AlertError;
use crate::problem::{ApiResult, Problem};
use crate::query::ApiPath;
use crate::routes::alerts::alert_problem;
use crate::routes::devices::read_small;
use crate::{AppState, Caller};

/// A subscription's area may hold 10,000 positions.
const MAX_SUBSCRIPTION_BYTES: usize = 512 * 1024;
const MAX_SMALL_BYTES: usize = 16 * 1024;

fn refused(lang: Lang, code: &'static str, why: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        lang,
        ("Demande refusée", "Request refused"),
        lang.pick(format!("Demande refusée : {why}."), format!("Request refused: {why}.")),
    )
}

async fn read_value(lang: Lang, headers: &HeaderMap, body: Body, max: usize, what: (&str, &str)) -> ApiResult<Value> {
    let bytes = read_small(lang, headers, body, max, what).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(
            lang,
            "invalid-body",
            format!("{} illisible : {e}.", what.0),
            format!("Unreadable {}: {e}.", what.1.to_lowercase()),
        )
    })
}

/// One of the caller's subscriptions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDto {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
    /// `organisations`, `domains`, `minSeverity`, `area` (GeoJSON polygon), `channels`
    /// (`email`, `webpush`, `sms`), `quietHours`, `escalation`, `resolved`, `language`.
    #[schema(value_type = Object)]
    pub spec: Value,
}

impl From<StoredSubscription> for SubscriptionDto {
    fn from(s: StoredSubscription) -> Self {
        Self { id: s.id, created_at: s.created_at, modified_at: s.modified_at, spec: s.spec }
    }
}

async fn read_subscription(lang: Lang, caller: &Caller, headers: &HeaderMap, body: Body) -> ApiResult<Value> {
    let value = read_value(lang, headers, body, MAX_SUBSCRIPTION_BYTES, ("Un abonnement", "A subscription")).await?;
    let spec: SubscriptionSpec = serde_json::from_value(value).map_err(|e| refused(lang, "invalid-subscription", e))?;
    let owner = caller.user().map_or(Uuid::nil(), |u| u.0);
    spec.validate(owner).map_err(|e| refused(lang, "invalid-subscription", e))?;
    Ok(serde_json::to_value(&spec).unwrap_or(Value::Null))
}

/// The caller's notification subscriptions.
#[utoipa::path(get, path = "/api/v1/me/subscriptions", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Vec<SubscriptionDto>),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
) -> ApiResult<Json<Vec<SubscriptionDto>>> {
    let list = state.scoped(&caller).my_subscriptions().await.map_err(|e| alert_problem(lang, e, "subscriptions"))?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Subscribes the caller to alerts (what, where, how, when).
#[utoipa::path(post, path = "/api/v1/me/subscriptions", tag = "notifications", security(("bearer" = [])),
    request_body(content = Object, description = "A subscription: `channels` is required"),
    responses((status = 201, body = SubscriptionDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<SubscriptionDto>)> {
    let spec = read_subscription(lang, &caller, &headers, body).await?;
    let saved = state
        .scoped(&caller)
        .save_my_subscription(None, spec)
        .await
        .map_err(|e| alert_problem(lang, e, "subscription"))?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

fn no_subscription(lang: Lang, id: Uuid) -> Problem {
    alert_problem(lang, AlertError::NotFound, &format!("subscription {id}"))
}

/// One of the caller's subscriptions.
#[utoipa::path(get, path = "/api/v1/me/subscriptions/{id}", tag = "notifications",
    params(("id" = String, Path, description = "UUID")), security(("bearer" = [])),
    responses((status = 200, body = SubscriptionDto),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn subscription(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SubscriptionDto>> {
    match state.scoped(&caller).my_subscription(id).await.map_err(|e| alert_problem(lang, e, "subscription"))? {
        Some(s) => Ok(Json(s.into())),
        None => Err(no_subscription(lang, id)),
    }
}

/// Replaces one of the caller's subscriptions.
#[utoipa::path(put, path = "/api/v1/me/subscriptions/{id}", tag = "notifications",
    params(("id" = String, Path, description = "UUID")), security(("bearer" = [])),
    request_body(content = Object, description = "A subscription"),
    responses((status = 200, body = SubscriptionDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_subscription(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SubscriptionDto>> {
    let spec = read_subscription(lang, &caller, &headers, body).await?;
    let saved = state
        .scoped(&caller)
        .save_my_subscription(Some(id), spec)
        .await
        .map_err(|e| alert_problem(lang, e, &format!("subscription {id}")))?;
    Ok(Json(saved.into()))
}

/// Deletes one of the caller's subscriptions.
#[utoipa::path(delete, path = "/api/v1/me/subscriptions/{id}", tag = "notifications",
    params(("id" = String, Path, description = "UUID")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state
        .scoped(&caller)
        .delete_my_subscription(id)
        .await
        .map_err(|e| alert_problem(lang, e, &format!("subscription {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook; its secret is shown only in the answer that creates it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDto {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub organisation: String,
    pub url: String,
    /// The HMAC-SHA256 key of `Socle-Signature`: in the creation answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `domains`, `minSeverity`.
    #[schema(value_type = Object)]
    pub spec: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl WebhookDto {
    fn new(w: StoredWebhook, with_secret: bool) -> Self {
        Self {
            id: w.id,
            organisation: w.organisation.to_string(),
            url: w.url,
            secret: with_secret.then_some(w.secret),
            spec: w.spec,
            created_at: w.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookInput {
    pub organisation: String,
    /// http or https.
    pub url: String,
    #[serde(default)]
    pub domains: Vec<String>,
    /// Default `informational`.
    pub min_severity: Option<String>,
}

/// Webhooks of the organisations the caller administers.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Vec<WebhookDto>),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn webhooks(State(state): State<AppState>, caller: Caller, lang: Lang) -> ApiResult<Json<Vec<WebhookDto>>> {
    let list = state.scoped(&caller).webhooks().await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(list.into_iter().map(|w| WebhookDto::new(w, false)).collect()))
}

/// Adds a webhook to an organisation the caller administers; the answer holds its secret, once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "notifications", request_body = WebhookInput,
    security(("bearer" = [])),
    responses((status = 201, body = WebhookDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<WebhookDto>)> {
    let value = read_value(lang, &headers, body, MAX_SMALL_BYTES, ("Un webhook", "A webhook")).await?;
    let input: WebhookInput = serde_json::from_value(value).map_err(|e| refused(lang, "invalid-webhook", e))?;
    let organisation = OrganisationId::parse(&input.organisation).map_err(|e| refused(lang, "invalid-webhook", e))?;
    socle_notify::subscription::check_webhook_url(&input.url).map_err(|e| refused(lang, "invalid-webhook", e))?;
    let spec = serde_json::json!({"domains": input.domains, "minSeverity": input.min_severity.unwrap_or_else(|| "informational".into())});
    let spec: WebhookSpec = serde_json::from_value(spec).map_err(|e| refused(lang, "invalid-webhook", e))?;
    spec.validate().map_err(|e| refused(lang, "invalid-webhook", e))?;
    let spec = serde_json::to_value(&spec).unwrap_or(Value::Null);
    let saved = state
        .scoped(&caller)
        .create_webhook(organisation, input.url, spec)
        .await
        .map_err(|e| alert_problem(lang, e, "webhook"))?;
    Ok((StatusCode::CREATED, Json(WebhookDto::new(saved, true))))
}

/// One webhook (without its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "notifications", params(("id" = String, Path, description = "UUID")),
    security(("bearer" = [])),
    responses((status = 200, body = WebhookDto),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn webhook(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<WebhookDto>> {
    match state.scoped(&caller).webhook(id).await.map_err(|e| Problem::from_store(lang, e))? {
        Some(w) => Ok(Json(WebhookDto::new(w, false))),
        None => Err(alert_problem(lang, AlertError::NotFound, &format!("webhook {id}"))),
    }
}

/// Removes a webhook (deliveries already queued are still attempted).
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "notifications", params(("id" = String, Path, description = "UUID")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state.scoped(&caller).delete_webhook(id).await.map_err(|e| alert_problem(lang, e, &format!("webhook {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PushSubscription.toJSON()` of the Push API.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushInput {
    /// The push service's URL for this browser (https).
    pub endpoint: String,
    pub keys: PushKeys,
    /// Ignored: push services announce expiry by answering 404/410.
    #[allow(dead_code)] // part of toJSON(), accepted so browsers can post it as it is
    #[schema(value_type = Option<f64>)]
    pub expiration_time: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PushKeys {
    /// The browser's P-256 public key, base64url (65 bytes).
    pub p256dh: String,
    /// The authentication secret, base64url (16 bytes).
    pub auth: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushCreated {
    #[schema(value_type = String)]
    pub id: Uuid,
}

/// Registers the caller's browser for Web Push (the page posts `subscription.toJSON()`).
#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "notifications", request_body = PushInput,
    security(("bearer" = [])),
    responses((status = 201, body = PushCreated),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_push(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<PushCreated>)> {
    let value =
        read_value(lang, &headers, body, MAX_SMALL_BYTES, ("Un abonnement push", "A push subscription")).await?;
    let input: PushInput = serde_json::from_value(value).map_err(|e| refused(lang, "invalid-push-subscription", e))?;
    socle_notify::subscription::check_webhook_url(&input.endpoint)
        .map_err(|e| refused(lang, "invalid-push-subscription", e))?;
    let key_ok = socle_notify::webpush::unb64(&input.keys.p256dh).is_some_and(|k| k.len() == 65 && k[0] == 4);
    let auth_ok = socle_notify::webpush::unb64(&input.keys.auth).is_some_and(|k| k.len() == 16);
    if !key_ok || !auth_ok {
        return Err(refused(
            lang,
            "invalid-push-subscription",
            "keys.p256dh must be an uncompressed P-256 key and keys.auth 16 bytes, in base64url",
        ));
    }
    let id = state
        .scoped(&caller)
        .add_push_subscription(input.endpoint, input.keys.p256dh, input.keys.auth)
        .await
        .map_err(|e| alert_problem(lang, e, "push subscription"))?;
    Ok((StatusCode::CREATED, Json(PushCreated { id })))
}

/// Unregisters one of the caller's browsers.
#[utoipa::path(delete, path = "/api/v1/push/subscriptions/{id}", tag = "notifications",
    params(("id" = String, Path, description = "UUID")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_push(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state
        .scoped(&caller)
        .delete_push_subscription(id)
        .await
        .map_err(|e| alert_problem(lang, e, &format!("push subscription {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VapidKey {
    /// The application server key for `pushManager.subscribe` (base64url, uncompressed P-256).
    pub public_key: String,
}

/// The public key browsers subscribe to Web Push with.
#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "notifications",
    responses((status = 200, body = VapidKey),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn vapid_public_key(State(state): State<AppState>, lang: Lang) -> ApiResult<Json<VapidKey>> {
    match state.vapid_public_key() {
        Some(k) => Ok(Json(VapidKey { public_key: k.to_owned() })),
        None => Err(Problem::unavailable(lang)),
    }
}
