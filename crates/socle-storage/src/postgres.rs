//! PostgreSQL backend, for syndicates that host many communes.
//!
//! Batches are written with `UNNEST` arrays so a batch of thousands of points
//! is a handful of round trips. The schema lives in the connection's
//! `current_schema()` (set `options=-csearch_path=…` in the URL to use another
//! one); tests use one schema each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use socle_domain::organisation::parse_timezone;
use socle_domain::{
    Entity, EntityFilter, EntityId, EntityMatch, NewOrganisation, Observation, ObservedValue, Organisation,
    OrganisationId, Page, RawPoint, SeriesInfo, SeriesPoints, SeriesQuery, Step, UnitCode, WriteOutcome,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Transaction};

use crate::rollup::{compare_rollups, retained_from, rollup_points, Agg, Folded};
use crate::rows::{
    attribute_from_row, attribute_to_row, from_ms, geometry_to_text, kind_name, ms, series_info, RawEntity,
    RawOrganisation,
};
use crate::{migrate, ConsistencyReport, Result, StorageStats, Store, StoreError};

#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesMeta {
    id: i64,
    entity_seq: i64,
    numeric: bool,
    tz: Tz,
}

pub(crate) type SeriesKey = (String, String);

/// Series already resolved, shared by concurrent writers.
pub(crate) type SeriesCache = Mutex<HashMap<SeriesKey, SeriesMeta>>;

