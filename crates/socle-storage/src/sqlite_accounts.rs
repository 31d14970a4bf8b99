//! [`Accounts`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use socle_domain::{ApiToken, AuditEntry, Credentials, Email, OrganisationId, Role, User, UserId};

use crate::accounts::{Accounts, PendingOidcLogin, WebSession};
use crate::rows::{from_ms, ms, RawAudit, RawToken, RawUser};
use crate::sqlite::{is_unique_violation, SqliteStore};
use crate::{Result, StoreError};

/// A user row and its (organisation, role) memberships.
type UserRows = (RawUser, Vec<(String, String)>);

const USER_COLUMNS: &str = "id, email, display_name, disabled, created_at, password_hash, failed_logins, locked_until";
const TOKEN_COLUMNS: &str = "id, kind, label, user_id, organisation_id, scope, created_at, expires_at, revoked_at";

fn raw_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok(RawUser {
        id: r.get(0)?,
        email: r.get(1)?,
        display_name: r.get(2)?,
        disabled: r.get(3)?,
        created_at: r.get(4)?,
        password_hash: r.get(5)?,
        failed_logins: r.get(6)?,
        locked_until: r.get(7)?,
    })
}

fn raw_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawToken> {
    Ok(RawToken {
        id: r.get(0)?,
        kind: r.get(1)?,
        label: r.get(2)?,
        user: r.get(3)?,
        organisation: r.get(4)?,
        scope: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

fn memberships(conn: &Connection, user: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT organisation_id, role FROM memberships WHERE user_id = ?1 ORDER BY organisation_id, role",
    )?;
    let rows = stmt.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn load_user(conn: &Connection, where_clause: &str, key: &str) -> Result<Option<UserRows>> {
    let raw = conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE {where_clause}"))?
        .query_row([key], raw_user)
        .optional()?;
    match raw {
        None => Ok(None),
        Some(raw) => {
            let m = memberships(conn, &raw.id)?;
            Ok(Some((raw, m)))
        }
    }
}

fn user_exists(conn: &Connection, id: &str) -> Result<()> {
    let exists: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)", [id], |r| r.get(0))?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::UnknownUser(id.to_owned()))
    }
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_user(&self, email: &Email, display_name: &str, password_hash: Option<&str>) -> Result<User> {
        let id = UserId::new();
        let (email, name, hash) =
            (email.as_str().to_owned(), display_name.to_owned(), password_hash.map(str::to_owned));
        self.write(move |c| {
            let inserted = c.execute(
                "INSERT INTO users (id, email, display_name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id.to_string(), email, name, hash, ms(Utc::now())],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict("a user with this e-mail".into()))
                }
                other => other?,
            };
            let (raw, m) = load_user(c, "id = ?1", &id.to_string())?
                .ok_or_else(|| StoreError::Corrupt("user vanished after insert".into()))?;
            raw.into_user(m)
        })
        .await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        self.read(move |c| load_user(c, "id = ?1", &id.to_string())?.map(|(raw, m)| raw.into_user(m)).transpose()).await
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>> {
        let email = email.as_str().to_owned();
        self.read(move |c| load_user(c, "email = ?1", &email)?.map(|(raw, m)| raw.into_credentials(m)).transpose())
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            let raws: Vec<RawUser> = c
                .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"))?
                .query_map([], raw_user)?
                .collect::<rusqlite::Result<_>>()?;
            raws.into_iter()
                .map(|raw| {
                    let m = memberships(c, &raw.id)?;
                    raw.into_user(m)
                })
                .collect()
        })
        .await
    }

    async fn set_password(&self, id: UserId, password_hash: &str) -> Result<()> {
        let hash = password_hash.to_owned();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until = NULL WHERE id = ?1",
                params![id.to_string(), hash],
            )?;
            if n == 0 {
                return Err(StoreError::UnknownUser(id.to_string()));
            }
            Ok(())
        })
        .await
    }

    async fn record_login(&self, id: UserId, success: bool, lock_until: Option<DateTime<Utc>>) -> Result<u32> {
        self.write(move |c| {
            let sql = if success {
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?1 RETURNING failed_logins"
            } else {
                "UPDATE users SET failed_logins = failed_logins + 1, locked_until = COALESCE(?2, locked_until)
                 WHERE id = ?1 RETURNING failed_logins"
            };
            let count: Option<u32> = if success {
                c.query_row(sql, [id.to_string()], |r| r.get(0)).optional()?
            } else {
                c.query_row(sql, params![id.to_string(), lock_until.map(ms)], |r| r.get(0)).optional()?
            };
            count.ok_or_else(|| StoreError::UnknownUser(id.to_string()))
        })
        .await
    }

    async fn grant(&self, user: UserId, organisation: &OrganisationId, role: Role) -> Result<()> {
        let org = organisation.to_string();
        self.write(move |c| {
            user_exists(c, &user.to_string())?;
            let org_exists: bool =
                c.query_row("SELECT EXISTS (SELECT 1 FROM organisations WHERE id = ?1)", [&org], |r| r.get(0))?;
            if !org_exists {
                return Err(StoreError::UnknownOrganisation(org));
            }
            c.execute(
                "INSERT INTO memberships (user_id, organisation_id, role) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![user.to_string(), org, role.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke(&self, user: UserId, organisation: &OrganisationId, role: Role) -> Result<bool> {
        let org = organisation.to_string();
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM memberships WHERE user_id = ?1 AND organisation_id = ?2 AND role = ?3",
                params![user.to_string(), org, role.as_str()],
            )? == 1)
        })
        .await
    }

    async fn create_token(&self, token: &ApiToken, secret_hash: &str) -> Result<()> {
        let (t, hash) = (token.clone(), secret_hash.to_owned());
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO api_tokens ({TOKEN_COLUMNS}, secret_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    t.id.to_string(),
                    t.kind.as_str(),
                    t.label,
                    t.user.map(|u| u.to_string()),
                    t.organisation.as_str(),
                    t.scope.as_str(),
                    ms(t.created_at),
                    t.expires_at.map(ms),
                    t.revoked_at.map(ms),
                    hash
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token_by_secret_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>> {
        let hash = secret_hash.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = ?1"))?
                .query_row([hash], raw_token)
                .optional()?
                .map(RawToken::parse)
                .transpose()
        })
        .await
    }

    async fn list_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        self.read(move |c| {
            let raws: Vec<RawToken> = match user {
                Some(u) => c
                    .prepare(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ?1 ORDER BY created_at"))?
                    .query_map([u.to_string()], raw_token)?
                    .collect::<rusqlite::Result<_>>()?,
                None => c
                    .prepare(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at"))?
                    .query_map([], raw_token)?
                    .collect::<rusqlite::Result<_>>()?,
            };
            raws.into_iter().map(RawToken::parse).collect()
        })
        .await
    }

    async fn revoke_token(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<bool> {
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.to_string(), ms(at)],
            )? == 1)
        })
        .await
    }

    async fn create_session(&self, id_hash: &str, session: &WebSession) -> Result<()> {
        let (hash, s) = (id_hash.to_owned(), session.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![hash, s.user.to_string(), s.csrf_token, ms(s.created_at), ms(s.last_seen_at), ms(s.expires_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<WebSession>> {
        let hash = id_hash.to_owned();
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT user_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions WHERE id_hash = ?1",
                )?
                .query_row([hash], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            row.map(|(user, csrf_token, created, seen, expires)| {
                Ok(WebSession {
                    user: UserId::parse(&user).map_err(|e| StoreError::Corrupt(format!("session user: {e}")))?,
                    csrf_token,
                    created_at: from_ms(created)?,
                    last_seen_at: from_ms(seen)?,
                    expires_at: from_ms(expires)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<()> {
        let hash = id_hash.to_owned();
        self.write(move |c| {
            c.execute("UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1", params![hash, ms(at)])?;
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool> {
        let hash = id_hash.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM sessions WHERE id_hash = ?1", [hash])? == 1)).await
    }

    async fn delete_user_sessions(&self, user: UserId) -> Result<u64> {
        self.write(move |c| Ok(c.execute("DELETE FROM sessions WHERE user_id = ?1", [user.to_string()])? as u64)).await
    }

    async fn create_password_reset(
        &self,
        token_hash: &str,
        user: UserId,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let hash = token_hash.to_owned();
        self.write(move |c| {
            user_exists(c, &user.to_string())?;
            c.execute(
                "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash, user.to_string(), ms(created_at), ms(expires_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn password_reset_user(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<UserId>> {
        let hash = token_hash.to_owned();
        self.read(move |c| {
            let user: Option<String> = c
                .query_row(
                    "SELECT user_id FROM password_resets WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                    params![hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            user.map(|u| UserId::parse(&u).map_err(|e| StoreError::Corrupt(format!("reset user: {e}")))).transpose()
        })
        .await
    }

    async fn use_password_reset(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<UserId>> {
        let hash = token_hash.to_owned();
        self.write(move |c| {
            let tx = c.transaction()?;
            let user: Option<String> = tx
                .query_row(
                    "UPDATE password_resets SET used_at = ?2
                     WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING user_id",
                    params![hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(u) = &user {
                tx.execute(
                    "UPDATE password_resets SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
                    params![u, ms(now)],
                )?;
            }
            tx.commit()?;
            user.map(|u| UserId::parse(&u).map_err(|e| StoreError::Corrupt(format!("reset user: {e}")))).transpose()
        })
        .await
    }

    async fn user_by_oidc_subject(&self, subject: &str) -> Result<Option<User>> {
        let sub = subject.to_owned();
        self.read(move |c| load_user(c, "oidc_subject = ?1", &sub)?.map(|(raw, m)| raw.into_user(m)).transpose()).await
    }

    async fn set_oidc_subject(&self, user: UserId, subject: &str) -> Result<()> {
        let sub = subject.to_owned();
        self.write(move |c| {
            match c.execute("UPDATE users SET oidc_subject = ?2 WHERE id = ?1", params![user.to_string(), sub]) {
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict("a user with this OpenID subject".into()))
                }
                Err(e) => Err(e.into()),
                Ok(0) => Err(StoreError::UnknownUser(user.to_string())),
                Ok(_) => Ok(()),
            }
        })
        .await
    }

    async fn create_oidc_login(&self, state_hash: &str, login: &PendingOidcLogin) -> Result<()> {
        let (hash, l) = (state_hash.to_owned(), login.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO oidc_logins (state_hash, nonce, pkce_verifier, return_to, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, l.nonce, l.pkce_verifier, l.return_to, ms(l.expires_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_oidc_login(&self, state_hash: &str, now: DateTime<Utc>) -> Result<Option<PendingOidcLogin>> {
        let hash = state_hash.to_owned();
        self.write(move |c| {
            let row = c
                .query_row(
                    "DELETE FROM oidc_logins WHERE state_hash = ?1 RETURNING nonce, pkce_verifier, return_to, expires_at",
                    [hash],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?)),
                )
                .optional()?;
            match row {
                Some((nonce, pkce_verifier, return_to, expires)) if expires > ms(now) => {
                    Ok(Some(PendingOidcLogin { nonce, pkce_verifier, return_to, expires_at: from_ms(expires)? }))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    async fn purge_expired_sign_ins(&self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let mut n = tx.execute(
                "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
                params![ms(now), ms(idle_before)],
            )?;
            n += tx.execute("DELETE FROM password_resets WHERE expires_at <= ?1 OR used_at IS NOT NULL", [ms(now)])?;
            n += tx.execute("DELETE FROM oidc_logins WHERE expires_at <= ?1", [ms(now)])?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let e = entry.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit_log (at, actor, organisation_id, action, object, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![ms(e.at), e.actor, e.organisation.as_ref().map(OrganisationId::as_str), e.action, e.object, e.detail])?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, organisations: Option<&[OrganisationId]>, limit: u32) -> Result<Vec<AuditEntry>> {
        let orgs: Option<Vec<String>> = organisations.map(|o| o.iter().map(ToString::to_string).collect());
        self.read(move |c| {
            let (filter, mut args): (String, Vec<rusqlite::types::Value>) = match &orgs {
                None => (String::new(), Vec::new()),
                Some(o) if o.is_empty() => return Ok(Vec::new()),
                Some(o) => (
                    format!("WHERE organisation_id IN ({})", vec!["?"; o.len()].join(", ")),
                    o.iter().map(|s| rusqlite::types::Value::from(s.clone())).collect(),
                ),
            };
            args.push(i64::from(limit).into());
            let mut stmt = c.prepare(&format!(
                "SELECT at, actor, organisation_id, action, object, detail FROM audit_log {filter} ORDER BY id DESC LIMIT ?"
            ))?;
            let raws: Vec<RawAudit> = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok(RawAudit {
                        at: r.get(0)?,
                        actor: r.get(1)?,
                        organisation: r.get(2)?,
                        action: r.get(3)?,
                        object: r.get(4)?,
                        detail: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            raws.into_iter().map(RawAudit::parse).collect()
        })
        .await
    }
}
