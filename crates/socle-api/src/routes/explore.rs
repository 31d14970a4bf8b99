//! The Opendatasoft Explore API v2.1 under `/api/explore/v2.1/`: same paths, same
//! parameters, same response shapes and error shape (`{"error_code", "message"}` with
//! 400), so reusers of an Opendatasoft portal keep working unchanged.
//!
//! `records` keeps Opendatasoft's limits (`limit` ≤ 100, `offset + limit` ≤ 10,000) so
//! clients page the same way; exports have no limit and stream records in chunks.
//! Records are always read from storage a chunk at a time: `records` and `facets` keep
//! only their page, their best `offset + limit` rows or their per-group state.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde_json::{json, Map, Value as JsonValue};
use socle_opendata::export::{Encoder, ExportError, Format};
use socle_opendata::odsql::{Query, QueryError, QueryParams, Record, Rows};
use socle_opendata::schema::{Field, FieldType, Schema};
use socle_storage::UsageKind;

use crate::policy::{Caller, DatasetRecords, Scoped, VisibleDataset};
use crate::AppState;

/// Records read from storage at a time, for queries and exports.
const CHUNK: usize = 1_000;
const MAX_LIMIT: i64 = 100;
const MAX_WINDOW: i64 = 10_000;
const MAX_PARAMETERS: usize = 200;

/// An error in Opendatasoft's shape.
pub struct ExploreError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ExploreError {
    fn rest(message: String) -> Self {
        ExploreError { status: StatusCode::BAD_REQUEST, code: "InvalidRESTParameterError", message }
    }

    fn not_found(id: &str) -> Self {
        ExploreError {
            status: StatusCode::NOT_FOUND,
            code: "NotFound",
            message: format!("Unknown dataset or record: {id}"),
        }
    }

    fn internal() -> Self {
        ExploreError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "InternalError",
            message: "The request could not be answered; it has been logged.".into(),
        }
    }
}

impl From<QueryError> for ExploreError {
    fn from(e: QueryError) -> Self {
        ExploreError { status: StatusCode::BAD_REQUEST, code: "ODSQLError", message: e.to_string() }
    }
}

impl From<ExportError> for ExploreError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::TooManyRows { .. } => ExploreError::rest(e.to_string()),
            other => {
                tracing::error!(error = %other, "export failed");
                ExploreError::internal()
            }
        }
    }
}

impl From<socle_storage::StoreError> for ExploreError {
    fn from(e: socle_storage::StoreError) -> Self {
        tracing::error!(error = %e, "explore API storage error");
        ExploreError::internal()
    }
}

impl IntoResponse for ExploreError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error_code": self.code, "message": self.message}))).into_response()
    }
}

type ExploreResult<T> = Result<T, ExploreError>;

/// The query string as pairs: `refine` and `exclude` may repeat.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> ExploreResult<Params> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
            .map_err(|_| ExploreError::rest("The query string is not valid.".into()))?;
        if pairs.len() > MAX_PARAMETERS {
            return Err(ExploreError::rest("Too many parameters.".into()));
        }
        Ok(Params(pairs))
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    fn number(&self, name: &str, default: i64, min: i64, max: i64) -> ExploreResult<i64> {
        match self.one(name) {
            None | Some("") => Ok(default),
            Some(text) => match text.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ExploreError::rest(format!(
                    "Invalid value for {name} API parameter: {text} was found but {min} <= {name} <= {max} is expected."
                ))),
            },
        }
    }

    fn query<'a>(&'a self) -> QueryParams<'a> {
        QueryParams {
            select: self.one("select"),
            where_: self.one("where"),
            group_by: self.one("group_by"),
            order_by: self.one("order_by"),
            refine: self.all("refine"),
            exclude: self.all("exclude"),
            timezone: self.one("timezone"),
        }
    }

    /// `limit` (-1 or up to 100) and `offset`, with Opendatasoft's window of 10,000.
    fn page(&self) -> ExploreResult<(usize, usize)> {
        let limit = self.number("limit", 10, -1, MAX_LIMIT)?;
        let limit = if limit == -1 { MAX_LIMIT } else { limit };
        let offset = self.number("offset", 0, 0, MAX_WINDOW)?;
        if offset + limit > MAX_WINDOW {
            return Err(ExploreError::rest(format!(
                "Invalid value for offset API parameter: offset + limit must be at most {MAX_WINDOW} (found {}). Use the exports endpoint for more records.",
                offset + limit
            )));
        }
        Ok((offset as usize, limit as usize))
    }
}

