//! The server-rendered pages: sign-in and sign-out, forgotten password,
//! the account page with its API tokens, and the hypervisor (`hypervisor`:
//! map, entity pages, dashboards, élu view). French by default, English from
//! `Accept-Language` or the language link; typed askama templates sharing
//! one layout (`templates/layout.html`). Pages are complete without script;
//! one bundled script (`assets`) adds the map, charts and live values.
//! Access, CSRF and rate limits are enforced by [`crate::policy`] before
//! these handlers run.

use std::sync::LazyLock;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LANGUAGE, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use socle_domain::{OrganisationId, TokenScope};

use crate::auth::{self, OidcSignIn, SignIn, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use crate::i18n::Lang;
use crate::session::{self, LANG_COOKIE};
use crate::{AppState, Caller};

pub mod alerts;
pub mod assets;
pub mod dashboards;
pub mod hypervisor;
pub mod layers;
pub mod opendata;
pub mod opendata_chart;
pub mod opendata_words;
pub mod rule_form;
pub mod texts;
pub mod words;
use texts::Texts;
use words::Words;

/// The style sheet's name carries a hash of its content, so it can be cached for a year.
pub static CSS_FILE: LazyLock<String> = LazyLock::new(|| assets::CSS.file.clone());

/// The language of a page: the `socle_lang` cookie set by the switch link,
/// else `Accept-Language`, else French.
pub fn page_lang(headers: &HeaderMap) -> Lang {
    match crate::security::cookie(headers, LANG_COOKIE) {
        Some("en") => Lang::En,
        Some("fr") => Lang::Fr,
        _ => headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|h| h.to_str().ok())
            .map_or(Lang::Fr, Lang::from_accept_language),
    }
}

/// What the layout needs: words, style sheets and script, the CSRF token of
/// its forms, and which section of the navigation the page belongs to.
pub struct Chrome {
    pub t: &'static Texts,
    pub h: &'static Words,
    pub css: &'static str,
    pub app_css: &'static str,
    pub js: &'static str,
    pub csrf: String,
    pub signed_in: bool,
    pub lang_href: String,
    /// `carte`, `tableaux`, `elu`, `donnees`, `compte` or empty: marks the current link (`aria-current`).
    pub section: &'static str,
}

impl Chrome {
    fn new(lang: Lang, csrf: String, signed_in: bool, lang_href: String) -> Self {
        Chrome {
            t: Texts::of(lang),
            h: Words::of(lang),
            css: assets::CSS.href.as_str(),
            app_css: assets::APP_CSS.href.as_str(),
            js: assets::JS.href.as_str(),
            csrf,
            signed_in,
            lang_href,
            section: "",
        }
    }

    /// `aria-current="page"` for the current section's link.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// The chrome of a page, and the pre-session cookie to set if the visitor
/// is anonymous and has none yet.
fn chrome(state: &AppState, caller: &Caller, headers: &HeaderMap, path: &str) -> (Chrome, Option<HeaderValue>) {
    let lang = page_lang(headers);
    let t = Texts::of(lang);
    let (csrf, cookie) = match caller.csrf_token() {
        Some(c) => (c.to_owned(), None),
        None => session::pre_session_token(&state.web.settings, headers),
    };
    let lang_href = format!("/langue?l={}&retour={}", t.other_lang_code, urlencode(path));
    (Chrome::new(lang, csrf, caller.csrf_token().is_some(), lang_href), cookie)
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|v| v[1..].to_owned()).unwrap_or_default()
}

/// A local path to return to after sign-in, never another site.
fn local_path(p: Option<&str>) -> String {
    match p {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() <= 512 => p.to_owned(),
        _ => "/compte".to_owned(),
    }
}

fn html<T: Template>(status: StatusCode, lang: &'static str, page: &T, cookies: Vec<HeaderValue>) -> Response {
    let body = match page.render() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CONTENT_LANGUAGE, HeaderValue::from_static(lang));
    // Pages show personal data and one-time secrets: never stored by caches.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        h.append(SET_COOKIE, c);
    }
    res
}

fn see_other(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(LOCATION, v);
    }
    for c in cookies {
        res.headers_mut().append(SET_COOKIE, c);
    }
    res
}

