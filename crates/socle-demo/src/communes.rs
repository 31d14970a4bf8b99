//! The three communes of the Val de Lémance and what each one equips.
//!
//! They lie in the Vienne (86), south-east of Poitiers, along a fictional
//! river, the Lémance, flowing west: Fontenelle-le-Haut upstream on the
//! plateau, Montclar-en-Lémance, then Saint-Aubin-sur-Lémance, the town.
//! INSEE codes above 86300 are not assigned in the Vienne, so they cannot be
//! mistaken for a real commune.

use std::f64::consts::TAU;

use crate::air::StationKind;
use crate::buildings::BuildingKind;
use crate::names::STREETS;
use crate::noise::Rng;
use crate::parking::AreaKind;

pub(crate) struct Commune {
    /// Segment of entity ids (`urn:ngsi-ld:Building:<slug>:…`).
    pub slug: &'static str,
    pub org_id: &'static str,
    pub name: &'static str,
    pub insee: &'static str,
    pub postal_code: &'static str,
    pub population: u32,
    /// Longitude, latitude of the town centre.
    pub centre: [f64; 2],
    /// How far the built-up area reaches, in metres.
    pub radius_m: f64,
    /// Temperature offset for altitude.
    pub climate_offset: f64,
    pub buildings: &'static [BuildingDef],
    /// Number of lighting cabinets and lights per cabinet (min, max).
    pub cabinets: usize,
    pub lights_per_cabinet: (usize, usize),
    /// Water network sectors: local id, name, share of the population.
    pub water_sectors: &'static [(&'static str, &'static str, f64)],
    pub household_containers: usize,
    pub glass_containers: usize,
    /// Parking areas with sensors: local id, name, kind, spots.
    pub parking: &'static [(&'static str, &'static str, AreaKind, usize)],
    /// Air-quality stations: local id, name, kind.
    pub air_stations: &'static [(&'static str, &'static str, StationKind)],
    pub river_gauge: GaugeDef,
}

pub(crate) struct BuildingDef {
    pub local: &'static str,
    pub name: &'static str,
    pub kind: BuildingKind,
    pub floor_area: f64,
    pub number: u32,
    pub street: &'static str,
}

pub(crate) struct GaugeDef {
    pub local: &'static str,
    pub name: &'static str,
    pub station_id: &'static str,
    /// Typical level in late summer and in mid-winter, metres.
    pub low: f64,
    pub high: f64,
    pub alert: f64,
    pub danger: f64,
    /// How far the flood peak goes above the alert level.
    pub peak_margin: f64,
    /// Hours between this station's peak and the downstream one's.
    pub hours_before_downstream: f64,
}

const fn b(
    local: &'static str,
    name: &'static str,
    kind: BuildingKind,
    floor_area: f64,
    number: u32,
    street: &'static str,
) -> BuildingDef {
    BuildingDef { local, name, kind, floor_area, number, street }
}

use BuildingKind::*;

const SAINT_AUBIN_BUILDINGS: &[BuildingDef] = &[
    b(crate::scenario::RENOVATED_SCHOOL, "École Jules Ferry", School, 2450.0, 4, "Rue Jules Ferry"),
    b("ecole-jean-moulin", "École Jean Moulin", School, 1980.0, 31, "Avenue de la Libération"),
    b("ecole-marie-curie", "École Marie Curie", School, 2210.0, 2, "Rue Marie Curie"),
    b("ecole-les-coquelicots", "École maternelle Les Coquelicots", School, 980.0, 5, "Allée des Coquelicots"),
    b("ecole-paul-bert", "École Paul Bert", School, 1720.0, 12, "Rue Paul Bert"),
    b("ecole-jacques-prevert", "École Jacques Prévert", School, 1540.0, 8, "Rue des Écoles"),
    b("hotel-de-ville", "Hôtel de ville", TownHall, 3100.0, 1, "Place de la République"),
    b("mairie-annexe-aubiers", "Mairie annexe des Aubiers", TownHall, 420.0, 14, "Rue des Aubiers"),
    b("gymnase-coubertin", "Gymnase Pierre de Coubertin", Gym, 2600.0, 3, "Rue du Stade"),
    b("gymnase-lagrange", "Gymnase Léo Lagrange", Gym, 1900.0, 57, "Avenue Jean Jaurès"),
    b("centre-aquatique", "Centre aquatique de la Lémance", Pool, 3400.0, 2, "Chemin des Prés"),
    b("mediatheque", "Médiathèque Louise Michel", Library, 1650.0, 18, "Rue Victor Hugo"),
    b("salle-des-fetes", "Salle des fêtes", FestiveHall, 1200.0, 1, "Place du Champ de Foire"),
    b("creche-les-petits-loups", "Crèche Les Petits Loups", Nursery, 640.0, 9, "Rue des Lilas"),
    b("creche-pomme-d-api", "Crèche Pomme d'Api", Nursery, 520.0, 22, "Rue de Bellevue"),
    b("centre-technique", "Centre technique municipal", Technical, 2300.0, 6, "Rue de l'Industrie"),
    b("conservatoire", "Conservatoire de musique", Music, 1100.0, 10, "Rue Pasteur"),
    b("maison-des-associations", "Maison des associations", Associations, 880.0, 25, "Boulevard Gambetta"),
    b("espace-jeunesse", "Espace jeunesse", Youth, 450.0, 3, "Rue du Moulin"),
    b("vestiaires-stade", "Vestiaires du stade municipal", ChangingRooms, 380.0, 5, "Rue du Stade"),
];

