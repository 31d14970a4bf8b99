//! The one place where access is decided.
//!
//! A request's caller is established once (`Caller`, from a bearer token or
//! a web session cookie); every route declares what it requires (`Access`,
//! in the route table of `lib.rs`), enforced before its handler runs together
//! with the rate limits and the CSRF check of state-changing requests; and
//! handlers reach data only through [`Scoped`], which applies the caller's
//! audience to every read. The store is private to this module, except for
//! the authentication modules (`session`, `auth`), which establish identity.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};
use socle_domain::{
    ApiToken, Audience, AuditEntry, Entity, EntityFilter, EntityId, Membership, Organisation, OrganisationId, Page,
    Reach, Role, SeriesInfo, SeriesPoints, SeriesQuery, TokenKind, TokenScope, User, UserId,
};
use socle_storage::{Accounts, DynStore, StorageStats, StoreError};

use crate::auth::WebContext;
use crate::i18n::Lang;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::session::SessionRef;
use crate::settings::WebSettings;
use crate::Limits;

mod alerts;
mod hypervisor;
mod ingestion;
pub use alerts::{AlertError, AlertQuery, AlertView, AlertWiring};
pub use hypervisor::LiveFeed;
mod ngsi;
mod ngsi_subscriptions;
mod notifications;
mod opendata;
pub use ingestion::ManageError;
pub use ngsi::{NgsiScoped, ALERT_TYPE};
pub use ngsi_subscriptions::SubscriptionView;
pub use opendata::{DatasetError, DatasetRecords, ManagedDataset, VisibleDataset};

/// What every handler can reach. The store is private: handlers go through
/// [`AppState::scoped`] or the narrow operations below.
#[derive(Clone)]
pub struct AppState {
    store: DynStore,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    /// Sign-in settings, rate limiters, mailer and identity provider.
    pub web: Arc<WebContext>,
    /// Where ingestion endpoints hand bodies (reached through [`Scoped`]).
    ingestion: socle_ingestion::Pipeline,
    /// The alerting service and the Web Push key, attached after start-up.
    alerts: Arc<AlertWiring>,
}

impl AppState {
    /// With the default web settings (no mail, no OpenID Connect).
    pub fn new(store: DynStore) -> Self {
        Self::with_settings(store, WebSettings::default()).expect("the default settings are valid")
    }

    /// Fails when the settings cannot work (an SMTP relay or issuer that is not a valid name or URL).
    pub fn with_settings(store: DynStore, settings: WebSettings) -> Result<Self, String> {
        let pipeline = socle_ingestion::Pipeline::new(store.clone(), socle_ingestion::PipelineConfig::default());
        let state = Self {
            ingestion: pipeline.clone(),
            store,
            metrics: Arc::new(Metrics::default()),
            limits: Arc::new(Limits::default()),
            web: Arc::new(WebContext::new(settings)?),
            alerts: alerts::wiring(),
        };
        Ok(state.with_pipeline(pipeline))
    }

    /// Accounts only (users, sessions, resets, OpenID links), for the modules
    /// that establish identity (`session`, `auth`, `oidc`). Entities and
    /// series stay out of their reach; handlers go through [`AppState::scoped`].
    pub(crate) fn accounts(&self) -> &dyn Accounts {
        self.store.as_ref()
    }

