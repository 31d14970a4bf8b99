//! GeoJSON geometries (RFC 7946, WGS 84 longitude/latitude) and bounding boxes.

use serde::{Deserialize, Serialize};

use crate::DomainError;

pub type Position = [f64; 2];

/// The geometries Socle stores. Deserialisation validates coordinates, so a
/// `Geometry` in memory is always well-formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "coordinates", try_from = "RawGeometry")]
pub enum Geometry {
    Point(Position),
    LineString(Vec<Position>),
    Polygon(Vec<Vec<Position>>),
    MultiPolygon(Vec<Vec<Vec<Position>>>),
}

#[derive(Deserialize)]
#[serde(tag = "type", content = "coordinates")]
enum RawGeometry {
    Point(Position),
    LineString(Vec<Position>),
    Polygon(Vec<Vec<Position>>),
    MultiPolygon(Vec<Vec<Vec<Position>>>),
}

impl TryFrom<RawGeometry> for Geometry {
    type Error = DomainError;
    fn try_from(raw: RawGeometry) -> Result<Self, Self::Error> {
        let g = match raw {
            RawGeometry::Point(p) => Geometry::Point(p),
            RawGeometry::LineString(l) => Geometry::LineString(l),
            RawGeometry::Polygon(p) => Geometry::Polygon(p),
            RawGeometry::MultiPolygon(m) => Geometry::MultiPolygon(m),
        };
        g.validate()?;
        Ok(g)
    }
}

fn check_position(p: &Position) -> Result<(), DomainError> {
    let [lon, lat] = *p;
    if lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat) {
        Ok(())
    } else {
        Err(DomainError::Geometry(format!("position {lon},{lat} is outside WGS 84 bounds")))
    }
}

fn check_ring(ring: &[Position]) -> Result<(), DomainError> {
    if ring.len() < 4 || ring.first() != ring.last() {
        return Err(DomainError::Geometry(
            "a polygon ring needs at least 4 positions and must be closed (first position = last position)".into(),
        ));
    }
    ring.iter().try_for_each(check_position)
}

impl Geometry {
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Geometry::Point(p) => check_position(p),
            Geometry::LineString(l) => {
                if l.len() < 2 {
                    return Err(DomainError::Geometry("a line string needs at least 2 positions".into()));
                }
                l.iter().try_for_each(check_position)
            }
            Geometry::Polygon(rings) => {
                if rings.is_empty() {
                    return Err(DomainError::Geometry("a polygon needs an exterior ring".into()));
                }
                rings.iter().try_for_each(|r| check_ring(r))
            }
            Geometry::MultiPolygon(polys) => {
                if polys.is_empty() {
                    return Err(DomainError::Geometry("a multi-polygon needs a polygon".into()));
                }
                polys.iter().flatten().try_for_each(|r| check_ring(r))
            }
        }
    }

    fn positions(&self) -> Box<dyn Iterator<Item = &Position> + '_> {
        match self {
            Geometry::Point(p) => Box::new(std::iter::once(p)),
            Geometry::LineString(l) => Box::new(l.iter()),
            Geometry::Polygon(r) => Box::new(r.iter().flatten()),
            Geometry::MultiPolygon(m) => Box::new(m.iter().flatten().flatten()),
        }
    }

    /// The smallest box that contains the geometry; what spatial indexes store.
    pub fn bbox(&self) -> BBox {
        let mut b = BBox { min_lon: f64::MAX, min_lat: f64::MAX, max_lon: f64::MIN, max_lat: f64::MIN };
        for [lon, lat] in self.positions() {
            b.min_lon = b.min_lon.min(*lon);
            b.min_lat = b.min_lat.min(*lat);
            b.max_lon = b.max_lon.max(*lon);
            b.max_lat = b.max_lat.max(*lat);
        }
        b
    }
}

/// A longitude/latitude rectangle, as in `bbox=minLon,minLat,maxLon,maxLat`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    pub fn new(min_lon: f64, min_lat: f64, max_lon: f64, max_lat: f64) -> Result<Self, DomainError> {
        for p in [[min_lon, min_lat], [max_lon, max_lat]] {
            check_position(&p).map_err(|e| DomainError::BBox(e.to_string()))?;
        }
        if min_lon > max_lon || min_lat > max_lat {
            return Err(DomainError::BBox("minimum greater than maximum".into()));
        }
        Ok(Self { min_lon, min_lat, max_lon, max_lat })
    }

    /// Parses `minLon,minLat,maxLon,maxLat`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| DomainError::BBox(format!("{s:?} is not four comma-separated numbers")))?;
        match parts[..] {
            [a, b, c, d] => Self::new(a, b, c, d),
            _ => Err(DomainError::BBox(format!("{s:?} is not four comma-separated numbers"))),
        }
    }

    pub fn intersects(&self, o: &BBox) -> bool {
        self.min_lon <= o.max_lon && self.max_lon >= o.min_lon && self.min_lat <= o.max_lat && self.max_lat >= o.min_lat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_validates_geojson() {
        let g: Geometry = serde_json::from_str(r#"{"type":"Point","coordinates":[1.5,47.2]}"#).unwrap();
        assert_eq!(g, Geometry::Point([1.5, 47.2]));
        assert!(serde_json::from_str::<Geometry>(r#"{"type":"Point","coordinates":[200,47.2]}"#).is_err());
        assert!(serde_json::from_str::<Geometry>(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}"#).is_err());
        let poly: Geometry =
            serde_json::from_str(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#).unwrap();
        assert_eq!(poly.bbox(), BBox::new(0.0, 0.0, 1.0, 1.0).unwrap());
        assert_eq!(serde_json::to_string(&g).unwrap(), r#"{"type":"Point","coordinates":[1.5,47.2]}"#);
    }

    #[test]
    fn bbox_parsing() {
        assert!(BBox::parse("1,2,3,4").is_ok());
        assert!(BBox::parse("3,2,1,4").is_err());
        assert!(BBox::parse("1,2,3").is_err());
        assert!(BBox::parse("1,2,3,nan").is_err());
    }

    proptest! {
        #[test]
        fn bbox_parse_never_panics(s in ".*") { let _ = BBox::parse(&s); }
    }
}
