//! JSON-LD `@context` as NGSI-LD uses it: a map from short terms to IRIs.
//!
//! Socle stores attribute names and entity types as short terms of its own
//! vocabulary. A term a client sends is expanded to an IRI with the client's
//! context, then compacted to Socle's stored term; a stored term goes out
//! the other way. Only term definitions are handled (strings, `@id`
//! objects, compact IRIs `prefix:suffix`): that is what NGSI-LD contexts
//! carry; scoped contexts and `@vocab` rewriting of values are not needed
//! to name attributes and types.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::error::{NgsiError, Result};

/// The core context of NGSI-LD 1.9, bundled: it is never fetched.
pub const CORE_CONTEXT: &str = include_str!("ngsi-ld-core-context-v1.9.jsonld");
/// Where the standard publishes it; requests naming this URL get the bundled copy.
pub const CORE_CONTEXT_URL: &str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld";
/// Terms no context defines expand under this IRI (the standard's default vocabulary).
pub const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";
/// Largest context accepted from a client, in terms.
pub const MAX_TERMS: usize = 10_000;

/// Whether `url` names the core context, in any of its published versions.
pub fn is_core_url(url: &str) -> bool {
    url.starts_with("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context")
        || url.starts_with("https://uri.etsi.org/ngsi-ld/ngsi-ld-core-context")
}

/// Term ↔ IRI maps of one effective context (core, then user terms).
#[derive(Debug, Clone)]
pub struct Context {
    terms: HashMap<String, String>,
    iris: HashMap<String, String>,
    /// The URLs the context was given by, for the Link header of responses.
    pub urls: Vec<String>,
}

fn core() -> &'static Context {
    static CORE: OnceLock<Context> = OnceLock::new();
    CORE.get_or_init(|| {
        let json: Value = serde_json::from_str(CORE_CONTEXT).expect("the bundled core context is JSON");
        let mut c = Context { terms: HashMap::new(), iris: HashMap::new(), urls: Vec::new() };
        c.add_definitions(&json["@context"]).expect("the bundled core context is valid");
        c
    })
}

impl Context {
    /// The core context alone.
    pub fn core() -> Self {
        core().clone()
    }

    /// The core context extended by a user context document (a JSON-LD
    /// document with `@context`, or the `@context` value itself: an object,
    /// or an array of objects and core URLs). Remote URLs inside must have
    /// been resolved by the caller: this crate does no I/O.
    pub fn with_user(doc: &Value, resolve: &dyn Fn(&str) -> Option<Value>) -> Result<Self> {
        let mut c = Self::core();
        let inner = doc.get("@context").unwrap_or(doc);
        c.add_value(inner, resolve, 0)?;
        Ok(c)
    }

    fn add_value(&mut self, v: &Value, resolve: &dyn Fn(&str) -> Option<Value>, depth: u8) -> Result<()> {
        if depth > 4 {
            return Err(NgsiError::BadRequestData("@context nests remote contexts too deeply".into()));
        }
        match v {
            Value::String(url) if is_core_url(url) => Ok(()),
            Value::String(url) => {
                let doc = resolve(url)
                    .ok_or_else(|| NgsiError::LdContextNotAvailable(format!("The @context {url} is not available")))?;
                self.urls.push(url.clone());
                let inner = doc.get("@context").cloned().unwrap_or(doc);
                self.add_value(&inner, resolve, depth + 1)
            }
            Value::Array(items) => items.iter().try_for_each(|i| self.add_value(i, resolve, depth + 1)),
            Value::Object(_) => self.add_definitions(v),
            Value::Null => Ok(()),
            _ => Err(NgsiError::BadRequestData("@context must be a URL, an object or an array".into())),
        }
    }

    fn add_definitions(&mut self, defs: &Value) -> Result<()> {
        let Some(map) = defs.as_object() else {
            return Err(NgsiError::BadRequestData("@context must be an object of term definitions".into()));
        };
        if self.terms.len() + map.len() > MAX_TERMS {
            return Err(NgsiError::BadRequestData(format!("@context defines more than {MAX_TERMS} terms")));
        }
        // Prefixes first, so that compact IRIs in the same object resolve.
        let mut raw: Vec<(&String, String)> = Vec::new();
        for (term, def) in map {
            if term.starts_with('@') {
                continue;
            }
            let iri = match def {
                Value::String(s) => s.clone(),
                Value::Object(o) => match o.get("@id") {
                    Some(Value::String(s)) => s.clone(),
                    _ => continue,
                },
                _ => continue,
            };
            raw.push((term, iri));
        }
        for (term, iri) in &raw {
            if !iri.contains(':') || iri.starts_with("http") {
                self.terms.insert((*term).clone(), iri.clone());
            }
        }
        for (term, iri) in raw {
            let full = self.expand_iri(&iri);
            if full.starts_with('@') {
                continue;
            }
            self.iris.insert(full.clone(), term.clone());
            self.terms.insert(term.clone(), full);
        }
        Ok(())
    }

