//! [`Notifications`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{OrganisationId, UserId};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::notifications::{
    clip_error, parse_push, parse_subscription, parse_webhook, Delivery, DeliveryFilter, NewDelivery, Notifications,
    PushSubscriptionRecord, RawDelivery, StoredSubscription, StoredWebhook, DELIVERY_COLUMNS, PUSH_COLUMNS,
    SUBSCRIPTION_COLUMNS, WEBHOOK_COLUMNS,
};
use crate::postgres::PostgresStore;
use crate::rows::ms;
use crate::{Result, StoreError};

fn raw_delivery(r: &Row) -> Result<RawDelivery> {
    Ok(RawDelivery {
        id: r.try_get(0)?,
        channel: r.try_get(1)?,
        recipient: r.try_get(2)?,
        alert_id: r.try_get(3)?,
        payload: r.try_get(4)?,
        due_at: r.try_get(5)?,
        created_at: r.try_get(6)?,
        attempts: r.try_get(7)?,
        last_error: r.try_get(8)?,
        delivered_at: r.try_get(9)?,
        failed_at: r.try_get(10)?,
    })
}

fn subscription(r: &Row) -> Result<StoredSubscription> {
    parse_subscription(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)
}

fn webhook(r: &Row) -> Result<StoredWebhook> {
    parse_webhook(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
    )
}

fn push(r: &Row) -> Result<PushSubscriptionRecord> {
    parse_push(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?)
}

fn foreign_key(e: tokio_postgres::Error, missing: impl FnOnce() -> StoreError) -> StoreError {
    if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        missing()
    } else {
        e.into()
    }
}

