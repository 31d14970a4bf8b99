//! The NGSI-LD query language (`q`, ETSI GS CIM 009 4.9): terms joined by
//! `;` (and) and `|` (or, binding looser), with parentheses; comparisons
//! `== != > >= < <=`, value lists `a,b`, ranges `a..b`, patterns `~=` and
//! `!~=`; attribute paths with dotted sub-attributes (`a.observedAt`) and
//! bracketed keys into JSON values (`address[city]`). A bare attribute
//! tests existence.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;
use serde_json::Value;
use socle_domain::{Attribute, AttributeCondition, AttributeName, Comparison, Entity, Scalar, ValueTest};

use crate::error::{NgsiError, Result};

/// Longest `q` accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone)]
pub enum Query {
    And(Vec<Query>),
    Or(Vec<Query>),
    Term(Term),
}

#[derive(Debug, Clone)]
pub struct Term {
    pub path: AttrPath,
    pub test: Option<(Op, Operand)>,
}

/// `attr.sub[key][key]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub attr: String,
    pub sub: Vec<String>,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone)]
pub enum Operand {
    One(QValue),
    List(Vec<QValue>),
    Range(QValue, QValue),
    Pattern(Regex),
}

#[derive(Debug, Clone, PartialEq)]
pub enum QValue {
    Number(f64),
    Text(String),
    Bool(bool),
    Instant(DateTime<Utc>),
    /// An unquoted token that is no number, boolean or date: a URI or a bare word.
    Word(String),
}

fn bad(msg: impl Into<String>) -> NgsiError {
    NgsiError::BadRequestData(format!("Invalid q: {}", msg.into()))
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

impl Query {
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() > MAX_LEN {
            return Err(bad(format!("longer than {MAX_LEN} bytes")));
        }
        if s.trim().is_empty() {
            return Err(bad("empty"));
        }
        let mut p = Parser { s, pos: 0, depth: 0 };
        let q = p.or()?;
        if p.pos != s.len() {
            return Err(bad(format!("unexpected `{}` at {}", &s[p.pos..], p.pos)));
        }
        Ok(q)
    }

    /// Renames every attribute (from a client's terms to stored ones).
    pub fn rename(&mut self, f: &dyn Fn(&str) -> String) {
        match self {
            Self::And(v) | Self::Or(v) => v.iter_mut().for_each(|q| q.rename(f)),
            Self::Term(t) => t.path.attr = f(&t.path.attr),
        }
    }

    /// The attributes the query names.
    pub fn attributes(&self) -> Vec<&str> {
        match self {
            Self::And(v) | Self::Or(v) => v.iter().flat_map(|q| q.attributes()).collect(),
            Self::Term(t) => vec![t.path.attr.as_str()],
        }
    }

    pub fn matches(&self, e: &Entity) -> bool {
        match self {
            Self::And(v) => v.iter().all(|q| q.matches(e)),
            Self::Or(v) => v.iter().any(|q| q.matches(e)),
            Self::Term(t) => t.matches(e),
        }
    }
}

/// Conditions on stored values that storage can evaluate for a query, and
/// whether they say all of it (then an entity that surely matches them
/// matches the query). Only `;` at the top level is pushed; `|` is left to
/// [`Query::matches`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pushdown {
    pub conditions: Vec<AttributeCondition>,
    pub complete: bool,
}

