//! Managing datasets (staff with a `write` scope): create with a fixed id, edit the
//! metadata and visibility, upload the data (CSV, XLSX or GeoJSON; a re-upload replaces
//! the records and keeps the id), attach files (documentation, methodology), read the
//! usage figures.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use socle_domain::{OrganisationId, Visibility};
use socle_opendata::dataset::{DatasetId, Metadata};
use socle_opendata::import::{read_csv, read_csv_cells, read_geojson, read_xlsx, read_xlsx_cells};
use socle_opendata::schema::FieldType;
use socle_opendata::table_schema::TableSchema;
use socle_storage::{StoredAttachment, StoredRecord};

use super::devices::read_small;
use crate::i18n::Lang;
use crate::policy::{Caller, DatasetError};
use crate::problem::Problem;
use crate::AppState;

/// Largest uploaded file.
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

type ApiResult<T> = Result<T, Problem>;

fn problem(lang: Lang, e: DatasetError, id: &str) -> Problem {
    match e {
        DatasetError::NotFound => Problem::not_found(
            lang,
            "not-found",
            format!("Aucun jeu de données visible : {id}."),
            format!("No visible dataset: {id}."),
        ),
        DatasetError::Forbidden => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            lang,
            ("Accès refusé", "Forbidden"),
            lang.pick(
                "Vos droits ne permettent pas de publier des données pour cette organisation.",
                "Your rights do not allow publishing data for this organisation.",
            ),
        ),
        DatasetError::Conflict => Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            lang,
            ("Conflit", "Conflict"),
            lang.pick(format!("Le jeu de données {id} existe déjà."), format!("Dataset {id} already exists.")),
        ),
        DatasetError::Store(e) => Problem::from_store(lang, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    id: String,
    organisation: String,
    #[serde(default)]
    visibility: Visibility,
    #[serde(default)]
    shared_with: Vec<String>,
    metadata: Metadata,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEdit {
    visibility: Visibility,
    #[serde(default)]
    shared_with: Vec<String>,
    metadata: Metadata,
}

fn organisations(lang: Lang, ids: &[String]) -> ApiResult<Vec<OrganisationId>> {
    ids.iter()
        .map(|o| {
            OrganisationId::parse(o)
                .map_err(|e| bad(lang, format!("Organisation invalide : {e}"), format!("Invalid organisation: {e}")))
        })
        .collect()
}

fn bad(lang: Lang, fr: String, en: String) -> Problem {
    Problem::bad_request(lang, "invalid-dataset", fr, en)
}

/// Largest dataset description (metadata, visibility) taken.
const MAX_METADATA_BYTES: usize = 1024 * 1024;

async fn read_json<T: serde::de::DeserializeOwned>(lang: Lang, headers: &HeaderMap, body: Body) -> ApiResult<T> {
    let what = ("Une description de jeu de données", "A dataset description");
    let bytes = read_small(lang, headers, body, MAX_METADATA_BYTES, what).await?;
    serde_json::from_slice(&bytes).map_err(|e| bad(lang, format!("JSON invalide : {e}"), format!("Invalid JSON: {e}")))
}

#[utoipa::path(post, path = "/api/v1/datasets", tag = "datasets", security(("bearer" = [])),
    responses((status = 200, description = "Created"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<JsonValue>)> {
    let new: NewDataset = read_json(lang, &headers, body).await?;
    let id = DatasetId::parse(&new.id).map_err(|e| bad(lang, e.to_string(), e.to_string()))?;
    new.metadata.validate().map_err(|e| bad(lang, "Le titre est obligatoire.".into(), e.to_string()))?;
    let organisation = OrganisationId::parse(&new.organisation)
        .map_err(|e| bad(lang, format!("Organisation invalide : {e}"), format!("Invalid organisation: {e}")))?;
    let metadata = serde_json::to_value(&new.metadata).unwrap_or_default();
    let d = state
        .scoped(&caller)
        .create_dataset(id.as_str(), organisation, new.visibility, organisations(lang, &new.shared_with)?, metadata)
        .await
        .map_err(|e| problem(lang, e, id.as_str()))?;
    Ok((StatusCode::CREATED, Json(json!({"id": d.get().id, "uid": d.get().uid}))))
}

#[utoipa::path(put, path = "/api/v1/datasets/{id}", tag = "datasets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dataset identifier (slug)")),
    responses((status = 200, description = "Metadata and visibility changed"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let edit: DatasetEdit = read_json(lang, &headers, body).await?;
    edit.metadata.validate().map_err(|e| bad(lang, "Le titre est obligatoire.".into(), e.to_string()))?;
    let scoped = state.scoped(&caller);
    let d = scoped.managed_dataset(&id).await.map_err(|e| problem(lang, e, &id))?;
    let metadata = serde_json::to_value(&edit.metadata).unwrap_or_default();
    scoped
        .update_dataset(&d, edit.visibility, organisations(lang, &edit.shared_with)?, metadata)
        .await
        .map_err(|e| Problem::from_store(lang, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Why an upload was refused: a problem, or the Table Schema report (a problem with an
/// `errors` member, which `Problem` does not carry).
pub enum Refusal {
    Problem(Problem),
    Report(Response),
}

impl From<Problem> for Refusal {
    fn from(p: Problem) -> Self {
        Refusal::Problem(p)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Problem(p) => p.into_response(),
            Refusal::Report(r) => r,
        }
    }
}

/// The file formats an upload may have, told by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UploadKind {
    Csv,
    Xlsx,
    GeoJson,
}

impl UploadKind {
    fn of(content_type: &str) -> UploadKind {
        if content_type.contains("spreadsheetml") {
            UploadKind::Xlsx
        } else if content_type.contains("json") {
            UploadKind::GeoJson
        } else {
            UploadKind::Csv
        }
    }
}

#[derive(Deserialize)]
pub struct UploadParams {
    /// `field:type,field:type` overriding the inferred types.
    types: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/datasets/{id}/data", tag = "datasets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dataset identifier (slug)")),
    responses((status = 200, description = "Data replaced (CSV, XLSX — application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, first sheet — or GeoJSON body); the id stays"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    Path(id): Path<String>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<JsonValue>, Refusal> {
    let scoped = state.scoped(&caller);
    let d = scoped.managed_dataset(&id).await.map_err(|e| problem(lang, e, &id))?;
    let mut overrides = HashMap::new();
    for pair in params.types.as_deref().unwrap_or("").split(',').filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once(':')
            .and_then(|(f, t)| serde_json::from_value::<FieldType>(json!(t)).ok().map(|t| (f.to_string(), t)));
        match parsed {
            Some((f, t)) => overrides.insert(f, t),
            None => return Err(bad(lang, format!("Type invalide : {pair}"), format!("Invalid type: {pair}")).into()),
        };
    }
    let bytes = read_small(lang, &headers, body, MAX_UPLOAD_BYTES, ("Un fichier", "A file")).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let kind = UploadKind::of(content_type);
    // A dataset with a Table Schema takes only files that satisfy it: the answer lists
    // every problem by row and column.
    if let Some(schema) = d.get().metadata.get("table_schema").filter(|s| !s.is_null()) {
        if kind != UploadKind::GeoJson {
            let schema = TableSchema::parse(schema).map_err(|e| bad(lang, e.clone(), e))?;
            let cells = match kind {
                UploadKind::Xlsx => read_xlsx_cells(&bytes),
                _ => read_csv_cells(&bytes),
            }
            .map_err(|e| bad(lang, format!("Fichier illisible : {e}"), format!("Unreadable file: {e}")))?;
            let errors = schema.validate(&cells.headers, &cells.rows);
            if !errors.is_empty() {
                let problem = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "table-schema",
                    lang,
                    ("Fichier non conforme au schéma", "File does not follow the schema"),
                    lang.pick(
                        format!("{} erreur(s) : le jeu de données n'a pas été modifié.", errors.len()),
                        format!("{} error(s): the dataset was not changed.", errors.len()),
                    ),
                );
                // Problem details with an extension member listing each error.
                let mut body = serde_json::to_value(&problem).unwrap_or_default();
                body["errors"] = json!(errors);
                let mut res = (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/problem+json"));
                return Err(Refusal::Report(res));
            }
        }
    }
    let table = match kind {
        UploadKind::GeoJson => read_geojson(&bytes),
        UploadKind::Xlsx => read_xlsx(&bytes, &overrides),
        UploadKind::Csv => read_csv(&bytes, &overrides),
    }
    .map_err(|e| bad(lang, format!("Fichier illisible : {e}"), format!("Unreadable file: {e}")))?;
    let records: Vec<StoredRecord> = table
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, (rid, data))| StoredRecord { row: i as i64 + 1, id: rid, data })
        .collect();
    let fields = serde_json::to_value(&table.schema.fields).unwrap_or_default();
    scoped.replace_dataset_records(&d, &fields, &records).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(json!({"id": d.get().id, "records": records.len(), "encoding": table.encoding, "fields": fields})))
}

#[utoipa::path(get, path = "/api/v1/datasets/{id}/usage", tag = "datasets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dataset identifier (slug)")),
    responses((status = 200, description = "Views, downloads and API calls (counts only)"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    Path(id): Path<String>,
) -> ApiResult<Json<JsonValue>> {
    let scoped = state.scoped(&caller);
    let d = scoped.managed_dataset(&id).await.map_err(|e| problem(lang, e, &id))?;
    let u = scoped.dataset_usage(&d).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(Json(json!(u)))
}

/// Largest attached file (a PDF of methodology, a data dictionary).
const MAX_ATTACHMENT_BYTES: usize = 20 * 1024 * 1024;

/// An attachment's name is its file name and its id in URLs: letters, digits, `.`,
/// `-` and `_`, not starting with a dot.
fn attachment_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentParams {
    /// The title shown in the catalogue (the name when absent).
    title: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/datasets/{id}/attachments/{name}", tag = "datasets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dataset identifier (slug)"), ("name" = String, Path, description = "File name, also the attachment's id"), ("title" = Option<String>, Query, description = "Title shown in the catalogue")),
    responses((status = 204, description = "Attachment stored (the body is the file, its Content-Type kept; at most 20 MiB)"), (status = 400, description = "Invalid name or empty file"), (status = 403, description = "Not the caller's to change"), (status = 404, description = "Absent or not visible"), (status = 413, description = "File too large")))]
pub async fn put_attachment(
    State(state): State<AppState>,
    caller: Caller,
    lang: Lang,
    Path((id, name)): Path<(String, String)>,
    Query(params): Query<AttachmentParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let scoped = state.scoped(&caller);
    let d = scoped.managed_dataset(&id).await.map_err(|e| problem(lang, e, &id))?;
    if !attachment_name(&name) {
        return Err(Problem::bad_request(
            lang,
            "invalid-attachment",
            format!("Nom de pièce jointe invalide : {name} (lettres, chiffres, « . », « - » et « _ », 100 au plus)."),
            format!("Invalid attachment name: {name} (letters, digits, '.', '-' and '_', at most 100)."),
        ));
    }
    let title = params.title.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).unwrap_or_else(|| name.clone());
    if title.chars().count() > 200 {
        return Err(Problem::bad_request(
            lang,
            "invalid-attachment",
            "Le titre fait au plus 200 caractères.".into(),
            "The title is at most 200 characters.".into(),
        ));
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty() && t.len() <= 200 && t.contains('/'))
        .unwrap_or("application/octet-stream")
        .to_string();
    let content = read_small(lang, &headers, body, MAX_ATTACHMENT_BYTES, ("Une pièce jointe", "An attachment")).await?;
    if content.is_empty() {
        return Err(Problem::bad_request(
            lang,
            "invalid-attachment",
            "Le fichier est vide.".into(),
            "The file is empty.".into(),
        ));
    }
    let attachment = StoredAttachment {
        name,
        title,
        media_type,
        size: content.len() as u64,
        content,
        created_at: chrono::Utc::now(),
    };
    scoped.put_dataset_attachment(&d, &attachment).await.map_err(|e| Problem::from_store(lang, e))?;
    Ok(StatusCode::NO_CONTENT)
}
