//! The named participants of the example domain.
//!
//! Each participant is a service of its own: it has its own signing keys, its
//! own router under `/{name}/...`, and talks to the others only over HTTP.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A participant of the example domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Participant {
    Basket,
    Pricing,
    Payments,
    Orders,
    Deliveries,
    Couriers,
    Stores,
    Search,
}

impl Participant {
    /// Every participant, in the order the checkout meets them.
    pub const ALL: [Participant; 8] = [
        Participant::Basket,
        Participant::Pricing,
        Participant::Payments,
        Participant::Orders,
        Participant::Deliveries,
        Participant::Couriers,
        Participant::Stores,
        Participant::Search,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Participant::Basket => "basket",
            Participant::Pricing => "pricing",
            Participant::Payments => "payments",
            Participant::Orders => "orders",
            Participant::Deliveries => "deliveries",
            Participant::Couriers => "couriers",
            Participant::Stores => "stores",
            Participant::Search => "search",
        }
    }

    /// What the participant does, in a sentence, for the entry point.
    pub fn role(self) -> &'static str {
        match self {
            Participant::Basket => "holds a basket that lives only in the signed token",
            Participant::Pricing => "prices baskets and leads the checkout's payment turn",
            Participant::Payments => "takes and refunds payments",
            Participant::Orders => "places orders and publishes order events",
            Participant::Deliveries => "manages deliveries and solicits couriers",
            Participant::Couriers => "simulated couriers that answer solicitations",
            Participant::Stores => "store information and the menu",
            Participant::Search => "indexes stores for search",
        }
    }
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name did not match any participant.
#[derive(Debug, thiserror::Error)]
#[error("unknown participant `{0}`")]
pub struct UnknownParticipant(pub String);

impl FromStr for Participant {
    type Err = UnknownParticipant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Participant::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownParticipant(s.to_owned()))
    }
}
