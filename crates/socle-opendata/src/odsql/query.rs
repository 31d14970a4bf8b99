//! A whole Explore API query (`select`, `where`, `refine`, `exclude`, `group_by`,
//! `order_by`) checked against a dataset's schema, then run over its records.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::ast::{Direction, Expr, ExprKind, Literal, OrderItem, Projection};
use super::eval::{Context, Record};
use super::value::{total_cmp, Value};
use super::{parse_order_by, parse_projections, parse_where, OdsqlError};
use crate::schema::{FieldType, Schema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clause {
    Select,
    Where,
    GroupBy,
    OrderBy,
    Refine,
    Exclude,
    Timezone,
}

impl Clause {
    pub fn as_str(self) -> &'static str {
        match self {
            Clause::Select => "select",
            Clause::Where => "where",
            Clause::GroupBy => "group_by",
            Clause::OrderBy => "order_by",
            Clause::Refine => "refine",
            Clause::Exclude => "exclude",
            Clause::Timezone => "timezone",
        }
    }
}

/// An error in one clause, at a byte position of that clause's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ODSQL query is malformed: {} (in {} at position {}). Clause(s) containing the error(s): {}.", .error.message, .clause.as_str(), .error.position, .clause.as_str())]
pub struct QueryError {
    pub clause: Clause,
    pub error: OdsqlError,
}

#[derive(Debug, Clone, Default)]
pub struct QueryParams<'a> {
    pub select: Option<&'a str>,
    pub where_: Option<&'a str>,
    pub group_by: Option<&'a str>,
    pub order_by: Option<&'a str>,
    /// `field:value`, as many as given.
    pub refine: Vec<&'a str>,
    pub exclude: Vec<&'a str>,
    pub timezone: Option<&'a str>,
}

#[derive(Debug, Clone)]
struct Refinement {
    field: String,
    value: String,
    date: bool,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub schema: Schema,
    select: Vec<Projection>,
    filter: Option<Expr>,
    refine: Vec<Refinement>,
    exclude: Vec<Refinement>,
    group_by: Vec<Projection>,
    order_by: Vec<OrderItem>,
    tz: Tz,
    now: DateTime<Utc>,
    aggregated: bool,
}

