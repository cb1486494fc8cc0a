//! The example stores and their menu: reference data every participant shares.
//!
//! Prices are in minor units (cents) of one currency. Basket checks skus
//! against it; pricing prices from it; store information serves it.

use serde::Serialize;

pub const CURRENCY: &str = "EUR";

/// A store of the example domain.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Store {
    pub id: &'static str,
    pub name: &'static str,
    /// Where it is (latitude, longitude).
    pub lat: f64,
    pub lon: f64,
    /// What delivering from it costs, in minor units.
    pub delivery_fee: i64,
    /// A closed store cannot take orders (see the repair patterns).
    pub open: bool,
}

/// An item on the menu.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Item {
    pub sku: &'static str,
    pub store: &'static str,
    pub name: &'static str,
    /// Price in minor units.
    pub price: i64,
    pub currency: &'static str,
}

pub const STORES: &[Store] = &[
    Store {
        id: "luigis",
        name: "Luigi's Pizzeria",
        lat: 52.5200,
        lon: 13.4050,
        delivery_fee: 250,
        open: true,
    },
    Store {
        id: "sakura",
        name: "Sakura Sushi",
        lat: 52.5163,
        lon: 13.3777,
        delivery_fee: 350,
        open: true,
    },
    Store {
        id: "green-bowl",
        name: "Green Bowl",
        lat: 52.5308,
        lon: 13.3847,
        delivery_fee: 200,
        open: true,
    },
    Store {
        id: "night-owl",
        name: "Night Owl Diner (closed)",
        lat: 52.5074,
        lon: 13.4260,
        delivery_fee: 300,
        open: false,
    },
];

const fn item(sku: &'static str, store: &'static str, name: &'static str, price: i64) -> Item {
    Item {
        sku,
        store,
        name,
        price,
        currency: CURRENCY,
    }
}

pub const ITEMS: &[Item] = &[
    item("margherita", "luigis", "Pizza Margherita", 950),
    item("diavola", "luigis", "Pizza Diavola", 1150),
    item("tiramisu", "luigis", "Tiramisu", 550),
    item("salmon-nigiri", "sakura", "Salmon nigiri (6)", 890),
    item("maki-mix", "sakura", "Maki mix (12)", 1290),
    item("miso-soup", "sakura", "Miso soup", 390),
    item("quinoa-bowl", "green-bowl", "Quinoa bowl", 1050),
    item("falafel-wrap", "green-bowl", "Falafel wrap", 790),
    item("pancakes", "night-owl", "Midnight pancakes", 690),
];

pub fn item_by_sku(sku: &str) -> Option<&'static Item> {
    ITEMS.iter().find(|i| i.sku == sku)
}

pub fn store(id: &str) -> Option<&'static Store> {
    STORES.iter().find(|s| s.id == id)
}

/// Great-circle distance between two points, in kilometres.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().atan2((1.0 - a).sqrt())
}
