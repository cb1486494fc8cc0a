//! Conversations that span several participants with no one turn at a time:
//! the conversation group of the talk beyond turn taking.
//!
//! - [`routing_slip`]: the requestor chooses the steps; a signed slip travels
//!   with the message and every step marks itself done.

pub mod routing_slip;