    /// The data the caller may see.
    pub fn scoped(&self, caller: &Caller) -> Scoped {
        Scoped {
            store: self.store.clone(),
            caller: caller.clone(),
            ingestion: self.ingestion.clone(),
            alerts: self.alerts.clone(),
        }
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    pub async fn stats(&self) -> Result<StorageStats, StoreError> {
        self.store.stats().await
    }

    /// The organisation directory is public: names and official codes of
    /// public bodies are public information.
    pub async fn organisations(&self) -> Result<Vec<Organisation>, StoreError> {
        self.store.list_organisations().await
    }

    pub async fn organisation(&self, id: &OrganisationId) -> Result<Option<Organisation>, StoreError> {
        self.store.organisation(id).await
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Anonymous,
    /// A personal token: its user's memberships, cut down to the token's
    /// organisation, and capped by the token's scope.
    Token {
        token: ApiToken,
        user: UserId,
    },
    /// An ingestion token: may push measurements for its organisation, read nothing private.
    Ingestion {
        token: ApiToken,
    },
    /// A person signed in through the web pages: all the user's memberships,
    /// with administrator-level scope (no token caps it).
    Session {
        user: UserId,
    },
}

/// The caller of a request with everything needed to decide.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    memberships: Vec<Membership>,
    scope: Option<TokenScope>,
    /// Parent of each organisation, to expand syndicate rights to member communes.
    parents: Arc<HashMap<OrganisationId, Option<OrganisationId>>>,
    from_loopback: bool,
    /// The client address (behind trusted proxies, the forwarded one).
    pub ip: Option<IpAddr>,
    /// The web session this caller comes from, with its CSRF token.
    pub(crate) session: Option<SessionRef>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self {
            principal: Principal::Anonymous,
            memberships: Vec::new(),
            scope: None,
            parents: Arc::default(),
            from_loopback: false,
            ip: None,
            session: None,
        }
    }

    /// The user this caller acts for, if any.
    pub fn user(&self) -> Option<UserId> {
        match &self.principal {
            Principal::Token { user, .. } | Principal::Session { user } => Some(*user),
            Principal::Anonymous | Principal::Ingestion { .. } => None,
        }
    }

    /// The synchronizer token of the caller's web session.
    pub fn csrf_token(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.csrf.as_str())
    }

    /// `ip:<address>`: how the audit trail names a caller not yet signed in.
    pub fn ip_actor(&self) -> String {
        self.ip.map_or_else(|| "ip:unknown".to_owned(), |ip| format!("ip:{ip}"))
    }

    /// The key of the caller's API rate limit: its token or user, else its address.
    fn rate_key(&self) -> Option<String> {
        match &self.principal {
            Principal::Token { token, .. } | Principal::Ingestion { token } => Some(format!("token:{}", token.id)),
            Principal::Session { user } => Some(format!("user:{user}")),
            Principal::Anonymous => None,
        }
    }

    /// `user:<id>` / `token:<id>` / `anonymous`: how the audit trail names the caller.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Anonymous => "anonymous".into(),
            Principal::Token { token, user } => format!("user:{user} token:{}", token.id),
            Principal::Ingestion { token } => format!("ingestion-token:{}", token.id),
            Principal::Session { user } => format!("user:{user}"),
        }
    }

    fn children(&self, org: &OrganisationId) -> Vec<OrganisationId> {
        self.parents.iter().filter(|(_, p)| p.as_ref() == Some(org)).map(|(c, _)| c.clone()).collect()
    }

    /// The organisation and all organisations below it.
    fn with_descendants(&self, org: &OrganisationId) -> BTreeSet<OrganisationId> {
        let mut out = BTreeSet::from([org.clone()]);
        let mut todo = vec![org.clone()];
        while let Some(o) = todo.pop() {
            for c in self.children(&o) {
                if out.insert(c.clone()) {
                    todo.push(c);
                }
            }
        }
        out
    }

    /// The organisations whose data this caller reads as a member, and the
    /// reach that follows.
    pub fn audience(&self) -> Audience {
        if self.memberships.is_empty() {
            return Audience::Public;
        }
        let (mut full, mut internal, mut partner) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for m in &self.memberships {
            let org = &m.organisation;
            match m.role {
                Role::Partner => {
                    partner.insert(org.clone());
                    full.insert(org.clone());
                }
                Role::Admin => full.extend(self.with_descendants(org)),
                Role::Agent | Role::Elected => {
                    full.insert(org.clone());
                }
            }
            if m.role != Role::Partner {
                internal.insert(org.clone());
                internal.extend(self.children(org));
                if let Some(Some(parent)) = self.parents.get(org) {
                    internal.insert(parent.clone());
                }
            }
        }
        Audience::Members(Reach {
            full: full.into_iter().collect(),
            internal: internal.into_iter().collect(),
            partner: partner.into_iter().collect(),
        })
    }

    /// Organisations this caller administers (an admin of a syndicate
    /// administers its member communes), within its token's scope.
    pub fn administered(&self) -> Vec<OrganisationId> {
        if self.scope < Some(TokenScope::Admin) {
            return Vec::new();
        }
        let mut out = BTreeSet::new();
        for m in self.memberships.iter().filter(|m| m.role == Role::Admin) {
            out.extend(self.with_descendants(&m.organisation));
        }
        out.into_iter().collect()
    }

    /// A person with at least one membership (ingestion tokens are not people).
    pub fn is_member(&self) -> bool {
        matches!(self.principal, Principal::Token { .. } | Principal::Session { .. }) && !self.memberships.is_empty()
    }

    pub fn is_authenticated(&self) -> bool {
        !matches!(self.principal, Principal::Anonymous)
    }
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random token secret: `socle_pat_…` (personal) or `socle_ing_…` (ingestion).
pub fn new_token_secret(kind: TokenKind) -> String {
    let mut bytes = [0u8; 32];
    // The OS generator does not fail on supported platforms; if it ever
    // did, an all-zero secret must not be issued.
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    let prefix = match kind {
        TokenKind::Personal => "socle_pat_",
        TokenKind::Ingestion => "socle_ing_",
    };
    format!("{prefix}{}", hex::encode(bytes))
}

