//! Entities in and out of NGSI-LD JSON: the normalized, concise and
//! keyValues representations (ETSI GS CIM 009 4.5), and the parsing of
//! entity bodies and attribute fragments (normalized or concise) into
//! Socle's domain entity. Names go through the request's [`Context`].

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use socle_domain::{
    Attribute, AttributeName, Entity, EntityId, EntityType, Geometry, Observation, ObservedValue, OrganisationId,
    UnitCode,
};

use crate::context::Context;
use crate::error::{NgsiError, Result};

/// The value NGSI-LD uses to delete an attribute in a merge.
pub const NULL_URN: &str = "urn:ngsi-ld:null";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Normalized,
    Concise,
    KeyValues,
}

impl Format {
    /// From the `options` (or `format`) query parameter: a comma list that
    /// may also hold `sysAttrs`, `noOverwrite`, `temporalValues`…
    pub fn from_options(options: &str) -> Self {
        let mut f = Self::Normalized;
        for o in options.split(',') {
            match o.trim() {
                "keyValues" | "simplified" => f = Self::KeyValues,
                "concise" => f = Self::Concise,
                _ => {}
            }
        }
        f
    }
}

/// How to show an entity.
#[derive(Debug, Clone, Copy)]
pub struct Render<'a> {
    pub format: Format,
    pub sys_attrs: bool,
    /// Stored names of the attributes asked for (`attrs`); all when `None`.
    pub attrs: Option<&'a [String]>,
    pub ctx: &'a Context,
    /// `lang`: LanguageProperties show the text of this language (`*`: all).
    pub lang: Option<&'a str>,
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The text of the language asked for: same tag, else same primary
/// language, else `@none`, else the first.
fn pick_language<'m>(map: &'m BTreeMap<String, String>, lang: &str) -> Option<(&'m str, &'m str)> {
    let lang = lang.split([',', ';']).next().unwrap_or_default().trim().to_ascii_lowercase();
    let primary = |t: &str| t.split('-').next().unwrap_or_default().to_ascii_lowercase();
    map.iter()
        .find(|(k, _)| k.to_ascii_lowercase() == lang)
        .or_else(|| map.iter().find(|(k, _)| primary(k) == primary(&lang)))
        .or_else(|| map.iter().find(|(k, _)| k.as_str() == "@none"))
        .or_else(|| map.iter().next())
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

fn render_attribute(a: &Attribute, format: Format, lang: Option<&str>) -> Value {
    if let (Attribute::LanguageProperty { language_map, observed_at }, Some(l)) = (a, lang.filter(|l| *l != "*")) {
        if let Some((tag, text)) = pick_language(language_map, l) {
            if format == Format::KeyValues {
                return Value::from(text);
            }
            let mut o = Map::new();
            if format == Format::Normalized {
                o.insert("type".into(), Value::from("Property"));
            }
            o.insert("value".into(), Value::from(text));
            o.insert("lang".into(), Value::from(tag));
            if let Some(t) = observed_at {
                o.insert("observedAt".into(), Value::from(instant(*t)));
            }
            return Value::Object(o);
        }
    }
    match (format, a) {
        (Format::KeyValues, Attribute::LanguageProperty { language_map, .. }) => json!({"languageMap": language_map}),
        (Format::KeyValues, Attribute::ListProperty { value_list, .. }) => json!({"valueList": value_list}),
        (Format::KeyValues, Attribute::Property { value, .. }) => value.clone(),
        (Format::KeyValues, Attribute::Relationship { object, .. }) => Value::from(object.as_str()),
        (Format::KeyValues, Attribute::GeoProperty { value, .. }) => serde_json::to_value(value).unwrap_or_default(),
        (Format::Concise, Attribute::Property { value, unit_code: None, observed_at: None }) if !value.is_object() => {
            value.clone()
        }
        (Format::Concise, Attribute::GeoProperty { value, observed_at: None }) => {
            serde_json::to_value(value).unwrap_or_default()
        }
        (format, a) => {
            let mut v = serde_json::to_value(a).unwrap_or_default();
            if format == Format::Concise {
                if let Some(o) = v.as_object_mut() {
                    o.remove("type");
                }
            }
            v
        }
    }
}

pub fn render(e: &Entity, r: &Render) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(e.id.as_str()));
    out.insert("type".into(), Value::from(r.ctx.from_stored(e.entity_type.as_str())));
    let wanted = |name: &str| r.attrs.is_none_or(|a| a.iter().any(|x| x == name));
    if let Some(loc) = e.location.as_ref().filter(|_| wanted("location")) {
        let geo = Attribute::GeoProperty { value: loc.clone(), observed_at: None };
        out.insert("location".into(), render_attribute(&geo, r.format, None));
    }
    for (name, a) in &e.attributes {
        if wanted(name.as_str()) {
            out.insert(r.ctx.from_stored(name.as_str()), render_attribute(a, r.format, r.lang));
        }
    }
    if r.sys_attrs && r.format != Format::KeyValues {
        if let Some(t) = e.created_at {
            out.insert("createdAt".into(), Value::from(instant(t)));
        }
        if let Some(t) = e.modified_at {
            out.insert("modifiedAt".into(), Value::from(instant(t)));
        }
    }
    Value::Object(out)
}

