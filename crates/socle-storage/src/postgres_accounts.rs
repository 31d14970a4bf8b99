//! [`Accounts`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use socle_domain::{ApiToken, AuditEntry, Credentials, Email, OrganisationId, Role, User, UserId};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use crate::accounts::{Accounts, PendingOidcLogin, WebSession};
use crate::postgres::PostgresStore;
use crate::rows::{from_ms, ms, RawAudit, RawToken, RawUser};
use crate::{Result, StoreError};

/// A user row and its (organisation, role) memberships.
type UserRows = (RawUser, Vec<(String, String)>);

const USER_COLUMNS: &str = "id, email, display_name, disabled, created_at, password_hash, failed_logins, locked_until";
const TOKEN_COLUMNS: &str = "id, kind, label, user_id, organisation_id, scope, created_at, expires_at, revoked_at";

fn raw_user(r: &Row) -> Result<RawUser> {
    Ok(RawUser {
        id: r.try_get(0)?,
        email: r.try_get(1)?,
        display_name: r.try_get(2)?,
        disabled: r.try_get(3)?,
        created_at: r.try_get(4)?,
        password_hash: r.try_get(5)?,
        failed_logins: i64::from(r.try_get::<_, i32>(6)?),
        locked_until: r.try_get(7)?,
    })
}

fn raw_token(r: &Row) -> Result<RawToken> {
    Ok(RawToken {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        label: r.try_get(2)?,
        user: r.try_get(3)?,
        organisation: r.try_get(4)?,
        scope: r.try_get(5)?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
        revoked_at: r.try_get(8)?,
    })
}

async fn memberships(client: &Object, user: &str) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT organisation_id, role FROM memberships WHERE user_id = $1 ORDER BY organisation_id, role",
            &[&user],
        )
        .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