impl Query {
    pub fn pushdown(&self) -> Pushdown {
        let terms: Vec<&Term> = match self {
            Self::Term(t) => vec![t],
            Self::And(parts) => {
                let terms: Vec<&Term> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Self::Term(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                let mut p = Pushdown { complete: terms.len() == parts.len(), ..Default::default() };
                for t in terms {
                    p.add(t);
                }
                return p;
            }
            Self::Or(_) => return Pushdown::default(),
        };
        let mut p = Pushdown { complete: true, ..Default::default() };
        for t in terms {
            p.add(t);
        }
        p
    }
}

impl Pushdown {
    fn add(&mut self, t: &Term) {
        match t.condition() {
            Some((c, exact)) => {
                self.complete &= exact;
                self.conditions.push(c);
            }
            None => self.complete = false,
        }
    }
}

fn scalar(v: &QValue) -> Option<Scalar> {
    match v {
        QValue::Number(n) => Some(Scalar::Number(*n)),
        QValue::Bool(b) => Some(Scalar::Bool(*b)),
        // Text that reads as a date compares as an instant: left to Rust.
        QValue::Text(t) | QValue::Word(t) if parse_instant(t).is_none() => Some(Scalar::Text(t.clone())),
        QValue::Text(_) | QValue::Word(_) | QValue::Instant(_) => None,
    }
}

impl Term {
    /// The storage condition of this term and whether it is the term itself
    /// (else it only narrows: the attribute must exist).
    fn condition(&self) -> Option<(AttributeCondition, bool)> {
        if matches!(self.path.attr.as_str(), "id" | "type" | "location") {
            return None;
        }
        let attribute = AttributeName::parse(&self.path.attr).ok()?;
        let exists =
            |exact| Some((AttributeCondition { attribute: attribute.clone(), test: ValueTest::Exists }, exact));
        if !self.path.sub.is_empty() || !self.path.keys.is_empty() {
            return exists(false);
        }
        let test = match &self.test {
            None => return exists(true),
            Some((op, operand)) => match (op, operand) {
                (Op::Eq, Operand::One(v)) => scalar(v).map(|s| ValueTest::Compare(Comparison::Eq, s)),
                (Op::Gt | Op::Ge | Op::Lt | Op::Le, Operand::One(v)) => {
                    let c = match op {
                        Op::Gt => Comparison::Gt,
                        Op::Ge => Comparison::Ge,
                        Op::Lt => Comparison::Lt,
                        _ => Comparison::Le,
                    };
                    scalar(v).filter(|s| !matches!(s, Scalar::Bool(_))).map(|s| ValueTest::Compare(c, s))
                }
                (Op::Eq, Operand::List(list)) => {
                    list.iter().map(scalar).collect::<Option<Vec<_>>>().map(ValueTest::AnyOf)
                }
                (Op::Eq, Operand::Range(a, b)) => match (scalar(a), scalar(b)) {
                    (Some(a), Some(b)) if std::mem::discriminant(&a) == std::mem::discriminant(&b) => {
                        Some(ValueTest::Between(a, b))
                    }
                    _ => None,
                },
                // `!=`, patterns: any existing value may match.
                _ => None,
            },
        };
        match test {
            Some(test) => Some((AttributeCondition { attribute, test }, true)),
            None => exists(false),
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn eat(&mut self, t: &str) -> bool {
        if self.s[self.pos..].starts_with(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Query> {
        let mut parts = vec![self.and()?];
        while self.eat("|") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Query::Or(parts) })
    }

    fn and(&mut self) -> Result<Query> {
        let mut parts = vec![self.primary()?];
        while self.eat(";") {
            parts.push(self.primary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Query::And(parts) })
    }

    fn primary(&mut self) -> Result<Query> {
        if self.eat("(") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(bad("parentheses nested too deeply"));
            }
            let q = self.or()?;
            if !self.eat(")") {
                return Err(bad(format!("missing `)` at {}", self.pos)));
            }
            self.depth -= 1;
            return Ok(q);
        }
        self.term().map(Query::Term)
    }

    fn name(&mut self) -> Result<String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || "_-:/#@".contains(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(bad(format!("an attribute name is expected at {start}")));
        }
        Ok(self.s[start..self.pos].to_owned())
    }

    fn term(&mut self) -> Result<Term> {
        let attr = self.name()?;
        let mut path = AttrPath { attr, sub: Vec::new(), keys: Vec::new() };
        while self.eat(".") {
            path.sub.push(self.name()?);
        }
        while self.eat("[") {
            path.keys.push(self.name()?);
            if !self.eat("]") {
                return Err(bad(format!("missing `]` at {}", self.pos)));
            }
        }
        let op = [
            ("==", Op::Eq),
            ("!~=", Op::NotMatches),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("~=", Op::Matches),
        ]
        .into_iter()
        .find(|(t, _)| self.eat(t))
        .map(|(_, op)| op);
        let Some(op) = op else { return Ok(Term { path, test: None }) };
        let operand = match op {
            Op::Matches | Op::NotMatches => Operand::Pattern(self.pattern()?),
            _ => self.operand(op)?,
        };
        Ok(Term { path, test: Some((op, operand)) })
    }

