//! The open-data portal's pages over real HTTP, on both backends: the catalogue
//! (search, facets), a dataset's page (description, metadata, preview filters and
//! paging, chart, downloads, API examples, embedding, usage figures for the publisher
//! only), the embeddable widgets and their framing policy, and private datasets
//! invisible on every page to whoever may not see them. Browsers run in
//! `crates/socle/tests/browser.rs`.

use chrono::Utc;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::json;
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::AppState;
use socle_domain::{
    ApiToken, Email, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope,
};
use socle_storage::testing::TestStore;

const EQUIPEMENTS: &str = "Nom;Type;Surface;Ouverture;Position\r\n\
Piscine Jean Bouin;Piscine;1250,5;15/06/1998;47.4784, -0.5632\r\n\
Gymnase de la Roseraie;Gymnase;980;01/09/2005;47.4521, -0.5412\r\n\
Stade du Lac de Maine;Stade;8200;20/04/2012;47.4582, -0.5931\r\n\
Salle des fêtes;Salle;420;10/01/2019;47.5060, -0.5890\r\n\
École de musique;Salle;310;30/11/2019;47.4460, -0.4660\r\n";

struct App {
    base: String,
    http: reqwest::Client,
    /// An administrator of Angers (the publisher), and an agent of Avrillé.
    publisher: String,
    outsider: String,
    _t: TestStore,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn token(s: &socle_storage::DynStore, email: &str, org: &str, role: Role) -> String {
    let user = s.create_user(&Email::parse(email).unwrap(), "Personne", None).await.unwrap();
    s.grant(user.id, &OrganisationId::parse(org).unwrap(), role).await.unwrap();
    let secret = new_token_secret(TokenKind::Personal);
    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Personal,
        label: "test".into(),
        user: Some(user.id),
        organisation: OrganisationId::parse(org).unwrap(),
        scope: TokenScope::Write,
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
    };
    s.create_token(&token, &hash_secret(&secret)).await.unwrap();
    secret
}

