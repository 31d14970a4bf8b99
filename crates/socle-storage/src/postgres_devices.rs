//! [`Devices`] on PostgreSQL.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use socle_domain::{OrganisationId, Page};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use crate::devices::{
    DeadLetter, DeadLetterFilter, DeviceFilter, DeviceRecord, DeviceRoute, Devices, Downlink, DownlinkChange,
    FrameWrite, FramesOutcome, HealthUpdate, NewDeadLetter, NewDevice, NewDownlink, MAX_DEAD_LETTERS_PER_ORGANISATION,
};
use crate::postgres::{lock, write_in, Conditions, PostgresStore};
use crate::rows::{downlink_time_column, ms, RawDeadLetter, RawDevice, RawDownlink, DOWNLINK_COLUMNS};
use crate::{Result, StoreError};

const DEVICE_COLUMNS: &str = "dev_eui, name, model, organisation_id, entity_id, mappings, created_at, modified_at, \
     last_seen, battery, margin, rssi, snr, f_cnt, frames_received";
const LETTER_COLUMNS: &str =
    "id, at, organisation_id, source, event, dev_eui, reason_code, reason, body_size, replayed_at";

fn raw_device(r: &Row) -> Result<RawDevice> {
    Ok(RawDevice {
        dev_eui: r.try_get(0)?,
        name: r.try_get(1)?,
        model: r.try_get(2)?,
        organisation: r.try_get(3)?,
        entity: r.try_get(4)?,
        mappings: r.try_get(5)?,
        created_at: r.try_get(6)?,
        modified_at: r.try_get(7)?,
        last_seen: r.try_get(8)?,
        battery: r.try_get(9)?,
        margin: r.try_get(10)?,
        rssi: r.try_get(11)?,
        snr: r.try_get(12)?,
        f_cnt: r.try_get(13)?,
        frames_received: r.try_get(14)?,
    })
}

fn raw_downlink(r: &Row) -> Result<Downlink> {
    RawDownlink {
        id: r.try_get(0)?,
        organisation: r.try_get(1)?,
        dev_eui: r.try_get(2)?,
        f_port: r.try_get(3)?,
        payload: r.try_get(4)?,
        confirmed: r.try_get(5)?,
        requested_by: r.try_get(6)?,
        created_at: r.try_get(7)?,
        status: r.try_get(8)?,
        detail: r.try_get(9)?,
        f_cnt_down: r.try_get(10)?,
        sent_at: r.try_get(11)?,
        transmitted_at: r.try_get(12)?,
        acknowledged_at: r.try_get(13)?,
        failed_at: r.try_get(14)?,
    }
    .parse()
}

impl PostgresStore {
    async fn downlinks(&self, rest: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Downlink>> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {DOWNLINK_COLUMNS} FROM downlinks {rest}"), args).await?;
        rows.iter().map(raw_downlink).collect()
    }
}

fn raw_letter(r: &Row, with_body: bool) -> Result<RawDeadLetter> {
    Ok(RawDeadLetter {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        organisation: r.try_get(2)?,
        source: r.try_get(3)?,
        event: r.try_get(4)?,
        dev_eui: r.try_get(5)?,
        reason_code: r.try_get(6)?,
        reason: r.try_get(7)?,
        body_size: r.try_get(8)?,
        replayed_at: r.try_get(9)?,
        body: if with_body { r.try_get(10)? } else { Vec::new() },
    })
}

