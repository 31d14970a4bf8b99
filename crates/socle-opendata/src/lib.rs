//! Open data without HTTP: the Opendatasoft query language (ODSQL) over dataset records,
//! dataset schemas, imports (CSV, XLSX, GeoJSON) and exports (text formats, XLSX, Parquet). The HTTP side lives in `socle-api`.

pub mod columnar;
pub mod dataset;
pub mod dcat;
pub mod export;
pub mod geojson;
pub mod import;
pub mod odsql;
pub mod schema;
pub mod spreadsheet;
pub mod table_schema;
