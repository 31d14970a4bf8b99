//! The open-data portal: the catalogue (`/donnees`: search, facets, list), a
//! dataset's page (`/donnees/{id}`: description, metadata, a filtered and paged
//! preview, a map of geo datasets, a chart builder, API examples, downloads,
//! embedding, and usage figures for the publisher) and the embeddable widgets
//! (`/donnees/{id}/widget/{table|chart|map}`).
//!
//! Every dataset comes through the policy's handles (`Scoped::datasets`,
//! `Scoped::dataset`, `Scoped::embeddable_dataset`), so a visitor sees exactly
//! what the Explore API would give them, and a hidden dataset answers like an
//! absent one. Queries run on the same ODSQL engine as the Explore API, with the
//! same parameters (`where`, `refine`), and each page shows the equivalent API
//! request. Pages are complete without script; the map is the only script-drawn
//! part, and the preview table says the same in text.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde_json::{Map, Value};
use socle_domain::Visibility;
use socle_opendata::dataset::Licence;
use socle_opendata::export::{Encoder, Format};
use socle_opendata::odsql::{normalise, Query as Odsql, QueryParams, Record};
use socle_opendata::schema::{Field, FieldType, Schema};
use socle_storage::UsageKind;

use super::opendata_chart::{self as chart, Drawing, Shape};
use super::opendata_words::{self as words, PortalWords};
use super::{assets, chrome, html, internal, message, urlencode, Chrome};
use crate::policy::{Scoped, VisibleDataset};
use crate::security::Embeddable;
use crate::{AppState, Caller};

const DATASETS_PER_PAGE: usize = 20;
const ROWS_PER_PAGE: usize = 20;
/// Opendatasoft's window: the preview pages as far as the records endpoint does.
const MAX_WINDOW: usize = 10_000;
const CHUNK: usize = 1_000;
const MAX_GROUPS: usize = 50;
const MAX_MAP_FEATURES: usize = 5_000;
const EXPLORE: &str = "/api/explore/v2.1/catalog/datasets";

// ---------------------------------------------------------------- shared

/// The query string as pairs: `refine` and the facets repeat.
type Pairs = Vec<(String, String)>;

fn one<'a>(q: &'a Pairs, name: &str) -> Option<&'a str> {
    q.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

fn all<'a>(q: &'a Pairs, name: &str) -> Vec<&'a str> {
    q.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()).collect()
}

fn schema_of(d: &VisibleDataset) -> Schema {
    Schema::new(serde_json::from_value(d.get().fields.clone()).unwrap_or_default())
}