/// The health columns of one event. Radio values and the counter come from
/// uplinks and are replaced only by a frame at least as recent as the last
/// contact; battery and margin come only from status events and are replaced
/// by each one. SET expressions all read the row as it was, so `last_seen` is
/// compared before it changes.
const HEALTH_UPDATE: &str = "UPDATE devices SET
        battery = COALESCE($2::float8, battery),
        margin = COALESCE($3::int4, margin),
        rssi = CASE WHEN $4::int4 IS NOT NULL AND (last_seen IS NULL OR $1::int8 >= last_seen) THEN $4::int4 ELSE rssi END,
        snr = CASE WHEN $5::float8 IS NOT NULL AND (last_seen IS NULL OR $1::int8 >= last_seen) THEN $5::float8 ELSE snr END,
        f_cnt = CASE WHEN $6::int8 IS NOT NULL AND (last_seen IS NULL OR $1::int8 >= last_seen) THEN $6::int8 ELSE f_cnt END,
        last_seen = CASE WHEN last_seen IS NULL OR $1::int8 > last_seen THEN $1::int8 ELSE last_seen END,
        frames_received = frames_received + $7::int8
     WHERE dev_eui = $8";

async fn update_health(client: &Transaction<'_>, dev_eui: &str, u: &HealthUpdate, frames: i64) -> Result<bool> {
    let n = client
        .execute(
            HEALTH_UPDATE,
            &[&ms(u.at), &u.battery, &u.margin, &u.rssi, &u.snr, &u.f_cnt.map(i64::from), &frames, &dev_eui],
        )
        .await?;
    Ok(n == 1)
}

#[async_trait]
impl Devices for PostgresStore {
    async fn upsert_devices(&self, devices: &[NewDevice]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = ms(Utc::now());
        for d in devices {
            let row = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM organisations WHERE id = $1),
                            EXISTS (SELECT 1 FROM entities WHERE id = $2)",
                    &[&d.organisation.as_str(), &d.entity.as_str()],
                )
                .await?;
            if !row.try_get::<_, bool>(0)? {
                return Err(StoreError::UnknownOrganisation(d.organisation.to_string()));
            }
            if !row.try_get::<_, bool>(1)? {
                return Err(StoreError::UnknownEntity(d.entity.to_string()));
            }
            tx.execute(
                "INSERT INTO devices (dev_eui, name, model, organisation_id, entity_id, mappings, created_at, modified_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (dev_eui) DO UPDATE SET name = excluded.name, model = excluded.model,
                     organisation_id = excluded.organisation_id, entity_id = excluded.entity_id,
                     mappings = excluded.mappings, modified_at = excluded.modified_at",
                &[
                    &d.dev_eui,
                    &d.name,
                    &d.model,
                    &d.organisation.as_str(),
                    &d.entity.as_str(),
                    &d.mappings.to_string(),
                    &now,
                ],
            )
            .await
            .map_err(|e| {
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    StoreError::Conflict(format!("device name {:?} in {}", d.name, d.organisation))
                } else {
                    e.into()
                }
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn device(&self, dev_eui: &str) -> Result<Option<DeviceRecord>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE dev_eui = $1"), &[&dev_eui])
            .await?
            .map(|r| raw_device(&r)?.parse())
            .transpose()
    }

