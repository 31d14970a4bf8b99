//! Geo-queries (ETSI GS CIM 009 4.10): `georel` (`near;maxDistance==m`,
//! `near;minDistance==m`, `within`, `contains`, `intersects`, `disjoint`,
//! `equals`, `overlaps`), a `geometry` and its `coordinates`, over a
//! `geoproperty` (`location` unless told). Relations are evaluated with the
//! `geo` crate's DE-9IM; distances are haversine metres on WGS 84.

use geo::{Closest, ClosestPoint, Distance, Haversine, Relate};
use serde_json::Value;
use socle_domain::{Attribute, AttributeName, BBox, Entity, Geometry};

use crate::error::{NgsiError, Result};

/// Longest `coordinates` accepted, in bytes.
pub const MAX_COORDINATES_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeoRel {
    NearMax(f64),
    NearMin(f64),
    Within,
    Contains,
    Intersects,
    Disjoint,
    Equals,
    Overlaps,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeoQuery {
    pub rel: GeoRel,
    pub geometry: Geometry,
    pub geoproperty: String,
}

fn bad(msg: impl Into<String>) -> NgsiError {
    NgsiError::BadRequestData(format!("Invalid geoQ: {}", msg.into()))
}

impl GeoRel {
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = s.split(';');
        let head = parts.next().unwrap_or_default();
        let rel = match head {
            "near" => {
                let modifier = parts.next().ok_or_else(|| bad("near needs maxDistance or minDistance"))?;
                let (key, value) = modifier.split_once("==").ok_or_else(|| bad(format!("`{modifier}`")))?;
                let d: f64 = value.parse().map_err(|_| bad(format!("distance `{value}` is not a number")))?;
                if !d.is_finite() || d < 0.0 {
                    return Err(bad("a distance is a non-negative number of metres"));
                }
                match key {
                    "maxDistance" => Self::NearMax(d),
                    "minDistance" => Self::NearMin(d),
                    _ => return Err(bad(format!("unknown near modifier `{key}`"))),
                }
            }
            "within" => Self::Within,
            "contains" => Self::Contains,
            "intersects" => Self::Intersects,
            "disjoint" => Self::Disjoint,
            "equals" => Self::Equals,
            "overlaps" => Self::Overlaps,
            _ => return Err(bad(format!("unknown georel `{head}`"))),
        };
        if parts.next().is_some() {
            return Err(bad(format!("georel `{s}` has too many parts")));
        }
        Ok(rel)
    }
}

impl GeoQuery {
    /// From the request's `georel`, `geometry`, `coordinates` (JSON text,
    /// as in a URL) and `geoproperty`.
    pub fn parse(georel: &str, geometry: &str, coordinates: &str, geoproperty: Option<&str>) -> Result<Self> {
        let coords: Value = if coordinates.len() > MAX_COORDINATES_LEN {
            return Err(bad("coordinates are too long"));
        } else {
            serde_json::from_str(coordinates).map_err(|_| bad("coordinates are not a JSON array"))?
        };
        Self::from_json(georel, geometry, coords, geoproperty)
    }

    /// From the JSON form (`POST /entityOperations/query`, subscriptions).
    pub fn from_json(georel: &str, geometry: &str, coordinates: Value, geoproperty: Option<&str>) -> Result<Self> {
        let rel = GeoRel::parse(georel)?;
        if !["Point", "LineString", "Polygon", "MultiPolygon"].contains(&geometry) {
            return Err(bad(format!("unsupported geometry `{geometry}`")));
        }
        let coordinates = match coordinates {
            Value::String(s) => serde_json::from_str(&s).map_err(|_| bad("coordinates are not a JSON array"))?,
            v => v,
        };
        let geometry: Geometry =
            serde_json::from_value(serde_json::json!({"type": geometry, "coordinates": coordinates}))
                .map_err(|e| bad(format!("coordinates do not make a {geometry}: {e}")))?;
        if matches!(rel, GeoRel::NearMax(_) | GeoRel::NearMin(_)) && !matches!(geometry, Geometry::Point(_)) {
            return Err(bad("near needs a Point"));
        }
        Ok(Self { rel, geometry, geoproperty: geoproperty.unwrap_or("location").to_owned() })
    }

