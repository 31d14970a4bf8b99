//! NGSI-LD subscriptions (ETSI GS CIM 009 5.2.12, 5.8): the body a client
//! sends, checked once; its compiled form (selector, `watchedAttributes`,
//! `q`, `geoQ` in Socle's stored names) that says whether a change of an
//! entity concerns it; and the notification it sends (5.3.1).
//!
//! A subscription keeps the terms the client used and the `@context` it came
//! with, so it is shown back in the client's words and its notifications are
//! compacted with the client's context, whatever context a later reader uses.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use socle_domain::Entity;

use crate::context::Context;
use crate::error::{NgsiError, Result};
use crate::geoq::GeoQuery;
use crate::q::Query;
use crate::representation::{self, Format, Render};

/// Longest `description` kept.
const MAX_DESCRIPTION: usize = 2_000;
/// Most entity selectors, watched attributes or notified attributes in one subscription.
const MAX_ITEMS: usize = 100;
/// Longest endpoint URI.
const MAX_URI: usize = 2_000;

fn bad(msg: impl Into<String>) -> NgsiError {
    NgsiError::BadRequestData(msg.into())
}

/// The triggers of NGSI-LD 1.8 (`notificationTrigger`).
pub const TRIGGERS: [&str; 6] =
    ["entityCreated", "entityUpdated", "entityDeleted", "attributeCreated", "attributeUpdated", "attributeDeleted"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, rename = "idPattern", skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    #[serde(rename = "type")]
    pub entity_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub uri: String,
    pub accept: String,
    #[serde(default, rename = "receiverInfo", skip_serializing_if = "Vec::is_empty")]
    pub receiver_info: Vec<KeyValue>,
    #[serde(default, rename = "notifierInfo", skip_serializing_if = "Vec::is_empty")]
    pub notifier_info: Vec<KeyValue>,
}

/// Where an endpoint's notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Http(String),
    /// `mqtt://host[:port]/topic`: published with QoS 1.
    Mqtt {
        host: String,
        port: u16,
        topic: String,
    },
}

impl Endpoint {
    pub fn target(&self) -> Result<Target> {
        let uri = self.uri.as_str();
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let rest = uri.split_once("://").map_or("", |(_, r)| r);
            if rest.is_empty() || rest.starts_with('/') {
                return Err(bad(format!("endpoint uri `{uri}` has no host")));
            }
            return Ok(Target::Http(uri.to_owned()));
        }
        if let Some(rest) = uri.strip_prefix("mqtt://") {
            let (authority, topic) =
                rest.split_once('/').ok_or_else(|| bad(format!("endpoint uri `{uri}`: mqtt://host:port/topic")))?;
            if authority.contains('@') {
                return Err(bad("MQTT endpoints with credentials are not supported"));
            }
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad(format!("endpoint uri `{uri}`: bad port")))?),
                None => (authority, 1883),
            };
            if host.is_empty() || topic.is_empty() || topic.contains(['+', '#']) {
                return Err(bad(format!("endpoint uri `{uri}`: a host and a topic without wildcards are needed")));
            }
            return Ok(Target::Mqtt { host: host.to_owned(), port, topic: topic.to_owned() });
        }
        if uri.starts_with("mqtts://") {
            return Err(bad(
                "mqtts endpoints are not supported yet (no TLS towards brokers): use mqtt:// on a trusted network",
            ));
        }
        Err(bad(format!("endpoint uri `{uri}`: the schemes supported are http, https and mqtt")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationParams {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    pub format: String,
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoQSpec {
    pub geometry: String,
    pub coordinates: Value,
    pub georel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoproperty: Option<String>,
}

/// A subscription as the client defined it, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(default, rename = "subscriptionName", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntitySelector>,
    #[serde(default, rename = "watchedAttributes", skip_serializing_if = "Vec::is_empty")]
    pub watched_attributes: Vec<String>,
    #[serde(default, rename = "notificationTrigger", skip_serializing_if = "Vec::is_empty")]
    pub notification_trigger: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, rename = "geoQ", skip_serializing_if = "Option::is_none")]
    pub geo_q: Option<GeoQSpec>,
    /// Seconds between periodic notifications.
    #[serde(default, rename = "timeInterval", skip_serializing_if = "Option::is_none")]
    pub time_interval: Option<u64>,
    /// Least seconds between two notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<u64>,
    #[serde(default, rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(rename = "isActive")]
    pub is_active: bool,
    pub notification: NotificationParams,
    /// The `@context` the subscription came with (`null`: the core context).
    #[serde(default)]
    pub context: Value,
}

