//! Starting a slip (`start-routing-slip`) and reading one back (`inspect`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::hop;
use super::inspect_href;
use super::outcome::FEED_PATH;
use super::slip::path_of;
use super::slip::{self, Address, INSPECT, Line, SLIP_TTL, Slip, Step, Stop, Terms};
use crate::app::{App, AppState};
use crate::conversation::{Expect, Next, Pattern, StateToken};
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Input, Property, Resource};
use crate::participant::Participant::{Basket, Orders, Payments};
use crate::participants::basket::MAX_QUANTITY;

/// The link relation, and the step the requestor's signature records.
pub const START: &str = "start-routing-slip";
/// The most lines a slip's order may have.
const MAX_LINES: usize = 10;
/// The most bytes the terms may take. The slip travels in a token, which
/// verifiers refuse beyond 8 KiB; the requestor's and the steps' signatures
/// and results take at most about 6 KiB of it, the terms the rest.
const MAX_TERMS: usize = 1200;

/// The body of `start-routing-slip`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StartSlip {
    /// The steps, in order: `validate-address`, `price`, `take-payment`,
    /// `raise-order`, `notify` (a subset; each after the steps it needs).
    pub steps: Vec<String>,
    /// What to order (1 to 10 lines).
    pub items: Vec<Line>,
    /// The card, for `take-payment`: it travels in the message body to that
    /// step only, never in a token.
    #[serde(default)]
    pub card_number: Option<String>,
    /// Where to deliver; needed by `validate-address`.
    #[serde(default)]
    pub address: Option<Address>,
    /// Where to POST the outcome (a known participant or an allowed host).
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// The steps named, checked: known, once each, each after what it needs,
/// `notify` last.
fn itinerary(names: &[String]) -> Result<Vec<Step>, Problem> {
    if names.is_empty() {
        return Err(Problem::new(
            types::EMPTY_ITINERARY,
            "A routing slip needs at least one step.",
        ));
    }
    let mut steps: Vec<Step> = Vec::with_capacity(names.len());
    for name in names {
        let step = Step::parse(name).ok_or_else(|| {
            Problem::new(types::UNKNOWN_STEP, format!("There is no step `{name}`."))
                .with("steps", Step::ALL.map(Step::name))
        })?;
        if steps.contains(&step) {
            return Err(Problem::new(
                types::DUPLICATE_STEP,
                format!("`{name}` is named twice; each step is taken once."),
            ));
        }
        if let Some(missing) = step.requires().iter().find(|r| !steps.contains(r)) {
            return Err(Problem::new(
                types::STEP_BEFORE_PREREQUISITE,
                format!("`{name}` needs `{}` before it.", missing.name()),
            ));
        }
        if steps.contains(&Step::Notify) {
            return Err(Problem::new(
                types::STEP_BEFORE_PREREQUISITE,
                format!("`notify` reports on every other step, so `{name}` cannot come after it."),
            ));
        }
        steps.push(step);
    }
    Ok(steps)
}

/// The rest of the body, checked against the steps chosen.
fn check(app: &App, body: &StartSlip, steps: &[Step]) -> Result<(), Problem> {
    let invalid = |detail: &str| Problem::new(types::INVALID_BODY, detail);
    if body.items.is_empty() || body.items.len() > MAX_LINES {
        return Err(invalid("A routing slip orders 1 to 10 lines."));
    }
    if let Some(line) = body
        .items
        .iter()
        .find(|l| !(1..=MAX_QUANTITY).contains(&l.qty))
    {
        return Err(Problem::new(
            types::INVALID_QUANTITY,
            format!(
                "The quantity of `{}` must be 1 to {MAX_QUANTITY}.",
                line.sku
            ),
        ));
    }
    if steps.contains(&Step::TakePayment) && body.card_number.is_none() {
        return Err(invalid("`take-payment` needs a card_number."));
    }
    if steps.contains(&Step::ValidateAddress) && body.address.is_none() {
        return Err(invalid("`validate-address` needs an address."));
    }
    if steps.contains(&Step::Notify) && body.reply_to.is_none() {
        return Err(Problem::new(
            types::MISSING_REPLY_TO,
            "`notify` needs a reply_to to notify.",
        ));
    }
    if let Some(reply_to) = &body.reply_to {
        app.callbacks.check(reply_to).map_err(|e| {
            Problem::new(
                types::CALLBACK_NOT_ALLOWED,
                format!("reply_to refused: {e}."),
            )
        })?;
    }
    Ok(())
}

