//! conversant
