//! The Explore API v2.1 over real HTTP, on both backends: datasets published through
//! the management API (CSV upload), then read in the documented Opendatasoft request
//! forms (`where`, `refine`, `group_by` with `range`, geo filters, exports), with
//! Opendatasoft's limits and error shapes, and a private dataset invisible to anyone
//! outside its organisation.

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};
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
    admin: String,
    _t: TestStore,
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
        let admin = s.create_user(&Email::parse("donnees@angers.fr").unwrap(), "Données", None).await.unwrap();
        s.grant(admin.id, &OrganisationId::parse("angers").unwrap(), Role::Admin).await.unwrap();
        let secret = new_token_secret(TokenKind::Personal);
        let token = ApiToken {
            id: uuid::Uuid::new_v4(),
            kind: TokenKind::Personal,
            label: "test".into(),
            user: Some(admin.id),
            organisation: OrganisationId::parse("angers").unwrap(),
            scope: TokenScope::Write,
            created_at: Utc::now(),
            expires_at: None,
            revoked_at: None,
        };
        s.create_token(&token, &hash_secret(&secret)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(socle_api::serve(listener, AppState::new(s.clone()), std::future::pending()));
        App { base, http: reqwest::Client::new(), admin: secret, _t: t }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ct: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (status, text) = self.send("GET", path, token, "text/plain", Vec::new()).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn publish(&self, id: &str, visibility: &str, csv: &str) {
        let meta = json!({"id": id, "organisation": "angers", "visibility": visibility,
            "metadata": {"title": format!("Jeu {id}"), "description": "Équipements **sportifs** de la ville",
                         "themes": ["Sports"], "keywords": ["équipements"], "licence": "etalab-2.0",
                         "publisher": "Ville d'Angers"}});
        let (status, body) = self
            .send("POST", "/api/v1/datasets", Some(&self.admin), "application/json", meta.to_string().into_bytes())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .send("PUT", &format!("/api/v1/datasets/{id}/data"), Some(&self.admin), "text/csv", csv.as_bytes().to_vec())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

const R: &str = "/api/explore/v2.1/catalog/datasets/equipements/records";

async fn documented_requests(t: TestStore) {
    let app = App::start(t).await;
    app.publish("equipements", "public", EQUIPEMENTS).await;
    app.publish("subventions-internes", "private", "beneficiaire;montant\nClub de judo;1500\n").await;

    // Catalogue.
    let cat = app.ok("/api/explore/v2.1/catalog/datasets").await;
    assert_eq!(cat["total_count"], 1);
    let d = &cat["results"][0];
    assert_eq!(d["dataset_id"], "equipements");
    assert!(d["dataset_uid"].as_str().unwrap().starts_with("da_"));
    assert_eq!(d["has_records"], true);
    assert_eq!(d["metas"]["default"]["title"], "Jeu equipements");
    assert_eq!(d["metas"]["default"]["records_count"], 5);
    let types: Vec<(&str, &str)> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        [("nom", "text"), ("type", "text"), ("surface", "double"), ("ouverture", "date"), ("position", "geo_point_2d")]
    );
    let search = app.ok("/api/explore/v2.1/catalog/datasets?where=%22sportifs%22").await;
    assert_eq!(search["total_count"], 1);
    let search = app.ok("/api/explore/v2.1/catalog/datasets?where=%22judo%22").await;
    assert_eq!(search["total_count"], 0);

    // Records: paging, where, refine, exclude, select.
    let all = app.ok(&format!("{R}?limit=2")).await;
    assert_eq!((all["total_count"].as_u64(), all["results"].as_array().unwrap().len()), (Some(5), 2));
    let big = app.ok(&format!("{R}?where=surface%20%3E%201000&order_by=surface%20desc")).await;
    assert_eq!(big["results"][0]["nom"], "Stade du Lac de Maine");
    assert_eq!(big["total_count"], 2);
    let refined = app.ok(&format!("{R}?refine=type:Salle&exclude=ouverture:2019/11")).await;
    assert_eq!(refined["total_count"], 1);
    assert_eq!(refined["results"][0]["nom"], "Salle des fêtes");
    let selected = app.ok(&format!("{R}?select=nom,surface*2%20as%20double&where=type%3D%22Piscine%22")).await;
    assert_eq!(selected["results"][0], json!({"nom": "Piscine Jean Bouin", "double": 2501}));

    // group_by with range, and a date grouping.
    let ranges = app
        .ok(&format!("{R}?select=range(surface,%201000)%20as%20tranche,count(*)%20as%20n&group_by=range(surface,%201000)%20as%20tranche"))
        .await;
    assert_eq!(ranges["results"][0], json!({"tranche": "[0, 1000[", "n": 3}));
    let years = app.ok(&format!("{R}?select=year(ouverture)%20as%20annee,count(*)%20as%20n&group_by=year(ouverture)%20as%20annee&order_by=n%20desc,annee")).await;
    assert_eq!(years["results"][0], json!({"annee": 2019, "n": 2}));

    // Geo filters.
    let near =
        app.ok(&format!("{R}?where=within_distance(position,%20geom%27POINT(-0.5542%2047.4709)%27,%201.5km)")).await;
    assert_eq!(near["total_count"], 1);
    let bbox = app.ok(&format!("{R}?where=in_bbox(position,%2047.49,%20-0.6,%2047.52,%20-0.55)")).await;
    assert_eq!(bbox["results"][0]["nom"], "Salle des fêtes");

    // One record by id (ids come from the content, as Opendatasoft's do).
    let table = socle_opendata::import::read_csv(EQUIPEMENTS.as_bytes(), &Default::default()).unwrap();
    let one = app.ok(&format!("{R}/{}", table.rows[2].0)).await;
    assert_eq!(one["nom"], "Stade du Lac de Maine");
    let (status, body) = app.get(&format!("{R}/nope"), None).await;
    assert_eq!((status, body["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("NotFound")));

    // Facets.
    let facets = app.ok("/api/explore/v2.1/catalog/datasets/equipements/facets?facet=type&refine=ouverture:2019").await;
    assert_eq!(facets["facets"][0]["name"], "type");
    assert_eq!(
        facets["facets"][0]["facets"][0],
        json!({"name": "Salle", "count": 2, "state": "displayed", "value": "Salle"})
    );
    let cat_facets = app.ok("/api/explore/v2.1/catalog/facets?facet=theme").await;
    assert_eq!(cat_facets["facets"][0]["facets"][0]["count"], 1);

    // Exports: csv with ; by default, delimiter and BOM, json, geojson.
    let (status, csv) =
        app.send("GET", "/api/explore/v2.1/catalog/datasets/equipements/exports/csv", None, "", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        csv.starts_with(
            "nom;type;surface;ouverture;position\r\nPiscine Jean Bouin;Piscine;1250.5;1998-06-15;47.4784, -0.5632\r\n"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 6);
    let (_, csv) = app
        .send("GET", "/api/explore/v2.1/catalog/datasets/equipements/exports/csv?delimiter=,&with_bom=true&where=type%3D%27Salle%27", None, "", vec![])
        .await;
    assert!(csv.starts_with("\u{feff}nom,type"), "{csv}");
    assert_eq!(csv.lines().count(), 3);
    let json_export = app.ok("/api/explore/v2.1/catalog/datasets/equipements/exports/json?limit=2").await;
    assert_eq!(json_export.as_array().map(Vec::len), Some(2));
    let geo = app.ok("/api/explore/v2.1/catalog/datasets/equipements/exports/geojson").await;
    assert_eq!(geo["features"][0]["geometry"], json!({"type": "Point", "coordinates": [-0.5632, 47.4784]}));
    let grouped = app
        .ok("/api/explore/v2.1/catalog/datasets/equipements/exports/json?select=type,count(*)%20as%20n&group_by=type")
        .await;
    assert_eq!(grouped.as_array().map(Vec::len), Some(4));

    // Re-upload: same id, new data; an unchanged row keeps its record id.
    app.send(
        "PUT",
        "/api/v1/datasets/equipements/data",
        Some(&app.admin),
        "text/csv",
        EQUIPEMENTS.replace("École de musique;Salle;310", "École de musique;Salle;320").into_bytes(),
    )
    .await;
    let after = app.ok(&format!("{R}?where=surface%3D320")).await;
    assert_eq!(after["total_count"], 1);
    assert_eq!(app.ok(&format!("{R}/{}", table.rows[2].0)).await["nom"], "Stade du Lac de Maine");
    let cat = app.ok("/api/explore/v2.1/catalog/datasets/equipements").await;
    assert_eq!(cat["dataset_uid"], d["dataset_uid"]);
    let usage = app.get("/api/v1/datasets/equipements/usage", Some(&app.admin)).await;
    assert!(usage.1["api_calls"].as_u64().unwrap() > 5, "{}", usage.1);
    assert!(usage.1["downloads"].as_u64().unwrap() >= 5, "{}", usage.1);
}

async fn errors_and_limits(t: TestStore) {
    let app = App::start(t).await;
    app.publish("equipements", "public", EQUIPEMENTS).await;
    for (query, code) in [
        ("limit=101", "InvalidRESTParameterError"),
        ("limit=abc", "InvalidRESTParameterError"),
        ("offset=9995&limit=10", "InvalidRESTParameterError"),
        ("where=surface%20%3E", "ODSQLError"),
        ("where=nope%3D1", "ODSQLError"),
        ("select=nom,count(*)", "ODSQLError"),
        ("group_by=range(surface)", "ODSQLError"),
        ("order_by=surface%20sideways", "ODSQLError"),
        ("where=%27unterminated", "ODSQLError"),
        ("refine=nope:1", "ODSQLError"),
        ("timezone=Mars/Olympus", "ODSQLError"),
        ("where=((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((", "ODSQLError"),
    ] {
        let (status, body) = app.get(&format!("{R}?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error_code"], code, "{query}: {body}");
    }
    let (_, body) = app.get(&format!("{R}?where=surface%20%3E%203%20and%20nope%3D1"), None).await;
    assert!(body["message"].as_str().unwrap().contains("position 16"), "{body}");
    let (status, _) = app.get(&format!("{R}?offset=9990&limit=10"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get("/api/explore/v2.1/catalog/datasets/equipements/exports/pdf", None).await;
    assert_eq!((status, body["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRESTParameterError")));
}

async fn a_private_dataset_is_invisible(t: TestStore) {
    let app = App::start(t).await;
    app.publish("subventions-internes", "private", "beneficiaire;montant\nClub de judo;1500\n").await;
    // Record ids come from the content: the same file read here gives the stored id.
    let csv = b"beneficiaire;montant\nClub de judo;1500\n";
    let record_id = socle_opendata::import::read_csv(csv, &Default::default()).unwrap().rows[0].0.clone();
    let (status, rec) = app
        .get(&format!("/api/explore/v2.1/catalog/datasets/subventions-internes/records/{record_id}"), Some(&app.admin))
        .await;
    assert_eq!((status, rec["beneficiaire"].as_str()), (StatusCode::OK, Some("Club de judo")), "{rec}");
    let paths = |id: &str| {
        vec![
            format!("/api/explore/v2.1/catalog/datasets/{id}"),
            format!("/api/explore/v2.1/catalog/datasets/{id}/records"),
            format!("/api/explore/v2.1/catalog/datasets/{id}/records/{record_id}"),
            format!("/api/explore/v2.1/catalog/datasets/{id}/facets"),
            format!("/api/explore/v2.1/catalog/datasets/{id}/exports/csv"),
            format!("/api/explore/v2.1/catalog/datasets/{id}/exports/json"),
        ]
    };
    for (hidden, absent) in paths("subventions-internes").iter().zip(paths("absent-dataset")) {
        let (s1, b1) = app.get(hidden, None).await;
        let (s2, b2) = app.get(&absent, None).await;
        assert_eq!(s1, StatusCode::NOT_FOUND, "{hidden}");
        assert_eq!((s1, b1["error_code"].clone()), (s2, b2["error_code"].clone()), "{hidden}");
    }
    // Not in the catalogue, its facets, its export, nor found by search.
    let cat = app.ok("/api/explore/v2.1/catalog/datasets?where=%22judo%22%20or%20%22subventions%22").await;
    assert_eq!(cat["total_count"], 0);
    let facets = app.ok("/api/explore/v2.1/catalog/facets").await;
    assert!(!facets.to_string().contains("subventions"));
    let (_, export) = app.send("GET", "/api/explore/v2.1/catalog/exports/csv", None, "", vec![]).await;
    assert!(!export.contains("subventions"));
    // Its organisation sees it.
    let (status, cat) = app.get("/api/explore/v2.1/catalog/datasets", Some(&app.admin)).await;
    assert_eq!((status, cat["total_count"].as_u64()), (StatusCode::OK, Some(1)));
    // Anonymous callers cannot create or upload.
    let (status, _) =
        app.send("PUT", "/api/v1/datasets/subventions-internes/data", None, "text/csv", b"a\n1\n".to_vec()).await;
    assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
}

/// The DCAT-AP 3.0.1 mandatory shapes (copied from the SEMIC release into tests/fixtures).
const SHAPES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dcat-ap-3.0.1/shapes.ttl");

async fn dcat_passes_the_dcat_ap_shapes(t: TestStore) {
    let app = App::start(t).await;
    app.publish("equipements", "public", EQUIPEMENTS).await;
    app.publish("subventions-internes", "private", "beneficiaire;montant\nClub de judo;1500\n").await;
    let edit = json!({"visibility": "public", "metadata": {"title": "Équipements sportifs", "description": "Les équipements \"sportifs\" <municipaux> & associatifs",
        "keywords": ["sport"], "licence": "odbl", "publisher": "Ville d'Angers",
        "conforms_to": "https://schema.data.gouv.fr/etalab/schema-equipements-sportifs/latest/schema.json",
        "temporal_coverage": {"start": "1998-01-01", "end": "2019-12-31"}}});
    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/datasets/equipements",
            Some(&app.admin),
            "application/json",
            edit.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // An attachment is one more distribution of its dataset, and must pass the shapes too.
    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/datasets/equipements/attachments/notice.pdf?title=Notice%20m%C3%A9thodologique",
            Some(&app.admin),
            "application/pdf",
            b"%PDF-1.4 notice".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for (query, accept, pyshacl_format) in
        [("", "", "turtle"), ("?format=rdf", "", "xml"), ("", "application/ld+json", "json-ld")]
    {
        let mut req = app.http.get(format!("{}/api/explore/v2.1/catalog/exports/dcat{query}", app.base));
        if !accept.is_empty() {
            req = req.header("accept", accept);
        }
        let text = req.send().await.unwrap().text().await.unwrap();
        assert!(text.contains("equipements") && !text.contains("subventions"), "{text}");
        assert!(text.contains("http://purl.org/dc/terms/identifier") || text.contains("dct:identifier"), "{text}");
        assert!(text.contains("schema-equipements-sportifs") && text.contains("odbl"), "{text}");
        assert!(text.contains("exports/geojson") && text.contains("hydra"), "{text}");
        assert!(text.contains("exports/parquet") && text.contains("attachments/notice.pdf"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("catalogue");
        std::fs::write(&file, &text).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-m", "pyshacl", "-s", SHAPES, "-sf", "turtle", "-df", pyshacl_format])
            .arg(&file)
            .output()
            .expect("pyshacl (scripts/test installs it)");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && report.contains("Conforms: True"), "{pyshacl_format}: {report}\n{text}");
    }
    // A broken catalogue is caught: the check can fail.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.ttl");
    std::fs::write(&file, "<http://x/c> a <http://www.w3.org/ns/dcat#Catalog> .").unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "pyshacl", "-s", SHAPES, "-df", "turtle"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (status, body) = app.get("/api/explore/v2.1/catalog/exports/dcat?format=pdf", None).await;
    assert_eq!((status, body["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRESTParameterError")));
}

async fn uploads_follow_the_attached_table_schema(t: TestStore) {
    let app = App::start(t).await;
    let meta = json!({"id": "subventions", "organisation": "angers", "visibility": "public",
        "metadata": {"title": "Subventions", "conforms_to": "https://schema.data.gouv.fr/scdl/subventions/latest.html",
            "table_schema": {"fields": [
                {"name": "nomBeneficiaire", "type": "string", "constraints": {"required": true}},
                {"name": "montant", "type": "number", "constraints": {"minimum": 0}}]}}});
    let (status, body) =
        app.send("POST", "/api/v1/datasets", Some(&app.admin), "application/json", meta.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/datasets/subventions/data",
            Some(&app.admin),
            "text/csv",
            b"nomBeneficiaire;montant\n;12\nClub;-3\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        report["errors"][0],
        json!({"row": 1, "column": "nomBeneficiaire", "code": "required", "message": "a value is required"})
    );
    assert_eq!(report["errors"][1]["row"], 2);
    assert_eq!(report["errors"][1]["column"], "montant");
    let records = app.ok("/api/explore/v2.1/catalog/datasets/subventions/records").await;
    assert_eq!(records["total_count"], 0, "nothing stored from a refused file");
    let (status, body) = app
        .send(
            "PUT",
            "/api/v1/datasets/subventions/data",
            Some(&app.admin),
            "text/csv",
            b"nomBeneficiaire;montant\nClub;1500\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bad_schema =
        json!({"id": "x", "organisation": "angers", "metadata": {"title": "X", "table_schema": {"fields": "no"}}});
    let (status, _) = app
        .send("POST", "/api/v1/datasets", Some(&app.admin), "application/json", bad_schema.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
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
    documented_requests,
    errors_and_limits,
    a_private_dataset_is_invisible,
    dcat_passes_the_dcat_ap_shapes,
    uploads_follow_the_attached_table_schema
);
