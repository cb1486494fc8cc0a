//! Integration tests: one binary, real servers on port 0, real HTTP, every
//! server on SQLite. `tests/pg` runs these same modules on PostgreSQL.

mod basket;
mod bench;
mod conversations;
mod exchanges;
mod housekeeping;
mod idempotency;
mod instances;
mod keys;
mod once_only;
mod openapi;
mod outbox;
mod receiver;
mod repair;
mod robust_out_only;
mod routing_slip;
mod saga;
mod serve;
mod shutdown;
mod snapshots;
mod solicit;
mod split;
mod support;
mod tokens;
mod turn_taking;

/// The engine of every server these tests start (see `support`).
pub const ENGINE: support::Engine = support::Engine::Sqlite;
