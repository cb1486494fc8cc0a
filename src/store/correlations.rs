//! Correlations: the stateful requestor's memory.
//!
//! The default everywhere in conversant is the *stateless* requestor: its state
//! rides in the signed reply-to continuation, so nothing is stored. The talk
//! contrasts it with the *stateful* requestor, which keeps what it needs to
//! resume under a correlation id, sends only that id, and looks the state up
//! when the reply arrives. This table is that lookup, used by the stateful
//! variant of the In-Out exchange so the two can be compared side by side.
//!
//! Every entry expires: a reply that never comes must not leave state behind
//! forever. Expired entries are invisible to [`Store::correlation_get`] and
//! [`Store::correlation_take`], and [`Store::correlations_purge_expired`]
//! removes them.

use serde_json::Value;

use super::{Conn, Store, StoreError, Tx, now_ms};

/// State a requestor parked while it waits for a reply.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Correlation {
    /// The correlation id sent with the request and echoed by the reply.
    pub id: String,
    /// The requestor that parked the state.
    pub participant: String,
    pub conversation_id: String,
    pub state: Value,
    /// Unix milliseconds after which the entry no longer exists.
    pub expires_at: i64,
}

impl Store {
    /// Parks state under its correlation id; `Conflict` if the id is taken.
    pub async fn correlation_put(&self, correlation: &Correlation) -> Result<(), StoreError> {
        put(self.writer().await?.as_conn(), correlation).await
    }

    /// Looks up parked state without removing it; `NotFound` if absent or expired.
    pub async fn correlation_get(&self, id: &str) -> Result<Correlation, StoreError> {
        const SQL: &str = "SELECT id, participant, conversation_id, state, expires_at \
             FROM correlations WHERE id = $1 AND expires_at > $2";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(id).bind(now_ms()).fetch_one(&mut *c).await?
        }))
    }

    /// Removes and returns parked state, so a reply resumes it exactly once;
    /// `NotFound` if absent or expired.
    pub async fn correlation_take(&self, id: &str) -> Result<Correlation, StoreError> {
        take(self.writer().await?.as_conn(), id).await
    }

    /// Deletes every expired entry; returns how many.
    pub async fn correlations_purge_expired(&self) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM correlations WHERE expires_at <= $1";
        Ok(on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(now_ms()).execute(&mut *c).await?.rows_affected()
        }))
    }
}

impl Tx {
    /// [`Store::correlation_put`] inside this transaction.
    pub async fn correlation_put(&mut self, correlation: &Correlation) -> Result<(), StoreError> {
        put(self.conn(), correlation).await
    }

    /// [`Store::correlation_take`] inside this transaction: the state is gone
    /// only if the transaction commits.
    pub async fn correlation_take(&mut self, id: &str) -> Result<Correlation, StoreError> {
        take(self.conn(), id).await
    }
}

async fn put(conn: Conn<'_>, k: &Correlation) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO correlations (id, participant, conversation_id, state, \
         expires_at) VALUES ($1, $2, $3, $4, $5)";
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&k.id)
            .bind(&k.participant)
            .bind(&k.conversation_id)
            .bind(&k.state)
            .bind(k.expires_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

async fn take(conn: Conn<'_>, id: &str) -> Result<Correlation, StoreError> {
    const SQL: &str = "DELETE FROM correlations WHERE id = $1 AND expires_at > $2 \
         RETURNING id, participant, conversation_id, state, expires_at";
    Ok(on_conn!(conn, c => {
        sqlx::query_as(SQL).bind(id).bind(now_ms()).fetch_one(&mut *c).await?
    }))
}