fn meta_text(d: &VisibleDataset, key: &str) -> Option<String> {
    d.get().metadata.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn meta_list(d: &VisibleDataset, key: &str) -> Vec<String> {
    d.get()
        .metadata
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn licence_of(d: &VisibleDataset) -> Licence {
    match d.get().metadata.get("licence").and_then(Value::as_str) {
        Some("odbl") => Licence::Odbl,
        _ => Licence::Etalab20,
    }
}

fn title_of(d: &VisibleDataset) -> String {
    meta_text(d, "title").unwrap_or_else(|| d.get().id.clone())
}

fn is_live(d: &VisibleDataset) -> bool {
    d.get().metadata.get("live").is_some_and(|l| !l.is_null())
}

fn date(t: chrono::DateTime<chrono::Utc>, lang: &str) -> String {
    match lang {
        "fr" => t.format("%d/%m/%Y").to_string(),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// Every record of a dataset, read in one pass of chunks through the policy's handle.
async fn all_records(scoped: &Scoped, d: &VisibleDataset) -> Result<Vec<Record>, socle_storage::StoreError> {
    let mut out = Vec::new();
    let mut records = scoped.dataset_records(d, CHUNK);
    while let Some(chunk) = records.next_chunk().await? {
        out.extend(chunk.into_iter().map(|r| r.data));
    }
    Ok(out)
}

/// A path with its query string.
fn with_query(path: &str, params: &[(&str, String)]) -> String {
    let params: Vec<&(&str, String)> = params.iter().filter(|(_, v)| !v.is_empty()).collect();
    if params.is_empty() {
        return path.to_owned();
    }
    format!("{path}?{}", serde_urlencoded::to_string(params).unwrap_or_default())
}

/// A dataset's description: Markdown rendered with raw HTML shown as text (never
/// passed through), links kept only to web, mail or local addresses, images turned
/// into links (a page loads nothing from another host), headings moved below the
/// page's own `h2`.
pub fn description_html(markdown: &str) -> String {
    fn safe(url: &str) -> bool {
        let lower = url.trim().to_ascii_lowercase();
        lower.starts_with("https://")
            || lower.starts_with("http://")
            || lower.starts_with("mailto:")
            || lower.starts_with('#')
            || (lower.starts_with('/') && !lower.starts_with("//"))
    }
    fn lower(level: HeadingLevel) -> HeadingLevel {
        match level {
            HeadingLevel::H1 => HeadingLevel::H3,
            HeadingLevel::H2 => HeadingLevel::H4,
            HeadingLevel::H3 => HeadingLevel::H5,
            _ => HeadingLevel::H6,
        }
    }
    let mut dropped_link = false;
    let events = Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(|e| match e {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link { link_type, dest_url, title, id })
        | Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            if safe(&dest_url) {
                dropped_link = false;
                Event::Start(Tag::Link { link_type, dest_url, title, id })
            } else {
                dropped_link = true;
                Event::Start(Tag::Emphasis)
            }
        }
        Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
            if std::mem::take(&mut dropped_link) {
                Event::End(TagEnd::Emphasis)
            } else {
                Event::End(TagEnd::Link)
            }
        }
        Event::Start(Tag::Heading { level, id, classes, attrs }) => {
            Event::Start(Tag::Heading { level: lower(level), id, classes, attrs })
        }
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(lower(level))),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// A record's value as a table cell.
fn cell(value: Option<&Value>, ty: FieldType, w: &PortalWords, lang: &str) -> String {
    match (value, ty) {
        (None | Some(Value::Null), _) => String::new(),
        (Some(Value::Bool(b)), _) => (if *b { w.yes } else { w.no }).to_owned(),
        (Some(Value::Number(n)), _) => n.as_f64().map_or_else(|| n.to_string(), |v| chart::number(v, lang)),
        (Some(v), FieldType::GeoPoint2d) => {
            match (v.get("lat").and_then(Value::as_f64), v.get("lon").and_then(Value::as_f64)) {
                (Some(lat), Some(lon)) => format!("{lat:.5}, {lon:.5}"),
                _ => w.geometry.to_owned(),
            }
        }
        (Some(_), FieldType::GeoShape) => w.geometry.to_owned(),
        (Some(Value::String(s)), _) => s.clone(),
        (Some(Value::Array(items)), _) => {
            items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect::<Vec<_>>().join(", ")
        }
        (Some(other), _) => other.to_string(),
    }
}

fn is_geo(f: &Field) -> bool {
    matches!(f.field_type, FieldType::GeoPoint2d | FieldType::GeoShape)
}

fn is_number(f: &Field) -> bool {
    matches!(f.field_type, FieldType::Int | FieldType::Double)
}

/// `where` and `refine` as asked for by the visitor, checked against the schema.
struct Filters {
    where_: Option<String>,
    refine: Vec<String>,
}

impl Filters {
    fn from(q: &Pairs) -> Filters {
        Filters {
            where_: one(q, "where").map(|w| w.chars().take(2_000).collect()),
            refine: all(q, "refine").into_iter().take(20).map(str::to_owned).collect(),
        }
    }

    fn params(&self) -> QueryParams<'_> {
        QueryParams {
            where_: self.where_.as_deref(),
            refine: self.refine.iter().map(String::as_str).collect(),
            ..QueryParams::default()
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("where", self.where_.clone().unwrap_or_default())];
        out.extend(self.refine.iter().map(|r| ("refine", r.clone())));
        out
    }
}

// ---------------------------------------------------------------- chart

/// The first text facet whose values repeat (a name column groups nothing), else
/// the first text facet: what the chart counts by default and the API examples refine on.
fn repeating_facet<'a>(schema: &'a Schema, records: &[Record]) -> Option<&'a Field> {
    let mut facets = schema.fields.iter().filter(|f| f.facet && f.field_type == FieldType::Text);
    let repeats = |f: &&Field| {
        let distinct: std::collections::HashSet<String> =
            records.iter().filter_map(|r| r.get(&f.name)).map(Value::to_string).collect();
        distinct.len() > 1 && distinct.len() < records.len()
    };
    facets.clone().find(repeats).or_else(|| facets.next())
}

/// The chart asked for: group by `x`, `calcul` over `y`, drawn as `forme`.
struct ChartAsk {
    x: String,
    function: &'static str,
    y: Option<String>,
    shape: Shape,
}

const FUNCTIONS: [&str; 5] = ["count", "sum", "avg", "min", "max"];

impl ChartAsk {
    /// The visitor's choice, or a count by the first text facet whose values repeat
    /// (a name column would draw one bar per record), else any text field.
    fn from(q: &Pairs, schema: &Schema, records: &[Record]) -> Option<ChartAsk> {
        let groupable = |f: &&Field| !is_geo(f);
        let x = one(q, "x")
            .and_then(|x| schema.field(x))
            .filter(groupable)
            .or_else(|| repeating_facet(schema, records))
            .or_else(|| schema.fields.iter().find(|f| f.field_type == FieldType::Text))
            .or_else(|| schema.fields.iter().find(groupable))?;
        let function = one(q, "calcul").and_then(|c| FUNCTIONS.into_iter().find(|f| *f == c)).unwrap_or("count");
        let y = one(q, "y").and_then(|y| schema.field(y)).filter(|f| is_number(f)).map(|f| f.name.clone());
        let function = if y.is_none() { "count" } else { function };
        Some(ChartAsk { x: x.name.clone(), function, y, shape: Shape::parse(one(q, "forme").unwrap_or("")) })
    }

    fn x_expr(&self, schema: &Schema) -> String {
        match schema.type_of(&self.x) {
            Some(FieldType::Date | FieldType::DateTime) => format!("year(`{}`)", self.x),
            _ => format!("`{}`", self.x),
        }
    }

    fn y_expr(&self) -> String {
        match (&self.y, self.function) {
            (Some(y), f) if f != "count" => format!("{f}(`{y}`)"),
            _ => "count(*)".to_owned(),
        }
    }

    /// The Explore API parameters of this chart.
    fn api(&self, schema: &Schema) -> (String, String, String) {
        let x = self.x_expr(schema);
        let order = match schema.type_of(&self.x) {
            Some(FieldType::Text | FieldType::Boolean) => "y desc",
            _ => "x",
        };
        (format!("{x} as x, {} as y", self.y_expr()), x, order.to_owned())
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("x", self.x.clone()),
            ("calcul", self.function.to_owned()),
            ("y", self.y.clone().unwrap_or_default()),
            ("forme", self.shape.slug().to_owned()),
        ]
    }
}

