//! Open data without HTTP: the Opendatasoft query language (ODSQL) over dataset records,
//! dataset schemas, and GeoJSON conversion. The HTTP side lives in `socle-api`.

pub mod geojson;
pub mod odsql;
pub mod schema;
