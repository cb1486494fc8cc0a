//! The application state every handler gets: one cheap-to-clone handle.
//!
//! `AppState(Arc<App>)`, as crates.io does: the configuration, the minter and
//! trust store of the conversation-state tokens, and the sender that reaches
//! the other participants over HTTP.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::conversation::token::{Jwks, Minted};
use crate::conversation::{Claims, Expect, Minter, Next, StateToken, TrustStore};
use crate::fault::Problem;
use crate::messaging::sender::Sender;
use crate::participant::Participant;

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
    pub fn step_href(&self, participant: Participant, path: &str, token: &str) -> String {
        format!("{}?state={token}", self.href(participant, path))
    }

    /// A URL of this process outside any participant (`/patterns`...).
    pub fn root_href(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// Verifies the request's token for a step.
    pub async fn verify(&self, token: &StateToken, expect: Expect<'_>) -> Result<Claims, Problem> {
        self.trust.verify(&token.0, expect).await.map_err(|e| {
            let start = self.root_href("/");
            Problem::from(e).link("start", start)
        })
    }

    /// Signs the next message of a conversation.
    pub fn mint(&self, iss: Participant, next: Next) -> Result<Minted, Problem> {
        self.minter.mint(iss, next).map_err(Problem::internal)
    }
}
