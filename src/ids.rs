//! Typed identifiers.
//!
//! Conversations and messages are both UUIDv7 (time-ordered, so journals sort
//! by them naturally), but they are never interchangeable: a message id is the
//! `jti` of one token, a conversation id is the `cid` that all the tokens of a
//! conversation share. Separate types keep them apart at compile time
//! (svix's `core/types` does the same for its ids).

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// The id every token of one conversation shares (`cid`).
    ConversationId
);
typed_id!(
    /// The id of one message: the `jti` of the token it carries.
    MessageId
);
