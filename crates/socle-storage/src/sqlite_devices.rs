//! [`Devices`] on SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};
use socle_domain::{OrganisationId, Page};

use crate::devices::{
    DeadLetter, DeadLetterFilter, DeviceFilter, DeviceRecord, DeviceRoute, Devices, Downlink, DownlinkChange,
    FrameWrite, FramesOutcome, HealthUpdate, NewDeadLetter, NewDevice, NewDownlink, MAX_DEAD_LETTERS_PER_ORGANISATION,
};
use crate::rows::{downlink_time_column, ms, RawDeadLetter, RawDevice, RawDownlink, DOWNLINK_COLUMNS};
use crate::sqlite::{is_unique_violation, lock, write_in, SqliteStore};
use crate::{Result, StoreError};

const DEVICE_COLUMNS: &str = "dev_eui, name, model, organisation_id, entity_id, mappings, created_at, modified_at, \
     last_seen, battery, margin, rssi, snr, f_cnt, frames_received";
const LETTER_COLUMNS: &str =
    "id, at, organisation_id, source, event, dev_eui, reason_code, reason, body_size, replayed_at";

fn raw_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDevice> {
    Ok(RawDevice {
        dev_eui: r.get(0)?,
        name: r.get(1)?,
        model: r.get(2)?,
        organisation: r.get(3)?,
        entity: r.get(4)?,
        mappings: r.get(5)?,
        created_at: r.get(6)?,
        modified_at: r.get(7)?,
        last_seen: r.get(8)?,
        battery: r.get(9)?,
        margin: r.get(10)?,
        rssi: r.get(11)?,
        snr: r.get(12)?,
        f_cnt: r.get(13)?,
        frames_received: r.get(14)?,
    })
}

