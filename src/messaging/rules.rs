//! The exchanges of the example domain, each with its message exchange
//! pattern and its fault rule, declared once.
//!
//! The talk's fault rules say who may send a fault, and to whom:
//! - *No Fault*: nobody; a failure stays with the provider;
//! - *Message Triggers Fault*: the receiver of a one-way message may send a
//!   fault back to the sender's fault-to (Robust In-Only, Robust Out-Only);
//! - *Fault Replaces Message*: the provider may answer with a fault instead
//!   of its reply (Robust In-Out).
//!
//! Senders ask [`Exchange::allows_fault`] before sending a fault, and
//! receivers before accepting one, so a fault only ever travels where its
//! exchange's rule allows. The catalog lists this table at `GET /patterns`.

use serde::Serialize;

use crate::participant::Participant::{self, *};

/// The fault rule of an exchange: what may happen when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultRule {
    /// A failure stays with the provider; the requestor never hears of it.
    NoFault,
    /// The message may trigger a fault, sent back to the requestor's fault-to.
    MessageTriggersFault,
    /// A fault may be sent instead of the reply.
    FaultReplacesMessage,
    /// Not an exchange: the rule belongs to the exchanges it is made of.
    PerExchange,
}

/// The message exchange pattern, named from the provider's side as in the talk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mep {
    InOnly,
    RobustInOnly,
    OutOnly,
    RobustOutOnly,
    InOut,
    OutIn,
}

/// One exchange between two participants.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Exchange {
    pub name: &'static str,
    pub mep: Mep,
    pub rule: FaultRule,
    /// Who sends the first message.
    pub from: Participant,
    /// Who receives it (and may reply or fault, as the rule allows).
    pub to: Participant,
}

impl Exchange {
    /// Whether a fault may travel from `sender` to `receiver` in this exchange.
    pub fn allows_fault(&self, sender: Participant, receiver: Participant) -> bool {
        match self.rule {
            FaultRule::NoFault | FaultRule::PerExchange => false,
            FaultRule::MessageTriggersFault | FaultRule::FaultReplacesMessage => {
                sender == self.to && receiver == self.from
            }
        }
    }
}

const fn exchange(
    name: &'static str,
    mep: Mep,
    rule: FaultRule,
    from: Participant,
    to: Participant,
) -> Exchange {
    Exchange {
        name,
        mep,
        rule,
        from,
        to,
    }
}

/// Basket asks pricing to price the basket.
pub const PRICE: Exchange = exchange(
    "price",
    Mep::InOut,
    FaultRule::FaultReplacesMessage,
    Basket,
    Pricing,
);
/// Pricing asks payments to take a payment.
pub const TAKE_PAYMENT: Exchange = exchange(
    "take-payment",
    Mep::InOut,
    FaultRule::FaultReplacesMessage,
    Pricing,
    Payments,
);
/// A refund, asked by whoever compensates.
pub const REFUND: Exchange = exchange(
    "refund",
    Mep::InOut,
    FaultRule::FaultReplacesMessage,
    Pricing,
    Payments,
);
/// "Raise order" without a Fault-To: fire and forget.
pub const RAISE_ORDER: Exchange = exchange(
    "raise-order",
    Mep::InOnly,
    FaultRule::NoFault,
    Pricing,
    Orders,
);
/// "Raise order" with a Fault-To continuation.
pub const RAISE_ORDER_ROBUST: Exchange = exchange(
    "raise-order",
    Mep::RobustInOnly,
    FaultRule::MessageTriggersFault,
    Pricing,
    Orders,
);
/// Orders tells its subscribers an order was placed.
pub const ORDER_PLACED: Exchange = exchange(
    "order.placed",
    Mep::OutOnly,
    FaultRule::NoFault,
    Orders,
    Orders,
);
/// Orders tells its subscribers a placed order was cancelled (deliveries
/// stops the order's delivery).
pub const ORDER_CANCELLED: Exchange = exchange(
    "order.cancelled",
    Mep::OutOnly,
    FaultRule::NoFault,
    Orders,
    Orders,
);
/// Store information tells search a store changed; search may fault back.
pub const STORE_UPDATED: Exchange = exchange(
    "store.updated",
    Mep::RobustOutOnly,
    FaultRule::MessageTriggersFault,
    Stores,
    Search,
);
/// Deliveries asks the couriers whether they are available.
pub const SOLICIT: Exchange = exchange(
    "solicit",
    Mep::OutIn,
    FaultRule::NoFault,
    Deliveries,
    Couriers,
);

/// Every exchange, for the catalog.
pub const ALL: &[Exchange] = &[
    PRICE,
    TAKE_PAYMENT,
    REFUND,
    RAISE_ORDER,
    RAISE_ORDER_ROBUST,
    ORDER_PLACED,
    ORDER_CANCELLED,
    STORE_UPDATED,
    SOLICIT,
];

/// "Raise order" as the requestor chose it: Robust In-Only when it gave a Fault-To.
pub fn raise_order(fault_to_given: bool) -> Exchange {
    if fault_to_given {
        RAISE_ORDER_ROBUST
    } else {
        RAISE_ORDER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_travel_only_where_the_rule_allows() {
        assert!(
            !RAISE_ORDER.allows_fault(Orders, Pricing),
            "In-Only: no fault"
        );
        assert!(RAISE_ORDER_ROBUST.allows_fault(Orders, Pricing));
        assert!(
            !RAISE_ORDER_ROBUST.allows_fault(Pricing, Orders),
            "only back to the sender"
        );
        assert!(TAKE_PAYMENT.allows_fault(Payments, Pricing));
        assert!(!TAKE_PAYMENT.allows_fault(Pricing, Payments));
        assert!(STORE_UPDATED.allows_fault(Search, Stores));
        assert!(!ORDER_PLACED.allows_fault(Orders, Orders));
    }
}
