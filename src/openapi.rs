//! The OpenAPI document, generated from the routers themselves.
//!
//! Every participant builds its routes with `utoipa_axum`'s `OpenApiRouter`,
//! which registers a handler and its `#[utoipa::path]` description together,
//! so a route cannot exist without being documented. [`document`] composes
//! the routers of every participant and adds what is common: the HAL and
//! problem schemas, and the two ways of presenting a conversation-state token.
//! `openapi/openapi.json` is this document, checked for drift by a test.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContactBuilder, InfoBuilder, LicenseBuilder, OpenApi};
use utoipa::{ToResponse, ToSchema};

/// A HAL link.
#[derive(Serialize, ToSchema)]
pub struct HalLink {
    /// Where the step is; a step's href carries the conversation-state token as `?state=`.
    pub href: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// What a relation holds: one link, or, for a relation that can hold
/// several (a listing's `by-state`, a problem's alternatives), an array of
/// links (draft-kelly-json-hal §4.1.1).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum HalRelation {
    One(HalLink),
    Many(Vec<HalLink>),
}

/// A HAL-FORMS template property.
#[derive(Serialize, ToSchema)]
pub struct TemplateProperty {
    pub name: String,
    pub required: bool,
    /// An HTML input type hint.
    #[serde(rename = "type")]
    pub kind: String,
    pub prompt: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub regex: Option<String>,
    pub value: Option<Value>,
    /// `{ "inline": [{ "prompt", "value" }] }`: the allowed values.
    pub options: Option<Value>,
}

/// A HAL-FORMS template: how to take one step.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HalFormsTemplate {
    pub title: String,
    pub method: String,
    pub target: String,
    pub content_type: String,
    pub properties: Vec<TemplateProperty>,
}

/// A HAL document (`application/hal+json`): the resource's members, a
/// readable `state` mirroring the token's domain state, links to the next
/// steps and HAL-FORMS templates for the steps that take input.
#[derive(Serialize, ToSchema)]
pub struct HalDocument {
    /// The resource's status in its conversation, where it has one.
    pub status: Option<String>,
    /// The conversation id.
    pub conversation: Option<String>,
    /// The turn number of the token the links carry.
    pub turn: Option<u32>,
    /// The domain state the token carries, readable.
    pub state: Option<Value>,
    #[serde(rename = "_links")]
    pub links: BTreeMap<String, HalRelation>,
    #[serde(rename = "_templates")]
    pub templates: Option<BTreeMap<String, HalFormsTemplate>>,
    #[serde(rename = "_embedded")]
    pub embedded: Option<BTreeMap<String, Vec<Value>>>,
}

/// An RFC 9457 problem document, with links to the steps that repair the conversation.
#[derive(Serialize, ToSchema, ToResponse)]
#[response(
    description = "A problem document (application/problem+json)",
    content_type = "application/problem+json"
)]
pub struct ProblemDocument {
    /// A stable URI reference naming the kind of problem; `GET` it for its description.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for this occurrence; never internals.
    pub detail: String,
    /// The conversation the problem belongs to, when known.
    pub conversation: Option<String>,
    #[serde(rename = "_links")]
    pub links: Option<BTreeMap<String, HalRelation>>,
}

/// The input of `add-item`.
#[derive(Serialize, ToSchema)]
pub struct AddItemInput {
    /// A sku from the menu.
    pub sku: String,
    /// 1 to 99; 1 when absent.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: Option<i64>,
}

/// The input of `remove-item`.
#[derive(Serialize, ToSchema)]
pub struct RemoveItemInput {
    pub sku: String,
    /// How many to remove; the whole line when absent.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: Option<i64>,
}

/// The input of `pay`.
#[derive(Serialize, ToSchema)]
pub struct PayInput {
    /// A card number (test cards are listed in the README); never stored or logged.
    pub card_number: String,
}

/// The whole document: every participant's routes, whatever this process hosts.
pub fn document() -> OpenApi {
    let mut api =
        crate::participants::api_router(&crate::participant::Participant::ALL).into_openapi();
    api.info = InfoBuilder::new()
        .title("conversant")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Asynchronous conversation patterns between stateless HTTP participants. \
             Start at `GET /` and follow links: each next-step link carries the conversation's \
             signed state as `?state=` (or send it in the `Conversation-State` header).",
        ))
        .license(Some(
            LicenseBuilder::new().name("MIT OR Apache-2.0").build(),
        ))
        .contact(Some(ContactBuilder::new().name(Some("conversant")).build()))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "state_query",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "state",
            "The conversation-state token, as the next-step links carry it.",
        ))),
    );
    components.add_security_scheme(
        "state_header",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Conversation-State",
            "The same token, for clients that keep it out of URLs.",
        ))),
    );
    api
}

/// The document as committed in `openapi/openapi.json`.
pub fn to_pretty_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
