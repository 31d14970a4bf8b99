//! The one place where access is decided.
//!
//! A request's caller is established once (`Caller`, from a bearer token);
//! every route declares what it requires (`Access`, in the route table of
//! `lib.rs`), enforced before its handler runs; and handlers reach data only
//! through [`Scoped`], which applies the caller's audience to every read. The
//! store itself is private to this module.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};
use socle_domain::{
    ApiToken, Audience, AuditEntry, Entity, EntityFilter, EntityId, Membership, Organisation, OrganisationId, Page,
    Reach, Role, SeriesInfo, SeriesPoints, SeriesQuery, TokenKind, TokenScope, User, UserId,
};
use socle_storage::{DynStore, StorageStats, StoreError};

use crate::i18n::Lang;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::Limits;

/// What every handler can reach. The store is private: handlers go through
/// [`AppState::scoped`] or the narrow operations below.
#[derive(Clone)]
pub struct AppState {
    store: DynStore,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
}

impl AppState {
    pub fn new(store: DynStore) -> Self {
        Self { store, metrics: Arc::new(Metrics::default()), limits: Arc::new(Limits::default()) }
    }

    /// The data the caller may see.
    pub fn scoped(&self, caller: &Caller) -> Scoped {
        Scoped { store: self.store.clone(), caller: caller.clone() }
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
}

impl Caller {
    pub fn anonymous() -> Self {
        Self {
            principal: Principal::Anonymous,
            memberships: Vec::new(),
            scope: None,
            parents: Arc::default(),
            from_loopback: false,
        }
    }

    /// `user:<id>` / `token:<id>` / `anonymous`: how the audit trail names the caller.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Anonymous => "anonymous".into(),
            Principal::Token { token, user } => format!("user:{user} token:{}", token.id),
            Principal::Ingestion { token } => format!("ingestion-token:{}", token.id),
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
        let from_loopback =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().is_some_and(|ConnectInfo(a)| a.ip().is_loopback());
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Caller { from_loopback, ..Caller::anonymous() });
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
        let parents = Arc::new(
            state
                .store
                .list_organisations()
                .await
                .map_err(|e| Problem::from_store(lang, e))?
                .into_iter()
                .map(|o| (o.id, o.parent))
                .collect(),
        );
        let caller = match token.kind {
            TokenKind::Ingestion => Caller {
                principal: Principal::Ingestion { token },
                memberships: Vec::new(),
                scope: None,
                parents,
                from_loopback,
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
                }
            }
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
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
        Err(p) => return p.into_response(),
    };
    let allowed = match access {
        Access::Open => Ok(()),
        Access::Operator if caller.from_loopback || !caller.administered().is_empty() => Ok(()),
        Access::Admin if !caller.administered().is_empty() => Ok(()),
        _ if !caller.is_authenticated() => Err(unauthorized(lang)),
        _ => Err(forbidden(lang)),
    };
    match allowed {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(p) => p.into_response(),
    }
}

/// The store as one caller may see it.
pub struct Scoped {
    store: DynStore,
    caller: Caller,
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