const MONTCLAR_BUILDINGS: &[BuildingDef] = &[
    b("mairie", "Mairie", TownHall, 650.0, 2, "Place de l'Église"),
    b("ecole-les-tilleuls", "École primaire Les Tilleuls", School, 1300.0, 7, "Rue des Tilleuls"),
    b("ecole-le-petit-prince", "École maternelle Le Petit Prince", School, 620.0, 9, "Rue des Tilleuls"),
    b("gymnase", "Gymnase municipal", Gym, 1400.0, 15, "Route de Saint-Aubin"),
    b("salle-des-fetes", "Salle des fêtes", FestiveHall, 700.0, 1, "Rue du Lavoir"),
    b("mediatheque", "Médiathèque", Library, 480.0, 21, "Grande Rue"),
    b("creche-les-lutins", "Crèche Les Lutins", Nursery, 380.0, 4, "Rue des Écoles"),
    b("ateliers-municipaux", "Ateliers municipaux", Technical, 600.0, 8, "Chemin de la Croix Blanche"),
];

const FONTENELLE_BUILDINGS: &[BuildingDef] = &[
    b("mairie", "Mairie", TownHall, 210.0, 1, "Place de la Mairie"),
    b("ecole", "École communale", School, 420.0, 3, "Rue de l'École"),
    b("salle-des-fetes", "Salle des fêtes", FestiveHall, 300.0, 6, "Route de Montclar"),
];

pub(crate) const SAINT_AUBIN: Commune = Commune {
    slug: "saint-aubin",
    org_id: "commune-saint-aubin",
    name: "Saint-Aubin-sur-Lémance",
    insee: "86318",
    postal_code: "86340",
    population: 29_874,
    centre: [0.5480, 46.4620],
    radius_m: 2200.0,
    climate_offset: 0.0,
    buildings: SAINT_AUBIN_BUILDINGS,
    cabinets: 30,
    lights_per_cabinet: (22, 32),
    water_sectors: &[
        ("secteur-centre-ville", "Secteur Centre-ville", 0.22),
        (crate::scenario::LEAK_SECTOR, "Secteur Les Aubiers", 0.20),
        ("secteur-la-garenne", "Secteur La Garenne", 0.17),
        ("secteur-bellevue", "Secteur Bellevue", 0.18),
        ("secteur-le-moulin", "Secteur Le Moulin", 0.15),
        ("secteur-zone-des-brandes", "Secteur Zone artisanale des Brandes", 0.08),
    ],
    household_containers: 80,
    glass_containers: 40,
    parking: &[
        ("place-du-marche", "Place du Marché", AreaKind::Centre, 30),
        ("parking-de-la-gare", "Parking de la Gare", AreaKind::Station, 40),
        ("rue-nationale", "Rue Nationale", AreaKind::Centre, 18),
        ("parvis-hotel-de-ville", "Parvis de l'Hôtel de ville", AreaKind::Residential, 12),
    ],
    air_stations: &[
        ("station-centre-ville", "Station urbaine – Centre-ville", StationKind::Urban),
        ("station-rocade-nord", "Station trafic – Rocade Nord", StationKind::Traffic),
        ("station-les-aubiers", "Station périurbaine – Les Aubiers", StationKind::Periurban),
    ],
    river_gauge: GaugeDef {
        local: "lemance-pont-neuf",
        name: "La Lémance au Pont-Neuf",
        station_id: "L5310610",
        low: 0.9,
        high: 1.6,
        alert: 3.0,
        danger: 3.8,
        peak_margin: 0.45,
        hours_before_downstream: 0.0,
    },
};

