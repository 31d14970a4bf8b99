//! The open-data formats and sources beyond CSV, over real HTTP on both backends: XLSX
//! upload and export read back with calamine, Parquet export read back with the parquet
//! crate, attachments (upload, listing, download, privacy), and the live dataset of the
//! buildings' daily consumption computed from the meters' daily rollups.

use std::collections::BTreeMap;

use calamine::{Data, Reader, Xlsx};
use chrono::{Duration, TimeZone, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field as PqField;
use reqwest::StatusCode;
use serde_json::{json, Value};
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::AppState;
use socle_domain::{
    ApiToken, Attribute, AttributeName, Email, Entity, EntityId, EntityType, NewOrganisation, Observation,
    ObservedValue, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope, UnitCode, Visibility,
};
use socle_opendata::dataset::{LiveDailySeries, LiveSource};
use socle_storage::testing::TestStore;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

struct App {
    base: String,
    http: reqwest::Client,
    admin: String,
    t: TestStore,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    disposition: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::String(String::from_utf8_lossy(&self.body).into()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into()
    }
}

impl App {
    async fn start(t: TestStore) -> Self {
        let s = t.store.clone();
        for (id, code, parent) in
            [("syndicat", "200012345", None), ("montclar", "47180", Some("syndicat")), ("voisine", "47181", None)]
        {
            s.upsert_organisation(&NewOrganisation {
                id: OrganisationId::parse(id).unwrap(),
                kind: if parent.is_none() && id == "syndicat" {
                    OrganisationKind::Syndicat
                } else {
                    OrganisationKind::Commune
                },
                name: match id {
                    "montclar" => "Montclar-en-Lémance".into(),
                    other => other.into(),
                },
                code: OfficialCode::parse(code).unwrap(),
                parent: parent.map(|p| OrganisationId::parse(p).unwrap()),
                population: None,
                timezone: chrono_tz::Europe::Paris,
                retention_days: None,
            })
            .await
            .unwrap();
        }
        let admin = s.create_user(&Email::parse("donnees@montclar.fr").unwrap(), "Données", None).await.unwrap();
        s.grant(admin.id, &OrganisationId::parse("montclar").unwrap(), Role::Admin).await.unwrap();
        let secret = new_token_secret(TokenKind::Personal);
        let token = ApiToken {
            id: uuid::Uuid::new_v4(),
            kind: TokenKind::Personal,
            label: "test".into(),
            user: Some(admin.id),
            organisation: OrganisationId::parse("montclar").unwrap(),
            scope: TokenScope::Write,
            created_at: Utc::now(),
            expires_at: None,
            revoked_at: None,
        };
        s.create_token(&token, &hash_secret(&secret)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(socle_api::serve(listener, AppState::new(s.clone()), std::future::pending()));
        App { base, http: reqwest::Client::new(), admin: secret, t }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, ct: &str, body: Vec<u8>) -> Answer {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let header = |n: &str| res.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let (content_type, disposition) = (header("content-type"), header("content-disposition"));
        Answer {
            status: res.status(),
            content_type,
            disposition,
            headers: res.headers().clone(),
            body: res.bytes().await.unwrap().to_vec(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, "text/plain", Vec::new()).await
    }

    async fn ok(&self, path: &str) -> Value {
        let a = self.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text());
        a.json()
    }

    async fn create(&self, id: &str, visibility: &str) {
        let meta = json!({"id": id, "organisation": "montclar", "visibility": visibility,
            "metadata": {"title": format!("Jeu {id}"), "publisher": "Commune de Montclar-en-Lémance"}});
        let a = self
            .send("POST", "/api/v1/datasets", Some(&self.admin), "application/json", meta.to_string().into_bytes())
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    }

    async fn upload(&self, id: &str, ct: &str, body: Vec<u8>) -> Value {
        let a = self.send("PUT", &format!("/api/v1/datasets/{id}/data"), Some(&self.admin), ct, body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        a.json()
    }
}

/// A publisher's workbook: typed cells on the first sheet, a second sheet ignored.
fn workbook() -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut wb = Workbook::new();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    let sheet = wb.add_worksheet();
    for (c, h) in ["Nom", "Type", "Surface", "Capacité", "Mise en service", "Accessible"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let rows = [
        ("Piscine des Lémances", "Piscine", 1850.5, 420.0, (1996, 6, 14), true),
        ("Gymnase Jean-Moulin", "Gymnase", 1240.0, 350.0, (1988, 9, 2), true),
        ("Salle de danse", "Salle", 310.0, 60.0, (2009, 1, 15), true),
        ("Dojo municipal", "Salle", 280.0, 45.0, (2019, 9, 19), false),
    ];
    for (i, (nom, ty, surface, capacite, (y, m, d), pmr)) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write_string(r, 0, *nom).unwrap();
        sheet.write_string(r, 1, *ty).unwrap();
        sheet.write_number(r, 2, *surface).unwrap();
        sheet.write_number(r, 3, *capacite).unwrap();
        sheet.write_datetime_with_format(r, 4, ExcelDateTime::from_ymd(*y, *m, *d).unwrap(), &date).unwrap();
        sheet.write_boolean(r, 5, *pmr).unwrap();
    }
    wb.add_worksheet().write_string(0, 0, "notes internes").unwrap();
    wb.save_to_buffer().unwrap()
}

fn parquet_rows(bytes: &[u8]) -> (Vec<String>, Vec<Vec<PqField>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.parquet");
    std::fs::write(&path, bytes).unwrap();
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let columns = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| format!("{}:{:?}", c.name(), c.physical_type()))
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().get_column_iter().map(|(_, f)| f.clone()).collect())
        .collect();
    (columns, rows)
}

