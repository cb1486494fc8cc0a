//! Payments: the durable effect of "take payment" (In-Out command-acknowledgement).
//!
//! Pricing asks payments to take a payment and gets an acknowledgement — or,
//! in Robust In-Out, a fault *instead of* the reply (declined card, insufficient
//! funds, provider outage) with repair links. Either way the attempt is recorded
//! here in the same transaction as its inbox claim, so an In-Out-Retry with the
//! same message id, or a replayed link, never charges twice. A rejected order
//! later flips a captured payment to refunded.
//!
//! Once means once, whatever branch of a conversation a client takes: a
//! conversation has at most one payment that took money (the unique index
//! `payments_one_capture`, migration 0011), so of two branches paying at the
//! same moment one commits and the other finds the capture. A declined
//! attempt took nothing and does not count. A refunded payment still counts:
//! the conversation ended with its refund, and a new purchase is a new
//! checkout.
//!
//! Only the last four digits of a card are ever stored (DESIGN §3: state holds
//! no secrets, and neither does the database).

use super::{Conn, Store, StoreError, Tx};

text_enum! {
    /// The outcome of a payment attempt and what happened to it since.
    pub enum PaymentStatus {
        /// The money was taken.
        Captured = "captured",
        /// The provider refused; `reason` says why (Fault Replaces Message).
        Declined = "declined",
        /// Given back, e.g. after orders rejected the order (Robust In-Only repair).
        Refunded = "refunded",
    }
}

/// A payment attempt as payments keeps it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub id: String,
    pub conversation_id: String,
    /// In minor units of `currency` (cents).
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Last four digits of the card, when paid by card.
    pub last4: Option<String>,
    pub status: PaymentStatus,
    /// Why it was declined or refunded, e.g. `insufficient_funds`.
    pub reason: Option<String>,
    pub created_at: i64,
    /// The order it pays for, when the payer named it (the checkout does).
    pub order_id: Option<String>,
}

impl Store {
    /// Records a payment attempt; `Conflict` if its id exists.
    pub async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        insert(self.writer().await?.as_conn(), payment).await
    }

    /// One payment by id.
    pub async fn get_payment(&self, id: &str) -> Result<Payment, StoreError> {
        const SQL: &str = "SELECT id, conversation_id, amount, currency, last4, status, reason, \
             created_at, order_id FROM payments WHERE id = $1";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(id).fetch_one(&mut *c).await?
        }))
    }

    /// The payments of a conversation, oldest first.
    pub async fn payments_for_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Payment>, StoreError> {
        const SQL: &str = "SELECT id, conversation_id, amount, currency, last4, status, reason, \
             created_at, order_id FROM payments WHERE conversation_id = $1 ORDER BY created_at, id";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(conversation_id).fetch_all(&mut *c).await?
        }))
    }

    /// [`Tx::capture_of_conversation`], outside a transaction.
    pub async fn capture_of_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<Payment>, StoreError> {
        capture_of(self.reader().await?.as_conn(), conversation_id).await
    }

    /// Moves a payment to `status`, recording `reason`; `NotFound` if absent.
    pub async fn set_payment_status(
        &self,
        id: &str,
        status: PaymentStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        set_status(self.writer().await?.as_conn(), id, status, reason).await
    }
}

impl Tx {
    /// [`Store::insert_payment`] inside this transaction.
    pub async fn insert_payment(&mut self, payment: &Payment) -> Result<(), StoreError> {
        insert(self.conn(), payment).await
    }

    /// The payment of conversation `conversation_id` that took money
    /// (captured, or refunded since), if any: a conversation has at most one
    /// (the unique index `payments_one_capture`).
    pub async fn capture_of_conversation(
        &mut self,
        conversation_id: &str,
    ) -> Result<Option<Payment>, StoreError> {
        capture_of(self.conn(), conversation_id).await
    }

    /// Refunds the payment if it is captured: `true` if this call refunded
    /// it, `false` if it was not captured (refunded already, declined, or
    /// absent), and nothing was written. Of several refunds racing for one
    /// payment, exactly one moves it.
    pub async fn refund_captured_payment(
        &mut self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE payments SET status = $2, reason = $3 WHERE id = $1 AND status = $4";
        let done = on_conn!(self.conn(), c => {
            sqlx::query(SQL)
                .bind(id)
                .bind(PaymentStatus::Refunded)
                .bind(reason)
                .bind(PaymentStatus::Captured)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}

async fn insert(conn: Conn<'_>, p: &Payment) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO payments (id, conversation_id, amount, currency, last4, status, \
         reason, created_at, order_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&p.id)
            .bind(&p.conversation_id)
            .bind(p.amount)
            .bind(&p.currency)
            .bind(&p.last4)
            .bind(p.status)
            .bind(&p.reason)
            .bind(p.created_at)
            .bind(&p.order_id)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

async fn capture_of(conn: Conn<'_>, conversation_id: &str) -> Result<Option<Payment>, StoreError> {
    const SQL: &str = "SELECT id, conversation_id, amount, currency, last4, status, reason, \
         created_at, order_id FROM payments WHERE conversation_id = $1 AND status <> $2";
    Ok(on_conn!(conn, c => {
        sqlx::query_as(SQL)
            .bind(conversation_id)
            .bind(PaymentStatus::Declined)
            .fetch_optional(&mut *c)
            .await?
    }))
}

async fn set_status(
    conn: Conn<'_>,
    id: &str,
    status: PaymentStatus,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE payments SET status = $2, reason = $3 WHERE id = $1";
    let done = on_conn!(conn, c => {
        sqlx::query(SQL).bind(id).bind(status).bind(reason).execute(&mut *c).await?.rows_affected()
    });
    super::one_row(done)
}
