//! The slip: what travels in the token's `slip` claim, and how anyone who
//! holds it checks it from the token alone.
//!
//! ```text
//! slip = {
//!   req:   JWS by basket (the requestor), st = { terms: SHA-256(terms) }
//!   terms: { itinerary: [{ step, by, url, undo? }], items, address?, reply_to? }
//!   cur:   index of the next step in the itinerary
//!   done:  [{ step, by, at, result, receipt }]   one per step taken, in order
//!   fault: { step, by, at, result: problem, receipt }   when a step failed
//!   undone:[ compensation names ]   made so far, last completed step first
//! }
//! ```
//!
//! Every `receipt` is a compact JWS signed by the participant that did the
//! work, over `{ step, res: SHA-256(result) }`, in the slip's conversation,
//! addressed to the requestor. A compensation does not add a receipt: the
//! participant that undoes its step signs that step's receipt again, its
//! result now saying what was undone (`result.undone`). So one participant's
//! whole testimony about its step is one signature, and a slip never holds
//! more signatures than its itinerary has steps, plus the requestor's: the
//! token that carries it stays within the size every verifier accepts. The carrying token is re-signed at every hop
//! by whoever holds the slip, so it proves only the last hop; what makes the
//! slip trustworthy are the signatures inside it: the requestor's over the
//! terms (so no step can change the itinerary, the order or where the
//! outcome goes) and each step's over its own result.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::conversation::{Claims, Expect, Next, Pattern};
use crate::fault::{Problem, types};
use crate::ids::ConversationId;
use crate::participant::Participant::{self, Basket, Orders, Payments, Pricing, Stores};

/// The step a token allows when it is held only to be read back.
pub const INSPECT: &str = "inspect";
/// The compensation of `take-payment`, at payments.
pub const REFUND_PAYMENT: &str = "refund-payment";
/// The compensation of `raise-order`, at orders.
pub const CANCEL_ORDER: &str = "cancel-order";
/// Slip tokens and receipts live as long as a durable message: a relay may
/// deliver a hop late, and the requestor inspects the slip afterwards.
pub const SLIP_TTL: Duration = Duration::from_secs(24 * 3600);

/// A step of the documented set, each done by one participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Stores: every store of the items is open and within reach of the address.
    ValidateAddress,
    /// Pricing: the items priced, one delivery fee per store.
    Price,
    /// Payments: the priced total charged to the card.
    TakePayment,
    /// Orders: the paid order placed (and `order.placed` published).
    RaiseOrder,
    /// Basket, for the requestor: the slip comes home before the requestor is told.
    Notify,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::ValidateAddress,
        Step::Price,
        Step::TakePayment,
        Step::RaiseOrder,
        Step::Notify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::ValidateAddress => "validate-address",
            Step::Price => "price",
            Step::TakePayment => "take-payment",
            Step::RaiseOrder => "raise-order",
            Step::Notify => "notify",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The participant that does the step.
    pub fn by(self) -> Participant {
        match self {
            Step::ValidateAddress => Stores,
            Step::Price => Pricing,
            Step::TakePayment => Payments,
            Step::RaiseOrder => Orders,
            Step::Notify => Basket,
        }
    }

    /// The steps whose results this one needs, earlier in the itinerary.
    pub fn requires(self) -> &'static [Step] {
        match self {
            Step::TakePayment => &[Step::Price],
            Step::RaiseOrder => &[Step::Price, Step::TakePayment],
            _ => &[],
        }
    }

    /// The compensation that undoes the step, if it has a lasting effect.
    pub fn undo(self) -> Option<&'static str> {
        match self {
            Step::TakePayment => Some(REFUND_PAYMENT),
            Step::RaiseOrder => Some(CANCEL_ORDER),
            _ => None,
        }
    }

    /// The step's path under its participant's prefix.
    pub fn path(self) -> String {
        path_of(self.name())
    }
}

/// The path of a step or compensation under its participant's prefix.
pub fn path_of(name: &str) -> String {
    format!("/routing-slips/{name}")
}

/// One stop of the itinerary: the step, who does it, and where to send the
/// slip for it (and for its compensation). Steps forward to these addresses
/// and make no routing choice of their own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    pub step: Step,
    pub by: Participant,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
}

/// An ordered item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    /// A sku from the menu.
    pub sku: String,
    /// 1 to 99.
    #[schema(minimum = 1, maximum = 99)]
    pub qty: i64,
}

/// A delivery address, as coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Address {
    pub lat: f64,
    pub lon: f64,
}

/// What the requestor asked for, and signed (as a digest): nobody else can
/// change it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    pub itinerary: Vec<Stop>,
    pub items: Vec<Line>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// A step (or compensation, or failure) marked on the slip by the
/// participant that did it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub step: String,
    pub by: Participant,
    /// Unix seconds: the receipt's `iat`.
    pub at: i64,
    /// The step's result (a problem document for a failure).
    pub result: Value,
    /// The JWS over `{ step, res: SHA-256(result) }`, by `by`.
    pub receipt: String,
}

