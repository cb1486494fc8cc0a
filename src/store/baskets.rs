//! Baskets kept in the store: the stateful twin of the stateless basket.
//!
//! By default a basket's lines ride in its token and nothing is stored. With
//! `--basket-state store` they live here instead, under the conversation id,
//! and the token carries only the version it was minted at. Every change is a
//! compare-and-set on that version ([`Store::basket_replace`]), so a link
//! minted before a newer change cannot overwrite it: optimistic concurrency,
//! where the stateless basket would simply branch.
//!
//! Rows expire with the last token that could still use them; expired rows
//! are invisible and [`Store::baskets_purge_expired`] removes them.

use serde_json::Value;

use super::{Store, StoreError, now_ms};

/// A basket kept in the store, at one version.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredBasket {
    pub conversation_id: String,
    /// 0 when the basket is started; every change adds one.
    pub version: i64,
    /// The basket's lines, as the stateless basket's token would carry them.
    pub state: Value,
    /// Unix milliseconds after which the row no longer exists.
    pub expires_at: i64,
}

impl Store {
    /// Keeps a new basket at version 0; `Conflict` if the conversation has one.
    pub async fn basket_create(
        &self,
        conversation_id: &str,
        state: &Value,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO basket_states (conversation_id, version, state, expires_at) \
             VALUES ($1, 0, $2, $3)";
        on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(conversation_id).bind(state).bind(expires_at)
                .execute(&mut *c).await?;
        });
        Ok(())
    }

    /// The basket of a conversation; `NotFound` if there is none or it expired.
    pub async fn basket_get(&self, conversation_id: &str) -> Result<StoredBasket, StoreError> {
        const SQL: &str = "SELECT conversation_id, version, state, expires_at FROM basket_states \
             WHERE conversation_id = $1 AND expires_at > $2";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(conversation_id).bind(now_ms()).fetch_one(&mut *c).await?
        }))
    }

    /// Replaces the basket's state if it is still at `version`, and returns
    /// its new version. `Conflict` when it has moved on since (the caller's
    /// link is stale: nothing is written), `NotFound` when it is gone.
    pub async fn basket_replace(
        &self,
        conversation_id: &str,
        version: i64,
        state: &Value,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "UPDATE basket_states SET version = version + 1, state = $1, \
             expires_at = $2 WHERE conversation_id = $3 AND version = $4 AND expires_at > $5 \
             RETURNING version";
        let mut conn = self.writer().await?;
        let replaced: Option<i64> = on_conn!(conn.as_conn(), c => {
            sqlx::query_scalar(SQL)
                .bind(state).bind(expires_at).bind(conversation_id).bind(version).bind(now_ms())
                .fetch_optional(&mut *c).await?
        });
        drop(conn);
        match replaced {
            Some(new_version) => Ok(new_version),
            None => match self.basket_get(conversation_id).await {
                Ok(_) => Err(StoreError::Conflict),
                Err(e) => Err(e),
            },
        }
    }

    /// Deletes every expired basket; returns how many.
    pub async fn baskets_purge_expired(&self) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM basket_states WHERE expires_at <= $1";
        Ok(on_conn!(self.writer().await?.as_conn(), c => {
            sqlx::query(SQL).bind(now_ms()).execute(&mut *c).await?.rows_affected()
        }))
    }
}
