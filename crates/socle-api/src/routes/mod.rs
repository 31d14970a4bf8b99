pub mod admin;
pub mod devices;
pub mod entities;
pub mod health;
pub mod ingest;
pub mod organisations;
pub mod series;
