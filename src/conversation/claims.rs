//! The claims of a conversation-state token.
//!
//! Short names keep tokens small: a token is carried in every next-step link
//! of every response, so its size is paid on every turn.

use serde::de::{self, SeqAccess, Visitor};
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

impl Pattern {
    /// The name on the wire (`pat`) and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::TurnTaking => "turn-taking",
            Pattern::RoutingSlip => "routing-slip",
            Pattern::ProcessManager => "process-manager",
            Pattern::Exchange => "exchange",
        }
    }
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

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); read either
/// without buffering the value first (as an untagged enum would, on every
/// verification).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or an array of strings")
        }

        fn visit_str<E: de::Error>(self, one: &str) -> Result<Vec<String>, E> {
            Ok(vec![one.to_owned()])
        }

        fn visit_string<E: de::Error>(self, one: String) -> Result<Vec<String>, E> {
            Ok(vec![one])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut many = Vec::with_capacity(seq.size_hint().unwrap_or(1));
            while let Some(one) = seq.next_element()? {
                many.push(one);
            }
            Ok(many)
        }
    }

    d.deserialize_any(OneOrMany)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_named_as_it_serialises() {
        for pat in [
            Pattern::TurnTaking,
            Pattern::RoutingSlip,
            Pattern::ProcessManager,
            Pattern::Exchange,
        ] {
            assert_eq!(serde_json::to_value(pat).unwrap(), pat.as_str());
        }
    }

    #[test]
    fn the_audience_is_one_or_many() {
        #[derive(Deserialize)]
        struct Aud {
            #[serde(deserialize_with = "one_or_many")]
            aud: Vec<String>,
        }
        let one: Aud = serde_json::from_str(r#"{"aud":"basket"}"#).unwrap();
        assert_eq!(one.aud, ["basket"]);
        let many: Aud = serde_json::from_str(r#"{"aud":["basket","pricing"]}"#).unwrap();
        assert_eq!(many.aud, ["basket", "pricing"]);
        assert!(serde_json::from_str::<Aud>(r#"{"aud":7}"#).is_err());
        assert!(serde_json::from_str::<Aud>(r#"{"aud":[7]}"#).is_err());
    }
}