async fn load_user(client: &Object, column: &str, key: &str) -> Result<Option<UserRows>> {
    // `column` is one of two constants, never input.
    let Some(row) = client.query_opt(&format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1"), &[&key]).await?
    else {
        return Ok(None);
    };
    let raw = raw_user(&row)?;
    let m = memberships(client, &raw.id).await?;
    Ok(Some((raw, m)))
}

#[async_trait]
impl Accounts for PostgresStore {
    async fn create_user(&self, email: &Email, display_name: &str, password_hash: Option<&str>) -> Result<User> {
        let client = self.client().await?;
        let id = UserId::new().to_string();
        let inserted = client
            .execute(
                "INSERT INTO users (id, email, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&id, &email.as_str(), &display_name, &password_hash, &ms(Utc::now())],
            )
            .await;
        match inserted {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::Conflict("a user with this e-mail".into()))
            }
            other => other?,
        };
        let (raw, m) = load_user(&client, "id", &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("user vanished after insert".into()))?;
        raw.into_user(m)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        let client = self.client().await?;
        load_user(&client, "id", &id.to_string()).await?.map(|(raw, m)| raw.into_user(m)).transpose()
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>> {
        let client = self.client().await?;
        load_user(&client, "email", email.as_str()).await?.map(|(raw, m)| raw.into_credentials(m)).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"), &[]).await?;
        let mut users = Vec::with_capacity(rows.len());
        for r in rows {
            let raw = raw_user(&r)?;
            let m = memberships(&client, &raw.id).await?;
            users.push(raw.into_user(m)?);
        }
        Ok(users)
    }

    async fn set_password(&self, id: UserId, password_hash: &str) -> Result<()> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL WHERE id = $1",
                &[&id.to_string(), &password_hash],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::UnknownUser(id.to_string()));
        }
        Ok(())
    }

    async fn record_login(&self, id: UserId, success: bool, lock_until: Option<DateTime<Utc>>) -> Result<u32> {
        let client = self.client().await?;
        let row = if success {
            client
                .query_opt(
                    "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1 RETURNING failed_logins",
                    &[&id.to_string()],
                )
                .await?
        } else {
            client
                .query_opt(
                    "UPDATE users SET failed_logins = failed_logins + 1, locked_until = COALESCE($2, locked_until)
                     WHERE id = $1 RETURNING failed_logins",
                    &[&id.to_string(), &lock_until.map(ms)],
                )
                .await?
        };
        let row = row.ok_or_else(|| StoreError::UnknownUser(id.to_string()))?;
        Ok(u32::try_from(row.try_get::<_, i32>(0)?).unwrap_or(0))
    }

    async fn grant(&self, user: UserId, organisation: &OrganisationId, role: Role) -> Result<()> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1), EXISTS (SELECT 1 FROM organisations WHERE id = $2)",
                &[&user.to_string(), &organisation.as_str()],
            )
            .await?;
        if !row.try_get::<_, bool>(0)? {
            return Err(StoreError::UnknownUser(user.to_string()));
        }
        if !row.try_get::<_, bool>(1)? {
            return Err(StoreError::UnknownOrganisation(organisation.to_string()));
        }
        client
            .execute(
                "INSERT INTO memberships (user_id, organisation_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&user.to_string(), &organisation.as_str(), &role.as_str()],
            )
            .await?;
        Ok(())
    }

    async fn revoke(&self, user: UserId, organisation: &OrganisationId, role: Role) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM memberships WHERE user_id = $1 AND organisation_id = $2 AND role = $3",
                &[&user.to_string(), &organisation.as_str(), &role.as_str()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn create_token(&self, t: &ApiToken, secret_hash: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO api_tokens ({TOKEN_COLUMNS}, secret_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
                &[
                    &t.id.to_string(),
                    &t.kind.as_str(),
                    &t.label,
                    &t.user.map(|u| u.to_string()),
                    &t.organisation.as_str(),
                    &t.scope.as_str(),
                    &ms(t.created_at),
                    &t.expires_at.map(ms),
                    &t.revoked_at.map(ms),
                    &secret_hash,
                ],
            )
            .await?;
        Ok(())
    }

    async fn token_by_secret_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = $1"), &[&secret_hash])
            .await?;
        row.as_ref().map(raw_token).transpose()?.map(RawToken::parse).transpose()
    }

    async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        let client = self.client().await?;
        let rows = match user {
            Some(u) => {
                client
                    .query(
                        &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at"),
                        &[&u.to_string()],
                    )
                    .await?
            }
            None => client.query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at"), &[]).await?,
        };
        rows.iter().map(|r| raw_token(r)?.parse()).collect()
    }

    async fn revoke_token(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id.to_string(), &ms(at)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn create_session(&self, id_hash: &str, s: &WebSession) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id_hash,
                    &s.user.to_string(),
                    &s.csrf_token,
                    &ms(s.created_at),
                    &ms(s.last_seen_at),
                    &ms(s.expires_at),
                ],
            )
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<WebSession>> {
        let client = self.client().await?;
        let Some(r) = client
            .query_opt(
                "SELECT user_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .await?
        else {
            return Ok(None);
        };
        let user: String = r.try_get(0)?;
        Ok(Some(WebSession {
            user: UserId::parse(&user).map_err(|e| StoreError::Corrupt(format!("session user: {e}")))?,
            csrf_token: r.try_get(1)?,
            created_at: from_ms(r.try_get(2)?)?,
            last_seen_at: from_ms(r.try_get(3)?)?,
            expires_at: from_ms(r.try_get(4)?)?,
        }))
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        let client = self.client().await?;
        client.execute("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1", &[&id_hash, &ms(at)]).await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash]).await? == 1)
    }

    async fn delete_user_sessions(&self, user: UserId) -> Result<u64> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM sessions WHERE user_id = $1", &[&user.to_string()]).await?)
    }

    async fn create_password_reset(
        &self,
        token_hash: &str,
        user: UserId,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&token_hash, &user.to_string(), &ms(created_at), &ms(expires_at)],
            )
            .await;
        match inserted {
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(StoreError::UnknownUser(user.to_string()))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    async fn password_reset_user(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<UserId>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
                &[&token_hash, &ms(now)],
            )
            .await?;
        row.map(|r| {
            let u: String = r.try_get(0)?;
            UserId::parse(&u).map_err(|e| StoreError::Corrupt(format!("reset user: {e}")))
        })
        .transpose()
    }

    async fn use_password_reset(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<UserId>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE password_resets SET used_at = $2
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                &[&token_hash, &ms(now)],
            )
            .await?;
        let user: Option<String> = row.map(|r| r.try_get(0)).transpose()?;
        if let Some(u) = &user {
            tx.execute(
                "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
                &[u, &ms(now)],
            )
            .await?;
        }
        tx.commit().await?;
        user.map(|u| UserId::parse(&u).map_err(|e| StoreError::Corrupt(format!("reset user: {e}")))).transpose()
    }

    async fn user_by_oidc_subject(&self, subject: &str) -> Result<Option<User>> {
        let client = self.client().await?;
        load_user(&client, "oidc_subject", subject).await?.map(|(raw, m)| raw.into_user(m)).transpose()
    }

    async fn set_oidc_subject(&self, user: UserId, subject: &str) -> Result<()> {
        let client = self.client().await?;
        match client.execute("UPDATE users SET oidc_subject = $2 WHERE id = $1", &[&user.to_string(), &subject]).await {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Conflict("a user with this OpenID subject".into()))
            }
            Err(e) => Err(e.into()),
            Ok(0) => Err(StoreError::UnknownUser(user.to_string())),
            Ok(_) => Ok(()),
        }
    }

    async fn create_oidc_login(&self, state_hash: &str, l: &PendingOidcLogin) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO oidc_logins (state_hash, nonce, pkce_verifier, return_to, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&state_hash, &l.nonce, &l.pkce_verifier, &l.return_to, &ms(l.expires_at)],
            )
            .await?;
        Ok(())
    }

    async fn take_oidc_login(&self, state_hash: &str, now: DateTime<Utc>) -> Result<Option<PendingOidcLogin>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING nonce, pkce_verifier, return_to, expires_at",
                &[&state_hash],
            )
            .await?;
        match row {
            Some(r) if r.try_get::<_, i64>(3)? > ms(now) => Ok(Some(PendingOidcLogin {
                nonce: r.try_get(0)?,
                pkce_verifier: r.try_get(1)?,
                return_to: r.try_get(2)?,
                expires_at: from_ms(r.try_get(3)?)?,
            })),
            _ => Ok(None),
        }
    }

    async fn purge_expired_sign_ins(&self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut n = tx
            .execute("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2", &[&ms(now), &ms(idle_before)])
            .await?;
        n += tx
            .execute("DELETE FROM password_resets WHERE expires_at <= $1 OR used_at IS NOT NULL", &[&ms(now)])
            .await?;
        n += tx.execute("DELETE FROM oidc_logins WHERE expires_at <= $1", &[&ms(now)]).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO audit_log (at, actor, organisation_id, action, object, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&ms(e.at), &e.actor, &e.organisation.as_ref().map(OrganisationId::as_str), &e.action, &e.object, &e.detail],
            )
            .await?;
        Ok(())
    }

    async fn audit_log(&self, organisations: Option<&[OrganisationId]>, limit: u32) -> Result<Vec<AuditEntry>> {
        let client = self.client().await?;
        let limit = i64::from(limit);
        let rows = match organisations {
            None => {
                client
                    .query(
                        "SELECT at, actor, organisation_id, action, object, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                        &[&limit],
                    )
                    .await?
            }
            Some(orgs) => {
                let orgs: Vec<String> = orgs.iter().map(ToString::to_string).collect();
                client
                    .query(
                        "SELECT at, actor, organisation_id, action, object, detail FROM audit_log
                         WHERE organisation_id = ANY($1) ORDER BY id DESC LIMIT $2",
                        &[&orgs, &limit],
                    )
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                RawAudit {
                    at: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    organisation: r.try_get(2)?,
                    action: r.try_get(3)?,
                    object: r.try_get(4)?,
                    detail: r.try_get(5)?,
                }
                .parse()
            })
            .collect()
    }
}