pub struct PostgresStore {
    pool: Pool,
    pub(crate) series_cache: Arc<SeriesCache>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const ORG_COLUMNS: &str = "id, kind, name, code, parent_id, population, timezone, retention_days, created_at";
const ENTITY_COLUMNS: &str =
    "e.seq, e.id, e.type, e.organisation_id, e.location, e.created_at, e.modified_at, e.visibility";

fn organisation_from_row(r: &Row) -> Result<Organisation> {
    RawOrganisation {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        name: r.try_get(2)?,
        code: r.try_get(3)?,
        parent: r.try_get(4)?,
        population: r.try_get::<_, Option<i32>>(5)?.map(i64::from),
        timezone: r.try_get(6)?,
        retention_days: r.try_get::<_, Option<i32>>(7)?.map(i64::from),
        created_at: r.try_get(8)?,
    }
    .parse()
}

fn entity_from_row(r: &Row) -> Result<RawEntity> {
    Ok(RawEntity {
        seq: r.try_get(0)?,
        id: r.try_get(1)?,
        entity_type: r.try_get(2)?,
        organisation: r.try_get(3)?,
        location: r.try_get(4)?,
        created_at: r.try_get(5)?,
        modified_at: r.try_get(6)?,
        visibility: r.try_get(7)?,
    })
}

impl PostgresStore {
    /// Connects, checks the server answers, and applies migrations.
    pub async fn open(url: &str, max_connections: usize) -> Result<Self> {
        let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            // The URL may hold a password: report the kind of error only.
            StoreError::PostgresConfig(format!("invalid connection URL ({e})"))
        })?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| StoreError::PostgresConfig(e.to_string()))?;
        let store = Self { pool, series_cache: Arc::new(Mutex::new(HashMap::new())) };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Several Socle processes may start together against one database.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.socle_migrations'))", &[]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS socle_migrations (
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let current: i64 =
            tx.query_one("SELECT COALESCE(MAX(version), 0)::int8 FROM socle_migrations", &[]).await?.get(0);
        for m in migrate::pending(migrate::POSTGRES, current)? {
            tx.batch_execute(m.sql).await?;
            tx.execute(
                "INSERT INTO socle_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &ms(Utc::now())],
            )
            .await?;
            tracing::info!(version = m.version, name = m.name, "applied PostgreSQL migration");
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_attributes(client: &Object, raws: Vec<RawEntity>) -> Result<Vec<Entity>> {
        let seqs: Vec<i64> = raws.iter().map(|r| r.seq).collect();
        let rows = client
            .query(
                "SELECT entity_seq, name, kind, value, unit_code, observed_at FROM entity_attributes
                 WHERE entity_seq = ANY($1)",
                &[&seqs],
            )
            .await?;
        let mut by_seq: HashMap<i64, Vec<Row>> = HashMap::new();
        for r in rows {
            by_seq.entry(r.try_get(0)?).or_default().push(r);
        }
        let mut shares: HashMap<i64, Vec<String>> = HashMap::new();
        for r in client
            .query(
                "SELECT entity_seq, organisation_id FROM entity_shares WHERE entity_seq = ANY($1) ORDER BY 2",
                &[&seqs],
            )
            .await?
        {
            shares.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
        raws.into_iter()
            .map(|raw| {
                let attrs = by_seq.remove(&raw.seq).unwrap_or_default();
                let shared = shares.remove(&raw.seq).unwrap_or_default();
                let mut e = raw.parse()?;
                for org in shared {
                    e.shared_with.push(
                        OrganisationId::parse(&org)
                            .map_err(|err| StoreError::Corrupt(format!("share of {}: {err}", e.id)))?,
                    );
                }
                for r in attrs {
                    let name: String = r.try_get(1)?;
                    let kind: String = r.try_get(2)?;
                    let value: String = r.try_get(3)?;
                    let attr = attribute_from_row(&kind, &value, r.try_get(4)?, r.try_get(5)?)?;
                    let name = socle_domain::AttributeName::parse(&name)
                        .map_err(|err| StoreError::Corrupt(format!("attribute name of {}: {err}", e.id)))?;
                    e.attributes.insert(name, attr);
                }
                Ok(e)
            })
            .collect()
    }
}

async fn resolve_series(
    tx: &Transaction<'_>,
    cache: &SeriesCache,
    fresh: &mut HashMap<SeriesKey, SeriesMeta>,
    obs: &Observation,
) -> Result<SeriesMeta> {
    let key = (obs.entity.as_str().to_owned(), obs.attribute.as_str().to_owned());
    let cached = lock(cache).get(&key).copied();
    if let Some(m) = cached.or_else(|| fresh.get(&key).copied()) {
        return Ok(m);
    }
    let row = tx
        .query_opt(
            "SELECT e.seq, o.timezone FROM entities e JOIN organisations o ON o.id = e.organisation_id WHERE e.id = $1",
            &[&obs.entity.as_str()],
        )
        .await?
        .ok_or_else(|| StoreError::UnknownEntity(obs.entity.to_string()))?;
    let entity_seq: i64 = row.try_get(0)?;
    let tz = parse_timezone(row.try_get(1)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let numeric = matches!(obs.value, ObservedValue::Number(_));
    // DO UPDATE (a no-op) rather than DO NOTHING so RETURNING also yields an
    // existing row, including one a concurrent transaction just created.
    let row = tx
        .query_one(
            "INSERT INTO series (entity_seq, attribute, numeric, unit_code) VALUES ($1, $2, $3, $4)
             ON CONFLICT (entity_seq, attribute) DO UPDATE SET attribute = excluded.attribute
             RETURNING id, numeric",
            &[&entity_seq, &obs.attribute.as_str(), &numeric, &obs.unit_code.as_ref().map(UnitCode::as_str)],
        )
        .await?;
    let meta = SeriesMeta { id: row.try_get(0)?, entity_seq, numeric: row.try_get(1)?, tz };
    fresh.insert(key, meta);
    Ok(meta)
}

/// The observation write path, inside a caller's transaction: raw points
/// (duplicates ignored), rollups from the rows actually inserted, current
/// values. Series created here are added to `fresh`, for the caller to cache
/// once the transaction has committed.
pub(crate) async fn write_in(
    tx: &Transaction<'_>,
    cache: &SeriesCache,
    fresh: &mut HashMap<SeriesKey, SeriesMeta>,
    batch: &[Observation],
) -> Result<WriteOutcome> {
    let mut metas = Vec::with_capacity(batch.len());
    for obs in batch {
        metas.push(resolve_series(tx, cache, fresh, obs).await?);
    }
    let by_id: HashMap<i64, SeriesMeta> = metas.iter().map(|m| (m.id, *m)).collect();
    let (mut nsid, mut nt, mut nv) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tsid, mut tt, mut tv) = (Vec::new(), Vec::new(), Vec::new());
    let mut units: HashMap<i64, Option<String>> = HashMap::new();
    let mut names: HashMap<i64, &str> = HashMap::new();
    for (obs, meta) in batch.iter().zip(&metas) {
        names.insert(meta.id, obs.attribute.as_str());
        match (&obs.value, meta.numeric) {
            (ObservedValue::Number(v), true) => {
                nsid.push(meta.id);
                nt.push(ms(obs.observed_at));
                nv.push(v.get());
            }
            (ObservedValue::Text(s), false) => {
                tsid.push(meta.id);
                tt.push(ms(obs.observed_at));
                tv.push(s.as_str());
            }
            (_, existing) => {
                return Err(StoreError::ValueKindMismatch {
                    entity: obs.entity.to_string(),
                    attribute: obs.attribute.to_string(),
                    existing: kind_name(existing),
                    got: kind_name(!existing),
                })
            }
        }
        if let Some(u) = &obs.unit_code {
            units.insert(meta.id, Some(u.to_string()));
        }
    }
    let mut folded = Folded::default();
    // Latest inserted point per series: (t, JSON value).
    let mut latest: HashMap<i64, (i64, String)> = HashMap::new();
    let mut note_latest = |sid: i64, t: i64, json: String| match latest.get(&sid) {
        Some((prev, _)) if *prev >= t => {}
        _ => {
            latest.insert(sid, (t, json));
        }
    };
    let mut stored = 0u64;
    if !nsid.is_empty() {
        let rows = tx
            .query(
                "INSERT INTO observations (series_id, t, value)
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::float8[])
                     ON CONFLICT DO NOTHING RETURNING series_id, t, value",
                &[&nsid, &nt, &nv],
            )
            .await?;
        stored += rows.len() as u64;
        for r in rows {
            let (sid, t, v): (i64, i64, f64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            if let Some(meta) = by_id.get(&sid) {
                folded.add(sid, t, v, meta.tz);
            }
            note_latest(sid, t, serde_json::Value::from(v).to_string());
        }
    }
    if !tsid.is_empty() {
        let rows = tx
            .query(
                "INSERT INTO observations_text (series_id, t, value)
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[])
                     ON CONFLICT DO NOTHING RETURNING series_id, t, value",
                &[&tsid, &tt, &tv],
            )
            .await?;
        stored += rows.len() as u64;
        for r in rows {
            let (sid, t, v): (i64, i64, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            note_latest(sid, t, serde_json::Value::from(v).to_string());
        }
    }
    upsert_rollups(tx, "rollups_hour", &folded.hours).await?;
    upsert_rollups(tx, "rollups_day", &folded.days).await?;
    if !latest.is_empty() {
        let mut sids: Vec<_> = latest.keys().copied().collect();
        sids.sort_unstable();
        let (mut seq, mut name, mut value, mut unit, mut at) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for sid in sids {
            let meta = by_id[&sid];
            let (t, json) = &latest[&sid];
            seq.push(meta.entity_seq);
            name.push(names.get(&sid).copied().unwrap_or_default());
            value.push(json.clone());
            unit.push(units.get(&sid).cloned().flatten());
            at.push(*t);
        }
        tx.execute(
                "INSERT INTO entity_attributes (entity_seq, name, kind, value, unit_code, observed_at)
                 SELECT s, n, 'Property', v, u, t FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[])
                     AS x(s, n, v, u, t)
                 ON CONFLICT (entity_seq, name) DO UPDATE SET
                     kind = 'Property', value = excluded.value,
                     unit_code = COALESCE(excluded.unit_code, entity_attributes.unit_code),
                     observed_at = excluded.observed_at
                 WHERE entity_attributes.observed_at IS NULL OR entity_attributes.observed_at <= excluded.observed_at",
                &[&seq, &name, &value, &unit, &at],
            )
            .await?;
    }
    Ok(WriteOutcome { stored, duplicates: batch.len() as u64 - stored })
}