fn schema_of(d: &VisibleDataset) -> Schema {
    Schema::new(serde_json::from_value(d.get().fields.clone()).unwrap_or_default())
}

/// An attachment as Opendatasoft lists it.
fn attachment_json(base: &str, dataset: &str, a: &socle_storage::StoredAttachment) -> JsonValue {
    json!({
        "id": a.name,
        "title": a.title,
        "mimetype": a.media_type,
        "size": a.size,
        "url": attachment_url(base, dataset, &a.name),
    })
}

fn attachment_url(base: &str, dataset: &str, name: &str) -> String {
    format!("{base}/api/explore/v2.1/catalog/datasets/{dataset}/attachments/{name}")
}

/// A dataset in Opendatasoft's catalogue shape, with its attachments.
async fn dataset_with_attachments(state: &AppState, scoped: &Scoped, d: &VisibleDataset) -> ExploreResult<JsonValue> {
    let base = state.web.settings.public_url().to_string();
    let attachments: Vec<JsonValue> =
        scoped.dataset_attachments(d).await?.iter().map(|a| attachment_json(&base, &d.get().id, a)).collect();
    let mut json = dataset_json(d);
    json["attachments"] = JsonValue::Array(attachments);
    Ok(json)
}

/// A dataset in Opendatasoft's catalogue shape (attachments filled by the caller).
fn dataset_json(d: &VisibleDataset) -> JsonValue {
    let d = d.get();
    let m = &d.metadata;
    let licence = m.get("licence").and_then(JsonValue::as_str).unwrap_or("etalab-2.0");
    let (licence_label, licence_url) = match licence {
        "odbl" => ("Open Database License (ODbL)", "https://opendatacommons.org/licenses/odbl/1-0/"),
        _ => ("Licence Ouverte v2.0 (Etalab)", "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"),
    };
    let fields: Vec<JsonValue> = schema_of_stored(d)
        .fields
        .iter()
        .map(|f| {
            json!({"name": f.name, "label": f.label, "type": f.field_type.as_str(),
                   "annotations": if f.facet { json!({"facet": true}) } else { json!({}) },
                   "description": f.description})
        })
        .collect();
    let has_geo = schema_of_stored(d).fields.iter().any(|f| f.field_type == FieldType::GeoPoint2d);
    let mut features = vec!["analyze"];
    if has_geo {
        features.push("geo");
    }
    json!({
        "dataset_id": d.id,
        "dataset_uid": d.uid,
        "has_records": d.records_count > 0,
        "visibility": if d.visibility == socle_domain::Visibility::Public { "domain" } else { "restricted" },
        "features": features,
        "attachments": [],
        "fields": fields,
        "metas": {"default": {
            "title": m.get("title"),
            "description": m.get("description"),
            "theme": m.get("themes"),
            "keyword": m.get("keywords"),
            "license": licence_label,
            "license_url": licence_url,
            "publisher": m.get("publisher"),
            "modified": d.modified_at.to_rfc3339(),
            "data_processed": d.data_modified_at.map(|t| t.to_rfc3339()),
            "records_count": d.records_count,
            "language": "fr",
            "territory": m.get("spatial_coverage"),
        }, "dcat": {
            "accrualperiodicity": m.get("frequency"),
            "temporal": m.get("temporal_coverage"),
            "conforms_to": m.get("conforms_to"),
        }},
    })
}

fn schema_of_stored(d: &socle_storage::StoredDataset) -> Schema {
    Schema::new(serde_json::from_value(d.fields.clone()).unwrap_or_default())
}