    /// A bounding box that holds every match, for a cheap prefilter in SQL;
    /// `None` when the relation may match anywhere (disjoint, minDistance).
    pub fn prefilter(&self) -> Option<BBox> {
        if self.geoproperty != "location" {
            return None;
        }
        let b = self.geometry.bbox();
        let (mut w, mut s, mut e, mut n) = (b.min_lon, b.min_lat, b.max_lon, b.max_lat);
        match self.rel {
            GeoRel::Disjoint | GeoRel::NearMin(_) => return None,
            GeoRel::NearMax(d) => {
                // Degrees of latitude are ~111 km; of longitude, less by cos(lat).
                let dlat = d / 111_000.0 + 1e-6;
                let coslat = s.to_radians().cos().abs().max(0.01);
                let dlon = d / (111_320.0 * coslat) + 1e-6;
                (w, s, e, n) = (w - dlon, s - dlat, e + dlon, n + dlat);
            }
            _ => {}
        }
        BBox::new(w.max(-180.0), s.max(-90.0), e.min(180.0), n.min(90.0)).ok()
    }

    fn target(&self, e: &Entity) -> Option<Geometry> {
        if self.geoproperty == "location" {
            return e.location.clone();
        }
        match e.attributes.get(&AttributeName::parse(&self.geoproperty).ok()?)? {
            Attribute::GeoProperty { value, .. } => Some(value.clone()),
            _ => None,
        }
    }

    pub fn matches(&self, e: &Entity) -> bool {
        let Some(target) = self.target(e) else { return false };
        let (a, b) = (to_geo(&target), to_geo(&self.geometry));
        match self.rel {
            GeoRel::NearMax(d) => distance(&a, &b) <= d,
            GeoRel::NearMin(d) => distance(&a, &b) >= d,
            GeoRel::Within => a.relate(&b).is_within(),
            GeoRel::Contains => a.relate(&b).is_contains(),
            GeoRel::Intersects => a.relate(&b).is_intersects(),
            GeoRel::Disjoint => a.relate(&b).is_disjoint(),
            GeoRel::Equals => a.relate(&b).is_equal_topo(),
            GeoRel::Overlaps => a.relate(&b).is_overlaps(),
        }
    }
}

fn line(ps: &[[f64; 2]]) -> geo::LineString {
    geo::LineString::from(ps.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>())
}

fn polygon(rings: &[Vec<[f64; 2]>]) -> geo::Polygon {
    let mut it = rings.iter();
    let outer = it.next().map(|r| line(r)).unwrap_or_else(|| geo::LineString::new(vec![]));
    geo::Polygon::new(outer, it.map(|r| line(r)).collect())
}

pub fn to_geo(g: &Geometry) -> geo::Geometry {
    match g {
        Geometry::Point(p) => geo::Geometry::Point(geo::Point::new(p[0], p[1])),
        Geometry::LineString(l) => geo::Geometry::LineString(line(l)),
        Geometry::Polygon(r) => geo::Geometry::Polygon(polygon(r)),
        Geometry::MultiPolygon(m) => {
            geo::Geometry::MultiPolygon(geo::MultiPolygon(m.iter().map(|p| polygon(p)).collect()))
        }
    }
}

