//! Alerts and their lifecycle, alert rules with the 30-day preview: for the
//! members of the organisations concerned (who sees and who acts is decided
//! in `policy/alerts.rs`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use socle_domain::{EntityId, OrganisationId};
use socle_rules::Rule;
use socle_storage::{AlertAction, AlertEventRecord, AlertRecord, AlertStatus, RuleRecord};
use utoipa::{IntoParams, ToSchema};

use crate::i18n::Lang;
use crate::policy::{AlertError, AlertQuery, AlertView};
use crate::problem::{ApiResult, Problem};
use crate::query::{ApiPath, ApiQuery};
use crate::routes::devices::read_small;
use crate::routes::entities::{parse_number, DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
use crate::web::layers::Layer;
use crate::{AppState, Caller};

/// Largest rule or action body accepted (JSON). A group of 1,000 entities fits.
const MAX_RULE_BYTES: usize = 256 * 1024;
const MAX_ACTION_BYTES: usize = 16 * 1024;

pub(crate) fn alert_problem(lang: Lang, e: AlertError, what: &str) -> Problem {
    match e {
        AlertError::NotFound => Problem::not_found(
            lang,
            "not-found",
            format!("Aucun objet visible : {what}."),
            format!("Nothing visible: {what}."),
        ),
        AlertError::Forbidden => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            lang,
            ("Accès refusé", "Forbidden"),
            lang.pick("Vos droits ne permettent pas cette action.", "Your rights do not allow this action."),
        ),
        AlertError::Invalid(why) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            lang,
            ("Demande refusée", "Request refused"),
            lang.pick(format!("Demande refusée : {why}."), format!("Request refused: {why}.")),
        ),
        AlertError::Resolved => Problem::new(
            StatusCode::CONFLICT,
            "alert-resolved",
            lang,
            ("Alerte close", "Alert resolved"),
            lang.pick(
                "Cette alerte est close : elle n'accepte plus que des commentaires.",
                "This alert is resolved: it only takes comments now.",
            ),
        ),
        AlertError::Preview(why) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "preview-failed",
            lang,
            ("Aperçu impossible", "Preview failed"),
            lang.pick(format!("L'aperçu n'a pas pu être calculé : {why}."), format!("The preview failed: {why}.")),
        ),
        AlertError::Store(e) => Problem::from_store(lang, e),
    }
}

fn no_alert(lang: Lang, id: i64) -> Problem {
    alert_problem(lang, AlertError::NotFound, &format!("alert {id}"))
}

/// An alert as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertDto {
    pub id: i64,
    pub rule: String,
    pub entity: String,
    pub entity_type: String,
    /// The entity's name, when it still exists.
    pub entity_name: Option<String>,
    pub organisation: String,
    /// `informational`, `low`, `medium`, `high`, `critical` (Smart Data Models `Alert`).
    pub severity: String,
    /// `open`, `acknowledged`, `resolved`.
    pub status: String,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    /// When the abnormal situation began.
    pub since: chrono::DateTime<chrono::Utc>,
    /// The figure that opened the alert.
    pub value: Option<f64>,
    /// In the language of the request (French by default).
    pub message: String,
    pub flapping: bool,
    pub acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
    pub resolved_by: Option<String>,
    /// `cleared` (by the engine), `withdrawn` (rule edited or deleted), `manual`.
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
}

impl AlertDto {
    pub fn new(a: &AlertRecord, entity_name: Option<String>, lang: Lang) -> Self {
        Self {
            id: a.id,
            rule: a.rule.clone(),
            entity: a.entity.to_string(),
            entity_type: a.entity_type.clone(),
            entity_name,
            organisation: a.organisation.to_string(),
            severity: a.severity.clone(),
            status: a.status.as_str().to_owned(),
            opened_at: a.opened_at,
            since: a.since,
            value: a.value,
            message: lang.pick(a.message_fr.clone(), a.message_en.clone()),
            flapping: a.flapping,
            acknowledged_at: a.acknowledged_at,
            acknowledged_by: a.acknowledged_by.clone(),
            resolved_at: a.resolved_at,
            resolved_by: a.resolved_by.clone(),
            resolution: a.resolution.clone(),
            assignee: a.assignee.clone(),
            modified_at: a.modified_at,
        }
    }
}

