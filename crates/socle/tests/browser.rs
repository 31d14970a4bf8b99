//! The hypervisor in a real browser: Debian's Chromium, headless, driven
//! through chromedriver (WebDriver) against `socle demo`. Every page visited
//! is checked with axe-core (WCAG 2.1 A and AA, the tags RGAA 4.1 follows),
//! its network log is read to prove no request left for another host, and a
//! screenshot is saved to `target/screenshots/`. Signs in as each demo role,
//! opens the map, a dashboard per domain, the élu view, an entity, changes
//! the period, and sees a value pushed through ingestion appear live; and the
//! open-data portal with its widgets framed by a page of another origin.
//!
//! Skipped, with a message, only when Chromium or chromedriver is not
//! installed (`scripts/test` installs them: `chromium chromium-driver`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{socle, Running};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const PASSWORD: &str = "socle-demo-2026";
const ROLES: [(&str, &str); 5] = [
    ("admin-syndicat", "admin@val-de-lemance.fr"),
    ("admin-commune", "admin@saint-aubin-sur-lemance.fr"),
    ("agent", "agent@saint-aubin-sur-lemance.fr"),
    ("elu", "elu@saint-aubin-sur-lemance.fr"),
    ("prestataire", "technicien@eclairages-du-poitou.fr"),
];
const DOMAINS: [&str; 7] = ["batiments", "eclairage", "eau", "dechets", "stationnement", "air", "risques"];

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(cmd)).find(|p| p.is_file())
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// chromedriver on a free loopback port, stopped on drop.
struct Driver(Child, u16);

impl Driver {
    fn start(path: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver's log endpoint: the performance log holds every network request of the page.
#[derive(Debug)]
struct PerformanceLog;

impl WebDriverCompatibleCommand for PerformanceLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type": "performance"}"#.into()))
    }
}

/// Chrome DevTools `Browser.grantPermissions` through chromedriver: headless Chromium
/// has nobody to answer the notification prompt.
#[derive(Debug)]
struct GrantNotifications(String);

impl WebDriverCompatibleCommand for GrantNotifications {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": "Browser.grantPermissions",
                          "params": {"origin": self.0, "permissions": ["notifications"]}});
        (http::Method::POST, Some(body.to_string()))
    }
}

struct Browser {
    client: Client,
    base: String,
    origin: String,
    axe: String,
    shots: PathBuf,
    /// Every URL the browser requested, for the report.
    requests: usize,
    /// Another origin the test itself serves (the site embedding a widget).
    also_allowed: Option<String>,
}