const E: &str = "/api/explore/v2.1/catalog/datasets/equipements";

async fn xlsx_and_parquet(t: TestStore) {
    let app = App::start(t).await;
    app.create("equipements", "public").await;
    let uploaded = app.upload("equipements", XLSX, workbook()).await;
    assert_eq!(uploaded["records"], 4, "{uploaded}");
    let records = app.ok(&format!("{E}/records?order_by=nom")).await;
    assert_eq!(records["total_count"], 4);
    let dojo = &records["results"][0];
    assert_eq!(dojo["nom"], "Dojo municipal");
    assert_eq!((dojo["surface"].clone(), dojo["capacite"].clone()), (json!(280.0), json!(45)));
    assert_eq!((dojo["mise_en_service"].clone(), dojo["accessible"].clone()), (json!("2019-09-19"), json!(false)));
    let d = app.ok(E).await;
    let types: BTreeMap<String, String> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(types["surface"], "double");
    assert_eq!(types["capacite"], "int");
    assert_eq!(types["mise_en_service"], "date");

    // A browser asks for gzip: the compressed stream must end cleanly (the streamed
    // body, polled once more after its end by the compression layer, used to panic
    // and cut every browser download).
    for format in ["csv", "jsonl", "geojson"] {
        let res = app
            .http
            .get(format!("{}{E}/exports/{format}", app.base))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-encoding"], "gzip", "{format}");
        let body = res.bytes().await.unwrap_or_else(|e| panic!("{format}: the compressed export is cut: {e}"));
        assert_eq!(&body[..2], &[0x1f, 0x8b], "{format}");
    }

    // XLSX export: typed cells, read back with calamine, then uploaded again as is.
    let x = app.get(&format!("{E}/exports/xlsx?order_by=nom")).await;
    assert_eq!(x.status, StatusCode::OK, "{}", x.text());
    assert_eq!(x.content_type, XLSX);
    assert!(x.disposition.contains("equipements.xlsx"), "{}", x.disposition);
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(x.body.clone())).unwrap();
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(range.height(), 5);
    assert_eq!(range.get((0, 0)), Some(&Data::String("nom".into())));
    assert_eq!(range.get((1, 0)), Some(&Data::String("Dojo municipal".into())));
    assert_eq!(range.get((1, 2)), Some(&Data::Float(280.0)));
    assert_eq!(range.get((1, 5)), Some(&Data::Bool(false)));
    assert!(matches!(range.get((1, 4)), Some(Data::DateTime(_))), "{:?}", range.get((1, 4)));
    app.create("copie", "public").await;
    app.upload("copie", XLSX, x.body.clone()).await;
    let copy = app.ok("/api/explore/v2.1/catalog/datasets/copie/records?order_by=nom").await;
    assert_eq!(copy["results"], records["results"], "an exported workbook uploads back to the same records");
    let filtered = app.get(&format!("{E}/exports/xlsx?where=type%3D%27Salle%27")).await;
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(filtered.body)).unwrap();
    assert_eq!(wb.worksheet_range_at(0).unwrap().unwrap().height(), 3);

    // Parquet: typed columns, values as stored.
    let p = app.get(&format!("{E}/exports/parquet?order_by=nom")).await;
    assert_eq!((p.status, p.content_type.as_str()), (StatusCode::OK, "application/vnd.apache.parquet"));
    let (columns, rows) = parquet_rows(&p.body);
    assert_eq!(
        columns,
        [
            "nom:BYTE_ARRAY",
            "type:BYTE_ARRAY",
            "surface:DOUBLE",
            "capacite:INT64",
            "mise_en_service:INT32",
            "accessible:BOOLEAN"
        ]
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        vec![
            PqField::Str("Dojo municipal".into()),
            PqField::Str("Salle".into()),
            PqField::Double(280.0),
            PqField::Long(45),
            PqField::Date(18158),
            PqField::Bool(false),
        ]
    );
    // Aggregated: computed columns typed from their values.
    let g = app
        .get(&format!("{E}/exports/parquet?select=type,count(*)%20as%20n,sum(surface)%20as%20s&group_by=type"))
        .await;
    let (columns, rows) = parquet_rows(&g.body);
    assert_eq!(columns, ["type:BYTE_ARRAY", "n:DOUBLE", "s:DOUBLE"]);
    assert!(
        rows.contains(&vec![PqField::Str("Salle".into()), PqField::Double(2.0), PqField::Double(590.0)]),
        "{rows:?}"
    );

    // The catalogue in both formats, and both formats in DCAT.
    let c = app.get("/api/explore/v2.1/catalog/exports/xlsx").await;
    assert_eq!(c.status, StatusCode::OK);
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(c.body)).unwrap();
    assert_eq!(wb.worksheet_range_at(0).unwrap().unwrap().height(), 3);
    let c = app.get("/api/explore/v2.1/catalog/exports/parquet").await;
    assert_eq!(parquet_rows(&c.body).1.len(), 2);
    let dcat = app.get("/api/explore/v2.1/catalog/exports/dcat").await.text();
    assert!(dcat.contains("equipements/exports/xlsx") && dcat.contains("equipements/exports/parquet"), "{dcat}");
    assert!(dcat.contains("application/vnd.apache.parquet"), "{dcat}");

    // A corrupt workbook is refused with a problem, nothing replaced.
    let a = app
        .send("PUT", "/api/v1/datasets/equipements/data", Some(&app.admin), XLSX, b"PK\x03\x04 broken".to_vec())
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(a.text().contains("Excel"), "{}", a.text());
    assert_eq!(app.ok(&format!("{E}/records")).await["total_count"], 4);
}

