//! Integration tests: one binary, real servers on port 0, real HTTP.

mod basket;
mod keys;
mod snapshots;
mod split;
mod support;
mod tokens;