/// One entry of an alert's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertEventDto {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `opened`, `flapping`, `acknowledged`, `assigned`, `commented`, `resolved`.
    pub kind: String,
    /// User id; none for the engine.
    pub actor: Option<String>,
    /// A comment, the engine's message, or the new assignee.
    pub note: Option<String>,
}

impl AlertEventDto {
    fn new(e: &AlertEventRecord, lang: Lang) -> Self {
        let note = match lang {
            Lang::En => e.note_en.clone().or_else(|| e.note.clone()),
            Lang::Fr => e.note.clone(),
        };
        Self { at: e.at, kind: e.kind.as_str().to_owned(), actor: e.actor.clone(), note }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertDto,
    /// Oldest first, comments included.
    pub history: Vec<AlertEventDto>,
    /// Whether the caller may acknowledge, resolve, assign and comment.
    pub may_act: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    pub items: Vec<AlertDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// Organisation ids, comma-separated.
    pub organisation: Option<String>,
    /// `open`, `acknowledged`, `resolved`, comma-separated; `unresolved` for the first two.
    pub status: Option<String>,
    /// Severities, comma-separated.
    pub severity: Option<String>,
    /// A domain: `batiments`, `eclairage`, `eau`, `dechets`, `stationnement`, `air`, `risques`.
    pub domain: Option<String>,
    /// An entity id.
    pub entity: Option<String>,
    /// A rule id.
    pub rule: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<String>,
    /// Default 0.
    pub offset: Option<String>,
}

fn list_of(raw: Option<&str>) -> Option<Vec<&str>> {
    raw.map(|r| r.split(',').map(str::trim).filter(|s| !s.is_empty()).take(100).collect())
}

fn bad_param(lang: Lang, name: &str, raw: &str) -> Problem {
    Problem::bad_request(
        lang,
        "invalid-parameter",
        format!("Le paramètre « {name} » est invalide (reçu : {raw:?})."),
        format!("Parameter '{name}' is invalid (got {raw:?})."),
    )
}

/// Parses the filters of an alert list (the API's and the page's).
pub(crate) fn alert_query(lang: Lang, p: &AlertParams) -> ApiResult<AlertQuery> {
    let organisations = list_of(p.organisation.as_deref())
        .map(|l| {
            l.into_iter()
                .map(|o| OrganisationId::parse(o).map_err(|e| Problem::invalid_parameter(lang, "organisation", &e)))
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    let statuses = list_of(p.status.as_deref())
        .map(|l| {
            let mut out = Vec::new();
            for s in l {
                match s {
                    "unresolved" => out.extend([AlertStatus::Open, AlertStatus::Acknowledged]),
                    _ => out.push(AlertStatus::parse(s).ok_or_else(|| bad_param(lang, "status", s))?),
                }
            }
            Ok::<_, Problem>(out)
        })
        .transpose()?;
    let severities = list_of(p.severity.as_deref())
        .map(|l| {
            l.into_iter()
                .map(|s| {
                    socle_rules::Severity::ALL
                        .iter()
                        .find(|v| v.as_str() == s)
                        .map(|v| v.as_str().to_owned())
                        .ok_or_else(|| bad_param(lang, "severity", s))
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    let entity_types = match p.domain.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Some(
            Layer::from_slug(d)
                .ok_or_else(|| bad_param(lang, "domain", d))?
                .types()
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
        ),
        None => None,
    };
    let entity = p
        .entity
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(|e| EntityId::parse(e).map_err(|err| Problem::invalid_parameter(lang, "entity", &err)))
        .transpose()?;
    let rule = p.rule.as_deref().filter(|r| !r.is_empty()).map(str::to_owned);
    let limit = parse_number(lang, "limit", p.limit.as_deref(), DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = parse_number(lang, "offset", p.offset.as_deref(), 0, 0, MAX_OFFSET)?;
    Ok(AlertQuery { organisations, statuses, severities, entity_types, entity, rule, limit, offset })
}

/// Alerts the caller may see: unresolved first, then the most severe, then the oldest.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertParams), security(("bearer" = [])),
    responses((status = 200, body = AlertList),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<AlertParams>,
) -> ApiResult<Json<AlertList>> {
    let q = alert_query(lang, &p)?;
    let (limit, offset) = (q.limit, q.offset);
    let page = state.scoped(&caller).alerts(q).await.map_err(|e| Problem::from_store(lang, e))?;
    let items = page.items.into_iter().map(|(a, name)| AlertDto::new(&a, name, lang)).collect();
    Ok(Json(AlertList { total: page.total, limit, offset, items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertFormat {
    /// `ngsi-ld`: the alert as a Smart Data Models `Alert` entity (normalised NGSI-LD).
    pub format: Option<String>,
}

/// One alert with its history; `?format=ngsi-ld` gives the Smart Data Models `Alert` entity.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", params(("id" = i64, Path), AlertFormat),
    security(("bearer" = [])),
    responses((status = 200, body = AlertDetail),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(f): ApiQuery<AlertFormat>,
) -> ApiResult<Response> {
    let view = state.scoped(&caller).alert(id).await.map_err(|e| Problem::from_store(lang, e))?;
    let Some(AlertView { alert, entity, events, may_act }) = view else { return Err(no_alert(lang, id)) };
    match f.format.as_deref() {
        None | Some("" | "json") => {
            let name = entity.as_ref().and_then(|e| e.name().map(str::to_owned));
            let history = events.iter().map(|e| AlertEventDto::new(e, lang)).collect();
            Ok(Json(AlertDetail { alert: AlertDto::new(&alert, name, lang), history, may_act }).into_response())
        }
        Some("ngsi-ld") => {
            let location = entity.as_ref().and_then(|e| e.location.as_ref());
            let body = socle_alerting::ngsi::to_entity(&alert, location, lang == Lang::En);
            let mut res = Json(body).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
            Ok(res)
        }
        Some(other) => Err(bad_param(lang, "format", other)),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    lang: Lang,
    headers: &HeaderMap,
    body: Body,
    max: usize,
    what: (&str, &str),
) -> ApiResult<T> {
    let bytes = read_small(lang, headers, body, max, what).await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::bad_request(
            lang,
            "invalid-body",
            format!("{} illisible : {e}.", what.0),
            format!("Unreadable {}: {e}.", what.1.to_lowercase()),
        )
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveInput {
    /// Why it is closed (kept in the history).
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignInput {
    /// The user id of the person in charge; `null` removes the assignee.
    pub assignee: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    /// 1 to 4,000 characters.
    pub text: String,
}

async fn act(state: &AppState, caller: &Caller, lang: Lang, id: i64, action: AlertAction) -> ApiResult<Json<AlertDto>> {
    let change = state
        .scoped(caller)
        .act_on_alert(id, action)
        .await
        .map_err(|e| alert_problem(lang, e, &format!("alert {id}")))?;
    Ok(Json(AlertDto::new(&change.alert, None, lang)))
}

/// Acknowledges an alert: someone is on it (notifications stop escalating).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = AlertDto),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AlertDto>> {
    act(&state, &caller, lang, id, AlertAction::Acknowledge).await
}

/// Closes an alert by hand (the engine opens a new one only once the condition cleared and came back).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts", params(("id" = i64, Path)),
    request_body = ResolveInput, security(("bearer" = [])),
    responses((status = 200, body = AlertDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AlertDto>> {
    let input: ResolveInput =
        read_json(lang, &headers, body, MAX_ACTION_BYTES, ("Une clôture", "A resolution")).await?;
    let note = input.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > socle_storage::alerts::MAX_COMMENT) {
        return Err(alert_problem(lang, AlertError::Invalid("the note is too long".into()), ""));
    }
    act(&state, &caller, lang, id, AlertAction::Resolve { note }).await
}

/// Puts a person in charge of an alert (someone who may act on it), or nobody.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/assign", tag = "alerts", params(("id" = i64, Path)),
    request_body = AssignInput, security(("bearer" = [])),
    responses((status = 200, body = AlertDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AlertDto>> {
    let input: AssignInput =
        read_json(lang, &headers, body, MAX_ACTION_BYTES, ("Une affectation", "An assignment")).await?;
    let assignee = input.assignee.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    act(&state, &caller, lang, id, AlertAction::Assign { assignee }).await
}

/// Adds a comment to an alert's history (resolved alerts too).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/comments", tag = "alerts", params(("id" = i64, Path)),
    request_body = CommentInput, security(("bearer" = [])),
    responses((status = 200, body = AlertDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn comment(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AlertDto>> {
    let input: CommentInput =
        read_json(lang, &headers, body, MAX_ACTION_BYTES, ("Un commentaire", "A comment")).await?;
    act(&state, &caller, lang, id, AlertAction::Comment { text: input.text.trim().to_owned() }).await
}

/// A stored rule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleDto {
    pub id: String,
    pub organisation: String,
    pub enabled: bool,
    /// User id of the last author; none for rules Socle created (the demo's).
    pub author: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
    /// The rule (`label`, `target`, `severity`, `condition`, `timezone`,
    /// `resolveDelaySeconds`, `flapGuard`, `unit`), as accepted by POST and PUT.
    #[schema(value_type = Object)]
    pub definition: Value,
}

impl From<RuleRecord> for RuleDto {
    fn from(r: RuleRecord) -> Self {
        Self {
            id: r.id,
            organisation: r.organisation.to_string(),
            enabled: r.enabled,
            author: r.author,
            created_at: r.created_at,
            modified_at: r.modified_at,
            definition: r.definition,
        }
    }
}

/// A rule as sent to create, replace or preview it.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documents the request body; parsing uses socle_rules::RuleSpec
#[serde(rename_all = "camelCase")]
pub struct RuleInput {
    /// Letters, digits, `-` and `_`, at most 64; chosen by Socle when absent on creation.
    pub id: Option<String>,
    pub organisation: String,
    /// `{"fr": "Niveau de la rivière", "en": "River level"}`: what is watched.
    #[schema(value_type = Object)]
    pub label: Value,
    /// `{"entity": id}`, `{"type": "WasteContainer"}` or `{"group": [ids]}`.
    #[schema(value_type = Object)]
    pub target: Value,
    /// Default `medium`.
    pub severity: Option<String>,
    /// `{"type": "threshold" | "silence" | "batteryLow" | "rate" | "leak" | "fill" | "occupancy", …}`.
    #[schema(value_type = Object)]
    pub condition: Value,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Parses a rule body; `id` fills a missing id (creation) or must equal the body's (replacement).
pub(crate) fn parse_rule(lang: Lang, mut body: Value, id: Option<&str>) -> ApiResult<(Rule, bool)> {
    let invalid = |why: String| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-rule",
            lang,
            ("Règle invalide", "Invalid rule"),
            lang.pick(format!("Règle refusée : {why}."), format!("Rule refused: {why}.")),
        )
    };
    let Some(obj) = body.as_object_mut() else { return Err(invalid("a JSON object is expected".into())) };
    let enabled = match obj.remove("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(invalid("enabled must be true or false".into())),
    };
    match (obj.get("id").and_then(Value::as_str), id) {
        (Some(given), Some(id)) if given != id => {
            return Err(Problem::bad_request(
                lang,
                "rule-id-mismatch",
                format!("L'identifiant du corps ({given}) diffère de celui de l'adresse ({id})."),
                format!("The body's id ({given}) differs from the path's ({id})."),
            ))
        }
        (None, Some(id)) => {
            obj.insert("id".into(), json!(id));
        }
        (None, None) => {
            obj.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        _ => {}
    }
    let rule: Rule = serde_json::from_value(body).map_err(|e| invalid(e.to_string()))?;
    Ok((rule, enabled))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RuleParams {
    /// Organisation ids, comma-separated.
    pub organisation: Option<String>,
}

/// Rules of the organisations the caller belongs to.
#[utoipa::path(get, path = "/api/v1/rules", tag = "alerts", params(RuleParams), security(("bearer" = [])),
    responses((status = 200, body = Vec<RuleDto>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn rules(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<RuleParams>,
) -> ApiResult<Json<Vec<RuleDto>>> {
    let orgs = list_of(p.organisation.as_deref())
        .map(|l| {
            l.into_iter()
                .map(|o| OrganisationId::parse(o).map_err(|e| Problem::invalid_parameter(lang, "organisation", &e)))
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    let rules = state.scoped(&caller).rules(orgs).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(rules.into_iter().map(Into::into).collect()))
}

async fn read_rule_body(lang: Lang, headers: &HeaderMap, body: Body) -> ApiResult<Value> {
    read_json(lang, headers, body, MAX_RULE_BYTES, ("Une règle", "A rule")).await
}

/// Creates a rule (administrators of its organisation); the alerting service takes it at once.
#[utoipa::path(post, path = "/api/v1/rules", tag = "alerts", request_body = RuleInput, security(("bearer" = [])),
    responses((status = 201, body = RuleDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_rule(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<RuleDto>)> {
    let (rule, enabled) = parse_rule(lang, read_rule_body(lang, &headers, body).await?, None)?;
    let what = format!("rule {}", rule.id());
    let (saved, _) =
        state.scoped(&caller).save_rule(&rule, enabled, true).await.map_err(|e| alert_problem(lang, e, &what))?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/rules/{id}", tag = "alerts", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = RuleDto),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn rule(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RuleDto>> {
    match state.scoped(&caller).rule(&id).await.map_err(|e| Problem::from_store(lang, e))? {
        Some(r) => Ok(Json(r.into())),
        None => Err(alert_problem(lang, AlertError::NotFound, &format!("rule {id}"))),
    }
}

/// Creates or replaces a rule; its open alerts are withdrawn if the condition changed.
#[utoipa::path(put, path = "/api/v1/rules/{id}", tag = "alerts", params(("id" = String, Path)),
    request_body = RuleInput, security(("bearer" = [])),
    responses((status = 200, body = RuleDto, description = "Replaced"),
              (status = 201, body = RuleDto, description = "Created"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_rule(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<RuleDto>)> {
    let (rule, enabled) = parse_rule(lang, read_rule_body(lang, &headers, body).await?, Some(&id))?;
    let (saved, created) = state
        .scoped(&caller)
        .save_rule(&rule, enabled, false)
        .await
        .map_err(|e| alert_problem(lang, e, &format!("rule {id}")))?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(saved.into())))
}

/// Deletes a rule; its alerts stay in the history and the open ones are withdrawn.
#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "alerts", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.scoped(&caller).delete_rule(&id).await.map_err(|e| alert_problem(lang, e, &format!("rule {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// How often a rule (not saved) would have fired over the last 30 days of stored history.
#[utoipa::path(post, path = "/api/v1/rules/preview", tag = "alerts", request_body = RuleInput,
    security(("bearer" = [])),
    responses((status = 200, description = "`opened`, `resolved`, `stillOpen`, `entities`, `observations`, \
                `alerts` (the first ones), `truncated`", body = Object),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (rule, _) = parse_rule(lang, read_rule_body(lang, &headers, body).await?, None)?;
    let preview =
        state.scoped(&caller).preview_rule(&rule).await.map_err(|e| alert_problem(lang, e, "rule preview"))?;
    Ok(Json(serde_json::to_value(preview).unwrap_or(Value::Null)))
}