    /// A pattern runs to the next `;`, `|` or `)` outside its own parentheses.
    fn pattern(&mut self) -> Result<Regex> {
        let text = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let start = self.pos;
            let mut depth = 0usize;
            while let Some(c) = self.peek() {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => break,
                    ')' => depth -= 1,
                    ';' if depth == 0 => break,
                    '|' if depth == 0 => break,
                    '\\' => {
                        self.pos += 1;
                        if let Some(n) = self.peek() {
                            self.pos += n.len_utf8();
                        }
                        continue;
                    }
                    _ => {}
                }
                self.pos += c.len_utf8();
            }
            self.s[start..self.pos].to_owned()
        };
        regex::RegexBuilder::new(&text)
            .size_limit(1 << 20)
            .nest_limit(64)
            .build()
            .map_err(|e| bad(format!("pattern `{text}`: {e}")))
    }

    fn quoted(&mut self) -> Result<String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(bad(format!("unterminated string at {start}"))),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) => {
                            out.push(c);
                            self.pos += c.len_utf8();
                        }
                        None => return Err(bad("a string ends with `\\`")),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn value(&mut self) -> Result<QValue> {
        if self.peek() == Some('"') {
            return Ok(QValue::Text(self.quoted()?));
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if ";|),\"".contains(c) || self.s[self.pos..].starts_with("..") {
                break;
            }
            self.pos += c.len_utf8();
        }
        let word = &self.s[start..self.pos];
        if word.is_empty() {
            return Err(bad(format!("a value is expected at {start}")));
        }
        Ok(classify(word))
    }

    fn operand(&mut self, op: Op) -> Result<Operand> {
        let first = self.value()?;
        if self.eat("..") {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(bad("a range only goes with == or !="));
            }
            let last = self.value()?;
            return Ok(Operand::Range(first, last));
        }
        if self.peek() == Some(',') {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(bad("a list only goes with == or !="));
            }
            let mut all = vec![first];
            while self.eat(",") {
                all.push(self.value()?);
            }
            return Ok(Operand::List(all));
        }
        Ok(Operand::One(first))
    }
}

fn classify(word: &str) -> QValue {
    match word {
        "true" => return QValue::Bool(true),
        "false" => return QValue::Bool(false),
        _ => {}
    }
    if let Ok(n) = word.parse::<f64>() {
        if n.is_finite() && word.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
            return QValue::Number(n);
        }
    }
    if let Some(t) = parse_instant(word) {
        return QValue::Instant(t);
    }
    QValue::Word(word.to_owned())
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

