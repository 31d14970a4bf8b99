//! ODSQL, the query language of the Opendatasoft Explore API v2.1: a lexer and parser to
//! a syntax tree with byte positions in every error, and an evaluator over records.

pub mod ast;
mod eval;
pub mod functions;
mod lexer;
mod parser;
mod query;
pub mod value;

pub use eval::{like, normalise, parse_geom, Context, Record};
pub use parser::{parse_order_by, parse_projections, parse_where};
pub use query::{Clause, Facet, FacetCounts, FacetValue, Query, QueryError, QueryParams, Rows, Run};

/// A syntax or meaning error at a byte offset of the clause text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (position {position})")]
pub struct OdsqlError {
    pub position: usize,
    pub message: String,
}

impl OdsqlError {
    pub fn at(position: usize, message: impl Into<String>) -> Self {
        OdsqlError { position, message: message.into() }
    }
}
