//! The work of each step and of each compensation: what a participant does
//! when the slip reaches it, inside the transaction that also claims the
//! message and forwards the slip.
//!
//! Each step reads what it needs from the slip: the requestor's terms, and
//! the results of earlier steps, whose receipts were checked before it ran.
//! A step's failure is a problem document, recorded on the slip as the fault
//! that turns it back to compensate.

use serde_json::{Value, json};

use super::slip::{Address, CANCEL_ORDER, Line, REFUND_PAYMENT, Slip, Step};
use crate::app::App;
use crate::conversation::Claims;
use crate::fault::{self, Problem, types};
use crate::participant::Participant::Orders;
use crate::participants::menu;
use crate::participants::orders::{self, ORDER_PLACED, events};
use crate::participants::payments::PaymentAck;
use crate::participants::payments::cards::{self, Outcome};
use crate::participants::pricing;
use crate::store::{Order, OrderStatus, PaymentStatus, Tx, now_ms};

/// Does `step` for the slip: its result, or the problem that faults the slip.
pub async fn perform(
    app: &App,
    tx: &mut Tx,
    step: Step,
    claims: &Claims,
    slip: &Slip,
    card: Option<&str>,
) -> Result<Value, Problem> {
    match step {
        Step::ValidateAddress => validate_address(&slip.terms.items, slip.terms.address),
        Step::Price => price(&slip.terms.items),
        Step::TakePayment => take_payment(app, tx, claims, slip, card).await,
        Step::RaiseOrder => raise_order(app, tx, claims, slip).await,
        Step::Notify => Ok(json!({ "receipts_checked": slip.done.len() })),
    }
}

/// Undoes a completed step (`refund-payment`, `cancel-order`). `claims`:
/// the message that brought the compensation here, which a cancelled
/// order's `order.cancelled` follows in the conversation.
pub async fn compensate(
    app: &App,
    tx: &mut Tx,
    claims: &Claims,
    name: &str,
    slip: &Slip,
) -> Result<Value, Problem> {
    let failed = slip
        .fault
        .as_ref()
        .map(|f| format!("routing slip: {} failed", f.step))
        .unwrap_or_default();
    match name {
        REFUND_PAYMENT => {
            let ack: PaymentAck = slip.result_of(Step::TakePayment)?;
            let payment = app
                .store
                .get_payment(&ack.payment_id)
                .await
                .map_err(|e| fault::from_store(e, "payment"))?;
            tx.refund_captured_payment(&payment.id, Some(&failed))
                .await
                .map_err(Problem::internal)?;
            Ok(
                json!({ "payment_id": payment.id, "amount": payment.amount, "status": PaymentStatus::Refunded }),
            )
        }
        CANCEL_ORDER => {
            let order_id = slip.result_of::<Value>(Step::RaiseOrder)?["order_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Problem::internal("raise-order's result has no order id"))?;
            let order = app
                .store
                .get_order(&order_id)
                .await
                .map_err(|e| fault::from_store(e, "order"))?;
            // Orders' own rule: only a placed order is cancelled, and only
            // the cancellation that moves it announces `order.cancelled`
            // (so the order's delivery stops; the slip refunds the payment).
            if tx
                .cancel_placed_order(&order_id, Some(&failed))
                .await
                .map_err(Problem::internal)?
            {
                events::publish_cancelled(app, tx, claims, &order, &failed).await?;
            }
            Ok(json!({ "order_id": order_id, "status": OrderStatus::Cancelled }))
        }
        other => Err(Problem::internal(format!("no compensation {other}"))),
    }
}

/// The stores the items come from, in order of first appearance.
fn stores_of(items: &[Line]) -> Result<Vec<&'static menu::Store>, Problem> {
    let mut stores: Vec<&'static menu::Store> = Vec::new();
    for line in items {
        let item = menu::item_by_sku(&line.sku).ok_or_else(|| {
            Problem::new(
                types::UNKNOWN_SKU,
                format!("`{}` is not on the menu.", line.sku),
            )
        })?;
        let store = menu::store(item.store)
            .ok_or_else(|| Problem::internal(format!("no store {}", item.store)))?;
        if !stores.iter().any(|s| s.id == store.id) {
            stores.push(store);
        }
    }
    Ok(stores)
}

/// Stores: every store of the items is open and delivers to the address
/// (orders' own rule, [`orders::serves`]).
fn validate_address(items: &[Line], address: Option<Address>) -> Result<Value, Problem> {
    let address = address
        .ok_or_else(|| Problem::new(types::INVALID_BODY, "validate-address needs an address."))?;
    let stores = stores_of(items)?;
    let mut farthest: f64 = 0.0;
    for store in &stores {
        farthest = farthest.max(orders::serves(store, Some((address.lat, address.lon)))?);
    }
    let ids: Vec<&str> = stores.iter().map(|s| s.id).collect();
    Ok(json!({ "stores": ids, "km": (farthest * 10.0).round() / 10.0 }))
}

/// Pricing: pricing's own rule ([`pricing::price_lines`]). The slip keeps the
/// summary: the lines are the requestor's, and every byte of a result rides
/// in every later hop.
fn price(items: &[Line]) -> Result<Value, Problem> {
    let quote = pricing::price_lines(items.iter().map(|l| (l.sku.as_str(), l.qty)))?;
    serde_json::to_value(Priced {
        total: quote.total,
        delivery_fee: quote.delivery_fee,
        currency: quote.currency,
    })
    .map_err(Problem::internal)
}

