//! Starting a delivery: its input, the HAL-FORMS template a generic client
//! fills in (on the list of deliveries and on the entry point as
//! `start-delivery`), and the start itself, from a client's `POST` or from
//! orders' `order.placed` ([`super::incoming`]).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::api::render;
use super::{TIMER_SOLICIT, timer};
use crate::app::{App, AppState};
use crate::conversation::Claims;
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Input, Property};
use crate::participant::Participant::Deliveries;
use crate::participants::couriers::Location;
use crate::participants::deliveries::{DEFAULT_DEADLINE_MS, MAX_DEADLINE_MS};
use crate::participants::menu;
use crate::store::now_ms;
use crate::store::sagas::{Delivery, DeliveryState};

/// The entry point's name for the create form.
pub const START: &str = "start-delivery";
/// The shortest solicitation deadline a delivery takes, in ms.
const MIN_DEADLINE_MS: i64 = 100;
/// The longest a parcel may wait before its first solicitation, in ms (a day).
const MAX_READY_IN_MS: i64 = 86_400_000;
/// The heaviest parcel, in kg.
const MAX_WEIGHT_KG: i64 = 50;
/// The parcel sizes.
const SIZES: [&str; 3] = ["small", "medium", "large"];

/// The input of `create`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateDelivery {
    /// Where the parcel is picked up (a JSON object, or its text from a form).
    #[serde(deserialize_with = "location")]
    pub pickup: Location,
    /// Where it goes (a JSON object, or its text from a form).
    #[serde(deserialize_with = "location")]
    pub dropoff: Location,
    /// `small`, `medium` or `large`.
    #[schema(pattern = "^(small|medium|large)$", example = "medium")]
    pub size: String,
    /// 0 to 50 kg.
    #[schema(minimum = 0, maximum = 50)]
    pub weight_kg: f64,
    /// When the parcel is ready: the first solicitation waits this long (0 to 86400000 ms).
    #[serde(default)]
    pub ready_in_ms: Option<i64>,
    /// How long each solicitation gives the couriers, 100 to 10000 ms (default 1500).
    #[serde(default)]
    pub deadline_ms: Option<i64>,
}

pub(super) fn new_delivery(
    input: &CreateDelivery,
    order: Option<(&str, &str)>,
    note: &str,
) -> Result<Delivery, Problem> {
    if !input.pickup.is_valid() || !input.dropoff.is_valid() {
        return Err(Problem::new(
            types::INVALID_BODY,
            "Coordinates are a latitude from -90 to 90 and a longitude from -180 to 180.",
        ));
    }
    if !SIZES.contains(&input.size.as_str()) {
        return Err(Problem::new(
            types::INVALID_BODY,
            "The size is `small`, `medium` or `large`.",
        ));
    }
    if !(0.0..=MAX_WEIGHT_KG as f64).contains(&input.weight_kg) {
        return Err(Problem::new(
            types::INVALID_BODY,
            "The weight is 0 to 50 kg.",
        ));
    }
    let deadline_ms = input.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS as i64);
    if !(MIN_DEADLINE_MS..=MAX_DEADLINE_MS as i64).contains(&deadline_ms) {
        return Err(Problem::new(
            types::INVALID_BODY,
            "The deadline is 100 to 10000 ms.",
        ));
    }
    if !(0..=MAX_READY_IN_MS).contains(&input.ready_in_ms.unwrap_or(0)) {
        return Err(Problem::new(
            types::INVALID_BODY,
            "`ready_in_ms` is 0 to 86400000.",
        ));
    }
    let at = now_ms();
    let id = match order {
        Some((order, _)) => super::delivery_id_for_order(order),
        None => format!("dlv_{}", uuid::Uuid::now_v7().simple()),
    };
    Ok(Delivery {
        id,
        order_id: order.map(|o| o.0.to_owned()),
        payment_id: order.map(|o| o.1.to_owned()).filter(|p| !p.is_empty()),
        conversation_id: crate::ids::ConversationId::new().to_string(),
        pickup_lat: input.pickup.lat,
        pickup_lon: input.pickup.lon,
        dropoff_lat: input.dropoff.lat,
        dropoff_lon: input.dropoff.lon,
        size: input.size.clone(),
        weight_kg: input.weight_kg,
        deadline_ms,
        state: DeliveryState::Soliciting,
        courier_id: None,
        attempts: 0,
        history: json!([{ "state": DeliveryState::Soliciting, "at": at, "note": note }]),
        version: 0,
        created_at: at,
        updated_at: at,
        head_message: None,
        head_seq: 0,
        head_chain: String::new(),
    })
}

