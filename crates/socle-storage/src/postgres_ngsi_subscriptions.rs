//! [`NgsiSubscriptions`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::OrganisationId;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::ngsi_subscriptions::{
    NewNgsiNotification, NgsiNotification, NgsiSubscriptions, RawNgsiNotification, RawNgsiSubscription,
    StoredNgsiSubscription, NGSI_NOTIFICATION_COLUMNS, NGSI_SUBSCRIPTION_COLUMNS,
};
use crate::notifications::clip_error;
use crate::postgres::PostgresStore;
use crate::rows::ms;
use crate::{Result, StoreError};

fn subscription(r: &Row) -> Result<StoredNgsiSubscription> {
    RawNgsiSubscription {
        id: r.try_get(0)?,
        organisation: r.try_get(1)?,
        tenant_only: r.try_get(2)?,
        owner: r.try_get(3)?,
        spec: r.try_get(4)?,
        created_at: r.try_get(5)?,
        modified_at: r.try_get(6)?,
        times_sent: r.try_get(7)?,
        times_failed: r.try_get(8)?,
        last_notification: r.try_get(9)?,
        last_success: r.try_get(10)?,
        last_failure: r.try_get(11)?,
    }
    .parse()
}

fn notification(r: &Row) -> Result<NgsiNotification> {
    RawNgsiNotification {
        id: r.try_get(0)?,
        subscription: r.try_get(1)?,
        body: r.try_get(2)?,
        due_at: r.try_get(3)?,
        created_at: r.try_get(4)?,
        attempts: r.try_get(5)?,
        last_error: r.try_get(6)?,
        delivered_at: r.try_get(7)?,
        failed_at: r.try_get(8)?,
    }
    .parse()
}

async fn count_attempt(tx: &tokio_postgres::Transaction<'_>, id: Uuid, at: DateTime<Utc>, ok: bool) -> Result<()> {
    let sql = if ok {
        "UPDATE ngsi_subscriptions SET times_sent = times_sent + 1, last_notification = $2, last_success = $2
         WHERE id = (SELECT subscription_id FROM ngsi_notification_outbox WHERE id = $1)"
    } else {
        "UPDATE ngsi_subscriptions SET times_sent = times_sent + 1, times_failed = times_failed + 1,
             last_notification = $2, last_failure = $2
         WHERE id = (SELECT subscription_id FROM ngsi_notification_outbox WHERE id = $1)"
    };
    tx.execute(sql, &[&id.to_string(), &ms(at)]).await?;
    Ok(())
}

