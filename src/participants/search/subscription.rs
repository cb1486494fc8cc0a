//! Search subscribes to store information at start, then indexes what exists.
//!
//! A task spawned at start plays the subscriber's side of Out-Only over
//! HTTP, as any outside subscriber would: it keeps the subscription it holds
//! if store information still has it, otherwise subscribes anew (a callback
//! on search itself, which the callback policy allows because search is a
//! known participant) and keeps the id and secret in its store. Store
//! information may not be up yet (a split deployment), so the task retries,
//! backing off, until it answers, or until shutdown begins (the next start
//! subscribes then).
//!
//! Once subscribed, search indexes the listings as they are (`GET
//! /stores/stores`), so the stores that existed before it subscribed are
//! found too. Subscribing first and reading second leaves no gap, and the
//! index keeps only the newest version of a store, so an event and the
//! snapshot may arrive in either order.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::unindexable;
use crate::app::AppState;
use crate::participant::Participant::{Search, Stores};
use crate::participants::stores::STORE_UPDATED;
use crate::store::StoreError;
use crate::store::now_ms;
use crate::store::search_index::{IndexedStore, SearchSubscription};

/// The first retry delay; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the subscriber's task (when store information can be reached).
pub fn start(app: AppState) {
    if app.base_of(Stores).is_none() {
        tracing::warn!(
            "store information is neither hosted here nor a peer: search will not be fed"
        );
        return;
    }
    let background = app.background.clone();
    background.until_shutdown(async move {
        let http = match reqwest::Client::builder()
            .no_proxy()
            .timeout(app.config.peer_timeout)
            .build()
        {
            Ok(http) => http,
            Err(e) => return tracing::error!(error = %e, "search cannot build its HTTP client"),
        };
        let subscriber = Subscriber { app, http };
        subscriber.retry("subscribe", Subscriber::subscribe).await;
        subscriber
            .retry("index the listings", Subscriber::backfill)
            .await;
    });
}

struct Subscriber {
    app: AppState,
    http: reqwest::Client,
}

/// A listing as `GET /stores/stores` shows it.
#[derive(Deserialize)]
struct ListedStore {
    id: String,
    name: String,
    lat: f64,
    lon: f64,
    open: bool,
    version: i64,
}

impl Subscriber {
    /// Runs `step` until it succeeds, backing off between attempts.
    async fn retry<'a, F, Fut>(&'a self, what: &str, step: F)
    where
        F: Fn(&'a Self) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut delay = FIRST_BACKOFF;
        loop {
            match step(self).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::info!(error = %e, ?delay, "search could not {what} yet; retrying")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// Keeps a subscription store information still has, or makes one.
    async fn subscribe(&self) -> Result<(), String> {
        let store = &self.app.store;
        let held = store
            .search_subscriptions_of(Stores.as_str())
            .await
            .map_err(|e| e.to_string())?;
        for subscription in held {
            let url = self
                .app
                .href(Stores, &format!("/subscriptions/{}", subscription.id));
            let (status, body) = self.get(&url).await?;
            match status.as_u16() {
                200 if body["active"] == true => return Ok(()),
                200 | 404 => match store.search_subscription_delete(&subscription.id).await {
                    Ok(()) | Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.to_string()),
                },
                other => return Err(format!("store information answered {other}")),
            }
        }
        let response = self
            .http
            .post(self.app.href(Stores, "/subscriptions"))
            .json(&json!({
                "callback_url": self.app.href(Search, "/notifications"),
                "event_types": [STORE_UPDATED],
            }))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let (Some(id), Some(secret)) = (body["id"].as_str(), body["secret"].as_str()) else {
            return Err(format!("subscribing was answered {status}: {body}"));
        };
        store
            .search_subscription_save(&SearchSubscription {
                id: id.to_owned(),
                publisher: Stores.as_str().to_owned(),
                secret: secret.to_owned(),
                created_at: now_ms(),
            })
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(subscription = id, "search subscribed to store.updated");
        Ok(())
    }

    /// Indexes every listing that can be indexed, as it is now.
    async fn backfill(&self) -> Result<(), String> {
        let (status, body) = self.get(&self.app.href(Stores, "/stores")).await?;
        if !status.is_success() {
            return Err(format!("listing the stores was answered {status}"));
        }
        let listed: Vec<ListedStore> = serde_json::from_value(body["_embedded"]["stores"].clone())
            .map_err(|e| e.to_string())?;
        for store in listed {
            let entry = IndexedStore {
                store_id: store.id,
                name: store.name,
                lat: store.lat,
                lon: store.lon,
                open: store.open,
                version: store.version,
                indexed_at: now_ms(),
            };
            if unindexable(&entry).is_none() {
                self.app
                    .store
                    .search_index_upsert(&entry)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    async fn get(&self, url: &str) -> Result<(http::StatusCode, Value), String> {
        let response = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/hal+json")
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }
}