async fn upsert_rollups(tx: &Transaction<'_>, table: &str, buckets: &HashMap<(i64, i64), Agg>) -> Result<()> {
    if buckets.is_empty() {
        return Ok(());
    }
    // Sorted keys: concurrent batches lock rollup rows in the same order, so they cannot deadlock.
    let mut keys: Vec<_> = buckets.keys().copied().collect();
    keys.sort_unstable();
    let (mut sid, mut bucket, mut count, mut sum, mut min, mut max) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in keys {
        let a = buckets[&k];
        sid.push(k.0);
        bucket.push(k.1);
        count.push(a.count);
        sum.push(a.sum);
        min.push(a.min);
        max.push(a.max);
    }
    // `table` is one of two constants, never input.
    tx.execute(
        &format!(
            "INSERT INTO {table} (series_id, bucket, count, sum, min, max)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::float8[], $5::float8[], $6::float8[])
             ON CONFLICT (series_id, bucket) DO UPDATE SET
                 count = {table}.count + excluded.count, sum = {table}.sum + excluded.sum,
                 min = LEAST({table}.min, excluded.min), max = GREATEST({table}.max, excluded.max)"
        ),
        &[&sid, &bucket, &count, &sum, &min, &max],
    )
    .await?;
    Ok(())
}

async fn series_lookup(client: &Object, entity: &str, attribute: &str) -> Result<(i64, bool)> {
    let row = client
        .query_opt(
            "SELECT e.seq, s.id, s.numeric FROM entities e
             LEFT JOIN series s ON s.entity_seq = e.seq AND s.attribute = $2 WHERE e.id = $1",
            &[&entity, &attribute],
        )
        .await?
        .ok_or_else(|| StoreError::UnknownEntity(entity.to_owned()))?;
    match (row.try_get::<_, Option<i64>>(1)?, row.try_get::<_, Option<bool>>(2)?) {
        (Some(id), Some(numeric)) => Ok((id, numeric)),
        _ => Err(StoreError::UnknownSeries { entity: entity.to_owned(), attribute: attribute.to_owned() }),
    }
}

