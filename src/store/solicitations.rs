//! Solicitation replies: what the provider heard back (Out-In, solicit-response).
//!
//! Deliveries asks every courier it tracks "available to take work?" and
//! correlates the replies that arrive before the solicitation's deadline.
//! The replies may reach any instance of deliveries while the one that sent
//! the solicitation waits, so they meet here, keyed by solicitation and
//! courier. A courier answers once: a repeated reply (a relay retrying a
//! delivery it could not confirm) changes nothing, the first one wins.
//! Late replies never get here; deliveries refuses them before they are
//! recorded.

use super::{Conn, Store, StoreError, Tx};

/// One courier's answer to one solicitation.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct SolicitationReply {
    pub solicitation_id: String,
    pub courier_id: String,
    /// Whether the courier can take the work.
    pub available: bool,
    /// How soon it could be at the pickup, when available.
    pub eta_minutes: Option<i64>,
    /// Why the courier declines, in its words.
    pub reason: Option<String>,
    /// When deliveries took the reply, unix milliseconds.
    pub received_at: i64,
}

impl Store {
    /// Records a reply; `false` (and nothing changes) when this courier has
    /// already answered this solicitation.
    pub async fn solicitation_reply_record(
        &self,
        reply: &SolicitationReply,
    ) -> Result<bool, StoreError> {
        record(self.writer().await?.as_conn(), reply).await
    }

    /// Every reply to a solicitation, in the order they were taken.
    pub async fn solicitation_replies(
        &self,
        solicitation_id: &str,
    ) -> Result<Vec<SolicitationReply>, StoreError> {
        const SQL: &str = "SELECT solicitation_id, courier_id, available, eta_minutes, \
             reason, received_at FROM solicitation_replies WHERE solicitation_id = $1 \
             ORDER BY received_at, courier_id";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(solicitation_id).fetch_all(&mut *c).await?
        }))
    }
}

impl Tx {
    /// [`Store::solicitation_reply_record`] inside this transaction.
    pub async fn solicitation_reply_record(
        &mut self,
        reply: &SolicitationReply,
    ) -> Result<bool, StoreError> {
        record(self.conn(), reply).await
    }
}

async fn record(conn: Conn<'_>, r: &SolicitationReply) -> Result<bool, StoreError> {
    const SQL: &str = "INSERT INTO solicitation_replies (solicitation_id, courier_id, available, \
         eta_minutes, reason, received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
    let rows = on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(&r.solicitation_id)
            .bind(&r.courier_id)
            .bind(r.available)
            .bind(r.eta_minutes)
            .bind(&r.reason)
            .bind(r.received_at)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(rows == 1)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::super::testing::TempPostgres;
    use super::*;

    fn reply(solicitation: &str, courier: &str, available: bool, at: i64) -> SolicitationReply {
        SolicitationReply {
            solicitation_id: solicitation.into(),
            courier_id: courier.into(),
            available,
            eta_minutes: available.then_some(7),
            reason: (!available).then(|| "too busy".to_owned()),
            received_at: at,
        }
    }

    async fn replies_are_correlated_once_per_courier(store: Store) {
        assert!(
            store
                .solicitation_reply_record(&reply("sol_1", "ben", false, 20))
                .await
                .unwrap()
        );
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.solicitation_reply_record(&reply("sol_1", "anna", true, 10))
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        assert!(
            !store
                .solicitation_reply_record(&reply("sol_1", "anna", false, 30))
                .await
                .unwrap(),
            "a second answer from the same courier changes nothing"
        );
        store
            .solicitation_reply_record(&reply("sol_2", "anna", true, 5))
            .await
            .unwrap();
        let replies = store.solicitation_replies("sol_1").await.unwrap();
        assert_eq!(
            replies,
            vec![
                reply("sol_1", "anna", true, 10),
                reply("sol_1", "ben", false, 20)
            ]
        );
        assert!(
            store
                .solicitation_replies("sol_9")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn sqlite_replies_are_correlated_once_per_courier() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        replies_are_correlated_once_per_courier(store).await;
    }

    #[tokio::test]
    async fn postgres_replies_are_correlated_once_per_courier() {
        static CLUSTER: OnceLock<Option<TempPostgres>> = OnceLock::new();
        let Some(cluster) = CLUSTER.get_or_init(TempPostgres::start).as_ref() else {
            return;
        };
        let store = Store::connect(&cluster.new_database().await).await.unwrap();
        replies_are_correlated_once_per_courier(store).await;
    }
}
