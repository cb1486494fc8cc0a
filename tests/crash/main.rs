//! Crash safety, proven: the service runs as a child process with crash
//! points armed, conversations are driven against it, and it dies by SIGKILL
//! at those points — after the inbox claim, after the business commit but
//! before the relay is woken, after a delivery but before it is recorded, in
//! the middle of a relay batch — and is restarted, again and again. Clients
//! retry a step whose answer they did not get, with the same link (tokens
//! are stateless, so any link still works after a restart). At the end, with
//! the crash points disarmed and the outbox drained, every paid checkout has
//! exactly one order, every order exactly one `order.placed` event and one
//! outbox notification, every notification reached the subscriber at least
//! once, and no card was charged twice. Every other checkout is also forked
//! (a second priced branch of its basket, paid after the first, and the
//! basket checked out again after paying): each fork is refused with `409
//! already-paid`, kills or not.
//!
//! Runs with `cargo test --features failpoints --test crash`;
//! `CONVERSANT_CRASH_KILLS` sets the number of kills per engine (default 200).

#[allow(dead_code)] // the recorder is shared with the it tests
#[path = "../it/receiver.rs"]
mod receiver;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use conversant::store::testing::TempPostgres;
use receiver::Receiver;
use serde_json::{Value, json};

const POINTS: &[&str] = &[
    "inbox-after-claim",
    "after-commit",
    "relay-after-send",
    "relay-mid-batch",
];

struct Service {
    child: Child,
    base: String,
    port: u16,
    data_dir: std::path::PathBuf,
    database_url: Option<String>,
    receiver: String,
    /// Settings of this service beyond the harness's own, as environment.
    env: Vec<(&'static str, &'static str)>,
}

impl Service {
    fn start(
        port: u16,
        data_dir: &std::path::Path,
        database_url: Option<&str>,
        receiver: &str,
        crash: &str,
    ) -> Service {
        Service::start_with(port, data_dir, database_url, receiver, crash, Vec::new())
    }

