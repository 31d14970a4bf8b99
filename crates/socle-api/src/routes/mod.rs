pub mod admin;
pub mod entities;
pub mod health;
pub mod organisations;
pub mod series;