/// One attribute of a request body: a value to set, or a deletion.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Set(Attribute),
    Delete,
}

/// Attributes of a request body, by stored name; `location` included.
pub type Fragment = BTreeMap<String, Change>;

fn bad(msg: impl Into<String>) -> NgsiError {
    NgsiError::BadRequestData(msg.into())
}

fn observed_at(o: &Map<String, Value>, name: &str) -> Result<Option<DateTime<Utc>>> {
    match o.get("observedAt") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| bad(format!("{name}.observedAt `{s}` is not an ISO 8601 date-time"))),
        Some(_) => Err(bad(format!("{name}.observedAt must be a string"))),
    }
}

fn geometry(v: &Value, name: &str) -> Result<Geometry> {
    serde_json::from_value(v.clone()).map_err(|e| bad(format!("{name} is not a supported GeoJSON geometry: {e}")))
}

fn is_geojson(v: &Value) -> bool {
    v.get("coordinates").is_some()
        && v.get("type").and_then(Value::as_str).is_some_and(|t| {
            ["Point", "LineString", "Polygon", "MultiPolygon", "MultiPoint", "MultiLineString"].contains(&t)
        })
}

/// Parses one attribute value (normalized or concise).
pub fn parse_attribute(name: &str, v: &Value) -> Result<Change> {
    let o = match v {
        Value::Null => return Ok(Change::Delete),
        Value::String(s) if s == NULL_URN => return Ok(Change::Delete),
        Value::Object(o) => o,
        Value::Array(items) if items.iter().any(|i| i.get("datasetId").is_some()) => {
            return Err(NgsiError::OperationNotSupported(format!(
                "{name}: multi-attributes (datasetId) are not supported"
            )))
        }
        other => return Ok(Change::Set(Attribute::property(other.clone()))),
    };
    // A bare GeoJSON geometry is a concise GeoProperty.
    if is_geojson(v) {
        return Ok(Change::Set(Attribute::GeoProperty { value: geometry(v, name)?, observed_at: None }));
    }
    let kind = o.get("type").and_then(Value::as_str);
    let kind = match kind {
        Some(k) => k,
        None if o.contains_key("object") => "Relationship",
        None if o.contains_key("languageMap") => "LanguageProperty",
        None if o.contains_key("valueList") => "ListProperty",
        None if o.contains_key("value") && o.get("value").is_some_and(is_geojson) && name == "location" => {
            "GeoProperty"
        }
        None if o.contains_key("value") => "Property",
        None if o.contains_key("json") => "JsonProperty",
        // A JSON object without NGSI-LD keys is a concise Property's value.
        None => return Ok(Change::Set(Attribute::property(v.clone()))),
    };
    let at = observed_at(o, name)?;
    let attr = match kind {
        "Property" => {
            let value = o.get("value").ok_or_else(|| bad(format!("{name}: a Property needs a value")))?;
            if value.is_null() || value.as_str() == Some(NULL_URN) {
                return Ok(Change::Delete);
            }
            let unit_code = match o.get("unitCode") {
                None | Some(Value::Null) => None,
                Some(Value::String(u)) => Some(
                    UnitCode::parse(u).map_err(|_| bad(format!("{name}.unitCode `{u}` is not a UN/CEFACT code")))?,
                ),
                Some(_) => return Err(bad(format!("{name}.unitCode must be a string"))),
            };
            Attribute::Property { value: value.clone(), unit_code, observed_at: at }
        }
        "JsonProperty" => {
            let value = o.get("json").ok_or_else(|| bad(format!("{name}: a JsonProperty needs json")))?;
            Attribute::Property { value: value.clone(), unit_code: None, observed_at: at }
        }
        "Relationship" => {
            let object = o.get("object").ok_or_else(|| bad(format!("{name}: a Relationship needs an object")))?;
            let object = match object {
                Value::String(s) if s == NULL_URN => return Ok(Change::Delete),
                Value::String(s) => EntityId::parse(s)
                    .map_err(|_| bad(format!("{name}.object `{s}` is not an entity id (urn:ngsi-ld:Type:id)")))?,
                _ => {
                    return Err(NgsiError::OperationNotSupported(format!(
                        "{name}: a Relationship to several objects is not supported"
                    )))
                }
            };
            Attribute::Relationship { object, observed_at: at }
        }
        "GeoProperty" => {
            let value = o.get("value").ok_or_else(|| bad(format!("{name}: a GeoProperty needs a value")))?;
            Attribute::GeoProperty { value: geometry(value, name)?, observed_at: at }
        }
        "LanguageProperty" => {
            let map = o
                .get("languageMap")
                .and_then(Value::as_object)
                .ok_or_else(|| bad(format!("{name}: a LanguageProperty needs a languageMap object")))?;
            let mut language_map = BTreeMap::new();
            for (tag, text) in map {
                let tag_ok = tag == "@none"
                    || (!tag.is_empty()
                        && tag.len() <= 35
                        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
                if !tag_ok {
                    return Err(bad(format!("{name}.languageMap: `{tag}` is not a language tag")));
                }
                let text = text.as_str().ok_or_else(|| bad(format!("{name}.languageMap.{tag} must be a string")))?;
                language_map.insert(tag.clone(), text.to_owned());
            }
            if language_map.is_empty() {
                return Err(bad(format!("{name}: the languageMap is empty")));
            }
            Attribute::LanguageProperty { language_map, observed_at: at }
        }
        "ListProperty" => {
            let list = o
                .get("valueList")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("{name}: a ListProperty needs a valueList array")))?;
            Attribute::ListProperty { value_list: list.clone(), observed_at: at }
        }
        "ListRelationship" | "VocabProperty" => {
            return Err(NgsiError::OperationNotSupported(format!("{name}: {kind} is not supported")))
        }
        other => return Err(bad(format!("{name}: unknown attribute type `{other}`"))),
    };
    Ok(Change::Set(attr))
}