    fn expand_iri(&self, s: &str) -> String {
        if let Some((prefix, suffix)) = s.split_once(':') {
            if !suffix.starts_with("//") {
                if let Some(base) = self.terms.get(prefix) {
                    return format!("{base}{suffix}");
                }
            }
        }
        s.to_owned()
    }

    /// The IRI a term stands for.
    pub fn expand(&self, term: &str) -> String {
        if let Some(iri) = self.terms.get(term) {
            return iri.clone();
        }
        if term.contains(':') {
            return self.expand_iri(term);
        }
        format!("{DEFAULT_VOCAB}{term}")
    }

    /// The shortest name of an IRI in this context.
    pub fn compact(&self, iri: &str) -> String {
        if let Some(term) = self.iris.get(iri) {
            return term.clone();
        }
        if let Some(term) = iri.strip_prefix(DEFAULT_VOCAB) {
            if !self.terms.contains_key(term) {
                return term.to_owned();
            }
        }
        iri.to_owned()
    }

    /// The term Socle stores for a term of this context: the core/default
    /// name of its IRI, or, for an IRI of another vocabulary (a Smart Data
    /// Model's), its last segment, which is how those models name it.
    pub fn to_stored(&self, term: &str) -> String {
        let iri = self.expand(term);
        let short = core().compact(&iri);
        if !short.contains(':') {
            return short;
        }
        iri.rsplit(['/', '#']).next().filter(|s| !s.is_empty()).unwrap_or(&iri).to_owned()
    }

    /// The term this context uses for a stored term.
    pub fn from_stored(&self, stored: &str) -> String {
        if self.terms.contains_key(stored) {
            return stored.to_owned();
        }
        let iri = core().expand(stored);
        if let Some(term) = self.iris.get(&iri) {
            return term.clone();
        }
        // A user context naming the stored term under another vocabulary
        // maps it back by its last segment.
        self.iris
            .iter()
            .filter(|(i, _)| i.rsplit(['/', '#']).next() == Some(stored))
            .map(|(_, t)| t.clone())
            .min()
            .unwrap_or_else(|| stored.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_terms_expand_and_compact() {
        let c = Context::core();
        assert_eq!(c.expand("location"), "https://uri.etsi.org/ngsi-ld/location");
        assert_eq!(c.expand("observedAt"), "https://uri.etsi.org/ngsi-ld/observedAt");
        assert_eq!(c.expand("Point"), "https://purl.org/geojson/vocab#Point");
        assert_eq!(c.expand("fillingLevel"), "https://uri.etsi.org/ngsi-ld/default-context/fillingLevel");
        assert_eq!(c.compact("https://uri.etsi.org/ngsi-ld/default-context/fillingLevel"), "fillingLevel");
        assert_eq!(c.compact("https://uri.etsi.org/ngsi-ld/location"), "location");
        assert_eq!(c.compact("http://example.org/x"), "http://example.org/x");
    }

    #[test]
    fn user_contexts_rename_terms() {
        let doc = json!({"@context": [{
            "sdm": "https://smartdatamodels.org/dataModel.Waste/",
            "fillingLevel": "sdm:fillingLevel",
            "WasteContainer": {"@id": "https://smartdatamodels.org/dataModel.Waste/WasteContainer"},
            "niveau": "https://uri.etsi.org/ngsi-ld/default-context/fillingLevel"
        }, CORE_CONTEXT_URL]});
        let c = Context::with_user(&doc, &|_| None).unwrap();
        assert_eq!(c.expand("fillingLevel"), "https://smartdatamodels.org/dataModel.Waste/fillingLevel");
        assert_eq!(c.to_stored("fillingLevel"), "fillingLevel");
        assert_eq!(c.to_stored("niveau"), "fillingLevel");
        assert_eq!(c.to_stored("WasteContainer"), "WasteContainer");
        assert_eq!(c.to_stored("https://uri.etsi.org/ngsi-ld/default-context/temperature"), "temperature");
        assert_eq!(c.from_stored("fillingLevel"), "fillingLevel");
        assert_eq!(c.from_stored("location"), "location");
    }

    #[test]
    fn remote_contexts_need_resolving() {
        let doc = json!({"@context": "https://example.org/ctx.jsonld"});
        let err = Context::with_user(&doc, &|_| None).unwrap_err();
        assert_eq!(err.name(), "LdContextNotAvailable");
        let c = Context::with_user(&doc, &|_| {
            Some(json!({"@context": {"niveau": "https://uri.etsi.org/ngsi-ld/default-context/fillingLevel"}}))
        })
        .unwrap();
        assert_eq!(c.to_stored("niveau"), "fillingLevel");
        assert_eq!(c.urls, vec!["https://example.org/ctx.jsonld".to_owned()]);
        // A context that includes itself stops instead of looping.
        let looped = Context::with_user(&doc, &|u| Some(json!({"@context": u})));
        assert!(looped.is_err());
    }
}
