//! Temporal representation of entities (filled in below).
