//! Test cards: the card number decides the outcome, as with a payment
//! provider's test mode.
//!
//! | number | outcome |
//! |---|---|
//! | `4242424242424242` | succeeds |
//! | `4000000000000002` | declined |
//! | `4000000000009995` | insufficient funds |
//! | `4000000000000119` | processor unavailable (retry later) |
//! | `4000000000000259` | slow: succeeds, but only after the requestor's timeout |
//! | any other number passing the Luhn check | succeeds |
//! | a number failing the Luhn check | refused (422) |
//!
//! The number itself is never stored, logged or put in a token: only its
//! last four digits leave this module.

use super::PaymentAck;
use crate::fault::{Problem, types};
use crate::store::{Payment, PaymentStatus, now_ms};

/// What taking a payment with a card does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeds,
    Declined,
    InsufficientFunds,
    ProcessorUnavailable,
    /// Succeeds after a delay longer than the requestor waits.
    Slow,
}

/// A card number that passed the checks; only `last4` is kept.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Card {
    pub last4: String,
    pub outcome: Outcome,
}

/// The charge rule, for whoever takes a payment (payments' `take` step and
/// the routing slip's `take-payment`): the payment to record — captured, or
/// declined with its reason — and the answer: the acknowledgement, or the
/// fault that replaces it. A processor that is down records nothing; callers
/// answer it before they get here.
pub fn charge(
    card: &Card,
    conversation: &str,
    amount: i64,
    currency: &str,
) -> (Payment, Result<PaymentAck, Problem>) {
    let (status, reason) = match card.outcome {
        Outcome::Declined => (PaymentStatus::Declined, Some("card_declined")),
        Outcome::InsufficientFunds => (PaymentStatus::Declined, Some("insufficient_funds")),
        _ => (PaymentStatus::Captured, None),
    };
    let payment = Payment {
        id: uuid::Uuid::now_v7().to_string(),
        conversation_id: conversation.to_owned(),
        amount,
        currency: currency.to_owned(),
        last4: Some(card.last4.clone()),
        status,
        reason: reason.map(str::to_owned),
        created_at: now_ms(),
        order_id: None,
    };
    let answer = match card.outcome {
        Outcome::Declined => Err(Problem::new(types::CARD_DECLINED, "The card was declined.")),
        Outcome::InsufficientFunds => Err(Problem::new(
            types::INSUFFICIENT_FUNDS,
            "The card has insufficient funds for this amount.",
        )),
        _ => Ok(PaymentAck {
            payment_id: payment.id.clone(),
            amount,
            currency: currency.to_owned(),
            last4: card.last4.clone(),
            status: PaymentStatus::Captured,
        }),
    };
    (payment, answer)
}

/// Why a card number was refused before any processing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("a card number has 12 to 19 digits")]
    Length,
    #[error("the card number fails the Luhn check")]
    Luhn,
}

/// Reads a card number (spaces and dashes allowed between digits).
pub fn read(number: &str) -> Result<Card, CardError> {
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::Length);
    }
    if !luhn(&digits) {
        return Err(CardError::Luhn);
    }
    let outcome = match digits.as_str() {
        "4000000000000002" => Outcome::Declined,
        "4000000000009995" => Outcome::InsufficientFunds,
        "4000000000000119" => Outcome::ProcessorUnavailable,
        "4000000000000259" => Outcome::Slow,
        _ => Outcome::Succeeds,
    };
    Ok(Card {
        last4: digits[digits.len() - 4..].to_owned(),
        outcome,
    })
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_cards_decide_the_outcome() {
        assert_eq!(
            read("4242 4242 4242 4242").unwrap().outcome,
            Outcome::Succeeds
        );
        assert_eq!(read("4000000000000002").unwrap().outcome, Outcome::Declined);
        assert_eq!(
            read("4000000000009995").unwrap().outcome,
            Outcome::InsufficientFunds
        );
        assert_eq!(
            read("4000000000000119").unwrap().outcome,
            Outcome::ProcessorUnavailable
        );
        assert_eq!(read("4000000000000259").unwrap().outcome, Outcome::Slow);
        assert_eq!(read("5555555555554444").unwrap().outcome, Outcome::Succeeds);
        assert_eq!(read("4242424242424242").unwrap().last4, "4242");
    }

    #[test]
    fn other_numbers_fail_luhn_or_length() {
        assert_eq!(read("4242424242424241"), Err(CardError::Luhn));
        assert_eq!(read("1234"), Err(CardError::Length));
        assert_eq!(read("4242x42424242424"), Err(CardError::Length));
    }
}
