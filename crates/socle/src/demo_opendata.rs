//! The demo's open data: a live dataset over the containers' fill levels (the
//! syndicate's, computed from the entities when read), three uploaded public datasets
//! of the communes (sports facilities, SCDL subsidies, a GeoJSON of parks) and one
//! private dataset, so the catalogue, the Explore API and the DCAT export have content.

use std::collections::HashMap;

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use socle_domain::{OrganisationId, Visibility};
use socle_opendata::dataset::{Licence, LiveSource, Metadata, TemporalCoverage};
use socle_opendata::import::{read_csv, read_geojson, Table};
use socle_storage::{DynStore, StoredDataset, StoredRecord};

const EQUIPEMENTS: &str = "\
Nom;Type;Adresse;Surface (m²);Capacité;Date de mise en service;Accessible PMR;Position
Piscine intercommunale des Lémances;Piscine;2 avenue du Stade;1850,5;420;14/06/1996;oui;46.4608, 0.5441
Gymnase Jean-Moulin;Gymnase;12 rue Jean-Moulin;1240;350;02/09/1988;oui;46.4651, 0.5502
Stade municipal Pierre-de-Coubertin;Stade;Avenue du Stade;9800;1200;21/04/1972;non;46.4597, 0.5452
Salle de danse des Tilleuls;Salle spécialisée;5 place des Tilleuls;310;60;15/01/2009;oui;46.4633, 0.5493
Court de tennis couvert;Tennis;Chemin des Écoliers;720;40;30/03/2001;oui;46.4587, 0.5523
Skatepark de la Lémance;Skatepark;Quai de la Lémance;900;;12/07/2016;non;46.4620, 0.5411
Boulodrome couvert;Boulodrome;Rue du Moulin;1100;150;05/05/2012;oui;46.4668, 0.5470
Dojo municipal;Salle spécialisée;8 rue des Écoles;280;45;19/09/2019;oui;46.4641, 0.5517
City-stade du Clos-Fleuri;Plateau sportif;Allée du Clos-Fleuri;800;;22/06/2021;oui;46.4572, 0.5486
Mur d'escalade;Salle spécialisée;12 rue Jean-Moulin;190;30;10/10/2023;non;46.4652, 0.5503
";

/// SCDL « subventions » columns (schema.data.gouv.fr/scdl/subventions).
const SUBVENTIONS: &str = "\
nomAttribuant;idAttribuant;dateConvention;referenceDecision;nomBeneficiaire;idBeneficiaire;objet;montant;nature;conditionsVersement;datesPeriodeVersement;notificationUE;pourcentageSubvention
Commune de Montclar-en-Lémance;21863170300014;2025-02-11;DEL-2025-014;Football Club de Montclar;44912345600017;Fonctionnement annuel du club;3500;aide en numéraire;unique;2025-03-01;non;1
Commune de Montclar-en-Lémance;21863170300014;2025-02-11;DEL-2025-014;Comité des fêtes de Montclar;51234567800021;Fête de la Saint-Jean 2025;1800;aide en numéraire;unique;2025-05-15;non;0.6
Commune de Montclar-en-Lémance;21863170300014;2025-03-18;DEL-2025-027;Association Lire et Faire Lire Vienne;42345678900034;Ateliers lecture à l'école primaire;650;aide en numéraire;unique;2025-04-01;non;1
Commune de Montclar-en-Lémance;21863170300014;2025-03-18;DEL-2025-027;Amicale des sapeurs-pompiers;77889900100012;Équipement et sainte Barbe;900;aide en numéraire;unique;2025-04-01;non;1
Commune de Montclar-en-Lémance;21863170300014;2025-06-24;DEL-2025-052;Club des aînés du Plateau;38475610200019;Sorties et animations 2025;1200;aide en numéraire;échelonné;2025-07-01/2025-12-01;non;0.8
Commune de Montclar-en-Lémance;21863170300014;2025-06-24;DEL-2025-052;École de musique intercommunale;30111222300045;Prêt de la salle polyvalente;2400;aide en nature;unique;2025-09-01;non;
";