/// The catalogue seen as records, so `where`, `search`, `refine` and facets work on it
/// with the same ODSQL engine.
fn catalog_schema() -> Schema {
    Schema::new(vec![
        Field::new("dataset_id", "Identifiant", FieldType::Text),
        Field::new("title", "Titre", FieldType::Text),
        Field::new("description", "Description", FieldType::Text),
        Field::new("theme", "Thème", FieldType::Text),
        Field::new("keyword", "Mot-clé", FieldType::Text),
        Field::new("publisher", "Producteur", FieldType::Text),
        Field::new("license", "Licence", FieldType::Text),
        Field::new("modified", "Modifié", FieldType::DateTime),
        Field::new("records_count", "Enregistrements", FieldType::Int),
    ])
}

fn catalog_record(d: &VisibleDataset) -> Record {
    let s = d.get();
    let m = &s.metadata;
    let mut r = Map::new();
    r.insert("dataset_id".into(), json!(s.id));
    for (k, from) in [
        ("title", "title"),
        ("description", "description"),
        ("theme", "themes"),
        ("keyword", "keywords"),
        ("publisher", "publisher"),
        ("license", "licence"),
    ] {
        r.insert(k.into(), m.get(from).cloned().unwrap_or(JsonValue::Null));
    }
    r.insert("modified".into(), json!(s.modified_at.to_rfc3339()));
    r.insert("records_count".into(), json!(s.records_count));
    r
}

async fn visible(scoped: &Scoped, id: &str) -> ExploreResult<VisibleDataset> {
    scoped.dataset(id).await?.ok_or_else(|| ExploreError::not_found(id))
}

/// Runs a query over every record of a dataset, read a chunk at a time.
async fn run_query(
    scoped: &Scoped,
    d: &VisibleDataset,
    query: &Query,
    offset: usize,
    limit: usize,
) -> ExploreResult<Rows> {
    let mut run = query.start(offset, limit);
    let mut records = scoped.dataset_records(d, CHUNK);
    while let Some(chunk) = records.next_chunk().await? {
        for r in chunk {
            run.push(r.data);
        }
    }
    Ok(run.finish())
}

