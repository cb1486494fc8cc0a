//! The test harness: servers on port 0 with a fresh data directory each, and
//! a small HAL client that follows links as any client would.
#![allow(dead_code)] // a harness: not every test module uses every helper

use std::net::SocketAddr;

use conversant::config::Config;
use serde_json::Value;
use tokio::sync::oneshot;

/// A running server.
pub struct TestApp {
    pub address: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Starts a server hosting every participant.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Starts a server whose configuration `tweak` adjusts.
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    spawn_in(data_dir, tweak).await
}

/// Starts a server over an existing data directory (to test restarts).
pub async fn spawn_in(data_dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::new(data_dir.path());
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(conversant::server::run(config, listener, async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        base: format!("http://{address}"),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        data_dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, url: &str) -> Response {
        Response::from(self.client.get(self.abs(url)).send().await.expect("GET")).await
    }

    pub async fn post_json(&self, url: &str, body: Value) -> Response {
        Response::from(
            self.client
                .post(self.abs(url))
                .json(&body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    pub async fn post_empty(&self, url: &str) -> Response {
        Response::from(self.client.post(self.abs(url)).send().await.expect("POST")).await
    }

    fn abs(&self, url: &str) -> String {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            self.url(url)
        }
    }

    /// Stops the server and waits for it, returning the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
        std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap())
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response {
            status,
            headers,
            body,
        }
    }

    /// The href of a link of the body, which must exist.
    pub fn link(&self, rel: &str) -> String {
        self.body["_links"][rel]["href"]
            .as_str()
            .unwrap_or_else(|| panic!("no `{rel}` link in {:#}", self.body))
            .to_owned()
    }

    pub fn has_link(&self, rel: &str) -> bool {
        self.body["_links"][rel]["href"].is_string()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The problem `type` of a problem document.
    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }
}

/// The token carried by a link (`?state=`).
pub fn token_of(href: &str) -> String {
    href.split_once("state=")
        .map(|(_, t)| t.to_owned())
        .expect("a state link")
}

/// Starts two servers that know each other's address (a split deployment):
/// both ports are bound first, then `tweak` gets both configurations and
/// both base URLs, then both servers start.
pub async fn spawn_pair(
    tweak: impl FnOnce(&mut Config, &str, &mut Config, &str),
) -> (TestApp, TestApp) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, mut b) = (Config::new(dir_a.path()), Config::new(dir_b.path()));
    let listener_a = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let listener_b = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_a = format!("http://{}", listener_a.local_addr().unwrap());
    let base_b = format!("http://{}", listener_b.local_addr().unwrap());
    tweak(&mut a, &base_a, &mut b, &base_b);
    (start(a, listener_a, dir_a), start(b, listener_b, dir_b))
}

/// Runs `config` on a bound listener.
fn start(
    config: Config,
    listener: tokio::net::TcpListener,
    data_dir: tempfile::TempDir,
) -> TestApp {
    let address = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(conversant::server::run(config, listener, async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        base: format!("http://{address}"),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        data_dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl Response {
    /// Reads a response the test sent with `app.client` directly.
    pub async fn read(r: reqwest::Response) -> Self {
        Self::from(r).await
    }
}
