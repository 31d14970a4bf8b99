//! Devices, their mappings and health, bulk import, and dead letters: for
//! the administrators and agents of the devices' organisations.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::OrganisationId;
use socle_ingest::{DevEui, Device};
use socle_storage::{DeadLetter, DeadLetterFilter, DeviceRecord, Downlink};
use utoipa::{IntoParams, ToSchema};

use crate::i18n::Lang;
use crate::policy::ManageError;
use crate::problem::{ApiResult, Problem};
use crate::query::{ApiPath, ApiQuery};
use crate::routes::entities::{parse_number, DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
use crate::routes::ingest::{read_limited, rejection_response, IngestOutcome, Read};
use crate::{AppState, Caller};

/// Largest device definition accepted (JSON).
const MAX_DEVICE_BYTES: usize = 256 * 1024;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceHealthDto {
    /// Newest frame or status event.
    pub last_seen: Option<DateTime<Utc>>,
    /// Seconds since `lastSeen`, at the time of the answer.
    pub silent_seconds: Option<i64>,
    /// Battery level in percent, from the last status event.
    pub battery: Option<f64>,
    /// Demodulation margin (dB) of the last status event.
    pub margin: Option<i32>,
    /// Best RSSI (dBm) and SNR (dB) of the newest frame.
    pub rssi: Option<i32>,
    pub snr: Option<f64>,
    /// Frame counter of the newest frame.
    pub f_cnt: Option<u32>,
    /// Frames stored (copies and retries not counted).
    pub frames_received: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDto {
    /// 16 hexadecimal digits, lowercase.
    pub dev_eui: String,
    /// Unique in the organisation; the generic push may name the device by it.
    pub name: String,
    /// Device model: the codec used when the network server does not decode (`dragino-ldds75`).
    pub model: String,
    pub organisation: String,
    /// The entity its values feed.
    pub entity: String,
    /// `[{"field": "Distance", "attribute": "fillingLevel", "unitCode": "P1", "kind": "number",
    /// "transform": {"type": "expression", "formula": "100 * (1 - value / depth)"}, "range": [0, 100]}]`;
    /// transforms: `identity`, `linear` (`scale`, `offset`), `expression` (`formula`).
    #[schema(value_type = Vec<Object>)]
    pub mappings: serde_json::Value,
    pub health: DeviceHealthDto,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

impl From<DeviceRecord> for DeviceDto {
    fn from(r: DeviceRecord) -> Self {
        let h = r.health;
        Self {
            dev_eui: r.device.dev_eui,
            name: r.device.name,
            model: r.device.model,
            organisation: r.device.organisation.to_string(),
            entity: r.device.entity.to_string(),
            mappings: r.device.mappings,
            health: DeviceHealthDto {
                last_seen: h.last_seen,
                silent_seconds: h.last_seen.map(|t| (Utc::now() - t).num_seconds().max(0)),
                battery: h.battery,
                margin: h.margin,
                rssi: h.rssi,
                snr: h.snr,
                f_cnt: h.f_cnt,
                frames_received: h.frames_received,
            },
            created_at: r.created_at,
            modified_at: r.modified_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    pub items: Vec<DeviceDto>,
}

/// A device as sent to create or replace it.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documents the request body; parsing uses socle_ingest::Device
#[serde(rename_all = "camelCase")]
pub struct DeviceInput {
    pub dev_eui: String,
    pub name: String,
    pub model: String,
    pub organisation: String,
    pub entity: String,
    #[schema(value_type = Vec<Object>)]
    pub mappings: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceParams {
    /// Organisation ids, comma-separated (within those the caller manages).
    pub organisation: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<String>,
    /// Default 0.
    pub offset: Option<String>,
}

fn organisations(lang: Lang, raw: Option<&str>) -> ApiResult<Option<Vec<OrganisationId>>> {
    raw.map(|list| {
        list.split(',')
            .take(1000)
            .map(|o| OrganisationId::parse(o.trim()).map_err(|e| Problem::invalid_parameter(lang, "organisation", &e)))
            .collect()
    })
    .transpose()
}

fn parse_eui(lang: Lang, raw: &str) -> ApiResult<DevEui> {
    DevEui::parse(raw).map_err(|e| {
        Problem::bad_request(
            lang,
            "invalid-parameter",
            format!("Le paramètre « devEui » est invalide : {e}."),
            format!("Parameter 'devEui' is invalid: {e}."),
        )
    })
}

fn no_device(lang: Lang, eui: &str) -> Problem {
    Problem::not_found(
        lang,
        "unknown-device",
        format!("Aucun capteur visible ne porte le DevEUI {eui}."),
        format!("No visible device has the DevEUI {eui}."),
    )
}

fn manage_problem(lang: Lang, e: ManageError, what: &str) -> Problem {
    match e {
        ManageError::NotFound => Problem::not_found(
            lang,
            "not-found",
            format!("Aucun objet visible : {what}."),
            format!("Nothing visible: {what}."),
        ),
        ManageError::Forbidden => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            lang,
            ("Accès refusé", "Forbidden"),
            lang.pick(
                "Vos droits ne permettent pas de modifier les capteurs de cette organisation.",
                "Your rights do not allow changing the devices of this organisation.",
            ),
        ),
        ManageError::Conflict(why) => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            lang,
            ("Conflit", "Conflict"),
            lang.pick(format!("Déjà pris : {why}."), format!("Already taken: {why}.")),
        ),
        ManageError::Invalid(why) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-device",
            lang,
            ("Capteur invalide", "Invalid device"),
            lang.pick(format!("Définition refusée : {why}."), format!("Definition refused: {why}.")),
        ),
        ManageError::Store(e) => Problem::from_store(lang, e),
    }
}

/// A small JSON body, whole, or 413 naming what it should have been (`what`: French, English).
pub(crate) async fn read_small(
    lang: Lang,
    headers: &HeaderMap,
    body: Body,
    max: usize,
    what: (&str, &str),
) -> ApiResult<Vec<u8>> {
    match read_limited(headers, body, max, 0).await {
        Read::Whole(b) => Ok(b),
        Read::TooLarge { .. } | Read::Broken => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            lang,
            ("Corps trop volumineux", "Body too large"),
            lang.pick(format!("{} fait au plus {max} octets.", what.0), format!("{} is at most {max} bytes.", what.1)),
        )),
    }
}

async fn read_device(lang: Lang, headers: &HeaderMap, body: Body) -> ApiResult<Device> {
    let what = ("Une définition de capteur", "A device definition");
    let bytes = read_small(lang, headers, body, MAX_DEVICE_BYTES, what).await?;
    serde_json::from_slice::<Device>(&bytes).map_err(|e| {
        Problem::bad_request(
            lang,
            "invalid-device",
            format!("Définition de capteur illisible : {e}."),
            format!("Unreadable device definition: {e}."),
        )
    })
}

/// Devices of the organisations the caller manages, by organisation and name.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceParams), security(("bearer" = [])),
    responses((status = 200, body = DeviceList),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<DeviceParams>,
) -> ApiResult<Json<DeviceList>> {
    let orgs = organisations(lang, p.organisation.as_deref())?;
    let limit = parse_number(lang, "limit", p.limit.as_deref(), DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = parse_number(lang, "offset", p.offset.as_deref(), 0, 0, MAX_OFFSET)?;
    let page = state.scoped(&caller).devices(orgs, limit, offset).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(DeviceList { total: page.total, limit, offset, items: page.items.into_iter().map(Into::into).collect() }))
}

/// Registers a device (409 if its DevEUI is taken).
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = DeviceInput, security(("bearer" = [])),
    responses((status = 201, body = DeviceDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<DeviceDto>)> {
    let device = read_device(lang, &headers, body).await?;
    let what = format!("device {}", device.dev_eui);
    let (saved, _) =
        state.scoped(&caller).save_device(&device, true).await.map_err(|e| manage_problem(lang, e, &what))?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// One device, its mappings and its health.
#[utoipa::path(get, path = "/api/v1/devices/{devEui}", tag = "devices",
    params(("devEui" = String, Path, description = "DevEUI, 16 hexadecimal digits")), security(("bearer" = [])),
    responses((status = 200, body = DeviceDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(eui): ApiPath<String>,
) -> ApiResult<Json<DeviceDto>> {
    let parsed = parse_eui(lang, &eui)?;
    match state.scoped(&caller).device(&parsed).await.map_err(|e| Problem::from_store(lang, e))? {
        Some(d) => Ok(Json(d.into())),
        None => Err(no_device(lang, &eui)),
    }
}

/// Creates or replaces a device: name, model, entity and mappings (its health is kept).
#[utoipa::path(put, path = "/api/v1/devices/{devEui}", tag = "devices", request_body = DeviceInput,
    params(("devEui" = String, Path, description = "DevEUI, 16 hexadecimal digits")), security(("bearer" = [])),
    responses((status = 200, body = DeviceDto, description = "Replaced"),
              (status = 201, body = DeviceDto, description = "Created"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(eui): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<DeviceDto>)> {
    let parsed = parse_eui(lang, &eui)?;
    let device = read_device(lang, &headers, body).await?;
    if device.dev_eui != parsed {
        return Err(Problem::bad_request(
            lang,
            "dev-eui-mismatch",
            format!("Le DevEUI du corps ({}) diffère de celui de l'adresse ({parsed}).", device.dev_eui),
            format!("The body's DevEUI ({}) differs from the path's ({parsed}).", device.dev_eui),
        ));
    }
    let what = format!("device {parsed}");
    let (saved, created) =
        state.scoped(&caller).save_device(&device, false).await.map_err(|e| manage_problem(lang, e, &what))?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(saved.into())))
}

/// Removes a device; frames already stored stay known, so a late copy is still not stored twice.
#[utoipa::path(delete, path = "/api/v1/devices/{devEui}", tag = "devices",
    params(("devEui" = String, Path, description = "DevEUI, 16 hexadecimal digits")), security(("bearer" = [])),
    responses((status = 204, description = "Removed"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(eui): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let parsed = parse_eui(lang, &eui)?;
    state.scoped(&caller).delete_device(&parsed).await.map_err(|e| match e {
        ManageError::NotFound => no_device(lang, &eui),
        other => manage_problem(lang, other, &eui),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineErrorDto {
    /// 1-based line (the header is line 1).
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Devices created or replaced (none on a dry run).
    pub imported: usize,
    /// DevEUIs of the devices read without error.
    pub devices: Vec<String>,
    /// Lines refused; their devices were not imported, the others were.
    pub errors: Vec<LineErrorDto>,
    /// Errors beyond the first 1,000, counted only.
    pub more_errors: usize,
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `true`: check the file, import nothing.
    #[serde(rename = "dryRun")]
    #[param(rename = "dryRun")]
    pub dry_run: Option<bool>,
}

/// Bulk import from CSV, one row per mapping (columns dev_eui, name, model, organisation, entity, field,
/// attribute, unit, kind, scale, offset, expression, min, max; `,` or `;`). Devices with a bad line are
/// reported and skipped; the others are imported in one transaction.
#[utoipa::path(post, path = "/api/v1/devices/import", tag = "devices", params(ImportParams),
    request_body(content = String, content_type = "text/csv"), security(("bearer" = [])),
    responses((status = 200, body = ImportReport),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<ImportParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ImportReport>> {
    let limit = socle_ingest::device::MAX_CSV_BYTES;
    let Read::Whole(bytes) = read_limited(&headers, body, limit, 0).await else {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            lang,
            ("Fichier trop volumineux", "File too large"),
            lang.pick(format!("Le fichier dépasse {limit} octets."), format!("The file exceeds {limit} bytes.")),
        ));
    };
    let read = socle_ingest::import_csv(&bytes);
    let dry_run = p.dry_run.unwrap_or(false);
    if !dry_run && !read.devices.is_empty() {
        state
            .scoped(&caller)
            .import_devices(&read.devices)
            .await
            .map_err(|e| manage_problem(lang, e, "devices of the file"))?;
    }
    Ok(Json(ImportReport {
        imported: if dry_run { 0 } else { read.devices.len() },
        devices: read.devices.iter().map(|d| d.dev_eui.to_string()).collect(),
        errors: read
            .errors
            .into_iter()
            .map(|e| LineErrorDto { line: e.line, column: e.column, message: e.message })
            .collect(),
        more_errors: read.more_errors,
        dry_run,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterDto {
    pub id: i64,
    /// When the body was received.
    pub at: DateTime<Utc>,
    pub organisation: String,
    /// `chirpstack`, `ttn`, `generic` (or an MQTT source).
    pub source: String,
    /// ChirpStack event type or MQTT topic.
    pub event: Option<String>,
    pub dev_eui: Option<String>,
    /// Stable code: `unknown-device`, `invalid-json`, `codec-timeout`, `out-of-range`…
    pub reason_code: String,
    pub reason: String,
    /// Size of the body as received.
    pub body_size: u64,
    /// When it was replayed successfully.
    pub replayed_at: Option<DateTime<Utc>>,
    /// The body as text, when it is UTF-8 (single letters only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in hexadecimal, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_hex: Option<String>,
    /// Only the beginning of an oversized body is kept; it cannot be replayed.
    pub truncated: bool,
}

impl DeadLetterDto {
    fn new(l: DeadLetter, with_body: bool) -> Self {
        let truncated = l.letter.body_size > l.letter.body.len() as u64;
        let (body, body_hex) = if !with_body {
            (None, None)
        } else {
            match String::from_utf8(l.letter.body) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(hex::encode(e.into_bytes()))),
            }
        };
        Self {
            id: l.id,
            at: l.letter.at,
            organisation: l.letter.organisation.to_string(),
            source: l.letter.source,
            event: l.letter.event,
            dev_eui: l.letter.dev_eui,
            reason_code: l.letter.reason_code,
            reason: l.letter.reason,
            body_size: l.letter.body_size,
            replayed_at: l.replayed_at,
            body,
            body_hex,
            truncated: truncated && with_body,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    /// Newest first, without bodies.
    pub items: Vec<DeadLetterDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// Organisation ids, comma-separated (within those the caller manages).
    pub organisation: Option<String>,
    /// Only those of this DevEUI.
    pub device: Option<String>,
    /// `true`: only those not replayed yet.
    pub pending: Option<bool>,
    /// 1 to 1000, default 100.
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// Bodies refused by ingestion in the organisations the caller manages, newest first.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "devices", params(DeadLetterParams), security(("bearer" = [])),
    responses((status = 200, body = DeadLetterList),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiQuery(p): ApiQuery<DeadLetterParams>,
) -> ApiResult<Json<DeadLetterList>> {
    let limit = parse_number(lang, "limit", p.limit.as_deref(), DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = parse_number(lang, "offset", p.offset.as_deref(), 0, 0, MAX_OFFSET)?;
    let filter = DeadLetterFilter {
        organisations: organisations(lang, p.organisation.as_deref())?,
        dev_eui: p.device.as_deref().map(|d| parse_eui(lang, d).map(|e| e.to_string())).transpose()?,
        pending: p.pending.unwrap_or(false),
        limit,
        offset,
    };
    let page = state.scoped(&caller).dead_letters(filter).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(DeadLetterList {
        total: page.total,
        limit,
        offset,
        items: page.items.into_iter().map(|l| DeadLetterDto::new(l, false)).collect(),
    }))
}

fn no_letter(lang: Lang, id: i64) -> Problem {
    Problem::not_found(
        lang,
        "unknown-dead-letter",
        format!("Aucune lettre morte visible n° {id}."),
        format!("No visible dead letter {id}."),
    )
}

/// One dead letter with its body, to see what was sent.
#[utoipa::path(get, path = "/api/v1/dead-letters/{id}", tag = "devices",
    params(("id" = i64, Path, description = "Dead letter number")), security(("bearer" = [])),
    responses((status = 200, body = DeadLetterDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn dead_letter(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DeadLetterDto>> {
    match state.scoped(&caller).dead_letter(id).await.map_err(|e| Problem::from_store(lang, e))? {
        Some(l) => Ok(Json(DeadLetterDto::new(l, true))),
        None => Err(no_letter(lang, id)),
    }
}

/// Runs a dead letter through ingestion again, once its cause is fixed (device registered, mapping
/// corrected). Answers like the ingestion endpoint: 200 when stored (or already stored), a problem
/// when refused again (the letter stays pending).
#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/replay", tag = "devices",
    params(("id" = i64, Path, description = "Dead letter number")), security(("bearer" = [])),
    responses((status = 200, body = IngestOutcome),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn replay(State(state): State<AppState>, caller: Caller, lang: Lang, ApiPath(id): ApiPath<i64>) -> Response {
    match state.scoped(&caller).replay_dead_letter(id).await {
        Ok(Ok(accepted)) => {
            state.metrics.record_write(socle_domain::WriteOutcome {
                stored: accepted.observations,
                duplicates: accepted.duplicate_observations,
            });
            (StatusCode::OK, Json(IngestOutcome::from(accepted))).into_response()
        }
        Ok(Err(rejection)) => rejection_response(lang, rejection),
        Err(ManageError::NotFound) => no_letter(lang, id).into_response(),
        Err(e) => manage_problem(lang, e, &format!("dead letter {id}")).into_response(),
    }
}

/// Largest downlink request accepted (JSON); the payload itself is at most 222 bytes.
const MAX_DOWNLINK_BYTES: usize = 4096;

/// A command for a device: `data` (base64) or `hex`, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownlinkInput {
    /// LoRaWAN application port, 1 to 223.
    pub f_port: u8,
    /// Payload in base64.
    pub data: Option<String>,
    /// Payload in hexadecimal.
    pub hex: Option<String>,
    /// Ask the device to acknowledge (it does so with its next uplink).
    #[serde(default)]
    pub confirmed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownlinkDto {
    /// Also the network server's queue item id (ChirpStack) or correlation id `socle:downlink:{id}` (TTN).
    pub id: String,
    pub dev_eui: String,
    pub f_port: u8,
    /// Payload in base64.
    pub data: String,
    pub confirmed: bool,
    /// `queued`, `sent` (the network server's broker has it), `transmitted` (a gateway sent it),
    /// `acknowledged` (the device confirmed), `failed`.
    pub status: String,
    /// Why it failed.
    pub detail: Option<String>,
    pub f_cnt_down: Option<u32>,
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub transmitted_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

impl From<Downlink> for DownlinkDto {
    fn from(d: Downlink) -> Self {
        use base64::Engine as _;
        let n = d.downlink;
        Self {
            id: n.id,
            dev_eui: n.dev_eui,
            f_port: n.f_port,
            data: base64::engine::general_purpose::STANDARD.encode(&n.payload),
            confirmed: n.confirmed,
            status: d.status.as_str().into(),
            detail: d.detail,
            f_cnt_down: d.f_cnt_down,
            requested_by: n.requested_by,
            created_at: n.created_at,
            sent_at: d.sent_at,
            transmitted_at: d.transmitted_at,
            acknowledged_at: d.acknowledged_at,
            failed_at: d.failed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownlinkList {
    pub items: Vec<DownlinkDto>,
}

fn bad_downlink(lang: Lang, fr: String, en: String) -> Problem {
    Problem::bad_request(lang, "invalid-downlink", fr, en)
}

async fn read_downlink(lang: Lang, headers: &HeaderMap, body: Body) -> ApiResult<(DownlinkInput, Vec<u8>)> {
    use base64::Engine as _;
    let bytes = read_small(lang, headers, body, MAX_DOWNLINK_BYTES, ("Une commande", "A command")).await?;
    let input: DownlinkInput = serde_json::from_slice(&bytes)
        .map_err(|e| bad_downlink(lang, format!("Commande illisible : {e}."), format!("Unreadable command: {e}.")))?;
    let data = match (&input.data, &input.hex) {
        (Some(b64), None) => base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| e.to_string()),
        (None, Some(h)) => hex::decode(h.trim()).map_err(|e| e.to_string()),
        _ => Err("give the payload as `data` (base64) or `hex`, exactly one of them".to_owned()),
    }
    .map_err(|e| bad_downlink(lang, format!("Charge utile invalide : {e}."), format!("Invalid payload: {e}.")))?;
    Ok((input, data))
}

/// The commands sent to a device, newest first (at most 100).
#[utoipa::path(get, path = "/api/v1/devices/{devEui}/downlinks", tag = "devices",
    params(("devEui" = String, Path, description = "DevEUI, 16 hexadecimal digits")), security(("bearer" = [])),
    responses((status = 200, body = DownlinkList),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn downlinks(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(eui): ApiPath<String>,
) -> ApiResult<Json<DownlinkList>> {
    let parsed = parse_eui(lang, &eui)?;
    match state.scoped(&caller).downlinks(&parsed, 100).await.map_err(|e| Problem::from_store(lang, e))? {
        Some(list) => Ok(Json(DownlinkList { items: list.into_iter().map(Into::into).collect() })),
        None => Err(no_device(lang, &eui)),
    }
}

/// Queues a command for the device, sent through its network server (ChirpStack `command/down`, The Things
/// Stack `down/push`, over the MQTT connection configured for the organisation); its status then follows the
/// network server's events. Answers 202 with the queued downlink.
#[utoipa::path(post, path = "/api/v1/devices/{devEui}/downlinks", tag = "devices", request_body = DownlinkInput,
    params(("devEui" = String, Path, description = "DevEUI, 16 hexadecimal digits")), security(("bearer" = [])),
    responses((status = 202, body = DownlinkDto),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn send_downlink(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    ApiPath(eui): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<DownlinkDto>)> {
    let parsed = parse_eui(lang, &eui)?;
    let (input, data) = read_downlink(lang, &headers, body).await?;
    match state.scoped(&caller).send_downlink(&parsed, input.f_port, data, input.confirmed).await {
        Ok(d) => Ok((StatusCode::ACCEPTED, Json(d.into()))),
        Err(ManageError::NotFound) => Err(no_device(lang, &eui)),
        Err(e) => Err(manage_problem(lang, e, &format!("device {eui}"))),
    }
}
