//! Establishing who someone is: password sign-in with brute-force
//! throttling, password reset by e-mail, and sign-in through OpenID Connect.
//! Every failed attempt lands in the audit trail under the user's id or the
//! client address, never the e-mail address; logs carry ids only.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use socle_domain::{AuditEntry, Email, OrganisationId, User, UserId};
use socle_storage::StoreError;

use crate::i18n::Lang;
use crate::mail::Mailer;
use crate::oidc::{OidcIdentity, Provider};
use crate::policy::{hash_password, hash_secret, verify_password};
use crate::ratelimit::Limiter;
use crate::security::random_secret;
use crate::settings::WebSettings;
use crate::AppState;

/// Passwords shorter than this are refused when set.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer input is refused before hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// A reset link works this long.
pub const RESET_VALIDITY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Everything the sign-in pages and the policy share for one server.
pub struct WebContext {
    pub settings: WebSettings,
    api_per_ip: Limiter<IpAddr>,
    api_per_token: Limiter<String>,
    sign_in_per_ip: Limiter<IpAddr>,
    pub(crate) mailer: Option<Mailer>,
    pub(crate) oidc: Option<Provider>,
}

impl WebContext {
    pub fn new(settings: WebSettings) -> Result<Self, String> {
        let mailer = settings.smtp.as_ref().map(Mailer::new).transpose()?;
        let oidc = settings.oidc.as_ref().map(|o| Provider::new(o, settings.public_url())).transpose()?;
        Ok(Self {
            api_per_ip: Limiter::per_minute(settings.rate_limit.per_ip_per_minute),
            api_per_token: Limiter::per_minute(settings.rate_limit.per_token_per_minute),
            sign_in_per_ip: Limiter::per_minute(settings.login.per_ip_per_minute),
            mailer,
            oidc,
            settings,
        })
    }

    /// The API rate limit: per token (or signed-in user) when there is one, else per address.
    pub(crate) fn api_rate_check(&self, key: Option<String>, ip: Option<IpAddr>) -> Result<(), Duration> {
        match (key, ip) {
            (Some(k), _) => self.api_per_token.check(&k),
            (None, Some(ip)) => self.api_per_ip.check(&ip),
            (None, None) => Ok(()),
        }
    }

    pub(crate) fn sign_in_rate_check(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        ip.map_or(Ok(()), |ip| self.sign_in_per_ip.check(&ip))
    }

    pub fn oidc_label(&self) -> Option<&str> {
        self.settings.oidc.as_ref().map(|o| o.label.as_str())
    }
}

/// How a sign-in attempt ended. Refusals are deliberately one kind: a wrong
/// password, an unknown address and a locked account look the same.
#[derive(Debug)]
pub enum SignIn {
    Accepted(User),
    Refused,
    /// Too many attempts from this address.
    Throttled,
}

/// Verifying against this hash costs what verifying a real one does, so an
/// unknown address answers as slowly as a known one.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("socle: no such account, same work").unwrap_or_default());

async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            let _ = verify_password(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Hashes on the blocking pool: argon2id is meant to be slow.
pub(crate) async fn hash_new_password(password: String) -> Option<String> {
    tokio::task::spawn_blocking(move || hash_password(&password).ok()).await.ok().flatten()
}

/// The lock after the `failures`-th failure in a row, if any: doubling delays
/// from `delay_after` (capped at a minute), the full lock from `lock_after`.
pub fn lock_for(settings: &WebSettings, failures: u32) -> Option<chrono::Duration> {
    let l = &settings.login;
    if failures >= l.lock_after {
        chrono::Duration::from_std(l.lock).ok()
    } else if failures >= l.delay_after {
        let secs = 1i64 << (failures - l.delay_after).min(6);
        Some(chrono::Duration::seconds(secs.min(60)))
    } else {
        None
    }
}

async fn audit(
    state: &AppState,
    actor: &str,
    orgs: &[OrganisationId],
    action: &str,
    object: &str,
    detail: &str,
) -> Result<(), StoreError> {
    // One line per organisation concerned, so each one's administrators see it.
    let orgs: Vec<Option<OrganisationId>> =
        if orgs.is_empty() { vec![None] } else { orgs.iter().cloned().map(Some).collect() };
    for organisation in orgs {
        state
            .accounts()
            .append_audit(&AuditEntry {
                at: Utc::now(),
                actor: actor.to_owned(),
                organisation,
                action: action.to_owned(),
                object: object.to_owned(),
                detail: detail.to_owned(),
            })
            .await?;
    }
    Ok(())
}

fn orgs_of(user: &User) -> Vec<OrganisationId> {
    let mut orgs: Vec<OrganisationId> = user.memberships.iter().map(|m| m.organisation.clone()).collect();
    orgs.dedup();
    orgs
}

fn ip_actor(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "ip:unknown".to_owned(), |ip| format!("ip:{ip}"))
}