    fn start_with(
        port: u16,
        data_dir: &std::path::Path,
        database_url: Option<&str>,
        receiver: &str,
        crash: &str,
        env: Vec<(&'static str, &'static str)>,
    ) -> Service {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("service.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_conversant"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            // The checkout's pipeline: the participants whose effects and
            // messages are counted (the saga, which also subscribes to
            // order.placed, has its own restart test).
            .args(["--participants", "basket,pricing,payments,orders"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--callback-allow", receiver])
            .args([
                "--retry-schedule",
                "20ms,50ms,100ms,200ms,300ms,500ms,500ms,500ms,1s,1s,1s,1s,1s",
            ])
            .env("CONVERSANT_CRASH_POINTS", crash)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let child = loop {
            let mut child = command.spawn().expect("the service starts");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if line.contains("listening") {
                break child;
            }
            // Killed while starting: the address is announced once the
            // store is open, and by then the relay may be working through
            // what the last run left, past an armed crash point.
            let status = child.wait().unwrap();
            assert!(
                line.is_empty() && !status.success(),
                "unexpected first line: {line:?} ({status})"
            );
        };
        Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: data_dir.to_owned(),
            database_url: database_url.map(str::to_owned),
            receiver: receiver.to_owned(),
            env,
        }
    }

    /// Whether the process was killed (it never exits by itself).
    fn died(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn restart(&mut self, crash: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Service::start_with(
            self.port,
            &self.data_dir.clone(),
            self.database_url.clone().as_deref(),
            &self.receiver.clone(),
            crash,
            self.env.clone(),
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One crash point armed at a time, in turn, so each is exercised.
fn armed(round: usize) -> String {
    format!("{}=0.6", POINTS[round % POINTS.len()])
}

struct Harness {
    service: Service,
    client: reqwest::Client,
    kills: usize,
    kills_by_point: HashMap<&'static str, usize>,
    round: usize,
    armed: bool,
    /// Forked branches of paid checkouts that were refused, as they must be.
    forks_refused: usize,
}

impl Harness {
    /// Sends a request until it is answered, restarting the service whenever it died.
    async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        for _ in 0..200 {
            if self.service.died() {
                self.record_kill();
                continue;
            }
            let mut request = self
                .client
                .request(method.clone(), url)
                .timeout(Duration::from_secs(10));
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.json().await.unwrap_or(Value::Null);
                    if status >= 500 && self.service.died() {
                        self.record_kill();
                        continue;
                    }
                    return (status, body);
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if self.service.died() {
                        self.record_kill();
                    }
                }
            }
        }
        panic!("{url} was never answered");
    }

    fn record_kill(&mut self) {
        self.kills += 1;
        *self
            .kills_by_point
            .entry(POINTS[self.round % POINTS.len()])
            .or_default() += 1;
        self.round += 1;
        let crash = if self.armed {
            armed(self.round)
        } else {
            String::new()
        };
        self.service.restart(&crash);
    }

    async fn post(&mut self, url: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, url, Some(&body)).await
    }

    async fn get(&mut self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.service.base);
        self.send(reqwest::Method::GET, &url, None).await
    }

    /// A whole checkout, each step retried with the same link until answered.
    async fn checkout(&mut self, n: usize) -> (String, String) {
        let start = format!("{}/basket/checkouts", self.service.base);
        let (_, basket) = self.post(&start, json!({})).await;
        let sku = ["margherita", "diavola", "miso-soup", "quinoa-bowl"][n % 4];
        let (_, basket) = self
            .post(
                &link(&basket, "add-item"),
                json!({ "sku": sku, "quantity": 1 + n % 3 }),
            )
            .await;
        let (status, priced) = self.post(&link(&basket, "checkout"), json!({})).await;
        assert_eq!(status, 200, "{priced:#}");
        // Every other checkout is forked before it is paid: a second priced
        // branch of the same basket, paid after the first (kills included).
        let fork = if n % 2 == 0 {
            let (status, fork) = self.post(&link(&basket, "checkout"), json!({})).await;
            assert_eq!(status, 200, "{fork:#}");
            Some(fork)
        } else {
            None
        };
        let card = json!({ "card_number": "4242424242424242" });
        let (status, paid) = self.post(&link(&priced, "pay"), card.clone()).await;
        assert_eq!(status, 200, "{paid:#}");
        if let Some(fork) = fork {
            let (status, refused) = self.post(&link(&fork, "pay"), card).await;
            assert_eq!(status, 409, "a forked branch paid again: {refused:#}");
            assert_eq!(refused["type"], "/problems/already-paid");
            // And Back to the basket: its checkout is refused too.
            let (status, refused) = self.post(&link(&basket, "checkout"), json!({})).await;
            assert_eq!(status, 409, "a paid basket was priced again: {refused:#}");
            self.forks_refused += 1;
        }
        (
            paid["order_id"].as_str().unwrap().to_owned(),
            paid["state"]["payment"]["payment_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }
}

fn link(body: &Value, rel: &str) -> String {
    body["_links"][rel]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no {rel} link in {body:#}"))
        .to_owned()
}

async fn crash_and_recover(database_url: Option<String>) {
    let kills_wanted: usize = std::env::var("CONVERSANT_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(200);
    let receiver = Receiver::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        free_port(),
        data_dir.path(),
        database_url.as_deref(),
        &receiver.authority(),
        &armed(0),
    );
    let mut h = Harness {
        service,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        kills: 0,
        kills_by_point: HashMap::new(),
        round: 0,
        armed: true,
        forks_refused: 0,
    };
    let subscribe = format!("{}/orders/subscriptions", h.service.base);
    let (status, _) = h
        .post(
            &subscribe,
            json!({ "callback_url": receiver.url("/orders") }),
        )
        .await;
    assert_eq!(status, 201);

    let started = Instant::now();
    let mut paid: HashMap<String, String> = HashMap::new();
    let mut n = 0;
    while h.kills < kills_wanted {
        let (order, payment) = h.checkout(n).await;
        if let Some(earlier) = paid.insert(order.clone(), payment.clone()) {
            assert_eq!(
                earlier, payment,
                "a retried checkout was charged with another payment"
            );
        }
        n += 1;
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "took too long: {} kills",
            h.kills
        );
    }

    // Disarm, let the relay drain, and look at what survived.
    h.armed = false;
    h.service.restart("");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, pricing) = h.get("/pricing/outbox").await;
        let (_, orders) = h.get("/orders/outbox").await;
        assert_eq!(pricing["dead"], 0, "{pricing:#}");
        assert_eq!(orders["dead"], 0, "{orders:#}");
        if pricing["pending"] == 0 && orders["pending"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox did not drain: {pricing:#} {orders:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for order in paid.keys() {
        let (status, body) = h.get(&format!("/orders/orders/{order}")).await;
        assert_eq!(status, 200, "paid order {order} was lost: {body:#}");
        assert_eq!(body["status"], "placed");
    }
    let mut events: Vec<Value> = Vec::new();
    let mut page = "/orders/events?limit=100".to_owned();
    loop {
        let (_, body) = h.get(&page).await;
        let batch = body["_embedded"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        events.extend(batch);
        page = link(&body, "next")
            .split_once("/orders")
            .unwrap()
            .1
            .to_owned();
        page = format!("/orders{page}");
    }
    let announced: HashSet<String> = events
        .iter()
        .map(|e| e["data"]["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        announced.len(),
        events.len(),
        "an order was announced twice"
    );
    assert_eq!(
        announced,
        paid.keys().cloned().collect(),
        "orders and paid checkouts differ"
    );

    let event_ids: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let deliveries = receiver.received();
    let delivered: HashSet<String> = deliveries
        .iter()
        .map(|d| d.header("webhook-id").to_owned())
        .collect();
    assert_eq!(
        delivered, event_ids,
        "every event reaches the subscriber at least once"
    );

    let (outbox_rows, captured, charged_twice) = count_effects(&h.service).await;
    assert_eq!(
        outbox_rows as usize,
        events.len(),
        "one outbox notification per order"
    );
    assert_eq!(
        captured as usize,
        paid.len(),
        "one captured payment per paid checkout"
    );
    assert_eq!(charged_twice, 0, "no conversation was charged twice");

    println!(
        "crash harness ({}): {} kills {:?}, {} checkouts paid, {} forked branches refused, {} orders, {} notifications delivered {} times ({} duplicates), {:.1}s",
        if h.service.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        h.kills,
        h.kills_by_point,
        paid.len(),
        h.forks_refused,
        announced.len(),
        delivered.len(),
        deliveries.len(),
        deliveries.len() - delivered.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Counts, straight from the database: orders' outbox notifications (still
/// in the outbox, or delivered and moved to `outbox_sent`), captured
/// payments, and conversations with more than one capture.
async fn count_effects(service: &Service) -> (i64, i64, i64) {
    const OUTBOX: &str = "SELECT (SELECT COUNT(*) FROM outbox WHERE participant = 'orders' AND kind = 'webhook') \
         + (SELECT COUNT(*) FROM outbox_sent WHERE participant = 'orders' AND kind = 'webhook')";
    const CAPTURED: &str = "SELECT COUNT(*) FROM payments WHERE status = 'captured'";
    const TWICE: &str = "SELECT COUNT(*) FROM (SELECT conversation_id FROM payments WHERE status = 'captured' \
         GROUP BY conversation_id HAVING COUNT(*) > 1) AS twice";
    match &service.database_url {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let mut out = [0i64; 3];
            for (i, sql) in [OUTBOX, CAPTURED, TWICE].iter().enumerate() {
                out[i] = sqlx::query_scalar(*sql).fetch_one(&pool).await.unwrap();
            }
            (out[0], out[1], out[2])
        }
        None => {
            let path = service.data_dir.join("conversant.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let mut out = [0i64; 3];
            for (i, sql) in [OUTBOX, CAPTURED, TWICE].iter().enumerate() {
                out[i] = sqlx::query_scalar(*sql).fetch_one(&pool).await.unwrap();
            }
            (out[0], out[1], out[2])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_repeated_sigkill() {
    crash_and_recover(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_repeated_sigkill() {
    on_postgres(crash_and_recover).await;
}

/// Runs `test` on a database of a throwaway PostgreSQL cluster (skipped,
/// loudly, where PostgreSQL is not installed: see `TempPostgres::start`).
async fn on_postgres<F: Future<Output = ()>>(test: impl FnOnce(Option<String>) -> F) {
    let Some(postgres) = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
    else {
        return;
    };
    let url = postgres.new_database().await;
    test(Some(url)).await;
    drop(postgres);
}

/// An Idempotency-Key whose request was killed mid-way (the process died
/// holding it in flight) answers 409 while its lease runs, then is usable
/// again: the retry pays, once.
async fn a_killed_request_frees_its_idempotency_key_after_its_lease(database_url: Option<String>) {
    const LEASE: Duration = Duration::from_secs(5);
    let receiver = Receiver::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("CONVERSANT_REQUEST_TIMEOUT", "4"),
        ("CONVERSANT_IDEMPOTENCY_LEASE", "5"),
    ];
    let mut service = Service::start_with(
        free_port(),
        data_dir.path(),
        database_url.as_deref(),
        &receiver.authority(),
        "",
        env,
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |url: String, key: Option<&'static str>, body: Value| {
        let mut request = client
            .post(url)
            .json(&body)
            .timeout(Duration::from_secs(10));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };
    let basket: Value = post(
        format!("{}/basket/checkouts", service.base),
        None,
        json!({}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let basket: Value = post(
        link(&basket, "add-item"),
        None,
        json!({ "sku": "margherita", "quantity": 1 }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let priced: Value = post(link(&basket, "checkout"), None, json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pay = link(&priced, "pay");
    let card = json!({ "card_number": "4242424242424242" });

    // Armed: payments' inbox claim kills the process while pay, holding the key, waits.
    service.restart("inbox-after-claim=1");
    let killed = post(pay.clone(), Some("pay-once"), card.clone()).await;
    assert!(killed.is_err(), "the process died mid-request: {killed:?}");
    let died = Instant::now();
    while !service.died() {
        assert!(
            died.elapsed() < Duration::from_secs(5),
            "the service did not die"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.restart("");

    let mut refused_in_flight = 0;
    let paid = loop {
        let response = post(pay.clone(), Some("pay-once"), card.clone())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 409 {
            assert_eq!(body["type"], "/problems/idempotency-in-flight", "{body:#}");
            assert!(
                died.elapsed() < LEASE + Duration::from_secs(5),
                "the key stuck"
            );
            refused_in_flight += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(status, 200, "{body:#}");
        break body;
    };
    assert!(
        died.elapsed() >= LEASE - Duration::from_secs(1),
        "the key came free before its lease ended"
    );
    assert!(
        refused_in_flight > 0,
        "the dead request's key held while its lease ran"
    );
    let replayed = post(pay.clone(), Some("pay-once"), card).await.unwrap();
    assert_eq!(replayed.status(), 200);
    assert_eq!(
        replayed
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let (_, captured, charged_twice) = count_effects(&service).await;
    assert_eq!((captured, charged_twice), (1, 0), "{paid:#}");
    println!(
        "idempotency lease ({}): the killed request's key answered 409 {refused_in_flight} times, then paid once after {:.1}s",
        if database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        died.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_frees_a_killed_request_s_idempotency_key_after_its_lease() {
    a_killed_request_frees_its_idempotency_key_after_its_lease(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_frees_a_killed_request_s_idempotency_key_after_its_lease() {
    on_postgres(a_killed_request_frees_its_idempotency_key_after_its_lease).await;
}
