//! Embedded SQLite backend: one file, WAL journal, one writer connection and
//! a small pool of readers, so reads never wait for a long batch write.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};
use socle_domain::organisation::parse_timezone;
use socle_domain::{
    Entity, EntityFilter, EntityId, EntityMatch, NewOrganisation, Observation, ObservedValue, Organisation,
    OrganisationId, Page, RawPoint, SeriesInfo, SeriesPoints, SeriesQuery, Step, UnitCode, WriteOutcome,
};

use crate::rollup::{compare_rollups, retained_from, rollup_points, Agg, Folded};
use crate::rows::{
    attribute_from_row, attribute_to_row, from_ms, geometry_to_text, kind_name, ms, series_info, RawEntity,
    RawOrganisation,
};
use crate::{migrate, ConsistencyReport, Result, StorageStats, Store, StoreError};

type Pool = r2d2::Pool<SqliteConnectionManager>;

/// What the write path needs to know of a series, cached after first use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesMeta {
    id: i64,
    entity_seq: i64,
    numeric: bool,
    tz: Tz,
}

pub(crate) type SeriesKey = (String, String);

pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Pool,
    pub(crate) series_cache: Arc<SeriesCache>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // FULL: an acknowledged write survives a power cut, not only a crash.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;",
    )
}

/// A UNIQUE or PRIMARY KEY constraint refused the row: the caller turns it
/// into `StoreError::Conflict` with its own wording.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite half-written (the
    // transaction rolls back on drop), so the connection is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Io { path: dir.display().to_string(), source })?;
        }
        let p = path.clone();
        let writer = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let mut conn = Connection::open(&p)?;
            configure(&conn)?;
            apply_migrations(&mut conn)?;
            Ok(conn)
        })
        .await??;
        let manager = SqliteConnectionManager::file(&path).with_init(|c| {
            configure(c)?;
            c.execute_batch("PRAGMA query_only = ON;")
        });
        let readers = r2d2::Pool::builder().max_size(4).build(manager)?;
        Ok(Self {
            path,
            writer: Arc::new(Mutex::new(writer)),
            readers,
            series_cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&writer))).await?
    }

    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await?
    }
}

fn apply_migrations(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS socle_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM socle_migrations", [], |r| r.get(0))?;
    for m in migrate::pending(migrate::SQLITE, current)? {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO socle_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, ms(Utc::now())],
        )?;
        tx.commit()?;
        tracing::info!(version = m.version, name = m.name, "applied SQLite migration");
    }
    Ok(())
}

fn organisation_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawOrganisation> {
    Ok(RawOrganisation {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        code: r.get(3)?,
        parent: r.get(4)?,
        population: r.get(5)?,
        timezone: r.get(6)?,
        retention_days: r.get(7)?,
        created_at: r.get(8)?,
    })
}

const ORG_COLUMNS: &str = "id, kind, name, code, parent_id, population, timezone, retention_days, created_at";

fn entity_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntity> {
    Ok(RawEntity {
        seq: r.get(0)?,
        id: r.get(1)?,
        entity_type: r.get(2)?,
        organisation: r.get(3)?,
        location: r.get(4)?,
        created_at: r.get(5)?,
        modified_at: r.get(6)?,
        visibility: r.get(7)?,
    })
}