/// How a subscription stands (5.2.12 `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Paused,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Expired => "expired",
        }
    }
}

/// What Socle recorded of a subscription's deliveries (the status members of
/// `notification`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryStatus {
    pub times_sent: u64,
    pub times_failed: u64,
    pub last_notification: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The core context and inline user contexts: remote ones are not fetched.
fn no_remote(_: &str) -> Option<Value> {
    None
}

fn string(v: &Value, what: &str) -> Result<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| bad(format!("{what} must be a string")))
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>> {
    let items = v.as_array().ok_or_else(|| bad(format!("{what} must be an array of strings")))?;
    if items.is_empty() {
        return Err(bad(format!("{what} must not be empty")));
    }
    if items.len() > MAX_ITEMS {
        return Err(bad(format!("{what} holds at most {MAX_ITEMS} items")));
    }
    items
        .iter()
        .map(|i| {
            string(i, what)
                .and_then(|s| if s.is_empty() { Err(bad(format!("{what} holds an empty name"))) } else { Ok(s) })
        })
        .collect()
}

fn positive(v: &Value, what: &str) -> Result<u64> {
    match v.as_f64() {
        Some(n) if n > 0.0 && n.is_finite() && n <= 31_536_000.0 => Ok(n.ceil() as u64),
        _ => Err(bad(format!("{what} must be a positive number of seconds (at most a year)"))),
    }
}

fn is_uri(s: &str) -> bool {
    s.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !s.chars().any(char::is_whitespace)
    })
}

fn key_values(v: &Value, what: &str) -> Result<Vec<KeyValue>> {
    let items = v.as_array().ok_or_else(|| bad(format!("{what} must be an array of {{key, value}}")))?;
    items
        .iter()
        .map(|i| {
            let key = i.get("key").and_then(Value::as_str).filter(|k| !k.is_empty());
            let value = i.get("value").and_then(Value::as_str);
            match (key, value) {
                (Some(k), Some(v)) if http_token(k) && !v.contains(['\r', '\n']) => {
                    Ok(KeyValue { key: k.to_owned(), value: v.to_owned() })
                }
                _ => Err(bad(format!("{what}: each item is {{\"key\": <header name>, \"value\": <text>}}"))),
            }
        })
        .collect()
}