const ENTITY_KEYS: [&str; 5] = ["id", "type", "@context", "scope", "createdAt"];

/// The attributes of a body (entity or fragment), by stored name.
pub fn parse_fragment(body: &Value, ctx: &Context) -> Result<Fragment> {
    let o = body.as_object().ok_or_else(|| bad("the body must be a JSON object"))?;
    let mut out = Fragment::new();
    for (term, v) in o {
        if ENTITY_KEYS.contains(&term.as_str()) || term == "modifiedAt" {
            continue;
        }
        let name = ctx.to_stored(term);
        if name != "location" {
            AttributeName::parse(&name).map_err(|_| bad(format!("`{term}` is not a valid attribute name")))?;
        }
        let change = parse_attribute(&name, v)?;
        if name == "location" && !matches!(change, Change::Delete | Change::Set(Attribute::GeoProperty { .. })) {
            return Err(bad("location must be a GeoProperty"));
        }
        out.insert(name, change);
    }
    Ok(out)
}

/// The id and type of an entity body.
pub fn parse_head(body: &Value, ctx: &Context) -> Result<(EntityId, EntityType)> {
    let id = body
        .get("id")
        .or_else(|| body.get("@id"))
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the entity needs an id"))?;
    let id = EntityId::parse(id).map_err(|_| bad(format!("`{id}` is not an entity id (urn:ngsi-ld:Type:id)")))?;
    let ty = match body.get("type").or_else(|| body.get("@type")) {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) if ts.len() == 1 => ts[0].as_str().unwrap_or_default().to_owned(),
        Some(Value::Array(_)) => {
            return Err(NgsiError::OperationNotSupported("entities with several types are not supported".into()))
        }
        _ => return Err(bad("the entity needs a type")),
    };
    let stored = ctx.to_stored(&ty);
    let ty = EntityType::parse(&stored).map_err(|_| bad(format!("`{ty}` is not a valid entity type")))?;
    Ok((id, ty))
}