fn unauthorized(lang: Lang) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        lang,
        ("Authentification requise", "Authentication required"),
        lang.pick(
            "Cette ressource demande un jeton d'API valide (en-tête Authorization: Bearer …).",
            "This resource needs a valid API token (Authorization: Bearer … header).",
        ),
    )
}

fn forbidden(lang: Lang) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        lang,
        ("Accès refusé", "Forbidden"),
        lang.pick("Vos droits ne permettent pas cette action.", "Your rights do not allow this action."),
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let lang = Lang::from_request_parts(parts, state).await.unwrap_or(Lang::Fr);
        let ip =
            crate::security::client_ip(&parts.headers, crate::security::peer(&parts.extensions), &state.web.settings);
        let from_loopback = ip.is_some_and(|ip| ip.is_loopback());
        // Network-server integrations may send their token as `X-Socle-Token: <secret>` instead.
        let socle_token = parts.headers.get("x-socle-token").and_then(|v| v.to_str().ok());
        let socle_token = socle_token.and_then(|t| HeaderValue::from_str(&format!("Bearer {}", t.trim())).ok());
        let Some(header) = parts.headers.get(header::AUTHORIZATION).or(socle_token.as_ref()) else {
            // No token: a web session cookie, or nobody. A stale cookie is no error.
            let caller =
                match crate::session::resolve(state, &parts.headers).await.map_err(|e| Problem::from_store(lang, e))? {
                    Some((user, session)) => Caller {
                        principal: Principal::Session { user: user.id },
                        memberships: user.memberships,
                        scope: Some(TokenScope::Admin),
                        parents: organisation_parents(state, lang).await?,
                        from_loopback,
                        ip,
                        session: Some(session),
                    },
                    None => Caller { from_loopback, ip, ..Caller::anonymous() },
                };
            parts.extensions.insert(caller.clone());
            return Ok(caller);
        };
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| unauthorized(lang))?;
        let token = state
            .store
            .token_by_secret_hash(&hash_secret(secret))
            .await
            .map_err(|e| Problem::from_store(lang, e))?
            .filter(|t| t.is_usable(Utc::now()))
            .ok_or_else(|| unauthorized(lang))?;
        let parents = organisation_parents(state, lang).await?;
        let caller = match token.kind {
            TokenKind::Ingestion => Caller {
                principal: Principal::Ingestion { token },
                memberships: Vec::new(),
                scope: None,
                parents,
                from_loopback,
                ip,
                session: None,
            },
            TokenKind::Personal => {
                let user_id = token.user.ok_or_else(|| unauthorized(lang))?;
                let user: User = state
                    .store
                    .user(user_id)
                    .await
                    .map_err(|e| Problem::from_store(lang, e))?
                    .filter(|u| !u.disabled)
                    .ok_or_else(|| unauthorized(lang))?;
                // A token is bound to one organisation: only the memberships there count.
                let memberships =
                    user.memberships.into_iter().filter(|m| m.organisation == token.organisation).collect();
                Caller {
                    scope: Some(token.scope),
                    principal: Principal::Token { token, user: user_id },
                    memberships,
                    parents,
                    from_loopback,
                    ip,
                    session: None,
                }
            }
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

type Parents = Arc<HashMap<OrganisationId, Option<OrganisationId>>>;

async fn organisation_parents(state: &AppState, lang: Lang) -> Result<Parents, Problem> {
    Ok(Arc::new(
        state
            .store
            .list_organisations()
            .await
            .map_err(|e| Problem::from_store(lang, e))?
            .into_iter()
            .map(|o| (o.id, o.parent))
            .collect(),
    ))
}

/// What a route requires of its caller, declared in the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; data is still filtered by the caller's audience.
    Open,
    /// Instance operators: requests from loopback (a local Prometheus) or
    /// an administrator's token.
    Operator,
    /// An administrator (token with admin scope) of at least one organisation;
    /// data is limited to the organisations it administers.
    Admin,
    /// A person signed in through the web pages (session cookie). Anonymous
    /// visitors are sent to the sign-in page; tokens are refused, so a token
    /// can neither see nor mint other tokens.
    Session,
    /// An ingestion token: pushes measurements for its own organisation's devices.
    Ingestion,
    /// A person (web session or personal token) with at least one membership:
    /// alerts, rules and notification settings, each filtered by the policy.
    Member,
    /// Administrators and agents managing devices and dead letters of their
    /// organisations ([`Caller::operated`]); writes need a `write` scope.
    Staff,
}