fn load_attributes(conn: &Connection, raw: RawEntity) -> Result<Entity> {
    let seq = raw.seq;
    let mut entity = raw.parse()?;
    let mut stmt = conn.prepare_cached(
        "SELECT name, kind, value, unit_code, observed_at FROM entity_attributes WHERE entity_seq = ?1",
    )?;
    let mut rows = stmt.query([seq])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let kind: String = r.get(1)?;
        let value: String = r.get(2)?;
        let attr = attribute_from_row(&kind, &value, r.get(3)?, r.get(4)?)?;
        let name = socle_domain::AttributeName::parse(&name)
            .map_err(|e| StoreError::Corrupt(format!("attribute name of {}: {e}", entity.id)))?;
        entity.attributes.insert(name, attr);
    }
    let mut shares =
        conn.prepare_cached("SELECT organisation_id FROM entity_shares WHERE entity_seq = ?1 ORDER BY 1")?;
    for org in shares.query_map([seq], |r| r.get::<_, String>(0))? {
        let org = org?;
        entity.shared_with.push(
            OrganisationId::parse(&org).map_err(|e| StoreError::Corrupt(format!("share of {}: {e}", entity.id)))?,
        );
    }
    Ok(entity)
}

/// Resolves (creating if needed) the series of an observation inside the write transaction.
fn resolve_series(
    tx: &Transaction<'_>,
    cache: &HashMap<SeriesKey, SeriesMeta>,
    fresh: &mut HashMap<SeriesKey, SeriesMeta>,
    obs: &Observation,
) -> Result<SeriesMeta> {
    let key = (obs.entity.as_str().to_owned(), obs.attribute.as_str().to_owned());
    if let Some(m) = cache.get(&key).or_else(|| fresh.get(&key)) {
        return Ok(*m);
    }
    let numeric = matches!(obs.value, ObservedValue::Number(_));
    let found: Option<(i64, String, Option<i64>, Option<bool>)> = tx
        .prepare_cached(
            "SELECT e.seq, o.timezone, s.id, s.numeric FROM entities e
             JOIN organisations o ON o.id = e.organisation_id
             LEFT JOIN series s ON s.entity_seq = e.seq AND s.attribute = ?2
             WHERE e.id = ?1",
        )?
        .query_row(params![obs.entity.as_str(), obs.attribute.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let (entity_seq, tz, series_id, series_numeric) =
        found.ok_or_else(|| StoreError::UnknownEntity(obs.entity.to_string()))?;
    let tz = parse_timezone(&tz).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let meta = match (series_id, series_numeric) {
        (Some(id), Some(n)) => SeriesMeta { id, entity_seq, numeric: n, tz },
        _ => {
            let id: i64 = tx
                .prepare_cached(
                    "INSERT INTO series (entity_seq, attribute, numeric, unit_code) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                )?
                .query_row(
                    params![entity_seq, obs.attribute.as_str(), numeric, obs.unit_code.as_ref().map(UnitCode::as_str)],
                    |r| r.get(0),
                )?;
            SeriesMeta { id, entity_seq, numeric, tz }
        }
    };
    fresh.insert(key, meta);
    Ok(meta)
}

/// The series cache, shared by the writer's transactions.
pub(crate) type SeriesCache = Mutex<HashMap<SeriesKey, SeriesMeta>>;

fn write_batch(conn: &mut Connection, cache: &SeriesCache, batch: &[Observation]) -> Result<WriteOutcome> {
    // Held for the whole write: only the writer connection (itself behind a
    // mutex) uses the cache, so this never waits.
    let mut cache = lock(cache);
    let tx = conn.transaction()?;
    let mut fresh = HashMap::new();
    let outcome = write_in(&tx, &cache, &mut fresh, batch)?;
    tx.commit()?;
    // Only committed series may enter the cache: a rolled-back id would be reused.
    cache.extend(fresh);
    Ok(outcome)
}

/// The observation write path, inside a caller's transaction: raw points
/// (duplicates ignored), rollups from the rows actually inserted, current
/// values. Series created here are added to `fresh`, for the caller to cache
/// once the transaction has committed.
pub(crate) fn write_in(
    tx: &Transaction<'_>,
    cache: &HashMap<SeriesKey, SeriesMeta>,
    fresh: &mut HashMap<SeriesKey, SeriesMeta>,
    batch: &[Observation],
) -> Result<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let mut folded = Folded::default();
    // Latest inserted point per series, to refresh the entity's current value.
    let mut latest: HashMap<i64, (SeriesMeta, &Observation)> = HashMap::new();
    {
        let mut insert_num = tx.prepare_cached(
            "INSERT INTO observations (series_id, t, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?;
        let mut insert_text = tx.prepare_cached(
            "INSERT INTO observations_text (series_id, t, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?;
        for obs in batch {
            let meta = resolve_series(tx, cache, fresh, obs)?;
            let t = ms(obs.observed_at);
            let inserted = match (&obs.value, meta.numeric) {
                (ObservedValue::Number(v), true) => {
                    let n = insert_num.execute(params![meta.id, t, v.get()])?;
                    if n == 1 {
                        folded.add(meta.id, t, v.get(), meta.tz);
                    }
                    n
                }
                (ObservedValue::Text(s), false) => insert_text.execute(params![meta.id, t, s])?,
                (_, existing) => {
                    return Err(StoreError::ValueKindMismatch {
                        entity: obs.entity.to_string(),
                        attribute: obs.attribute.to_string(),
                        existing: kind_name(existing),
                        got: kind_name(!existing),
                    })
                }
            };
            if inserted == 1 {
                outcome.stored += 1;
                match latest.get(&meta.id) {
                    Some((_, prev)) if prev.observed_at >= obs.observed_at => {}
                    _ => {
                        latest.insert(meta.id, (meta, obs));
                    }
                }
            } else {
                outcome.duplicates += 1;
            }
        }
    }
    upsert_rollups(tx, "rollups_hour", &folded.hours)?;
    upsert_rollups(tx, "rollups_day", &folded.days)?;
    {
        let mut current = tx.prepare_cached(
            "INSERT INTO entity_attributes (entity_seq, name, kind, value, unit_code, observed_at)
             VALUES (?1, ?2, 'Property', ?3, ?4, ?5)
             ON CONFLICT (entity_seq, name) DO UPDATE SET
                 kind = 'Property', value = excluded.value,
                 unit_code = COALESCE(excluded.unit_code, entity_attributes.unit_code),
                 observed_at = excluded.observed_at
             WHERE entity_attributes.observed_at IS NULL OR entity_attributes.observed_at <= excluded.observed_at",
        )?;
        for (meta, obs) in latest.values() {
            current.execute(params![
                meta.entity_seq,
                obs.attribute.as_str(),
                obs.value.to_json().to_string(),
                obs.unit_code.as_ref().map(UnitCode::as_str),
                ms(obs.observed_at)
            ])?;
        }
    }
    Ok(outcome)
}

fn upsert_rollups(tx: &Transaction<'_>, table: &str, buckets: &HashMap<(i64, i64), Agg>) -> Result<()> {
    // `table` is one of two constants, never input.
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO {table} (series_id, bucket, count, sum, min, max) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (series_id, bucket) DO UPDATE SET
             count = count + excluded.count, sum = sum + excluded.sum,
             min = MIN(min, excluded.min), max = MAX(max, excluded.max)"
    ))?;
    let mut keys: Vec<_> = buckets.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let a = buckets[&k];
        stmt.execute(params![k.0, k.1, a.count, a.sum, a.min, a.max])?;
    }
    Ok(())
}

fn series_lookup(conn: &Connection, entity: &str, attribute: &str) -> Result<(i64, bool)> {
    let row: Option<(i64, Option<i64>, Option<bool>)> = conn
        .prepare_cached(
            "SELECT e.seq, s.id, s.numeric FROM entities e
             LEFT JOIN series s ON s.entity_seq = e.seq AND s.attribute = ?2 WHERE e.id = ?1",
        )?
        .query_row(params![entity, attribute], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        None => Err(StoreError::UnknownEntity(entity.to_owned())),
        Some((_, Some(id), Some(numeric))) => Ok((id, numeric)),
        Some(_) => Err(StoreError::UnknownSeries { entity: entity.to_owned(), attribute: attribute.to_owned() }),
    }
}

fn rollup_rows(conn: &Connection, table: &str, series: i64, from: i64, to: i64, limit: i64) -> Result<Vec<(i64, Agg)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT bucket, count, sum, min, max FROM {table}
         WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![series, from, to, limit], |r| {
        Ok((r.get(0)?, Agg { count: r.get(1)?, sum: r.get(2)?, min: r.get(3)?, max: r.get(4)? }))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }

    async fn upsert_organisation(&self, org: &NewOrganisation) -> Result<Organisation> {
        let org = org.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            if let Some(parent) = &org.parent {
                let exists: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM organisations WHERE id = ?1)",
                    [parent.as_str()],
                    |r| r.get(0),
                )?;
                if !exists {
                    return Err(StoreError::UnknownOrganisation(parent.to_string()));
                }
            }
            let raw = tx.query_row(
                &format!(
                    "INSERT INTO organisations ({ORG_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                         code = excluded.code, parent_id = excluded.parent_id, population = excluded.population,
                         timezone = excluded.timezone, retention_days = excluded.retention_days
                     RETURNING {ORG_COLUMNS}"
                ),
                params![
                    org.id.as_str(),
                    org.kind.as_str(),
                    org.name,
                    org.code.as_str(),
                    org.parent.as_ref().map(OrganisationId::as_str),
                    org.population,
                    org.timezone.name(),
                    org.retention_days,
                    ms(Utc::now())
                ],
                organisation_from_row,
            )?;
            tx.commit()?;
            raw.parse()
        })
        .await
    }

    async fn organisation(&self, id: &OrganisationId) -> Result<Option<Organisation>> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM organisations WHERE id = ?1"))?
                .query_row([id], organisation_from_row)
                .optional()?
                .map(RawOrganisation::parse)
                .transpose()
        })
        .await
    }

    async fn list_organisations(&self) -> Result<Vec<Organisation>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM organisations ORDER BY id"))?;
            let raws = stmt.query_map([], organisation_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            raws.into_iter().map(RawOrganisation::parse).collect()
        })
        .await
    }

    async fn upsert_entities(&self, entities: &[Entity]) -> Result<()> {
        let entities = entities.to_vec();
        let cache = self.series_cache.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            upsert_entities_in(&tx, &entities, false)?;
            tx.commit()?;
            // The owner (and so the time zone) of a cached series may have changed.
            lock(&cache).clear();
            Ok(())
        })
        .await
    }

    async fn replace_entities(&self, entities: &[Entity]) -> Result<()> {
        let entities = entities.to_vec();
        let cache = self.series_cache.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            upsert_entities_in(&tx, &entities, true)?;
            tx.commit()?;
            lock(&cache).clear();
            Ok(())
        })
        .await
    }

    async fn delete_entity(&self, id: &EntityId) -> Result<bool> {
        let id = id.clone();
        let cache = self.series_cache.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            let Some(seq) = tx
                .query_row("SELECT seq FROM entities WHERE id = ?1", [id.as_str()], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Ok(false);
            };
            let devices: i64 =
                tx.query_row("SELECT count(*) FROM devices WHERE entity_id = ?1", [id.as_str()], |r| r.get(0))?;
            if devices > 0 {
                return Err(StoreError::Conflict(format!("devices measuring {id}")));
            }
            for table in ["observations", "observations_text", "rollups_hour", "rollups_day"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE series_id IN (SELECT id FROM series WHERE entity_seq = ?1)"),
                    [seq],
                )?;
            }
            tx.execute("DELETE FROM entities_bbox WHERE seq = ?1", [seq])?;
            tx.execute("DELETE FROM entities WHERE seq = ?1", [seq])?;
            tx.commit()?;
            lock(&cache).clear();
            Ok(true)
        })
        .await
    }

    async fn entity(&self, id: &EntityId) -> Result<Option<Entity>> {
        let id = id.to_string();
        self.read(move |c| {
            let raw = c
                .prepare_cached(
                    "SELECT seq, id, type, organisation_id, location, created_at, modified_at, visibility FROM entities WHERE id = ?1",
                )?
                .query_row([id], entity_from_row)
                .optional()?;
            raw.map(|r| load_attributes(c, r)).transpose()
        })
        .await
    }

    async fn query_entities(&self, filter: &EntityFilter) -> Result<Page<Entity>> {
        let filter = filter.clone();
        self.read(move |c| {
            let Some(sel) = crate::sqlite_query::selection(&filter) else {
                return Ok(Page { total: 0, items: vec![] });
            };
            let total: i64 = c
                .prepare_cached(&format!("SELECT count(*) {}", sel.from_where))?
                .query_row(params_from_iter(sel.args.iter()), |r| r.get(0))?;
            let mut args = sel.args;
            args.push(i64::from(filter.limit).into());
            args.push(i64::try_from(filter.offset).unwrap_or(i64::MAX).into());
            let n = args.len();
            let mut stmt = c.prepare_cached(&format!(
                "SELECT e.seq, e.id, e.type, e.organisation_id, e.location, e.created_at, e.modified_at, e.visibility
                 {} ORDER BY e.id LIMIT ?{} OFFSET ?{n}",
                sel.from_where,
                n - 1
            ))?;
            let raws = stmt
                .query_map(params_from_iter(args.iter()), entity_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let items = raws.into_iter().map(|r| load_attributes(c, r)).collect::<Result<Vec<_>>>()?;
            Ok(Page { total: u64::try_from(total).unwrap_or(0), items })
        })
        .await
    }

    async fn match_entities(&self, filter: &EntityFilter) -> Result<Vec<EntityMatch>> {
        let filter = filter.clone();
        self.read(move |c| {
            let Some(sel) = crate::sqlite_query::selection(&filter) else { return Ok(Vec::new()) };
            let mut stmt = c.prepare_cached(&format!("SELECT e.id, {} {} ORDER BY e.id", sel.sure, sel.from_where))?;
            let rows = stmt
                .query_map(params_from_iter(sel.args.iter()), |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, sure)| {
                    let id = EntityId::parse(&id).map_err(|e| StoreError::Corrupt(format!("entity id {id:?}: {e}")))?;
                    Ok(EntityMatch { id, sure })
                })
                .collect()
        })
        .await
    }

    async fn write_observations(&self, batch: &[Observation]) -> Result<WriteOutcome> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let batch = batch.to_vec();
        let cache = self.series_cache.clone();
        self.write(move |c| write_batch(c, &cache, &batch)).await
    }

    async fn list_series(&self, entity: &EntityId) -> Result<Vec<SeriesInfo>> {
        let id = entity.to_string();
        self.read(move |c| {
            let seq: Option<i64> =
                c.query_row("SELECT seq FROM entities WHERE id = ?1", [&id], |r| r.get(0)).optional()?;
            let seq = seq.ok_or_else(|| StoreError::UnknownEntity(id.clone()))?;
            let mut stmt = c.prepare_cached(
                "SELECT s.attribute, s.numeric, s.unit_code,
                    CASE WHEN s.numeric THEN (SELECT min(t) FROM observations WHERE series_id = s.id)
                         ELSE (SELECT min(t) FROM observations_text WHERE series_id = s.id) END,
                    CASE WHEN s.numeric THEN (SELECT max(t) FROM observations WHERE series_id = s.id)
                         ELSE (SELECT max(t) FROM observations_text WHERE series_id = s.id) END
                 FROM series s WHERE s.entity_seq = ?1 ORDER BY s.attribute",
            )?;
            let rows = stmt
                .query_map([seq], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|(a, n, u, f, l)| series_info(&id, a, n, u, f, l)).collect()
        })
        .await
    }

    async fn series(&self, q: &SeriesQuery) -> Result<SeriesPoints> {
        let q = q.clone();
        self.read(move |c| {
            let (series, numeric) = series_lookup(c, q.entity.as_str(), q.attribute.as_str())?;
            let (from, to, limit) = (ms(q.range.from()), ms(q.range.to()), i64::from(q.limit));
            match q.step {
                Step::Raw => {
                    let table = if numeric { "observations" } else { "observations_text" };
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT t, value FROM {table} WHERE series_id = ?1 AND t >= ?2 AND t < ?3 ORDER BY t LIMIT ?4"
                    ))?;
                    let mut rows = stmt.query(params![series, from, to, limit])?;
                    let mut points = Vec::new();
                    while let Some(r) = rows.next()? {
                        let value = if numeric {
                            serde_json::Value::from(r.get::<_, f64>(1)?)
                        } else {
                            serde_json::Value::from(r.get::<_, String>(1)?)
                        };
                        points.push(RawPoint { t: from_ms(r.get(0)?)?, value });
                    }
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
                    Ok(SeriesPoints::Buckets(rollup_points(rollup_rows(c, table, series, from, to, limit)?)?))
                }
            }
        })
        .await
    }

    async fn apply_retention(&self, now: DateTime<Utc>) -> Result<u64> {
        self.write(move |c| {
            let orgs: Vec<(String, i64)> = c
                .prepare("SELECT id, retention_days FROM organisations WHERE retention_days IS NOT NULL")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut deleted = 0u64;
            for (org, days) in orgs {
                let cutoff = ms(now) - days * 86_400_000;
                let tx = c.transaction()?;
                for table in ["observations", "observations_text"] {
                    deleted += tx.execute(
                        &format!(
                            "DELETE FROM {table} WHERE t < ?2 AND series_id IN (
                                 SELECT s.id FROM series s JOIN entities e ON e.seq = s.entity_seq
                                 WHERE e.organisation_id = ?1)"
                        ),
                        params![org, cutoff],
                    )? as u64;
                }
                tx.commit()?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn check_consistency(&self) -> Result<ConsistencyReport> {
        self.read(|c| {
            let now = Utc::now();
            let series: Vec<(i64, String, String, String, Option<i64>)> = c
                .prepare(
                    "SELECT s.id, e.id, s.attribute, o.timezone, o.retention_days FROM series s
                     JOIN entities e ON e.seq = s.entity_seq JOIN organisations o ON o.id = e.organisation_id
                     WHERE s.numeric ORDER BY s.id",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut report = ConsistencyReport::default();
            for (sid, entity, attribute, tz, retention) in series {
                let tz = parse_timezone(&tz).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let from = retained_from(now, retention, tz);
                let mut folded = Folded::default();
                let mut stmt =
                    c.prepare_cached("SELECT t, value FROM observations WHERE series_id = ?1 AND t >= ?2")?;
                let mut rows = stmt.query(params![sid, from])?;
                while let Some(r) = rows.next()? {
                    folded.add(sid, r.get(0)?, r.get(1)?, tz);
                }
                let hours: HashMap<i64, Agg> = folded.hours.into_iter().map(|((_, b), a)| (b, a)).collect();
                let days: HashMap<i64, Agg> = folded.days.into_iter().map(|((_, b), a)| (b, a)).collect();
                let stored_h = rollup_rows(c, "rollups_hour", sid, from, i64::MAX, i64::MAX)?;
                let stored_d = rollup_rows(c, "rollups_day", sid, from, i64::MAX, i64::MAX)?;
                compare_rollups(&entity, &attribute, &hours, &stored_h, "hourly", &mut report)?;
                compare_rollups(&entity, &attribute, &days, &stored_d, "daily", &mut report)?;
                report.series_checked += 1;
            }
            Ok(report)
        })
        .await
    }

    async fn stats(&self) -> Result<StorageStats> {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        self.read(move |c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let page_size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            let entities: i64 = c.query_row("SELECT count(*) FROM entities", [], |r| r.get(0))?;
            let series: i64 = c.query_row("SELECT count(*) FROM series", [], |r| r.get(0))?;
            Ok(StorageStats {
                bytes: u64::try_from(pages * page_size).unwrap_or(0) + wal_bytes,
                entities: u64::try_from(entities).unwrap_or(0),
                series: u64::try_from(series).unwrap_or(0),
            })
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |c| Ok(c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?))
            .await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
        .await
    }
}

/// Writes entities in `tx`. With `replace`, attributes absent from an
/// entity are removed and an entity of another organisation is refused
/// (NGSI-LD writes must never move an entity between tenants).
fn upsert_entities_in(tx: &Transaction<'_>, entities: &[Entity], replace: bool) -> Result<()> {
    let now = ms(Utc::now());
    if replace {
        let mut owner = tx.prepare_cached("SELECT seq, organisation_id FROM entities WHERE id = ?1")?;
        let mut clear = tx.prepare_cached("DELETE FROM entity_attributes WHERE entity_seq = ?1")?;
        for e in entities {
            let found =
                owner.query_row([e.id.as_str()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).optional()?;
            if let Some((seq, org)) = found {
                if org != e.organisation.as_str() {
                    return Err(StoreError::Conflict(e.id.to_string()));
                }
                clear.execute([seq])?;
            }
        }
    }
    {
        let mut org_exists = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM organisations WHERE id = ?1)")?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO entities (id, type, organisation_id, location, created_at, modified_at, visibility)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET type = excluded.type, organisation_id = excluded.organisation_id,
                 location = excluded.location, modified_at = excluded.modified_at,
                 visibility = excluded.visibility
             RETURNING seq",
        )?;
        let mut bbox_set = tx.prepare_cached(
            "INSERT OR REPLACE INTO entities_bbox (seq, min_lon, max_lon, min_lat, max_lat) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut bbox_del = tx.prepare_cached("DELETE FROM entities_bbox WHERE seq = ?1")?;
        let mut shares_del = tx.prepare_cached("DELETE FROM entity_shares WHERE entity_seq = ?1")?;
        let mut shares_add =
            tx.prepare_cached("INSERT INTO entity_shares (entity_seq, organisation_id) VALUES (?1, ?2)")?;
        let mut attr = tx.prepare_cached(
            "INSERT INTO entity_attributes (entity_seq, name, kind, value, unit_code, observed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (entity_seq, name) DO UPDATE SET kind = excluded.kind, value = excluded.value,
                 unit_code = excluded.unit_code, observed_at = excluded.observed_at",
        )?;
        for e in entities {
            if !org_exists.query_row([e.organisation.as_str()], |r| r.get::<_, bool>(0))? {
                return Err(StoreError::UnknownOrganisation(e.organisation.to_string()));
            }
            let seq: i64 = upsert.query_row(
                params![
                    e.id.as_str(),
                    e.entity_type.as_str(),
                    e.organisation.as_str(),
                    e.location.as_ref().map(geometry_to_text),
                    now,
                    e.visibility.as_str()
                ],
                |r| r.get(0),
            )?;
            match &e.location {
                Some(g) => {
                    let b = g.bbox();
                    bbox_set.execute(params![seq, b.min_lon, b.max_lon, b.min_lat, b.max_lat])?;
                }
                None => {
                    bbox_del.execute([seq])?;
                }
            }
            shares_del.execute([seq])?;
            for org in &e.shared_with {
                shares_add.execute(params![seq, org.as_str()])?;
            }
            for (name, a) in &e.attributes {
                let row = attribute_to_row(a);
                attr.execute(params![seq, name.as_str(), row.kind, row.value, row.unit_code, row.observed_at])?;
            }
        }
    }
    Ok(())
}