/// Checks an e-mail address and password, applying the per-address and
/// per-account throttles, and records the attempt.
pub async fn password_sign_in(
    state: &AppState,
    ip: Option<IpAddr>,
    email: &str,
    password: &str,
) -> Result<SignIn, StoreError> {
    if state.web.sign_in_rate_check(ip).is_err() {
        audit(state, &ip_actor(ip), &[], "login.throttled", "address", "per-address limit").await?;
        tracing::info!(ip = ?ip, "sign-in throttled for this address");
        return Ok(SignIn::Throttled);
    }
    let password = password.to_owned();
    let credentials = match Email::parse(email) {
        Ok(e) if password.len() <= MAX_PASSWORD_BYTES => state.accounts().credentials(&e).await?,
        _ => None,
    };
    let now = Utc::now();
    let Some(c) = credentials.filter(|c| !c.user.disabled && c.password_hash.is_some()) else {
        verify(password, None).await;
        audit(state, &ip_actor(ip), &[], "login.failed", "unknown-account", "").await?;
        tracing::info!(ip = ?ip, "sign-in refused: no such active account");
        return Ok(SignIn::Refused);
    };
    let (user, orgs) = (c.user.id, orgs_of(&c.user));
    // While locked, the password is not even checked (no guess is gained),
    // yet the attempt counts: 20 in a row lock the account whatever their pace.
    let locked = c.locked_until.filter(|until| *until > now);
    let accepted =
        if locked.is_some() { verify(password, None).await } else { verify(password, c.password_hash.clone()).await };
    if accepted && locked.is_none() {
        state.accounts().record_login(user, true, None).await?;
        audit(state, &format!("user:{user}"), &orgs, "login.success", &format!("user:{user}"), "password").await?;
        tracing::info!(%user, "signed in with a password");
        return Ok(SignIn::Accepted(c.user));
    }
    let failures = c.failed_logins.saturating_add(1);
    let until = lock_for(&state.web.settings, failures).map(|d| now + d).max(locked);
    let count = state.accounts().record_login(user, false, until).await?;
    let detail = match until {
        Some(t) => format!("failures={count}; locked for {} s", (t - now).num_seconds()),
        None => format!("failures={count}"),
    };
    let action = if locked.is_some() { "login.locked" } else { "login.failed" };
    audit(state, &ip_actor(ip), &orgs, action, &format!("user:{user}"), &detail).await?;
    tracing::info!(%user, failures = count, locked = locked.is_some(), "sign-in refused");
    Ok(SignIn::Refused)
}

/// Starts a password reset: if the address belongs to an active account, a
/// single-use link valid one hour is mailed to it. Answers the same either
/// way (the mail leaves in the background), so nobody learns whether an
/// address has an account. `false` when the address is throttled.
pub async fn request_reset(state: &AppState, ip: Option<IpAddr>, email: &str, lang: Lang) -> Result<bool, StoreError> {
    if state.web.sign_in_rate_check(ip).is_err() {
        return Ok(false);
    }
    let user = match Email::parse(email) {
        Ok(e) => state.accounts().credentials(&e).await?.map(|c| c.user).filter(|u| !u.disabled),
        Err(_) => None,
    };
    let Some(user) = user else {
        audit(state, &ip_actor(ip), &[], "password.reset_requested", "unknown-account", "").await?;
        return Ok(true);
    };
    let token = random_secret();
    let now = Utc::now();
    state.accounts().create_password_reset(&hash_secret(&token), user.id, now, now + RESET_VALIDITY).await?;
    audit(state, &ip_actor(ip), &orgs_of(&user), "password.reset_requested", &format!("user:{}", user.id), "").await?;
    let link = format!("{}/mot-de-passe/{token}", state.web.settings.public_url());
    match state.web.mailer.clone() {
        Some(mailer) => {
            let (id, to) = (user.id, user.email.clone());
            tokio::spawn(async move { mailer.send_reset(id, &to, &link, lang).await });
        }
        None => tracing::warn!(user = %user.id, "password reset asked but no SMTP server is configured: no mail sent"),
    }
    Ok(true)
}

