//! Messaging between participants: always over HTTP.
//!
//! Participants never call each other's functions, even in one process: the
//! quick start (one port) and a split deployment run the very same code
//! paths. [`sender`] is the requestor's side of every exchange.

pub mod callbacks;
pub mod chaos;
pub mod exchange;
pub mod idempotency;
pub mod journal;
pub mod outbox;
pub mod publishing;
pub mod rules;
pub mod sender;
pub mod webhooks;
