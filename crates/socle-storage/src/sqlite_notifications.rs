//! [`Notifications`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, OptionalExtension};
use socle_domain::{OrganisationId, UserId};
use uuid::Uuid;

use crate::notifications::{
    clip_error, parse_push, parse_subscription, parse_webhook, Delivery, DeliveryFilter, NewDelivery, Notifications,
    PushSubscriptionRecord, RawDelivery, StoredSubscription, StoredWebhook, DELIVERY_COLUMNS, PUSH_COLUMNS,
    SUBSCRIPTION_COLUMNS, WEBHOOK_COLUMNS,
};
use crate::rows::ms;
use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};

fn raw_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDelivery> {
    Ok(RawDelivery {
        id: r.get(0)?,
        channel: r.get(1)?,
        recipient: r.get(2)?,
        alert_id: r.get(3)?,
        payload: r.get(4)?,
        due_at: r.get(5)?,
        created_at: r.get(6)?,
        attempts: r.get(7)?,
        last_error: r.get(8)?,
        delivered_at: r.get(9)?,
        failed_at: r.get(10)?,
    })
}

fn subscription_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

type WebhookRow = (String, String, String, String, String, i64, i64);
fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

type PushRow = (String, String, String, String, String, i64);
fn push_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PushRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

#[async_trait]
impl Notifications for SqliteStore {
    async fn put_subscription(&self, s: &StoredSubscription) -> Result<()> {
        let s = s.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO notification_subscriptions (id, user_id, spec, created_at, modified_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, modified_at = excluded.modified_at",
                params![s.id.to_string(), s.user.to_string(), s.spec.to_string(), ms(s.created_at), ms(s.modified_at)],
            )
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::UnknownUser(s.user.to_string())
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn subscription(&self, id: Uuid) -> Result<Option<StoredSubscription>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM notification_subscriptions WHERE id = ?1"))?
                .query_row([id.to_string()], subscription_row)
                .optional()?
                .map(|(a, b, d, e, f)| parse_subscription(a, b, d, e, f))
                .transpose()
        })
        .await
    }

    async fn list_subscriptions(&self, user: Option<UserId>) -> Result<Vec<StoredSubscription>> {
        self.read(move |c| {
            let rows = match user {
                Some(u) => c
                    .prepare_cached(&format!(
                        "SELECT {SUBSCRIPTION_COLUMNS} FROM notification_subscriptions WHERE user_id = ?1
                         ORDER BY created_at, id"
                    ))?
                    .query_map([u.to_string()], subscription_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!(
                        "SELECT {SUBSCRIPTION_COLUMNS} FROM notification_subscriptions ORDER BY created_at, id"
                    ))?
                    .query_map([], subscription_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(|(a, b, d, e, f)| parse_subscription(a, b, d, e, f)).collect()
        })
        .await
    }

    async fn delete_subscription(&self, id: Uuid) -> Result<bool> {
        self.write(move |c| {
            Ok(c.execute("DELETE FROM notification_subscriptions WHERE id = ?1", [id.to_string()])? == 1)
        })
        .await
    }

    async fn put_webhook(&self, w: &StoredWebhook) -> Result<()> {
        let w = w.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO webhooks (id, organisation_id, url, secret, spec, created_at, modified_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
                     spec = excluded.spec, modified_at = excluded.modified_at",
                params![
                    w.id.to_string(),
                    w.organisation.as_str(),
                    w.url,
                    w.secret,
                    w.spec.to_string(),
                    ms(w.created_at),
                    ms(w.modified_at)
                ],
            )
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::UnknownOrganisation(w.organisation.to_string())
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"))?
                .query_row([id.to_string()], webhook_row)
                .optional()?
                .map(|(a, b, d, e, f, g, h)| parse_webhook(a, b, d, e, f, g, h))
                .transpose()
        })
        .await
    }

    async fn list_webhooks(&self, organisations: Option<&[OrganisationId]>) -> Result<Vec<StoredWebhook>> {
        let orgs: Option<Vec<String>> = organisations.map(|o| o.iter().map(|o| o.to_string()).collect());
        self.read(move |c| {
            let rows = match &orgs {
                Some(orgs) => c
                    .prepare(&format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organisation_id IN ({})
                         ORDER BY created_at, id",
                        vec!["?"; orgs.len()].join(", ")
                    ))?
                    .query_map(params_from_iter(orgs.iter()), webhook_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"))?
                    .query_map([], webhook_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(|(a, b, d, e, f, g, h)| parse_webhook(a, b, d, e, f, g, h)).collect()
        })
        .await
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        self.write(move |c| Ok(c.execute("DELETE FROM webhooks WHERE id = ?1", [id.to_string()])? == 1)).await
    }

    async fn put_push_subscription(&self, p: &PushSubscriptionRecord) -> Result<Uuid> {
        let p = p.clone();
        self.write(move |c| {
            let id: String = c
                .query_row(
                    "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh,
                         auth = excluded.auth, created_at = excluded.created_at
                     RETURNING id",
                    params![p.id.to_string(), p.user.to_string(), p.endpoint, p.p256dh, p.auth, ms(p.created_at)],
                    |r| r.get(0),
                )
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::UnknownUser(p.user.to_string())
                    } else {
                        e.into()
                    }
                })?;
            Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("push subscription id {id:?}")))
        })
        .await
    }

    async fn list_push_subscriptions(&self, user: UserId) -> Result<Vec<PushSubscriptionRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {PUSH_COLUMNS} FROM push_subscriptions WHERE user_id = ?1 ORDER BY created_at, id"
            ))?
            .query_map([user.to_string()], push_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|(a, b, d, e, f, g)| parse_push(a, b, d, e, f, g))
            .collect()
        })
        .await
    }

    async fn push_subscription(&self, id: Uuid) -> Result<Option<PushSubscriptionRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {PUSH_COLUMNS} FROM push_subscriptions WHERE id = ?1"))?
                .query_row([id.to_string()], push_row)
                .optional()?
                .map(|(a, b, d, e, f, g)| parse_push(a, b, d, e, f, g))
                .transpose()
        })
        .await
    }

    async fn delete_push_subscription(&self, id: Uuid) -> Result<bool> {
        self.write(move |c| Ok(c.execute("DELETE FROM push_subscriptions WHERE id = ?1", [id.to_string()])? == 1)).await
    }

    async fn enqueue_deliveries(&self, rows: &[NewDelivery]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = rows.to_vec();
        self.write(move |c| {
            let now = ms(Utc::now());
            let tx = c.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO notification_outbox (id, channel, recipient, alert_id, payload, due_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
                )?;
                for d in &rows {
                    insert.execute(params![
                        d.id.to_string(),
                        d.channel,
                        d.recipient,
                        d.alert_id,
                        d.payload.to_string(),
                        ms(d.due_at),
                        now
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        self.write(move |c| {
            // One writer connection: the select and the update cannot interleave with another claim.
            let rows = c
                .prepare_cached(&format!(
                    "UPDATE notification_outbox SET due_at = ?2, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM notification_outbox
                                  WHERE delivered_at IS NULL AND failed_at IS NULL AND due_at <= ?1
                                  ORDER BY due_at, id LIMIT ?3)
                     RETURNING {DELIVERY_COLUMNS}"
                ))?
                .query_map(params![ms(now), ms(lease_until), i64::from(limit)], raw_delivery)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = rows.into_iter().map(RawDelivery::parse).collect::<Result<Vec<_>>>()?;
            out.sort_by_key(|d| d.created_at);
            Ok(out)
        })
        .await
    }

    async fn complete_delivery(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE notification_outbox SET delivered_at = ?2, last_error = NULL WHERE id = ?1",
                params![id.to_string(), ms(at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn retry_delivery(&self, id: Uuid, next_due: DateTime<Utc>, error: &str) -> Result<()> {
        let error = clip_error(error);
        self.write(move |c| {
            c.execute(
                "UPDATE notification_outbox SET due_at = ?2, last_error = ?3
                 WHERE id = ?1 AND delivered_at IS NULL",
                params![id.to_string(), ms(next_due), error],
            )?;
            Ok(())
        })
        .await
    }

    async fn fail_delivery(&self, id: Uuid, at: DateTime<Utc>, error: &str) -> Result<()> {
        let error = clip_error(error);
        self.write(move |c| {
            c.execute(
                "UPDATE notification_outbox SET failed_at = ?2, last_error = ?3 WHERE id = ?1 AND delivered_at IS NULL",
                params![id.to_string(), ms(at), error],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let f = filter.clone();
        self.read(move |c| {
            let (mut conds, mut args): (Vec<&str>, Vec<rusqlite::types::Value>) = (Vec::new(), Vec::new());
            if let Some(a) = &f.alert_id {
                conds.push("alert_id = ?");
                args.push(a.clone().into());
            }
            if let Some(ch) = &f.channel {
                conds.push("channel = ?");
                args.push(ch.clone().into());
            }
            if f.pending {
                conds.push("delivered_at IS NULL AND failed_at IS NULL");
            }
            let w = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
            args.push(i64::from(f.limit.max(1)).into());
            c.prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM notification_outbox{w} ORDER BY created_at, id LIMIT ?"
            ))?
            .query_map(params_from_iter(args.iter()), raw_delivery)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(RawDelivery::parse)
            .collect()
        })
        .await
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        self.write(move |c| {
            Ok(c.execute("DELETE FROM notification_outbox WHERE COALESCE(delivered_at, failed_at) < ?1", [ms(before)])?
                as u64)
        })
        .await
    }
}