#[utoipa::path(get, path = "/api/explore/v2.1/catalog/datasets", tag = "open data",
    responses((status = 200, description = "Datasets visible to the caller (where, order_by, limit, offset, refine)"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn catalog_datasets(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ExploreResult<Json<JsonValue>> {
    let params = Params::parse(raw)?;
    let (offset, limit) = params.page()?;
    let mut qp = params.query();
    qp.group_by = None;
    let select = qp.select.take();
    let query = Query::build(&catalog_schema(), &qp)?;
    let _ = select;
    let scoped = state.scoped(&caller);
    let datasets = scoped.datasets().await?;
    let records: Vec<Record> = datasets.iter().map(catalog_record).collect();
    let rows = query.run(records, offset, limit);
    let mut results = Vec::new();
    for d in rows
        .results
        .iter()
        .filter_map(|r| r.get("dataset_id").and_then(JsonValue::as_str))
        .filter_map(|id| datasets.iter().find(|d| d.get().id == id))
    {
        results.push(dataset_with_attachments(&state, &scoped, d).await?);
    }
    Ok(Json(json!({"total_count": rows.total_count, "results": results})))
}

#[utoipa::path(get, path = "/api/explore/v2.1/catalog/datasets/{id}", tag = "open data",
    params(("id" = String, Path, description = "Dataset identifier (slug)")),
    responses((status = 200, description = "One dataset"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn catalog_dataset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ExploreResult<Json<JsonValue>> {
    let scoped = state.scoped(&caller);
    let d = visible(&scoped, &id).await?;
    scoped.count_dataset_usage(&d, UsageKind::View).await;
    Ok(Json(dataset_with_attachments(&state, &scoped, &d).await?))
}

#[utoipa::path(get, path = "/api/explore/v2.1/catalog/datasets/{id}/records", tag = "open data",
    params(("id" = String, Path, description = "Dataset identifier (slug)")),
    responses((status = 200, description = "Records (select, where, group_by, order_by, limit ≤ 100, offset + limit ≤ 10,000, refine, exclude, timezone)"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn records(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ExploreResult<Json<JsonValue>> {
    let params = Params::parse(raw)?;
    let scoped = state.scoped(&caller);
    let d = visible(&scoped, &id).await?;
    let (offset, limit) = params.page()?;
    let query = Query::build(&schema_of(&d), &params.query())?;
    scoped.count_dataset_usage(&d, UsageKind::ApiCall).await;
    let rows = run_query(&scoped, &d, &query, offset, limit).await?;
    Ok(Json(json!({"total_count": rows.total_count, "results": rows.results})))
}

#[utoipa::path(get, path = "/api/explore/v2.1/catalog/datasets/{id}/records/{record_id}", tag = "open data",
    params(("id" = String, Path, description = "Dataset identifier (slug)"), ("record_id" = String, Path, description = "Record identifier")),
    responses((status = 200, description = "One record"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, record_id)): Path<(String, String)>,
) -> ExploreResult<Json<JsonValue>> {
    let scoped = state.scoped(&caller);
    let d = visible(&scoped, &id).await?;
    let r = scoped.dataset_record(&d, &record_id).await?.ok_or_else(|| ExploreError::not_found(&record_id))?;
    scoped.count_dataset_usage(&d, UsageKind::ApiCall).await;
    Ok(Json(JsonValue::Object(r.data)))
}

fn facet_fields<'a>(params: &'a Params, schema: &'a Schema) -> ExploreResult<Vec<&'a str>> {
    let asked = params.all("facet");
    if asked.is_empty() {
        return Ok(schema.fields.iter().filter(|f| f.facet).map(|f| f.name.as_str()).collect());
    }
    for f in &asked {
        if schema.field(f).is_none() {
            return Err(ExploreError::rest(format!("Invalid value for facet API parameter: unknown field {f}.")));
        }
    }
    Ok(asked)
}

#[utoipa::path(get, path = "/api/explore/v2.1/catalog/datasets/{id}/facets", tag = "open data",
    params(("id" = String, Path, description = "Dataset identifier (slug)")),
    responses((status = 200, description = "Facet values of a dataset"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn dataset_facets(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ExploreResult<Json<JsonValue>> {
    let params = Params::parse(raw)?;
    let scoped = state.scoped(&caller);
    let d = visible(&scoped, &id).await?;
    let schema = schema_of(&d);
    let fields = facet_fields(&params, &schema)?;
    let mut qp = params.query();
    (qp.select, qp.group_by, qp.order_by) = (None, None, None);
    let query = Query::build(&schema, &qp)?;
    scoped.count_dataset_usage(&d, UsageKind::ApiCall).await;
    let mut counts = query.start_facets(&fields);
    let mut records = scoped.dataset_records(&d, CHUNK);
    while let Some(chunk) = records.next_chunk().await? {
        for r in &chunk {
            counts.push(&r.data);
        }
    }
    Ok(Json(json!({"links": [], "facets": counts.finish(100)})))
}

#[utoipa::path(get, path = "/api/explore/v2.1/catalog/facets", tag = "open data",
    responses((status = 200, description = "Facet values of the catalogue"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn catalog_facets(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ExploreResult<Json<JsonValue>> {
    let params = Params::parse(raw)?;
    let schema = catalog_schema();
    let mut qp = params.query();
    (qp.select, qp.group_by, qp.order_by) = (None, None, None);
    let query = Query::build(&schema, &qp)?;
    let asked = params.all("facet");
    let fields: Vec<&str> = if asked.is_empty() { vec!["theme", "keyword", "publisher", "license"] } else { asked };
    for f in &fields {
        if schema.field(f).is_none() {
            return Err(ExploreError::rest(format!("Invalid value for facet API parameter: unknown field {f}.")));
        }
    }
    let datasets = state.scoped(&caller).datasets().await?;
    let facets = query.facets(datasets.iter().map(catalog_record), &fields, 100);
    Ok(Json(json!({"links": [], "facets": facets})))
}

/// Streams an export: records are read `CHUNK` at a time, filtered, projected and
/// encoded, so memory does not grow with the dataset. An aggregated export keeps one
/// state per group; an ordered one keeps the matching rows (its `limit` best if given).
/// XLSX is written to a temporary file as records come and sent once complete, so its
/// row limit answers a clean error before any byte.
#[utoipa::path(get, path = "/api/explore/v2.1/catalog/datasets/{id}/exports/{format}", tag = "open data",
    params(("id" = String, Path, description = "Dataset identifier (slug)"), ("format" = String, Path, description = "csv, json, jsonl, geojson, xlsx or parquet")),
    responses((status = 200, description = "The whole dataset, streamed (csv, json, jsonl, geojson, xlsx, parquet)"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, format)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ExploreResult<Response> {
    let params = Params::parse(raw)?;
    let scoped = state.scoped(&caller);
    let d = visible(&scoped, &id).await?;
    let with_bom = matches!(params.one("with_bom"), Some("true"));
    let fmt = Format::parse(&format, params.one("delimiter"), with_bom).ok_or_else(|| {
        ExploreError::rest(format!(
            "Invalid value for format: {format}. Expected one of {}; delimiter one of ; , | or a tab.",
            Format::NAMES.join(", ")
        ))
    })?;
    let schema = schema_of(&d);
    let query = Query::build(&schema, &params.query())?;
    let limit = params.number("limit", -1, -1, i64::MAX)?;
    let limit = if limit < 0 { usize::MAX } else { limit as usize };
    scoped.count_dataset_usage(&d, UsageKind::Download).await;
    let filename = format!("{}.{}", d.get().id, fmt.extension());
    let headers = [
        (header::CONTENT_TYPE, fmt.content_type().to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
    ];
    let mut export_schema = schema.clone();
    let plain_columns = || -> Vec<String> {
        match params.one("select") {
            None | Some("*") => schema.fields.iter().map(|f| f.name.clone()).collect(),
            Some(_) => query.project(&Map::new()).keys().cloned().collect(),
        }
    };
    let (source, columns) = if query.is_plain() {
        (Source::Records(Box::new(scoped.dataset_records(&d, CHUNK))), plain_columns())
    } else {
        let rows = run_query(&scoped, &d, &query, 0, limit).await?;
        let columns = if query.is_aggregated() { query.output_columns() } else { plain_columns() };
        // Computed columns (counts, sums) get the type of their values, so typed
        // formats (Parquet, XLSX) write numbers as numbers.
        for c in &columns {
            if export_schema.field(c).is_none() {
                let t = rows.results.iter().find_map(|r| match r.get(c) {
                    Some(JsonValue::Number(_)) => Some(FieldType::Double),
                    Some(JsonValue::Bool(_)) => Some(FieldType::Boolean),
                    Some(JsonValue::Null) | None => None,
                    Some(_) => Some(FieldType::Text),
                });
                export_schema.fields.push(Field::new(c, c, t.unwrap_or(FieldType::Text)));
            }
        }
        (Source::Computed(rows.results.into_iter()), columns)
    };
    let encoder = Encoder::new(fmt, &export_schema, columns, query.timezone())?;
    let reader = Reader { source, query, sent: 0, limit };
    if !fmt.is_streamed() {
        let body = whole_file(reader, encoder).await?;
        return Ok((headers, body).into_response());
    }
    let export = ExportState { reader, encoder, stage: Stage::Begin };
    // Fused: the compression layer polls a body once more after its end, and an
    // `Unfold` polled after it finished panics (seen with every browser download).
    let stream = futures_util::stream::unfold(export, |mut s| async move {
        let bytes = s.next().await?;
        Some((bytes, s))
    })
    .fuse();
    Ok((headers, Body::from_stream(stream)).into_response())
}

enum Stage {
    Begin,
    Rows,
    Done,
}

/// Where exported records come from: storage, a chunk at a time, or the rows of an
/// aggregated or ordered query computed beforehand.
enum Source {
    Records(Box<DatasetRecords>),
    Computed(std::vec::IntoIter<Record>),
}

/// The records of an export, filtered and projected, up to its limit.
struct Reader {
    source: Source,
    query: Query,
    sent: usize,
    limit: usize,
}

struct ExportState {
    reader: Reader,
    encoder: Encoder,
    stage: Stage,
}

/// Bytes a blocking writer (XLSX's) hands to the response as it goes, 64 KiB at a
/// time; the channel's bound makes the writer wait for a slow client.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    buffer: Vec<u8>,
}

const WRITE_CHUNK: usize = 64 * 1024;

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buffer);
        self.tx.blocking_send(Ok(bytes)).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Reader {
    /// The next records to export, filtered and projected; `None` at the end.
    async fn next_records(&mut self) -> Result<Option<Vec<Record>>, ExploreError> {
        if self.sent >= self.limit {
            return Ok(None);
        }
        let records = match &mut self.source {
            Source::Computed(rows) => rows.by_ref().take(CHUNK).collect::<Vec<_>>(),
            Source::Records(cursor) => {
                let Some(chunk) = cursor.next_chunk().await? else { return Ok(None) };
                chunk.iter().filter(|r| self.query.matches(&r.data)).map(|r| self.query.project(&r.data)).collect()
            }
        };
        if records.is_empty() && matches!(self.source, Source::Computed(_)) {
            return Ok(None);
        }
        let room = self.limit - self.sent;
        let records: Vec<Record> = records.into_iter().take(room).collect();
        self.sent += records.len();
        Ok(Some(records))
    }
}

impl ExportState {
    async fn next(&mut self) -> Option<Result<Vec<u8>, std::io::Error>> {
        let failed = |e: String| {
            tracing::error!(error = %e, "export stopped");
            Some(Err(std::io::Error::other("export stopped")))
        };
        match self.stage {
            Stage::Begin => {
                self.stage = Stage::Rows;
                Some(Ok(self.encoder.begin()))
            }
            Stage::Rows => {
                let mut out = Vec::new();
                while out.is_empty() {
                    match self.reader.next_records().await {
                        Ok(Some(records)) => {
                            for r in &records {
                                match self.encoder.record(r) {
                                    Ok(bytes) => out.extend(bytes),
                                    Err(e) => {
                                        self.stage = Stage::Done;
                                        return failed(e.to_string());
                                    }
                                }
                            }
                        }
                        Ok(None) => {
                            self.stage = Stage::Done;
                            return match self.encoder.end() {
                                Ok(end) => Some(Ok(end)),
                                Err(e) => failed(e.to_string()),
                            };
                        }
                        Err(e) => {
                            self.stage = Stage::Done;
                            return failed(e.message);
                        }
                    }
                }
                Some(Ok(out))
            }
            Stage::Done => None,
        }
    }
}

/// XLSX: every record goes into the workbook first (off the async threads, as its rows
/// go to a temporary file), then the workbook is written to the response as it is made.
async fn whole_file(mut reader: Reader, mut encoder: Encoder) -> ExploreResult<Body> {
    while let Some(records) = reader.next_records().await? {
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = records.iter().try_for_each(|r| encoder.record(r).map(drop));
            (encoder, result)
        })
        .await
        .map_err(|_| ExploreError::internal())?;
        encoder = back;
        result?;
    }
    Ok(finish_in_background(encoder))
}

/// Runs the encoder's last step on a blocking thread, its bytes going to the body.
fn finish_in_background(mut encoder: Encoder) -> Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter { tx: tx.clone(), buffer: Vec::new() };
        let result = encoder
            .finish(&mut writer)
            .map_err(|e| e.to_string())
            .and_then(|()| std::io::Write::flush(&mut writer).map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::error!(error = %e, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other("export stopped")));
        }
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

#[utoipa::path(get, path = "/api/explore/v2.1/catalog/datasets/{id}/attachments/{attachment_id}", tag = "open data",
    params(("id" = String, Path, description = "Dataset identifier (slug)"), ("attachment_id" = String, Path, description = "Attachment identifier (its file name)")),
    responses((status = 200, description = "The attached file, as uploaded"), (status = 404, description = "Absent or not visible")))]
pub async fn attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, attachment_id)): Path<(String, String)>,
) -> ExploreResult<Response> {
    let scoped = state.scoped(&caller);
    let d = visible(&scoped, &id).await?;
    let a =
        scoped.dataset_attachment(&d, &attachment_id).await?.ok_or_else(|| ExploreError::not_found(&attachment_id))?;
    scoped.count_dataset_usage(&d, UsageKind::Download).await;
    // A publisher's file is never run as a page of this site: always a download, its
    // type taken as declared (the security layer adds `nosniff` and the site's CSP).
    let headers = [
        (header::CONTENT_TYPE, a.media_type.clone()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", a.name)),
    ];
    Ok((headers, a.content).into_response())
}

/// The catalogue itself as a file (json, jsonl or csv of the dataset metadata).
#[utoipa::path(get, path = "/api/explore/v2.1/catalog/exports/{format}", tag = "open data",
    params(("format" = String, Path, description = "csv, json, jsonl, xlsx, parquet or dcat")),
    responses((status = 200, description = "The catalogue (csv, json, jsonl, xlsx, parquet), or DCAT-AP 3 with format dcat (?format=ttl, rdf or jsonld; paged with Hydra, ?page=)"), (status = 400, description = "Opendatasoft error: ODSQLError or InvalidRESTParameterError"), (status = 404, description = "Absent or not visible")))]
pub async fn catalog_export(
    State(state): State<AppState>,
    caller: Caller,
    Path(format): Path<String>,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
) -> ExploreResult<Response> {
    let params = Params::parse(raw)?;
    if format == "dcat" {
        return dcat(&state, &caller, &params, &headers).await;
    }
    let with_bom = matches!(params.one("with_bom"), Some("true"));
    let fmt = Format::parse(&format, params.one("delimiter"), with_bom)
        .filter(|f| !matches!(f, Format::GeoJson))
        .ok_or_else(|| {
            ExploreError::rest(format!(
                "Invalid value for format: {format}. Expected csv, json, jsonl, xlsx, parquet or dcat."
            ))
        })?;
    let schema = catalog_schema();
    let query = Query::build(&schema, &params.query())?;
    let datasets = state.scoped(&caller).datasets().await?;
    let rows = query.run(datasets.iter().map(catalog_record), 0, usize::MAX);
    let mut enc = Encoder::new(fmt, &schema, schema.fields.iter().map(|f| f.name.clone()).collect(), query.timezone())?;
    let headers = [
        (header::CONTENT_TYPE, fmt.content_type().to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"catalogue.{}\"", fmt.extension())),
    ];
    let mut out = enc.begin();
    for r in &rows.results {
        out.extend(enc.record(r)?);
    }
    if !fmt.is_streamed() {
        return Ok((headers, finish_in_background(enc)).into_response());
    }
    out.extend(enc.end()?);
    Ok((headers, out).into_response())
}

const DCAT_PER_PAGE: i64 = 100;

/// DCAT-AP 3 of the datasets the caller may see, `?format=ttl|rdf|jsonld` (or by
/// `Accept`, Turtle by default), `?page=` from 1, 100 datasets a page.
async fn dcat(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    headers: &axum::http::HeaderMap,
) -> ExploreResult<Response> {
    use socle_opendata::dcat::{graph, json_ld, rdf_xml, turtle, DcatDataset, Page, RdfFormat};
    let format = match params.one("format") {
        Some(f) => RdfFormat::parse(f).ok_or_else(|| {
            ExploreError::rest(format!("Invalid value for format API parameter: {f}. Expected ttl, rdf or jsonld."))
        })?,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .and_then(|accept| accept.split(',').find_map(|m| RdfFormat::parse(m.split(';').next().unwrap_or(""))))
            .unwrap_or(RdfFormat::Turtle),
    };
    let page = params.number("page", 1, 1, 1_000_000)?;
    let base = state.web.settings.public_url().to_string();
    let scoped = state.scoped(caller);
    let datasets = scoped.datasets().await?;
    let total = datasets.len() as i64;
    let last = ((total + DCAT_PER_PAGE - 1) / DCAT_PER_PAGE).max(1);
    let catalog_iri = format!("{base}/api/explore/v2.1/catalog/exports/dcat");
    let page_url = |n: i64| format!("{catalog_iri}?page={n}");
    let api = format!("{base}/api/explore/v2.1/catalog/datasets");
    let on_page: Vec<&VisibleDataset> =
        datasets.iter().skip(((page - 1) * DCAT_PER_PAGE) as usize).take(DCAT_PER_PAGE as usize).collect();
    let mut attachments = Vec::with_capacity(on_page.len());
    for v in &on_page {
        let id = &v.get().id;
        let listed: Vec<(String, String, String)> = scoped
            .dataset_attachments(v)
            .await?
            .into_iter()
            .map(|a| (a.title, a.media_type, format!("{api}/{id}/attachments/{}", a.name)))
            .collect();
        attachments.push(listed);
    }
    let items: Vec<DcatDataset> = on_page
        .iter()
        .zip(attachments)
        .map(|(v, attachments)| {
            let d = v.get();
            let m = &d.metadata;
            let text = |k: &str| m.get(k).and_then(JsonValue::as_str).map(str::to_string);
            let list = |k: &str| -> Vec<String> {
                m.get(k)
                    .and_then(JsonValue::as_array)
                    .map(|a| a.iter().filter_map(JsonValue::as_str).map(str::to_string).collect())
                    .unwrap_or_default()
            };
            let licence = match text("licence").as_deref() {
                Some("odbl") => socle_opendata::dataset::Licence::Odbl,
                _ => socle_opendata::dataset::Licence::Etalab20,
            };
            let mut keywords = list("keywords");
            keywords.extend(list("themes"));
            let exports = Format::NAMES
                .iter()
                .filter_map(|f| Format::parse(f, None, false))
                .map(|f| {
                    let media = f.content_type().split(';').next().unwrap_or("").to_string();
                    (f.extension().to_string(), media, format!("{api}/{}/exports/{}", d.id, f.extension()))
                })
                .collect();
            let temporal = m.get("temporal_coverage").map(|t| {
                let part = |k: &str| t.get(k).and_then(JsonValue::as_str).map(str::to_string);
                (part("start"), part("end"))
            });
            DcatDataset {
                id: d.id.clone(),
                title: text("title").unwrap_or_else(|| d.id.clone()),
                description: text("description").unwrap_or_default(),
                keywords,
                licence_url: licence.url().to_string(),
                publisher_iri: format!("{base}/api/v1/organisations/{}", d.organisation),
                publisher_name: text("publisher")
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| d.organisation.to_string()),
                modified: Some(d.modified_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                issued: Some(d.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                conforms_to: text("conforms_to"),
                temporal,
                spatial: text("spatial_coverage"),
                exports,
                attachments,
                landing_page: format!("{api}/{}", d.id),
            }
        })
        .collect();
    let page_info = Page {
        catalog_iri: catalog_iri.clone(),
        page_iri: page_url(page),
        title: "Catalogue des données ouvertes".into(),
        description: "Jeux de données publiés par les collectivités sur Socle.".into(),
        publisher_iri: format!("{base}/"),
        publisher_name: "Socle".into(),
        homepage: format!("{base}/"),
        total: total as u64,
        per_page: DCAT_PER_PAGE as u64,
        first: page_url(1),
        last: page_url(last),
        next: (page < last).then(|| page_url(page + 1)),
        previous: (page > 1).then(|| page_url(page - 1)),
    };
    let triples = graph(&page_info, &items);
    let body = match format {
        RdfFormat::Turtle => turtle(&triples),
        RdfFormat::RdfXml => rdf_xml(&triples),
        RdfFormat::JsonLd => json_ld(&triples).to_string(),
    };
    Ok(([(header::CONTENT_TYPE, format.media_type())], body).into_response())
}
