//! Web sessions: a random 256-bit id in an HttpOnly, SameSite=Lax cookie
//! (Secure and `__Host-` prefixed over https), stored only as its SHA-256,
//! ending after an idle period or an absolute lifetime, each with its own
//! CSRF synchronizer token. [`crate::policy`] turns a valid session into a
//! `Caller`; the sign-in pages start and end sessions here.

use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use socle_domain::{User, UserId};
use socle_storage::{StoreError, WebSession};

use crate::policy::hash_secret;
use crate::security::{cookie, cookie_name, random_secret, set_cookie};
use crate::settings::WebSettings;
use crate::AppState;

const SESSION_COOKIE: &str = "socle_session";
/// Before sign-in: the double-submit token of anonymous forms.
const PRE_COOKIE: &str = "socle_csrf";
/// The language chosen with the switch link.
pub const LANG_COOKIE: &str = "socle_lang";
/// Activity is written at most this often (seconds), not on every request.
const TOUCH_EVERY_SECS: i64 = 60;

/// The session a caller comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRef {
    pub(crate) id_hash: String,
    pub(crate) csrf: String,
}

pub fn session_cookie_name(settings: &WebSettings) -> String {
    cookie_name(settings, SESSION_COOKIE)
}

pub fn pre_cookie_name(settings: &WebSettings) -> String {
    cookie_name(settings, PRE_COOKIE)
}

fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The signed-in user behind the request's session cookie, if the session
/// is still valid. Expired sessions are deleted on sight.
pub(crate) async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Option<(User, SessionRef)>, StoreError> {
    let settings = &state.web.settings;
    let Some(id) = cookie(headers, &session_cookie_name(settings)).filter(|id| well_formed(id)) else {
        return Ok(None);
    };
    let store = state.accounts();
    let id_hash = hash_secret(id);
    let Some(s) = store.session(&id_hash).await? else { return Ok(None) };
    let now = Utc::now();
    let idle = chrono::Duration::from_std(settings.session_idle).unwrap_or(chrono::Duration::hours(12));
    if s.expires_at <= now || s.last_seen_at + idle <= now {
        store.delete_session(&id_hash).await?;
        return Ok(None);
    }
    let Some(user) = store.user(s.user).await?.filter(|u| !u.disabled) else { return Ok(None) };
    if (now - s.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
        store.touch_session(&id_hash, now).await?;
    }
    Ok(Some((user, SessionRef { id_hash, csrf: s.csrf_token })))
}

/// Starts a session for `user` (ending `previous`, so an id is never reused
/// across sign-ins) and returns its `Set-Cookie` header.
pub(crate) async fn start(
    state: &AppState,
    user: UserId,
    previous: Option<&SessionRef>,
) -> Result<HeaderValue, StoreError> {
    let settings = &state.web.settings;
    let store = state.accounts();
    if let Some(p) = previous {
        store.delete_session(&p.id_hash).await?;
    }
    let id = random_secret();
    let now = Utc::now();
    let absolute = chrono::Duration::from_std(settings.session_absolute).unwrap_or(chrono::Duration::days(7));
    store
        .create_session(
            &hash_secret(&id),
            &WebSession {
                user,
                csrf_token: random_secret(),
                created_at: now,
                last_seen_at: now,
                expires_at: now + absolute,
            },
        )
        .await?;
    Ok(set_cookie(settings, &session_cookie_name(settings), &id, Some(settings.session_absolute.as_secs())))
}

/// Ends a session; returns the `Set-Cookie` header that removes the cookie.
pub(crate) async fn end(state: &AppState, session: Option<&SessionRef>) -> Result<HeaderValue, StoreError> {
    if let Some(s) = session {
        state.accounts().delete_session(&s.id_hash).await?;
    }
    let settings = &state.web.settings;
    Ok(set_cookie(settings, &session_cookie_name(settings), "", Some(0)))
}

/// The double-submit token for an anonymous form: the existing pre-session
/// cookie, or a new one with the `Set-Cookie` header to send.
pub(crate) fn pre_session_token(settings: &WebSettings, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, &pre_cookie_name(settings)).filter(|v| well_formed(v)) {
        Some(v) => (v.to_owned(), None),
        None => {
            let v = random_secret();
            let header = set_cookie(settings, &pre_cookie_name(settings), &v, None);
            (v, Some(header))
        }
    }
}
