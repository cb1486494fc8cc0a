//! `GET /conversations/{cid}`: one conversation, rebuilt from the journals.
//!
//! No participant holds a conversation; each remembers its side of it
//! ("activities know messages sent and received"). This view asks every
//! participant it can reach — hosted here or named in the peers file — for
//! its journal of the conversation, over HTTP like any other message between
//! participants, merges the records by message id, puts them in causal
//! order and checks them against the chain digest of the final token
//! ([`transcript`]). It answers HAL, or a Mermaid sequence diagram to
//! `Accept: text/vnd.mermaid` ([`mermaid`]).
//!
//! Decisions: a journal that cannot be read makes the transcript incomplete
//! (its records may be the missing ones) but does not fail the view; entries
//! a peer returns for another participant are ignored (a participant speaks
//! only for itself); a conversation no journal knows is a 404.

pub mod mermaid;
pub mod transcript;

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::transcript::{Gap, Line, Verdict};
use crate::app::{App, AppState};
use crate::fault::{Problem, types};
use crate::hypermedia::{HAL_JSON, Hal, Resource};
use crate::ids::ConversationId;
use crate::participant::Participant;
use crate::store::JournalEntry;

/// The media type of the sequence diagram.
pub const MERMAID: &str = "text/vnd.mermaid";

/// What one participant's journal gave.
struct Source {
    participant: Participant,
    href: String,
    entries: Result<Vec<JournalEntry>, String>,
}

#[utoipa::path(
    get, path = "/conversations/{cid}", tag = "conversations", operation_id = "conversation",
    summary = "One conversation, rebuilt from every participant's journal and checked against its chain digest",
    description = "Merges the journals of every reachable participant in causal order. \
        `complete` says whether the records reproduce the final token's chain digest; \
        `gaps` say where they do not. Send `Accept: text/vnd.mermaid` for a Mermaid sequence diagram.",
    params(("cid" = String, Path, description = "The conversation id")),
    responses(
        (status = 200, description = "The transcript (HAL), or a Mermaid sequence diagram",
            content((crate::openapi::HalDocument = "application/hal+json"), (String = "text/vnd.mermaid"))),
        (status = 404, description = "No journal knows this conversation", body = crate::openapi::ProblemDocument, content_type = "application/problem+json"),
    )
)]
/// `GET /conversations/{cid}`.
pub async fn conversation(
    State(app): State<AppState>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let unknown = || {
        Problem::new(
            types::NOT_FOUND,
            format!("No participant's journal knows a conversation `{cid}`."),
        )
        .link("start", app.root_href("/"))
    };
    let cid: ConversationId = cid.parse().map_err(|_| unknown())?;
    let sources = gather(&app, cid).await;
    let entries: Vec<JournalEntry> = sources
        .iter()
        .filter_map(|source| source.entries.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    if entries.is_empty() {
        return Err(unknown().in_conversation(cid));
    }
    let lines = transcript::order(transcript::merge(entries));
    let mut verdict = transcript::verify(&lines);
    for source in &sources {
        if let Err(error) = &source.entries {
            verdict.complete = false;
            verdict.gaps.push(Gap {
                message: None,
                problem: format!(
                    "{}'s journal could not be read ({error})",
                    source.participant
                ),
            });
        }
    }
    let actors = actors(&lines);
    let mut response = if wants_mermaid(&headers) {
        (
            [(header::CONTENT_TYPE, "text/vnd.mermaid; charset=utf-8")],
            mermaid::render(&lines, &actors, &verdict),
        )
            .into_response()
    } else {
        Hal::ok(render(&app, cid, &lines, &actors, &verdict, &sources)).into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

fn wants_mermaid(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(MERMAID))
}

/// Asks every reachable participant for its journal of `cid`, all at once.
async fn gather(app: &App, cid: ConversationId) -> Vec<Source> {
    let reachable = Participant::ALL
        .into_iter()
        .filter_map(|p| Some((p, app.sender.url(p, "/journal").ok()?)));
    join_all(reachable.map(|(participant, url)| async move {
        let href = format!("{url}?conversation={cid}");
        let entries = fetch(app, participant, &href).await;
        Source {
            participant,
            href,
            entries,
        }
    }))
    .await
}

/// The client that reads journals. It keeps no idle connections: the view
/// is rare, and a pooled connection must not outlive the runtime that made it.
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client with default TLS settings")
    })
}

