//! Integration tests: one binary, real servers on port 0, real HTTP.

mod basket;
mod conversations;
mod exchanges;
mod instances;
mod keys;
mod openapi;
mod receiver;
mod repair;
mod robust_out_only;
mod snapshots;
mod solicit;
mod split;
mod support;
mod tokens;