pub struct ChartView {
    pub title: String,
    pub description: String,
    pub drawing: Option<Drawing>,
    pub rows: Vec<(String, String)>,
    pub x_label: String,
    pub y_label: String,
    pub cut: bool,
    pub api: String,
    pub error: Option<String>,
}

fn function_word(f: &str, w: &PortalWords) -> &'static str {
    match f {
        "sum" => w.sum,
        "avg" => w.avg,
        "min" => w.min,
        "max" => w.max,
        _ => w.count,
    }
}

fn chart_view(
    ask: &ChartAsk,
    schema: &Schema,
    filters: &Filters,
    records: &[Record],
    id: &str,
    w: &PortalWords,
    lang: &str,
) -> ChartView {
    let (select, group_by, order_by) = ask.api(schema);
    let mut params = filters.params();
    params.select = Some(&select);
    params.group_by = Some(&group_by);
    params.order_by = Some(&order_by);
    let mut api_pairs =
        vec![("select", select.clone()), ("group_by", group_by.clone()), ("order_by", order_by.clone())];
    api_pairs.extend(filters.pairs());
    api_pairs.push(("limit", MAX_GROUPS.to_string()));
    let label = |name: &str| schema.field(name).map_or_else(|| name.to_owned(), |f| f.label.clone());
    let x_label = label(&ask.x);
    let y_label = match &ask.y {
        Some(y) if ask.function != "count" => format!("{} — {}", function_word(ask.function, w), label(y)),
        _ => w.count.to_owned(),
    };
    let mut view = ChartView {
        title: format!("{y_label} / {x_label}"),
        description: String::new(),
        drawing: None,
        rows: Vec::new(),
        x_label,
        y_label,
        cut: false,
        api: with_query(&format!("{EXPLORE}/{id}/records"), &api_pairs),
        error: None,
    };
    let query = match Odsql::build(schema, &params) {
        Ok(q) => q,
        Err(e) => {
            view.error = Some(e.to_string());
            return view;
        }
    };
    let rows = query.run(records.iter().cloned(), 0, MAX_GROUPS);
    view.cut = rows.total_count > MAX_GROUPS as u64;
    let groups: Vec<(String, f64)> = rows
        .results
        .iter()
        .map(|r| {
            // Years and other whole numbers that name a group are written without separators.
            let x = match r.get("x") {
                Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v.fract() == 0.0) => {
                    format!("{:.0}", n.as_f64().unwrap_or_default())
                }
                other => cell(other, FieldType::Text, w, lang),
            };
            (x, r.get("y").and_then(Value::as_f64).unwrap_or(f64::NAN))
        })
        .collect();
    view.rows = groups.iter().map(|(x, y)| (x.clone(), chart::number(*y, lang))).collect();
    view.description =
        groups.iter().map(|(x, y)| format!("{x} : {}", chart::number(*y, lang))).collect::<Vec<_>>().join(" ; ");
    view.drawing = chart::draw(&groups, ask.shape, lang);
    view
}

// ---------------------------------------------------------------- preview

pub struct Column {
    pub name: String,
    pub label: String,
    pub numeric: bool,
}

pub struct Facet {
    pub field: String,
    pub label: String,
    pub id: String,
    pub values: Vec<FacetChoice>,
}

pub struct FacetChoice {
    /// `field:value`, the `refine` parameter.
    pub refine: String,
    pub label: String,
    pub count: u64,
    pub selected: bool,
}

pub struct Preview {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    pub total: u64,
    pub first: usize,
    pub last: usize,
    pub page: usize,
    pub pages: usize,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub facets: Vec<Facet>,
    pub api: String,
    pub error: Option<String>,
    /// The filtered records as GeoJSON, for the map (empty without geometry).
    pub geojson: String,
    pub mapped: usize,
}