fn raw_letter(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDeadLetter> {
    Ok(RawDeadLetter {
        id: r.get(0)?,
        at: r.get(1)?,
        organisation: r.get(2)?,
        source: r.get(3)?,
        event: r.get(4)?,
        dev_eui: r.get(5)?,
        reason_code: r.get(6)?,
        reason: r.get(7)?,
        body_size: r.get(8)?,
        replayed_at: r.get(9)?,
        body: Vec::new(),
    })
}

fn raw_downlink(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDownlink> {
    Ok(RawDownlink {
        id: r.get(0)?,
        organisation: r.get(1)?,
        dev_eui: r.get(2)?,
        f_port: r.get(3)?,
        payload: r.get(4)?,
        confirmed: r.get(5)?,
        requested_by: r.get(6)?,
        created_at: r.get(7)?,
        status: r.get(8)?,
        detail: r.get(9)?,
        f_cnt_down: r.get(10)?,
        sent_at: r.get(11)?,
        transmitted_at: r.get(12)?,
        acknowledged_at: r.get(13)?,
        failed_at: r.get(14)?,
    })
}

fn downlinks(conn: &Connection, rest: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Downlink>> {
    let sql = format!("SELECT {DOWNLINK_COLUMNS} FROM downlinks {rest}");
    let rows = conn.prepare_cached(&sql)?.query_map(args, raw_downlink)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(RawDownlink::parse).collect()
}

fn one_device(conn: &Connection, where_clause: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Option<DeviceRecord>> {
    conn.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE {where_clause}"))?
        .query_row(args, raw_device)
        .optional()?
        .map(RawDevice::parse)
        .transpose()
}

/// The health columns of one event. Radio values and the counter come from
/// uplinks and are replaced only by a frame at least as recent as the last
/// contact; battery and margin come only from status events and are replaced
/// by each one. SET expressions all read the row as it was, so `last_seen` is
/// compared before it changes.
const HEALTH_UPDATE: &str = "UPDATE devices SET
        battery = COALESCE(?2, battery),
        margin = COALESCE(?3, margin),
        rssi = CASE WHEN ?4 IS NOT NULL AND (last_seen IS NULL OR ?1 >= last_seen) THEN ?4 ELSE rssi END,
        snr = CASE WHEN ?5 IS NOT NULL AND (last_seen IS NULL OR ?1 >= last_seen) THEN ?5 ELSE snr END,
        f_cnt = CASE WHEN ?6 IS NOT NULL AND (last_seen IS NULL OR ?1 >= last_seen) THEN ?6 ELSE f_cnt END,
        last_seen = CASE WHEN last_seen IS NULL OR ?1 > last_seen THEN ?1 ELSE last_seen END,
        frames_received = frames_received + ?7
     WHERE dev_eui = ?8";

fn update_health(tx: &Connection, dev_eui: &str, u: &HealthUpdate, frames: i64) -> Result<bool> {
    let n = tx.prepare_cached(HEALTH_UPDATE)?.execute(params![
        ms(u.at),
        u.battery,
        u.margin,
        u.rssi,
        u.snr,
        u.f_cnt.map(i64::from),
        frames,
        dev_eui
    ])?;
    Ok(n == 1)
}

fn write_frames_in(tx: &Transaction<'_>, frames: &[FrameWrite], now: i64) -> Result<(Vec<bool>, Vec<usize>)> {
    let mut stored = Vec::with_capacity(frames.len());
    let mut kept = Vec::new();
    let mut insert = tx.prepare_cached(
        "INSERT INTO frames (dev_eui, ns_id, session, f_cnt, stored_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO NOTHING",
    )?;
    for (i, f) in frames.iter().enumerate() {
        let new = !f.has_identity()
            || insert.execute(params![f.dev_eui, f.ns_id, f.session, f.f_cnt.map(i64::from), now])? == 1;
        stored.push(new);
        if new {
            kept.push(i);
        }
    }
    Ok((stored, kept))
}

fn filter_orgs(orgs: &Option<Vec<OrganisationId>>, column: &str, conds: &mut Vec<String>, args: &mut Vec<String>) {
    if let Some(orgs) = orgs {
        conds.push(format!("{column} IN ({})", vec!["?"; orgs.len()].join(", ")));
        args.extend(orgs.iter().map(|o| o.to_string()));
    }
}

/// The count of rows matching `w` and one page of them, ordered by `order`;
/// `args` are the values bound in `w`, in order.
#[allow(clippy::too_many_arguments)]
fn select_page<R>(
    c: &Connection,
    table: &str,
    columns: &str,
    w: &str,
    order: &str,
    args: Vec<String>,
    (limit, offset): (u32, u64),
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
) -> Result<(u64, Vec<R>)> {
    let total: i64 = c
        .prepare_cached(&format!("SELECT count(*) FROM {table}{w}"))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    let mut page: Vec<rusqlite::types::Value> = args.into_iter().map(Into::into).collect();
    page.push(i64::from(limit).into());
    page.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
    let rows = c
        .prepare_cached(&format!("SELECT {columns} FROM {table}{w} ORDER BY {order} LIMIT ? OFFSET ?"))?
        .query_map(params_from_iter(page.iter()), row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((u64::try_from(total).unwrap_or(0), rows))
}

fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

#[async_trait]
impl Devices for SqliteStore {
    async fn upsert_devices(&self, devices: &[NewDevice]) -> Result<()> {
        let devices = devices.to_vec();
        self.write(move |c| {
            let now = ms(Utc::now());
            let tx = c.transaction()?;
            {
                let mut entity_org =
                    tx.prepare_cached("SELECT organisation_id FROM entities WHERE id = ?1")?;
                let mut org_exists = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM organisations WHERE id = ?1)")?;
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO devices (dev_eui, name, model, organisation_id, entity_id, mappings, created_at, modified_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                     ON CONFLICT (dev_eui) DO UPDATE SET name = excluded.name, model = excluded.model,
                         organisation_id = excluded.organisation_id, entity_id = excluded.entity_id,
                         mappings = excluded.mappings, modified_at = excluded.modified_at",
                )?;
                for d in &devices {
                    if !org_exists.query_row([d.organisation.as_str()], |r| r.get::<_, bool>(0))? {
                        return Err(StoreError::UnknownOrganisation(d.organisation.to_string()));
                    }
                    let found: Option<String> =
                        entity_org.query_row([d.entity.as_str()], |r| r.get(0)).optional()?;
                    if found.is_none() {
                        return Err(StoreError::UnknownEntity(d.entity.to_string()));
                    }
                    let mappings = d.mappings.to_string();
                    upsert
                        .execute(params![
                            d.dev_eui,
                            d.name,
                            d.model,
                            d.organisation.as_str(),
                            d.entity.as_str(),
                            mappings,
                            now
                        ])
                        .map_err(|e| {
                            if is_unique_violation(&e) {
                                StoreError::Conflict(format!("device name {:?} in {}", d.name, d.organisation))
                            } else {
                                e.into()
                            }
                        })?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn device(&self, dev_eui: &str) -> Result<Option<DeviceRecord>> {
        let dev_eui = dev_eui.to_owned();
        self.read(move |c| one_device(c, "dev_eui = ?1", &[&dev_eui])).await
    }

    async fn device_by_name(&self, organisation: &OrganisationId, name: &str) -> Result<Option<DeviceRecord>> {
        let (org, name) = (organisation.to_string(), name.to_owned());
        self.read(move |c| one_device(c, "organisation_id = ?1 AND name = ?2", &[&org, &name])).await
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Page<DeviceRecord>> {
        let filter = filter.clone();
        self.read(move |c| {
            let (mut conds, mut args) = (Vec::new(), Vec::new());
            filter_orgs(&filter.organisations, "organisation_id", &mut conds, &mut args);
            if let Some(e) = &filter.entity {
                conds.push("entity_id = ?".into());
                args.push(e.to_string());
            }
            let w = where_clause(&conds);
            let (total, rows) = select_page(
                c,
                "devices",
                DEVICE_COLUMNS,
                &w,
                "organisation_id, name",
                args,
                (filter.limit, filter.offset),
                raw_device,
            )?;
            let items = rows.into_iter().map(RawDevice::parse).collect::<Result<Vec<_>>>()?;
            Ok(Page { total, items })
        })
        .await
    }

    async fn delete_device(&self, dev_eui: &str) -> Result<bool> {
        let dev_eui = dev_eui.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM devices WHERE dev_eui = ?1", [dev_eui])? == 1)).await
    }

    async fn write_frames(&self, frames: &[FrameWrite]) -> Result<FramesOutcome> {
        if frames.is_empty() {
            return Ok(FramesOutcome::default());
        }
        let frames = frames.to_vec();
        let cache = self.series_cache.clone();
        self.write(move |c| {
            let mut cache = lock(&cache);
            let tx = c.transaction()?;
            let (stored, kept) = write_frames_in(&tx, &frames, ms(Utc::now()))?;
            let batch: Vec<_> = kept.iter().flat_map(|i| frames[*i].observations.iter().cloned()).collect();
            let mut fresh = HashMap::new();
            let observations = write_in(&tx, &cache, &mut fresh, &batch)?;
            for i in kept {
                update_health(&tx, &frames[i].dev_eui, &frames[i].health, 1)?;
            }
            tx.commit()?;
            cache.extend(fresh);
            Ok(FramesOutcome { stored, observations })
        })
        .await
    }

    async fn update_device_health(&self, dev_eui: &str, update: &HealthUpdate) -> Result<bool> {
        let (dev_eui, update) = (dev_eui.to_owned(), update.clone());
        self.write(move |c| update_health(c, &dev_eui, &update, 0)).await
    }

    async fn add_dead_letter(&self, l: &NewDeadLetter) -> Result<i64> {
        let l = l.clone();
        self.write(move |c| {
            let tx = c.transaction()?;
            let id: i64 = tx.query_row(
                "INSERT INTO dead_letters (at, organisation_id, source, event, dev_eui, reason_code, reason, body, body_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                params![
                    ms(l.at),
                    l.organisation.as_str(),
                    l.source,
                    l.event,
                    l.dev_eui,
                    l.reason_code,
                    l.reason,
                    l.body,
                    i64::try_from(l.body_size).unwrap_or(i64::MAX)
                ],
                |r| r.get(0),
            )?;
            tx.execute(
                "DELETE FROM dead_letters WHERE organisation_id = ?1 AND id <= (
                     SELECT id FROM dead_letters WHERE organisation_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                params![l.organisation.as_str(), MAX_DEAD_LETTERS_PER_ORGANISATION as i64],
            )?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {LETTER_COLUMNS}, body FROM dead_letters WHERE id = ?1"))?
                .query_row([id], |r| {
                    let mut raw = raw_letter(r)?;
                    raw.body = r.get(10)?;
                    Ok(raw)
                })
                .optional()?
                .map(RawDeadLetter::parse)
                .transpose()
        })
        .await
    }

    async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Page<DeadLetter>> {
        let filter = filter.clone();
        self.read(move |c| {
            let (mut conds, mut args) = (Vec::new(), Vec::new());
            filter_orgs(&filter.organisations, "organisation_id", &mut conds, &mut args);
            if let Some(d) = &filter.dev_eui {
                conds.push("dev_eui = ?".into());
                args.push(d.clone());
            }
            if filter.pending {
                conds.push("replayed_at IS NULL".into());
            }
            let w = where_clause(&conds);
            let (total, rows) = select_page(
                c,
                "dead_letters",
                LETTER_COLUMNS,
                &w,
                "id DESC",
                args,
                (filter.limit, filter.offset),
                raw_letter,
            )?;
            let items = rows.into_iter().map(RawDeadLetter::parse).collect::<Result<Vec<_>>>()?;
            Ok(Page { total, items })
        })
        .await
    }

    async fn mark_dead_letter_replayed(&self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1 AND replayed_at IS NULL",
                params![id, ms(at)],
            )? == 1)
        })
        .await
    }

    async fn set_device_route(&self, dev_eui: &str, route: &DeviceRoute) -> Result<()> {
        let (eui, r, now) = (dev_eui.to_owned(), route.clone(), ms(Utc::now()));
        self.write(move |c| {
            c.execute(
                "INSERT INTO device_routes (dev_eui, network, application, device_id, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (dev_eui) DO UPDATE SET network = excluded.network, \
                 application = excluded.application, device_id = excluded.device_id, updated_at = excluded.updated_at",
                params![eui, r.network, r.application, r.device_id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn device_route(&self, dev_eui: &str) -> Result<Option<DeviceRoute>> {
        let eui = dev_eui.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT network, application, device_id FROM device_routes WHERE dev_eui = ?1")?
                .query_row([eui], |r| {
                    Ok(DeviceRoute { network: r.get(0)?, application: r.get(1)?, device_id: r.get(2)? })
                })
                .optional()?)
        })
        .await
    }

    async fn add_downlink(&self, d: &NewDownlink) -> Result<()> {
        let d = d.clone();
        self.write(move |c| {
            let added = c.execute(
                "INSERT INTO downlinks (id, organisation_id, dev_eui, f_port, payload, confirmed, requested_by, \
                 created_at, status) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued' \
                 WHERE EXISTS (SELECT 1 FROM devices WHERE dev_eui = ?3)",
                params![
                    d.id,
                    d.organisation.as_str(),
                    d.dev_eui,
                    d.f_port,
                    d.payload,
                    d.confirmed,
                    d.requested_by,
                    ms(d.created_at)
                ],
            );
            match added {
                Ok(1) => Ok(()),
                Ok(_) => Err(StoreError::Conflict(format!("device {} does not exist", d.dev_eui))),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!("downlink {} exists", d.id))),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn downlink(&self, id: &str) -> Result<Option<Downlink>> {
        let id = id.to_owned();
        self.read(move |c| Ok(downlinks(c, "WHERE id = ?1", &[&id])?.pop())).await
    }

    async fn list_downlinks(&self, dev_eui: &str, limit: u32) -> Result<Vec<Downlink>> {
        let eui = dev_eui.to_owned();
        self.read(move |c| downlinks(c, "WHERE dev_eui = ?1 ORDER BY created_at DESC, id LIMIT ?2", &[&eui, &limit]))
            .await
    }

    async fn queued_downlinks(&self, limit: u32) -> Result<Vec<Downlink>> {
        self.read(move |c| downlinks(c, "WHERE status = 'queued' ORDER BY created_at, id LIMIT ?1", &[&limit])).await
    }

    async fn advance_downlink(&self, change: &DownlinkChange) -> Result<bool> {
        let ch = change.clone();
        self.write(move |c| {
            let earlier: Vec<String> = ch.status.may_follow().iter().map(|s| format!("'{}'", s.as_str())).collect();
            if earlier.is_empty() {
                return Ok(false);
            }
            let sql = format!(
                "UPDATE downlinks SET status = ?2, {time} = ?3, detail = COALESCE(?4, detail), \
                 f_cnt_down = COALESCE(?5, f_cnt_down) \
                 WHERE id = ?1 AND status IN ({earlier}) AND (?6 IS NULL OR organisation_id = ?6)",
                time = downlink_time_column(ch.status),
                earlier = earlier.join(", "),
            );
            let org = ch.organisation.as_ref().map(|o| o.as_str().to_owned());
            Ok(c.execute(&sql, params![ch.id, ch.status.as_str(), ms(ch.at), ch.detail, ch.f_cnt_down, org])? == 1)
        })
        .await
    }

    async fn purge_ingestion(&self, frames_before: DateTime<Utc>, dead_letters_before: DateTime<Utc>) -> Result<u64> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let frames = tx.execute("DELETE FROM frames WHERE stored_at < ?1", [ms(frames_before)])?;
            let letters = tx.execute("DELETE FROM dead_letters WHERE at < ?1", [ms(dead_letters_before)])?;
            tx.commit()?;
            Ok((frames + letters) as u64)
        })
        .await
    }
}
