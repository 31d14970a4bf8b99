//! [`NgsiSubscriptions`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, OptionalExtension};
use socle_domain::OrganisationId;
use uuid::Uuid;

use crate::ngsi_subscriptions::{
    NewNgsiNotification, NgsiNotification, NgsiSubscriptions, RawNgsiNotification, RawNgsiSubscription,
    StoredNgsiSubscription, NGSI_NOTIFICATION_COLUMNS, NGSI_SUBSCRIPTION_COLUMNS,
};
use crate::notifications::clip_error;
use crate::rows::ms;
use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};

fn raw_subscription(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawNgsiSubscription> {
    Ok(RawNgsiSubscription {
        id: r.get(0)?,
        organisation: r.get(1)?,
        tenant_only: r.get(2)?,
        owner: r.get(3)?,
        spec: r.get(4)?,
        created_at: r.get(5)?,
        modified_at: r.get(6)?,
        times_sent: r.get(7)?,
        times_failed: r.get(8)?,
        last_notification: r.get(9)?,
        last_success: r.get(10)?,
        last_failure: r.get(11)?,
    })
}

fn raw_notification(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawNgsiNotification> {
    Ok(RawNgsiNotification {
        id: r.get(0)?,
        subscription: r.get(1)?,
        body: r.get(2)?,
        due_at: r.get(3)?,
        created_at: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        delivered_at: r.get(7)?,
        failed_at: r.get(8)?,
    })
}

fn constraint(e: &rusqlite::Error) -> Option<std::ffi::c_int> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
        _ => None,
    }
}

/// Counts a finished attempt on the notification's subscription.
fn count_attempt(c: &rusqlite::Transaction<'_>, id: Uuid, at: DateTime<Utc>, ok: bool) -> Result<()> {
    let sql = if ok {
        "UPDATE ngsi_subscriptions SET times_sent = times_sent + 1, last_notification = ?2, last_success = ?2
         WHERE id = (SELECT subscription_id FROM ngsi_notification_outbox WHERE id = ?1)"
    } else {
        "UPDATE ngsi_subscriptions SET times_sent = times_sent + 1, times_failed = times_failed + 1,
             last_notification = ?2, last_failure = ?2
         WHERE id = (SELECT subscription_id FROM ngsi_notification_outbox WHERE id = ?1)"
    };
    c.execute(sql, params![id.to_string(), ms(at)])?;
    Ok(())
}

