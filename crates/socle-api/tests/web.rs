//! The web pages over real HTTP: sign-in, account and tokens, sign-out,
//! throttling, rate limits, security headers, languages, session expiry.
//! The flows that need a mail server or an identity provider run against
//! the real binary in `crates/socle/tests/web.rs`.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::StatusCode;
use socle_api::policy::{hash_password, hash_secret, new_token_secret};
use socle_api::{AppState, WebSettings};
use socle_domain::{
    ApiToken, Email, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope, User,
};
use socle_storage::testing::TestStore;
use socle_storage::DynStore;

const PASSWORD: &str = "une phrase de passe assez longue";
const EMAIL: &str = "agent@commune-a.fr";
const NAME: &str = "Camille Martin";

/// A browser without JavaScript: keeps cookies, never follows redirects.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
    lang: Option<&'static str>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get("location").map_or("", |l| l.to_str().unwrap())
    }
    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let start = self.body.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + 19;
        self.body[start..].split('"').next().unwrap().to_owned()
    }
    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }
}

impl Browser {
    fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base: base.to_owned(), http, cookies: HashMap::new(), lang: None }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req;
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", c.join("; "));
        }
        if let Some(l) = self.lang {
            req = req.header("accept-language", l);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        for c in headers.get_all(SET_COOKIE) {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.to_str().unwrap().contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page { status, headers, body: res.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        self.send(req).await
    }

    /// Signs in through the form, as a person would.
    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let csrf = self.get("/connexion").await.csrf();
        self.post("/connexion", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }
}

async fn seed(s: &DynStore) -> User {
    for (id, code, kind, parent) in [
        ("syndicat", "200046977", OrganisationKind::Syndicat, None),
        ("commune-a", "86001", OrganisationKind::Commune, Some("syndicat")),
    ] {
        s.upsert_organisation(&NewOrganisation {
            id: OrganisationId::parse(id).unwrap(),
            kind,
            name: format!("Organisation {id}"),
            code: OfficialCode::parse(code).unwrap(),
            parent: parent.map(|p| OrganisationId::parse(p).unwrap()),
            population: None,
            timezone: chrono_tz::Europe::Paris,
            retention_days: None,
        })
        .await
        .unwrap();
    }
    let user =
        s.create_user(&Email::parse(EMAIL).unwrap(), NAME, Some(&hash_password(PASSWORD).unwrap())).await.unwrap();
    s.grant(user.id, &OrganisationId::parse("commune-a").unwrap(), Role::Agent).await.unwrap();
    s.user(user.id).await.unwrap().unwrap()
}

async fn admin_token(s: &DynStore) -> String {
    let admin = s.create_user(&Email::parse("admin@syndicat.fr").unwrap(), "Admin", None).await.unwrap();
    s.grant(admin.id, &OrganisationId::parse("syndicat").unwrap(), Role::Admin).await.unwrap();
    let secret = new_token_secret(TokenKind::Personal);
    let t = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Personal,
        label: "test".into(),
        user: Some(admin.id),
        organisation: OrganisationId::parse("syndicat").unwrap(),
        scope: TokenScope::Admin,
        created_at: chrono::Utc::now(),
        expires_at: None,
        revoked_at: None,
    };
    s.create_token(&t, &hash_secret(&secret)).await.unwrap();
    secret
}

async fn start(t: &TestStore, settings: WebSettings) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::with_settings(t.store.clone(), settings).unwrap();
    tokio::spawn(socle_api::serve(listener, state, std::future::pending()));
    base
}