/// Whether a reset link can still be used.
pub async fn reset_is_valid(state: &AppState, token: &str) -> Result<bool, StoreError> {
    Ok(state.accounts().password_reset_user(&hash_secret(token), Utc::now()).await?.is_some())
}

/// Uses a reset link to set a new password (already checked for length),
/// and signs the user out everywhere. `None` if the link is not valid.
pub async fn reset_password(state: &AppState, token: &str, password: &str) -> Result<Option<UserId>, StoreError> {
    let Some(hash) = hash_new_password(password.to_owned()).await else { return Ok(None) };
    let Some(user) = state.accounts().use_password_reset(&hash_secret(token), Utc::now()).await? else {
        return Ok(None);
    };
    state.accounts().set_password(user, &hash).await?;
    let ended = state.accounts().delete_user_sessions(user).await?;
    let orgs = state.accounts().user(user).await?.map(|u| orgs_of(&u)).unwrap_or_default();
    audit(
        state,
        &format!("user:{user}"),
        &orgs,
        "password.reset",
        &format!("user:{user}"),
        &format!("{ended} sessions ended"),
    )
    .await?;
    tracing::info!(%user, "password reset");
    Ok(Some(user))
}

/// How an OpenID Connect sign-in maps to a Socle account.
#[derive(Debug)]
pub enum OidcSignIn {
    Accepted(User),
    /// The provider vouched for someone Socle does not know (and registration is off).
    Unknown,
}

/// Finds the user for a verified identity: by its subject; else by a
/// verified e-mail address of an account not yet linked (the subject is then
/// recorded); else, if allowed, a new account without any role.
pub async fn oidc_sign_in(state: &AppState, ip: Option<IpAddr>, id: OidcIdentity) -> Result<OidcSignIn, StoreError> {
    let store = state.accounts();
    let Some(settings) = state.web.settings.oidc.as_ref() else { return Ok(OidcSignIn::Unknown) };
    let mut user = store.user_by_oidc_subject(&id.subject).await?;
    if user.is_none() {
        let email = id.email.as_deref().filter(|_| id.email_verified || settings.trust_email).map(Email::parse);
        if let Some(Ok(email)) = email {
            if let Some(c) = store.credentials(&email).await? {
                store.set_oidc_subject(c.user.id, &id.subject).await?;
                audit(
                    state,
                    &format!("user:{}", c.user.id),
                    &orgs_of(&c.user),
                    "oidc.link",
                    &format!("user:{}", c.user.id),
                    "",
                )
                .await?;
                user = Some(c.user);
            } else if settings.allow_registration {
                let name = id.name.clone().unwrap_or_default();
                let created = store.create_user(&email, &name, None).await?;
                store.set_oidc_subject(created.id, &id.subject).await?;
                audit(
                    state,
                    &format!("user:{}", created.id),
                    &[],
                    "user.create",
                    &format!("user:{}", created.id),
                    "oidc",
                )
                .await?;
                user = Some(created);
            }
        }
    }
    match user.filter(|u| !u.disabled) {
        Some(u) => {
            audit(state, &format!("user:{}", u.id), &orgs_of(&u), "login.success", &format!("user:{}", u.id), "oidc")
                .await?;
            tracing::info!(user = %u.id, "signed in through OpenID Connect");
            Ok(OidcSignIn::Accepted(u))
        }
        None => {
            audit(state, &ip_actor(ip), &[], "login.failed", "unknown-account", "oidc").await?;
            tracing::info!(ip = ?ip, "OpenID Connect identity matches no account");
            Ok(OidcSignIn::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_then_last_fifteen_minutes() {
        let s = WebSettings::default();
        assert_eq!(lock_for(&s, 4), None);
        assert_eq!(lock_for(&s, 5), Some(chrono::Duration::seconds(1)));
        assert_eq!(lock_for(&s, 6), Some(chrono::Duration::seconds(2)));
        assert_eq!(lock_for(&s, 19), Some(chrono::Duration::seconds(60)));
        assert_eq!(lock_for(&s, 20), Some(chrono::Duration::minutes(15)));
        assert_eq!(lock_for(&s, 25), Some(chrono::Duration::minutes(15)));
    }
}
