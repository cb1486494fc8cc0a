//! conversant

pub mod store;