#[async_trait]
impl Notifications for PostgresStore {
    async fn put_subscription(&self, s: &StoredSubscription) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO notification_subscriptions (id, user_id, spec, created_at, modified_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, modified_at = excluded.modified_at",
                &[&s.id.to_string(), &s.user.to_string(), &s.spec.to_string(), &ms(s.created_at), &ms(s.modified_at)],
            )
            .await
            .map_err(|e| foreign_key(e, || StoreError::UnknownUser(s.user.to_string())))?;
        Ok(())
    }

    async fn subscription(&self, id: Uuid) -> Result<Option<StoredSubscription>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM notification_subscriptions WHERE id = $1"),
                &[&id.to_string()],
            )
            .await?
            .as_ref()
            .map(subscription)
            .transpose()
    }

    async fn list_subscriptions(&self, user: Option<UserId>) -> Result<Vec<StoredSubscription>> {
        let client = self.client().await?;
        let rows = match user {
            Some(u) => {
                client
                    .query(
                        &format!(
                            "SELECT {SUBSCRIPTION_COLUMNS} FROM notification_subscriptions WHERE user_id = $1
                             ORDER BY created_at, id"
                        ),
                        &[&u.to_string()],
                    )
                    .await?
            }
            None => {
                client
                    .query(
                        &format!(
                            "SELECT {SUBSCRIPTION_COLUMNS} FROM notification_subscriptions ORDER BY created_at, id"
                        ),
                        &[],
                    )
                    .await?
            }
        };
        rows.iter().map(subscription).collect()
    }

    async fn delete_subscription(&self, id: Uuid) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM notification_subscriptions WHERE id = $1", &[&id.to_string()]).await? == 1)
    }

    async fn put_webhook(&self, w: &StoredWebhook) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO webhooks (id, organisation_id, url, secret, spec, created_at, modified_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
                     spec = excluded.spec, modified_at = excluded.modified_at",
                &[
                    &w.id.to_string(),
                    &w.organisation.as_str(),
                    &w.url,
                    &w.secret,
                    &w.spec.to_string(),
                    &ms(w.created_at),
                    &ms(w.modified_at),
                ],
            )
            .await
            .map_err(|e| foreign_key(e, || StoreError::UnknownOrganisation(w.organisation.to_string())))?;
        Ok(())
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"), &[&id.to_string()])
            .await?
            .as_ref()
            .map(webhook)
            .transpose()
    }

    async fn list_webhooks(&self, organisations: Option<&[OrganisationId]>) -> Result<Vec<StoredWebhook>> {
        let client = self.client().await?;
        let rows = match organisations {
            Some(orgs) => {
                let list: Vec<String> = orgs.iter().map(|o| o.to_string()).collect();
                client
                    .query(
                        &format!(
                            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organisation_id = ANY($1)
                             ORDER BY created_at, id"
                        ),
                        &[&list],
                    )
                    .await?
            }
            None => {
                client.query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"), &[]).await?
            }
        };
        rows.iter().map(webhook).collect()
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM webhooks WHERE id = $1", &[&id.to_string()]).await? == 1)
    }

    async fn put_push_subscription(&self, p: &PushSubscriptionRecord) -> Result<Uuid> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh,
                     auth = excluded.auth, created_at = excluded.created_at
                 RETURNING id",
                &[&p.id.to_string(), &p.user.to_string(), &p.endpoint, &p.p256dh, &p.auth, &ms(p.created_at)],
            )
            .await
            .map_err(|e| foreign_key(e, || StoreError::UnknownUser(p.user.to_string())))?;
        let id: String = row.try_get(0)?;
        Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("push subscription id {id:?}")))
    }

    async fn list_push_subscriptions(&self, user: UserId) -> Result<Vec<PushSubscriptionRecord>> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {PUSH_COLUMNS} FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at, id"),
                &[&user.to_string()],
            )
            .await?
            .iter()
            .map(push)
            .collect()
    }

    async fn push_subscription(&self, id: Uuid) -> Result<Option<PushSubscriptionRecord>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {PUSH_COLUMNS} FROM push_subscriptions WHERE id = $1"), &[&id.to_string()])
            .await?
            .as_ref()
            .map(push)
            .transpose()
    }

    async fn delete_push_subscription(&self, id: Uuid) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM push_subscriptions WHERE id = $1", &[&id.to_string()]).await? == 1)
    }

    async fn enqueue_deliveries(&self, rows: &[NewDelivery]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let now = ms(Utc::now());
        let tx = client.transaction().await?;
        let insert = tx
            .prepare(
                "INSERT INTO notification_outbox (id, channel, recipient, alert_id, payload, due_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        for d in rows {
            tx.execute(
                &insert,
                &[
                    &d.id.to_string(),
                    &d.channel,
                    &d.recipient,
                    &d.alert_id,
                    &d.payload.to_string(),
                    &ms(d.due_at),
                    &now,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let client = self.client().await?;
        // SKIP LOCKED: several instances claim disjoint rows without waiting on each other.
        let rows = client
            .query(
                &format!(
                    "UPDATE notification_outbox SET due_at = $2, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM notification_outbox
                                  WHERE delivered_at IS NULL AND failed_at IS NULL AND due_at <= $1
                                  ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&ms(now), &ms(lease_until), &i64::from(limit)],
            )
            .await?;
        let mut out = rows.iter().map(|r| raw_delivery(r)?.parse()).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|d| d.created_at);
        Ok(out)
    }

    async fn complete_delivery(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE notification_outbox SET delivered_at = $2, last_error = NULL WHERE id = $1",
                &[&id.to_string(), &ms(at)],
            )
            .await?;
        Ok(())
    }

    async fn retry_delivery(&self, id: Uuid, next_due: DateTime<Utc>, error: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE notification_outbox SET due_at = $2, last_error = $3 WHERE id = $1 AND delivered_at IS NULL",
                &[&id.to_string(), &ms(next_due), &clip_error(error)],
            )
            .await?;
        Ok(())
    }

    async fn fail_delivery(&self, id: Uuid, at: DateTime<Utc>, error: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE notification_outbox SET failed_at = $2, last_error = $3 WHERE id = $1 AND delivered_at IS NULL",
                &[&id.to_string(), &ms(at), &clip_error(error)],
            )
            .await?;
        Ok(())
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let client = self.client().await?;
        let mut conds = Vec::new();
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        if let Some(a) = &filter.alert_id {
            args.push(Box::new(a.clone()));
            conds.push(format!("alert_id = ${}", args.len()));
        }
        if let Some(ch) = &filter.channel {
            args.push(Box::new(ch.clone()));
            conds.push(format!("channel = ${}", args.len()));
        }
        if filter.pending {
            conds.push("delivered_at IS NULL AND failed_at IS NULL".into());
        }
        args.push(Box::new(i64::from(filter.limit.max(1))));
        let w = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM notification_outbox{w} ORDER BY created_at, id LIMIT ${}",
                    args.len()
                ),
                &params,
            )
            .await?
            .iter()
            .map(|r| raw_delivery(r)?.parse())
            .collect()
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        let client = self.client().await?;
        Ok(client
            .execute("DELETE FROM notification_outbox WHERE COALESCE(delivered_at, failed_at) < $1", &[&ms(before)])
            .await?)
    }
}