async fn rollup_rows(
    client: &Object,
    table: &str,
    series: i64,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Vec<(i64, Agg)>> {
    let rows = client
        .query(
            &format!(
                "SELECT bucket, count, sum, min, max FROM {table}
                 WHERE series_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4"
            ),
            &[&series, &from, &to, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                Agg { count: r.try_get(1)?, sum: r.try_get(2)?, min: r.try_get(3)?, max: r.try_get(4)? },
            ))
        })
        .collect()
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgresql"
    }

    async fn ping(&self) -> Result<()> {
        self.client().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn upsert_organisation(&self, org: &NewOrganisation) -> Result<Organisation> {
        let client = self.client().await?;
        if let Some(parent) = &org.parent {
            let exists: bool = client
                .query_one("SELECT EXISTS (SELECT 1 FROM organisations WHERE id = $1)", &[&parent.as_str()])
                .await?
                .get(0);
            if !exists {
                return Err(StoreError::UnknownOrganisation(parent.to_string()));
            }
        }
        let population = org.population.map(|p| i32::try_from(p).unwrap_or(i32::MAX));
        let retention = org.retention_days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO organisations ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                         code = excluded.code, parent_id = excluded.parent_id, population = excluded.population,
                         timezone = excluded.timezone, retention_days = excluded.retention_days
                     RETURNING {ORG_COLUMNS}"
                ),
                &[
                    &org.id.as_str(),
                    &org.kind.as_str(),
                    &org.name,
                    &org.code.as_str(),
                    &org.parent.as_ref().map(OrganisationId::as_str),
                    &population,
                    &org.timezone.name(),
                    &retention,
                    &ms(Utc::now()),
                ],
            )
            .await?;
        organisation_from_row(&row)
    }

    async fn organisation(&self, id: &OrganisationId) -> Result<Option<Organisation>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {ORG_COLUMNS} FROM organisations WHERE id = $1"), &[&id.as_str()])
            .await?;
        row.as_ref().map(organisation_from_row).transpose()
    }

    async fn list_organisations(&self) -> Result<Vec<Organisation>> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {ORG_COLUMNS} FROM organisations ORDER BY id"), &[]).await?;
        rows.iter().map(organisation_from_row).collect()
    }

    async fn upsert_entities(&self, entities: &[Entity]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        upsert_entities_in(&tx, entities, false).await?;
        tx.commit().await?;
        lock(&self.series_cache).clear();
        Ok(())
    }

    async fn replace_entities(&self, entities: &[Entity]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        upsert_entities_in(&tx, entities, true).await?;
        tx.commit().await?;
        lock(&self.series_cache).clear();
        Ok(())
    }

    async fn delete_entity(&self, id: &EntityId) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx.query_opt("SELECT seq FROM entities WHERE id = $1 FOR UPDATE", &[&id.as_str()]).await?
        else {
            return Ok(false);
        };
        let seq: i64 = row.get(0);
        let devices: i64 =
            tx.query_one("SELECT count(*) FROM devices WHERE entity_id = $1", &[&id.as_str()]).await?.get(0);
        if devices > 0 {
            return Err(StoreError::Conflict(format!("devices measuring {id}")));
        }
        for table in ["observations", "observations_text", "rollups_hour", "rollups_day"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE series_id IN (SELECT id FROM series WHERE entity_seq = $1)"),
                &[&seq],
            )
            .await?;
        }
        tx.execute("DELETE FROM entities WHERE seq = $1", &[&seq]).await?;
        tx.commit().await?;
        lock(&self.series_cache).clear();
        Ok(true)
    }

    async fn entity(&self, id: &EntityId) -> Result<Option<Entity>> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(&format!("SELECT {ENTITY_COLUMNS} FROM entities e WHERE e.id = $1"), &[&id.as_str()])
            .await?
        else {
            return Ok(None);
        };
        let raw = entity_from_row(&row)?;
        Ok(Self::load_attributes(&client, vec![raw]).await?.pop())
    }

    async fn query_entities(&self, filter: &EntityFilter) -> Result<Page<Entity>> {
        let client = self.client().await?;
        let Some(sel) = crate::postgres_query::selection(filter) else { return Ok(Page { total: 0, items: vec![] }) };
        let refs: Vec<&(dyn ToSql + Sync)> = sel.args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let total: i64 = client.query_one(&format!("SELECT count(*) {}", sel.from_where), &refs).await?.get(0);
        let limit = i64::from(filter.limit);
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        let mut page_refs = refs.clone();
        page_refs.push(&limit);
        page_refs.push(&offset);
        let n = refs.len();
        let rows = client
            .query(
                &format!("SELECT {ENTITY_COLUMNS} {} ORDER BY e.id LIMIT ${} OFFSET ${}", sel.from_where, n + 1, n + 2),
                &page_refs,
            )
            .await?;
        let raws = rows.iter().map(entity_from_row).collect::<Result<Vec<_>>>()?;
        let items = Self::load_attributes(&client, raws).await?;
        Ok(Page { total: u64::try_from(total).unwrap_or(0), items })
    }

    async fn match_entities(&self, filter: &EntityFilter) -> Result<Vec<EntityMatch>> {
        let client = self.client().await?;
        let Some(sel) = crate::postgres_query::selection(filter) else { return Ok(Vec::new()) };
        let refs: Vec<&(dyn ToSql + Sync)> = sel.args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&format!("SELECT e.id, {} {} ORDER BY e.id", sel.sure, sel.from_where), &refs).await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let id = EntityId::parse(&id).map_err(|e| StoreError::Corrupt(format!("entity id {id:?}: {e}")))?;
                Ok(EntityMatch { id, sure: r.try_get(1)? })
            })
            .collect()
    }

    async fn write_observations(&self, batch: &[Observation]) -> Result<WriteOutcome> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut fresh = HashMap::new();
        let outcome = write_in(&tx, &self.series_cache, &mut fresh, batch).await?;
        tx.commit().await?;
        // Only committed series may enter the cache.
        lock(&self.series_cache).extend(fresh);
        Ok(outcome)
    }

    async fn list_series(&self, entity: &EntityId) -> Result<Vec<SeriesInfo>> {
        let client = self.client().await?;
        let seq: i64 = client
            .query_opt("SELECT seq FROM entities WHERE id = $1", &[&entity.as_str()])
            .await?
            .ok_or_else(|| StoreError::UnknownEntity(entity.to_string()))?
            .get(0);
        let rows = client
            .query(
                "SELECT s.attribute, s.numeric, s.unit_code,
                    CASE WHEN s.numeric THEN (SELECT min(t) FROM observations WHERE series_id = s.id)
                         ELSE (SELECT min(t) FROM observations_text WHERE series_id = s.id) END,
                    CASE WHEN s.numeric THEN (SELECT max(t) FROM observations WHERE series_id = s.id)
                         ELSE (SELECT max(t) FROM observations_text WHERE series_id = s.id) END
                 FROM series s WHERE s.entity_seq = $1 ORDER BY s.attribute",
                &[&seq],
            )
            .await?;
        rows.iter()
            .map(|r| {
                series_info(entity.as_str(), r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)
            })
            .collect()
    }

    async fn series(&self, q: &SeriesQuery) -> Result<SeriesPoints> {
        let client = self.client().await?;
        let (series, numeric) = series_lookup(&client, q.entity.as_str(), q.attribute.as_str()).await?;
        let (from, to, limit) = (ms(q.range.from()), ms(q.range.to()), i64::from(q.limit));
        match q.step {
            Step::Raw => {
                let sql = if numeric {
                    "SELECT t, to_jsonb(value) FROM observations WHERE series_id = $1 AND t >= $2 AND t < $3 ORDER BY t LIMIT $4"
                } else {
                    "SELECT t, to_jsonb(value) FROM observations_text WHERE series_id = $1 AND t >= $2 AND t < $3 ORDER BY t LIMIT $4"
                };
                let rows = client.query(sql, &[&series, &from, &to, &limit]).await?;
                let points = rows
                    .iter()
                    .map(|r| Ok(RawPoint { t: from_ms(r.try_get(0)?)?, value: r.try_get(1)? }))
                    .collect::<Result<Vec<_>>>()?;
                Ok(SeriesPoints::Raw(points))
            }
            Step::Hour | Step::Day => {
                if !numeric {
                    return Err(StoreError::NotNumeric {
                        entity: q.entity.to_string(),
                        attribute: q.attribute.to_string(),
                    });
                }
                let table = if q.step == Step::Hour { "rollups_hour" } else { "rollups_day" };
                Ok(SeriesPoints::Buckets(rollup_points(rollup_rows(&client, table, series, from, to, limit).await?)?))
            }
        }
    }

    async fn apply_retention(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut client = self.client().await?;
        let orgs =
            client.query("SELECT id, retention_days FROM organisations WHERE retention_days IS NOT NULL", &[]).await?;
        let mut deleted = 0;
        for org in orgs {
            let id: String = org.try_get(0)?;
            let days: i32 = org.try_get(1)?;
            let cutoff = ms(now) - i64::from(days) * 86_400_000;
            let tx = client.transaction().await?;
            for table in ["observations", "observations_text"] {
                deleted += tx
                    .execute(
                        &format!(
                            "DELETE FROM {table} WHERE t < $2 AND series_id IN (
                                 SELECT s.id FROM series s JOIN entities e ON e.seq = s.entity_seq
                                 WHERE e.organisation_id = $1)"
                        ),
                        &[&id, &cutoff],
                    )
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(deleted)
    }

    async fn check_consistency(&self) -> Result<ConsistencyReport> {
        let client = self.client().await?;
        let now = Utc::now();
        let series = client
            .query(
                "SELECT s.id, e.id, s.attribute, o.timezone, o.retention_days FROM series s
                 JOIN entities e ON e.seq = s.entity_seq JOIN organisations o ON o.id = e.organisation_id
                 WHERE s.numeric ORDER BY s.id",
                &[],
            )
            .await?;
        let mut report = ConsistencyReport::default();
        for s in series {
            let sid: i64 = s.try_get(0)?;
            let entity: String = s.try_get(1)?;
            let attribute: String = s.try_get(2)?;
            let tz = parse_timezone(s.try_get(3)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let from = retained_from(now, s.try_get::<_, Option<i32>>(4)?.map(i64::from), tz);
            let mut folded = Folded::default();
            for r in client
                .query("SELECT t, value FROM observations WHERE series_id = $1 AND t >= $2", &[&sid, &from])
                .await?
            {
                folded.add(sid, r.try_get(0)?, r.try_get(1)?, tz);
            }
            let hours: HashMap<i64, Agg> = folded.hours.into_iter().map(|((_, b), a)| (b, a)).collect();
            let days: HashMap<i64, Agg> = folded.days.into_iter().map(|((_, b), a)| (b, a)).collect();
            let stored_h = rollup_rows(&client, "rollups_hour", sid, from, i64::MAX, i64::MAX).await?;
            let stored_d = rollup_rows(&client, "rollups_day", sid, from, i64::MAX, i64::MAX).await?;
            compare_rollups(&entity, &attribute, &hours, &stored_h, "hourly", &mut report)?;
            compare_rollups(&entity, &attribute, &days, &stored_d, "daily", &mut report)?;
            report.series_checked += 1;
        }
        Ok(report)
    }

    async fn stats(&self) -> Result<StorageStats> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT
                    (SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = current_schema() AND c.relkind = 'r'),
                    (SELECT count(*) FROM entities),
                    (SELECT count(*) FROM series)",
                &[],
            )
            .await?;
        let get = |i: usize| -> Result<u64> { Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0)) };
        Ok(StorageStats { bytes: get(0)?, entities: get(1)?, series: get(2)? })
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        Ok(client.query_opt("SELECT value FROM meta WHERE key = $1", &[&key]).await?.map(|r| r.get(0)))
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await?;
        Ok(())
    }
}

