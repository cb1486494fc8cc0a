//! Where a basket is kept between turns: in its token, or in the store.
//!
//! The stateless basket (`--basket-state token`, the default) keeps its lines
//! in the `st` claim of the token every answer carries: a turn verifies,
//! changes and signs, and stores nothing. Its stateful twin (`--basket-state
//! store`) keeps the lines in basket's store under the conversation id, and
//! the token carries only `{"version": n}`, the version it was minted at. A
//! turn then reads the row, changes it, and writes it back with a
//! compare-and-set on that version: a link minted before a newer change is
//! refused with 409 (`stale-basket`) instead of overwriting the newer state,
//! where the stateless basket would let the older link branch the
//! conversation. The token is still verified and signed on every turn, so the
//! two differ only in where the state lives; `conversant bench --scenario
//! turn-stateful` measures the difference.
//!
//! `--basket-state` decides where a *new* basket is kept; afterwards each
//! token says where its basket is (it is signed, so a client cannot move it),
//! and baskets minted in the other mode, such as the catalog's examples, go
//! on working. A kept basket expires with the last token that could use it;
//! [`crate::housekeeping`] deletes it then.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{BasketState, START};
use crate::app::App;
use crate::config::BasketStorage;
use crate::conversation::token::Minted;
use crate::conversation::{Claims, Next, Pattern};
use crate::fault::{Problem, types};
use crate::participant::Participant::Basket;
use crate::store::{StoreError, now_ms};

/// Where the basket a token stands for is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// In the token itself.
    InToken,
    /// In the store: the row is at `version`, the token was minted at `minted_at`.
    InStore { version: i64, minted_at: i64 },
}

impl Kept {
    /// Whether the basket changed after the token was minted.
    pub fn is_stale(self) -> bool {
        matches!(self, Kept::InStore { version, minted_at } if version != minted_at)
    }
}

/// Starts a basket where `--basket-state` says, and mints its first token.
pub async fn start(app: &App, basket: &BasketState) -> Result<Minted, Problem> {
    let next = Next::start(Pattern::TurnTaking, START);
    let st = match app.config.basket_state {
        BasketStorage::Token => serde_json::to_value(basket).map_err(Problem::internal)?,
        BasketStorage::Store => {
            let state = serde_json::to_value(basket).map_err(Problem::internal)?;
            app.store
                .basket_create(&next.cid.to_string(), &state, expires_at(app))
                .await
                .map_err(Problem::internal)?;
            json!({ "version": 0 })
        }
    };
    mint(app, next, basket, st)
}

/// The basket a verified token stands for, and where it is kept.
pub async fn load(app: &App, claims: &Claims) -> Result<(BasketState, Kept), Problem> {
    let Some(minted_at) = claims.st.get("version").and_then(Value::as_i64) else {
        let basket = BasketState::deserialize(&claims.st)
            .map_err(|e| Problem::internal(format!("basket state: {e}")))?;
        return Ok((basket, Kept::InToken));
    };
    let row = app
        .store
        .basket_get(&claims.cid.to_string())
        .await
        .map_err(gone_or_internal)?;
    let basket = BasketState::deserialize(&row.state)
        .map_err(|e| Problem::internal(format!("stored basket: {e}")))?;
    Ok((
        basket,
        Kept::InStore {
            version: row.version,
            minted_at,
        },
    ))
}

/// [`load`], refusing a token older than its basket: the basket to change.
pub async fn load_current(app: &App, claims: &Claims) -> Result<(BasketState, Kept), Problem> {
    let (basket, kept) = load(app, claims).await?;
    if kept.is_stale() {
        return Err(stale());
    }
    Ok((basket, kept))
}

/// Keeps the basket as changed by `step` and mints the token of the answer.
pub async fn save(
    app: &App,
    claims: &Claims,
    step: &str,
    basket: &BasketState,
    kept: Kept,
) -> Result<Minted, Problem> {
    let state = serde_json::to_value(basket).map_err(Problem::internal)?;
    let st = match kept {
        Kept::InToken => state,
        Kept::InStore { version, .. } => {
            let version = app
                .store
                .basket_replace(&claims.cid.to_string(), version, &state, expires_at(app))
                .await
                .map_err(|e| match e {
                    StoreError::Conflict => stale(),
                    other => gone_or_internal(other),
                })?;
            json!({ "version": version })
        }
    };
    mint(app, Next::after(claims, step), basket, st)
}

/// A fresh token for the basket as it is now, for a reader whose token is
/// older than its basket (whose links would all be refused as stale).
pub fn refresh(
    app: &App,
    claims: &Claims,
    step: &str,
    basket: &BasketState,
    kept: Kept,
) -> Result<Minted, Problem> {
    let Kept::InStore { version, .. } = kept else {
        return Err(Problem::internal("only a stored basket is refreshed"));
    };
    mint(
        app,
        Next::after(claims, step),
        basket,
        json!({ "version": version }),
    )
}

fn mint(app: &App, next: Next, basket: &BasketState, st: Value) -> Result<Minted, Problem> {
    app.mint(Basket, next.to(&[Basket]).allow(basket.steps()).state(st))
}

/// A kept basket lives as long as the last token that could use it.
fn expires_at(app: &App) -> i64 {
    now_ms() + i64::try_from(app.minter.ttl().as_millis()).unwrap_or(i64::MAX)
}

fn stale() -> Problem {
    Problem::new(
        types::STALE_BASKET,
        "The basket has changed since this link was issued; follow `basket` for the basket as it is now.",
    )
}

fn gone_or_internal(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound => Problem::new(
            types::BASKET_EXPIRED,
            "This basket is no longer kept; start a new checkout.",
        ),
        other => Problem::internal(other),
    }
}
