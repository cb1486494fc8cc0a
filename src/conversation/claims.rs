//! The claims of a conversation-state token.
//!
//! Short names keep tokens small: a token is carried in every next-step link
//! of every response, so its size is paid on every turn.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::ids::{ConversationId, MessageId};

/// The kind of conversation a token belongs to (`pat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// The checkout: basket ⇄ pricing ⇄ payments ⇄ orders, turn by turn.
    TurnTaking,
    /// A requestor-chosen itinerary that travels with the message.
    RoutingSlip,
    /// A conversation a central manager drives (deliveries).
    ProcessManager,
    /// A single exchange started from the pattern catalog.
    Exchange,
}

/// The claims of a conversation-state token (DESIGN §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The signing participant.
    pub iss: String,
    /// The participant(s) that may act on the token.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The id of the message this token travels with.
    pub jti: MessageId,
    /// The conversation all tokens of one conversation share.
    pub cid: ConversationId,
    pub pat: Pattern,
    /// The turn number, 0 for the first message.
    pub seq: u32,
    /// The steps this token allows next.
    pub nxt: Vec<String>,
    /// The hash chain over every turn so far.
    pub chn: String,
    /// The domain state, compact.
    pub st: Value,
    /// The routing-slip itinerary, where the pattern needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slip: Option<Value>,
}

impl Claims {
    /// Whether `participant` is among the token's audience.
    pub fn is_for(&self, participant: &str) -> bool {
        self.aud.iter().any(|a| a == participant)
    }

    /// Whether `step` is among the steps the token allows next.
    pub fn allows(&self, step: &str) -> bool {
        self.nxt.iter().any(|s| s == step)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