#[allow(clippy::too_many_arguments)]
fn preview(
    schema: &Schema,
    filters: &Filters,
    records: &[Record],
    page: usize,
    path: &str,
    id: &str,
    extra: &[(&'static str, String)],
    w: &PortalWords,
    lang: &str,
) -> Preview {
    let columns: Vec<Column> = schema
        .fields
        .iter()
        .map(|f| Column { name: f.name.clone(), label: f.label.clone(), numeric: is_number(f) })
        .collect();
    let offset = (page - 1) * ROWS_PER_PAGE;
    let mut api_pairs = filters.pairs();
    api_pairs.push(("limit", ROWS_PER_PAGE.to_string()));
    if offset > 0 {
        api_pairs.push(("offset", offset.to_string()));
    }
    let mut p = Preview {
        columns,
        rows: Vec::new(),
        total: 0,
        first: 0,
        last: 0,
        page,
        pages: 1,
        previous: None,
        next: None,
        facets: Vec::new(),
        api: with_query(&format!("{EXPLORE}/{id}/records"), &api_pairs),
        error: None,
        geojson: String::new(),
        mapped: 0,
    };
    let query = match Odsql::build(schema, &filters.params()) {
        Ok(q) => q,
        Err(e) => {
            p.error = Some(e.to_string());
            return p;
        }
    };
    let rows = query.run(records.iter().cloned(), offset, ROWS_PER_PAGE);
    p.total = rows.total_count;
    let reachable = (rows.total_count as usize).min(MAX_WINDOW);
    p.pages = reachable.div_ceil(ROWS_PER_PAGE).max(1);
    p.first = if rows.results.is_empty() { 0 } else { offset + 1 };
    p.last = offset + rows.results.len();
    p.rows = rows
        .results
        .iter()
        .map(|r| schema.fields.iter().map(|f| cell(r.get(&f.name), f.field_type, w, lang)).collect())
        .collect();
    let link = |n: usize| {
        let mut pairs = filters.pairs();
        pairs.extend(extra.iter().cloned());
        pairs.push(("page", n.to_string()));
        with_query(path, &pairs) + "#apercu"
    };
    p.previous = (page > 1).then(|| link(page - 1));
    p.next = (page < p.pages).then(|| link(page + 1));
    let facet_fields: Vec<&str> =
        schema.fields.iter().filter(|f| f.facet && f.field_type == FieldType::Text).map(|f| f.name.as_str()).collect();
    p.facets = query
        .facets(records.iter().cloned(), &facet_fields, 50)
        .into_iter()
        .enumerate()
        .filter(|(_, f)| !f.facets.is_empty())
        .map(|(i, f)| Facet {
            label: schema.field(&f.name).map_or_else(|| f.name.clone(), |x| x.label.clone()),
            id: format!("affiner-{i}"),
            values: f
                .facets
                .iter()
                .map(|v| {
                    let refine = format!("{}:{}", f.name, v.value);
                    FacetChoice {
                        selected: filters.refine.contains(&refine),
                        refine,
                        label: v.name.clone(),
                        count: v.count,
                    }
                })
                .collect(),
            field: f.name,
        })
        .collect();
    if schema.fields.iter().any(is_geo) {
        let columns = schema.fields.iter().map(|f| f.name.clone()).collect();
        let geojson = Encoder::new(Format::GeoJson, schema, columns, query.timezone()).and_then(|mut enc| {
            let mut out = enc.begin();
            for r in records.iter().filter(|r| query.matches(r)).take(MAX_MAP_FEATURES) {
                out.extend(enc.record(r)?);
                p.mapped += 1;
            }
            out.extend(enc.end()?);
            Ok(out)
        });
        match geojson {
            Ok(out) => p.geojson = String::from_utf8(out).unwrap_or_default(),
            // The page stays useful without its map.
            Err(e) => tracing::warn!(error = %e, "the dataset's map could not be encoded"),
        }
    }
    p
}

// ---------------------------------------------------------------- catalogue

/// The catalogue as records, so facets and refinements run on the ODSQL engine.
fn catalogue_schema() -> Schema {
    let facet = |name: &str, label: &str| {
        let mut f = Field::new(name, label, FieldType::Text);
        f.facet = true;
        f
    };
    Schema::new(vec![
        facet("theme", "Thème"),
        facet("keyword", "Mot-clé"),
        facet("publisher", "Producteur"),
        facet("license", "Licence"),
    ])
}

fn catalogue_record(d: &VisibleDataset) -> Record {
    let mut r = Map::new();
    r.insert("theme".into(), Value::from(meta_list(d, "themes")));
    r.insert("keyword".into(), Value::from(meta_list(d, "keywords")));
    r.insert("publisher".into(), meta_text(d, "publisher").map_or(Value::Null, Value::from));
    r.insert("license".into(), Value::from(licence_of(d).id()));
    r
}

/// The words a search looks in: title, description, keywords and themes.
fn search_text(d: &VisibleDataset) -> String {
    let mut text = format!("{} {}", title_of(d), meta_text(d, "description").unwrap_or_default());
    for w in meta_list(d, "keywords").into_iter().chain(meta_list(d, "themes")) {
        text.push(' ');
        text.push_str(&w);
    }
    normalise(&text)
}

/// The four facets of the catalogue: (query parameter, field, label).
fn catalogue_facets(w: &PortalWords) -> [(&'static str, &'static str, &'static str); 4] {
    [
        ("theme", "theme", w.facet_theme),
        ("mot-cle", "keyword", w.facet_keyword),
        ("producteur", "publisher", w.facet_publisher),
        ("licence", "license", w.facet_licence),
    ]
}

pub struct DatasetCard {
    pub href: String,
    pub title: String,
    pub publisher: String,
    pub licence: &'static str,
    pub modified: String,
    pub modified_iso: String,
    pub records: String,
    pub restricted: bool,
    pub themes: Vec<String>,
}

#[derive(Template)]
#[template(path = "datasets.html")]
struct CataloguePage {
    c: Chrome,
    w: &'static PortalWords,
    q: String,
    facets: Vec<Facet>,
    cards: Vec<DatasetCard>,
    total: usize,
    page: usize,
    pages: usize,
    previous: Option<String>,
    next: Option<String>,
    dcat: &'static str,
}

/// `/donnees`: the datasets the visitor may see, searched and refined, without script.
pub async fn catalogue_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<Pairs>,
) -> Response {
    let (mut c, cookie) = chrome(&state, &caller, &headers, "/donnees");
    c.section = "donnees";
    let w = words::words(c.t.lang);
    let lang = c.t.lang;
    let datasets = match state.scoped(&caller).datasets().await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let text: String = one(&q, "q").unwrap_or("").chars().take(200).collect();
    let needles: Vec<String> = normalise(&text).split_whitespace().map(str::to_owned).collect();
    let found: Vec<&VisibleDataset> = datasets
        .iter()
        .filter(|d| {
            let hay = search_text(d);
            needles.iter().all(|n| hay.contains(n.as_str()))
        })
        .collect();
    let mut refine = Vec::new();
    let facets = catalogue_facets(w);
    for (param, field, _) in facets {
        refine.extend(all(&q, param).into_iter().map(|v| format!("{field}:{v}")));
    }
    let schema = catalogue_schema();
    let query = Odsql::build(
        &schema,
        &QueryParams { refine: refine.iter().map(String::as_str).collect(), ..QueryParams::default() },
    );
    // A refinement on a value no dataset has is simply nothing found; the fields are fixed.
    let query = match query {
        Ok(q) => q,
        Err(e) => return internal(e),
    };
    let facet_values = query.facets(found.iter().map(|d| catalogue_record(d)), &facets.map(|(_, field, _)| field), 100);
    let facet_views: Vec<Facet> = facets
        .iter()
        .zip(facet_values)
        .map(|((param, _, label), f)| {
            let chosen = all(&q, param);
            let mut values: Vec<FacetChoice> = f
                .facets
                .iter()
                .map(|v| FacetChoice {
                    selected: chosen.contains(&v.value.as_str()),
                    refine: v.value.clone(),
                    label: if *param == "licence" {
                        match v.value.as_str() {
                            "odbl" => Licence::Odbl.label().to_owned(),
                            _ => Licence::Etalab20.label().to_owned(),
                        }
                    } else {
                        v.name.clone()
                    },
                    count: v.count,
                })
                .collect();
            // A value chosen but no longer present stays visible, so it can be unticked.
            for c in chosen {
                if !values.iter().any(|v| v.refine == c) {
                    values.push(FacetChoice { refine: c.to_owned(), label: c.to_owned(), count: 0, selected: true });
                }
            }
            Facet { field: (*param).to_owned(), label: (*label).to_owned(), id: format!("facette-{param}"), values }
        })
        .collect();
    let mut shown: Vec<&VisibleDataset> = found.into_iter().filter(|d| query.matches(&catalogue_record(d))).collect();
    shown.sort_by_cached_key(|d| normalise(&title_of(d)));
    let total = shown.len();
    let pages = total.div_ceil(DATASETS_PER_PAGE).max(1);
    let page = one(&q, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages);
    let cards = shown
        .iter()
        .skip((page - 1) * DATASETS_PER_PAGE)
        .take(DATASETS_PER_PAGE)
        .map(|d| {
            let s = d.get();
            // Metadata or data, whichever changed last.
            let last_change = s.data_modified_at.map_or(s.modified_at, |t| t.max(s.modified_at));
            DatasetCard {
                href: format!("/donnees/{}", urlencode(&s.id)),
                title: title_of(d),
                publisher: meta_text(d, "publisher").unwrap_or_else(|| s.organisation.to_string()),
                licence: licence_of(d).label(),
                modified: date(last_change, lang),
                modified_iso: last_change.to_rfc3339(),
                records: if is_live(d) { w.live.to_owned() } else { chart::number(s.records_count as f64, lang) },
                restricted: s.visibility != Visibility::Public,
                themes: meta_list(d, "themes"),
            }
        })
        .collect();
    let link = |n: usize| {
        let mut pairs: Vec<(&str, String)> =
            q.iter().filter(|(k, _)| k != "page").map(|(k, v)| (k.as_str(), v.clone())).collect();
        pairs.push(("page", n.to_string()));
        with_query("/donnees", &pairs)
    };
    let page = CataloguePage {
        w,
        q: text,
        facets: facet_views,
        cards,
        total,
        previous: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        page,
        pages,
        dcat: "/api/explore/v2.1/catalog/exports/dcat",
        c,
    };
    html(StatusCode::OK, lang, &page, cookie.into_iter().collect())
}

// ---------------------------------------------------------------- dataset page

pub struct MetaRow {
    pub label: &'static str,
    pub value: String,
    pub href: Option<String>,
}

pub struct Download {
    pub name: String,
    pub href: String,
    pub media: String,
}

pub struct Example {
    pub label: &'static str,
    pub command: String,
}

pub struct Snippet {
    pub label: &'static str,
    pub id: &'static str,
    pub code: String,
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct Usage {
    pub views: String,
    pub downloads: String,
    pub api_calls: String,
}

pub struct MapView {
    pub geojson: String,
    pub worker: &'static str,
    pub tiles: String,
    pub attribution: String,
    pub max_zoom: u8,
}

#[derive(Template)]
#[template(path = "dataset.html")]
struct DatasetPage {
    c: Chrome,
    w: &'static PortalWords,
    title: String,
    description: String,
    restricted: bool,
    meta: Vec<MetaRow>,
    themes: Vec<String>,
    keywords: Vec<String>,
    fields: Vec<(String, String, &'static str)>,
    preview: Preview,
    where_text: String,
    /// The chart's choices, kept by the preview's form, and the filters, kept by the chart's.
    chart_pairs: Vec<(&'static str, String)>,
    filter_pairs: Vec<(&'static str, String)>,
    map: Option<MapView>,
    chart: Option<ChartView>,
    x_choices: Vec<Choice>,
    y_choices: Vec<Choice>,
    functions: Vec<Choice>,
    shapes: Vec<Choice>,
    examples: Vec<Example>,
    downloads: Vec<Download>,
    dcat: String,
    snippets: Vec<Snippet>,
    usage: Option<Usage>,
}

fn map_view(state: &AppState, geojson: String) -> MapView {
    let settings = &state.web.settings.map;
    MapView {
        geojson,
        worker: assets::MAP_WORKER.href.as_str(),
        tiles: settings.tiles_url.clone(),
        attribution: settings.attribution.clone(),
        max_zoom: settings.max_zoom,
    }
}

fn not_found(state: &AppState, caller: &Caller, headers: &HeaderMap) -> Response {
    message(state, caller, headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found)
}

/// The page number asked for (from 1), never past Opendatasoft's window.
fn page_number(q: &Pairs) -> usize {
    one(q, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, MAX_WINDOW / ROWS_PER_PAGE)
}

fn api_examples(base: &str, id: &str, schema: &Schema, records: &[Record], w: &PortalWords) -> Vec<Example> {
    let url = |params: &[(&str, String)]| with_query(&format!("{base}{EXPLORE}/{id}/records"), params);
    let mut out =
        vec![Example { label: w.api_records, command: format!("curl \"{}\"", url(&[("limit", "20".into())])) }];
    let facet = repeating_facet(schema, records);
    if let Some(f) = facet {
        if let Some(v) = records.iter().find_map(|r| r.get(&f.name).and_then(Value::as_str)) {
            out.push(Example {
                label: w.api_refine,
                command: format!("curl \"{}\"", url(&[("refine", format!("{}:{v}", f.name)), ("limit", "20".into())])),
            });
        }
    }
    if let Some(f) = schema.fields.iter().find(|f| is_number(f)) {
        let values: Vec<f64> = records.iter().filter_map(|r| r.get(&f.name).and_then(Value::as_f64)).collect();
        let mean = if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 };
        let threshold = if mean.abs() >= 10.0 { mean.round() } else { (mean * 100.0).round() / 100.0 };
        out.push(Example {
            label: w.api_where,
            command: format!(
                "curl \"{}\"",
                url(&[("where", format!("`{}` > {threshold}", f.name)), ("order_by", format!("`{}` desc", f.name))])
            ),
        });
    }
    if let Some(f) = facet {
        out.push(Example {
            label: w.api_group,
            command: format!(
                "curl \"{}\"",
                url(&[("select", format!("`{}`, count(*) as n", f.name)), ("group_by", format!("`{}`", f.name))])
            ),
        });
    }
    out.push(Example {
        label: w.api_export,
        command: format!("curl -o {id}.csv \"{base}{EXPLORE}/{id}/exports/csv\""),
    });
    out
}

/// Every export format of the Explore API, read from its one list.
fn downloads(id: &str) -> Vec<Download> {
    Format::NAMES
        .iter()
        .filter_map(|name| Format::parse(name, None, false).map(|f| (name, f)))
        .map(|(name, f)| Download {
            name: name.to_uppercase(),
            href: format!("{EXPLORE}/{id}/exports/{}", f.extension()),
            media: f.content_type().split(';').next().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// `/donnees/{id}`: everything about one dataset the visitor may see.
pub async fn dataset_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Pairs>,
) -> Response {
    let scoped = state.scoped(&caller);
    let d = match scoped.dataset(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(&state, &caller, &headers),
        Err(e) => return internal(e),
    };
    let path = format!("/donnees/{}", urlencode(&d.get().id));
    let (mut c, cookie) = chrome(&state, &caller, &headers, &path);
    c.section = "donnees";
    let lang = c.t.lang;
    let w = words::words(lang);
    scoped.count_dataset_usage(&d, UsageKind::View).await;
    let (records, usage) = match (all_records(&scoped, &d).await, scoped.publisher_usage(&d).await) {
        (Ok(r), Ok(u)) => (r, u),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let s = d.get();
    let schema = schema_of(&d);
    let filters = Filters::from(&q);
    let ask = ChartAsk::from(&q, &schema, &records);
    let chart_pairs = ask.as_ref().map(ChartAsk::pairs).unwrap_or_default();
    let preview = preview(&schema, &filters, &records, page_number(&q), &path, &s.id, &chart_pairs, w, lang);
    let chart = ask.as_ref().map(|a| chart_view(a, &schema, &filters, &records, &s.id, w, lang));
    let base = state.web.settings.public_url().to_owned();

    let licence = licence_of(&d);
    let mut meta = vec![
        MetaRow {
            label: w.publisher,
            value: meta_text(&d, "publisher").unwrap_or_else(|| s.organisation.to_string()),
            href: None,
        },
        MetaRow { label: w.licence, value: licence.label().to_owned(), href: Some(licence.url().to_owned()) },
    ];
    if let Some(f) = meta_text(&d, "frequency") {
        meta.push(MetaRow { label: w.frequency, value: words::frequency(&f, lang), href: None });
    }
    if let Some(t) = s.metadata.get("temporal_coverage") {
        let part = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("…").to_owned();
        meta.push(MetaRow {
            label: w.temporal,
            value: format!("{} {} {}", part("start"), w.from_to, part("end")),
            href: None,
        });
    }
    if let Some(sp) = meta_text(&d, "spatial_coverage") {
        meta.push(MetaRow { label: w.spatial, value: sp, href: None });
    }
    if let Some(schema_url) = meta_text(&d, "conforms_to") {
        let href = schema_url.starts_with("https://").then(|| schema_url.clone());
        meta.push(MetaRow { label: w.conforms_to, value: schema_url, href });
    }
    meta.push(MetaRow { label: w.identifier, value: format!("{} ({})", s.id, s.uid), href: None });
    meta.push(MetaRow { label: w.published, value: date(s.created_at, lang), href: None });
    meta.push(MetaRow { label: w.modified, value: date(s.modified_at, lang), href: None });
    if let Some(t) = s.data_modified_at {
        meta.push(MetaRow { label: w.data_updated, value: date(t, lang), href: None });
    }
    meta.push(MetaRow {
        label: w.records,
        value: if is_live(&d) { w.live.to_owned() } else { chart::number(records.len() as f64, lang) },
        href: None,
    });

    let choice = |value: &str, label: String, selected: bool| Choice { value: value.to_owned(), label, selected };
    let x_choices = schema
        .fields
        .iter()
        .filter(|f| !is_geo(f))
        .map(|f| choice(&f.name, f.label.clone(), ask.as_ref().is_some_and(|a| a.x == f.name)))
        .collect();
    let mut y_choices = vec![choice("", "—".to_owned(), ask.as_ref().is_some_and(|a| a.y.is_none()))];
    y_choices.extend(schema.fields.iter().filter(|f| is_number(f)).map(|f| {
        choice(&f.name, f.label.clone(), ask.as_ref().is_some_and(|a| a.y.as_deref() == Some(f.name.as_str())))
    }));
    let functions = FUNCTIONS
        .iter()
        .map(|f| choice(f, function_word(f, w).to_owned(), ask.as_ref().is_some_and(|a| a.function == *f)))
        .collect();
    let shapes = [(Shape::Bars, w.bars), (Shape::Line, w.line)]
        .into_iter()
        .map(|(sh, label)| choice(sh.slug(), label.to_owned(), ask.as_ref().is_some_and(|a| a.shape == sh)))
        .collect();

    let public = s.visibility == Visibility::Public;
    let widget = |kind: &str, pairs: Vec<(&'static str, String)>| {
        with_query(&format!("{base}/donnees/{}/widget/{kind}", urlencode(&s.id)), &pairs)
    };
    let iframe = |src: String, title: String| {
        format!(
            "<iframe src=\"{}\" title=\"{}\" width=\"100%\" height=\"480\" loading=\"lazy\"></iframe>",
            src.replace('&', "&amp;"),
            title.replace('"', "&quot;")
        )
    };
    let title = title_of(&d);
    let mut snippets = Vec::new();
    if public {
        snippets.push(Snippet {
            label: w.embed_table,
            id: "integrer-tableau",
            code: iframe(widget("table", filters.pairs()), format!("{} — {}", w.embed_table, title)),
        });
        if ask.is_some() {
            let mut pairs = filters.pairs();
            pairs.extend(chart_pairs.iter().cloned());
            snippets.push(Snippet {
                label: w.embed_chart,
                id: "integrer-graphique",
                code: iframe(widget("chart", pairs), format!("{} — {}", w.embed_chart, title)),
            });
        }
        if !preview.geojson.is_empty() {
            snippets.push(Snippet {
                label: w.embed_map,
                id: "integrer-carte",
                code: iframe(widget("map", filters.pairs()), format!("{} — {}", w.embed_map, title)),
            });
        }
    }
    let map = (!preview.geojson.is_empty()).then(|| map_view(&state, preview.geojson.clone()));
    let page = DatasetPage {
        w,
        description: description_html(&meta_text(&d, "description").unwrap_or_default()),
        restricted: !public,
        meta,
        themes: meta_list(&d, "themes"),
        keywords: meta_list(&d, "keywords"),
        fields: schema.fields.iter().map(|f| (f.name.clone(), f.label.clone(), f.field_type.as_str())).collect(),
        where_text: filters.where_.clone().unwrap_or_default(),
        filter_pairs: filters.pairs().into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        chart_pairs,
        map,
        chart,
        x_choices,
        y_choices,
        functions,
        shapes,
        examples: api_examples(&base, &s.id, &schema, &records, w),
        downloads: downloads(&s.id),
        dcat: "/api/explore/v2.1/catalog/exports/dcat".to_owned(),
        snippets,
        usage: usage.map(|u| Usage {
            views: chart::number(u.views as f64, lang),
            downloads: chart::number(u.downloads as f64, lang),
            api_calls: chart::number(u.api_calls as f64, lang),
        }),
        preview,
        title,
        c,
    };
    let status = if page.preview.error.is_some() || page.chart.as_ref().is_some_and(|c| c.error.is_some()) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(status, lang, &page, cookie.into_iter().collect())
}

// ---------------------------------------------------------------- widgets

#[derive(Template)]
#[template(path = "widget.html")]
struct WidgetPage {
    lang: &'static str,
    w: &'static PortalWords,
    css: &'static str,
    app_css: &'static str,
    js: &'static str,
    kind: &'static str,
    title: String,
    source: String,
    href: String,
    preview: Option<Preview>,
    chart: Option<ChartView>,
    map: Option<MapView>,
}

/// `/donnees/{id}/widget/{table|chart|map}`: one part of a public dataset's page,
/// alone, to be framed by any site (and only these pages may be).
pub async fn widget(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, kind)): Path<(String, String)>,
    Query(q): Query<Pairs>,
) -> Response {
    let lang = super::page_lang(&headers);
    let t = super::texts::Texts::of(lang);
    let w = words::words(t.lang);
    let kind = match kind.as_str() {
        "table" => "table",
        "chart" => "chart",
        "map" => "map",
        _ => return embeddable(not_found(&state, &caller, &headers)),
    };
    let scoped = state.scoped(&caller);
    let d = match scoped.embeddable_dataset(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return embeddable(not_found(&state, &caller, &headers)),
        Err(e) => return internal(e),
    };
    scoped.count_dataset_usage(&d, UsageKind::View).await;
    let records = match all_records(&scoped, &d).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let s = d.get();
    let schema = schema_of(&d);
    let filters = Filters::from(&q);
    let path = format!("/donnees/{}/widget/{kind}", urlencode(&s.id));
    let base = state.web.settings.public_url().to_owned();
    let mut page = WidgetPage {
        lang: t.lang,
        w,
        css: assets::CSS.href.as_str(),
        app_css: assets::APP_CSS.href.as_str(),
        js: assets::JS.href.as_str(),
        kind,
        title: title_of(&d),
        source: format!(
            "{} — {}",
            meta_text(&d, "publisher").unwrap_or_else(|| s.organisation.to_string()),
            licence_of(&d).label()
        ),
        href: format!("{base}/donnees/{}", urlencode(&s.id)),
        preview: None,
        chart: None,
        map: None,
    };
    let failed = match kind {
        "chart" => {
            let chart = ChartAsk::from(&q, &schema, &records)
                .map(|a| chart_view(&a, &schema, &filters, &records, &s.id, w, t.lang));
            let failed = chart.as_ref().is_some_and(|c| c.error.is_some());
            page.chart = chart;
            failed
        }
        _ => {
            let p = preview(&schema, &filters, &records, page_number(&q), &path, &s.id, &[], w, t.lang);
            let failed = p.error.is_some();
            if kind == "map" {
                if p.geojson.is_empty() {
                    return embeddable(not_found(&state, &caller, &headers));
                }
                page.map = Some(map_view(&state, p.geojson.clone()));
            }
            page.preview = Some(p);
            failed
        }
    };
    let status = if failed { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    embeddable(html(status, t.lang, &page, Vec::new()))
}

/// Marks a response as one other sites may frame (see `security::headers`).
fn embeddable(mut res: Response) -> Response {
    res.extensions_mut().insert(Embeddable);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_never_passes_html_or_scripts_through() {
        let html = description_html(
            "# Titre\n\nDu **gras**, <script>alert(1)</script> et <b onclick=\"x()\">b</b>.\n\n\
             [lien](javascript:alert(1)) [site](https://data.gouv.fr) ![carte](https://tuiles.example/a.png)",
        );
        assert!(html.contains("<h3>Titre</h3>"), "{html}");
        assert!(html.contains("<strong>gras</strong>"), "{html}");
        assert!(!html.contains("<script") && html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<b ") && !html.contains("javascript:"), "{html}");
        assert!(html.contains("<em>lien</em>"), "{html}");
        assert!(html.contains(r#"<a href="https://data.gouv.fr">site</a>"#), "{html}");
        // An image becomes a link to it: the page itself loads nothing from another host.
        assert!(
            !html.contains("<img") && html.contains(r#"<a href="https://tuiles.example/a.png">carte</a>"#),
            "{html}"
        );
    }

    #[test]
    fn the_chart_defaults_to_counting_by_the_first_facet() {
        let schema = Schema::new(vec![
            Field::new("nom", "Nom", FieldType::Text),
            Field::new("surface", "Surface", FieldType::Double),
            Field::new("ouverture", "Ouverture", FieldType::Date),
        ]);
        let ask = ChartAsk::from(&Vec::new(), &schema, &[]).unwrap();
        assert_eq!((ask.x.as_str(), ask.function, ask.y.as_deref()), ("nom", "count", None));
        let q: Pairs = vec![
            ("x".into(), "ouverture".into()),
            ("calcul".into(), "sum".into()),
            ("y".into(), "surface".into()),
            ("forme".into(), "courbe".into()),
        ];
        let ask = ChartAsk::from(&q, &schema, &[]).unwrap();
        assert_eq!(ask.api(&schema).0, "year(`ouverture`) as x, sum(`surface`) as y");
        assert_eq!(ask.shape, Shape::Line);
        // A text field cannot be summed: the chart counts instead of failing.
        let q: Pairs = vec![("calcul".into(), "sum".into()), ("y".into(), "nom".into())];
        assert_eq!(ChartAsk::from(&q, &schema, &[]).unwrap().function, "count");
        let records: Vec<Record> = [("Piscine", 2.0), ("Gymnase", 1.5), ("Piscine", 4.0)]
            .iter()
            .map(|(n, s)| serde_json::json!({"nom": n, "surface": s}).as_object().unwrap().clone())
            .collect();
        let q: Pairs = vec![("calcul".into(), "sum".into()), ("y".into(), "surface".into())];
        let ask = ChartAsk::from(&q, &schema, &records).unwrap();
        assert_eq!(ask.x, "nom", "names repeat here, so they group");
        let filters = Filters { where_: None, refine: Vec::new() };
        let view = chart_view(&ask, &schema, &filters, &records, "equipements", &words::FR, "fr");
        assert_eq!(view.error, None);
        assert_eq!(view.rows, [("Piscine".to_owned(), "6".to_owned()), ("Gymnase".to_owned(), "1,5".to_owned())]);
        assert_eq!(view.drawing.as_ref().map(|d| d.bars.len()), Some(2));
        let bad = Filters { where_: Some("surface >".into()), refine: Vec::new() };
        assert!(chart_view(&ask, &schema, &bad, &records, "equipements", &words::FR, "fr").error.is_some());
    }
}