    async fn device_by_name(&self, organisation: &OrganisationId, name: &str) -> Result<Option<DeviceRecord>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE organisation_id = $1 AND name = $2"),
                &[&organisation.as_str(), &name],
            )
            .await?
            .map(|r| raw_device(&r)?.parse())
            .transpose()
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Page<DeviceRecord>> {
        let client = self.client().await?;
        let mut c = Conditions::default();
        c.orgs(&filter.organisations);
        if let Some(e) = &filter.entity {
            c.push(|n| format!("entity_id = ${n}"), Box::new(e.to_string()));
        }
        let (total, rows) = c
            .select_page(&client, "devices", DEVICE_COLUMNS, "organisation_id, name", (filter.limit, filter.offset))
            .await?;
        let items = rows.iter().map(|r| raw_device(r)?.parse()).collect::<Result<Vec<_>>>()?;
        Ok(Page { total, items })
    }

    async fn delete_device(&self, dev_eui: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM devices WHERE dev_eui = $1", &[&dev_eui]).await? == 1)
    }

    async fn write_frames(&self, frames: &[FrameWrite]) -> Result<FramesOutcome> {
        if frames.is_empty() {
            return Ok(FramesOutcome::default());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = ms(Utc::now());
        let insert = tx
            .prepare(
                "INSERT INTO frames (dev_eui, ns_id, session, f_cnt, stored_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        // The statements of a body are pipelined: sent in order without
        // waiting for each answer, so a batch of frames costs a few round trips
        // rather than two per frame. PostgreSQL still runs them one after the
        // other, so a frame repeated within the batch meets its first copy.
        let identified: Vec<&FrameWrite> = frames.iter().filter(|f| f.has_identity()).collect();
        let (tx_ref, insert, now) = (&tx, &insert, &now);
        let inserted = try_join_all(identified.iter().map(|f| async move {
            let f_cnt = f.f_cnt.map(i64::from);
            tx_ref.execute(insert, &[&f.dev_eui, &f.ns_id, &f.session, &f_cnt, now]).await
        }))
        .await?;
        let mut inserted = inserted.into_iter();
        // A concurrent transaction inserting the same identity makes this
        // one wait for its outcome: committed, it is a duplicate here.
        let stored: Vec<bool> = frames.iter().map(|f| !f.has_identity() || inserted.next() == Some(1)).collect();
        let batch: Vec<_> =
            frames.iter().zip(&stored).filter(|(_, s)| **s).flat_map(|(f, _)| f.observations.iter().cloned()).collect();
        let mut fresh = HashMap::new();
        let observations = write_in(&tx, &self.series_cache, &mut fresh, &batch).await?;
        // Devices in a stable order, so concurrent transactions lock their rows alike.
        let mut kept: Vec<&FrameWrite> = frames.iter().zip(&stored).filter(|(_, s)| **s).map(|(f, _)| f).collect();
        kept.sort_by(|a, b| a.dev_eui.cmp(&b.dev_eui));
        try_join_all(kept.into_iter().map(|f| update_health(&tx, &f.dev_eui, &f.health, 1))).await?;
        tx.commit().await?;
        lock(&self.series_cache).extend(fresh);
        Ok(FramesOutcome { stored, observations })
    }

    async fn update_device_health(&self, dev_eui: &str, update: &HealthUpdate) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let found = update_health(&tx, dev_eui, update, 0).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn add_dead_letter(&self, l: &NewDeadLetter) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO dead_letters (at, organisation_id, source, event, dev_eui, reason_code, reason, body, body_size)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &ms(l.at),
                    &l.organisation.as_str(),
                    &l.source,
                    &l.event,
                    &l.dev_eui,
                    &l.reason_code,
                    &l.reason,
                    &l.body,
                    &i64::try_from(l.body_size).unwrap_or(i64::MAX),
                ],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "DELETE FROM dead_letters WHERE organisation_id = $1 AND id <= (
                 SELECT id FROM dead_letters WHERE organisation_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            &[&l.organisation.as_str(), &(MAX_DEAD_LETTERS_PER_ORGANISATION as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {LETTER_COLUMNS}, body FROM dead_letters WHERE id = $1"), &[&id])
            .await?
            .map(|r| raw_letter(&r, true)?.parse())
            .transpose()
    }

    async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Page<DeadLetter>> {
        let client = self.client().await?;
        let mut c = Conditions::default();
        c.orgs(&filter.organisations);
        if let Some(d) = &filter.dev_eui {
            c.push(|n| format!("dev_eui = ${n}"), Box::new(d.clone()));
        }
        if filter.pending {
            c.require("replayed_at IS NULL");
        }
        let (total, rows) =
            c.select_page(&client, "dead_letters", LETTER_COLUMNS, "id DESC", (filter.limit, filter.offset)).await?;
        let items = rows.iter().map(|r| raw_letter(r, false)?.parse()).collect::<Result<Vec<_>>>()?;
        Ok(Page { total, items })
    }

    async fn mark_dead_letter_replayed(&self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        let client = self.client().await?;
        Ok(client
            .execute("UPDATE dead_letters SET replayed_at = $2 WHERE id = $1 AND replayed_at IS NULL", &[&id, &ms(at)])
            .await?
            == 1)
    }

    async fn set_device_route(&self, dev_eui: &str, route: &DeviceRoute) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO device_routes (dev_eui, network, application, device_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dev_eui) DO UPDATE SET network = excluded.network, \
                 application = excluded.application, device_id = excluded.device_id, updated_at = excluded.updated_at",
                &[&dev_eui, &route.network, &route.application, &route.device_id, &ms(Utc::now())],
            )
            .await?;
        Ok(())
    }

    async fn device_route(&self, dev_eui: &str) -> Result<Option<DeviceRoute>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT network, application, device_id FROM device_routes WHERE dev_eui = $1", &[&dev_eui])
            .await?;
        row.map(|r| Ok(DeviceRoute { network: r.try_get(0)?, application: r.try_get(1)?, device_id: r.try_get(2)? }))
            .transpose()
    }

    async fn add_downlink(&self, d: &NewDownlink) -> Result<()> {
        let client = self.client().await?;
        let added = client
            .execute(
                "INSERT INTO downlinks (id, organisation_id, dev_eui, f_port, payload, confirmed, requested_by, \
                 created_at, status) SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'queued' \
                 WHERE EXISTS (SELECT 1 FROM devices WHERE dev_eui = $3)",
                &[
                    &d.id,
                    &d.organisation.as_str(),
                    &d.dev_eui,
                    &i64::from(d.f_port),
                    &d.payload,
                    &d.confirmed,
                    &d.requested_by,
                    &ms(d.created_at),
                ],
            )
            .await;
        match added {
            Ok(1) => Ok(()),
            Ok(_) => Err(StoreError::Conflict(format!("device {} does not exist", d.dev_eui))),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Conflict(format!("downlink {} exists", d.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn downlink(&self, id: &str) -> Result<Option<Downlink>> {
        Ok(self.downlinks("WHERE id = $1", &[&id]).await?.pop())
    }

    async fn list_downlinks(&self, dev_eui: &str, limit: u32) -> Result<Vec<Downlink>> {
        self.downlinks("WHERE dev_eui = $1 ORDER BY created_at DESC, id LIMIT $2", &[&dev_eui, &i64::from(limit)]).await
    }

    async fn queued_downlinks(&self, limit: u32) -> Result<Vec<Downlink>> {
        self.downlinks("WHERE status = 'queued' ORDER BY created_at, id LIMIT $1", &[&i64::from(limit)]).await
    }

    async fn advance_downlink(&self, ch: &DownlinkChange) -> Result<bool> {
        let earlier: Vec<&str> = ch.status.may_follow().iter().map(|s| s.as_str()).collect();
        if earlier.is_empty() {
            return Ok(false);
        }
        let sql = format!(
            "UPDATE downlinks SET status = $2, {time} = $3, detail = COALESCE($4, detail), \
             f_cnt_down = COALESCE($5, f_cnt_down) \
             WHERE id = $1 AND status = ANY($7) AND ($6::text IS NULL OR organisation_id = $6)",
            time = downlink_time_column(ch.status),
        );
        let org = ch.organisation.as_ref().map(|o| o.as_str().to_owned());
        let f_cnt = ch.f_cnt_down.map(i64::from);
        let client = self.client().await?;
        let n = client
            .execute(&sql, &[&ch.id, &ch.status.as_str(), &ms(ch.at), &ch.detail, &f_cnt, &org, &earlier])
            .await?;
        Ok(n == 1)
    }

    async fn purge_ingestion(&self, frames_before: DateTime<Utc>, dead_letters_before: DateTime<Utc>) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let frames = tx.execute("DELETE FROM frames WHERE stored_at < $1", &[&ms(frames_before)]).await?;
        let letters = tx.execute("DELETE FROM dead_letters WHERE at < $1", &[&ms(dead_letters_before)]).await?;
        tx.commit().await?;
        Ok(frames + letters)
    }
}