/// One page of results and how many there are in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub total_count: u64,
    pub results: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FacetValue {
    pub name: String,
    pub count: u64,
    pub state: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facet {
    pub name: String,
    pub facets: Vec<FacetValue>,
}

fn clause_err(clause: Clause) -> impl Fn(OdsqlError) -> QueryError {
    move |error| QueryError { clause, error }
}

impl Query {
    pub fn build(schema: &Schema, params: &QueryParams<'_>) -> Result<Query, QueryError> {
        let tz: Tz = match params.timezone {
            None | Some("") => Tz::UTC,
            Some(name) => name.parse().map_err(|_| QueryError {
                clause: Clause::Timezone,
                error: OdsqlError::at(0, format!("unknown time zone '{name}'")),
            })?,
        };
        let select = parse_projections(params.select.unwrap_or("")).map_err(clause_err(Clause::Select))?;
        let filter = parse_where(params.where_.unwrap_or("")).map_err(clause_err(Clause::Where))?;
        let group_by = parse_projections(params.group_by.unwrap_or("")).map_err(clause_err(Clause::GroupBy))?;
        let order_by = parse_order_by(params.order_by.unwrap_or("")).map_err(clause_err(Clause::OrderBy))?;
        let refinement = |text: &str, clause: Clause| -> Result<Refinement, QueryError> {
            let Some((field, value)) = text.split_once(':') else {
                return Err(QueryError { clause, error: OdsqlError::at(0, "expected field:value") });
            };
            let Some(f) = schema.field(field) else {
                return Err(QueryError { clause, error: OdsqlError::at(0, format!("unknown field '{field}'")) });
            };
            Ok(Refinement {
                field: field.to_string(),
                value: value.to_string(),
                date: matches!(f.field_type, FieldType::Date | FieldType::DateTime),
            })
        };
        let refine = params.refine.iter().map(|r| refinement(r, Clause::Refine)).collect::<Result<Vec<_>, _>>()?;
        let exclude = params.exclude.iter().map(|r| refinement(r, Clause::Exclude)).collect::<Result<Vec<_>, _>>()?;

        // Field names must exist; aliases of select and group_by may be used in order_by.
        let mut aliases: Vec<&str> = select.iter().map(|p| p.key.as_str()).collect();
        aliases.extend(group_by.iter().map(|p| p.key.as_str()));
        if let Some(f) = &filter {
            check_fields(f, schema, &[], false).map_err(clause_err(Clause::Where))?;
            if f.has_aggregate() {
                return Err(QueryError {
                    clause: Clause::Where,
                    error: OdsqlError::at(f.position, "aggregates are not allowed in where"),
                });
            }
        }
        let group_aliases: Vec<&str> = group_by.iter().map(|p| p.key.as_str()).collect();
        for p in &select {
            check_fields(&p.expr, schema, &group_aliases, true).map_err(clause_err(Clause::Select))?;
        }
        for p in &group_by {
            check_fields(&p.expr, schema, &[], false).map_err(clause_err(Clause::GroupBy))?;
            if p.expr.has_aggregate() {
                return Err(QueryError {
                    clause: Clause::GroupBy,
                    error: OdsqlError::at(p.expr.position, "aggregates are not allowed in group_by"),
                });
            }
        }
        for o in &order_by {
            check_fields(&o.expr, schema, &aliases, false).map_err(clause_err(Clause::OrderBy))?;
        }
        let aggregated = !group_by.is_empty()
            || select.iter().any(|p| p.expr.has_aggregate())
            || order_by.iter().any(|o| o.expr.has_aggregate());
        if aggregated {
            // Outside an aggregate, select may only name what is grouped.
            for p in &select {
                if let Some(pos) = ungrouped(&p.expr, &group_by) {
                    return Err(QueryError {
                        clause: Clause::Select,
                        error: OdsqlError::at(pos, "a field outside an aggregate must appear in group_by"),
                    });
                }
            }
        }
        Ok(Query {
            schema: schema.clone(),
            select,
            filter,
            refine,
            exclude,
            group_by,
            order_by,
            tz,
            now: Utc::now(),
            aggregated,
        })
    }

    pub fn context(&self) -> Context<'_> {
        Context { schema: &self.schema, tz: self.tz, now: self.now }
    }

    pub fn is_aggregated(&self) -> bool {
        self.aggregated
    }

    pub fn has_order(&self) -> bool {
        !self.order_by.is_empty()
    }

    /// `where`, `refine` and `exclude` together.
    pub fn matches(&self, record: &Record) -> bool {
        let ctx = self.context();
        if let Some(f) = &self.filter {
            if !ctx.test(f, record) {
                return false;
            }
        }
        self.refine.iter().all(|r| self.refined(&ctx, r, record))
            && !self.exclude.iter().any(|r| self.refined(&ctx, r, record))
    }

    fn refined(&self, ctx: &Context<'_>, r: &Refinement, record: &Record) -> bool {
        let value = ctx.field(record, &r.field);
        let values = match value {
            Value::List(items) => items,
            other => vec![other],
        };
        values.iter().any(|v| match v {
            Value::Date(d) if r.date => {
                // `2024`, `2024/05`, `2024-05-17`: a prefix of the local date.
                let local = d.with_timezone(&self.tz).format("%Y-%m-%d").to_string();
                let wanted = r.value.replace('/', "-");
                !wanted.is_empty() && local.starts_with(&wanted)
            }
            other => other.display_text() == r.value,
        })
    }

    /// The record as the caller asked to see it (`select`), for records and exports.
    pub fn project(&self, record: &Record) -> Record {
        if self.select.is_empty() {
            return record.clone();
        }
        let ctx = self.context();
        let mut out = Map::new();
        for p in &self.select {
            match &p.expr.kind {
                ExprKind::Star => {
                    for (k, v) in record {
                        out.insert(k.clone(), v.clone());
                    }
                }
                // A plain field keeps its stored shape (dates as written, points as lon/lat).
                ExprKind::Field(name) => {
                    out.insert(p.key.clone(), record.get(name).cloned().unwrap_or(Json::Null));
                }
                _ => {
                    out.insert(p.key.clone(), ctx.eval(&p.expr, record).to_json());
                }
            }
        }
        out
    }

    /// Runs over all records, returning `limit` results from `offset`.
    pub fn run<I>(&self, records: I, offset: usize, limit: usize) -> Rows
    where
        I: IntoIterator<Item = Record>,
    {
        let mut run = self.start(offset, limit);
        for record in records {
            run.push(record);
        }
        run.finish()
    }

    /// A run fed one record at a time (records read from storage in chunks). It keeps
    /// only what the answer needs: the requested page without ordering, the best
    /// `offset + limit` rows with ordering, one accumulator set per group when grouped.
    pub fn start(&self, offset: usize, limit: usize) -> Run<'_> {
        let state = if self.aggregated {
            let mut aggregates: Vec<Expr> = Vec::new();
            for e in self.select.iter().map(|p| &p.expr).chain(self.order_by.iter().map(|o| &o.expr)) {
                collect_aggregates(e, &mut aggregates);
            }
            RunState::Grouped { aggregates, groups: BTreeMap::new() }
        } else if self.order_by.is_empty() {
            RunState::Plain(Vec::new())
        } else {
            RunState::Ordered(Vec::new())
        };
        Run { query: self, offset, limit, total: 0, state }
    }

    /// The time zone of the query (`timezone` parameter, UTC by default).
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The columns of an aggregated answer in the order asked: `select`'s keys, or
    /// `group_by`'s when there is no `select`.
    pub fn output_columns(&self) -> Vec<String> {
        let from = if self.select.is_empty() { &self.group_by } else { &self.select };
        from.iter().filter(|p| p.expr.kind != ExprKind::Star).map(|p| p.key.clone()).collect()
    }

    /// Whether records come out in storage order, so a caller may stop reading early.
    pub fn is_plain(&self) -> bool {
        !self.aggregated && self.order_by.is_empty()
    }

    /// Sorts by `order_by`; in aggregated mode items are (group values, output row) and
    /// ordering expressions are read from the output row by alias or text.
    fn sort<T>(&self, items: &mut [T])
    where
        T: SortSource,
    {
        if self.order_by.is_empty() {
            return;
        }
        let ctx = self.context();
        let keys: Vec<Vec<Value>> = items
            .iter()
            .map(|item| self.order_by.iter().map(|o| item.order_value(self, &ctx, &o.expr)).collect())
            .collect();
        let mut indices: Vec<usize> = (0..items.len()).collect();
        indices.sort_by(|&a, &b| {
            for (i, o) in self.order_by.iter().enumerate() {
                let mut ord = total_cmp(&keys[a][i], &keys[b][i]);
                if o.direction == Direction::Desc {
                    ord = ord.reverse();
                }
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        apply_permutation(items, &indices);
    }

    fn add_to_group(&self, aggregates: &[Expr], groups: &mut BTreeMap<GroupKey, Vec<Accumulator>>, record: &Record) {
        let ctx = self.context();
        let key = GroupKey(self.group_by.iter().map(|g| ctx.eval(&g.expr, record)).collect());
        let accs = groups.entry(key).or_insert_with(|| aggregates.iter().map(Accumulator::new).collect());
        for (acc, expr) in accs.iter_mut().zip(aggregates) {
            acc.add(&ctx, expr, record);
        }
    }

    fn aggregate(
        &self,
        aggregates: Vec<Expr>,
        mut groups: BTreeMap<GroupKey, Vec<Accumulator>>,
    ) -> Vec<(Vec<Value>, Record)> {
        let ctx = self.context();
        // An aggregate without group_by over no record still answers one row (count 0).
        if groups.is_empty() && self.group_by.is_empty() {
            groups.insert(GroupKey(Vec::new()), aggregates.iter().map(Accumulator::new).collect());
        }
        groups
            .into_iter()
            .map(|(key, accs)| {
                let results: HashMap<String, Value> =
                    aggregates.iter().zip(accs).map(|(e, a)| (e.to_string(), a.finish())).collect();
                let grouped = Grouped { keys: &key.0, group_by: &self.group_by, aggregates: &results };
                let mut out = Map::new();
                if self.select.is_empty() {
                    for (g, v) in self.group_by.iter().zip(&key.0) {
                        out.insert(g.key.clone(), v.to_json());
                    }
                } else {
                    for p in &self.select {
                        out.insert(p.key.clone(), grouped.eval(&ctx, &p.expr).to_json());
                    }
                }
                let mut sort_values = key.0.clone();
                for o in &self.order_by {
                    // An alias of select sorts by the computed column.
                    let value = match &o.expr.kind {
                        ExprKind::Field(name) if !self.group_by.iter().any(|g| g.key == *name) => {
                            out.get(name).map(Value::from_plain_json).unwrap_or_else(|| grouped.eval(&ctx, &o.expr))
                        }
                        _ => grouped.eval(&ctx, &o.expr),
                    };
                    sort_values.push(value);
                }
                (sort_values, out)
            })
            .collect()
    }

    /// Value counts of `fields` over the matching records (dates by year).
    pub fn facets<I>(&self, records: I, fields: &[&str], limit: usize) -> Vec<Facet>
    where
        I: IntoIterator<Item = Record>,
    {
        let mut counts = self.start_facets(fields);
        for record in records {
            counts.push(&record);
        }
        counts.finish(limit)
    }

    /// Facet counts fed one record at a time: memory holds the distinct values only.
    pub fn start_facets<'a>(&'a self, fields: &'a [&'a str]) -> FacetCounts<'a> {
        FacetCounts { query: self, fields, counts: vec![HashMap::new(); fields.len()] }
    }

    fn count_facets(&self, counts: &mut [HashMap<String, u64>], fields: &[&str], record: &Record) {
        let ctx = self.context();
        if !self.matches(record) {
            return;
        }
        for (i, field) in fields.iter().enumerate() {
            let values = match ctx.field(record, field) {
                Value::List(items) => items,
                other => vec![other],
            };
            for v in values {
                let name = match &v {
                    Value::Null => continue,
                    Value::Date(d) => d.with_timezone(&self.tz).format("%Y").to_string(),
                    other => other.display_text(),
                };
                *counts[i].entry(name).or_default() += 1;
            }
        }
    }

    fn facet_answer(&self, counts: Vec<HashMap<String, u64>>, fields: &[&str], limit: usize) -> Vec<Facet> {
        fields
            .iter()
            .zip(counts)
            .map(|(field, counts)| {
                let refined: Vec<&str> =
                    self.refine.iter().filter(|r| r.field == *field).map(|r| r.value.as_str()).collect();
                let mut values: Vec<FacetValue> = counts
                    .into_iter()
                    .map(|(name, count)| FacetValue {
                        state: if refined.contains(&name.as_str()) { "refined" } else { "displayed" },
                        value: name.clone(),
                        name,
                        count,
                    })
                    .collect();
                values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
                values.truncate(limit);
                Facet { name: field.to_string(), facets: values }
            })
            .collect()
    }
}

