//! The whole demo territory: organisations, entities and their series,
//! generated from a fixed seed and the scenario anchor.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value as Json;
use socle_domain::{
    Attribute, AttributeName, Entity, EntityId, EntityType, Geometry, NewOrganisation, OfficialCode, OrganisationId,
    OrganisationKind, UnitCode, Visibility,
};

use crate::communes::{Commune, COMMUNES};
use crate::noise::{hash, seed_of};
use crate::scenario::Scenario;
use crate::series::{Cadence, Model, SeriesSpec};
use crate::{air, buildings, lighting, outlines, parking, river, waste, water, weather};

/// Every layout choice derives from this seed; changing it gives another,
/// equally plausible, territory.
const SEED: u64 = 0x50C1_E0DE_3000_0086;

pub const SYNDICATE_ID: &str = "syndicat-val-de-lemance";
pub const PARTNER_ID: &str = "eclairages-du-poitou";

/// The demo territory. Entities and series do not depend on the anchor,
/// only the scenario's events do.
#[derive(Debug, Clone, PartialEq)]
pub struct Territory {
    pub scenario: Scenario,
    /// Parents before children, so they can be upserted in order.
    pub organisations: Vec<NewOrganisation>,
    pub entities: Vec<Entity>,
    pub series: Vec<SeriesSpec>,
}

impl Territory {
    /// Generates the territory whose story is placed relative to `anchor`.
    pub fn generate(anchor: DateTime<Utc>) -> Territory {
        let scenario = Scenario::new(anchor);
        let mut b = Builder { scenario: &scenario, seed: SEED, entities: Vec::new(), series: Vec::new() };
        for c in COMMUNES {
            outlines::generate(&mut b, c);
            buildings::generate(&mut b, c);
            lighting::generate(&mut b, c);
            water::generate(&mut b, c);
            waste::generate(&mut b, c);
            parking::generate(&mut b, c);
            air::generate(&mut b, c);
            river::generate(&mut b, c);
            weather::generate(&mut b, c);
        }
        let Builder { entities, series, .. } = b;
        Territory { organisations: organisations(), entities, series, scenario }
    }

    pub fn anchor(&self) -> DateTime<Utc> {
        self.scenario.anchor
    }

    /// The entities with their measured attributes set to the latest value
    /// at `now`, so that a freshly (re)loaded entity shows current state
    /// before the first new observation arrives.
    pub fn entities_at(&self, now: DateTime<Utc>) -> Vec<Entity> {
        let mut entities = self.entities.clone();
        let index: std::collections::HashMap<&EntityId, usize> =
            self.entities.iter().enumerate().map(|(i, e)| (&e.id, i)).collect();
        for s in &self.series {
            let (Some(&i), Some(o)) = (index.get(&s.entity), s.latest(now)) else { continue };
            let attribute = Attribute::Property {
                value: o.value.to_json(),
                unit_code: o.unit_code.clone(),
                observed_at: Some(o.observed_at),
            };
            entities[i].attributes.insert(s.attribute.clone(), attribute);
        }
        entities
    }
}

fn organisations() -> Vec<NewOrganisation> {
    let id = |s: &str| OrganisationId::parse(s).expect("demo organisation ids are valid constants");
    let code = |s: &str| OfficialCode::parse(s).expect("demo official codes are valid constants");
    let syndicate = id(SYNDICATE_ID);
    let mut orgs = vec![NewOrganisation {
        id: syndicate.clone(),
        kind: OrganisationKind::Syndicat,
        name: "Syndicat mixte du Val de Lémance".into(),
        // SIREN numbers pass the Luhn check, like real ones.
        code: code("258603471"),
        parent: None,
        population: None,
        timezone: crate::calendar::TZ,
        retention_days: None,
    }];
    orgs.extend(COMMUNES.iter().map(|c| NewOrganisation {
        id: id(c.org_id),
        kind: OrganisationKind::Commune,
        name: c.name.into(),
        code: code(c.insee),
        parent: Some(syndicate.clone()),
        population: Some(c.population),
        timezone: crate::calendar::TZ,
        retention_days: Some(400),
    }));
    orgs.push(NewOrganisation {
        id: id(PARTNER_ID),
        kind: OrganisationKind::Partenaire,
        name: "Éclairages du Poitou".into(),
        code: code("812473965"),
        parent: None,
        population: None,
        timezone: crate::calendar::TZ,
        retention_days: None,
    });
    orgs
}