/// Anonymous visitors of a signed-in page go to the sign-in form, and come back after.
pub fn to_sign_in(path: &str) -> Response {
    see_other(&format!("/connexion?retour={}", urlencode(path)), Vec::new())
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    c: Chrome,
    title: &'static str,
    text: &'static str,
}

/// The answer to a state-changing request whose CSRF token is missing or wrong.
pub fn csrf_refused(parts: &Parts) -> Response {
    let lang = page_lang(&parts.headers);
    let t = Texts::of(lang);
    let c = Chrome::new(lang, String::new(), false, "/connexion".into());
    html(StatusCode::FORBIDDEN, t.lang, &MessagePage { c, title: t.forbidden_title, text: t.form_expired }, Vec::new())
}

fn message(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    status: StatusCode,
    title: fn(&Texts) -> &'static str,
    text: fn(&Texts) -> &'static str,
) -> Response {
    let (c, cookie) = chrome(state, caller, headers, "/connexion");
    let t = c.t;
    html(status, t.lang, &MessagePage { c, title: title(t), text: text(t) }, cookie.into_iter().collect())
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "web page failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

// ---------------------------------------------------------------- assets

/// A style sheet or script, under its content-hashed name.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = assets::find(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut res = asset.body.into_response();
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    res
}

#[derive(Deserialize)]
pub struct LangQuery {
    l: Option<String>,
    retour: Option<String>,
}

/// The language link: remembers the choice for a year and goes back.
pub async fn switch_lang(State(state): State<AppState>, Query(q): Query<LangQuery>) -> Response {
    let lang = if q.l.as_deref() == Some("en") { "en" } else { "fr" };
    let mut cookie = format!("{LANG_COOKIE}={lang}; Path=/; SameSite=Lax; Max-Age=31536000");
    if state.web.settings.https() {
        cookie.push_str("; Secure");
    }
    let cookie = HeaderValue::from_str(&cookie).expect("ASCII cookie");
    see_other(&local_path(q.retour.as_deref()), vec![cookie])
}

/// The home page is the map.
pub async fn home() -> Response {
    see_other("/carte", Vec::new())
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    email_error: Option<&'static str>,
    password_error: Option<&'static str>,
    email: String,
    return_to: String,
    oidc_label: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    retour: Option<String>,
    info: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let (c, cookie) = chrome(&state, &caller, &headers, "/connexion");
    let t = c.t;
    let (notice, error) = match q.info.as_deref() {
        Some("deconnecte") => (Some(t.signed_out), None),
        Some("mot-de-passe") => (Some(t.password_changed), None),
        Some("oidc-echec") => (None, Some(t.oidc_failed)),
        Some("oidc-inconnu") => (None, Some(t.oidc_unknown)),
        _ => (None, None),
    };
    let page = LoginPage {
        c,
        notice,
        error,
        email_error: None,
        password_error: None,
        email: String::new(),
        return_to: local_path(q.retour.as_deref()),
        oidc_label: state.web.oidc_label().map(str::to_owned),
    };
    html(StatusCode::OK, t.lang, &page, cookie.into_iter().collect())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    retour: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let (c, cookie) = chrome(&state, &caller, &headers, "/connexion");
    let t = c.t;
    let mut page = LoginPage {
        c,
        notice: None,
        error: None,
        email_error: form.email.trim().is_empty().then_some(t.email_missing),
        password_error: form.password.is_empty().then_some(t.password_missing),
        email: form.email.chars().take(254).collect(),
        return_to: local_path(form.retour.as_deref()),
        oidc_label: state.web.oidc_label().map(str::to_owned),
    };
    if page.email_error.is_some() || page.password_error.is_some() {
        return html(StatusCode::UNPROCESSABLE_ENTITY, t.lang, &page, cookie.into_iter().collect());
    }
    match auth::password_sign_in(&state, caller.ip, &form.email, &form.password).await {
        Ok(SignIn::Accepted(user)) => match session::start(&state, user.id, caller.session.as_ref()).await {
            Ok(set) => see_other(&page.return_to, vec![set]),
            Err(e) => internal(e),
        },
        Ok(SignIn::Refused) => {
            page.error = Some(t.login_refused);
            html(StatusCode::UNPROCESSABLE_ENTITY, t.lang, &page, cookie.into_iter().collect())
        }
        Ok(SignIn::Throttled) => {
            page.error = Some(t.login_throttled);
            let mut res = html(StatusCode::TOO_MANY_REQUESTS, t.lang, &page, cookie.into_iter().collect());
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("60"));
            res
        }
        Err(e) => internal(e),
    }
}