impl App {
    async fn start(t: TestStore) -> Self {
        let s = t.store.clone();
        for (id, code) in [("angers", "49007"), ("avrille", "49015")] {
            s.upsert_organisation(&NewOrganisation {
                id: OrganisationId::parse(id).unwrap(),
                kind: OrganisationKind::Commune,
                name: id.into(),
                code: OfficialCode::parse(code).unwrap(),
                parent: None,
                population: None,
                timezone: chrono_tz::Europe::Paris,
                retention_days: None,
            })
            .await
            .unwrap();
        }
        let publisher = token(&s, "donnees@angers.fr", "angers", Role::Admin).await;
        let outsider = token(&s, "agent@avrille.fr", "avrille", Role::Agent).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(socle_api::serve(listener, AppState::new(s.clone()), std::future::pending()));
        App { base, http: reqwest::Client::new(), publisher, outsider, _t: t }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, ct: &str, body: Vec<u8>) -> Page {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        Page { status, headers, body: res.text().await.unwrap() }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Page {
        self.send("GET", path, token, "text/plain", Vec::new()).await
    }

    async fn ok(&self, path: &str) -> String {
        let p = self.get(path, None).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        p.body
    }

    async fn publish(&self, id: &str, visibility: &str, metadata: serde_json::Value, csv: &str) {
        let meta = json!({"id": id, "organisation": "angers", "visibility": visibility, "metadata": metadata});
        let p = self
            .send("POST", "/api/v1/datasets", Some(&self.publisher), "application/json", meta.to_string().into_bytes())
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
        let p = self
            .send(
                "PUT",
                &format!("/api/v1/datasets/{id}/data"),
                Some(&self.publisher),
                "text/csv",
                csv.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    }

    async fn fixture(&self) {
        self.publish(
            "equipements",
            "public",
            json!({"title": "Équipements sportifs", "description": "Les équipements **sportifs** de la ville.\n\n<script>alert('x')</script>",
                   "themes": ["Sports"], "keywords": ["équipements", "piscine"], "licence": "etalab-2.0",
                   "publisher": "Ville d'Angers", "frequency": "annual",
                   "conforms_to": "https://schema.data.gouv.fr/etalab/schema-equipements-sportifs/latest.html"}),
            EQUIPEMENTS,
        )
        .await;
        self.publish(
            "budget",
            "public",
            json!({"title": "Budget primitif", "description": "Les dépenses par chapitre.", "themes": ["Finances"],
                   "keywords": ["budget"], "licence": "odbl", "publisher": "Ville d'Angers"}),
            "chapitre;montant\nPersonnel;1200000\nVoirie;450000\n",
        )
        .await;
        self.publish(
            "subventions-internes",
            "private",
            json!({"title": "Subventions en préparation", "themes": ["Finances"], "publisher": "Ville d'Angers"}),
            "beneficiaire;montant\nClub de judo;1500\n",
        )
        .await;
    }
}

/// The number of rows of the first table of a page's preview.
fn preview_rows(body: &str) -> usize {
    let start = body.find(r#"id="apercu""#).expect("a preview");
    let table = &body[start..];
    let tbody = &table[table.find("<tbody>").unwrap()..table.find("</tbody>").unwrap()];
    tbody.matches("<tr>").count()
}

async fn the_catalogue_searches_and_refines(t: TestStore) {
    let app = App::start(t).await;
    app.fixture().await;
    let all = app.ok("/donnees").await;
    assert!(all.contains("Équipements sportifs") && all.contains("Budget primitif"), "{all}");
    assert!(!all.contains("Subventions en préparation") && !all.contains("subventions-internes"));
    assert!(all.contains(r#"<a href="/donnees/equipements">"#));
    assert!(all.contains("2 jeux de données"), "{all}");
    // Facets count what the visitor sees: Finances holds one public dataset.
    assert!(all.contains("Finances (1)") && all.contains("Sports (1)"), "{all}");
    assert!(all.contains("Open Database License (ODbL) (1)"), "{all}");
    // The navigation marks the section.
    assert!(all.contains(r#"<a href="/donnees" aria-current="page">Données ouvertes</a>"#), "{all}");

    // Full text over title, description and keywords, accents ignored.
    let found = app.ok("/donnees?q=PISCINE").await;
    assert!(found.contains("1 jeu de données") && found.contains("Équipements sportifs"), "{found}");
    assert!(!found.contains("Budget primitif"));
    let found = app.ok("/donnees?q=depenses%20chapitre").await;
    assert!(found.contains("Budget primitif") && !found.contains("Équipements sportifs"));
    assert!(app.ok("/donnees?q=judo").await.contains("Aucun jeu de données"));

    // Facets as checkboxes: one theme, one licence, a publisher.
    let refined = app.ok("/donnees?theme=Finances").await;
    assert!(refined.contains("Budget primitif") && !refined.contains("Équipements sportifs"));
    assert!(refined.contains(r#"value="Finances" id="facette-theme-"#) && refined.contains("checked"));
    let refined = app.ok("/donnees?licence=etalab-2.0").await;
    assert!(refined.contains("Équipements sportifs") && !refined.contains("Budget primitif"));
    let refined = app.ok("/donnees?producteur=Ville%20d%27Angers&mot-cle=budget").await;
    assert!(refined.contains("1 jeu de données") && refined.contains("Budget primitif"), "{refined}");

    // The publisher's members see the private dataset, marked as such; others do not.
    let member = app.get("/donnees?theme=Finances", Some(&app.publisher)).await;
    assert!(member.body.contains("Subventions en préparation") && member.body.contains("Accès restreint"));
    let outsider = app.get("/donnees?q=subventions", Some(&app.outsider)).await;
    assert!(!outsider.body.contains("Subventions en préparation"));

    // English, through the same path.
    let en = app.http.get(format!("{}/donnees", app.base)).header("accept-language", "en").send().await.unwrap();
    let en = en.text().await.unwrap();
    assert!(en.contains("<h1>Open data</h1>") && en.contains("2 datasets"), "{en}");
}

async fn the_dataset_page(t: TestStore) {
    let app = App::start(t).await;
    app.fixture().await;
    let page = app.ok("/donnees/equipements").await;
    // Description: Markdown, raw HTML shown as text.
    assert!(page.contains("<strong>sportifs</strong>"), "{page}");
    assert!(!page.contains("<script>alert") && page.contains("&lt;script&gt;"), "{page}");
    // Metadata: licence with its text, publisher, frequency, schema, identifier.
    assert!(page.contains(
        r#"<a href="https://www.etalab.gouv.fr/licence-ouverte-open-licence/">Licence Ouverte v2.0 (Etalab)</a>"#
    ));
    assert!(page.contains("Ville d&#39;Angers"), "{page}");
    assert!(page.contains("annuelle") && page.contains("schema-equipements-sportifs"));
    // Preview: five records, paging of the Explore API, the same request in the API.
    assert_eq!(preview_rows(&page), 5);
    assert!(page.contains("Enregistrements 1–5 sur 5"), "{page}");
    assert!(page.contains("/api/explore/v2.1/catalog/datasets/equipements/records?limit=20"), "{page}");
    // Downloads: every export format of the API, and the DCAT catalogue.
    for f in socle_opendata::export::Format::NAMES {
        assert!(page.contains(&format!("/api/explore/v2.1/catalog/datasets/equipements/exports/{f}\"")), "{f}");
    }
    assert!(page.contains("/api/explore/v2.1/catalog/exports/dcat"));
    // API examples and embedding snippets.
    assert!(page.contains("curl &#34;http://"), "{page}");
    assert!(
        page.contains("&#60;iframe src=&#34;http://127.0.0.1:8080/donnees/equipements/widget/table&#34;"),
        "{page}"
    );
    // A geo dataset has its map, with the filtered records as GeoJSON.
    assert!(page.contains(r#"id="carte-donnees""#) && page.contains("FeatureCollection"), "{page}");
    // The chart: counted by the first facet, an SVG with its title and a data table.
    assert!(page.contains("<svg") && page.contains(r#"role="img""#) && page.contains("<rect class=\"bar\""), "{page}");
    assert!(page.contains("Les valeurs du graphique"));

    // Filters: ODSQL where, refine, both as in the Explore API.
    let big = app.ok("/donnees/equipements?where=surface%20%3E%201000").await;
    assert_eq!(preview_rows(&big), 2, "{big}");
    assert!(big.contains("where=surface+%3E+1000"), "the API link carries the filter");
    let salles = app.ok("/donnees/equipements?refine=type%3ASalle").await;
    assert_eq!(preview_rows(&salles), 2);
    assert!(salles.contains(r#"<option value="type:Salle" selected>"#), "{salles}");
    let bad = app.get("/donnees/equipements?where=surface%20%3E", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("La requête n&#39;est pas valide"));
    assert!(bad.body.contains(r#"aria-invalid="true""#));

    // A chart asked for: the sum of surfaces by type, as a line; the values table says it.
    let chart = app.ok("/donnees/equipements?x=type&calcul=sum&y=surface&forme=courbe").await;
    assert!(chart.contains("<polyline class=\"line\""), "{chart}");
    assert!(chart.contains("<th scope=\"row\">Stade</th><td class=\"num\">8\u{202f}200</td>"), "{chart}");
    assert!(chart.contains("select=%60type%60+as+x%2C+sum%28%60surface%60%29+as+y"), "{chart}");

    // Usage figures: the publisher's members only; each page view is counted.
    assert!(!page.contains("Fréquentation"));
    let outsider = app.get("/donnees/equipements", Some(&app.outsider)).await;
    assert!(!outsider.body.contains("Fréquentation"));
    let publisher = app.get("/donnees/equipements", Some(&app.publisher)).await;
    assert!(publisher.body.contains("Fréquentation"), "{}", publisher.body);
    let usage = app.get("/api/v1/datasets/equipements/usage", Some(&app.publisher)).await;
    let usage: serde_json::Value = serde_json::from_str(&usage.body).unwrap();
    assert!(usage["views"].as_u64() >= Some(7), "{usage}");

    // A dataset without geometry has no map; the ODbL one links to its licence.
    let budget = app.ok("/donnees/budget").await;
    assert!(!budget.contains(r#"id="carte-donnees""#));
    assert!(budget.contains("https://opendatacommons.org/licenses/odbl/1-0/"));
}

async fn private_datasets_stay_hidden_on_every_page(t: TestStore) {
    let app = App::start(t).await;
    app.fixture().await;
    for path in [
        "/donnees/subventions-internes",
        "/donnees/subventions-internes/widget/table",
        "/donnees/subventions-internes/widget/chart",
    ] {
        let hidden = app.get(path, None).await;
        let absent = app.get(&path.replace("subventions-internes", "absent"), None).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(absent.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!hidden.body.contains("Subventions") && !hidden.body.contains("judo"), "{path}");
        let outsider = app.get(path, Some(&app.outsider)).await;
        assert_eq!(outsider.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Its members see its page, but never a widget: widgets are framed by other sites.
    let member = app.get("/donnees/subventions-internes", Some(&app.publisher)).await;
    assert_eq!(member.status, StatusCode::OK);
    assert!(member.body.contains("Club de judo") && member.body.contains("ne peut pas être intégré"));
    assert!(!member.body.contains("&#60;iframe"));
    let widget = app.get("/donnees/subventions-internes/widget/table", Some(&app.publisher)).await;
    assert_eq!(widget.status, StatusCode::NOT_FOUND);
}

async fn widgets_may_be_framed_and_nothing_else(t: TestStore) {
    let app = App::start(t).await;
    app.fixture().await;
    let csp = |p: &Page| p.headers["content-security-policy"].to_str().unwrap().to_owned();
    for path in [
        "/donnees/equipements/widget/table?refine=type%3ASalle",
        "/donnees/equipements/widget/chart?x=type",
        "/donnees/equipements/widget/map",
    ] {
        let p = app.get(path, None).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        assert!(csp(&p).contains("frame-ancestors *;"), "{path}: {}", csp(&p));
        assert!(!p.headers.contains_key("x-frame-options"), "{path}");
        assert!(!p.headers.contains_key("set-cookie"), "{path}: a widget sets no cookie");
        assert!(p.body.contains("Équipements sportifs") && !p.body.contains("<nav"), "{path}");
    }
    let table = app.ok("/donnees/equipements/widget/table?refine=type%3ASalle").await;
    assert!(table.contains("Salle des fêtes") && !table.contains("Piscine Jean Bouin"), "{table}");
    let chart = app.ok("/donnees/equipements/widget/chart?x=type").await;
    assert!(chart.contains("<svg") && chart.contains("<title id=\"graphique-titre\">"), "{chart}");
    let map = app.ok("/donnees/equipements/widget/map").await;
    assert!(map.contains(r#"id="carte-donnees""#) && map.contains("<script type=\"module\""), "{map}");
    // No map without geometry; no unknown widget.
    assert_eq!(app.get("/donnees/budget/widget/map", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/donnees/equipements/widget/nope", None).await.status, StatusCode::NOT_FOUND);
    // Every other page still refuses to be framed, the portal's included.
    for path in ["/donnees", "/donnees/equipements", "/carte", "/connexion"] {
        let p = app.get(path, None).await;
        assert!(csp(&p).contains("frame-ancestors 'none'"), "{path}: {}", csp(&p));
        assert_eq!(p.headers["x-frame-options"], "DENY", "{path}");
    }
}

macro_rules! both {
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

both!(
    the_catalogue_searches_and_refines,
    the_dataset_page,
    private_datasets_stay_hidden_on_every_page,
    widgets_may_be_framed_and_nothing_else
);