/// Facet counts being accumulated; see [`Query::start_facets`].
pub struct FacetCounts<'a> {
    query: &'a Query,
    fields: &'a [&'a str],
    counts: Vec<HashMap<String, u64>>,
}

impl FacetCounts<'_> {
    pub fn push(&mut self, record: &Record) {
        self.query.count_facets(&mut self.counts, self.fields, record);
    }

    pub fn finish(self, limit: usize) -> Vec<Facet> {
        self.query.facet_answer(self.counts, self.fields, limit)
    }
}

enum RunState {
    Plain(Vec<Record>),
    /// (record, projection) pairs: sorted and cut back to `offset + limit` whenever the
    /// buffer doubles, so a page from a large dataset keeps a few thousand rows at most.
    Ordered(Vec<(Record, Record)>),
    Grouped {
        aggregates: Vec<Expr>,
        groups: BTreeMap<GroupKey, Vec<Accumulator>>,
    },
}

/// A query being run; see [`Query::start`].
pub struct Run<'a> {
    query: &'a Query,
    offset: usize,
    limit: usize,
    total: u64,
    state: RunState,
}

impl Run<'_> {
    pub fn push(&mut self, record: Record) {
        let q = self.query;
        if !q.matches(&record) {
            return;
        }
        let keep = self.offset.saturating_add(self.limit);
        match &mut self.state {
            RunState::Plain(results) => {
                if self.total as usize >= self.offset && results.len() < self.limit {
                    results.push(q.project(&record));
                }
            }
            RunState::Ordered(rows) => {
                let projected = q.project(&record);
                rows.push((record, projected));
                // The sort is stable and the kept rows come first: ties keep storage order.
                if rows.len() >= keep.saturating_mul(2).max(1024) {
                    q.sort(rows);
                    rows.truncate(keep);
                }
            }
            RunState::Grouped { aggregates, groups } => q.add_to_group(aggregates, groups, &record),
        }
        self.total += 1;
    }

    /// Whether more records can change the page (a plain run past its page only counts).
    pub fn page_full(&self) -> bool {
        matches!(&self.state, RunState::Plain(r) if r.len() >= self.limit)
    }

    /// Records matched so far.
    pub fn matched(&self) -> u64 {
        self.total
    }

    pub fn finish(self) -> Rows {
        let q = self.query;
        match self.state {
            RunState::Plain(results) => Rows { total_count: self.total, results },
            RunState::Ordered(mut rows) => {
                q.sort(&mut rows);
                let results = rows.into_iter().skip(self.offset).take(self.limit).map(|(_, p)| p).collect();
                Rows { total_count: self.total, results }
            }
            RunState::Grouped { aggregates, groups } => {
                let mut rows = q.aggregate(aggregates, groups);
                let total_count = rows.len() as u64;
                q.sort(&mut rows);
                let results = rows.into_iter().skip(self.offset).take(self.limit).map(|(_, out)| out).collect();
                Rows { total_count, results }
            }
        }
    }
}