async fn attachments(t: TestStore) {
    let app = App::start(t).await;
    app.create("subventions", "public").await;
    app.create("interne", "private").await;
    let notice = "# Notice\n\nMontants en euros.\n".as_bytes().to_vec();
    let put = |id: &str, name: &str, token: Option<String>, ct: &str, body: Vec<u8>| {
        let path = format!("/api/v1/datasets/{id}/attachments/{name}");
        let ct = ct.to_string();
        let app = &app;
        async move { app.send("PUT", &path, token.as_deref(), &ct, body).await }
    };
    let admin = Some(app.admin.clone());
    let a = put("subventions", "notice.md?title=Notice%20de%20lecture", admin.clone(), "text/markdown", notice.clone())
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    let a = put("interne", "secret.txt", admin.clone(), "text/plain", b"ne pas publier".to_vec()).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    // Refusals: anonymous, bad name, empty, too large.
    assert_eq!(put("subventions", "x.txt", None, "text/plain", b"x".to_vec()).await.status, StatusCode::UNAUTHORIZED);
    let bad = put("subventions", ".htaccess", admin.clone(), "text/plain", b"x".to_vec()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert!(bad.content_type.contains("problem+json"), "{}", bad.content_type);
    assert_eq!(
        put("subventions", "vide.txt", admin.clone(), "text/plain", Vec::new()).await.status,
        StatusCode::BAD_REQUEST
    );
    // The server refuses the announced size before reading: it may close while the body is
    // still being sent, which the client sees as a broken pipe instead of the 413.
    let big = app
        .http
        .put(format!("{}/api/v1/datasets/subventions/attachments/gros.bin", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 20 * 1024 * 1024 + 1])
        .send()
        .await;
    match big {
        Ok(res) => assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(e.is_request() && format!("{e:?}").contains("BodyWrite"), "{e:?}"),
    }
    let d = app.ok("/api/explore/v2.1/catalog/datasets/subventions").await;
    assert!(!d.to_string().contains("gros.bin"), "nothing stored from a refused file");

    // Listed as Opendatasoft lists them.
    let d = app.ok("/api/explore/v2.1/catalog/datasets/subventions").await;
    let listed = &d["attachments"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(listed[0]["id"], "notice.md");
    assert_eq!(listed[0]["title"], "Notice de lecture");
    assert_eq!(listed[0]["mimetype"], "text/markdown");
    let url = listed[0]["url"].as_str().unwrap();
    assert!(url.ends_with("/api/explore/v2.1/catalog/datasets/subventions/attachments/notice.md"), "{url}");
    let list = app.ok("/api/explore/v2.1/catalog/datasets").await;
    assert_eq!(list["results"][0]["attachments"][0]["id"], "notice.md", "{list}");

    // Downloaded as uploaded, never rendered as a page of the site.
    let a = app.get("/api/explore/v2.1/catalog/datasets/subventions/attachments/notice.md").await;
    assert_eq!((a.status, a.body.clone()), (StatusCode::OK, notice));
    assert_eq!(a.content_type, "text/markdown");
    assert!(a.disposition.starts_with("attachment") && a.disposition.contains("notice.md"), "{}", a.disposition);
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    let missing = app.get("/api/explore/v2.1/catalog/datasets/subventions/attachments/absent.md").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // A private dataset's attachment answers exactly like an absent dataset's.
    let hidden = app.get("/api/explore/v2.1/catalog/datasets/interne/attachments/secret.txt").await;
    let absent = app.get("/api/explore/v2.1/catalog/datasets/absent/attachments/secret.txt").await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.text().replace("interne", "absent"), absent.text());
    let mine = app
        .send("GET", "/api/explore/v2.1/catalog/datasets/interne/attachments/secret.txt", admin.as_deref(), "", vec![])
        .await;
    assert_eq!((mine.status, mine.text().as_str()), (StatusCode::OK, "ne pas publier"));

    // A distribution of the dataset in DCAT, and only the public one.
    let dcat = app.get("/api/explore/v2.1/catalog/exports/dcat").await.text();
    assert!(dcat.contains("subventions/attachments/notice.md") && dcat.contains("Notice de lecture"), "{dcat}");
    assert!(!dcat.contains("secret.txt"), "{dcat}");
    let usage = app.send("GET", "/api/v1/datasets/subventions/usage", admin.as_deref(), "", vec![]).await.json();
    assert!(usage["downloads"].as_u64().unwrap() >= 1, "{usage}");
}

fn eid(s: &str) -> EntityId {
    EntityId::parse(s).unwrap()
}

async fn daily_consumption_of_buildings(t: TestStore) {
    let app = App::start(t).await;
    let s = app.t.store.clone();
    let montclar = OrganisationId::parse("montclar").unwrap();
    let school =
        Entity::new(eid("urn:ngsi-ld:Building:ecole"), EntityType::parse("Building").unwrap(), montclar.clone())
            .with("name", Attribute::property("École Jules-Ferry"))
            .unwrap();
    let kwh = UnitCode::parse("KWH").unwrap();
    let m3 = UnitCode::parse("MTQ").unwrap();
    let meters = [
        ("ecole-electricite", "Electricity", &kwh, 2.0),
        ("ecole-gaz", "Gas", &kwh, 5.0),
        ("ecole-eau", "Water", &m3, 0.1),
    ];
    let mut entities = vec![school];
    for (local, kind, unit, _) in &meters {
        let mut e = Entity::new(
            eid(&format!("urn:ngsi-ld:SmartMeteringObservation:{local}")),
            EntityType::parse("SmartMeteringObservation").unwrap(),
            montclar.clone(),
        );
        e.visibility = Visibility::Internal;
        e.location = Some(socle_domain::Geometry::Point([0.63, 46.44]));
        entities.push(
            e.with("name", Attribute::property(format!("Compteur {local}")))
                .unwrap()
                .with("meterType", Attribute::property(*kind))
                .unwrap()
                .with("refBuilding", Attribute::relationship(eid("urn:ngsi-ld:Building:ecole")))
                .unwrap()
                .with("consumption", Attribute::measure(0.0, unit, Utc::now()))
                .unwrap(),
        );
    }
    // A meter just installed: no reading yet, so no series; it has no record and
    // does not fail the dataset (the demo met it while its history was being written).
    let mut fresh = Entity::new(
        eid("urn:ngsi-ld:SmartMeteringObservation:gymnase-electricite"),
        EntityType::parse("SmartMeteringObservation").unwrap(),
        montclar.clone(),
    );
    fresh.location = Some(socle_domain::Geometry::Point([0.64, 46.45]));
    entities.push(
        fresh
            .with("meterType", Attribute::property("Electricity"))
            .unwrap()
            .with("consumption", Attribute::measure(0.0, &kwh, Utc::now()))
            .unwrap(),
    );
    s.upsert_entities(&entities).await.unwrap();
    // Hourly points over three whole local days, ten days ago.
    let paris = chrono_tz::Europe::Paris;
    let first_day = (Utc::now() - Duration::days(10)).with_timezone(&paris).date_naive();
    let start = paris.from_local_datetime(&first_day.and_hms_opt(0, 0, 0).unwrap()).unwrap().with_timezone(&Utc);
    let end = paris
        .from_local_datetime(&(first_day + Duration::days(3)).and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let mut expected: BTreeMap<(String, String), (f64, u64)> = BTreeMap::new();
    let mut points = Vec::new();
    let mut at = start;
    while at < end {
        for (local, kind, unit, per_hour) in &meters {
            let hour = at.with_timezone(&paris).format("%H").to_string().parse::<f64>().unwrap();
            let value = per_hour * (1.0 + hour / 10.0);
            points.push(Observation {
                entity: eid(&format!("urn:ngsi-ld:SmartMeteringObservation:{local}")),
                attribute: AttributeName::parse("consumption").unwrap(),
                observed_at: at,
                value: ObservedValue::number(value).unwrap(),
                unit_code: Some((*unit).clone()),
            });
            if *kind != "Water" {
                let day = at.with_timezone(&paris).date_naive().format("%Y-%m-%d").to_string();
                let e = expected.entry((day, kind.to_string())).or_default();
                e.0 += value;
                e.1 += 1;
            }
        }
        at += Duration::hours(1);
    }
    s.write_observations(&points).await.unwrap();
    let live = LiveSource::DailySeries(LiveDailySeries {
        entity_type: "SmartMeteringObservation".into(),
        daily_sum_of: "consumption".into(),
        unit: Some("KWH".into()),
        place: Some("refBuilding".into()),
        kind: Some("meterType".into()),
        days: 30,
    });
    let now = Utc::now();
    s.put_dataset(&socle_storage::StoredDataset {
        id: "consommations".into(),
        uid: "da_conso".into(),
        organisation: OrganisationId::parse("syndicat").unwrap(),
        visibility: Visibility::Public,
        shared_with: vec![],
        metadata: json!({"title": "Consommations journalières des bâtiments communaux", "live": live}),
        fields: serde_json::to_value(&live.schema().fields).unwrap(),
        records_count: 0,
        data_modified_at: None,
        created_at: now,
        modified_at: now,
    })
    .await
    .unwrap();

    const C: &str = "/api/explore/v2.1/catalog/datasets/consommations";
    let all = app.ok(&format!("{C}/records?limit=100&order_by=date,compteur")).await;
    assert_eq!(all["total_count"], 6, "two kWh meters, three days; the water meter is not in kWh: {all}");
    let first = &all["results"][0];
    assert_eq!(first["date"], first_day.format("%Y-%m-%d").to_string());
    assert_eq!(first["commune"], "Montclar-en-Lémance");
    assert_eq!(first["batiment"], "École Jules-Ferry");
    assert_eq!(first["compteur"], "Compteur ecole-electricite");
    assert_eq!(first["type_energie"], "électricité");
    assert_eq!(first["unite"], "kWh");
    assert_eq!(first["geo_point_2d"], json!({"lon": 0.63, "lat": 46.44}));
    for r in all["results"].as_array().unwrap() {
        let kind = if r["type_energie"] == "gaz" { "Gas" } else { "Electricity" };
        let (sum, count) = expected[&(r["date"].as_str().unwrap().to_string(), kind.to_string())];
        assert!((r["consommation"].as_f64().unwrap() - sum).abs() < 1e-6, "{r} vs {sum}");
        assert_eq!(r["mesures"], count, "{r}");
    }
    // ODSQL, facets, one record, exports: as over uploaded data.
    let by_kind =
        app.ok(&format!("{C}/records?select=type_energie,sum(consommation)%20as%20total&group_by=type_energie&order_by=total%20desc")).await;
    let gas: f64 = expected.iter().filter(|((_, k), _)| k == "Gas").map(|(_, (s, _))| s).sum();
    assert_eq!(by_kind["results"][0]["type_energie"], "gaz", "gas uses more than electricity: {by_kind}");
    assert!((by_kind["results"][0]["total"].as_f64().unwrap() - gas).abs() < 1e-6, "{by_kind}");
    let some = app.ok(&format!("{C}/records?where=type_energie%3D%27gaz%27%20and%20consommation%20%3E%200")).await;
    assert_eq!(some["total_count"], 3);
    let facets = app.ok(&format!("{C}/facets?facet=type_energie")).await;
    assert_eq!(facets["facets"][0]["facets"].as_array().map(Vec::len), Some(2), "{facets}");
    let id = first["compteur_id"].as_str().unwrap().to_string() + ":" + first["date"].as_str().unwrap();
    let one = app.ok(&format!("{C}/records/{id}")).await;
    assert_eq!(one["consommation"], first["consommation"]);
    let csv = app.get(&format!("{C}/exports/csv")).await.text();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(csv.starts_with("date;commune;batiment;compteur"), "{csv}");
    let (columns, rows) = parquet_rows(&app.get(&format!("{C}/exports/parquet")).await.body);
    assert!(columns.contains(&"consommation:DOUBLE".to_string()) && columns.contains(&"date:INT32".to_string()));
    assert_eq!(rows.len(), 6);
    // The meters stay internal: only the published daily figures are open.
    let (status, _) = (app.get("/api/v1/entities/urn:ngsi-ld:SmartMeteringObservation:ecole-gaz").await.status, ());
    assert_ne!(status, StatusCode::OK);
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

both!(xlsx_and_parquet, attachments, daily_consumption_of_buildings);