#[async_trait]
impl NgsiSubscriptions for SqliteStore {
    async fn create_ngsi_subscription(&self, s: &StoredNgsiSubscription) -> Result<()> {
        let s = s.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO ngsi_subscriptions (id, organisation_id, tenant_only, owner_user, spec, created_at, modified_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id,
                    s.organisation.as_str(),
                    s.tenant_only,
                    s.owner.to_string(),
                    s.spec.to_string(),
                    ms(s.created_at),
                    ms(s.modified_at)
                ],
            )
            .map_err(|e| match constraint(&e) {
                Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => StoreError::Conflict(format!("subscription {}", s.id)),
                Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
                    StoreError::UnknownOrganisation(format!("{} (or user {})", s.organisation, s.owner))
                }
                _ => e.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn update_ngsi_subscription(&self, id: &str, spec: &serde_json::Value, at: DateTime<Utc>) -> Result<bool> {
        let (id, spec) = (id.to_owned(), spec.to_string());
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE ngsi_subscriptions SET spec = ?2, modified_at = ?3 WHERE id = ?1",
                params![id, spec, ms(at)],
            )? == 1)
        })
        .await
    }

    async fn ngsi_subscription(&self, id: &str) -> Result<Option<StoredNgsiSubscription>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {NGSI_SUBSCRIPTION_COLUMNS} FROM ngsi_subscriptions WHERE id = ?1"))?
                .query_row([id], raw_subscription)
                .optional()?
                .map(RawNgsiSubscription::parse)
                .transpose()
        })
        .await
    }

    async fn list_ngsi_subscriptions(
        &self,
        organisations: Option<&[OrganisationId]>,
    ) -> Result<Vec<StoredNgsiSubscription>> {
        let orgs: Option<Vec<String>> = organisations.map(|o| o.iter().map(|o| o.to_string()).collect());
        self.read(move |c| {
            let rows = match &orgs {
                Some(orgs) if orgs.is_empty() => Vec::new(),
                Some(orgs) => c
                    .prepare(&format!(
                        "SELECT {NGSI_SUBSCRIPTION_COLUMNS} FROM ngsi_subscriptions WHERE organisation_id IN ({})
                         ORDER BY created_at, id",
                        vec!["?"; orgs.len()].join(", ")
                    ))?
                    .query_map(params_from_iter(orgs.iter()), raw_subscription)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!(
                        "SELECT {NGSI_SUBSCRIPTION_COLUMNS} FROM ngsi_subscriptions ORDER BY created_at, id"
                    ))?
                    .query_map([], raw_subscription)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(RawNgsiSubscription::parse).collect()
        })
        .await
    }

    async fn delete_ngsi_subscription(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM ngsi_notification_outbox WHERE subscription_id = ?1", [&id])?;
            let gone = tx.execute("DELETE FROM ngsi_subscriptions WHERE id = ?1", [&id])? == 1;
            tx.commit()?;
            Ok(gone)
        })
        .await
    }

    async fn enqueue_ngsi_notifications(&self, rows: &[NewNgsiNotification]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let rows = rows.to_vec();
        self.write(move |c| {
            let now = ms(Utc::now());
            let tx = c.transaction()?;
            let mut inserted = 0;
            {
                // A subscription deleted meanwhile gets nothing (and is no error).
                let mut insert = tx.prepare_cached(
                    "INSERT INTO ngsi_notification_outbox (id, subscription_id, body, due_at, created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM ngsi_subscriptions WHERE id = ?2)
                     ON CONFLICT (id) DO NOTHING",
                )?;
                for n in &rows {
                    inserted += insert.execute(params![
                        n.id.to_string(),
                        n.subscription,
                        n.body.to_string(),
                        ms(n.due_at),
                        now
                    ])? as u64;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn claim_ngsi_notifications(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<NgsiNotification>> {
        self.write(move |c| {
            // One writer connection: the select and the update cannot interleave with another claim.
            let rows = c
                .prepare_cached(&format!(
                    "UPDATE ngsi_notification_outbox SET due_at = ?2, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM ngsi_notification_outbox
                                  WHERE delivered_at IS NULL AND failed_at IS NULL AND due_at <= ?1
                                  ORDER BY due_at, created_at, id LIMIT ?3)
                     RETURNING {NGSI_NOTIFICATION_COLUMNS}"
                ))?
                .query_map(params![ms(now), ms(lease_until), i64::from(limit)], raw_notification)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = rows.into_iter().map(RawNgsiNotification::parse).collect::<Result<Vec<_>>>()?;
            out.sort_by_key(|a| (a.created_at, a.notification.id));
            Ok(out)
        })
        .await
    }

    async fn complete_ngsi_notification(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE ngsi_notification_outbox SET delivered_at = ?2, last_error = NULL
                 WHERE id = ?1 AND delivered_at IS NULL",
                params![id.to_string(), ms(at)],
            )?;
            if changed == 1 {
                count_attempt(&tx, id, at, true)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn retry_ngsi_notification(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        next_due: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        let error = clip_error(error);
        self.write(move |c| {
            let tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE ngsi_notification_outbox SET due_at = ?2, last_error = ?3 WHERE id = ?1 AND delivered_at IS NULL",
                params![id.to_string(), ms(next_due), error],
            )?;
            if changed == 1 {
                count_attempt(&tx, id, at, false)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn fail_ngsi_notification(&self, id: Uuid, at: DateTime<Utc>, error: &str) -> Result<()> {
        let error = clip_error(error);
        self.write(move |c| {
            let tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE ngsi_notification_outbox SET failed_at = ?2, last_error = ?3
                 WHERE id = ?1 AND delivered_at IS NULL AND failed_at IS NULL",
                params![id.to_string(), ms(at), error],
            )?;
            if changed == 1 {
                count_attempt(&tx, id, at, false)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_ngsi_notifications(&self, subscription: Option<&str>, limit: u32) -> Result<Vec<NgsiNotification>> {
        let subscription = subscription.map(str::to_owned);
        self.read(move |c| {
            let rows = match &subscription {
                Some(s) => c
                    .prepare_cached(&format!(
                        "SELECT {NGSI_NOTIFICATION_COLUMNS} FROM ngsi_notification_outbox WHERE subscription_id = ?1
                         ORDER BY created_at, id LIMIT ?2"
                    ))?
                    .query_map(params![s, i64::from(limit.max(1))], raw_notification)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!(
                        "SELECT {NGSI_NOTIFICATION_COLUMNS} FROM ngsi_notification_outbox ORDER BY created_at, id LIMIT ?1"
                    ))?
                    .query_map([i64::from(limit.max(1))], raw_notification)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(RawNgsiNotification::parse).collect()
        })
        .await
    }

    async fn purge_ngsi_notifications(&self, before: DateTime<Utc>) -> Result<u64> {
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM ngsi_notification_outbox WHERE COALESCE(delivered_at, failed_at) < ?1",
                [ms(before)],
            )? as u64)
        })
        .await
    }
}