impl Browser {
    async fn new(driver: &Driver, chromium: &Path, base: &str) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--lang=fr-FR", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--disable-default-apps"],
                "prefs": {"intl.accept_languages": "fr-FR,fr"}
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"performance": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.1))
            .await
            .expect("a Chromium session");
        let axe = std::fs::read_to_string(socle_api::web::assets::AXE_CORE_PATH)
            .expect("axe-core from npm (built by socle-api)");
        let origin = base.trim_end_matches('/').to_owned();
        Browser {
            client,
            base: base.to_owned(),
            origin,
            axe,
            shots: screenshots_dir(),
            requests: 0,
            also_allowed: None,
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect("script runs")
    }

    /// Waits until `script` returns true.
    async fn until(&self, what: &str, timeout: Duration, script: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Opens `path`, waits for its map or chart, then checks and photographs it.
    async fn visit(&mut self, path: &str, shot: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.expect("navigation");
        self.settle(shot).await;
    }

    async fn settle(&mut self, shot: &str) {
        self.until("the page to load", Duration::from_secs(30), "return document.readyState === 'complete'").await;
        // Script-enhanced parts say when they are drawn.
        self.until(
            "the map and chart to be drawn",
            Duration::from_secs(30),
            "return [...document.querySelectorAll('#carte, #graphique, #carte-donnees')].every(e => e.dataset.ready !== undefined)",
        )
        .await;
        self.check(shot).await;
    }

    /// axe-core, the network log, a screenshot.
    async fn check(&mut self, shot: &str) {
        self.axe(shot).await;
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{shot}.png")), png).expect("save screenshot");
        self.no_foreign_request(shot).await;
    }

    /// axe-core on the current document (a frame's, once entered).
    async fn axe(&mut self, shot: &str) {
        let title = self.js("return document.title").await;
        let violations = self
            .client
            .execute_async(
                &format!(
                    "{}\n;const done = arguments[arguments.length - 1];
                     axe.run(document, {{iframes: false, runOnly: {{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}}})
                        .then(r => done(r.violations.map(v => ({{id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}}))))
                        .catch(e => done([{{id: 'axe-error', help: String(e)}}]));",
                    self.axe
                ),
                vec![],
            )
            .await
            .expect("axe runs");
        assert_eq!(violations, json!([]), "{shot} ({title}): accessibility violations");
    }

    async fn no_foreign_request(&mut self, shot: &str) {
        let log = self.client.issue_cmd(PerformanceLog).await.expect("performance log");
        for entry in log.as_array().into_iter().flatten() {
            let Some(message) = entry["message"].as_str() else { continue };
            let Ok(m) = serde_json::from_str::<Value>(message) else { continue };
            if m["message"]["method"] != "Network.requestWillBeSent" {
                continue;
            }
            let url = m["message"]["params"]["request"]["url"].as_str().unwrap_or_default();
            self.requests += 1;
            let ours = url.starts_with(&format!("{}/", self.origin))
                || url == self.origin
                || self.also_allowed.as_ref().is_some_and(|o| url.starts_with(&format!("{o}/")));
            assert!(ours || url.starts_with("data:"), "{shot}: a request left for another host: {url}");
        }
    }

    async fn sign_in(&mut self, email: &str, role: &str) {
        self.client.goto(&format!("{}/connexion", self.base)).await.unwrap();
        self.settle(&format!("{role}-00-connexion")).await;
        self.client.find(Locator::Id("email")).await.unwrap().send_keys(email).await.unwrap();
        self.client.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
        self.client.find(Locator::Css("form.stack button[type=submit]")).await.unwrap().click().await.unwrap();
        self.until(
            "the signed-in home",
            Duration::from_secs(30),
            "return location.pathname === '/carte' || location.pathname === '/compte'",
        )
        .await;
    }

    async fn sign_out(&mut self) {
        self.client.find(Locator::Css("form[action='/deconnexion'] button")).await.unwrap().click().await.unwrap();
        self.until("the sign-in page", Duration::from_secs(30), "return location.pathname === '/connexion'").await;
    }
}

/// One demo and one Chromium at a time: two at once on a small machine make both slow.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_hypervisor_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        eprintln!("SKIPPED: Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = socle();
    cmd.env("SOCLE_DEMO__LIVE_INTERVAL_SECS", "2")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("demo");
    let app = Running::spawn(cmd);
    let base = app.base_url(Duration::from_secs(60));
    let admin_commune = app.wait_line(Duration::from_secs(120), |l| l.contains("admin@saint-aubin-sur-lemance.fr"));
    let admin_token = admin_commune.split_whitespace().last().unwrap().to_owned();
    let ingestion = app.wait_line(Duration::from_secs(60), |l| l.contains("ingestion token"));
    let ingestion_token = ingestion.split_whitespace().last().unwrap().to_owned();
    app.wait_line(Duration::from_secs(240), |l| l.contains("demo ready"));
    let driver = Driver::start(&chromedriver);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut b = Browser::new(&driver, &chromium, &base).await;
        let http = reqwest::Client::new();

        // Anonymous visitors: the open data, map and dashboards.
        b.visit("/carte", "public-carte").await;
        let rows = b.js("return document.querySelectorAll('#tableau tbody tr').length").await;
        assert!(rows.as_u64() > Some(0), "the table lists the public entities");
        b.visit("/tableaux/dechets", "public-tableau-dechets").await;
        b.visit("/elu", "public-elu").await;

        for (role, email) in ROLES {
            b.sign_in(email, role).await;
            b.visit("/carte", &format!("{role}-01-carte")).await;
            let features = b.js("return Number(document.getElementById('carte').dataset.ready)").await;
            assert!(features.as_f64() > Some(0.0), "{role}: entities on the map");
            match role {
                "admin-syndicat" => {
                    for d in DOMAINS {
                        b.visit(&format!("/tableaux/{d}"), &format!("{role}-02-tableau-{d}")).await;
                    }
                }
                "elu" => {
                    b.visit("/elu", &format!("{role}-02-elu")).await;
                    // The renovated school, against last winter's days brought to this year's weather.
                    let text = b.js("return document.querySelector('main').innerText").await;
                    let text = text.as_str().unwrap_or_default();
                    assert!(
                        text.lines().any(|l| l.contains("Jules Ferry") && l.contains("l'an dernier, corrigée du climat")),
                        "the élu view compares with last year, weather-corrected: {text}"
                    );
                }
                "prestataire" => b.visit("/tableaux/eclairage", &format!("{role}-02-tableau-eclairage")).await,
                "admin-commune" => {
                    b.visit("/tableaux/batiments", &format!("{role}-02-tableau-batiments")).await;
                    // The rule editor's form: only the chosen kind's fields are shown, and
                    // they follow the choice.
                    b.visit("/regles/nouvelle?type=occupancy", &format!("{role}-02b-regle-formulaire")).await;
                    let shown = "return [...document.querySelectorAll('.rule-kind')].filter(f => !f.hidden).map(f => f.dataset.genre)";
                    assert_eq!(b.js(shown).await, json!(["occupancy"]));
                    b.client.find(Locator::Id("genre")).await.unwrap().select_by_value("fill").await.unwrap();
                    assert_eq!(b.js(shown).await, json!(["fill"]));
                    b.client
                        .find(Locator::Css("#regle-formulaire button[value=apercu]"))
                        .await
                        .unwrap()
                        .click()
                        .await
                        .unwrap();
                    b.until(
                        "the preview of the form's rule",
                        Duration::from_secs(60),
                        "return document.body.textContent.includes('aurait ouvert')",
                    )
                    .await;
                    b.settle(&format!("{role}-02c-regle-apercu")).await;
                }
                _ => b.visit("/tableaux/batiments", &format!("{role}-02-tableau-batiments")).await,
            }
            b.visit("/compte", &format!("{role}-03-compte")).await;
            b.sign_out().await;
        }

        // An entity page: change the period, then see a value pushed through ingestion arrive live.
        b.sign_in("agent@saint-aubin-sur-lemance.fr", "agent-entite").await;
        let list: Value = http
            .get(format!("{base}/api/v1/entities?type=FloodMonitoring&organisation=commune-saint-aubin&limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let gauge = list["items"][0]["id"].as_str().expect("a river gauge").to_owned();
        let page = format!("/entites/{}", gauge.replace(':', "%3A"));
        b.visit(&page, "agent-04-entite").await;
        let label = b.js("return document.querySelector('#valeurs + * th[scope=row], table th[scope=row]').innerText").await;
        assert!(!label.as_str().unwrap_or_default().is_empty(), "values have a label");
        let text = b.js("return document.querySelector('main').innerText").await;
        assert!(text.as_str().unwrap_or_default().contains("Hauteur d'eau (m)"), "attributes are labelled in French");
        b.client.find(Locator::LinkText("30 jours")).await.unwrap().click().await.unwrap();
        b.until("the 30-day period", Duration::from_secs(30), "return location.search.includes('periode=30j')").await;
        b.settle("agent-05-entite-30-jours").await;
        let step = b.js("return document.getElementById('graphique').dataset.step").await;
        assert_eq!(step, "day", "30 days are drawn from daily rollups");
        b.visit(&page, "agent-06-entite-direct").await;

        let device = json!({"devEui": "a84041000181f00d", "name": "sonde-test-navigateur", "model": "generic",
            "organisation": "commune-saint-aubin", "entity": gauge,
            "mappings": [{"field": "level", "attribute": "currentLevel", "unitCode": "MTR", "kind": "number"}]});
        let res = http.post(format!("{base}/api/v1/devices")).bearer_auth(&admin_token).json(&device).send().await.unwrap();
        assert!(res.status().is_success(), "device registered: {}", res.text().await.unwrap());
        let res = http
            .post(format!("{base}/ingest/generic"))
            .bearer_auth(&ingestion_token)
            .json(&json!({"device": "sonde-test-navigateur", "values": {"level": 4.321}}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "value ingested: {}", res.text().await.unwrap());
        b.until(
            "the live value on the entity page",
            Duration::from_secs(20),
            "const c = document.querySelector('[data-live-attribute=currentLevel]'); return !!c && c.textContent.includes('4,32')",
        )
        .await;
        b.check("agent-07-entite-valeur-en-direct").await;

        // Alerts: the list, an alert's page, acknowledging from its form, the rule editor's preview.
        let deadline = Instant::now() + Duration::from_secs(240);
        let alerts: Value = loop {
            let res = http
                .get(format!("{base}/api/v1/alerts?organisation=commune-saint-aubin&status=open"))
                .bearer_auth(&admin_token)
                .send()
                .await
                .unwrap();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            if body["total"].as_u64() > Some(0) {
                break body;
            }
            assert!(Instant::now() < deadline, "the demo's alerts: {body}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let open = alerts["items"][0]["id"].as_i64().unwrap();
        b.visit("/alertes", "agent-08-alertes").await;
        b.visit(&format!("/alertes/{open}"), "agent-09-alerte").await;
        b.client
            .find(Locator::Css("form[action$='/prise-en-compte'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.until(
            "the acknowledgement in the history",
            Duration::from_secs(20),
            "return document.getElementById('historique') !== null && document.body.textContent.includes('prise en compte — ')",
        )
        .await;
        b.settle("agent-10-alerte-prise-en-compte").await;
        let rule = alerts["items"][0]["rule"].as_str().unwrap().to_owned();
        b.visit(&format!("/regles/{rule}"), "agent-11-regle").await;
        b.client.find(Locator::Css("button[value=apercu]")).await.unwrap().click().await.unwrap();
        b.until("the preview", Duration::from_secs(60), "return document.body.textContent.includes('aurait ouvert')").await;
        b.settle("agent-12-regle-apercu").await;

        // Web Push from the page: the service worker registers, the page asks the push
        // service with Socle's VAPID key. Headless Chromium here has no reachable push
        // service (no Google servers), so the subscription itself fails with the push
        // service's error, which is what is checked; encryption is tested in socle-notify
        // against RFC 8291's vectors.
        b.client.issue_cmd(GrantNotifications(b.origin.clone())).await.expect("notification permission");
        b.visit("/alertes", "agent-13-alertes-push").await;
        b.client.find(Locator::Id("recevoir-alertes")).await.unwrap().click().await.unwrap();
        b.until(
            "the push subscription attempt",
            Duration::from_secs(90),
            "const s = document.getElementById('recevoir-alertes').dataset.state; return s === 'subscribed' || s === 'failed'",
        )
        .await;
        let outcome = b
            .js("const d = document.getElementById('recevoir-alertes').dataset; \
                 return {state: d.state, stage: d.stage || null, worker: d.worker || null, key: d.key || null, \
                         error: d.error || null, controller: !!navigator.serviceWorker.controller}")
            .await;
        eprintln!("push from headless Chromium: {outcome}");
        let vapid: Value =
            http.get(format!("{base}/api/v1/push/vapid-public-key")).send().await.unwrap().json().await.unwrap();
        assert_eq!(outcome["worker"], "registered", "{outcome}");
        assert_eq!(outcome["key"], vapid["publicKey"], "subscribe is called with Socle's VAPID key: {outcome}");
        if outcome["state"] == "failed" {
            let error = outcome["error"].as_str().unwrap_or_default();
            assert!(
                (error.starts_with("AbortError") || error.contains("push service")) && outcome["stage"] == "subscribe",
                "the only failure allowed is the push service's: {error}"
            );
        }
        b.check("agent-14-alertes-push").await;
        eprintln!("{} requests checked, all to {}", b.requests, b.origin);
        b.client.close().await.unwrap();
    });
    drop(app);
}

/// A page of another site (another loopback origin) embedding Socle's widgets in
/// frames, as a commune's own website would. Serves the same page to every request.
async fn embedding_site(page: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    origin
}

/// The open-data portal, anonymous then as the publisher: the catalogue searched and
/// refined by a facet, a dataset's page, its preview filtered, a download, a chart,
/// and the widgets framed by a page of another origin; axe-core on each page.
#[test]
fn the_open_data_portal_in_chromium() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        eprintln!("SKIPPED: Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = socle();
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).arg("demo");
    let app = Running::spawn(cmd);
    let base = app.base_url(Duration::from_secs(60));
    app.wait_line(Duration::from_secs(240), |l| l.contains("demo ready"));
    let driver = Driver::start(&chromedriver);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut b = Browser::new(&driver, &chromium, &base).await;
        let cards = "return document.querySelectorAll('ul.datasets > li').length";

        // The catalogue, from the navigation.
        b.visit("/carte", "portail-00-carte").await;
        b.client.find(Locator::LinkText("Données ouvertes")).await.unwrap().click().await.unwrap();
        b.until("the catalogue", Duration::from_secs(30), "return location.pathname === '/donnees'").await;
        b.settle("portail-01-catalogue").await;
        let all = b.js(cards).await.as_u64().unwrap_or(0);
        assert!(all >= 4, "the demo's public datasets are listed: {all}");
        let text = b.js("return document.querySelector('main').innerText").await;
        assert!(!text.as_str().unwrap_or_default().contains("Interventions techniques"), "the private one is not");

        // Every public dataset of the demo has a page that passes axe-core, its map drawn when it has one.
        for id in ["taux-de-remplissage-des-conteneurs", "subventions-associations-2025", "parcs-et-jardins"] {
            b.visit(&format!("/donnees/{id}"), &format!("portail-01-{id}")).await;
            let svg = b.js("return document.querySelector('.portal-chart svg') !== null").await;
            assert_eq!(svg, Value::Bool(true), "{id}: a chart by default");
        }
        b.visit("/donnees", "portail-01-catalogue-retour").await;

        // Search.
        // Every word must appear: « sportifs » alone also finds the buildings' consumption
        // (its description names sports halls), « sportifs municipaux » only the list.
        b.client.find(Locator::Id("recherche")).await.unwrap().send_keys("sportifs municipaux").await.unwrap();
        b.client.find(Locator::Css("form.catalogue button[type=submit]")).await.unwrap().click().await.unwrap();
        b.until("the search", Duration::from_secs(30), "return location.search.includes('q=sportifs')").await;
        b.settle("portail-02-recherche").await;
        assert_eq!(b.js(cards).await.as_u64(), Some(1), "one dataset is the list of sports facilities");

        // A facet: theme « Environnement », search cleared.
        b.visit("/donnees", "portail-03-catalogue").await;
        b.client
            .find(Locator::XPath("//label[starts-with(normalize-space(.), 'Environnement')]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.client.find(Locator::Css("form.catalogue button[type=submit]")).await.unwrap().click().await.unwrap();
        b.until("the facet", Duration::from_secs(30), "return location.search.includes('theme=Environnement')").await;
        b.settle("portail-04-facette").await;
        let titles = b.js("return [...document.querySelectorAll('ul.datasets h3')].map(h => h.innerText).join(' | ')").await;
        let titles = titles.as_str().unwrap_or_default().to_owned();
        assert!(
            titles.contains("Parcs et jardins") && titles.contains("conteneurs") && !titles.contains("Équipements"),
            "theme Environnement: {titles}"
        );

        // A dataset's page, from the list.
        b.visit("/donnees?q=sportifs", "portail-05-catalogue").await;
        b.client.find(Locator::LinkText("Équipements sportifs de Saint-Aubin-sur-Lémance")).await.unwrap().click().await.unwrap();
        b.until("the dataset page", Duration::from_secs(30), "return location.pathname === '/donnees/equipements-sportifs'").await;
        b.settle("portail-06-jeu").await;
        let mapped = b.js("return Number(document.getElementById('carte-donnees').dataset.ready)").await;
        assert_eq!(mapped.as_u64(), Some(10), "the ten facilities on the map");
        let rows = "return document.querySelectorAll('#apercu ~ .table-wrap tbody tr, section[aria-labelledby=apercu] tbody tr').length";
        assert_eq!(b.js(rows).await.as_u64(), Some(10));

        // The preview filtered by a facet value, then by an ODSQL clause.
        let chosen = b
            .js("const hall = (o) => o.value.endsWith(':Salle spécialisée'); \
                 const s = [...document.querySelectorAll('select[name=refine]')].find(s => [...s.options].some(hall)); \
                 if (!s) return false; s.value = [...s.options].find(hall).value; return true")
            .await;
        assert_eq!(chosen, Value::Bool(true), "a facet select offers the type « Salle spécialisée »");
        b.client.find(Locator::Css("section[aria-labelledby=apercu] form button")).await.unwrap().click().await.unwrap();
        b.until("the refined preview", Duration::from_secs(30), "return location.search.includes('refine=')").await;
        b.settle("portail-07-apercu-filtre").await;
        assert_eq!(b.js(rows).await.as_u64(), Some(3), "three specialised halls");
        let api = b.js("return document.getElementById('apercu-api').getAttribute('href')").await;
        assert!(api.as_str().unwrap_or_default().contains("refine="), "the API link follows: {api}");

        // A download, by the browser, from the downloads list.
        let csv = b
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const a = document.querySelector('section[aria-labelledby=telecharger] a[href$=\"/exports/csv\"]');
                 setTimeout(() => done({error: 'no complete answer within 15 s'}), 15000);
                 fetch(a.href).then(r => r.text().then(t => done({status: r.status, type: r.headers.get('content-type'), text: t})))
                   .catch(e => done({error: String(e)}));",
                vec![],
            )
            .await
            .unwrap();
        // The browser asks for gzip, as every browser does: the streamed export must end cleanly.
        assert_eq!(csv["status"], 200, "the CSV download from the page failed in the browser: {csv}");
        assert!(csv["type"].as_str().unwrap_or_default().starts_with("text/csv"), "{csv}");
        assert!(csv["text"].as_str().unwrap_or_default().contains("Piscine intercommunale des Lémances"), "{csv}");

        // A chart: the sum of surfaces by type, as bars, with its table.
        b.visit("/donnees/equipements-sportifs", "portail-08-jeu").await;
        b.js("document.getElementById('x').value = 'type'; document.getElementById('calcul').value = 'sum'; \
              const y = document.getElementById('y'); y.value = [...y.options].find(o => o.textContent.startsWith('Surface')).value; \
              return true")
            .await;
        b.client.find(Locator::Css("section[aria-labelledby=graphique-section] form button")).await.unwrap().click().await.unwrap();
        b.until("the chart", Duration::from_secs(30), "return location.search.includes('calcul=sum')").await;
        b.settle("portail-09-graphique").await;
        let bars = b.js("return document.querySelectorAll('.portal-chart rect.bar').length").await;
        assert_eq!(bars.as_u64(), Some(8), "one bar per type of facility");
        // The values table sits in a closed <details>: read its text, not what is rendered.
        let stade = b
            .js("const r = [...document.querySelectorAll('.chart-table tbody tr')].find(r => r.textContent.startsWith('Stade')); \
                 return r ? r.textContent : null")
            .await;
        assert!(stade.as_str().unwrap_or_default().contains("9\u{202f}800"), "{stade}");

        // The widgets, framed by a page of another origin.
        let widget = |kind: &str| format!("{base}/donnees/equipements-sportifs/widget/{kind}");
        let site = embedding_site(format!(
            "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Site de la commune</title></head>\
             <body><main><h1>Nos équipements</h1>\
             <iframe src=\"{}\" title=\"Tableau des équipements\" width=\"900\" height=\"420\"></iframe>\
             <iframe src=\"{}\" title=\"Graphique des équipements\" width=\"900\" height=\"520\"></iframe>\
             <iframe src=\"{}\" title=\"Carte des équipements\" width=\"900\" height=\"480\"></iframe>\
             </main></body></html>",
            widget("table"),
            widget("chart?x=type"),
            widget("map")
        ))
        .await;
        assert_ne!(site, b.origin, "another origin");
        b.also_allowed = Some(site.clone());
        b.client.goto(&format!("{site}/")).await.unwrap();
        b.until("the embedding page", Duration::from_secs(30), "return document.readyState === 'complete'").await;
        for (i, (kind, ready)) in [
            ("table", "return document.querySelectorAll('tbody tr').length > 0"),
            ("chart", "return document.querySelectorAll('svg rect.bar').length > 0"),
            ("map", "const m = document.getElementById('carte-donnees'); return !!m && m.dataset.ready === '10'"),
        ]
        .into_iter()
        .enumerate()
        {
            // Chromium stops drawing frames out of view (no animation frame, so no map): show it.
            b.js(&format!("document.querySelectorAll('iframe')[{i}].scrollIntoView(); return true")).await;
            b.client.enter_frame(i as u16).await.unwrap();
            b.until(&format!("the {kind} widget inside the frame"), Duration::from_secs(30), ready).await;
            let origin = b.js("return location.origin").await;
            assert_eq!(origin.as_str(), Some(b.origin.as_str()), "the widget is Socle's page");
            b.axe(&format!("portail-10-widget-{kind}")).await;
            b.client.enter_parent_frame().await.unwrap();
        }
        b.check("portail-11-site-tiers").await;
        b.also_allowed = None;

        // The publisher's members see the usage figures.
        b.sign_in("admin@saint-aubin-sur-lemance.fr", "portail-admin").await;
        b.visit("/donnees/equipements-sportifs", "portail-12-jeu-producteur").await;
        let usage = b.js("return document.getElementById('frequentation') !== null").await;
        assert_eq!(usage, Value::Bool(true), "usage figures for the publisher");
        b.sign_out().await;
        eprintln!("{} requests checked", b.requests);
        b.client.close().await.unwrap();
    });
    drop(app);
}

/// Benchmark, not a test (`cargo test -p socle --test browser -- --ignored --nocapture`):
/// the map page with 10,000 public entities, time from navigation until the
/// map has its data and is idle (drawn and usable), measured in Chromium.
#[test]
#[ignore]
fn map_time_to_interactive_with_ten_thousand_entities() {
    use socle_domain::{
        Attribute, Entity, EntityId, EntityType, Geometry, NewOrganisation, OfficialCode, OrganisationId,
        OrganisationKind, Visibility,
    };
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        eprintln!("SKIPPED: Chromium or chromedriver is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = socle_storage::open(&socle_storage::StorageConfig::Sqlite { path: dir.path().join("socle.db") })
            .await
            .unwrap();
        let org = OrganisationId::parse("commune-banc").unwrap();
        store
            .upsert_organisation(&NewOrganisation {
                id: org.clone(),
                kind: OrganisationKind::Commune,
                name: "Banc d'essai".into(),
                code: OfficialCode::parse("86399").unwrap(),
                parent: None,
                population: Some(50_000),
                timezone: chrono_tz::Europe::Paris,
                retention_days: None,
            })
            .await
            .unwrap();
        let ty = EntityType::parse("WasteContainer").unwrap();
        let entities: Vec<Entity> = (0..10_000)
            .map(|i| {
                let mut e = Entity::new(EntityId::new(&ty, &format!("banc:{i}")).unwrap(), ty.clone(), org.clone());
                e.visibility = Visibility::Public;
                e.location = Some(Geometry::Point([0.45 + (i % 100) as f64 * 0.003, 46.40 + (i / 100) as f64 * 0.002]));
                e.with("name", Attribute::property(format!("Conteneur {i}")))
                    .unwrap()
                    .with("fillingLevel", Attribute::property(f64::from(i % 100) / 100.0))
                    .unwrap()
            })
            .collect();
        for chunk in entities.chunks(1000) {
            store.upsert_entities(chunk).await.unwrap();
        }
    });
    let mut cmd = socle();
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).arg("serve");
    let app = Running::spawn(cmd);
    let base = app.base_url(Duration::from_secs(60));
    let driver = Driver::start(&chromedriver);
    rt.block_on(async move {
        let b = Browser::new(&driver, &chromium, &base).await;
        // Warm-up: the first navigation pays for Chromium's start and the assets' first download.
        b.client.goto(&format!("{base}/connexion")).await.unwrap();
        b.until("the page", Duration::from_secs(60), "return document.readyState === 'complete'").await;
        let (mut maps, mut blanks) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            // The baseline: a page of the same layout, script and style sheets, without a map.
            b.client.goto(&format!("{base}/connexion")).await.unwrap();
            b.until(
                "the page",
                Duration::from_secs(60),
                "return document.readyState === 'complete' && performance.timing.loadEventEnd > 0",
            )
            .await;
            let blank = b.js("const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd").await;
            blanks.push(blank.as_f64().unwrap());
            b.client.goto(&format!("{base}/carte")).await.unwrap();
            b.until(
                "the map to be interactive",
                Duration::from_secs(60),
                "return performance.getEntriesByName('socle-map-ready').length > 0",
            )
            .await;
            let n = b.js("return Number(document.getElementById('carte').dataset.ready)").await;
            assert_eq!(n.as_u64(), Some(10_000), "every entity is on the map");
            let m = b
                .js("const t = (n) => Math.round(performance.getEntriesByName(n)[0]?.startTime ?? -1);
                     const r = (p) => performance.getEntriesByType('resource').find(e => e.name.includes(p));
                     const nav = performance.getEntriesByType('navigation')[0];
                     const data = r('/api/v1/map');
                     return { ready: t('socle-map-ready'), html: Math.round(nav.responseEnd),
                              html_bytes: nav.transferSize, dom: Math.round(nav.domContentLoadedEventEnd),
                              map_load: t('socle-map-load'), data: t('socle-map-data'),
                              data_end: data ? Math.round(data.responseEnd) : -1,
                              data_bytes: data ? data.transferSize : -1,
                              data_decoded: data ? data.decodedBodySize : -1 }")
                .await;
            eprintln!("  /carte: {m}");
            maps.push(m["ready"].as_f64().unwrap());
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (map, blank) = (median(&mut maps), median(&mut blanks));
        eprintln!(
            "map page with 10,000 entities: interactive after {map:.0} ms (median of {maps:?}); \
             baseline page loaded after {blank:.0} ms (median of {blanks:?}); ratio {:.1}",
            map / blank
        );
        b.client.close().await.unwrap();
    });
}
