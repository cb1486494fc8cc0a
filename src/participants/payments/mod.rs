//! Payments: takes and refunds payments.
pub mod cards;
