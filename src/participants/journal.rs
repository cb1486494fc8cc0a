//! `GET /{participant}/journal?conversation=ID`: one participant's side of a
//! conversation.
//!
//! "Activities know messages sent and received": every participant records
//! each message it sends (when it mints the token) and receives (when it
//! verifies another participant's token), plus the faults and events that
//! carry no token of their own ([`crate::app::App::journal_note`]). Records
//! are written by the background batcher, so this read first flushes it: a
//! participant always reads its own writes.
//!
//! Every hosted participant serves its own journal under its own prefix, so
//! in a split deployment each process answers only for the participants it
//! hosts, and `GET /conversations/{cid}` asks each of them over HTTP. There is
//! one handler per participant (generated below), so each is documented under
//! its participant's tag with an operation id of its own.

use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{App, AppState};
use crate::fault::{Problem, types};
use crate::hypermedia::{Hal, Resource};
use crate::ids::ConversationId;
use crate::participant::Participant;

/// The query of a journal read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JournalQuery {
    /// The conversation id (a UUID, the `conversation` member of any response of it).
    #[param(
        required = true,
        min_length = 36,
        max_length = 36,
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    conversation: Option<String>,
}

impl JournalQuery {
    /// The conversation asked for: 400 when absent, 422 when not a conversation id.
    fn conversation(&self, app: &App) -> Result<ConversationId, Problem> {
        let raw = self.conversation.as_deref().unwrap_or_default().trim();
        if raw.is_empty() {
            return Err(Problem::new(
                types::MALFORMED_BODY,
                "Say which conversation: `?conversation=` followed by its id.",
            )
            .link("start", app.root_href("/")));
        }
        raw.parse().map_err(|_| {
            Problem::new(
                types::INVALID_BODY,
                format!("`{raw}` is not a conversation id (a UUID)."),
            )
            .link("start", app.root_href("/"))
        })
    }
}

/// Reads `participant`'s journal of one conversation, after flushing the batcher.
async fn read(app: &App, participant: Participant, query: &JournalQuery) -> Result<Hal, Problem> {
    let cid = query.conversation(app)?;
    app.journal.flush().await;
    let entries = app
        .store
        .journal_for_conversation(participant.as_str(), &cid.to_string())
        .await
        .map_err(Problem::internal)?;
    let count = entries.len();
    let items = entries
        .iter()
        .map(|entry| Resource::new().fields(entry))
        .collect();
    Ok(Hal::ok(
        Resource::new()
            .field("participant", participant)
            .field("conversation", cid)
            .field("count", count)
            .link(
                "self",
                app.href(participant, &format!("/journal?conversation={cid}")),
            )
            .titled_link(
                "conversation",
                app.root_href(&format!("/conversations/{cid}")),
                "The whole conversation, merged from every participant's journal",
            )
            .link("start", app.root_href("/"))
            .embed("entries", items),
    ))
}

/// One documented handler per participant: `$handler` serves `$participant`.
macro_rules! journal_handlers {
    ($($handler:ident => $participant:ident, $tag:tt;)*) => {
        $(
            #[utoipa::path(
                get, path = "/journal", tag = $tag,
                summary = "This participant's journal of one conversation: every message it sent and received",
                params(JournalQuery),
                responses(
                    (status = 200, description = "The entries, oldest first, embedded as `entries`", body = crate::openapi::HalDocument, content_type = "application/hal+json"),
                    (status = 400, description = "No `conversation` was given", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
                    (status = 422, description = "`conversation` is not a conversation id", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
                )
            )]
            pub async fn $handler(
                State(app): State<AppState>,
                Query(query): Query<JournalQuery>,
            ) -> Result<Hal, Problem> {
                read(&app, Participant::$participant, &query).await
            }
        )*

        /// The journal route of `participant`, to nest under its prefix.
        pub fn router(participant: Participant) -> OpenApiRouter<AppState> {
            match participant {
                $(Participant::$participant => OpenApiRouter::new().routes(routes!($handler)),)*
            }
        }
    };
}

journal_handlers! {
    basket_journal => Basket, "basket";
    pricing_journal => Pricing, "pricing";
    payments_journal => Payments, "payments";
    orders_journal => Orders, "orders";
    deliveries_journal => Deliveries, "deliveries";
    couriers_journal => Couriers, "couriers";
    stores_journal => Stores, "stores";
    search_journal => Search, "search";
}
