//! GeoJSON ↔ `geo` geometries, for `geo_point_2d` / `geo_shape` fields and GeoJSON
//! imports and exports. Hand-written because the subset is small (RFC 7946 geometry
//! types) and the `geojson` crate would add a second geometry model.

use geo::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde_json::{json, Value as Json};

fn coord(v: &Json) -> Option<Coord<f64>> {
    let a = v.as_array()?;
    let x = a.first()?.as_f64()?;
    let y = a.get(1)?.as_f64()?;
    (x.is_finite() && y.is_finite()).then_some(Coord { x, y })
}

fn line(v: &Json) -> Option<LineString<f64>> {
    Some(LineString::new(v.as_array()?.iter().map(coord).collect::<Option<Vec<_>>>()?))
}

fn polygon(v: &Json) -> Option<Polygon<f64>> {
    let rings = v.as_array()?;
    let exterior = line(rings.first()?)?;
    let interiors = rings[1..].iter().map(line).collect::<Option<Vec<_>>>()?;
    Some(Polygon::new(exterior, interiors))
}

/// Reads a GeoJSON geometry, a Feature, or Opendatasoft's `{"lon": …, "lat": …}` point.
pub fn geometry_from_json(v: &Json) -> Option<Geometry<f64>> {
    let object = v.as_object()?;
    if let (Some(lon), Some(lat)) = (object.get("lon").and_then(Json::as_f64), object.get("lat").and_then(Json::as_f64))
    {
        return Some(Geometry::Point(Point::new(lon, lat)));
    }
    let kind = object.get("type")?.as_str()?;
    if kind == "Feature" {
        return geometry_from_json(object.get("geometry")?);
    }
    let c = object.get("coordinates");
    Some(match kind {
        "Point" => Geometry::Point(Point(coord(c?)?)),
        "MultiPoint" => Geometry::MultiPoint(MultiPoint::new(
            c?.as_array()?.iter().map(|p| coord(p).map(Point)).collect::<Option<Vec<_>>>()?,
        )),
        "LineString" => Geometry::LineString(line(c?)?),
        "MultiLineString" => Geometry::MultiLineString(MultiLineString::new(
            c?.as_array()?.iter().map(line).collect::<Option<Vec<_>>>()?,
        )),
        "Polygon" => Geometry::Polygon(polygon(c?)?),
        "MultiPolygon" => {
            Geometry::MultiPolygon(MultiPolygon::new(c?.as_array()?.iter().map(polygon).collect::<Option<Vec<_>>>()?))
        }
        _ => return None,
    })
}

fn coords_json(line: &LineString<f64>) -> Json {
    Json::Array(line.coords().map(|c| json!([c.x, c.y])).collect())
}

fn polygon_json(p: &Polygon<f64>) -> Json {
    let mut rings = vec![coords_json(p.exterior())];
    rings.extend(p.interiors().iter().map(coords_json));
    Json::Array(rings)
}

pub fn geometry_to_json(g: &Geometry<f64>) -> Json {
    match g {
        Geometry::Point(p) => json!({"type": "Point", "coordinates": [p.x(), p.y()]}),
        Geometry::MultiPoint(m) => json!({"type": "MultiPoint",
            "coordinates": m.iter().map(|p| json!([p.x(), p.y()])).collect::<Vec<_>>()}),
        Geometry::LineString(l) => json!({"type": "LineString", "coordinates": coords_json(l)}),
        Geometry::MultiLineString(m) => json!({"type": "MultiLineString",
            "coordinates": m.iter().map(coords_json).collect::<Vec<_>>()}),
        Geometry::Polygon(p) => json!({"type": "Polygon", "coordinates": polygon_json(p)}),
        Geometry::MultiPolygon(m) => json!({"type": "MultiPolygon",
            "coordinates": m.iter().map(polygon_json).collect::<Vec<_>>()}),
        Geometry::Rect(r) => geometry_to_json(&Geometry::Polygon(r.to_polygon())),
        Geometry::Triangle(t) => geometry_to_json(&Geometry::Polygon(t.to_polygon())),
        Geometry::Line(l) => geometry_to_json(&Geometry::LineString(LineString::new(vec![l.start, l.end]))),
        Geometry::GeometryCollection(c) => json!({"type": "GeometryCollection",
            "geometries": c.iter().map(geometry_to_json).collect::<Vec<_>>()}),
    }
}