/// Middleware enforcing a route's [`Access`].
pub async fn enforce(
    State((state, access)): State<(AppState, Access)>,
    lang: Lang,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(c) => c,
        Err(p) if parts.uri.path().starts_with("/ngsi-ld/") => {
            return crate::routes::ngsi::gate_refusal(
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED),
            )
        }
        Err(p) => return p.into_response(),
    };
    if parts.uri.path().starts_with("/api/") {
        if let Err(wait) = state.web.api_rate_check(caller.rate_key(), caller.ip) {
            return too_many_requests(lang, wait);
        }
    }
    let allowed = match access {
        Access::Open => Ok(()),
        Access::Operator if caller.from_loopback || !caller.administered().is_empty() => Ok(()),
        Access::Admin if !caller.administered().is_empty() => Ok(()),
        Access::Session if matches!(caller.principal, Principal::Session { .. }) => Ok(()),
        Access::Ingestion if matches!(caller.principal, Principal::Ingestion { .. }) => Ok(()),
        Access::Staff if !caller.operated(TokenScope::Read).is_empty() => Ok(()),
        Access::Member if caller.is_member() => Ok(()),
        Access::Session | Access::Member
            if !caller.is_authenticated() && parts.method == Method::GET && !parts.uri.path().starts_with("/api/") =>
        {
            return crate::web::to_sign_in(parts.uri.path());
        }
        _ if !caller.is_authenticated() => Err(unauthorized(lang)),
        _ => Err(forbidden(lang)),
    };
    if let Err(p) = allowed {
        return p.into_response();
    }
    let body = if is_safe(&parts.method) {
        body
    } else {
        match check_csrf(&state, &caller, &parts, body).await {
            Ok(body) => body,
            Err(res) => return *res,
        }
    };
    next.run(Request::from_parts(parts, body)).await
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// CSRF protection of every state-changing request that a browser could
/// send with ambient credentials:
/// - from a web session, the session's synchronizer token must come back,
///   in the `csrf` field of a form or the `X-CSRF-Token` header;
/// - from an anonymous browser posting a form (sign-in, reset), the `csrf`
///   field must equal the pre-session cookie (double submit), against login CSRF.
///
/// Bearer-token callers carry no ambient credential and need neither.
async fn check_csrf(state: &AppState, caller: &Caller, parts: &Parts, body: Body) -> Result<Body, Box<Response>> {
    let is_form =
        parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.starts_with("application/x-www-form-urlencoded") || v.starts_with("multipart/form-data")
        });
    let expected = match (&caller.principal, &caller.session) {
        (Principal::Session { .. }, Some(s)) => s.csrf.clone(),
        (Principal::Anonymous, _) if is_form => {
            match crate::security::cookie(&parts.headers, &crate::session::pre_cookie_name(&state.web.settings)) {
                Some(v) if !v.is_empty() => v.to_owned(),
                _ => return Err(Box::new(crate::web::csrf_refused(parts))),
            }
        }
        _ => return Ok(body),
    };
    let header_token = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (body, sent) = match header_token {
        Some(t) => (body, Some(t)),
        None => {
            let bytes = axum::body::to_bytes(body, state.limits.max_body_bytes)
                .await
                .map_err(|_| Box::new(crate::web::csrf_refused(parts)))?;
            let field = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                .ok()
                .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
            (Body::from(bytes), field)
        }
    };
    match sent {
        Some(t) if crate::security::same_secret(&t, &expected) => Ok(body),
        _ => {
            let route = parts.extensions.get::<axum::extract::MatchedPath>().map_or("(no route)", |p| p.as_str());
            tracing::info!(route, user = ?caller.user(), "state-changing request refused: missing or wrong CSRF token");
            Err(Box::new(crate::web::csrf_refused(parts)))
        }
    }
}

