//! Integration tests: one binary, real servers on port 0, real HTTP.

mod basket;
mod exchanges;
mod instances;
mod keys;
mod openapi;
mod receiver;
mod repair;
mod saga;
mod snapshots;
mod solicit;
mod split;
mod support;
mod tokens;