/// The `slip` claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slip {
    pub req: String,
    pub terms: Terms,
    pub cur: usize,
    #[serde(default)]
    pub done: Vec<Receipt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Receipt>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undone: Vec<String>,
}

/// Where a slip stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Routing,
    Compensating,
    Completed,
    Faulted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Routing => "routing",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Faulted => "faulted",
        }
    }
}

impl Slip {
    /// The slip a token carries.
    pub fn of(claims: &Claims) -> Result<Slip, Problem> {
        let unreadable = || {
            Problem::new(
                types::TAMPERED_SLIP,
                "The token carries no readable routing slip.",
            )
            .in_conversation(claims.cid)
        };
        if claims.pat != Pattern::RoutingSlip {
            return Err(unreadable());
        }
        let value = claims.slip.clone().ok_or_else(unreadable)?;
        serde_json::from_value(value).map_err(|_| unreadable())
    }

    pub fn to_value(&self) -> Result<Value, Problem> {
        serde_json::to_value(self).map_err(Problem::internal)
    }

    pub fn status(&self) -> Status {
        match (&self.fault, self.next_compensation()) {
            (Some(_), Some(_)) => Status::Compensating,
            (Some(_), None) => Status::Faulted,
            (None, _) if self.cur >= self.terms.itinerary.len() => Status::Completed,
            (None, _) => Status::Routing,
        }
    }

    /// The compensations a fault calls for: the completed steps that have
    /// one, last done first, with the index of the step each undoes.
    pub fn compensations(&self) -> Vec<(&'static str, usize)> {
        let done = self.done.len().min(self.terms.itinerary.len());
        self.terms.itinerary[..done]
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(i, stop)| stop.step.undo().map(|name| (name, i)))
            .collect()
    }

    /// The compensation to make next, once the slip has faulted.
    pub fn next_compensation(&self) -> Option<(&'static str, usize)> {
        self.fault.as_ref()?;
        self.compensations().get(self.undone.len()).copied()
    }

    /// Who must have signed the token that brings the slip to its next stop
    /// (forward) or its next compensation.
    pub fn previous_holder(&self) -> Participant {
        let last_undone = self.undone.len().checked_sub(1);
        if let Some((_, i)) = last_undone.and_then(|n| self.compensations().get(n).copied()) {
            return self.terms.itinerary[i].by;
        }
        if let Some(fault) = &self.fault {
            return fault.by;
        }
        match self.cur {
            0 => Basket,
            n => self.terms.itinerary[n - 1].by,
        }
    }

    /// The result of a completed step, read as `T`.
    pub fn result_of<T: serde::de::DeserializeOwned>(&self, step: Step) -> Result<T, Problem> {
        let receipt = self
            .terms
            .itinerary
            .iter()
            .zip(&self.done)
            .find(|(stop, _)| stop.step == step)
            .map(|(_, receipt)| receipt)
            .ok_or_else(|| {
                Problem::internal(format!("the slip has no result of {}", step.name()))
            })?;
        serde_json::from_value(receipt.result.clone()).map_err(Problem::internal)
    }
}

/// What the requestor and the steps sign: the left half of SHA-256 over the
/// JSON, base64url (as OpenID Connect's `at_hash`). 128 bits resist a second
/// preimage as well as any key here resists forgery, and every byte of a
/// signature's claims rides, base64 twice, in every later hop of the slip.
pub fn digest(value: &impl Serialize) -> Result<String, Problem> {
    let bytes = serde_json::to_vec(value).map_err(Problem::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(&Sha256::digest(bytes)[..16]))
}

/// Marks `step` done by `by`: a receipt signed with `by`'s key, in the slip's
/// conversation, addressed to the requestor. A receipt is not a message (it
/// travels inside the slip), so it is not journaled.
pub fn receipt(
    app: &App,
    by: Participant,
    after: &Claims,
    step: &str,
    result: Value,
) -> Result<Receipt, Problem> {
    let mut next = Next::after(after, step)
        .to(&[Basket])
        .allow(&[INSPECT])
        .state(json!({ "step": step, "res": digest(&result)? }))
        .ttl(SLIP_TTL);
    next.slip = None;
    let minted = app.minter.mint(by, next).map_err(Problem::internal)?;
    Ok(Receipt {
        step: step.to_owned(),
        by,
        at: minted.claims.iat,
        result,
        receipt: minted.token,
    })
}

