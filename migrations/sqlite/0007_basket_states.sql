-- conversant, SQLite: the stateful basket (`--basket-state store`). The lines
-- of each basket kept in the store live here, keyed by conversation id; its
-- tokens carry only the version they were minted at, and every change is a
-- compare-and-set on `version`, so a stale link cannot overwrite newer state.
-- WITHOUT ROWID: one b-tree keyed by the conversation id, no second index.
-- Rows expire with the last token that could use them; expired rows are
-- purged by a full scan now and then, so updates keep one b-tree to write.
CREATE TABLE basket_states (
    conversation_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