/// A whole entity body, for creation or replacement.
pub fn parse_entity(body: &Value, ctx: &Context, organisation: OrganisationId) -> Result<Entity> {
    let (id, ty) = parse_head(body, ctx)?;
    let mut e = Entity::new(id, ty, organisation);
    apply(&mut e, parse_fragment(body, ctx)?);
    Ok(e)
}

/// Applies a fragment to an entity (deletions included).
pub fn apply(e: &mut Entity, fragment: Fragment) {
    for (name, change) in fragment {
        if name == "location" {
            e.location = match change {
                Change::Set(Attribute::GeoProperty { value, .. }) => Some(value),
                _ => None,
            };
            continue;
        }
        let Ok(key) = AttributeName::parse(&name) else { continue };
        match change {
            Change::Set(a) => {
                e.attributes.insert(key, a);
            }
            Change::Delete => {
                e.attributes.remove(&key);
            }
        }
    }
}

/// The numeric Property values with an `observedAt` of a fragment: they
/// are also measurements, kept as history.
pub fn observations(id: &EntityId, fragment: &Fragment) -> Vec<Observation> {
    fragment
        .iter()
        .filter_map(|(name, change)| {
            let Change::Set(Attribute::Property { value, unit_code, observed_at: Some(at) }) = change else {
                return None;
            };
            let value = ObservedValue::number(value.as_f64()?).ok()?;
            Some(Observation {
                entity: id.clone(),
                attribute: AttributeName::parse(name).ok()?,
                observed_at: *at,
                value,
                unit_code: unit_code.clone(),
            })
        })
        .collect()
}