/// Writes entities in `tx`. With `replace`, attributes absent from an
/// entity are removed and an entity of another organisation is refused
/// (NGSI-LD writes must never move an entity between tenants).
async fn upsert_entities_in(tx: &tokio_postgres::Transaction<'_>, entities: &[Entity], replace: bool) -> Result<()> {
    if replace {
        for e in entities {
            let found = tx
                .query_opt("SELECT seq, organisation_id FROM entities WHERE id = $1 FOR UPDATE", &[&e.id.as_str()])
                .await?;
            if let Some(row) = found {
                let (seq, org): (i64, String) = (row.get(0), row.get(1));
                if org != e.organisation.as_str() {
                    return Err(StoreError::Conflict(e.id.to_string()));
                }
                tx.execute("DELETE FROM entity_attributes WHERE entity_seq = $1", &[&seq]).await?;
            }
        }
    }
    let now = ms(Utc::now());
    let org_exists = tx.prepare("SELECT EXISTS (SELECT 1 FROM organisations WHERE id = $1)").await?;
    let upsert = tx
        .prepare(
            "INSERT INTO entities (id, type, organisation_id, location, bbox, created_at, modified_at, visibility)
             VALUES ($1, $2, $3, $4,
                     CASE WHEN $5::float8 IS NULL THEN NULL
                          ELSE box(point($5::float8, $6::float8), point($7::float8, $8::float8)) END,
                     $9, $9, $10)
             ON CONFLICT (id) DO UPDATE SET type = excluded.type, organisation_id = excluded.organisation_id,
                 location = excluded.location, bbox = excluded.bbox, modified_at = excluded.modified_at,
                 visibility = excluded.visibility
             RETURNING seq",
        )
        .await?;
    let attr = tx
        .prepare(
            "INSERT INTO entity_attributes (entity_seq, name, kind, value, unit_code, observed_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (entity_seq, name) DO UPDATE SET kind = excluded.kind, value = excluded.value,
                 unit_code = excluded.unit_code, observed_at = excluded.observed_at",
        )
        .await?;
    let mut known_orgs = std::collections::HashSet::new();
    for e in entities {
        if !known_orgs.contains(e.organisation.as_str()) {
            let exists: bool = tx.query_one(&org_exists, &[&e.organisation.as_str()]).await?.get(0);
            if !exists {
                return Err(StoreError::UnknownOrganisation(e.organisation.to_string()));
            }
            known_orgs.insert(e.organisation.as_str());
        }
        let b = e.location.as_ref().map(|g| g.bbox());
        let seq: i64 = tx
            .query_one(
                &upsert,
                &[
                    &e.id.as_str(),
                    &e.entity_type.as_str(),
                    &e.organisation.as_str(),
                    &e.location.as_ref().map(geometry_to_text),
                    &b.map(|b| b.min_lon),
                    &b.map(|b| b.min_lat),
                    &b.map(|b| b.max_lon),
                    &b.map(|b| b.max_lat),
                    &now,
                    &e.visibility.as_str(),
                ],
            )
            .await?
            .get(0);
        tx.execute("DELETE FROM entity_shares WHERE entity_seq = $1", &[&seq]).await?;
        for org in &e.shared_with {
            tx.execute(
                "INSERT INTO entity_shares (entity_seq, organisation_id) VALUES ($1, $2)",
                &[&seq, &org.as_str()],
            )
            .await?;
        }
        for (name, a) in &e.attributes {
            let row = attribute_to_row(a);
            tx.execute(&attr, &[&seq, &name.as_str(), &row.kind, &row.value, &row.unit_code, &row.observed_at]).await?;
        }
    }
    Ok(())
}

