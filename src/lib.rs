//! Gatehouse: secrets, API credentials, request monitoring and published APIs in one binary.
//!
//! Layers (see `ARCHITECTURE.md`): `api` (poem-openapi) → `domain` (plain Rust) → `store`
//! (redb), beside `auth`, `crypto`, `logs`, `tls` and `config`. Only `api` imports poem; only
//! `store` imports redb.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod logging;
pub mod logs;
pub mod metrics;
pub mod services;
pub mod store;
pub mod tls;
pub mod workers;

#[cfg(test)]
mod layering;

/// The crate version, reported by `/health/`, `/api/` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