/// GETs one journal; what went wrong, client-safe, otherwise.
async fn fetch(
    app: &App,
    participant: Participant,
    href: &str,
) -> Result<Vec<JournalEntry>, String> {
    let response = http()
        .get(href)
        .header(header::ACCEPT, HAL_JSON)
        .timeout(app.config.peer_timeout)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(%participant, error = %e, "journal unreachable");
            if e.is_timeout() {
                "no answer in time".to_owned()
            } else {
                "unreachable".to_owned()
            }
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered {}", status.as_u16()));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|_| "not a HAL document".to_owned())?;
    let entries: Vec<JournalEntry> = serde_json::from_value(body["_embedded"]["entries"].clone())
        .map_err(|_| "entries that cannot be read".to_owned())?;
    Ok(entries
        .into_iter()
        .filter(|entry| entry.participant == participant.as_str())
        .collect())
}

/// Everyone who appears in the transcript: the client first, then the
/// participants in the order the checkout meets them, then anyone else.
fn actors(lines: &[Line]) -> Vec<String> {
    let mut named: Vec<&str> = Vec::new();
    for line in lines {
        let sides = line.sent.iter().chain(&line.received);
        for who in std::iter::once(line.from.as_str())
            .chain(line.to.split(','))
            .chain(sides.map(|side| side.participant.as_str()))
        {
            if !who.is_empty() && !named.contains(&who) {
                named.push(who);
            }
        }
    }
    let rank = |who: &str| {
        if who == mermaid::CLIENT {
            0
        } else {
            Participant::ALL
                .iter()
                .position(|p| p.as_str() == who)
                .map_or(usize::MAX, |i| i + 1)
        }
    };
    named.sort_by_key(|who| (rank(who), *who));
    let mut actors: Vec<String> = named.into_iter().map(str::to_owned).collect();
    if !actors.iter().any(|a| a == mermaid::CLIENT) {
        actors.insert(0, mermaid::CLIENT.to_owned());
    }
    actors
}

fn render(
    app: &App,
    cid: ConversationId,
    lines: &[Line],
    actors: &[String],
    verdict: &Verdict,
    sources: &[Source],
) -> Resource {
    let href = app.root_href(&format!("/conversations/{cid}"));
    let journals: Vec<Value> = sources
        .iter()
        .map(|source| match &source.entries {
            Ok(entries) => json!({
                "participant": source.participant,
                "href": source.href,
                "entries": entries.len(),
            }),
            Err(error) => json!({
                "participant": source.participant,
                "href": source.href,
                "error": error,
            }),
        })
        .collect();
    let messages = lines
        .iter()
        .map(|line| Resource::new().fields(line))
        .collect();
    Resource::new()
        .field("conversation", cid)
        .field("complete", verdict.complete)
        .field("final_message", &verdict.final_message)
        .field("final_chain", &verdict.final_chain)
        .field("chain_verified", verdict.chain_verified)
        .field("turns", verdict.turns)
        .field("gaps", &verdict.gaps)
        .field("count", lines.len())
        .field("participants", actors)
        .field("journals", journals)
        .link("self", href.clone())
        .titled_link(
            "mermaid",
            href,
            "The same conversation as a Mermaid sequence diagram: GET with `Accept: text/vnd.mermaid`",
        )
        .link("start", app.root_href("/"))
        .embed("messages", messages)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(conversation))
}