/// `WHERE` conditions and their arguments (`$1`…), shared by a count and a page query.
#[derive(Default)]
pub(crate) struct Conditions {
    conds: Vec<String>,
    args: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Conditions {
    pub(crate) fn push(&mut self, cond: impl Fn(usize) -> String, arg: Box<dyn ToSql + Sync + Send>) {
        self.args.push(arg);
        self.conds.push(cond(self.args.len()));
    }
    pub(crate) fn orgs(&mut self, orgs: &Option<Vec<OrganisationId>>) {
        if let Some(orgs) = orgs {
            let list: Vec<String> = orgs.iter().map(|o| o.to_string()).collect();
            self.push(|n| format!("organisation_id = ANY(${n})"), Box::new(list));
        }
    }
    /// Adds a condition without argument.
    pub(crate) fn require(&mut self, cond: &str) {
        self.conds.push(cond.to_owned());
    }

    /// Adds a condition built by `build`, which takes its placeholders from the
    /// given numbering (`$n` after the arguments already there) and returns the
    /// values bound to them in order; `None` adds nothing.
    pub(crate) fn push_numbered(
        &mut self,
        build: impl FnOnce(&mut dyn FnMut() -> String) -> Option<(String, Vec<String>)>,
    ) {
        let mut next = self.args.len();
        if let Some((cond, values)) = build(&mut || {
            next += 1;
            format!("${next}")
        }) {
            self.conds.push(cond);
            self.args.extend(values.into_iter().map(|v| Box::new(v) as Box<dyn ToSql + Sync + Send>));
        }
    }

    pub(crate) fn clause(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }
    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect()
    }

    /// The count of matching rows of `table` and one page of them, ordered by `order`.
    pub(crate) async fn select_page(
        &self,
        client: &Object,
        table: &str,
        columns: &str,
        order: &str,
        (limit, offset): (u32, u64),
    ) -> Result<(u64, Vec<Row>)> {
        let w = self.clause();
        let total: i64 =
            client.query_one(&format!("SELECT count(*) FROM {table}{w}"), &self.params()).await?.try_get(0)?;
        let (limit, offset) = (i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX));
        let n = self.args.len();
        let mut params = self.params();
        params.push(&limit);
        params.push(&offset);
        let sql = format!("SELECT {columns} FROM {table}{w} ORDER BY {order} LIMIT ${} OFFSET ${}", n + 1, n + 2);
        let rows = client.query(&sql, &params).await?;
        Ok((u64::try_from(total).unwrap_or(0), rows))
    }
}