/// The result of `price`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Priced {
    total: i64,
    delivery_fee: i64,
    currency: String,
}

/// Payments: charges the priced total to the payment-method reference in
/// the message body. The attempt is recorded (captured or declined) with the
/// slip's other effects; only the last four digits are kept.
async fn take_payment(
    app: &crate::app::App,
    tx: &mut Tx,
    claims: &Claims,
    slip: &Slip,
    card: Option<&str>,
) -> Result<Value, Problem> {
    let quote: Priced = slip.result_of(Step::Price)?;
    let method = card.ok_or_else(|| {
        Problem::new(
            types::INVALID_CARD,
            "No payment method came with the message.",
        )
    })?;
    let card = crate::participants::payments::methods::resolve(app, method).await?;
    // One payment that takes money per slip (its conversation).
    if let Some(paid) = tx
        .capture_of_conversation(&claims.cid.to_string())
        .await
        .map_err(Problem::internal)?
    {
        return Ok(json!(PaymentAck {
            payment_id: paid.id,
            amount: paid.amount,
            currency: paid.currency,
            last4: paid.last4.unwrap_or_default(),
            status: paid.status,
        }));
    }
    if card.outcome == Outcome::ProcessorUnavailable {
        return Err(Problem::new(
            types::PROCESSOR_UNAVAILABLE,
            "The card processor is unavailable.",
        ));
    }
    let (payment, answer) =
        cards::charge(&card, &claims.cid.to_string(), quote.total, &quote.currency);
    tx.insert_payment(&payment)
        .await
        .map_err(Problem::internal)?;
    let ack = answer.map_err(|fault| fault.with("payment_id", &payment.id))?;
    serde_json::to_value(ack).map_err(Problem::internal)
}

/// Orders: places the paid order if every store is open, and publishes
/// `order.placed` with it. Whether the address is in reach is the
/// `validate-address` step's question, asked only if the requestor chose it.
async fn raise_order(
    app: &App,
    tx: &mut Tx,
    claims: &Claims,
    slip: &Slip,
) -> Result<Value, Problem> {
    let quote: Priced = slip.result_of(Step::Price)?;
    let payment: PaymentAck = slip.result_of(Step::TakePayment)?;
    // One order per slip (its conversation), however its hop arrives.
    if let Some(placed) = tx
        .order_of_conversation(&claims.cid.to_string())
        .await
        .map_err(Problem::internal)?
    {
        return Ok(json!({ "order_id": placed.id, "status": placed.status }));
    }
    let stores = stores_of(&slip.terms.items)?;
    for store in &stores {
        orders::serves(store, None)?;
    }
    let subscribers = app
        .store
        .subscriptions_active_for(Orders.as_str(), ORDER_PLACED)
        .await
        .map_err(Problem::internal)?;
    let ids: Vec<&str> = stores.iter().map(|s| s.id).collect();
    let order = Order {
        id: uuid::Uuid::now_v7().to_string(),
        conversation_id: claims.cid.to_string(),
        store: ids.join(","),
        items: serde_json::to_value(&slip.terms.items).map_err(Problem::internal)?,
        total: quote.total,
        currency: quote.currency.clone(),
        payment_id: payment.payment_id.clone(),
        status: OrderStatus::Placed,
        reason: None,
        created_at: now_ms(),
    };
    tx.insert_order(&order).await.map_err(Problem::internal)?;
    let mut data = json!({
        "order_id": order.id,
        "conversation": order.conversation_id,
        "total": order.total,
        "currency": order.currency,
        "stores": ids,
        "payment_id": order.payment_id,
    });
    if let Some(address) = slip.terms.address {
        data["address"] = json!({ "lat": address.lat, "lon": address.lon });
    }
    events::publish(app, tx, ORDER_PLACED, claims, data, &subscribers).await?;
    Ok(json!({ "order_id": order.id, "status": OrderStatus::Placed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, qty: i64) -> Line {
        Line {
            sku: sku.into(),
            qty,
        }
    }

    #[test]
    fn prices_like_pricing_does() {
        let quote: Priced = serde_json::from_value(
            price(&[
                line("margherita", 2),
                line("tiramisu", 1),
                line("miso-soup", 1),
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(quote.delivery_fee, 250 + 350);
        assert_eq!(quote.total, 2 * 950 + 550 + 390 + 600);
    }

    #[test]
    fn an_address_is_valid_within_reach_of_open_stores_only() {
        let near = Address {
            lat: 52.52,
            lon: 13.41,
        };
        let ok = validate_address(&[line("margherita", 1)], Some(near)).unwrap();
        assert_eq!(ok["stores"], json!(["luigis"]));
        let paris = Address {
            lat: 48.8566,
            lon: 2.3522,
        };
        let far = validate_address(&[line("margherita", 1)], Some(paris)).unwrap_err();
        assert_eq!(far.kind(), types::OUTSIDE_DELIVERY_AREA);
        let closed = validate_address(&[line("pancakes", 1)], Some(near)).unwrap_err();
        assert_eq!(closed.kind(), types::STORE_CLOSED);
    }
}