fn too_many_requests(lang: Lang, wait: std::time::Duration) -> Response {
    let secs = crate::ratelimit::retry_after_secs(wait);
    let mut res = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        lang,
        ("Trop de requêtes", "Too many requests"),
        lang.pick(
            format!("Limite de requêtes atteinte : réessayez dans {secs} s."),
            format!("Request limit reached: try again in {secs} s."),
        ),
    )
    .into_response();
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// The store as one caller may see it.
pub struct Scoped {
    store: DynStore,
    caller: Caller,
    ingestion: socle_ingestion::Pipeline,
    alerts: Arc<AlertWiring>,
}

impl Scoped {
    pub async fn query_entities(&self, mut filter: EntityFilter) -> Result<Page<Entity>, StoreError> {
        filter.audience = self.caller.audience();
        self.store.query_entities(&filter).await
    }

    /// The entity, or `None` when it does not exist *or* is not visible:
    /// the two answers must be indistinguishable.
    pub async fn entity(&self, id: &EntityId) -> Result<Option<Entity>, StoreError> {
        Ok(self.store.entity(id).await?.filter(|e| e.visible_to(&self.caller.audience())))
    }

    async fn require_entity(&self, id: &EntityId) -> Result<Entity, StoreError> {
        self.entity(id).await?.ok_or_else(|| StoreError::UnknownEntity(id.to_string()))
    }

    pub async fn list_series(&self, id: &EntityId) -> Result<Vec<SeriesInfo>, StoreError> {
        self.require_entity(id).await?;
        self.store.list_series(id).await
    }

    pub async fn series(&self, q: &SeriesQuery) -> Result<SeriesPoints, StoreError> {
        self.require_entity(&q.entity).await?;
        self.store.series(q).await
    }