pub(crate) const MONTCLAR: Commune = Commune {
    slug: "montclar",
    org_id: "commune-montclar",
    name: "Montclar-en-Lémance",
    insee: "86326",
    postal_code: "86340",
    population: 5_126,
    centre: [0.6320, 46.4470],
    radius_m: 1000.0,
    climate_offset: -0.3,
    buildings: MONTCLAR_BUILDINGS,
    cabinets: 8,
    lights_per_cabinet: (20, 28),
    water_sectors: &[
        ("secteur-le-bourg", "Secteur Le Bourg", 0.6),
        ("secteur-les-varennes", "Secteur Les Varennes", 0.4),
    ],
    household_containers: 24,
    glass_containers: 11,
    parking: &[
        ("place-de-l-eglise", "Place de l'Église", AreaKind::Centre, 15),
        ("parking-groupe-scolaire", "Parking du groupe scolaire", AreaKind::Residential, 10),
    ],
    air_stations: &[("station-le-bourg", "Station urbaine – Le Bourg", StationKind::Urban)],
    river_gauge: GaugeDef {
        local: "lemance-moulin-de-montclar",
        name: "La Lémance au Moulin de Montclar",
        station_id: "L5310410",
        low: 0.6,
        high: 1.1,
        alert: 2.2,
        danger: 2.9,
        peak_margin: 0.3,
        hours_before_downstream: 4.0,
    },
};

pub(crate) const FONTENELLE: Commune = Commune {
    slug: "fontenelle",
    org_id: "commune-fontenelle",
    name: "Fontenelle-le-Haut",
    insee: "86331",
    postal_code: "86410",
    population: 812,
    centre: [0.7050, 46.4310],
    radius_m: 400.0,
    climate_offset: -0.8,
    buildings: FONTENELLE_BUILDINGS,
    cabinets: 2,
    lights_per_cabinet: (19, 25),
    water_sectors: &[("secteur-fontenelle", "Secteur Fontenelle", 1.0)],
    household_containers: 6,
    glass_containers: 3,
    parking: &[],
    air_stations: &[],
    river_gauge: GaugeDef {
        local: "lemance-passerelle",
        name: "La Lémance à la Passerelle",
        station_id: "L5310210",
        low: 0.3,
        high: 0.7,
        alert: 1.4,
        danger: 1.9,
        peak_margin: 0.25,
        hours_before_downstream: 9.0,
    },
};

pub(crate) const COMMUNES: [&Commune; 3] = [&SAINT_AUBIN, &MONTCLAR, &FONTENELLE];

/// A point `east_m` metres east and `north_m` metres north of `origin`,
/// rounded to about 10 cm like survey data.
pub(crate) fn offset(origin: [f64; 2], east_m: f64, north_m: f64) -> [f64; 2] {
    const M_PER_DEG_LAT: f64 = 111_320.0;
    let lat = origin[1] + north_m / M_PER_DEG_LAT;
    let lon = origin[0] + east_m / (M_PER_DEG_LAT * origin[1].to_radians().cos());
    [(lon * 1e6).round() / 1e6, (lat * 1e6).round() / 1e6]
}

/// A pseudo-street: a straight line from a start point, along which lights
/// and containers are placed.
#[derive(Debug, Clone)]
pub(crate) struct Street {
    pub name: &'static str,
    start: [f64; 2],
    heading: f64,
}

impl Street {
    /// The point `along_m` metres down the street, `side_m` to its right.
    pub(crate) fn point(&self, along_m: f64, side_m: f64) -> [f64; 2] {
        let (s, c) = self.heading.sin_cos();
        offset(self.start, along_m * c + side_m * s, along_m * s - side_m * c)
    }
}

impl Commune {
    /// The commune's streets, one per lighting cabinet, radiating around the
    /// centre: a main road out of town alternates with ring streets.
    pub(crate) fn streets(&self, seed: u64) -> Vec<Street> {
        let mut rng = Rng::for_name(seed, self.slug);
        let n = self.cabinets.max(1);
        let first_name = rng.below(STREETS.len());
        (0..n)
            .map(|k| {
                let angle = TAU * k as f64 / n as f64 + rng.range(-0.2, 0.2);
                let r = self.radius_m * (0.1 + 0.6 * rng.next_f64().sqrt());
                let heading = if k % 2 == 0 { angle } else { angle + TAU / 4.0 } + rng.range(-0.3, 0.3);
                Street {
                    name: STREETS[(first_name + k) % STREETS.len()],
                    start: offset(self.centre, r * angle.cos(), r * angle.sin()),
                    heading,
                }
            })
            .collect()
    }

    /// A random point within `fraction` of the built-up radius.
    pub(crate) fn scatter(&self, rng: &mut Rng, fraction: f64) -> [f64; 2] {
        let r = self.radius_m * fraction * rng.next_f64().sqrt();
        let a = rng.range(0.0, TAU);
        offset(self.centre, r * a.cos(), r * a.sin())
    }
}
