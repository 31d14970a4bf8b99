//! Commune outlines, so the map shows the territory without any basemap.
//! Plausible shapes around each town centre (a few kilometres across,
//! irregular, not touching each other), not real IGN boundaries.

use socle_domain::Geometry;

use crate::communes::{offset, Commune};
use crate::noise::Rng;
use crate::territory::{set, text, Builder};

/// Entity type of a commune's outline (public: it is on every map).
pub(crate) const AREA_TYPE: &str = "AdministrativeArea";

const VERTICES: usize = 24;

/// Half the width of the commune's territory, in metres (French communes
/// around these sizes cover 15 to 35 km²).
fn territory_radius(c: &Commune) -> f64 {
    match c.population {
        p if p >= 10_000 => 3200.0,
        p if p >= 2_000 => 2600.0,
        _ => 2300.0,
    }
}

pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    let mut rng = Rng::for_name(b.seed, &format!("{}:outline", c.slug));
    let radius = territory_radius(c);
    let mut ring: Vec<[f64; 2]> = (0..VERTICES)
        .map(|i| {
            let angle = std::f64::consts::TAU * i as f64 / VERTICES as f64;
            // ±8 %: neighbours (6 km apart) never overlap.
            let r = radius * rng.range(0.92, 1.08);
            offset(c.centre, r * angle.cos(), r * angle.sin())
        })
        .collect();
    ring.push(ring[0]);
    let mut e = b.entity(AREA_TYPE, c, "commune", c.name, c.centre);
    e.location = Some(Geometry::Polygon(vec![ring]));
    set(&mut e, "officialCode", text(serde_json::Value::from(c.insee)));
    b.add(e);
}