/// A place given as a JSON object, or as the JSON text of one (what a form
/// sends for a text property).
fn location<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Location, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Place(Location),
        Text(String),
    }
    match Given::deserialize(deserializer)? {
        Given::Place(place) => Ok(place),
        Given::Text(text) => serde_json::from_str(&text)
            .map_err(|_| serde::de::Error::custom(r#"a place is {"lat": .., "lon": ..}"#)),
    }
}

/// The create form: what [`CreateDelivery`] takes, with its limits, filled
/// in with a parcel from Luigi's to a street nearby.
pub fn properties() -> Vec<Property> {
    let luigis = &menu::STORES[0];
    let place = |name: &str, prompt: &str, lat: f64, lon: f64| Property {
        name: name.to_owned().into(),
        prompt: Some(prompt.to_owned().into()),
        required: true,
        kind: "text",
        value: Some(json!({ "lat": lat, "lon": lon })),
        ..Default::default()
    };
    vec![
        place(
            "pickup",
            r#"Where the parcel is picked up: {"lat": .., "lon": ..}"#,
            luigis.lat,
            luigis.lon,
        ),
        place(
            "dropoff",
            r#"Where it goes: {"lat": .., "lon": ..}"#,
            luigis.lat + 0.01,
            luigis.lon + 0.01,
        ),
        Property::text("size")
            .required()
            .prompt("Parcel size")
            .one_of(SIZES.map(|s| (s, s)))
            .value("small"),
        Property::number("weight_kg", 0, MAX_WEIGHT_KG)
            .required()
            .prompt("Weight in kg")
            .value(1.5),
        Property::number("ready_in_ms", 0, MAX_READY_IN_MS)
            .prompt(
                "When the parcel is ready, in ms from now (the first solicitation waits this long)",
            )
            .value(0),
        Property::number("deadline_ms", MIN_DEADLINE_MS, MAX_DEADLINE_MS as i64)
            .prompt("How long each solicitation gives the couriers to answer, in ms")
            .value(DEFAULT_DEADLINE_MS),
    ]
}

/// Creates a delivery and schedules its first solicitation. `taken_up`: the
/// message of the conversation that led to it (orders' `order.placed`),
/// which the saga continues; without one, the delivery opens a
/// conversation of its own with a `create-delivery` message.
pub async fn start_delivery(
    app: &App,
    input: &CreateDelivery,
    order: Option<(&str, &str)>,
    note: &str,
    taken_up: Option<&Claims>,
) -> Result<(Delivery, bool), Problem> {
    let mut delivery = new_delivery(input, order, note)?;
    match taken_up {
        Some(claims) => {
            delivery.conversation_id = claims.cid.to_string();
            super::advance(&mut delivery, claims);
        }
        None => {
            let first = app.mint(
                Deliveries,
                super::next_message(&delivery, super::CREATE_DELIVERY)?
                    .to(&[Deliveries])
                    .state(json!({ "delivery_id": delivery.id })),
            )?;
            super::advance(&mut delivery, &first.claims);
        }
    }
    let first = timer(&delivery.id, TIMER_SOLICIT, input.ready_in_ms.unwrap_or(0));
    let created = app
        .store
        .delivery_create(&delivery, Some(&first))
        .await
        .map_err(Problem::internal)?;
    Ok((delivery, created))
}

#[utoipa::path(
    post, path = "/deliveries", tag = "deliveries", operation_id = "create_delivery",
    summary = "Start a delivery saga (Process Manager): solicit, assign, pick up, deliver",
    request_body(content((CreateDelivery = "application/json"))),
    responses(
        (status = 201, description = "The delivery, soliciting", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "Malformed body", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Bad coordinates, size, weight or timing", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /deliveries/deliveries`.
pub async fn create(
    State(app): State<AppState>,
    Input(input): Input<CreateDelivery>,
) -> Result<Response, Problem> {
    let (delivery, _) = start_delivery(&app, &input, None, "created", None).await?;
    let location = app.href(Deliveries, &format!("/deliveries/{}", delivery.id));
    Ok((
        [(http::header::LOCATION, location)],
        Hal(StatusCode::CREATED, render(&app, &delivery)),
    )
        .into_response())
}