const INTERVENTIONS: &str = "\
date;lieu;nature;agent;duree_h
2025-10-02;École maternelle;Fuite sur chauffe-eau;équipe bâtiments;3,5
2025-10-09;Mairie;Remplacement de serrure;équipe bâtiments;1
2025-10-21;Salle des fêtes;Détecteur incendie défaillant;prestataire;2
";

fn parks() -> String {
    json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"nom": "Parc du Moulin", "surface_ha": 2.4, "jeux_enfants": true},
         "geometry": {"type": "Polygon", "coordinates": [[[0.6301, 46.4462], [0.6335, 46.4462], [0.6335, 46.4481], [0.6301, 46.4481], [0.6301, 46.4462]]]}},
        {"type": "Feature", "properties": {"nom": "Square de la Mairie", "surface_ha": 0.3, "jeux_enfants": false},
         "geometry": {"type": "Polygon", "coordinates": [[[0.6318, 46.4469], [0.6326, 46.4469], [0.6326, 46.4474], [0.6318, 46.4474], [0.6318, 46.4469]]]}}
    ]})
    .to_string()
}

fn metadata(title: &str, description: &str, publisher: &str, themes: &[&str], keywords: &[&str]) -> Metadata {
    Metadata {
        title: title.into(),
        description: description.into(),
        themes: themes.iter().map(|t| t.to_string()).collect(),
        keywords: keywords.iter().map(|t| t.to_string()).collect(),
        licence: Licence::Etalab20,
        publisher: publisher.into(),
        ..Metadata::default()
    }
}

async fn put(
    store: &DynStore,
    id: &str,
    organisation: &str,
    visibility: Visibility,
    metadata: &Metadata,
    table: Option<Table>,
    fields: serde_json::Value,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let existing = store.dataset(id).await?;
    let dataset = StoredDataset {
        id: id.into(),
        // The uid is kept across demo restarts: identifiers never change.
        uid: existing.as_ref().map_or_else(
            || format!("da_{}", id.replace('-', "").chars().take(12).collect::<String>()),
            |d| d.uid.clone(),
        ),
        organisation: OrganisationId::parse(organisation).context("demo organisation")?,
        visibility,
        shared_with: Vec::new(),
        metadata: serde_json::to_value(metadata)?,
        fields: fields.clone(),
        records_count: 0,
        data_modified_at: None,
        created_at: existing.map_or(now, |d| d.created_at),
        modified_at: now,
    };
    store.put_dataset(&dataset).await?;
    if let Some(table) = table {
        let records: Vec<StoredRecord> = table
            .rows
            .into_iter()
            .enumerate()
            .map(|(i, (rid, data))| StoredRecord { row: i as i64 + 1, id: rid, data })
            .collect();
        store.replace_records(id, &fields, &records, now).await?;
    }
    Ok(())
}