/// A name usable as an HTTP header (receiverInfo keys become headers).
fn http_token(s: &str) -> bool {
    s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Subscription {
    /// Reads a subscription body (5.8.1). `context` is the request's
    /// `@context` document (inline, or the `Link` URL; `null` for the core).
    /// `id` is used when the body names none.
    pub fn from_json(body: &Value, context: Value, new_id: &str, now: DateTime<Utc>) -> Result<Self> {
        Self::parse(body, context, new_id, now, true)
    }

    fn parse(body: &Value, context: Value, new_id: &str, now: DateTime<Utc>, check_expiry: bool) -> Result<Self> {
        let o = body.as_object().ok_or_else(|| bad("A subscription is a JSON object"))?;
        match o.get("type").and_then(Value::as_str) {
            Some("Subscription") => {}
            _ => return Err(bad("type must be \"Subscription\"")),
        }
        let id = match o.get("id") {
            None => new_id.to_owned(),
            Some(v) => {
                let id = string(v, "id")?;
                if !is_uri(&id) || id.len() > 256 {
                    return Err(bad(format!("id `{id}` is not a URI")));
                }
                id
            }
        };
        let mut known = vec![
            "id",
            "type",
            "@context",
            "description",
            "subscriptionName",
            "entities",
            "watchedAttributes",
            "notificationTrigger",
            "q",
            "geoQ",
            "timeInterval",
            "throttling",
            "expiresAt",
            "isActive",
            "notification",
            "status",
            "jsonldContext",
        ];
        known.sort_unstable();
        if let Some(k) = o.keys().find(|k| known.binary_search(&k.as_str()).is_err()) {
            return Err(bad(format!("`{k}` is not a member of a subscription (or not supported by Socle)")));
        }
        if o.contains_key("jsonldContext") {
            return Err(NgsiError::OperationNotSupported("jsonldContext is not supported".into()));
        }
        let description = match o.get("description") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let d = string(v, "description")?;
                if d.chars().count() > MAX_DESCRIPTION {
                    return Err(bad(format!("description holds at most {MAX_DESCRIPTION} characters")));
                }
                Some(d)
            }
        };
        let name = match o.get("subscriptionName") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let n = string(v, "subscriptionName")?;
                if n.chars().count() > 200 {
                    return Err(bad("subscriptionName holds at most 200 characters"));
                }
                Some(n)
            }
        };
        let entities = match o.get("entities") {
            None => Vec::new(),
            Some(v) => {
                let items = v.as_array().filter(|a| !a.is_empty() && a.len() <= MAX_ITEMS).ok_or_else(|| {
                    bad(format!("entities must be a non-empty array of at most {MAX_ITEMS} selectors"))
                })?;
                items.iter().map(parse_selector).collect::<Result<Vec<_>>>()?
            }
        };
        let watched_attributes = o.get("watchedAttributes").map(|v| strings(v, "watchedAttributes")).transpose()?;
        let notification_trigger = match o.get("notificationTrigger") {
            None => Vec::new(),
            Some(v) => {
                let t = strings(v, "notificationTrigger")?;
                if let Some(x) = t.iter().find(|t| !TRIGGERS.contains(&t.as_str())) {
                    return Err(bad(format!("notificationTrigger `{x}` is not one of {}", TRIGGERS.join(", "))));
                }
                t
            }
        };
        let q = o.get("q").map(|v| string(v, "q")).transpose()?;
        let geo_q = o.get("geoQ").map(parse_geoq).transpose()?;
        let time_interval = o.get("timeInterval").map(|v| positive(v, "timeInterval")).transpose()?;
        let throttling = o.get("throttling").map(|v| positive(v, "throttling")).transpose()?;
        let expires_at = match o.get("expiresAt") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let s = string(v, "expiresAt")?;
                let t = DateTime::parse_from_rfc3339(&s)
                    .map_err(|_| bad(format!("expiresAt `{s}` is not a date-time")))?
                    .with_timezone(&Utc);
                Some(t)
            }
        };
        let is_active = match o.get("isActive") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| bad("isActive must be true or false"))?,
        };
        let notification = parse_notification(o.get("notification").ok_or_else(|| bad("notification is required"))?)?;
        if entities.is_empty() && watched_attributes.is_none() {
            return Err(bad("A subscription names entities, watchedAttributes, or both"));
        }
        if time_interval.is_some() && watched_attributes.is_some() {
            return Err(bad("timeInterval (periodic) and watchedAttributes cannot go together"));
        }
        if time_interval.is_some() && throttling.is_some() {
            return Err(bad("timeInterval (periodic) and throttling cannot go together"));
        }
        if let Some(t) = expires_at {
            if check_expiry && t <= now {
                return Err(bad("expiresAt is in the past"));
            }
        }
        let s = Self {
            id,
            name,
            description,
            entities,
            watched_attributes: watched_attributes.unwrap_or_default(),
            notification_trigger,
            q,
            geo_q,
            time_interval,
            throttling,
            expires_at,
            is_active,
            notification,
            context,
        };
        // Every expression and name must compile now, not fail at the first change.
        s.compile()?;
        Ok(s)
    }

    /// Applies a PATCH fragment (5.8.2): given members replace the stored
    /// ones (`null` removes an optional one); `notification` and its
    /// `endpoint` are merged member by member. The result is checked again.
    pub fn patched(&self, fragment: &Value, now: DateTime<Utc>) -> Result<Self> {
        let f = fragment.as_object().ok_or_else(|| bad("A subscription fragment is a JSON object"))?;
        if f.is_empty() {
            return Err(bad("The fragment is empty"));
        }
        if let Some(id) = f.get("id").and_then(Value::as_str) {
            if id != self.id {
                return Err(bad("The id of a subscription cannot change"));
            }
        }
        let mut current = self.to_stored_json();
        let cur = current.as_object_mut().expect("a subscription serialises to an object");
        cur.remove("context");
        for (k, v) in f {
            match (k.as_str(), v) {
                ("@context", _) => {}
                ("notification", Value::Object(n)) => {
                    let target = cur.entry("notification").or_insert_with(|| json!({}));
                    for (nk, nv) in n {
                        if nk == "endpoint" {
                            if let (Value::Object(e), Some(Value::Object(old))) = (nv, target.get_mut("endpoint")) {
                                for (ek, ev) in e {
                                    if ev.is_null() {
                                        old.remove(ek);
                                    } else {
                                        old.insert(ek.clone(), ev.clone());
                                    }
                                }
                                continue;
                            }
                        }
                        if nv.is_null() {
                            if let Some(t) = target.as_object_mut() {
                                t.remove(nk);
                            }
                        } else {
                            target[nk.as_str()] = nv.clone();
                        }
                    }
                }
                (_, Value::Null) => {
                    cur.remove(k);
                }
                _ => {
                    cur.insert(k.clone(), v.clone());
                }
            }
        }
        cur.insert("type".into(), Value::from("Subscription"));
        // A stored date may have passed since; only a new one must be in the future.
        let check_expiry = f.get("expiresAt").is_some_and(|v| !v.is_null());
        let mut s = Self::parse(&current, self.context.clone(), &self.id, now, check_expiry)?;
        if let Some(ctx) = f.get("@context") {
            s.context = ctx.clone();
            s.compile()?;
        }
        Ok(s)
    }

    fn to_stored_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), Value::from("Subscription"));
            if let Some(t) = self.expires_at {
                o.insert("expiresAt".into(), Value::from(instant(t)));
            }
        }
        v
    }

    pub fn state(&self, now: DateTime<Utc>) -> State {
        if self.expires_at.is_some_and(|t| t <= now) {
            State::Expired
        } else if !self.is_active {
            State::Paused
        } else {
            State::Active
        }
    }

    /// The subscription as GET answers it (5.2.12), with its status members.
    pub fn to_json(&self, status: &DeliveryStatus, now: DateTime<Utc>) -> Value {
        let mut v = self.to_stored_json();
        let o = v.as_object_mut().expect("a subscription serialises to an object");
        o.remove("context");
        o.insert("status".into(), Value::from(self.state(now).as_str()));
        if let Some(n) = o.get_mut("notification").and_then(Value::as_object_mut) {
            n.insert("timesSent".into(), Value::from(status.times_sent));
            n.insert("timesFailed".into(), Value::from(status.times_failed));
            let ok = match (status.last_success, status.last_failure) {
                (_, None) => true,
                (Some(s), Some(f)) => s > f,
                (None, Some(_)) => false,
            };
            n.insert("status".into(), Value::from(if ok { "ok" } else { "failed" }));
            for (k, t) in [
                ("lastNotification", status.last_notification),
                ("lastSuccess", status.last_success),
                ("lastFailure", status.last_failure),
            ] {
                if let Some(t) = t {
                    n.insert(k.into(), Value::from(instant(t)));
                }
            }
        }
        v
    }

    /// The context of the subscription's terms.
    pub fn context(&self) -> Result<Context> {
        match &self.context {
            Value::Null => Ok(Context::core()),
            doc => Context::with_user(doc, &no_remote),
        }
    }

    /// The subscription ready to judge changes, in stored names.
    pub fn compile(&self) -> Result<Compiled> {
        let ctx = self.context()?;
        let selectors = self
            .entities
            .iter()
            .map(|s| {
                let id_pattern = s
                    .id_pattern
                    .as_deref()
                    .map(|re| {
                        regex::RegexBuilder::new(re)
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| bad(format!("Invalid idPattern: {e}")))
                    })
                    .transpose()?;
                Ok(CompiledSelector { id: s.id.clone(), id_pattern, entity_type: ctx.to_stored(&s.entity_type) })
            })
            .collect::<Result<Vec<_>>>()?;
        let q = self
            .q
            .as_deref()
            .map(|q| {
                let mut q = Query::parse(q)?;
                q.rename(&|a| ctx.to_stored(a));
                Ok::<_, NgsiError>(q)
            })
            .transpose()?;
        let geo = self
            .geo_q
            .as_ref()
            .map(|g| {
                let gp = g.geoproperty.as_deref().map(|p| ctx.to_stored(p));
                GeoQuery::from_json(&g.georel, &g.geometry, g.coordinates.clone(), gp.as_deref())
            })
            .transpose()?;
        let format = match self.notification.format.as_str() {
            "keyValues" | "simplified" => Format::KeyValues,
            "concise" => Format::Concise,
            _ => Format::Normalized,
        };
        let stored = |names: &[String]| names.iter().map(|a| ctx.to_stored(a)).collect::<Vec<_>>();
        Ok(Compiled {
            watched: stored(&self.watched_attributes),
            attributes: stored(&self.notification.attributes),
            triggers: self.notification_trigger.clone(),
            selectors,
            q,
            geo,
            format,
            ctx,
        })
    }
}