pub async fn logout(State(state): State<AppState>, caller: Caller) -> Response {
    match session::end(&state, caller.session.as_ref()).await {
        Ok(clear) => {
            if let Some(user) = caller.user().filter(|_| caller.session.is_some()) {
                tracing::info!(%user, "signed out");
            }
            see_other("/connexion?info=deconnecte", vec![clear])
        }
        Err(e) => internal(e),
    }
}

// ---------------------------------------------------------------- password reset

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    c: Chrome,
    sent: bool,
    error: Option<&'static str>,
    email_error: Option<&'static str>,
    email: String,
}

pub async fn forgot_page(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Response {
    let (c, cookie) = chrome(&state, &caller, &headers, "/mot-de-passe-oublie");
    let lang = c.t.lang;
    let page = ForgotPage { c, sent: false, error: None, email_error: None, email: String::new() };
    html(StatusCode::OK, lang, &page, cookie.into_iter().collect())
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

pub async fn forgot_submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Response {
    let (c, cookie) = chrome(&state, &caller, &headers, "/mot-de-passe-oublie");
    let t = c.t;
    let mut page =
        ForgotPage { c, sent: false, error: None, email_error: None, email: form.email.chars().take(254).collect() };
    if form.email.trim().is_empty() {
        page.email_error = Some(t.email_missing);
        return html(StatusCode::UNPROCESSABLE_ENTITY, t.lang, &page, cookie.into_iter().collect());
    }
    match auth::request_reset(&state, caller.ip, &form.email, page_lang(&headers)).await {
        Ok(true) => {
            page.sent = true;
            page.email.clear();
            html(StatusCode::OK, t.lang, &page, cookie.into_iter().collect())
        }
        Ok(false) => {
            page.error = Some(t.login_throttled);
            html(StatusCode::TOO_MANY_REQUESTS, t.lang, &page, cookie.into_iter().collect())
        }
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    c: Chrome,
    valid: bool,
    token: String,
    password_error: Option<&'static str>,
    confirm_error: Option<&'static str>,
}

fn well_formed_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn reset_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    // The language link must not carry the secret: it points to the forgotten-password page.
    let (c, cookie) = chrome(&state, &caller, &headers, "/mot-de-passe-oublie");
    let lang = c.t.lang;
    let valid = well_formed_token(&token) && auth::reset_is_valid(&state, &token).await.unwrap_or(false);
    let status = if valid { StatusCode::OK } else { StatusCode::NOT_FOUND };
    let page = ResetPage {
        c,
        valid,
        token: if valid { token } else { String::new() },
        password_error: None,
        confirm_error: None,
    };
    html(status, lang, &page, cookie.into_iter().collect())
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn reset_submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<ResetForm>,
) -> Response {
    let (c, cookie) = chrome(&state, &caller, &headers, "/mot-de-passe-oublie");
    let t = c.t;
    let valid = well_formed_token(&token);
    let mut page = ResetPage { c, valid, token: token.clone(), password_error: None, confirm_error: None };
    if !valid {
        page.token.clear();
        return html(StatusCode::NOT_FOUND, t.lang, &page, cookie.into_iter().collect());
    }
    if form.password.chars().count() < MIN_PASSWORD_CHARS || form.password.len() > MAX_PASSWORD_BYTES {
        page.password_error = Some(t.password_too_short);
    } else if form.password != form.confirm {
        page.confirm_error = Some(t.password_mismatch);
    }
    if page.password_error.is_some() || page.confirm_error.is_some() {
        page.valid = auth::reset_is_valid(&state, &token).await.unwrap_or(false);
        return html(StatusCode::UNPROCESSABLE_ENTITY, t.lang, &page, cookie.into_iter().collect());
    }
    match auth::reset_password(&state, &token, &form.password).await {
        Ok(Some(_)) => {
            // Any session of this browser ended with the others.
            let clear = session::end(&state, None).await.ok();
            see_other("/connexion?info=mot-de-passe", clear.into_iter().collect())
        }
        Ok(None) => {
            page.valid = false;
            page.token.clear();
            html(StatusCode::NOT_FOUND, t.lang, &page, cookie.into_iter().collect())
        }
        Err(e) => internal(e),
    }
}

// ---------------------------------------------------------------- OpenID Connect

#[derive(Deserialize)]
pub struct OidcStartQuery {
    retour: Option<String>,
}

pub async fn oidc_start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<OidcStartQuery>,
) -> Response {
    let Some(provider) = state.web.oidc.as_ref() else {
        return message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found);
    };
    // Each start stores a pending sign-in: counted like password attempts.
    if state.web.sign_in_rate_check(caller.ip).is_err() {
        return message(
            &state,
            &caller,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            |t| t.too_many_title,
            |t| t.login_throttled,
        );
    }
    match provider.begin(state.accounts(), &local_path(q.retour.as_deref())).await {
        Ok(url) => see_other(&url, Vec::new()),
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect sign-in could not start");
            see_other("/connexion?info=oidc-echec", Vec::new())
        }
    }
}