trait SortSource: Clone {
    fn order_value(&self, q: &Query, ctx: &Context<'_>, expr: &Expr) -> Value;
}

impl SortSource for (Record, Record) {
    fn order_value(&self, _: &Query, ctx: &Context<'_>, expr: &Expr) -> Value {
        // An alias of select sorts by the computed value.
        if let ExprKind::Field(name) = &expr.kind {
            if !self.0.contains_key(name) {
                if let Some(v) = self.1.get(name) {
                    return Value::from_plain_json(v);
                }
            }
        }
        ctx.eval(expr, &self.0)
    }
}

impl SortSource for (Vec<Value>, Record) {
    fn order_value(&self, q: &Query, _: &Context<'_>, expr: &Expr) -> Value {
        let index = q.order_by.iter().position(|o| std::ptr::eq(&o.expr, expr));
        match index {
            Some(i) => self.0.get(q.group_by.len() + i).cloned().unwrap_or(Value::Null),
            None => Value::Null,
        }
    }
}

fn apply_permutation<T: Clone>(items: &mut [T], order: &[usize]) {
    let sorted: Vec<T> = order.iter().map(|&i| items[i].clone()).collect();
    for (slot, item) in items.iter_mut().zip(sorted) {
        *slot = item;
    }
}

struct Grouped<'a> {
    keys: &'a [Value],
    group_by: &'a [Projection],
    aggregates: &'a HashMap<String, Value>,
}