fn parse_selector(v: &Value) -> Result<EntitySelector> {
    let o = v.as_object().ok_or_else(|| bad("each item of entities is an object"))?;
    let id = o.get("id").map(|v| string(v, "entities[].id")).transpose()?;
    if let Some(id) = &id {
        if !is_uri(id) {
            return Err(bad(format!("entities[].id `{id}` is not a URI")));
        }
    }
    let id_pattern = o.get("idPattern").map(|v| string(v, "entities[].idPattern")).transpose()?;
    if id_pattern.as_ref().is_some_and(|p| p.len() > 1_000) {
        return Err(bad("idPattern is too long"));
    }
    let entity_type = o
        .get("type")
        .map(|v| string(v, "entities[].type"))
        .transpose()?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("each item of entities names a type"))?;
    Ok(EntitySelector { id, id_pattern, entity_type })
}

fn parse_geoq(v: &Value) -> Result<GeoQSpec> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(geometry), Some(georel), Some(coordinates)) = (s("geometry"), s("georel"), v.get("coordinates")) else {
        return Err(bad("geoQ needs geometry, coordinates and georel"));
    };
    // Coordinates may come as a JSON array or as its text.
    let coordinates = match coordinates {
        Value::String(t) => serde_json::from_str(t).map_err(|_| bad("geoQ coordinates are not JSON"))?,
        other => other.clone(),
    };
    Ok(GeoQSpec { geometry, coordinates, georel, geoproperty: s("geoproperty") })
}

