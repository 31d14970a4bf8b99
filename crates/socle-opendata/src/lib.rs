//! Open data without HTTP: the Opendatasoft query language (ODSQL) over dataset records,
//! dataset schemas, and GeoJSON conversion. The HTTP side lives in `socle-api`.

pub mod dataset;
pub mod dcat;
pub mod export;
pub mod geojson;
pub mod import;
pub mod odsql;
pub mod schema;
pub mod table_schema;
