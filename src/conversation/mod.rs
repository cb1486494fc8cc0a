//! Signed conversation state: the token every conversation step carries.
//!
//! A participant is stateless about conversations (the talk's *stateless
//! requestor*): the state of a conversation travels, signed, inside the
//! next-step links of every message. This module is that token:
//!
//! - [`claims`]: what the token says (`iss aud iat nbf exp jti cid pat seq nxt chn st`);
//! - [`chain`]: the hash chain that makes the transcript tamper-evident;
//! - [`keys`]: each participant's Ed25519 keys, kept in the data directory,
//!   rotated and retired, published as JWKS;
//! - [`token`]: minting (one signature per response) and strict verification
//!   against a trust store of known participants' keys;
//! - [`continuation`]: reading the token off a request (`?state=` or the
//!   `Conversation-State` header).

pub mod chain;
pub mod claims;
pub mod continuation;
pub mod keys;
pub mod token;

pub use claims::{Claims, Pattern};
pub use continuation::StateToken;
pub use keys::{KeyRing, Signing};
pub use token::{Expect, Head, Minter, Next, TokenError, TrustStore};
