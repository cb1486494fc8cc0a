//! Representations: HAL with HAL-FORMS templates, and the body extractor.
//!
//! Every successful response is `application/hal+json`: the resource's own
//! members, a readable `state` that mirrors the token's domain state, `_links`
//! (each next step, its href carrying the response's one token), and HAL-FORMS
//! `_templates` describing the method, target and properties of every step
//! that is an action. The key links — `self` and the main next step — are
//! mirrored in an RFC 8288 `Link` header so `curl -i` shows them; the others
//! are left to the body, since every step's href carries the token and each
//! copy is paid for on every turn. [`negotiate`] renders the same document as HTML for
//! browsers, whose forms post `application/x-www-form-urlencoded`, which
//! [`Input`] accepts beside JSON.

mod html;
mod input;
mod resource;

pub use html::negotiate;
pub use input::{Deferred, Input, MAX_PAGE, page_limit};
pub use resource::{Choice, Hal, Options, Property, Resource, link_header};

/// The media type of a HAL document.
pub const HAL_JSON: &str = "application/hal+json";
/// The media type of a HAL-FORMS document (the same body; for clients that ask for it).
pub const HAL_FORMS_JSON: &str = "application/prs.hal-forms+json";