pub async fn create(store: &DynStore) -> anyhow::Result<usize> {
    let live = LiveSource { entity_type: "WasteContainer".into(), attributes: vec!["fillingLevel".into()] };
    let mut m = metadata(
        "Taux de remplissage des conteneurs",
        "Taux de remplissage (de 0 à 1) de chaque point d'apport volontaire du syndicat, **mis à jour à chaque mesure** des capteurs.\n\n\
         Chaque conteneur est équipé d'une sonde à ultrasons qui mesure sa hauteur de remplissage plusieurs fois par jour. \
         Les tournées de collecte sont planifiées à partir de ces mesures.\n\n\
         - `fillingLevel` : de 0 (vide) à 1 (plein) ;\n\
         - `observe_le` : l'heure de la dernière mesure.",
        "Syndicat du Val de Lémance",
        &["Environnement"],
        &["déchets", "conteneurs", "tri sélectif", "temps réel"],
    );
    m.frequency = Some("continuous".into());
    m.spatial_coverage = Some("Syndicat du Val de Lémance".into());
    m.live = Some(live.clone());
    let fields = serde_json::to_value(&live.schema().fields)?;
    put(store, "taux-de-remplissage-des-conteneurs", socle_demo::SYNDICATE_ID, Visibility::Public, &m, None, fields)
        .await?;

    let table = read_csv(EQUIPEMENTS.as_bytes(), &HashMap::new())?;
    let mut m = metadata(
        "Équipements sportifs de Saint-Aubin-sur-Lémance",
        "Liste des équipements sportifs municipaux : type, surface, capacité, accessibilité.\n\n\
         Les données suivent le [schéma des équipements sportifs](https://schema.data.gouv.fr/etalab/schema-equipements-sportifs/) \
         d'Etalab. La capacité est le nombre de personnes accueillies en même temps ; une case vide signifie un accès libre.",
        "Commune de Saint-Aubin-sur-Lémance",
        &["Sports, loisirs"],
        &["équipements", "sport"],
    );
    m.frequency = Some("annual".into());
    m.spatial_coverage = Some("Saint-Aubin-sur-Lémance".into());
    m.conforms_to = Some("https://schema.data.gouv.fr/etalab/schema-equipements-sportifs/latest.html".into());
    let fields = serde_json::to_value(&table.schema.fields)?;
    put(store, "equipements-sportifs", "commune-saint-aubin", Visibility::Public, &m, Some(table), fields).await?;

    // SCDL writes its booleans « oui »/« non »: kept as text so exports stay valid.
    let text = HashMap::from([("notificationUE".to_string(), socle_opendata::schema::FieldType::Text)]);
    let table = read_csv(SUBVENTIONS.as_bytes(), &text)?;
    let mut m = metadata(
        "Subventions aux associations 2025",
        "Subventions attribuées par la commune en 2025, au format SCDL (décret n° 2017-779).\n\n\
         Publication obligatoire au-delà de 23 000 € par bénéficiaire ; la commune publie **toutes** ses subventions, \
         y compris les aides en nature.",
        "Commune de Montclar-en-Lémance",
        &["Économie, finances"],
        &["subventions", "associations", "SCDL"],
    );
    m.conforms_to = Some("https://schema.data.gouv.fr/scdl/subventions/latest.html".into());
    m.frequency = Some("irregular".into());
    m.spatial_coverage = Some("Montclar-en-Lémance".into());
    m.temporal_coverage = Some(TemporalCoverage { start: Some("2025-01-01".into()), end: Some("2025-12-31".into()) });
    let fields = serde_json::to_value(&table.schema.fields)?;
    put(store, "subventions-associations-2025", "commune-montclar", Visibility::Public, &m, Some(table), fields)
        .await?;

    let table = read_geojson(parks().as_bytes())?;
    let mut m = metadata(
        "Parcs et jardins de Montclar-en-Lémance",
        "Contours des parcs et squares publics, avec leur surface et la présence d'une aire de jeux pour enfants.",
        "Commune de Montclar-en-Lémance",
        &["Environnement"],
        &["espaces verts"],
    );
    m.spatial_coverage = Some("Montclar-en-Lémance".into());
    let fields = serde_json::to_value(&table.schema.fields)?;
    put(store, "parcs-et-jardins", "commune-montclar", Visibility::Public, &m, Some(table), fields).await?;

    let table = read_csv(INTERVENTIONS.as_bytes(), &HashMap::new())?;
    let m = metadata(
        "Interventions techniques (suivi interne)",
        "Suivi interne des interventions des services techniques : non publié.",
        "Commune de Fontenelle",
        &["Services"],
        &["interventions"],
    );
    let fields = serde_json::to_value(&table.schema.fields)?;
    put(store, "suivi-des-interventions", "commune-fontenelle", Visibility::Private, &m, Some(table), fields).await?;
    Ok(5)
}
