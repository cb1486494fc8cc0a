//! Integration tests: one binary, real servers on port 0, real HTTP.

mod basket;
mod conversations;
mod exchanges;
mod keys;
mod openapi;
mod receiver;
mod snapshots;
mod split;
mod support;
mod tokens;