/// Checks a slip from the token alone, for conversation `cid`: the
/// requestor's signature over the terms, then every receipt — each signed
/// by the participant the itinerary names for its step, over its result.
pub async fn verify(app: &App, cid: ConversationId, slip: &Slip) -> Result<(), Problem> {
    let tampered = |detail: String| Problem::new(types::TAMPERED_SLIP, detail).in_conversation(cid);
    let req = app
        .trust
        .verify(&slip.req, Expect::step(Basket, INSPECT).from(&[Basket]))
        .await
        .map_err(|e| tampered(format!("The requestor's signature does not hold: {e}.")))?;
    if req.cid != cid {
        return Err(tampered(
            "The requestor signed another conversation's slip.".into(),
        ));
    }
    if req.st["terms"].as_str() != Some(digest(&slip.terms)?.as_str()) {
        return Err(tampered(
            "The itinerary (or the order, or the reply-to) is not what the requestor signed."
                .into(),
        ));
    }
    let itinerary = &slip.terms.itinerary;
    if slip.done.len() != slip.cur || slip.cur > itinerary.len() {
        return Err(tampered(
            "The slip's cursor does not match its receipts.".into(),
        ));
    }
    for (stop, receipt) in itinerary.iter().zip(&slip.done) {
        check(app, cid, receipt, stop.step.name(), stop.by).await?;
    }
    let owed = if slip.fault.is_some() {
        slip.compensations()
    } else {
        Vec::new()
    };
    let made = owed
        .get(..slip.undone.len())
        .ok_or_else(|| tampered("The slip records compensations nobody owed.".into()))?;
    if made
        .iter()
        .zip(&slip.undone)
        .any(|((name, _), undone)| name != undone)
    {
        return Err(tampered(
            "The slip's compensations are not the ones owed, in reverse order.".into(),
        ));
    }
    for (i, receipt) in slip.done.iter().enumerate() {
        let undone = made.iter().find(|(_, j)| *j == i).map(|(name, _)| *name);
        if receipt.result["undone"]["step"].as_str() != undone {
            return Err(tampered(format!(
                "{}'s receipt does not show the compensation the slip records.",
                receipt.by
            )));
        }
    }
    if let Some(fault) = &slip.fault {
        let stop = itinerary
            .get(slip.cur)
            .ok_or_else(|| tampered("A fault past the end of the itinerary.".into()))?;
        check(app, cid, fault, stop.step.name(), stop.by).await?;
    }
    Ok(())
}

/// One receipt: for `step`, signed by `by`, over this result, in `cid`.
async fn check(
    app: &App,
    cid: ConversationId,
    receipt: &Receipt,
    step: &str,
    by: Participant,
) -> Result<(), Problem> {
    let tampered = |detail: String| Problem::new(types::TAMPERED_SLIP, detail).in_conversation(cid);
    if receipt.step != step || receipt.by != by {
        return Err(tampered(format!(
            "The receipt for {step} is not {by}'s receipt for it."
        )));
    }
    let claims = app
        .trust
        .verify(&receipt.receipt, Expect::step(Basket, INSPECT).from(&[by]))
        .await
        .map_err(|e| tampered(format!("{by}'s receipt for {step} does not hold: {e}.")))?;
    let signed = json!({ "step": step, "res": digest(&receipt.result)? });
    if claims.cid != cid || claims.st != signed || claims.iat != receipt.at {
        return Err(tampered(format!(
            "The result of {step} is not what {by} signed."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slip(steps: &[Step], done: usize) -> Slip {
        let stop = |step: Step| Stop {
            step,
            by: step.by(),
            url: String::new(),
            undo: step.undo().map(str::to_owned),
        };
        let receipt = |step: &str, by| Receipt {
            step: step.into(),
            by,
            at: 0,
            result: Value::Null,
            receipt: String::new(),
        };
        Slip {
            req: String::new(),
            terms: Terms {
                itinerary: steps.iter().copied().map(stop).collect(),
                items: vec![],
                address: None,
                reply_to: None,
            },
            cur: done,
            done: steps[..done]
                .iter()
                .map(|s| receipt(s.name(), s.by()))
                .collect(),
            fault: (done < steps.len()).then(|| receipt(steps[done].name(), steps[done].by())),
            undone: vec![],
        }
    }

    #[test]
    fn compensations_run_in_reverse_and_skip_steps_without_effect() {
        use Step::*;
        let mut s = slip(&[Price, TakePayment, RaiseOrder, ValidateAddress], 3);
        assert_eq!(s.compensations(), [(CANCEL_ORDER, 2), (REFUND_PAYMENT, 1)]);
        assert_eq!(s.status(), Status::Compensating);
        assert_eq!(
            s.previous_holder(),
            Stores,
            "the failed step holds the slip"
        );
        s.undone.push(CANCEL_ORDER.into());
        assert_eq!(s.next_compensation().unwrap().0, REFUND_PAYMENT);
        assert_eq!(s.previous_holder(), Orders);
    }

    #[test]
    fn a_slip_without_a_fault_owes_nothing() {
        use Step::*;
        let s = slip(&[Price, TakePayment], 2);
        assert!(s.next_compensation().is_none());
        assert_eq!(s.status(), Status::Completed);
        assert_eq!(slip(&[Price, TakePayment], 1).status(), Status::Faulted);
    }
}