#[derive(Deserialize)]
pub struct OidcCallback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

pub async fn oidc_callback(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<OidcCallback>,
) -> Response {
    let Some(provider) = state.web.oidc.as_ref() else {
        return message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found);
    };
    let (Some(st), Some(code)) = (q.state.as_deref(), q.code.as_deref()) else {
        tracing::info!(provider_error = q.error.as_deref().unwrap_or("none"), "OpenID Connect callback without a code");
        return see_other("/connexion?info=oidc-echec", Vec::new());
    };
    let (identity, return_to) = match provider.finish(state.accounts(), st, code).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect sign-in failed");
            return see_other("/connexion?info=oidc-echec", Vec::new());
        }
    };
    match auth::oidc_sign_in(&state, caller.ip, identity).await {
        Ok(OidcSignIn::Accepted(user)) => match session::start(&state, user.id, caller.session.as_ref()).await {
            Ok(set) => see_other(&local_path(Some(&return_to)), vec![set]),
            Err(e) => internal(e),
        },
        Ok(OidcSignIn::Unknown) => see_other("/connexion?info=oidc-inconnu", Vec::new()),
        Err(e) => internal(e),
    }
}

// ---------------------------------------------------------------- account

struct MembershipRow {
    organisation: String,
    role: &'static str,
}

struct TokenRow {
    id: String,
    label: String,
    organisation: String,
    scope: &'static str,
    created: String,
    expires: String,
    state: &'static str,
    active: bool,
}

#[derive(Default)]
struct TokenForm {
    label: String,
    organisation: String,
    scope: String,
    days: String,
    label_error: Option<&'static str>,
    organisation_error: Option<&'static str>,
    scope_error: Option<&'static str>,
    days_error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    c: Chrome,
    notice: Option<&'static str>,
    new_secret: Option<String>,
    name: String,
    email: String,
    memberships: Vec<MembershipRow>,
    tokens: Vec<TokenRow>,
    organisations: Vec<(String, String)>,
    scopes: Vec<(&'static str, &'static str)>,
    form: TokenForm,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    info: Option<String>,
}

