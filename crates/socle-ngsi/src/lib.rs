//! NGSI-LD (ETSI GS CIM 009) without I/O: the `@context` (the bundled core
//! context, term ↔ IRI), the representations of entities, the `q` and `geoQ`
//! languages, temporal aggregation, and the standard's error types. The HTTP
//! routes live in `socle-api`; this crate only computes.

pub mod context;
pub mod error;
pub mod geoq;
pub mod q;
pub mod representation;
pub mod subscription;
pub mod temporal;
pub mod types;

pub use context::Context;
pub use error::{NgsiError, ProblemDetails};
pub use geoq::GeoQuery;
pub use q::Query;
pub use types::TypeExpr;