#[utoipa::path(
    post, path = "/routing-slips", tag = "routing-slips", operation_id = "start_routing_slip",
    summary = "Start a routing slip: the requestor names the steps; basket signs the slip and it starts moving",
    request_body(content((StartSlip = "application/json"))),
    responses(
        (status = 202, description = "The slip is on its way: links to inspect it and to the outcome feed", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 400, description = "`notify` without a reply_to", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Basket, which signs slips, is not hosted here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "An unknown, duplicate or misplaced step, or a body that does not fit the steps", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "A step's participant cannot be reached from here", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `POST /routing-slips` (`start-routing-slip`).
pub async fn start(
    State(app): State<AppState>,
    Input(body): Input<StartSlip>,
) -> Result<Response, Problem> {
    if !app.hosts(Basket) {
        return Err(Problem::new(
            types::NOT_FOUND,
            "Routing slips are signed by basket, which is not hosted here.",
        ));
    }
    let steps = itinerary(&body.steps)?;
    check(&app, &body, &steps)?;
    let itinerary = steps
        .iter()
        .map(|&step| {
            let undo = step
                .undo()
                .map(|name| app.sender.url(step.by(), &path_of(name)))
                .transpose()?;
            Ok(Stop {
                step,
                by: step.by(),
                url: app.sender.url(step.by(), &step.path())?,
                undo,
            })
        })
        .collect::<Result<Vec<_>, crate::messaging::sender::SendError>>()?;
    let terms = Terms {
        itinerary,
        items: body.items,
        address: body.address,
        reply_to: body.reply_to,
    };
    let size = serde_json::to_vec(&terms).map_err(Problem::internal)?.len();
    if size > MAX_TERMS {
        return Err(Problem::new(
            types::INVALID_BODY,
            format!(
                "The slip would not fit the token that carries it: its terms take {size} bytes, at most {MAX_TERMS}. Order fewer lines or give a shorter reply_to."
            ),
        ));
    }
    let req = app
        .minter
        .mint(
            Basket,
            Next::start(Pattern::RoutingSlip, START)
                .to(&[Basket])
                .allow(&[INSPECT])
                .state(json!({ "terms": slip::digest(&terms)? }))
                .ttl(SLIP_TTL),
        )
        .map_err(Problem::internal)?;
    let slip = Slip {
        req: req.token,
        terms,
        cur: 0,
        done: Vec::new(),
        fault: None,
        undone: Vec::new(),
    };
    let mut held = Next::after(&req.claims, START)
        .to(&[Basket])
        .allow(&[INSPECT])
        .state(json!({ "status": slip.status() }))
        .ttl(SLIP_TTL);
    held.slip = Some(slip.to_value()?);
    let held = app.mint(Basket, held)?;
    let first = &slip.terms.itinerary[0];
    let message = match body
        .card_number
        .filter(|_| steps.contains(&Step::TakePayment))
    {
        // The number goes to payments once, here, and comes back as a
        // reference: only the reference travels with the slip.
        Some(card) => json!({ "payment_method": payment_method(&app, &card).await? }),
        None => json!({}),
    };
    let mut tx = app.store.begin().await.map_err(Problem::internal)?;
    hop::forward(
        &app,
        &mut tx,
        Basket,
        &req.claims,
        &slip,
        START,
        first.step.name(),
        first.by,
        &first.url,
        &message,
    )
    .await?;
    tx.commit().await.map_err(Problem::internal)?;
    app.relay.wake();
    let resource = render(&app, &held.claims.cid, &slip, &held.token, "basket").field(
        "detail",
        "The slip is on its way; its outcome will be on the feed (and at reply_to, if given).",
    );
    Ok(Hal(StatusCode::ACCEPTED, resource).into_response())
}

#[utoipa::path(
    get, path = "/routing-slips/inspect", tag = "routing-slips", operation_id = "inspect_routing_slip",
    summary = "Read a slip back from its token alone, verifying the requestor's signature and every receipt",
    security(("state_query" = []), ("state_header" = [])),
    responses(
        (status = 200, description = "The slip: itinerary, receipts (each verified), fault and compensations", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not a slip for the requestor, or a tampered slip", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /routing-slips/inspect`: a pure function of the token (and the
/// participants' public keys).
pub async fn inspect(State(app): State<AppState>, token: StateToken) -> Result<Hal, Problem> {
    let claims = app
        .trust
        .verify(&token.0, Expect::step(Basket, INSPECT))
        .await
        .map_err(|e| Problem::from(e).link("start", app.root_href("/")))?;
    let slip = Slip::of(&claims)?;
    slip::verify(&app, claims.cid, &slip).await?;
    Ok(Hal::ok(
        render(&app, &claims.cid, &slip, &token.0, &claims.iss).field("verified", true),
    ))
}

/// A slip as the requestor reads it.
fn render(
    app: &App,
    cid: &crate::ids::ConversationId,
    slip: &Slip,
    token: &str,
    held_by: &str,
) -> Resource {
    let stops: Vec<Value> = slip
        .terms
        .itinerary
        .iter()
        .map(|s| json!({ "step": s.step, "by": s.by }))
        .collect();
    let receipts = |list: &[slip::Receipt]| -> Vec<Value> {
        list.iter()
            .map(|r| json!({ "step": r.step, "by": r.by, "at": r.at, "result": r.result }))
            .collect()
    };
    let mut resource = Resource::new()
        .field("slip", cid)
        .field("conversation", cid)
        .field("status", slip.status())
        .field("requestor", Basket)
        .field("held_by", held_by)
        .field("itinerary", stops)
        .field("items", &slip.terms.items)
        .field("receipts", receipts(&slip.done));
    if let Some(next) = slip
        .terms
        .itinerary
        .get(slip.cur)
        .filter(|_| slip.fault.is_none())
    {
        resource = resource.field("next", next.step);
    }
    if let Some(fault) = &slip.fault {
        resource = resource
            .field("fault", receipts(std::slice::from_ref(fault)).remove(0))
            .field("compensations", compensations(slip));
    }
    // What the steps made, as resources of the participants that made them.
    for receipt in &slip.done {
        if let Some(id) = receipt.result["payment_id"].as_str() {
            resource = resource.link("payment", app.href(Payments, &format!("/payments/{id}")));
        }
        if let Some(id) = receipt.result["order_id"].as_str() {
            resource = resource.link("order", app.href(Orders, &format!("/orders/{id}")));
        }
    }
    resource
        .titled_link(
            "inspect",
            inspect_href(app, token),
            "This slip, every signature verified",
        )
        .titled_link(
            "feed",
            app.root_href(FEED_PATH),
            "The outcomes of routing slips",
        )
        .link("start", app.root_href("/"))
}

/// The compensations made, as the receipts they amended say.
fn compensations(slip: &Slip) -> Vec<Value> {
    slip.compensations()
        .iter()
        .zip(&slip.undone)
        .map(|(&(_, i), name)| {
            let receipt = &slip.done[i];
            json!({ "step": name, "by": receipt.by, "at": receipt.at, "result": receipt.result["undone"]["result"] })
        })
        .collect()
}

/// The HAL-FORMS properties of `start-routing-slip`, with a sample slip.
pub fn properties() -> Vec<Property> {
    let sample = example();
    vec![
        Property::text("steps")
            .required()
            .prompt("Steps, in order: validate-address, price, take-payment, raise-order, notify")
            .value(&sample["steps"]),
        Property::text("items")
            .required()
            .prompt("Items: [{sku, qty}] from the menu")
            .value(&sample["items"]),
        Property::text("card_number")
            .prompt("Card number, for take-payment (test cards: see the README)")
            .value(&sample["card_number"]),
        Property::text("address")
            .prompt("Delivery address {lat, lon}, for validate-address")
            .value(&sample["address"]),
        Property::text("reply_to").prompt("Where to POST the outcome (needed by notify)"),
    ]
}

/// A slip with every step but `notify`: two pizzas to an address near
/// Luigi's, paid with the card that always succeeds.
pub fn example() -> Value {
    json!({
        "steps": ["validate-address", "price", "take-payment", "raise-order"],
        "items": [{ "sku": "margherita", "qty": 2 }],
        "card_number": "4242424242424242",
        "address": { "lat": 52.5219, "lon": 13.4132 },
    })
}

/// Exchanges the card for payments' signed payment-method reference.
async fn payment_method(app: &crate::app::App, card: &str) -> Result<String, Problem> {
    let url = app.href(crate::participant::Participant::Payments, "/methods");
    let reply = app
        .sender
        .follow(
            crate::participant::Participant::Payments,
            &url,
            Some(&json!({ "card_number": card })),
            &[],
        )
        .await?;
    match reply.body["method"].as_str() {
        Some(method) if reply.status.is_success() => Ok(method.to_owned()),
        _ => Err(crate::fault::from_peer(
            &reply.body,
            crate::participant::Participant::Payments,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(names: &[&str]) -> Result<Vec<Step>, Problem> {
        itinerary(&names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn itineraries_are_checked() {
        let kind = |names: &[&str]| steps(names).unwrap_err().kind();
        assert_eq!(kind(&[]), types::EMPTY_ITINERARY);
        assert_eq!(kind(&["price", "teleport"]), types::UNKNOWN_STEP);
        assert_eq!(kind(&["price", "price"]), types::DUPLICATE_STEP);
        assert_eq!(
            kind(&["take-payment", "price"]),
            types::STEP_BEFORE_PREREQUISITE
        );
        assert_eq!(
            kind(&["price", "raise-order"]),
            types::STEP_BEFORE_PREREQUISITE
        );
        assert_eq!(kind(&["notify", "price"]), types::STEP_BEFORE_PREREQUISITE);
        assert_eq!(
            steps(&["price", "take-payment", "raise-order", "validate-address"]).unwrap(),
            [
                Step::Price,
                Step::TakePayment,
                Step::RaiseOrder,
                Step::ValidateAddress
            ]
        );
    }
}