async fn account_response(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<&'static str>,
    new_secret: Option<String>,
    form: Option<TokenForm>,
) -> Response {
    let (mut c, _) = chrome(state, caller, headers, "/compte");
    c.section = "compte";
    let t = c.t;
    let scoped = state.scoped(caller);
    let (me, tokens, orgs) = match (scoped.me().await, scoped.my_tokens().await, state.organisations().await) {
        (Ok(Some(me)), Ok(tokens), Ok(orgs)) => (me, tokens, orgs),
        (Ok(None), ..) => return to_sign_in("/compte"),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return internal(e),
    };
    let org_name =
        |id: &OrganisationId| orgs.iter().find(|o| &o.id == id).map_or_else(|| id.to_string(), |o| o.name.clone());
    let date = |d: chrono::DateTime<chrono::Utc>| match t.lang {
        "fr" => d.format("%d/%m/%Y").to_string(),
        _ => d.format("%Y-%m-%d").to_string(),
    };
    let now = chrono::Utc::now();
    let mut organisations: Vec<(String, String)> =
        me.memberships.iter().map(|m| (m.organisation.to_string(), org_name(&m.organisation))).collect();
    organisations.dedup();
    let form = form.unwrap_or_else(|| TokenForm {
        organisation: organisations.first().map(|o| o.0.clone()).unwrap_or_default(),
        scope: "read".into(),
        days: "90".into(),
        ..TokenForm::default()
    });
    let page = AccountPage {
        notice,
        new_secret,
        name: me.display_name.clone(),
        email: me.email.as_str().to_owned(),
        memberships: me
            .memberships
            .iter()
            .map(|m| MembershipRow { organisation: org_name(&m.organisation), role: t.role(m.role) })
            .collect(),
        tokens: tokens
            .iter()
            .rev()
            .map(|tk| {
                let active = tk.is_usable(now);
                TokenRow {
                    id: tk.id.to_string(),
                    label: tk.label.clone(),
                    organisation: org_name(&tk.organisation),
                    scope: t.scope(tk.scope),
                    created: date(tk.created_at),
                    expires: tk.expires_at.map_or_else(|| t.never.to_owned(), date),
                    state: if tk.revoked_at.is_some() {
                        t.revoked
                    } else if active {
                        t.active
                    } else {
                        t.expired
                    },
                    active,
                }
            })
            .collect(),
        organisations,
        scopes: [TokenScope::Read, TokenScope::Write, TokenScope::Admin].map(|s| (s.as_str(), t.scope(s))).to_vec(),
        form,
        c,
    };
    html(status, t.lang, &page, Vec::new())
}

pub async fn account_page(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<AccountQuery>,
) -> Response {
    let t = Texts::of(page_lang(&headers));
    let notice = (q.info.as_deref() == Some("revoque")).then_some(t.token_revoked);
    account_response(&state, &caller, &headers, StatusCode::OK, notice, None, None).await
}

#[derive(Deserialize)]
pub struct CreateTokenForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    days: String,
}

pub async fn token_create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Form(f): Form<CreateTokenForm>,
) -> Response {
    let t = Texts::of(page_lang(&headers));
    let label = f.label.trim().to_owned();
    let mut form = TokenForm {
        label: label.clone(),
        organisation: f.organisation.clone(),
        scope: f.scope.clone(),
        days: f.days.clone(),
        ..TokenForm::default()
    };
    if label.is_empty() || label.chars().count() > 100 {
        form.label_error = Some(t.label_missing);
    }
    let org = OrganisationId::parse(&f.organisation).ok();
    if org.is_none() {
        form.organisation_error = Some(t.choice_invalid);
    }
    let scope = f.scope.parse::<TokenScope>().ok();
    if scope.is_none() {
        form.scope_error = Some(t.choice_invalid);
    }
    let days = f.days.trim().parse::<i64>().ok().filter(|d| (1..=365).contains(d));
    if days.is_none() {
        form.days_error = Some(t.days_invalid);
    }
    let (Some(org), Some(scope), Some(days), None) = (org, scope, days, form.label_error) else {
        return account_response(&state, &caller, &headers, StatusCode::UNPROCESSABLE_ENTITY, None, None, Some(form))
            .await;
    };
    match state.scoped(&caller).create_my_token(&label, &org, scope, chrono::Duration::days(days)).await {
        Ok(Some((_, secret))) => {
            account_response(&state, &caller, &headers, StatusCode::CREATED, None, Some(secret), None).await
        }
        Ok(None) => {
            form.organisation_error = Some(t.choice_invalid);
            account_response(&state, &caller, &headers, StatusCode::UNPROCESSABLE_ENTITY, None, None, Some(form)).await
        }
        Err(e) => internal(e),
    }
}

pub async fn token_revoke(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let revoked = match uuid::Uuid::parse_str(&id) {
        Ok(id) => state.scoped(&caller).revoke_my_token(id).await,
        Err(_) => Ok(false),
    };
    match revoked {
        Ok(true) => see_other("/compte?info=revoque", Vec::new()),
        Ok(false) => message(&state, &caller, &headers, StatusCode::NOT_FOUND, |t| t.not_found_title, |t| t.not_found),
        Err(e) => internal(e),
    }
}