/// What a path points at in an entity, as JSON.
fn resolve(e: &Entity, path: &AttrPath) -> Option<Value> {
    let attr = match path.attr.as_str() {
        "id" => return Some(Value::from(e.id.as_str())),
        "type" => return Some(Value::from(e.entity_type.as_str())),
        "location" => {
            let loc = e.location.as_ref()?;
            return serde_json::to_value(loc).ok();
        }
        name => e.attributes.get(&AttributeName::parse(name).ok()?)?,
    };
    let mut v = match (path.sub.first().map(String::as_str), attr) {
        (Some("observedAt"), a) => Value::from(a.observed_at()?.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        (Some("unitCode"), Attribute::Property { unit_code, .. }) => Value::from(unit_code.as_ref()?.as_str()),
        (_, Attribute::Property { value, .. }) => value.clone(),
        (_, Attribute::Relationship { object, .. }) => Value::from(object.as_str()),
        (_, Attribute::GeoProperty { value, .. }) => serde_json::to_value(value).ok()?,
        // Any of its languages may match.
        (_, Attribute::LanguageProperty { language_map, .. }) => {
            Value::Array(language_map.values().cloned().map(Value::from).collect())
        }
        (_, Attribute::ListProperty { value_list, .. }) => Value::Array(value_list.clone()),
    };
    // Other dotted segments navigate the value, as several brokers allow.
    let skip = usize::from(matches!(path.sub.first().map(String::as_str), Some("observedAt" | "unitCode")));
    for key in path.sub.iter().skip(skip).chain(&path.keys) {
        v = v.get(key)?.clone();
    }
    Some(v)
}

fn compare(v: &Value, q: &QValue) -> Option<Ordering> {
    match (v, q) {
        (Value::Number(n), QValue::Number(m)) => n.as_f64()?.partial_cmp(m),
        (Value::Bool(b), QValue::Bool(c)) => Some(b.cmp(c)),
        (Value::String(s), QValue::Instant(t)) => parse_instant(s).map(|u| u.cmp(t)),
        (Value::Object(o), QValue::Instant(t)) => {
            o.get("@value").and_then(Value::as_str).and_then(parse_instant).map(|u| u.cmp(t))
        }
        (Value::String(s), QValue::Text(t) | QValue::Word(t)) => match (parse_instant(s), parse_instant(t)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(s.as_str().cmp(t.as_str())),
        },
        // `q=level==3` against a value stored as text "3".
        (Value::String(s), QValue::Number(m)) => s.parse::<f64>().ok()?.partial_cmp(m),
        _ => None,
    }
}

fn test_one(v: &Value, op: Op, operand: &Operand) -> bool {
    if let Value::Array(items) = v {
        return match op {
            Op::Ne | Op::NotMatches => items.iter().all(|i| test_one(i, op, operand)),
            _ => items.iter().any(|i| test_one(i, op, operand)),
        };
    }
    match (op, operand) {
        (Op::Matches, Operand::Pattern(re)) => v.as_str().is_some_and(|s| re.is_match(s)),
        (Op::NotMatches, Operand::Pattern(re)) => v.as_str().is_some_and(|s| !re.is_match(s)),
        (Op::Eq, Operand::List(list)) => list.iter().any(|q| compare(v, q) == Some(Ordering::Equal)),
        (Op::Ne, Operand::List(list)) => list.iter().all(|q| compare(v, q) != Some(Ordering::Equal)),
        (Op::Eq | Op::Ne, Operand::Range(a, b)) => {
            let inside = compare(v, a).is_some_and(Ordering::is_ge) && compare(v, b).is_some_and(Ordering::is_le);
            inside == (op == Op::Eq)
        }
        (_, Operand::One(q)) => {
            let c = compare(v, q);
            match op {
                Op::Eq => c == Some(Ordering::Equal),
                Op::Ne => c != Some(Ordering::Equal),
                Op::Gt => c == Some(Ordering::Greater),
                Op::Ge => c.is_some_and(Ordering::is_ge),
                Op::Lt => c == Some(Ordering::Less),
                Op::Le => c.is_some_and(Ordering::is_le),
                Op::Matches | Op::NotMatches => false,
            }
        }
        _ => false,
    }
}

impl Term {
    pub fn matches(&self, e: &Entity) -> bool {
        let Some(v) = resolve(e, &self.path) else { return false };
        match &self.test {
            None => true,
            Some((op, operand)) => test_one(&v, *op, operand),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use socle_domain::{EntityId, EntityType, OrganisationId, UnitCode};

    fn container() -> Entity {
        let ty = EntityType::parse("WasteContainer").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").unwrap().with_timezone(&Utc);
        Entity::new(EntityId::new(&ty, "c1").unwrap(), ty, OrganisationId::parse("commune-a").unwrap())
            .with("fillingLevel", Attribute::measure(0.75, &UnitCode::parse("P1").unwrap(), at))
            .unwrap()
            .with("status", Attribute::property("ok"))
            .unwrap()
            .with("address", Attribute::property(json!({"addressLocality": "Poitiers", "postalCode": "86000"})))
            .unwrap()
            .with("tags", Attribute::property(json!(["verre", "apport"])))
            .unwrap()
            .with("refDevice", Attribute::relationship(EntityId::parse("urn:ngsi-ld:Device:d1").unwrap()))
            .unwrap()
            .with("dateLastEmptying", Attribute::property("2026-02-20T08:00:00Z"))
            .unwrap()
    }

    fn m(q: &str) -> bool {
        Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).matches(&container())
    }

    #[test]
    fn comparisons() {
        for (q, want) in [
            ("fillingLevel>0.5", true),
            ("fillingLevel>=0.75", true),
            ("fillingLevel<0.75", false),
            ("fillingLevel<=0.75", true),
            ("fillingLevel==0.75", true),
            ("fillingLevel!=0.75", false),
            ("fillingLevel==0.5..0.8", true),
            ("fillingLevel!=0.5..0.8", false),
            ("fillingLevel==0.1,0.75,0.9", true),
            ("fillingLevel!=0.1,0.9", true),
            ("status==\"ok\"", true),
            ("status==ok", true),
            ("status==ko,fault", false),
            ("status~=^o", true),
            ("status!~=^o", false),
            ("status~=(?i)OK", true),
            ("fillingLevel", true),
            ("temperature", false),
            ("temperature!=3", false),
            ("refDevice==urn:ngsi-ld:Device:d1", true),
            ("refDevice==\"urn:ngsi-ld:Device:d2\"", false),
            ("address[addressLocality]==\"Poitiers\"", true),
            ("address[postalCode]==86000", true),
            ("address.addressLocality==Poitiers", true),
            ("tags==verre", true),
            ("tags!=papier", true),
            ("fillingLevel.observedAt>2026-02-28T00:00:00Z", true),
            ("fillingLevel.observedAt<2026-02-28", false),
            ("fillingLevel.unitCode==\"P1\"", true),
            ("dateLastEmptying>=2026-02-01T00:00:00Z", true),
            ("dateLastEmptying==2026-02-01T00:00:00Z..2026-02-21T00:00:00Z", true),
            ("type==WasteContainer", true),
        ] {
            assert_eq!(m(q), want, "{q}");
        }
    }

    #[test]
    fn logic_and_precedence() {
        assert!(m("fillingLevel>0.5;status==ok"));
        assert!(!m("fillingLevel>0.9;status==ok"));
        assert!(m("fillingLevel>0.9|status==ok"));
        // `;` binds tighter than `|`.
        assert!(m("status==ko;fillingLevel>0.9|status==ok"));
        assert!(!m("status==ko;(fillingLevel>0.9|status==ok)"));
        assert!(m("((fillingLevel>0.5));(status==ko|(tags==verre;status~=o))"));
    }

    #[test]
    fn errors_are_bad_request_data() {
        for q in [
            "",
            "(a==1",
            "a==1)",
            "a==",
            "a>1,2",
            "a<1..2",
            "a~=(",
            "a==\"x",
            "a[b",
            ";a",
            "a==1;",
            "a|",
            &"(".repeat(100),
            &"a".repeat(MAX_LEN + 1),
        ] {
            let err = Query::parse(q).unwrap_err();
            assert_eq!(err.name(), "BadRequestData", "{q}");
        }
    }

    #[test]
    fn renaming_reaches_every_term() {
        let mut q = Query::parse("a==1;(b>2|c)").unwrap();
        q.rename(&|s| format!("x{s}"));
        assert_eq!(q.attributes(), vec!["xa", "xb", "xc"]);
    }

    #[test]
    fn pushdown_keeps_what_storage_can_say() {
        let p = Query::parse("powerState==\"off\";illuminanceLevel>0.5").unwrap().pushdown();
        assert!(p.complete);
        assert_eq!(p.conditions.len(), 2);
        assert_eq!(p.conditions[0].test, ValueTest::Compare(Comparison::Eq, Scalar::Text("off".into())));
        assert_eq!(p.conditions[1].test, ValueTest::Compare(Comparison::Gt, Scalar::Number(0.5)));
        let p = Query::parse("a==1..3;b==x,y;c").unwrap().pushdown();
        assert!(p.complete);
        assert_eq!(p.conditions[0].test, ValueTest::Between(Scalar::Number(1.0), Scalar::Number(3.0)));
        assert_eq!(p.conditions[1].test, ValueTest::AnyOf(vec![Scalar::Text("x".into()), Scalar::Text("y".into())]));
        assert_eq!(p.conditions[2].test, ValueTest::Exists);
        // Narrowing only: existence of the attribute.
        for q in ["a!=1", "a~=x", "a.observedAt>2026-01-01", "a[k]==1", "a==2026-01-01", "a==\"2026-01-01\"", "a>true"]
        {
            let p = Query::parse(q).unwrap().pushdown();
            assert!(!p.complete, "{q}");
            assert_eq!(p.conditions.len(), 1, "{q}");
            assert_eq!(p.conditions[0].test, ValueTest::Exists, "{q}");
        }
        // Nothing pushed.
        for q in ["a==1|b==2", "type==X", "id==urn:ngsi-ld:X:1"] {
            let p = Query::parse(q).unwrap().pushdown();
            assert!(!p.complete && p.conditions.is_empty(), "{q}");
        }
        let p = Query::parse("a==1;(b==2|c==3)").unwrap().pushdown();
        assert!(!p.complete);
        assert_eq!(p.conditions.len(), 1);
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            if let Ok(q) = Query::parse(&s) {
                let _ = q.matches(&container());
            }
        }
        #[test]
        fn never_panics_on_q_like_input(s in "[a-z()\\[\\];|=!<>~.,\"0-9:T-]{0,80}") {
            if let Ok(q) = Query::parse(&s) {
                let _ = q.matches(&container());
            }
        }
    }
}