/// Collects entities and series while the domain modules lay them out.
pub(crate) struct Builder<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    entities: Vec<Entity>,
    series: Vec<SeriesSpec>,
}

impl Builder<'_> {
    /// A new entity `urn:ngsi-ld:<type>:<commune>:<local>` owned by the
    /// commune, with its name and location; the caller adds it when complete.
    pub(crate) fn entity(&self, entity_type: &str, c: &Commune, local: &str, name: &str, at: [f64; 2]) -> Entity {
        // Every type and local id comes from this crate's constants and
        // formats; the tests parse every generated id.
        let ty = EntityType::parse(entity_type).expect("demo entity types are valid");
        let id = EntityId::new(&ty, &format!("{}:{local}", c.slug)).expect("demo entity ids are valid");
        let org = OrganisationId::parse(c.org_id).expect("demo organisation ids are valid");
        let mut e = Entity::new(id, ty, org);
        e.location = Some(Geometry::Point(at));
        set(&mut e, "name", text(Json::from(name)));
        e
    }

    pub(crate) fn add(&mut self, mut e: Entity) {
        (e.visibility, e.shared_with) = audience_of(e.entity_type.as_str());
        self.entities.push(e);
    }

    pub(crate) fn series(&mut self, e: &Entity, attribute: &str, unit: Option<&str>, cadence: Cadence, model: Model) {
        let attribute = AttributeName::parse(attribute).expect("demo attribute names are valid");
        let unit = unit.map(|u| UnitCode::parse(u).expect("demo unit codes are valid"));
        let phase = hash(self.seed, seed_of(&format!("{}/{attribute}", e.id)));
        let offset = match cadence.period() {
            Some(p) => Duration::seconds((phase % p.num_seconds().max(1) as u64) as i64),
            None => Duration::zero(),
        };
        self.series.push(SeriesSpec {
            entity: e.id.clone(),
            entity_type: e.entity_type.clone(),
            attribute,
            unit,
            cadence,
            offset,
            model,
        });
    }
}

/// Sets an attribute whose name is a constant of this crate.
pub(crate) fn set(e: &mut Entity, name: &str, attribute: Attribute) {
    let name = AttributeName::parse(name).expect("demo attribute names are valid");
    e.attributes.insert(name, attribute);
}

pub(crate) fn text(value: Json) -> Attribute {
    Attribute::property(value)
}

pub(crate) fn quantity(value: f64, unit: &str) -> Attribute {
    Attribute::Property {
        value: Json::from(value),
        unit_code: Some(UnitCode::parse(unit).expect("demo unit codes are valid")),
        observed_at: None,
    }
}

/// Who sees what in the demo, as a commune would choose: what citizens use
/// (air, weather, parking, containers, river levels) and the commune outlines are open data; buildings and
/// their meters are shared within the syndicate; the lighting network is
/// shared with the maintenance contractor; the water network stays private.
fn audience_of(entity_type: &str) -> (Visibility, Vec<OrganisationId>) {
    match entity_type {
        "AirQualityObserved"
        | "WeatherObserved"
        | "ParkingSpot"
        | "WasteContainer"
        | "FloodMonitoring"
        | outlines::AREA_TYPE => (Visibility::Public, vec![]),
        "Building" | "SmartMeteringObservation" => (Visibility::Internal, vec![]),
        "Streetlight" | "StreetlightControlCabinet" => {
            (Visibility::Partners, vec![OrganisationId::parse(PARTNER_ID).expect("constant organisation id")])
        }
        _ => (Visibility::Private, vec![]),
    }
}