impl Grouped<'_> {
    fn eval(&self, ctx: &Context<'_>, expr: &Expr) -> Value {
        if let Some(i) = self
            .group_by
            .iter()
            .position(|g| g.expr.same_as(expr) || matches!(&expr.kind, ExprKind::Field(n) if *n == g.key))
        {
            return self.keys.get(i).cloned().unwrap_or(Value::Null);
        }
        match &expr.kind {
            ExprKind::Call { name, .. } if super::functions::is_aggregate(name) => {
                self.aggregates.get(&expr.to_string()).cloned().unwrap_or(Value::Null)
            }
            ExprKind::Literal(_) => ctx.eval(expr, &Map::new()),
            ExprKind::Binary(op, a, b) => {
                let (a, b) = (self.eval(ctx, a), self.eval(ctx, b));
                let mut record = Map::new();
                record.insert("a".into(), a.to_json());
                record.insert("b".into(), b.to_json());
                let synthetic = Expr::new(
                    ExprKind::Binary(
                        *op,
                        Box::new(Expr::new(ExprKind::Field("a".into()), 0)),
                        Box::new(Expr::new(ExprKind::Field("b".into()), 0)),
                    ),
                    0,
                );
                ctx.eval(&synthetic, &record)
            }
            ExprKind::Neg(inner) => match self.eval(ctx, inner).as_number() {
                Some(n) => Value::Number(-n),
                None => Value::Null,
            },
            _ => Value::Null,
        }
    }
}