#[async_trait]
impl NgsiSubscriptions for PostgresStore {
    async fn create_ngsi_subscription(&self, s: &StoredNgsiSubscription) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO ngsi_subscriptions (id, organisation_id, tenant_only, owner_user, spec, created_at, modified_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &s.id,
                    &s.organisation.as_str(),
                    &s.tenant_only,
                    &s.owner.to_string(),
                    &s.spec.to_string(),
                    &ms(s.created_at),
                    &ms(s.modified_at),
                ],
            )
            .await
            .map_err(|e| match e.code() {
                Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(format!("subscription {}", s.id)),
                Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
                    StoreError::UnknownOrganisation(format!("{} (or user {})", s.organisation, s.owner))
                }
                _ => e.into(),
            })?;
        Ok(())
    }

    async fn update_ngsi_subscription(&self, id: &str, spec: &serde_json::Value, at: DateTime<Utc>) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE ngsi_subscriptions SET spec = $2, modified_at = $3 WHERE id = $1",
                &[&id, &spec.to_string(), &ms(at)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn ngsi_subscription(&self, id: &str) -> Result<Option<StoredNgsiSubscription>> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {NGSI_SUBSCRIPTION_COLUMNS} FROM ngsi_subscriptions WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(subscription)
            .transpose()
    }

    async fn list_ngsi_subscriptions(
        &self,
        organisations: Option<&[OrganisationId]>,
    ) -> Result<Vec<StoredNgsiSubscription>> {
        let client = self.client().await?;
        let rows = match organisations {
            Some(orgs) => {
                let orgs: Vec<String> = orgs.iter().map(|o| o.to_string()).collect();
                client
                    .query(
                        &format!(
                            "SELECT {NGSI_SUBSCRIPTION_COLUMNS} FROM ngsi_subscriptions
                             WHERE organisation_id = ANY($1) ORDER BY created_at, id"
                        ),
                        &[&orgs],
                    )
                    .await?
            }
            None => {
                client
                    .query(
                        &format!("SELECT {NGSI_SUBSCRIPTION_COLUMNS} FROM ngsi_subscriptions ORDER BY created_at, id"),
                        &[],
                    )
                    .await?
            }
        };
        rows.iter().map(subscription).collect()
    }

    async fn delete_ngsi_subscription(&self, id: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM ngsi_notification_outbox WHERE subscription_id = $1", &[&id]).await?;
        let gone = tx.execute("DELETE FROM ngsi_subscriptions WHERE id = $1", &[&id]).await? == 1;
        tx.commit().await?;
        Ok(gone)
    }

    async fn enqueue_ngsi_notifications(&self, rows: &[NewNgsiNotification]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let now = ms(Utc::now());
        let tx = client.transaction().await?;
        // A subscription deleted meanwhile gets nothing (and is no error).
        let insert = tx
            .prepare(
                "INSERT INTO ngsi_notification_outbox (id, subscription_id, body, due_at, created_at)
                 SELECT $1::text, $2::text, $3::text, $4::bigint, $5::bigint
                 WHERE EXISTS (SELECT 1 FROM ngsi_subscriptions WHERE id = $2::text)
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        let mut inserted = 0;
        for n in rows {
            inserted += tx
                .execute(&insert, &[&n.id.to_string(), &n.subscription, &n.body.to_string(), &ms(n.due_at), &now])
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn claim_ngsi_notifications(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<NgsiNotification>> {
        let client = self.client().await?;
        // SKIP LOCKED: several instances claim disjoint rows without waiting on each other.
        let rows = client
            .query(
                &format!(
                    "UPDATE ngsi_notification_outbox SET due_at = $2, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM ngsi_notification_outbox
                                  WHERE delivered_at IS NULL AND failed_at IS NULL AND due_at <= $1
                                  ORDER BY due_at, created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING {NGSI_NOTIFICATION_COLUMNS}"
                ),
                &[&ms(now), &ms(lease_until), &i64::from(limit)],
            )
            .await?;
        let mut out = rows.iter().map(notification).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|a| (a.created_at, a.notification.id));
        Ok(out)
    }

    async fn complete_ngsi_notification(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE ngsi_notification_outbox SET delivered_at = $2, last_error = NULL
                 WHERE id = $1 AND delivered_at IS NULL",
                &[&id.to_string(), &ms(at)],
            )
            .await?;
        if changed == 1 {
            count_attempt(&tx, id, at, true).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retry_ngsi_notification(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        next_due: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        let error = clip_error(error);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE ngsi_notification_outbox SET due_at = $2, last_error = $3 WHERE id = $1 AND delivered_at IS NULL",
                &[&id.to_string(), &ms(next_due), &error],
            )
            .await?;
        if changed == 1 {
            count_attempt(&tx, id, at, false).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fail_ngsi_notification(&self, id: Uuid, at: DateTime<Utc>, error: &str) -> Result<()> {
        let error = clip_error(error);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE ngsi_notification_outbox SET failed_at = $2, last_error = $3
                 WHERE id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
                &[&id.to_string(), &ms(at), &error],
            )
            .await?;
        if changed == 1 {
            count_attempt(&tx, id, at, false).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_ngsi_notifications(&self, subscription: Option<&str>, limit: u32) -> Result<Vec<NgsiNotification>> {
        let client = self.client().await?;
        let limit = i64::from(limit.max(1));
        let rows = match subscription {
            Some(s) => {
                client
                    .query(
                        &format!(
                            "SELECT {NGSI_NOTIFICATION_COLUMNS} FROM ngsi_notification_outbox WHERE subscription_id = $1
                             ORDER BY created_at, id LIMIT $2"
                        ),
                        &[&s, &limit],
                    )
                    .await?
            }
            None => {
                client
                    .query(
                        &format!(
                            "SELECT {NGSI_NOTIFICATION_COLUMNS} FROM ngsi_notification_outbox ORDER BY created_at, id LIMIT $1"
                        ),
                        &[&limit],
                    )
                    .await?
            }
        };
        rows.iter().map(notification).collect()
    }

    async fn purge_ngsi_notifications(&self, before: DateTime<Utc>) -> Result<u64> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM ngsi_notification_outbox WHERE COALESCE(delivered_at, failed_at) < $1",
                &[&ms(before)],
            )
            .await?)
    }
}
