//! The journal: every message a participant sends or receives.
//!
//! "Activities know the messages they sent and received" is a pattern of its
//! own in the talk: no participant holds the whole conversation, yet each one
//! remembers its side of it, so `GET /conversations/{cid}` can rebuild the
//! conversation by merging the participants' journals in causal order
//! (`causation_id` links a message to the one that caused it, `chain` is the
//! token's hash chain at that message, so gaps and tampering show).
//!
//! Writes come from a background batcher off the request path (DESIGN §9), so
//! there is one batch append and no single-entry insert; a crash may lose the
//! last batch, which the chain digest reveals. `seq` exists only to keep
//! insertion order among entries with the same `at`.

use sqlx::QueryBuilder;

use super::{Conn, Store, StoreError};

text_enum! {
    /// What a journalled message is in its exchange.
    pub enum MessageKind {
        /// Asks the receiver to act (the "in" of In-Only and In-Out).
        Request = "request",
        /// Answers a request (the "out" of In-Out).
        Reply = "reply",
        /// Tells subscribers something happened (Out-Only).
        Event = "event",
        /// Replaces or follows a message when it could not be processed.
        Fault = "fault",
    }
}

/// One message as one participant saw it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    /// The participant whose journal this is.
    pub participant: String,
    pub conversation_id: String,
    pub message_id: String,
    /// The message that caused this one, if any.
    pub causation_id: Option<String>,
    pub from_participant: String,
    pub to_participant: String,
    /// The exchange or conversation pattern, by its name in the talk (e.g. `robust_in_out`).
    pub pattern: String,
    pub kind: MessageKind,
    /// The conversation step the message performs.
    pub step: String,
    /// The hash chain of the conversation-state token at this message.
    pub chain: String,
    /// What happened to the message here, e.g. `sent`, `received`, `failed`, or an HTTP status.
    pub status: String,
    /// When it was sent or received, unix milliseconds.
    pub at: i64,
}

/// Rows per INSERT: 12 parameters each stays well below both engines' limits.
const ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Appends a batch of entries in one transaction (for the journal batcher).
    pub async fn journal_append_batch(&self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            append_chunk(tx.conn(), chunk).await?;
        }
        tx.commit().await
    }

    /// One participant's side of a conversation, ordered by time then insertion.
    pub async fn journal_for_conversation(
        &self,
        participant: &str,
        conversation_id: &str,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        const SQL: &str = "SELECT participant, conversation_id, message_id, causation_id, \
             from_participant, to_participant, pattern, kind, step, chain, status, at \
             FROM journal WHERE participant = $1 AND conversation_id = $2 ORDER BY at, seq";
        Ok(on_conn!(self.reader().await?.as_conn(), c => {
            sqlx::query_as(SQL).bind(participant).bind(conversation_id).fetch_all(&mut *c).await?
        }))
    }
}

async fn append_chunk(conn: Conn<'_>, chunk: &[JournalEntry]) -> Result<(), StoreError> {
    const INSERT: &str = "INSERT INTO journal (participant, conversation_id, message_id, \
         causation_id, from_participant, to_participant, pattern, kind, step, chain, status, at) ";
    on_conn!(conn, c => {
        let mut insert = QueryBuilder::new(INSERT);
        insert.push_values(chunk, |mut row, e| {
            row.push_bind(&e.participant)
                .push_bind(&e.conversation_id)
                .push_bind(&e.message_id)
                .push_bind(&e.causation_id)
                .push_bind(&e.from_participant)
                .push_bind(&e.to_participant)
                .push_bind(&e.pattern)
                .push_bind(e.kind)
                .push_bind(&e.step)
                .push_bind(&e.chain)
                .push_bind(&e.status)
                .push_bind(e.at);
        });
        // Not a cached statement: its text differs with every batch size,
        // and caching one per size on every connection grew memory with load.
        insert.build().persistent(false).execute(&mut *c).await?;
    });
    Ok(())
}