/// Position of a field used outside an aggregate and not grouped, if any.
fn ungrouped(expr: &Expr, group_by: &[Projection]) -> Option<usize> {
    if group_by.iter().any(|g| g.expr.same_as(expr)) {
        return None;
    }
    match &expr.kind {
        ExprKind::Field(name) => {
            if group_by.iter().any(|g| g.key == *name) {
                None
            } else {
                Some(expr.position)
            }
        }
        ExprKind::Call { name, .. } if super::functions::is_aggregate(name) => None,
        ExprKind::Call { args, .. } => args.iter().find_map(|a| ungrouped(a, group_by)),
        ExprKind::Binary(_, a, b) => ungrouped(a, group_by).or_else(|| ungrouped(b, group_by)),
        ExprKind::Not(e) | ExprKind::Neg(e) => ungrouped(e, group_by),
        ExprKind::Star => Some(expr.position),
        _ => None,
    }
}

fn check_fields(expr: &Expr, schema: &Schema, aliases: &[&str], star_allowed: bool) -> Result<(), OdsqlError> {
    let recurse = |e: &Expr| check_fields(e, schema, aliases, false);
    match &expr.kind {
        ExprKind::Field(name) => {
            if schema.field(name).is_none() && !aliases.contains(&name.as_str()) {
                return Err(OdsqlError::at(expr.position, format!("unknown field '{name}'")));
            }
            Ok(())
        }
        ExprKind::Star if !star_allowed => {
            Err(OdsqlError::at(expr.position, "'*' is only allowed in count(*) or select"))
        }
        ExprKind::Literal(Literal::Geom(text)) => match super::parse_geom(text) {
            Some(_) => Ok(()),
            None => Err(OdsqlError::at(expr.position, "invalid geometry (expected WKT or GeoJSON)")),
        },
        ExprKind::Literal(Literal::Date(text)) => match super::value::parse_date(text, Tz::UTC) {
            Some(_) => Ok(()),
            None => Err(OdsqlError::at(expr.position, format!("invalid date '{text}'"))),
        },
        ExprKind::Literal(Literal::Interval(..)) => {
            Err(OdsqlError::at(expr.position, "an interval is only allowed in range()"))
        }
        ExprKind::Literal(_) | ExprKind::Star => Ok(()),
        ExprKind::Not(e) | ExprKind::Neg(e) => recurse(e),
        ExprKind::Binary(_, a, b) => {
            recurse(a)?;
            recurse(b)
        }
        ExprKind::Like { value, pattern, .. } => {
            recurse(value)?;
            recurse(pattern)
        }
        ExprKind::IsNull { value, .. } => recurse(value),
        ExprKind::InRange { value, low, high, .. } => {
            recurse(value)?;
            for b in [low, high].into_iter().flatten() {
                recurse(&b.value)?;
            }
            Ok(())
        }
        ExprKind::InList { value, items, .. } => {
            recurse(value)?;
            items.iter().try_for_each(recurse)
        }
        ExprKind::Call { name, args } => {
            for (i, a) in args.iter().enumerate() {
                let interval_ok = name == "range" && i == 1;
                let star_ok = name == "count" && i == 0;
                match &a.kind {
                    ExprKind::Literal(Literal::Interval(..)) if interval_ok => {}
                    ExprKind::Star if star_ok => {}
                    _ => recurse(a)?,
                }
            }
            Ok(())
        }
    }
}

