//! Integration tests: one binary, real servers on port 0, real HTTP.

mod basket;
mod exchanges;
mod openapi;
mod receiver;
mod support;
