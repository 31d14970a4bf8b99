//! The catalogue in DCAT-AP 3.0.1, as data.gouv.fr harvests it from
//! `/api/explore/v2.1/catalog/exports/dcat`: a graph of triples built once, written in
//! Turtle, RDF/XML or JSON-LD (expanded form), paged with Hydra.
//!
//! Themes are written as `dcat:keyword` rather than `dcat:theme` because a theme must be a
//! concept of a controlled vocabulary, which free-text themes are not.

use std::fmt::Write;

use serde_json::{json, Map, Value as Json};

const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const FOAF: &str = "http://xmlns.com/foaf/0.1/";
const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
const HYDRA: &str = "http://www.w3.org/ns/hydra/core#";
const VCARD: &str = "http://www.w3.org/2006/vcard/ns#";

const PREFIXES: [(&str, &str); 7] =
    [("rdf", RDF), ("dcat", DCAT), ("dct", DCT), ("foaf", FOAF), ("xsd", XSD), ("hydra", HYDRA), ("vcard", VCARD)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdfFormat {
    Turtle,
    RdfXml,
    JsonLd,
}

impl RdfFormat {
    /// From `?format=` (`ttl`, `turtle`, `rdf`, `xml`, `jsonld`, `json-ld`) or an
    /// `Accept` media type.
    pub fn parse(name: &str) -> Option<RdfFormat> {
        let name = name.trim().to_ascii_lowercase();
        Some(match name.as_str() {
            "ttl" | "turtle" | "text/turtle" => RdfFormat::Turtle,
            "rdf" | "xml" | "rdfxml" | "rdf-xml" | "application/rdf+xml" => RdfFormat::RdfXml,
            "jsonld" | "json-ld" | "application/ld+json" => RdfFormat::JsonLd,
            _ => return None,
        })
    }

    pub fn media_type(self) -> &'static str {
        match self {
            RdfFormat::Turtle => "text/turtle; charset=utf-8",
            RdfFormat::RdfXml => "application/rdf+xml; charset=utf-8",
            RdfFormat::JsonLd => "application/ld+json",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Iri(String),
    Text(String, &'static str),
    Typed(String, &'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Triple {
    pub subject: String,
    /// Always one of the [`PREFIXES`] namespaces.
    pub predicate: String,
    pub object: Object,
}

/// What the catalogue says about one dataset.
#[derive(Debug, Clone, Default)]
pub struct DcatDataset {
    pub id: String,
    pub title: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub licence_url: String,
    pub publisher_iri: String,
    pub publisher_name: String,
    pub modified: Option<String>,
    pub issued: Option<String>,
    pub conforms_to: Option<String>,
    pub temporal: Option<(Option<String>, Option<String>)>,
    pub spatial: Option<String>,
    /// (format name, media type, URL) of each export.
    pub exports: Vec<(String, String, String)>,
    /// (title, media type, URL) of each attachment.
    pub attachments: Vec<(String, String, String)>,
    pub landing_page: String,
}

pub struct Page {
    pub catalog_iri: String,
    pub page_iri: String,
    pub title: String,
    pub description: String,
    pub publisher_iri: String,
    pub publisher_name: String,
    pub homepage: String,
    pub total: u64,
    pub per_page: u64,
    pub first: String,
    pub last: String,
    pub next: Option<String>,
    pub previous: Option<String>,
}

struct Graph(Vec<Triple>);

impl Graph {
    fn add(&mut self, s: &str, p: &str, o: Object) {
        self.0.push(Triple { subject: s.to_string(), predicate: p.to_string(), object: o });
    }
    fn iri(&mut self, s: &str, p: &str, o: &str) {
        self.add(s, p, Object::Iri(o.to_string()));
    }
    fn text(&mut self, s: &str, p: &str, o: &str) {
        self.add(s, p, Object::Text(o.to_string(), "fr"));
    }
    fn typed(&mut self, s: &str, p: &str, o: &str, t: &'static str) {
        self.add(s, p, Object::Typed(o.to_string(), t));
    }
}

fn agent(g: &mut Graph, iri: &str, name: &str) {
    g.iri(iri, &format!("{RDF}type"), &format!("{FOAF}Agent"));
    g.text(iri, &format!("{FOAF}name"), name);
}

/// Dates as `xsd:date` when they are one, else `xsd:dateTime`.
fn date_type(text: &str) -> &'static str {
    if text.len() == 10 {
        "http://www.w3.org/2001/XMLSchema#date"
    } else {
        "http://www.w3.org/2001/XMLSchema#dateTime"
    }
}

pub fn graph(page: &Page, datasets: &[DcatDataset]) -> Vec<Triple> {
    let mut g = Graph(Vec::new());
    let c = page.catalog_iri.as_str();
    let ty = format!("{RDF}type");
    g.iri(c, &ty, &format!("{DCAT}Catalog"));
    g.text(c, &format!("{DCT}title"), &page.title);
    g.text(c, &format!("{DCT}description"), &page.description);
    g.iri(c, &format!("{DCT}publisher"), &page.publisher_iri);
    g.iri(c, &format!("{FOAF}homepage"), &page.homepage);
    agent(&mut g, &page.publisher_iri, &page.publisher_name);
    // Hydra paging: the page is a view of the catalogue.
    let v = page.page_iri.as_str();
    g.iri(v, &ty, &format!("{HYDRA}PartialCollectionView"));
    g.iri(c, &format!("{HYDRA}view"), v);
    g.typed(c, &format!("{HYDRA}totalItems"), &page.total.to_string(), "http://www.w3.org/2001/XMLSchema#integer");
    g.typed(v, &format!("{HYDRA}itemsPerPage"), &page.per_page.to_string(), "http://www.w3.org/2001/XMLSchema#integer");
    g.iri(v, &format!("{HYDRA}first"), &page.first);
    g.iri(v, &format!("{HYDRA}last"), &page.last);
    if let Some(n) = &page.next {
        g.iri(v, &format!("{HYDRA}next"), n);
    }
    if let Some(p) = &page.previous {
        g.iri(v, &format!("{HYDRA}previous"), p);
    }
    let mut agents: Vec<&str> = vec![&page.publisher_iri];
    for d in datasets {
        let s = d.landing_page.as_str();
        g.iri(c, &format!("{DCAT}dataset"), s);
        g.iri(s, &ty, &format!("{DCAT}Dataset"));
        g.add(s, &format!("{DCT}identifier"), Object::Typed(d.id.clone(), "http://www.w3.org/2001/XMLSchema#string"));
        g.text(s, &format!("{DCT}title"), &d.title);
        let description = if d.description.trim().is_empty() { &d.title } else { &d.description };
        g.text(s, &format!("{DCT}description"), description);
        g.iri(s, &format!("{DCT}publisher"), &d.publisher_iri);
        if !agents.contains(&d.publisher_iri.as_str()) {
            agent(&mut g, &d.publisher_iri, &d.publisher_name);
            agents.push(&d.publisher_iri);
        }
        g.iri(s, &format!("{DCAT}landingPage"), s);
        for k in &d.keywords {
            g.text(s, &format!("{DCAT}keyword"), k);
        }
        if let Some(m) = &d.modified {
            g.typed(s, &format!("{DCT}modified"), m, date_type(m));
        }
        if let Some(i) = &d.issued {
            g.typed(s, &format!("{DCT}issued"), i, date_type(i));
        }
        if let Some(schema) = &d.conforms_to {
            g.iri(s, &format!("{DCT}conformsTo"), schema);
        }
        // DCAT-AP wants a dct:Location: only an IRI (a geo.api.gouv.fr or INSEE URI) is kept.
        if let Some(place) = d.spatial.as_ref().filter(|p| p.starts_with("http")) {
            g.iri(s, &format!("{DCT}spatial"), place);
        }
        if let Some((start, end)) = &d.temporal {
            let period = format!("{s}#temporal");
            g.iri(s, &format!("{DCT}temporal"), &period);
            g.iri(&period, &ty, &format!("{DCT}PeriodOfTime"));
            if let Some(x) = start {
                g.typed(&period, &format!("{DCAT}startDate"), x, date_type(x));
            }
            if let Some(x) = end {
                g.typed(&period, &format!("{DCAT}endDate"), x, date_type(x));
            }
        }
        let mut distribution = |title: String, media: &str, url: &str| {
            g.iri(s, &format!("{DCAT}distribution"), url);
            g.iri(url, &ty, &format!("{DCAT}Distribution"));
            g.text(url, &format!("{DCT}title"), &title);
            g.iri(url, &format!("{DCAT}accessURL"), url);
            g.iri(url, &format!("{DCAT}downloadURL"), url);
            g.iri(url, &format!("{DCAT}mediaType"), &format!("http://www.iana.org/assignments/media-types/{media}"));
            g.iri(url, &format!("{DCT}license"), &d.licence_url);
        };
        for (format, media, url) in &d.exports {
            distribution(format!("{} ({})", d.title, format.to_uppercase()), media, url);
        }
        for (title, media, url) in &d.attachments {
            distribution(title.clone(), media, url);
        }
    }
    g.0
}

fn qname(iri: &str) -> Option<(&'static str, &str)> {
    PREFIXES.iter().find(|(_, ns)| iri.starts_with(ns)).map(|(p, ns)| (*p, &iri[ns.len()..]))
}

fn escape_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn escape_iri(iri: &str) -> String {
    iri.chars()
        .flat_map(|c| match c {
            '<' | '>' | '"' | '{' | '}' | '|' | '^' | '`' | '\\' | ' ' => {
                format!("%{:02X}", c as u32).chars().collect::<Vec<_>>()
            }
            c if (c as u32) <= 0x20 => format!("%{:02X}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

pub fn turtle(triples: &[Triple]) -> String {
    let mut out = String::new();
    for (p, ns) in PREFIXES {
        let _ = writeln!(out, "@prefix {p}: <{ns}> .");
    }
    out.push('\n');
    for t in triples {
        let predicate = match qname(&t.predicate) {
            Some((p, local)) => format!("{p}:{local}"),
            None => format!("<{}>", escape_iri(&t.predicate)),
        };
        let object = match &t.object {
            Object::Iri(i) => format!("<{}>", escape_iri(i)),
            Object::Text(s, lang) => format!("\"{}\"@{lang}", escape_literal(s)),
            Object::Typed(s, ty) => format!("\"{}\"^^<{ty}>", escape_literal(s)),
        };
        let _ = writeln!(out, "<{}> {predicate} {object} .", escape_iri(&t.subject));
    }
    out
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 forbids are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

pub fn rdf_xml(triples: &[Triple]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rdf:RDF");
    for (p, ns) in PREFIXES {
        let _ = write!(out, " xmlns:{p}=\"{ns}\"");
    }
    out.push_str(">\n");
    for t in triples {
        let Some((p, local)) = qname(&t.predicate) else { continue };
        let _ = write!(out, "  <rdf:Description rdf:about=\"{}\">", xml_escape(&t.subject));
        match &t.object {
            Object::Iri(i) => {
                let _ = write!(out, "<{p}:{local} rdf:resource=\"{}\"/>", xml_escape(i));
            }
            Object::Text(s, lang) => {
                let _ = write!(out, "<{p}:{local} xml:lang=\"{lang}\">{}</{p}:{local}>", xml_escape(s));
            }
            Object::Typed(s, ty) => {
                let _ = write!(out, "<{p}:{local} rdf:datatype=\"{ty}\">{}</{p}:{local}>", xml_escape(s));
            }
        }
        out.push_str("</rdf:Description>\n");
    }
    out.push_str("</rdf:RDF>\n");
    out
}

/// Expanded JSON-LD: no context to fetch, so no third-party host is needed to read it.
pub fn json_ld(triples: &[Triple]) -> Json {
    let mut nodes: Vec<(String, Map<String, Json>)> = Vec::new();
    for t in triples {
        let index = match nodes.iter().position(|(s, _)| *s == t.subject) {
            Some(i) => i,
            None => {
                let mut m = Map::new();
                m.insert("@id".into(), json!(t.subject));
                nodes.push((t.subject.clone(), m));
                nodes.len() - 1
            }
        };
        let node = &mut nodes[index].1;
        if t.predicate == format!("{RDF}type") {
            if let (Object::Iri(i), Some(types)) =
                (&t.object, node.entry("@type").or_insert_with(|| json!([])).as_array_mut())
            {
                types.push(json!(i));
            }
            continue;
        }
        let value = match &t.object {
            Object::Iri(i) => json!({"@id": i}),
            Object::Text(s, lang) => json!({"@value": s, "@language": lang}),
            Object::Typed(s, ty) => json!({"@value": s, "@type": ty}),
        };
        if let Some(list) = node.entry(t.predicate.clone()).or_insert_with(|| json!([])).as_array_mut() {
            list.push(value);
        }
    }
    Json::Array(nodes.into_iter().map(|(_, m)| Json::Object(m)).collect())
}