/// Metres from the query point `b` to the nearest point of `a` (zero inside an area).
fn distance(a: &geo::Geometry, b: &geo::Geometry) -> f64 {
    let geo::Geometry::Point(p) = b else { return f64::INFINITY };
    if a.relate(b).is_intersects() {
        return 0.0;
    }
    let nearest = match a.closest_point(p) {
        Closest::Intersection(q) | Closest::SinglePoint(q) => q,
        Closest::Indeterminate => return f64::INFINITY,
    };
    Haversine.distance(nearest, *p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use socle_domain::{EntityId, EntityType, OrganisationId};

    fn at(lon: f64, lat: f64) -> Entity {
        let ty = EntityType::parse("Streetlight").unwrap();
        let mut e = Entity::new(EntityId::new(&ty, "l").unwrap(), ty, OrganisationId::parse("commune-a").unwrap());
        e.location = Some(Geometry::Point([lon, lat]));
        e
    }

    const SQUARE: &str = "[[[0.3,46.5],[0.4,46.5],[0.4,46.6],[0.3,46.6],[0.3,46.5]]]";

    #[test]
    fn near_uses_metres() {
        // 0.01° of longitude at 46.58° N is about 765 m.
        let q = GeoQuery::parse("near;maxDistance==800", "Point", "[0.34,46.58]", None).unwrap();
        assert!(q.matches(&at(0.35, 46.58)));
        assert!(!q.matches(&at(0.36, 46.58)));
        let q = GeoQuery::parse("near;minDistance==800", "Point", "[0.34,46.58]", None).unwrap();
        assert!(!q.matches(&at(0.35, 46.58)));
        assert!(q.matches(&at(0.36, 46.58)));
        let bbox =
            GeoQuery::parse("near;maxDistance==800", "Point", "[0.34,46.58]", None).unwrap().prefilter().unwrap();
        let point = |x: f64| BBox::new(x, 46.58, x, 46.58).unwrap();
        assert!(bbox.intersects(&point(0.35)) && !bbox.intersects(&point(0.36)));
    }

    #[test]
    fn relations() {
        let within = GeoQuery::parse("within", "Polygon", SQUARE, None).unwrap();
        assert!(within.matches(&at(0.35, 46.55)));
        assert!(!within.matches(&at(0.45, 46.55)));
        let intersects = GeoQuery::parse("intersects", "Polygon", SQUARE, None).unwrap();
        assert!(intersects.matches(&at(0.35, 46.55)));
        let disjoint = GeoQuery::parse("disjoint", "Polygon", SQUARE, None).unwrap();
        assert!(disjoint.matches(&at(0.45, 46.55)) && !disjoint.matches(&at(0.35, 46.55)));
        let equals = GeoQuery::parse("equals", "Point", "[0.35,46.55]", None).unwrap();
        assert!(equals.matches(&at(0.35, 46.55)) && !equals.matches(&at(0.35, 46.56)));
        let line = GeoQuery::parse("intersects", "LineString", "[[0.3,46.55],[0.4,46.55]]", None).unwrap();
        assert!(line.matches(&at(0.35, 46.55)));
        let multi = format!("[{SQUARE}]");
        assert!(GeoQuery::parse("within", "MultiPolygon", &multi, None).unwrap().matches(&at(0.31, 46.51)));
        let mut area = at(0.0, 0.0);
        area.location = Some(
            serde_json::from_value(
                serde_json::json!({"type":"Polygon","coordinates":serde_json::from_str::<Value>(SQUARE).unwrap()}),
            )
            .unwrap(),
        );
        assert!(GeoQuery::parse("contains", "Point", "[0.35,46.55]", None).unwrap().matches(&area));
        assert!(GeoQuery::parse("near;maxDistance==10", "Point", "[0.35,46.55]", None).unwrap().matches(&area));
        // No location: no match, even for disjoint.
        let mut nowhere = at(0.0, 0.0);
        nowhere.location = None;
        assert!(!disjoint.matches(&nowhere));
    }

    #[test]
    fn errors_are_bad_request_data() {
        for (rel, geom, coords) in [
            ("near", "Point", "[0,0]"),
            ("near;maxDistance==-1", "Point", "[0,0]"),
            ("near;maxDistance==x", "Point", "[0,0]"),
            ("near;farDistance==1", "Point", "[0,0]"),
            ("near;maxDistance==1", "Polygon", SQUARE),
            ("around", "Point", "[0,0]"),
            ("within", "Circle", "[0,0]"),
            ("within", "Point", "[500,0]"),
            ("within", "Polygon", "[[[0,0],[1,1]]]"),
            ("within", "Point", "not json"),
        ] {
            assert_eq!(
                GeoQuery::parse(rel, geom, coords, None).unwrap_err().name(),
                "BadRequestData",
                "{rel} {geom} {coords}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(rel in ".{0,40}", geom in "(Point|Polygon|LineString|MultiPolygon|.{0,10})", coords in ".{0,80}") {
            if let Ok(q) = GeoQuery::parse(&rel, &geom, &coords, None) {
                let _ = q.matches(&at(0.35, 46.55));
                let _ = q.prefilter();
            }
        }
        #[test]
        fn never_panics_on_numbers(rel in "(near;maxDistance==|near;minDistance==)[0-9.e+-]{1,8}", x in -180.0f64..180.0, y in -90.0f64..90.0) {
            if let Ok(q) = GeoQuery::parse(&rel, "Point", &format!("[{x},{y}]"), None) {
                let _ = q.matches(&at(0.35, 46.55));
                let _ = q.prefilter();
            }
        }
    }
}
