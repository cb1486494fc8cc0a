//! Integration tests: one binary, real servers on port 0, real HTTP, every
//! server on SQLite. `tests/pg` runs these same modules on PostgreSQL.

mod basket;
mod exchanges;
mod keys;
mod openapi;
mod receiver;
mod snapshots;
mod split;
mod support;
mod tokens;

/// The engine of every server these tests start (see `support`).
pub const ENGINE: support::Engine = support::Engine::Sqlite;
