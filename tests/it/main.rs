//! Integration tests: one binary, real servers on port 0, real HTTP.

mod basket;
mod bench;
mod exchanges;
mod instances;
mod keys;
mod openapi;
mod receiver;
mod repair;
mod snapshots;
mod split;
mod support;
mod tokens;