/// The JSON-LD `@context` of a response in `application/ld+json`.
pub fn context_value(ctx: &Context) -> Value {
    if ctx.urls.is_empty() {
        Value::from(crate::context::CORE_CONTEXT_URL)
    } else {
        let mut v: Vec<Value> = ctx.urls.iter().map(|u| Value::from(u.as_str())).collect();
        v.push(Value::from(crate::context::CORE_CONTEXT_URL));
        json!(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context::core()
    }

    fn body() -> Value {
        json!({
            "id": "urn:ngsi-ld:WasteContainer:c1",
            "type": "WasteContainer",
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [0.34, 46.58]}},
            "fillingLevel": {"type": "Property", "value": 0.75, "unitCode": "P1", "observedAt": "2026-03-01T10:00:00Z"},
            "status": "ok",
            "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:d1"},
            "address": {"addressLocality": "Poitiers"},
            "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
        })
    }

    #[test]
    fn normalized_round_trip() {
        let e = parse_entity(&body(), &ctx(), OrganisationId::parse("commune-a").unwrap()).unwrap();
        assert_eq!(e.location, Some(Geometry::Point([0.34, 46.58])));
        assert_eq!(e.attributes.len(), 4);
        let c = ctx();
        let out =
            render(&e, &Render { format: Format::Normalized, sys_attrs: false, attrs: None, ctx: &c, lang: None });
        assert_eq!(out["fillingLevel"], body()["fillingLevel"]);
        assert_eq!(out["status"], json!({"type": "Property", "value": "ok"}));
        assert_eq!(out["refDevice"], body()["refDevice"]);
        assert_eq!(out["location"], body()["location"]);
        assert_eq!(out["address"], json!({"type": "Property", "value": {"addressLocality": "Poitiers"}}));
        let kv = render(&e, &Render { format: Format::KeyValues, sys_attrs: true, attrs: None, ctx: &c, lang: None });
        assert_eq!(kv["fillingLevel"], 0.75);
        assert_eq!(kv["refDevice"], "urn:ngsi-ld:Device:d1");
        assert_eq!(kv["location"]["type"], "Point");
        let concise =
            render(&e, &Render { format: Format::Concise, sys_attrs: false, attrs: None, ctx: &c, lang: None });
        assert_eq!(concise["status"], "ok");
        assert_eq!(
            concise["fillingLevel"],
            json!({"value": 0.75, "unitCode": "P1", "observedAt": "2026-03-01T10:00:00Z"})
        );
        assert_eq!(concise["refDevice"], json!({"object": "urn:ngsi-ld:Device:d1"}));
        // Concise input parses back to the same entity.
        let mut again = concise.clone();
        again["id"] = body()["id"].clone();
        let e2 = parse_entity(&again, &c, OrganisationId::parse("commune-a").unwrap()).unwrap();
        assert_eq!(e2.attributes, e.attributes);
        assert_eq!(e2.location, e.location);
        let only = ["status".to_owned()];
        let some = render(
            &e,
            &Render { format: Format::Normalized, sys_attrs: false, attrs: Some(&only), ctx: &c, lang: None },
        );
        assert_eq!(some.as_object().unwrap().len(), 3);
    }

    #[test]
    fn observations_come_from_numeric_observed_properties() {
        let e = parse_entity(&body(), &ctx(), OrganisationId::parse("commune-a").unwrap()).unwrap();
        let f = parse_fragment(&body(), &ctx()).unwrap();
        let obs = observations(&e.id, &f);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].attribute.as_str(), "fillingLevel");
        assert_eq!(obs[0].unit_code.as_ref().unwrap().as_str(), "P1");
    }

    #[test]
    fn bad_bodies() {
        let c = ctx();
        let org = || OrganisationId::parse("commune-a").unwrap();
        for (b, name) in [
            (json!([]), "BadRequestData"),
            (json!({"type": "X"}), "BadRequestData"),
            (json!({"id": "nope", "type": "X"}), "BadRequestData"),
            (json!({"id": "urn:ngsi-ld:X:1"}), "BadRequestData"),
            (json!({"id": "urn:ngsi-ld:X:1", "type": "X", "a": {"type": "Property"}}), "BadRequestData"),
            (
                json!({"id": "urn:ngsi-ld:X:1", "type": "X", "a": {"type": "Relationship", "object": "x"}}),
                "BadRequestData",
            ),
            (
                json!({"id": "urn:ngsi-ld:X:1", "type": "X", "a": {"type": "Property", "value": 1, "observedAt": "hier"}}),
                "BadRequestData",
            ),
            (
                json!({"id": "urn:ngsi-ld:X:1", "type": "X", "a": {"type": "Property", "value": 1, "unitCode": "kilo"}}),
                "BadRequestData",
            ),
            (
                json!({"id": "urn:ngsi-ld:X:1", "type": "X", "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [500, 0]}}}),
                "BadRequestData",
            ),
            (json!({"id": "urn:ngsi-ld:X:1", "type": "X", "location": 3}), "BadRequestData"),
            (json!({"id": "urn:ngsi-ld:X:1", "type": "X", "a b": 3}), "BadRequestData"),
            (json!({"id": "urn:ngsi-ld:X:1", "type": "X", "a": {"type": "Banana", "value": 1}}), "BadRequestData"),
            (json!({"id": "urn:ngsi-ld:X:1", "type": ["X", "Y"]}), "OperationNotSupported"),
            (
                json!({"id": "urn:ngsi-ld:X:1", "type": "X", "a": [{"type": "Property", "value": 1, "datasetId": "urn:x"}]}),
                "OperationNotSupported",
            ),
        ] {
            assert_eq!(parse_entity(&b, &c, org()).unwrap_err().name(), name, "{b}");
        }
    }

    #[test]
    fn language_and_list_properties_round_trip() {
        let c = ctx();
        let org = || OrganisationId::parse("commune-a").unwrap();
        let body = json!({"id": "urn:ngsi-ld:Building:b1", "type": "Building",
            "label": {"type": "LanguageProperty", "languageMap": {"fr": "Mairie", "en": "Town hall"}},
            "floors": {"type": "ListProperty", "valueList": [0, 1, 2]},
            "concise": {"languageMap": {"@none": "sans langue"}}});
        let e = parse_entity(&body, &c, org()).unwrap();
        let out =
            render(&e, &Render { format: Format::Normalized, sys_attrs: false, attrs: None, ctx: &c, lang: None });
        assert_eq!(out["label"], body["label"]);
        assert_eq!(out["floors"], body["floors"]);
        assert_eq!(out["concise"], json!({"type": "LanguageProperty", "languageMap": {"@none": "sans langue"}}));
        let concise =
            render(&e, &Render { format: Format::Concise, sys_attrs: false, attrs: None, ctx: &c, lang: None });
        assert_eq!(concise["floors"], json!({"valueList": [0, 1, 2]}));
        let mut again = concise.clone();
        again["id"] = body["id"].clone();
        assert_eq!(parse_entity(&again, &c, org()).unwrap().attributes, e.attributes);
        let en = render(
            &e,
            &Render { format: Format::Normalized, sys_attrs: false, attrs: None, ctx: &c, lang: Some("en-GB") },
        );
        assert_eq!(en["label"], json!({"type": "Property", "value": "Town hall", "lang": "en"}));
        let de =
            render(&e, &Render { format: Format::KeyValues, sys_attrs: false, attrs: None, ctx: &c, lang: Some("de") });
        assert_eq!(de["concise"], "sans langue");
        let all =
            render(&e, &Render { format: Format::KeyValues, sys_attrs: false, attrs: None, ctx: &c, lang: Some("*") });
        assert_eq!(all["label"], json!({"languageMap": {"fr": "Mairie", "en": "Town hall"}}));
        assert_eq!(all["floors"], json!({"valueList": [0, 1, 2]}));
        for bad_attr in [
            json!({"type": "LanguageProperty", "languageMap": {"fr": 3}}),
            json!({"type": "LanguageProperty", "languageMap": {}}),
            json!({"type": "LanguageProperty", "languageMap": {"fr fr": "x"}}),
            json!({"type": "LanguageProperty"}),
            json!({"type": "ListProperty", "valueList": 3}),
        ] {
            assert_eq!(parse_attribute("a", &bad_attr).unwrap_err().name(), "BadRequestData", "{bad_attr}");
        }
    }

    #[test]
    fn merge_deletes_with_null() {
        let mut e = parse_entity(&body(), &ctx(), OrganisationId::parse("commune-a").unwrap()).unwrap();
        let f = parse_fragment(&json!({"status": "urn:ngsi-ld:null", "refDevice": null, "fillingLevel": 0.5}), &ctx())
            .unwrap();
        apply(&mut e, f);
        assert_eq!(e.attributes.len(), 2);
        assert_eq!(e.attributes[&AttributeName::parse("fillingLevel").unwrap()], Attribute::property(0.5));
    }
}
