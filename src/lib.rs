//! # conversant
//!
//! Every asynchronous conversation pattern of the talk "Asynchronous
//! Conversation Patterns", working for real between participants that talk
//! HTTP and stay stateless about conversations: the state travels signed
//! inside the next-step links of every message.
//!
//! ## The map of patterns to modules
//!
//! | pattern | where |
//! |---|---|
//! | stateless requestor (state in the message, HATEOAS) | [`conversation`] (the token), [`hypermedia`] (links that carry it) |
//! | In-Out, query-result | [`participants::basket`] `checkout` → [`participants::pricing`] `quote` |
//! | fault documents and repair links | [`fault`] |
//! | messaging over HTTP between participants | [`messaging::sender`] |
//! | the catalog of every pattern, with its status | [`participants::catalog::patterns`] |
//!
//! ## The shape of the code
//!
//! [`server::run`] takes its listener (tests bind port 0); each participant
//! builds its own router; handlers verify the request's token, do the step's
//! work, mint one token and render HAL whose links carry it.

pub mod app;
pub mod background;
pub mod bench;
pub mod config;
pub mod conversation;
pub mod crash;
pub mod fault;
pub mod flows;
pub mod housekeeping;
pub mod hypermedia;
pub mod ids;
pub mod messaging;
pub mod openapi;
pub mod participant;
pub mod participants;
pub mod server;
pub mod store;
