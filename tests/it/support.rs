//! The test harness: servers on port 0 with a fresh data directory each, and
//! a small HAL client that follows links as any client would.
//!
//! # Two legs, one suite
//!
//! The same test modules are compiled into two binaries: `tests/it` runs every
//! server on SQLite (a file in its data directory), `tests/pg` on PostgreSQL.
//! Each binary's root says which with `pub const ENGINE: Engine`, and the
//! `spawn_*` functions read it. On PostgreSQL every server gets a database of
//! its own on one throwaway cluster ([`TempPostgres`]) that the binary starts on
//! its first server and that stops when the process exits.
//!
//! Without the PostgreSQL binaries (and `CI` unset) the PostgreSQL leg cannot
//! run. A test cannot be marked skipped at run time, nor made to return from
//! its caller, so the first `spawn_*` of the leg prints one loud line and ends
//! the test binary with success: `cargo test` passes and says the leg was
//! skipped. With `CI` set, the missing binaries fail every test instead.
#![allow(dead_code)] // a harness: not every test module uses every helper

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use conversant::config::Config;
use conversant::store::testing::TempPostgres;
use serde_json::Value;
use tokio::sync::oneshot;

/// The storage engine of the servers a test binary starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// What a stopped server leaves behind for [`spawn_in`] to start over: its
/// data directory (keys, and the SQLite file) and, on PostgreSQL, its database.
#[derive(Debug)]
pub struct DataDir {
    pub dir: tempfile::TempDir,
    /// The server's PostgreSQL database; `None` on SQLite.
    pub database_url: Option<String>,
}

impl DataDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A bare directory: [`spawn_in`] gives it a fresh database on PostgreSQL.
impl From<tempfile::TempDir> for DataDir {
    fn from(dir: tempfile::TempDir) -> Self {
        DataDir {
            dir,
            database_url: None,
        }
    }
}

/// A running server.
pub struct TestApp {
    pub address: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// The server's PostgreSQL database; `None` on SQLite.
    pub database_url: Option<String>,
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

/// Starts a server over an existing data directory (to test restarts): what
/// [`TestApp::stop`] returned, so on PostgreSQL the same database too.
pub async fn spawn_in(data_dir: impl Into<DataDir>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let DataDir { dir, database_url } = data_dir.into();
    let mut config = Config::new(dir.path());
    config.database_url = match database_url {
        Some(url) => Some(url),
        None => fresh_database().await,
    };
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start(config, listener, dir)
}

/// Starts two servers that know each other's address (a split deployment):
/// both ports are bound first, then `tweak` gets both configurations and
/// both base URLs, then both servers start. Each has its own store.
pub async fn spawn_pair(
    tweak: impl FnOnce(&mut Config, &str, &mut Config, &str),
) -> (TestApp, TestApp) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, mut b) = (Config::new(dir_a.path()), Config::new(dir_b.path()));
    a.database_url = fresh_database().await;
    b.database_url = fresh_database().await;
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
    let database_url = config.database_url.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(conversant::server::run(config, listener, async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        base: format!("http://{address}"),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        data_dir,
        database_url,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// A new empty database of this leg's engine, for a test that opens a
/// store itself: an SQLite file in `dir`, or a database of the cluster.
pub async fn scratch_database(dir: &Path) -> String {
    match fresh_database().await {
        Some(url) => url,
        None => format!("sqlite://{}?mode=rwc", dir.join("scratch.db").display()),
    }
}

/// The database URL for a new server: `None` on SQLite (the server makes its
/// file in its data directory), a new empty database on PostgreSQL.
async fn fresh_database() -> Option<String> {
    match crate::ENGINE {
        Engine::Sqlite => None,
        Engine::Postgres => Some(cluster().new_database().await),
    }
}

/// The PostgreSQL cluster of this test binary, started by the first caller.
///
/// Every `#[tokio::test]` has a runtime of its own, so the cluster must not
/// belong to any: it is started by plain processes on a thread of its own,
/// lives in a `static` until the process exits (its watchdog then stops it
/// and deletes its directory), and databases are created over short-lived
/// connections by whichever test asks.
fn cluster() -> &'static TempPostgres {
    static CLUSTER: OnceLock<Result<TempPostgres, String>> = OnceLock::new();
    let started = CLUSTER.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("temp-postgres".into())
            .spawn(TempPostgres::start)
            .expect("spawn a thread")
            .join();
        match started {
            Ok(Some(cluster)) => Ok(cluster),
            // Here, so that only one thread exits while the others wait.
            Ok(None) => skip_the_postgres_leg(),
            Err(panic) => Err(panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(no message)".to_owned())),
        }
    });
    match started {
        Ok(cluster) => cluster,
        Err(why) => panic!("the PostgreSQL leg cannot run: {why}"),
    }
}

/// Ends the PostgreSQL leg with success, loudly (see the module docs).
fn skip_the_postgres_leg() -> ! {
    // Straight to the file descriptor: the test harness captures `eprintln!`
    // and shows it only for failing tests.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIPPED: the PostgreSQL leg (tests/pg) did not run: no PostgreSQL server \
         binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin. Install them \
         to run it; `.ci/run` installs them and fails without them. ***\n"
    );
    std::process::exit(0)
}

impl TestApp {
    /// The URL of this server's database, whichever the engine.
    /// Waits until deliveries has subscribed to orders' events, which it
    /// does in the background once the server is up: an order placed
    /// before that is published to the feed only, and no delivery starts.
    pub async fn deliveries_subscribed(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // The server may still be creating its database.
            if let Ok(store) = conversant::store::Store::connect(&self.database()).await {
                let subscribed = store.saga_subscription("orders").await;
                store.close().await;
                if matches!(subscribed, Ok(Some(_))) {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "deliveries did not subscribe to orders"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    pub fn database(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data_dir.path().join("conversant.db").display()
            )
        })
    }

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

    /// Stops the server and waits for it, returning its data directory and
    /// database for [`spawn_in`].
    pub async fn stop(mut self) -> DataDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
        DataDir {
            dir: std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap()),
            database_url: self.database_url.take(),
        }
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

impl Response {
    /// Reads a response the test sent with `app.client` directly.
    pub async fn read(r: reqwest::Response) -> Self {
        Self::from(r).await
    }
}