fn parse_notification(v: &Value) -> Result<NotificationParams> {
    let o = v.as_object().ok_or_else(|| bad("notification is an object"))?;
    let attributes = o.get("attributes").map(|a| strings(a, "notification.attributes")).transpose()?;
    let format = match o.get("format") {
        None => "normalized".to_owned(),
        Some(f) => {
            let f = string(f, "notification.format")?;
            if !["normalized", "keyValues", "simplified", "concise"].contains(&f.as_str()) {
                return Err(bad(format!("notification.format `{f}`: normalized, keyValues or concise")));
            }
            f
        }
    };
    let e = o
        .get("endpoint")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("notification.endpoint is required (an object with uri)"))?;
    let uri = e
        .get("uri")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.len() <= MAX_URI)
        .ok_or_else(|| bad("notification.endpoint.uri is required"))?
        .to_owned();
    let accept = match e.get("accept") {
        None => "application/json".to_owned(),
        Some(a) => {
            let a = string(a, "notification.endpoint.accept")?;
            if a != "application/json" && a != "application/ld+json" {
                return Err(bad(format!("accept `{a}`: application/json or application/ld+json")));
            }
            a
        }
    };
    let receiver_info = e.get("receiverInfo").map(|v| key_values(v, "receiverInfo")).transpose()?.unwrap_or_default();
    let notifier_info = e.get("notifierInfo").map(|v| key_values(v, "notifierInfo")).transpose()?.unwrap_or_default();
    let endpoint = Endpoint { uri, accept, receiver_info, notifier_info };
    endpoint.target()?;
    Ok(NotificationParams { attributes: attributes.unwrap_or_default(), format, endpoint })
}