async fn sign_in_account_tokens_and_sign_out(t: TestStore) {
    let user = seed(&t.store).await;
    let base = start(&t, WebSettings::default()).await;
    let mut b = Browser::new(&base);

    let page = b.get("/compte").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/connexion?retour=%2Fcompte");
    let login = b.get("/connexion").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains(r#"<html lang="fr">"#) && login.body.contains("Connexion"));
    assert!(login.set_cookies().iter().any(|c| c.starts_with("socle_csrf=") && c.contains("HttpOnly")));

    // A forged form (no or wrong token) is refused before any password is checked.
    let forged = b.post("/connexion", &[("email", EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged =
        b.post("/connexion", &[("csrf", "0".repeat(64).as_str()), ("email", EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let wrong = b.sign_in(EMAIL, "pas le bon mot de passe").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("mot de passe incorrect"), "{}", wrong.body);
    assert!(wrong.body.contains(r#"aria-describedby="form-error""#) && wrong.body.contains(r#"id="form-error""#));
    let unknown = b.sign_in("personne@nulle-part.fr", "pas le bon mot de passe").await;
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(
        unknown.body.replace("personne@nulle-part.fr", EMAIL),
        wrong.body,
        "an unknown address answers exactly like a wrong password"
    );

    let ok = b.sign_in(&EMAIL.to_uppercase(), PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), "/compte");
    let cookie = ok.set_cookies().into_iter().find(|c| c.starts_with("socle_session=")).unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    let session_id = b.cookies["socle_session"].clone();
    assert_eq!(session_id.len(), 64, "256 random bits");
    assert!(t.store.session(&session_id).await.unwrap().is_none(), "only the hash is stored");
    assert!(t.store.session(&hash_secret(&session_id)).await.unwrap().is_some());

    let account = b.get("/compte").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.body.contains(EMAIL) && account.body.contains(NAME) && account.body.contains("Organisation commune-a")
    );
    assert_eq!(account.headers["cache-control"], "no-store");
    let csrf = account.csrf();

    // A token, its secret shown once, usable on the API, then revoked.
    let created = b
        .post(
            "/compte/jetons",
            &[
                ("csrf", &csrf),
                ("label", "tableau de bord"),
                ("organisation", "commune-a"),
                ("scope", "read"),
                ("days", "30"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let start = created.body.find("socle_pat_").expect("the secret is shown");
    let secret = created.body[start..start + 74].to_owned();
    let api = reqwest::Client::new();
    let call = |path: &str, token: &str| api.get(format!("{base}{path}")).bearer_auth(token).send();
    assert_eq!(call("/api/v1/entities", &secret).await.unwrap().status(), StatusCode::OK);
    assert_eq!(call("/api/v1/users", &secret).await.unwrap().status(), StatusCode::FORBIDDEN, "an agent is no admin");
    let again = b.get("/compte").await;
    assert!(!again.body.contains(&secret), "the secret is never shown again");
    assert!(again.body.contains("tableau de bord"));
    let invalid = b
        .post(
            "/compte/jetons",
            &[("csrf", &csrf), ("label", ""), ("organisation", "commune-a"), ("scope", "all"), ("days", "0")],
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["label-error", "scope-error", "days-error"] {
        assert!(invalid.body.contains(&format!(r#"aria-describedby="{field}"#)), "{field} is linked to its input");
    }
    let action_start = again.body.find("/compte/jetons/").unwrap();
    let action = again.body[action_start..].split('"').next().unwrap().to_owned();
    assert!(action.ends_with("/revocation"));
    assert_eq!(b.post(&action, &[("csrf", "nope")]).await.status, StatusCode::FORBIDDEN);
    let revoked = b.post(&action, &[("csrf", &csrf)]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(call("/api/v1/entities", &secret).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(b.get("/compte?info=revoque").await.body.contains("révoqué"));

    // Sign-out ends the session on the server, not just in the browser.
    let out = b.post("/deconnexion", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/connexion?info=deconnecte");
    assert!(t.store.session(&hash_secret(&session_id)).await.unwrap().is_none());
    let mut replay = Browser::new(&base);
    replay.cookies.insert("socle_session".into(), session_id);
    assert_eq!(replay.get("/compte").await.status, StatusCode::SEE_OTHER, "a stolen old cookie is worthless");

    let audit = t.store.audit_log(None, 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    for a in ["login.failed", "login.success", "token.create", "token.revoke"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    let failed = audit.iter().find(|e| e.action == "login.failed" && e.object == format!("user:{}", user.id)).unwrap();
    assert_eq!(failed.actor, "ip:127.0.0.1");
    assert!(audit.iter().all(|e| !format!("{e:?}").contains('@')), "no e-mail address in the audit trail");
}

async fn twenty_wrong_passwords_lock_the_account(t: TestStore) {
    let user = seed(&t.store).await;
    let admin = admin_token(&t.store).await;
    let base = start(&t, WebSettings::default()).await;
    let mut b = Browser::new(&base);
    for i in 0..20 {
        let page = b.sign_in(EMAIL, &format!("mauvais mot de passe {i}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "attempt {i}");
    }
    let creds = t.store.credentials(&Email::parse(EMAIL).unwrap()).await.unwrap().unwrap();
    assert_eq!(creds.failed_logins, 20);
    let until = creds.locked_until.expect("locked");
    assert!(until > chrono::Utc::now() + chrono::Duration::minutes(14), "locked for 15 minutes: {until}");
    let right = b.sign_in(EMAIL, PASSWORD).await;
    assert_eq!(right.status, StatusCode::UNPROCESSABLE_ENTITY, "even the right password is refused while locked");
    assert!(!b.cookies.contains_key("socle_session"));

    // The syndicate's administrator sees every attempt, under the address, never the e-mail.
    let res =
        reqwest::Client::new().get(format!("{base}/api/v1/audit?limit=100")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let log: serde_json::Value = serde_json::from_str(&text).unwrap();
    let attempts: Vec<&serde_json::Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["object"] == format!("user:{}", user.id) && e["action"].as_str().unwrap().starts_with("login."))
        .collect();
    assert_eq!(attempts.len(), 21, "20 failures and the refused right password: {log}");
    assert!(attempts.iter().all(|e| e["actor"] == "ip:127.0.0.1" && e["organisation"] == "commune-a"));
    assert!(attempts.iter().any(|e| e["detail"].as_str().unwrap().contains("failures=20; locked for 900 s")), "{log}");
    assert!(!text.contains(EMAIL));

    // Once the lock is over (simulated), the right password works and resets the count.
    t.store.record_login(user.id, true, None).await.unwrap();
    assert_eq!(b.sign_in(EMAIL, PASSWORD).await.status, StatusCode::SEE_OTHER);
}

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(socle_storage::testing::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(socle_storage::testing::TestStore::postgres().await).await;
                }
            )*
        }
    };
}

both_backends!(sign_in_account_tokens_and_sign_out, twenty_wrong_passwords_lock_the_account);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_throttled_per_address() {
    let t = TestStore::sqlite().await;
    seed(&t.store).await;
    let mut settings = WebSettings::default();
    settings.login.per_ip_per_minute = 3;
    let base = start(&t, settings).await;
    let mut b = Browser::new(&base);
    for _ in 0..3 {
        assert_eq!(b.sign_in(EMAIL, "faux").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let page = b.sign_in(EMAIL, PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("Trop de tentatives"));
    assert_eq!(page.headers["retry-after"], "60");
    let audit = t.store.audit_log(None, 10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "login.throttled" && e.actor == "ip:127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_rate_limits_answer_429_with_retry_after() {
    let t = TestStore::sqlite().await;
    seed(&t.store).await;
    let token = admin_token(&t.store).await;
    let mut settings = WebSettings::default();
    settings.rate_limit.per_ip_per_minute = 5;
    settings.rate_limit.per_token_per_minute = 8;
    let base = start(&t, settings).await;
    let http = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(http.get(format!("{base}/api/v1/organisations")).send().await.unwrap().status(), StatusCode::OK);
    }
    let res = http.get(format!("{base}/api/v1/organisations")).header("accept-language", "en").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "rate-limited");
    assert_eq!(problem["status"], 429);
    // Probes and pages are not API traffic; a token has its own, larger budget.
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), StatusCode::OK);
    for _ in 0..8 {
        let res = http.get(format!("{base}/api/v1/organisations")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = http.get(format!("{base}/api/v1/organisations")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_response() {
    let t = TestStore::sqlite().await;
    seed(&t.store).await;
    let base = start(&t, WebSettings::default()).await;
    let mut b = Browser::new(&base);
    let css = format!("/static/{}", *socle_api::web::CSS_FILE);
    for path in ["/connexion", "/api/v1/organisations", "/nulle-part", "/metrics", "/compte", css.as_str()] {
        let page = b.get(path).await;
        let h = &page.headers;
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h["permissions-policy"].to_str().unwrap().contains("camera=()"), "{path}");
        assert!(h.get("strict-transport-security").is_none(), "{path}: no HSTS over plain http");
    }
    let sheet = b.get(&css).await;
    assert_eq!(sheet.headers["cache-control"], "public, max-age=31536000, immutable");
    assert!(sheet.headers["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(sheet.body.contains(":focus-visible"), "focus stays visible");
    let login = b.get("/connexion").await;
    assert!(login.body.contains(&format!(r#"href="{css}""#)));
    // Scripts are files of Socle's (the CSP forbids inline code), never inline.
    assert!(
        login.body.split("<script").skip(1).all(|tag| tag.starts_with(r#" type="module" src="/static/"#)),
        "no inline script"
    );
    assert!(!login.body.contains("style="), "no inline style");

    // Behind TLS: HSTS, Secure cookies with the __Host- prefix.
    let t2 = TestStore::sqlite().await;
    seed(&t2.store).await;
    let base =
        start(&t2, WebSettings { public_url: "https://donnees.example.fr".into(), ..WebSettings::default() }).await;
    let mut b = Browser::new(&base);
    let page = b.get("/connexion").await;
    assert_eq!(page.headers["strict-transport-security"], "max-age=63072000; includeSubDomains");
    let cookie = page.set_cookies().into_iter().find(|c| c.starts_with("__Host-socle_csrf=")).expect("prefixed cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let csrf = page.csrf();
    let ok = b.post("/connexion", &[("csrf", &csrf), ("email", EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let session = ok.set_cookies().into_iter().find(|c| c.starts_with("__Host-socle_session=")).unwrap();
    assert!(session.contains("; Secure") && session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    assert_eq!(b.get("/compte").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_or_too_old() {
    let t = TestStore::sqlite().await;
    let user = seed(&t.store).await;
    let settings = WebSettings { session_idle: Duration::from_secs(2), ..WebSettings::default() };
    let base = start(&t, settings).await;
    let mut b = Browser::new(&base);
    assert_eq!(b.sign_in(EMAIL, PASSWORD).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/compte").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(b.get("/compte").await.status, StatusCode::SEE_OTHER, "idle for longer than allowed");

    // Past the absolute lifetime, however active.
    let id = socle_api::security::random_secret();
    let now = chrono::Utc::now();
    let old = socle_storage::WebSession {
        user: user.id,
        csrf_token: "x".into(),
        created_at: now - chrono::Duration::days(8),
        last_seen_at: now,
        expires_at: now - chrono::Duration::seconds(1),
    };
    t.store.create_session(&hash_secret(&id), &old).await.unwrap();
    let mut b = Browser::new(&base);
    b.cookies.insert("socle_session".into(), id.clone());
    assert_eq!(b.get("/compte").await.status, StatusCode::SEE_OTHER);
    assert!(t.store.session(&hash_secret(&id)).await.unwrap().is_none(), "deleted on sight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_french_first_and_english_on_request() {
    let t = TestStore::sqlite().await;
    seed(&t.store).await;
    let base = start(&t, WebSettings::default()).await;
    let mut b = Browser::new(&base);
    let fr = b.get("/connexion").await;
    assert!(fr.body.contains(r#"<html lang="fr">"#) && fr.body.contains("Aller au contenu"));
    assert_eq!(fr.headers["content-language"], "fr");
    for accessible in [
        r#"<label for="email">"#,
        r#"id="email""#,
        r#"<label for="password">"#,
        r##"href="#contenu""##,
        r#"<main id="contenu""#,
    ] {
        assert!(fr.body.contains(accessible), "{accessible}");
    }
    b.lang = Some("en-GB,en;q=0.9");
    let en = b.get("/connexion").await;
    assert!(
        en.body.contains(r#"<html lang="en">"#) && en.body.contains("Sign in") && en.body.contains("Skip to content")
    );
    // The switch link wins over the browser's preference and remembers the choice.
    b.lang = Some("en");
    let switch = b.get("/langue?l=fr&retour=/mot-de-passe-oublie").await;
    assert_eq!(switch.status, StatusCode::SEE_OTHER);
    assert_eq!(switch.location(), "/mot-de-passe-oublie");
    let page = b.get("/mot-de-passe-oublie").await;
    assert!(page.body.contains("Mot de passe oublié") && page.body.contains(r#"hreflang="en""#));
    assert_eq!(b.get("/langue?l=en&retour=https://evil.example").await.location(), "/compte", "no open redirect");
    assert!(!b.get("/connexion?retour=//evil.example").await.body.contains("//evil.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_password_answers_the_same_for_unknown_addresses() {
    let t = TestStore::sqlite().await;
    let user = seed(&t.store).await;
    let base = start(&t, WebSettings::default()).await;
    let mut b = Browser::new(&base);
    let known = forgot(&mut b, EMAIL).await;
    let unknown = forgot(&mut b, "inconnu@nulle-part.fr").await;
    assert_eq!(known.0, StatusCode::OK);
    assert_eq!(known, unknown, "no account enumeration");
    assert!(known.1.contains("Si un compte correspond"));
    let audit = t.store.audit_log(None, 10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "password.reset_requested" && e.object == format!("user:{}", user.id)));
    assert!(audit.iter().any(|e| e.action == "password.reset_requested" && e.object == "unknown-account"));
    assert_eq!(b.get(&format!("/mot-de-passe/{}", "0".repeat(64))).await.status, StatusCode::NOT_FOUND);
}

async fn forgot(b: &mut Browser, email: &str) -> (StatusCode, String) {
    let csrf = b.get("/mot-de-passe-oublie").await.csrf();
    let page = b.post("/mot-de-passe-oublie", &[("csrf", &csrf), ("email", email)]).await;
    (page.status, page.body)
}

/// The map's data travels gzipped to whoever asks, carries an ETag, and a
/// browser asking again with it gets a 304 without the body; its bounds are
/// in the page, so the map opens where the entities are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_data_is_gzipped_and_revalidated_with_an_etag() {
    use socle_domain::{Attribute, Entity, EntityId, EntityType, Geometry, Visibility};
    let t = TestStore::sqlite().await;
    seed(&t.store).await;
    let ty = EntityType::parse("WasteContainer").unwrap();
    let org = OrganisationId::parse("commune-a").unwrap();
    let entities: Vec<Entity> = (0..300)
        .map(|i| {
            let mut e = Entity::new(EntityId::new(&ty, &format!("essai:{i}")).unwrap(), ty.clone(), org.clone());
            e.visibility = Visibility::Public;
            e.location = Some(Geometry::Point([0.5 + f64::from(i) * 1e-3 + 1e-9, 46.4]));
            e.with("name", Attribute::property(format!("Conteneur {i}"))).unwrap()
        })
        .collect();
    t.store.upsert_entities(&entities).await.unwrap();
    let base = start(&t, WebSettings::default()).await;
    let http = reqwest::Client::new();
    let plain = http.get(format!("{base}/api/v1/map")).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none(), "no gzip unless asked");
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(plain.headers()["cache-control"], "private, no-cache");
    let body = plain.text().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["features"].as_array().unwrap().len(), 300);
    // Six decimals: 0.5 + 1e-9 is 0.5.
    assert_eq!(json["features"][0]["geometry"]["coordinates"][0], 0.5, "{}", json["features"][0]);

    let zipped = http.get(format!("{base}/api/v1/map")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped_len = zipped.bytes().await.unwrap().len();
    assert!(zipped_len * 5 < body.len(), "{zipped_len} gzipped bytes for {} bytes", body.len());

    let again = http.get(format!("{base}/api/v1/map")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    // Something changed: the old ETag no longer matches.
    t.store
        .upsert_entities(
            &entities[..1]
                .iter()
                .cloned()
                .map(|mut e| {
                    e.location = Some(Geometry::Point([0.6, 46.5]));
                    e
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let changed = http.get(format!("{base}/api/v1/map")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);

    let page = http.get(format!("{base}/carte")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"data-bounds="0.501000,46.400000,0.799000,46.500000""#), "the map opens on its entities");
}