fn collect_aggregates(expr: &Expr, out: &mut Vec<Expr>) {
    match &expr.kind {
        ExprKind::Call { name, args } => {
            if super::functions::is_aggregate(name) {
                if !out.iter().any(|e| e.same_as(expr)) {
                    out.push(expr.clone());
                }
            } else {
                args.iter().for_each(|a| collect_aggregates(a, out));
            }
        }
        ExprKind::Binary(_, a, b) => {
            collect_aggregates(a, out);
            collect_aggregates(b, out);
        }
        ExprKind::Not(e) | ExprKind::Neg(e) => collect_aggregates(e, out),
        _ => {}
    }
}

#[derive(Debug, Clone)]
struct GroupKey(Vec<Value>);

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for GroupKey {}
impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            let o = total_cmp(a, b);
            if o != Ordering::Equal {
                return o;
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

enum Accumulator {
    Count(u64),
    Sum(f64, u64),
    Avg(f64, u64),
    Min(Option<Value>),
    Max(Option<Value>),
    /// Median and percentile keep the group's values: exact, like Opendatasoft's answers
    /// on small groups.
    Values(Vec<f64>, f64),
}

impl Accumulator {
    fn new(expr: &Expr) -> Self {
        let ExprKind::Call { name, args } = &expr.kind else {
            return Accumulator::Count(0);
        };
        match name.as_str() {
            "sum" => Accumulator::Sum(0.0, 0),
            "avg" => Accumulator::Avg(0.0, 0),
            "min" => Accumulator::Min(None),
            "max" => Accumulator::Max(None),
            "median" => Accumulator::Values(Vec::new(), 50.0),
            "percentile" => {
                let p = match args.get(1).map(|a| &a.kind) {
                    Some(ExprKind::Literal(Literal::Number(p))) => p.clamp(0.0, 100.0),
                    _ => 50.0,
                };
                Accumulator::Values(Vec::new(), p)
            }
            _ => Accumulator::Count(0),
        }
    }

    fn add(&mut self, ctx: &Context<'_>, expr: &Expr, record: &Record) {
        let ExprKind::Call { args, .. } = &expr.kind else {
            return;
        };
        let value = match args.first() {
            None => Value::Bool(true),
            Some(e) if e.kind == ExprKind::Star => Value::Bool(true),
            Some(e) => ctx.eval(e, record),
        };
        let values = match value {
            Value::Null => return,
            Value::List(items) => items,
            other => vec![other],
        };
        for v in values {
            match self {
                Accumulator::Count(n) => *n += 1,
                Accumulator::Sum(s, n) | Accumulator::Avg(s, n) => {
                    if let Some(x) = v.as_number() {
                        *s += x;
                        *n += 1;
                    }
                }
                Accumulator::Min(m) => {
                    if m.as_ref().is_none_or(|m| total_cmp(&v, m) == Ordering::Less) {
                        *m = Some(v);
                    }
                }
                Accumulator::Max(m) => {
                    if m.as_ref().is_none_or(|m| total_cmp(&v, m) == Ordering::Greater) {
                        *m = Some(v);
                    }
                }
                Accumulator::Values(values, _) => {
                    if let Some(x) = v.as_number() {
                        values.push(x);
                    }
                }
            }
        }
    }

    fn finish(self) -> Value {
        match self {
            Accumulator::Count(n) => Value::Number(n as f64),
            Accumulator::Sum(s, n) => {
                if n == 0 {
                    Value::Null
                } else {
                    Value::Number(s)
                }
            }
            Accumulator::Avg(s, n) => {
                if n == 0 {
                    Value::Null
                } else {
                    Value::Number(s / n as f64)
                }
            }
            Accumulator::Min(m) | Accumulator::Max(m) => m.unwrap_or(Value::Null),
            Accumulator::Values(mut values, p) => {
                if values.is_empty() {
                    return Value::Null;
                }
                values.sort_by(f64::total_cmp);
                // Linear interpolation between closest ranks.
                let rank = p / 100.0 * (values.len() - 1) as f64;
                let low = rank.floor() as usize;
                let high = rank.ceil() as usize;
                let fraction = rank - low as f64;
                Value::Number(values[low] + (values[high] - values[low]) * fraction)
            }
        }
    }
}