struct CompiledSelector {
    id: Option<String>,
    id_pattern: Option<regex::Regex>,
    /// Stored type name.
    entity_type: String,
}

/// A subscription in stored names, ready to judge changes.
pub struct Compiled {
    pub ctx: Context,
    selectors: Vec<CompiledSelector>,
    watched: Vec<String>,
    attributes: Vec<String>,
    triggers: Vec<String>,
    q: Option<Query>,
    geo: Option<GeoQuery>,
    format: Format,
}

impl Compiled {
    /// Whether the entity is one the subscription is about (entities, q, geoQ).
    pub fn selects(&self, e: &Entity) -> bool {
        let by_selector = self.selectors.is_empty()
            || self.selectors.iter().any(|s| {
                s.entity_type == e.entity_type.as_str()
                    && s.id.as_deref().is_none_or(|id| id == e.id.as_str())
                    && s.id_pattern.as_ref().is_none_or(|re| re.is_match(e.id.as_str()))
            });
        by_selector && self.q.as_ref().is_none_or(|q| q.matches(e)) && self.geo.as_ref().is_none_or(|g| g.matches(e))
    }

    /// Whether a change of these attributes (stored names) of an existing
    /// entity triggers a notification: one of them is watched (any, without
    /// `watchedAttributes`), and an update is among the triggers.
    pub fn watches(&self, changed: &[&str]) -> bool {
        let update_triggers = self.triggers.is_empty()
            || self
                .triggers
                .iter()
                .any(|t| matches!(t.as_str(), "entityUpdated" | "attributeUpdated" | "attributeCreated"));
        update_triggers && (self.watched.is_empty() || changed.iter().any(|c| self.watched.iter().any(|w| w == c)))
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The entity as the notification carries it: the asked attributes (all
    /// without `notification.attributes`), in the subscription's format and terms.
    pub fn render(&self, e: &Entity) -> Value {
        let attrs = (!self.attributes.is_empty()).then_some(self.attributes.as_slice());
        representation::render(e, &Render { format: self.format, sys_attrs: false, attrs, ctx: &self.ctx, lang: None })
    }
}

/// The body of a notification (5.3.1); with `application/ld+json` the
/// context goes inside, else in a `Link` header.
pub fn notification_body(id: &str, subscription: &str, notified_at: DateTime<Utc>, data: Vec<Value>) -> Value {
    json!({
        "id": id,
        "type": "Notification",
        "subscriptionId": subscription,
        "notifiedAt": instant(notified_at),
        "data": data,
    })
}

/// Adds the subscription's `@context` to a stored notification body (for `application/ld+json`).
pub fn with_context(mut body: Value, ctx: &Context) -> Value {
    if let Some(o) = body.as_object_mut() {
        let mut out = Map::new();
        out.insert("@context".into(), representation::context_value(ctx));
        out.extend(std::mem::take(o));
        *o = out;
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use socle_domain::{Attribute, AttributeName, EntityId, EntityType, OrganisationId};

    fn now() -> DateTime<Utc> {
        "2026-05-01T10:00:00Z".parse().unwrap()
    }

    fn sub(body: Value) -> Result<Subscription> {
        Subscription::from_json(&body, Value::Null, "urn:ngsi-ld:Subscription:new", now())
    }

    fn base() -> Value {
        json!({
            "type": "Subscription",
            "entities": [{"type": "WasteContainer"}],
            "watchedAttributes": ["fillingLevel"],
            "q": "fillingLevel>0.8",
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n", "accept": "application/json"}},
        })
    }

    fn container(fill: f64) -> Entity {
        let ty = EntityType::parse("WasteContainer").unwrap();
        let mut e = Entity::new(
            EntityId::parse("urn:ngsi-ld:WasteContainer:c1").unwrap(),
            ty,
            OrganisationId::parse("commune-a").unwrap(),
        );
        e.attributes.insert(
            AttributeName::parse("fillingLevel").unwrap(),
            Attribute::Property { value: json!(fill), unit_code: None, observed_at: None },
        );
        e
    }

    #[test]
    fn a_valid_subscription_compiles_and_matches() {
        let s = sub(base()).unwrap();
        assert_eq!(s.id, "urn:ngsi-ld:Subscription:new");
        assert_eq!(s.notification.format, "normalized");
        let c = s.compile().unwrap();
        assert!(c.selects(&container(0.9)));
        assert!(!c.selects(&container(0.5)), "q filters");
        assert!(c.watches(&["fillingLevel"]));
        assert!(!c.watches(&["temperature"]), "watchedAttributes filters");
        let v = c.render(&container(0.9));
        assert_eq!(v["fillingLevel"]["value"], json!(0.9));
    }

    #[test]
    fn invalid_subscriptions_are_bad_request_data() {
        let cases: Vec<(&str, Value)> = vec![
            ("type", json!({"type": "Abonnement"})),
            ("no selector", json!({"entities": null})),
            ("q", json!({"q": "(("})),
            ("uri", json!({"notification": {"endpoint": {"uri": "ftp://x/y"}}})),
            ("mqtt topic", json!({"notification": {"endpoint": {"uri": "mqtt://broker:1883/"}}})),
            ("accept", json!({"notification": {"endpoint": {"uri": "http://x/y", "accept": "text/html"}}})),
            ("format", json!({"notification": {"format": "pretty", "endpoint": {"uri": "http://x/y"}}})),
            ("periodic watched", json!({"timeInterval": 60})),
            ("throttling", json!({"throttling": -1})),
            ("expiresAt", json!({"expiresAt": "2020-01-01T00:00:00Z"})),
            ("idPattern", json!({"entities": [{"type": "T", "idPattern": "("}]})),
            ("entity id", json!({"entities": [{"type": "T", "id": "not a uri"}]})),
            ("unknown member", json!({"colour": "blue"})),
            (
                "receiverInfo",
                json!({"notification": {"endpoint": {"uri": "http://x/y", "receiverInfo": [{"key": "a b", "value": "c"}]}}}),
            ),
            ("geoQ", json!({"geoQ": {"georel": "near;maxDistance==10", "geometry": "Point"}})),
        ];
        for (what, change) in cases {
            let mut body = base();
            for (k, v) in change.as_object().unwrap() {
                if v.is_null() {
                    body.as_object_mut().unwrap().remove(k);
                    body.as_object_mut().unwrap().remove("watchedAttributes");
                } else {
                    body[k] = v.clone();
                }
            }
            let e = sub(body).unwrap_err();
            assert_eq!(e.name(), "BadRequestData", "{what}: {e}");
        }
    }

    proptest::proptest! {
        // Any member may hold anything: a bad body is an error, never a panic.
        #[test]
        fn never_panics(
            member in proptest::sample::select(vec![
                "id", "entities", "watchedAttributes", "notificationTrigger", "q", "geoQ", "timeInterval",
                "throttling", "expiresAt", "isActive", "notification", "description", "subscriptionName",
            ]),
            text in ".{0,60}",
            number in proptest::num::f64::ANY,
        ) {
            for value in [json!(text), json!(number), json!([text]), json!({"uri": text, "type": text}), Value::Null] {
                let mut b = base();
                b[member] = value;
                if let Ok(s) = sub(b) {
                    let p = s.patched(&json!({member: s.to_json(&DeliveryStatus::default(), now())[member].clone()}), now());
                    let _ = p.map(|p| p.compile().map(|c| c.selects(&container(0.9))));
                }
            }
        }
    }

    #[test]
    fn triggers_other_than_updates_ignore_measurements() {
        let mut b = base();
        b["notificationTrigger"] = json!(["entityDeleted", "entityCreated"]);
        assert!(!sub(b.clone()).unwrap().compile().unwrap().watches(&["fillingLevel"]));
        b["notificationTrigger"] = json!(["attributeUpdated"]);
        assert!(sub(b.clone()).unwrap().compile().unwrap().watches(&["fillingLevel"]));
        b["notificationTrigger"] = json!(["attributeRenamed"]);
        assert!(sub(b).is_err());
    }

    #[test]
    fn patch_merges_the_endpoint_and_keeps_the_rest() {
        let s = sub(base()).unwrap();
        let p = s
            .patched(
                &json!({"isActive": false, "notification": {"endpoint": {"uri": "mqtt://127.0.0.1:1883/socle"}}}),
                now(),
            )
            .unwrap();
        assert!(!p.is_active);
        assert_eq!(p.state(now()), State::Paused);
        assert_eq!(p.notification.endpoint.uri, "mqtt://127.0.0.1:1883/socle");
        assert_eq!(p.notification.endpoint.accept, "application/json");
        assert_eq!(p.q, s.q);
        assert!(s.patched(&json!({"q": "(("}), now()).is_err());
        assert!(s.patched(&json!({"id": "urn:x:other"}), now()).is_err());
        let cleared = s.patched(&json!({"q": null}), now()).unwrap();
        assert_eq!(cleared.q, None);
    }

    #[test]
    fn status_members_are_shown() {
        let s = sub(base()).unwrap();
        let st = DeliveryStatus {
            times_sent: 3,
            times_failed: 1,
            last_notification: Some(now()),
            last_success: Some(now()),
            last_failure: Some(now() - chrono::TimeDelta::seconds(5)),
        };
        let v = s.to_json(&st, now());
        assert_eq!(v["status"], "active");
        assert_eq!(v["notification"]["status"], "ok");
        assert_eq!(v["notification"]["timesSent"], 3);
        assert_eq!(v["notification"]["timesFailed"], 1);
        assert!(v.get("context").is_none());
        let later = now() + chrono::TimeDelta::days(400);
        let mut b = base();
        b["expiresAt"] = json!("2026-06-01T00:00:00Z");
        assert_eq!(sub(b).unwrap().to_json(&st, later)["status"], "expired");
    }

    #[test]
    fn endpoints_are_parsed() {
        let e = |uri: &str| Endpoint {
            uri: uri.into(),
            accept: "application/json".into(),
            receiver_info: vec![],
            notifier_info: vec![],
        };
        assert_eq!(
            e("mqtt://localhost/socle/notifications").target().unwrap(),
            Target::Mqtt { host: "localhost".into(), port: 1883, topic: "socle/notifications".into() }
        );
        assert_eq!(e("https://example.org/x").target().unwrap(), Target::Http("https://example.org/x".into()));
        assert!(e("mqtt://localhost:99999/t").target().is_err());
        assert!(e("mqtt://u:p@localhost/t").target().is_err());
        assert!(e("http:///x").target().is_err());
    }
}
