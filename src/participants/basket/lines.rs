//! The basket's lines: what a basket holds and the rules of changing it.
//!
//! The same in both of the basket's modes: these are the values that ride in
//! the stateless basket's token, or that the stateful basket keeps in its
//! store (see `kept`).

use serde::{Deserialize, Serialize};

use super::{ADD_ITEM, CANCEL, CHECKOUT, REMOVE_ITEM, VIEW};
use crate::fault::{Problem, types};
use crate::participants::menu::item_by_sku;

/// The largest quantity of one item a basket holds.
pub const MAX_QUANTITY: i64 = 99;

/// The basket while it is open: the token's domain state, or the state the
/// store keeps for it (`--basket-state store`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BasketState {
    pub items: Vec<Line>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub qty: i64,
}

/// The input of `add-item`.
#[derive(Debug, Deserialize)]
pub struct AddItem {
    pub sku: String,
    #[serde(default = "one")]
    pub quantity: i64,
}

/// The input of `remove-item`: without a quantity the whole line goes.
#[derive(Debug, Deserialize)]
pub struct RemoveItem {
    pub sku: String,
    pub quantity: Option<i64>,
}

fn one() -> i64 {
    1
}

impl BasketState {
    /// The steps an open basket allows.
    pub fn steps(&self) -> &'static [&'static str] {
        if self.items.is_empty() {
            &[VIEW, ADD_ITEM, CANCEL]
        } else {
            &[VIEW, ADD_ITEM, REMOVE_ITEM, CHECKOUT, CANCEL]
        }
    }

    pub(super) fn add(&mut self, sku: &str, quantity: i64) -> Result<(), Problem> {
        check_quantity(quantity)?;
        if item_by_sku(sku).is_none() {
            return Err(Problem::new(
                types::UNKNOWN_SKU,
                format!("`{sku}` is not on the menu."),
            ));
        }
        match self.items.iter_mut().find(|l| l.sku == sku) {
            Some(line) if line.qty + quantity > MAX_QUANTITY => Err(Problem::new(
                types::INVALID_QUANTITY,
                format!(
                    "The basket would hold {} of `{sku}`; at most {MAX_QUANTITY} are allowed.",
                    line.qty + quantity
                ),
            )),
            Some(line) => {
                line.qty += quantity;
                Ok(())
            }
            None => {
                self.items.push(Line {
                    sku: sku.to_owned(),
                    qty: quantity,
                });
                Ok(())
            }
        }
    }

    pub(super) fn remove(&mut self, sku: &str, quantity: Option<i64>) -> Result<(), Problem> {
        if let Some(q) = quantity {
            check_quantity(q)?;
        }
        let Some(index) = self.items.iter().position(|l| l.sku == sku) else {
            return Err(Problem::new(
                types::NOT_IN_BASKET,
                format!("`{sku}` is not in the basket."),
            ));
        };
        match quantity {
            Some(q) if q < self.items[index].qty => self.items[index].qty -= q,
            _ => {
                self.items.remove(index);
            }
        }
        Ok(())
    }
}

/// The steps an open basket allows.
pub fn steps_of(basket: &BasketState) -> &'static [&'static str] {
    basket.steps()
}

fn check_quantity(quantity: i64) -> Result<(), Problem> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(Problem::new(
            types::INVALID_QUANTITY,
            format!("The quantity must be between 1 and {MAX_QUANTITY}; {quantity} was given."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_merges_lines_and_caps_quantities() {
        let mut basket = BasketState::default();
        basket.add("margherita", 2).unwrap();
        basket.add("margherita", 3).unwrap();
        assert_eq!(
            basket.items,
            vec![Line {
                sku: "margherita".into(),
                qty: 5
            }]
        );
        assert_eq!(
            basket.add("margherita", 95).unwrap_err().kind(),
            types::INVALID_QUANTITY
        );
        assert_eq!(
            basket.add("margherita", 0).unwrap_err().kind(),
            types::INVALID_QUANTITY
        );
        assert_eq!(
            basket.add("caviar", 1).unwrap_err().kind(),
            types::UNKNOWN_SKU
        );
    }

    #[test]
    fn removing_reduces_or_drops_a_line() {
        let mut basket = BasketState::default();
        basket.add("diavola", 3).unwrap();
        basket.remove("diavola", Some(1)).unwrap();
        assert_eq!(basket.items[0].qty, 2);
        basket.remove("diavola", None).unwrap();
        assert!(basket.items.is_empty());
        assert_eq!(
            basket.remove("diavola", None).unwrap_err().kind(),
            types::NOT_IN_BASKET
        );
        assert_eq!(basket.steps(), &[VIEW, ADD_ITEM, CANCEL]);
    }
}