    /// Users with a membership in an organisation the caller administers,
    /// showing only those memberships. Reading them is recorded in the audit log.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let administered = self.caller.administered();
        let mut users: Vec<User> = self
            .store
            .list_users()
            .await?
            .into_iter()
            .filter_map(|mut u| {
                u.memberships.retain(|m| administered.contains(&m.organisation));
                (!u.memberships.is_empty()).then_some(u)
            })
            .collect();
        users.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
        for org in &administered {
            self.audit(Some(org.clone()), "personal.read", "users", &format!("{} users listed", users.len())).await?;
        }
        Ok(users)
    }

    /// The signed-in user (web sessions only).
    pub async fn me(&self) -> Result<Option<User>, StoreError> {
        match self.caller.principal {
            Principal::Session { user } => self.store.user(user).await,
            _ => Ok(None),
        }
    }

    /// The caller's own personal tokens (web sessions only).
    pub async fn my_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        match self.caller.principal {
            Principal::Session { user } => Ok(self
                .store
                .list_tokens(Some(user))
                .await?
                .into_iter()
                .filter(|t| t.kind == TokenKind::Personal)
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// Issues a personal token for the signed-in user, bound to one of its
    /// organisations; `None` if the caller may not (not a session, or not a
    /// member of `organisation`). Returns the token and its secret, shown once.
    pub async fn create_my_token(
        &self,
        label: &str,
        organisation: &OrganisationId,
        scope: TokenScope,
        valid_for: chrono::Duration,
    ) -> Result<Option<(ApiToken, String)>, StoreError> {
        let Principal::Session { user } = self.caller.principal else { return Ok(None) };
        if !self.caller.memberships.iter().any(|m| &m.organisation == organisation) {
            return Ok(None);
        }
        let now = Utc::now();
        let secret = new_token_secret(TokenKind::Personal);
        let token = ApiToken {
            id: uuid::Uuid::new_v4(),
            kind: TokenKind::Personal,
            label: label.to_owned(),
            user: Some(user),
            organisation: organisation.clone(),
            scope,
            created_at: now,
            expires_at: Some(now + valid_for),
            revoked_at: None,
        };
        self.store.create_token(&token, &hash_secret(&secret)).await?;
        self.audit(Some(organisation.clone()), "token.create", &format!("token:{}", token.id), scope.as_str()).await?;
        Ok(Some((token, secret)))
    }

    /// Revokes one of the signed-in user's own tokens; false if it is not theirs or already revoked.
    pub async fn revoke_my_token(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        let Some(token) = self.my_tokens().await?.into_iter().find(|t| t.id == id) else { return Ok(false) };
        let revoked = self.store.revoke_token(id, Utc::now()).await?;
        if revoked {
            self.audit(Some(token.organisation), "token.revoke", &format!("token:{id}"), "").await?;
        }
        Ok(revoked)
    }

    /// Audit entries of the organisations the caller administers.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let administered = self.caller.administered();
        self.store.audit_log(Some(&administered), limit).await
    }

    pub async fn audit(
        &self,
        organisation: Option<OrganisationId>,
        action: &str,
        object: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(&AuditEntry {
                at: Utc::now(),
                actor: self.caller.actor(),
                organisation,
                action: action.into(),
                object: object.into(),
                detail: detail.into(),
            })
            .await
    }
}

/// An argon2id hash (PHC string) of a password, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    let salt = SaltString::encode_b64(&bytes)?;
    Ok(argon2::Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Whether `password` matches a stored PHC hash; a malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn token_secrets_are_prefixed_and_distinct() {
        let a = new_token_secret(TokenKind::Personal);
        let b = new_token_secret(TokenKind::Personal);
        assert!(a.starts_with("socle_pat_") && a.len() == 74);
        assert_ne!(a, b);
        assert!(new_token_secret(TokenKind::Ingestion).starts_with("socle_ing_"));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
