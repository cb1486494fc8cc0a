//! Orders: the durable effect of "raise order" (In-Only, Robust In-Only).
//!
//! A conversation has at most one order, whatever raised it (the checkout's
//! turn, a routing slip, a retry): the unique index
//! `orders_one_per_conversation` (migration 0011).
//!
//! A paid basket is sent to orders fire-and-forget. Placing the order is a
//! durable step: in one transaction orders claims the message in the inbox,
//! inserts the order here (placed, or rejected with a reason) and enqueues
//! what must follow in the outbox — `order.placed` for subscribers, or a fault
//! to the basket's fault-to address so that the payment is refunded. A later
//! cancellation changes the status, once: [`Tx::cancel_placed_order`] moves
//! only a placed order, so exactly one of several cancellations racing for
//! the same order publishes `order.cancelled`.

use serde_json::Value;

use super::{Conn, Store, StoreError, Tx};

text_enum! {
    /// Where an order stands.
    pub enum OrderStatus {
        /// Accepted; subscribers hear `order.placed`.
        Placed = "placed",
        /// Could not be placed (Robust In-Only: a fault goes back, the payment is refunded).
        Rejected = "rejected",
        /// Withdrawn after it was placed.
        Cancelled = "cancelled",
    }
}

/// An order as orders keeps it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: String,
    pub conversation_id: String,
    /// The store the goods come from.
    pub store: String,
    /// The ordered lines, as priced by pricing.
    pub items: Value,
    /// In minor units of `currency` (cents).
    pub total: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The payment that paid for it (refunded if the order is rejected).
    pub payment_id: String,
    pub status: OrderStatus,
    /// Why the order was rejected or cancelled.
    pub reason: Option<String>,
    pub created_at: i64,
}

impl Store {
    /// Records a new order; `Conflict` if its id exists.
    pub async fn insert_order(&self, order: &Order) -> Result<(), StoreError> {
        insert(self.writer().await?.as_conn(), order).await
    }

    /// One order by id.
    pub async fn get_order(&self, id: &str) -> Result<Order, StoreError> {
        const SQL: &str = "SELECT id, conversation_id, store, items, total, currency, payment_id, \
             status, reason, created_at FROM orders WHERE id = $1";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(id).fetch_one(&mut *c).await?
        }))
    }

    /// [`Tx::order_of_conversation`], outside a transaction.
    pub async fn order_of_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<Order>, StoreError> {
        order_of(self.reader().await?.as_conn(), conversation_id).await
    }

    /// Moves an order to `status`, recording `reason`; `NotFound` if absent.
    pub async fn set_order_status(
        &self,
        id: &str,
        status: OrderStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        set_status(self.writer().await?.as_conn(), id, status, reason).await
    }
}

impl Tx {
    /// [`Store::insert_order`] inside this transaction.
    pub async fn insert_order(&mut self, order: &Order) -> Result<(), StoreError> {
        insert(self.conn(), order).await
    }

    /// The order of conversation `conversation_id`, if one was raised: a
    /// conversation has at most one (the unique index
    /// `orders_one_per_conversation`).
    pub async fn order_of_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<Order>, StoreError> {
        order_of(self.conn(), conversation_id).await
    }

    /// [`Store::set_order_status`] inside this transaction.
    pub async fn set_order_status(
        &mut self,
        id: &str,
        status: OrderStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        set_status(self.conn(), id, status, reason).await
    }

    /// Cancels the order if it is placed, recording `reason`: `true` if this
    /// call cancelled it, `false` if it was not placed (already cancelled,
    /// rejected, or absent), and nothing was written.
    pub async fn cancel_placed_order(
        &mut self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE orders SET status = $2, reason = $3 WHERE id = $1 AND status = $4";
        let done = on_conn!(self.conn(), c => {
            sqlx::query(SQL)
                .bind(id)
                .bind(OrderStatus::Cancelled)
                .bind(reason)
                .bind(OrderStatus::Placed)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}

async fn insert(conn: Conn<'_>, o: &Order) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO orders (id, conversation_id, store, items, total, currency, \
         payment_id, status, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&o.id)
            .bind(&o.conversation_id)
            .bind(&o.store)
            .bind(&o.items)
            .bind(o.total)
            .bind(&o.currency)
            .bind(&o.payment_id)
            .bind(o.status)
            .bind(&o.reason)
            .bind(o.created_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

async fn order_of(conn: Conn<'_>, conversation_id: &str) -> Result<Option<Order>, StoreError> {
    const SQL: &str = "SELECT id, conversation_id, store, items, total, currency, payment_id, \
         status, reason, created_at FROM orders WHERE conversation_id = $1";
    Ok(on_conn!(conn, c => {
        sqlx::query_as(SQL).bind(conversation_id).fetch_optional(&mut *c).await?
    }))
}

async fn set_status(
    conn: Conn<'_>,
    id: &str,
    status: OrderStatus,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE orders SET status = $2, reason = $3 WHERE id = $1";
    let done = on_conn!(conn, c => {
        sqlx::query(SQL).bind(id).bind(status).bind(reason).execute(&mut *c).await?.rows_affected()
    });
    super::one_row(done)
}
