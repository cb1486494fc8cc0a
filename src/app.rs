//! The application state every handler gets: one cheap-to-clone handle.
//!
//! `AppState(Arc<App>)`, as crates.io does: the configuration, the minter and
//! trust store of the conversation-state tokens, and the sender that reaches
//! the other participants over HTTP.

use std::ops::Deref;
use std::sync::Arc;

use crate::background::Background;
use crate::config::Config;
use crate::conversation::token::{Jwks, Minted};
use crate::conversation::{Claims, Expect, Minter, Next, StateToken, TrustStore};
use crate::fault::Problem;
use crate::ids::{ConversationId, MessageId};
use crate::messaging::callbacks::CallbackPolicy;
use crate::messaging::journal::Journal;
use crate::messaging::outbox::Relay;
use crate::messaging::sender::Sender;
use crate::participant::Participant;
use crate::store::{JournalEntry, MessageKind, Store, now_ms};

/// Steps that only read: verifying their token is not a message to journal.
const READ_STEPS: &[&str] = &["view"];

/// The handle handlers receive.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

pub struct App {
    pub config: Config,
    /// This process's base URL, as clients reach it.
    pub public_url: String,
    pub minter: Minter,
    pub trust: TrustStore,
    pub jwks: Jwks,
    pub sender: Sender,
    pub store: Store,
    pub journal: Journal,
    pub relay: Relay,
    pub callbacks: CallbackPolicy,
    /// The server's background tasks: they stop, or finish, before `run`
    /// returns.
    pub background: Background,
}

impl App {
    pub fn hosts(&self, participant: Participant) -> bool {
        self.config.participants.contains(&participant)
    }

    /// The base URL of a participant, hosted here or elsewhere.
    pub fn base_of(&self, participant: Participant) -> Option<&str> {
        if self.hosts(participant) {
            Some(&self.public_url)
        } else {
            self.config.peers.get(&participant).map(String::as_str)
        }
    }

    /// The absolute URL of `path` under a participant's prefix.
    pub fn href(&self, participant: Participant, path: &str) -> String {
        let base = self.base_of(participant).unwrap_or(&self.public_url);
        format!("{base}/{participant}{path}")
    }

    /// A next-step link: the step's URL carrying the response's token.
    /// (Built in one allocation: a turn builds one per next step.)
    pub fn step_href(&self, participant: Participant, path: &str, token: &str) -> String {
        let base = self.base_of(participant).unwrap_or(&self.public_url);
        let participant = participant.as_str();
        let mut href =
            String::with_capacity(base.len() + participant.len() + path.len() + token.len() + 8);
        for part in [base, "/", participant, path, "?state=", token] {
            href.push_str(part);
        }
        href
    }

    /// A URL of this process outside any participant (`/patterns`...).
    pub fn root_href(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// Verifies the request's token for a step, and journals it as received
    /// when another participant sent it.
    pub async fn verify(&self, token: &StateToken, expect: Expect<'_>) -> Result<Claims, Problem> {
        let claims = self.trust.verify(&token.0, expect).await.map_err(|e| {
            let start = self.root_href("/");
            Problem::from(e).link("start", start)
        })?;
        if claims.iss != expect.participant.as_str() && !READ_STEPS.contains(&expect.step) {
            self.journal.record(JournalEntry {
                participant: expect.participant.as_str().to_owned(),
                conversation_id: claims.cid.to_string(),
                message_id: claims.jti.to_string(),
                causation_id: None,
                from_participant: claims.iss.clone(),
                to_participant: expect.participant.as_str().to_owned(),
                pattern: pattern_name(&claims),
                kind: MessageKind::Request,
                step: expect.step.to_owned(),
                chain: claims.chn.clone(),
                status: "received".to_owned(),
                at: now_ms(),
            });
        }
        Ok(claims)
    }

    /// Signs the next message of a conversation, and journals it as sent.
    /// A token addressed to its own issuer is a reply to the client (its
    /// links), unless it is marked a request: a participant asking one of
    /// its own steps (the saga following deliveries' `solicit`).
    pub fn mint(&self, iss: Participant, next: Next) -> Result<Minted, Problem> {
        let to_client = next.aud == [iss] && next.kind != Some(MessageKind::Request);
        let to = if to_client {
            "client".to_owned()
        } else {
            next.aud
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let kind = next.kind.unwrap_or(if to_client {
            MessageKind::Reply
        } else {
            MessageKind::Request
        });
        self.sign_and_journal(iss, next, to, kind, "sent")
    }

    /// Signs an event (Out-Only) of a conversation, and journals it as
    /// published to its subscribers: `status` says whether any subscribed.
    /// The token's audience are the participants that may take the
    /// conversation up from the event.
    pub fn mint_event(
        &self,
        iss: Participant,
        next: Next,
        status: &str,
    ) -> Result<Minted, Problem> {
        self.sign_and_journal(
            iss,
            next,
            "subscribers".to_owned(),
            MessageKind::Event,
            status,
        )
    }

    fn sign_and_journal(
        &self,
        iss: Participant,
        next: Next,
        to: String,
        kind: MessageKind,
        status: &str,
    ) -> Result<Minted, Problem> {
        let (causation, step) = (next.causation, next.step.clone());
        let minted = self.minter.mint(iss, next).map_err(Problem::internal)?;
        self.journal.record(JournalEntry {
            participant: iss.as_str().to_owned(),
            conversation_id: minted.claims.cid.to_string(),
            message_id: minted.claims.jti.to_string(),
            causation_id: causation.map(|c| c.to_string()),
            from_participant: iss.as_str().to_owned(),
            to_participant: to,
            pattern: pattern_name(&minted.claims),
            kind,
            step,
            chain: minted.claims.chn.clone(),
            status: status.to_owned(),
            at: now_ms(),
        });
        Ok(minted)
    }

    /// Journals a message that carries no token of its own: a fault a
    /// participant sent or received, an event it published.
    pub fn journal_note(&self, at: Participant, kind: MessageKind, fault: Note<'_>) {
        self.journal.record(JournalEntry {
            participant: at.as_str().to_owned(),
            conversation_id: fault.conversation.to_string(),
            message_id: MessageId::new().to_string(),
            causation_id: fault.causation.map(|c| c.to_string()),
            from_participant: fault.from.to_owned(),
            to_participant: fault.to.to_owned(),
            pattern: fault.pattern.to_owned(),
            kind,
            step: fault.step.to_owned(),
            chain: String::new(),
            status: fault.status.to_owned(),
            at: now_ms(),
        });
    }
}

/// A message without a token of its own, as journaled.
pub struct Note<'a> {
    pub conversation: ConversationId,
    pub causation: Option<MessageId>,
    pub from: &'a str,
    pub to: &'a str,
    pub pattern: &'a str,
    pub step: &'a str,
    /// What happened: the problem type's slug for a fault, `published` for an event.
    pub status: &'a str,
}

/// The conversation type a token belongs to, as journaled (`turn-taking`...).
pub fn pattern_name(claims: &Claims) -> String {
    claims.pat.as_str().to_owned()
}
