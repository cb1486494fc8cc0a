//! The hash chain (`chn`) of a conversation.
//!
//! `chn = SHA-256(previous chn ‖ jti ‖ iss ‖ step)`, base64url without padding.
//! The chain digest of the latest token commits to every turn before it, so a
//! transcript rebuilt from the journals can be checked against it, while the
//! token stays the same size however long the conversation runs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::ids::MessageId;

/// The chain digest of a conversation's first message.
pub const GENESIS: &str = "";

/// Extends `previous` by one turn.
pub fn extend(previous: &str, jti: MessageId, iss: &str, step: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(jti.0.as_bytes());
    hasher.update(iss.as_bytes());
    hasher.update(step.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// One turn of a transcript, as the journals record it.
pub struct Turn<'a> {
    pub jti: MessageId,
    pub iss: &'a str,
    pub step: &'a str,
}

/// Replays a transcript from the start and returns the digest it arrives at.
pub fn replay<'a>(turns: impl IntoIterator<Item = Turn<'a>>) -> String {
    turns.into_iter().fold(GENESIS.to_owned(), |chn, turn| {
        extend(&chn, turn.jti, turn.iss, turn.step)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_turn_changes_the_digest_and_order_matters() {
        let (a, b) = (MessageId::new(), MessageId::new());
        let ab = replay([
            Turn {
                jti: a,
                iss: "basket",
                step: "start-checkout",
            },
            Turn {
                jti: b,
                iss: "basket",
                step: "add-item",
            },
        ]);
        let ba = replay([
            Turn {
                jti: b,
                iss: "basket",
                step: "add-item",
            },
            Turn {
                jti: a,
                iss: "basket",
                step: "start-checkout",
            },
        ]);
        assert_ne!(ab, ba);
        assert_eq!(ab.len(), 43);
        let one = extend(GENESIS, a, "basket", "start-checkout");
        assert_eq!(extend(&one, b, "basket", "add-item"), ab);
    }
}
