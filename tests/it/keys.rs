//! Signing keys: kept across restarts, published as a JWKS without private
//! material, rotated with the `keys` command, and the HS256 alternative for a
//! single trust domain.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use conversant::conversation::Signing;
use conversant::participant::Participant;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{TestApp, spawn_app, spawn_in, spawn_with, token_of};
use crate::tokens::decode;

const BIN: &str = env!("CARGO_BIN_EXE_conversant");

/// The `conversant` binary with no `CONVERSANT_*` setting inherited.
fn conversant(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("CONVERSANT_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `conversant keys ...` to completion, whatever its outcome.
async fn keys_output(args: &[&str], data_dir: &Path) -> std::process::Output {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", data_dir.to_str().unwrap()]);
    conversant(&all).output().await.expect("run conversant")
}

/// Runs `conversant keys ...` to completion; its stdout.
async fn keys_command(args: &[&str], data_dir: &Path) -> String {
    let output = keys_output(args, data_dir).await;
    assert!(
        output.status.success(),
        "keys {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status, 200);
    response.body["keys"].as_array().expect("keys").clone()
}

fn kids_of(keys: &[Value], participant: Participant) -> Vec<String> {
    keys.iter()
        .filter_map(|k| k["kid"].as_str())
        .filter(|kid| kid.starts_with(&format!("{participant}.")))
        .map(str::to_owned)
        .collect()
}

/// The `kid` that signed the next-step links of a fresh basket.
async fn basket_signing_kid(app: &TestApp) -> String {
    let basket = app.post_empty("/basket/checkouts").await;
    let (header, _) = decode(&token_of(&basket.link("add-item")));
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_jwks_lists_one_public_key_per_hosted_participant_and_nothing_private() {
    let app = spawn_app().await;
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), Participant::ALL.len());
    for participant in Participant::ALL {
        assert_eq!(kids_of(&keys, participant).len(), 1, "{participant}");
    }
    for key in &keys {
        let members: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(members.len(), 6, "{key}");
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].is_string());
        assert_eq!(key["x"].as_str().unwrap().len(), 43, "32 bytes, base64url");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "`{private}` published: {key}");
        }
    }
}

#[tokio::test]
async fn the_jwks_of_a_partial_deployment_lists_only_its_participants() {
    let app = spawn_with(|c| c.participants = vec![Participant::Basket, Participant::Stores]).await;
    let keys = jwks(&app).await;
    assert_eq!(keys.len(), 2);
    assert_eq!(kids_of(&keys, Participant::Basket).len(), 1);
    assert_eq!(kids_of(&keys, Participant::Stores).len(), 1);
}

#[tokio::test]
async fn keys_survive_a_restart() {
    let app = spawn_app().await;
    let before = jwks(&app).await;
    let kid = basket_signing_kid(&app).await;
    let dir = app.stop().await;
    let app = spawn_in(dir, |_| {}).await;
    assert_eq!(jwks(&app).await, before);
    assert_eq!(basket_signing_kid(&app).await, kid);
}

#[tokio::test]
async fn keys_rotate_from_the_command_line_and_both_keys_are_published() {
    let app = spawn_app().await;
    let old = basket_signing_kid(&app).await;
    let dir = app.stop().await;

    let said = keys_command(&["rotate", "--participant", "basket"], dir.path()).await;
    let listed = keys_command(&["list", "--participant", "basket"], dir.path()).await;
    let live: Vec<&str> = listed
        .lines()
        .filter(|l| l.ends_with("\tlive"))
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(live.len(), 2, "{listed}");
    assert_eq!(live[0], old);
    let new = live[1];
    assert!(said.starts_with(new), "{said}");

    let app = spawn_in(dir, |_| {}).await;
    let published = kids_of(&jwks(&app).await, Participant::Basket);
    assert_eq!(published, vec![old.clone(), new.to_owned()]);
    assert_eq!(basket_signing_kid(&app).await, new, "the new key signs");
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks() {
    let app = spawn_app().await;
    let old = basket_signing_kid(&app).await;
    let dir = app.stop().await;
    keys_command(&["rotate", "--participant", "basket"], dir.path()).await;
    keys_command(
        &["retire", "--participant", "basket", "--kid", &old],
        dir.path(),
    )
    .await;
    let listed = keys_command(&["list", "--participant", "basket"], dir.path()).await;
    assert!(listed.contains(&format!("{old}\t")) && listed.contains("\tretired"));

    let app = spawn_in(dir, |_| {}).await;
    let published = kids_of(&jwks(&app).await, Participant::Basket);
    assert_eq!(published.len(), 1);
    assert_ne!(published[0], old);
}

#[tokio::test]
async fn keys_list_without_a_data_directory_creates_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let nope = dir.path().join("nope");
    let output = keys_output(&["list", "--participant", "basket"], &nope).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{:?}: {stderr}", output.status);
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
    assert!(
        stderr.contains(&format!(
            "the data directory {} does not exist",
            nope.display()
        )) && stderr.contains("no keys to list"),
        "{stderr}"
    );
    assert!(!nope.exists(), "keys list created the data directory");
}

#[tokio::test]
async fn keys_list_of_a_participant_without_keys_creates_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = keys_output(&["list", "--participant", "basket"], dir.path()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{:?}: {stderr}", output.status);
    assert!(
        stderr.contains("basket has no key file at") && stderr.contains("no keys to list"),
        "{stderr}"
    );
    assert!(
        dir.path().read_dir().unwrap().next().is_none(),
        "keys list created something in the data directory"
    );
}

// ---------------------------------------------------------------------------
// HS256: one trust domain, one shared secret of at least 32 bytes.

/// `conversant serve --signing hs256` with `secret`; what the process did
/// within a few seconds: `Err(stderr)` if it exited, `Ok(first line)` if it
/// started listening (the process is then killed).
async fn serve_hs256(secret: &str) -> Result<String, (i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    // A data directory that does not exist yet: HS256 writes no key files,
    // so the server itself must create it for its database.
    let dir = dir.path().join("fresh");
    let mut child = conversant(&[
        "serve",
        "--signing",
        "hs256",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ])
    .env("CONVERSANT_HS256_SECRET", secret)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start conversant");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        match stdout.next_line().await.unwrap() {
            Some(line) => Ok(line),
            None => {
                let status = child.wait().await.unwrap();
                let mut stderr = String::new();
                tokio::io::AsyncReadExt::read_to_string(
                    child.stderr.as_mut().unwrap(),
                    &mut stderr,
                )
                .await
                .unwrap();
                Err((status.code().unwrap_or(-1), stderr))
            }
        }
    })
    .await
    .expect("conversant neither started nor exited");
    let _ = child.kill().await;
    outcome
}

#[tokio::test]
async fn serve_refuses_an_hs256_secret_of_31_bytes_with_a_clear_message() {
    let (code, stderr) = serve_hs256(&"s".repeat(31))
        .await
        .expect_err("a 31-byte secret must not start a server");
    assert_ne!(code, 0);
    assert!(
        stderr.contains("31 bytes") && stderr.contains("at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains(&"s".repeat(31)), "the secret was printed");
}

#[tokio::test]
async fn serve_accepts_an_hs256_secret_of_32_bytes() {
    let line = serve_hs256(&"s".repeat(32)).await.expect("it starts");
    assert!(line.contains("listening on http://127.0.0.1:"), "{line}");
}

#[tokio::test]
async fn serve_with_hs256_creates_its_data_directory_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let mut child = conversant(&[
        "serve",
        "--signing",
        "hs256",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .env("CONVERSANT_HS256_SECRET", "s".repeat(32))
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("start conversant");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
        .await
        .expect("it prints its address")
        .unwrap()
        .expect("a line");
    let base = line.rsplit(' ').next().unwrap().to_owned();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
    assert!(healthy, "no answer from {base}/health");
    assert!(data.join("conversant.db").exists());
}

fn hs256(secret: &[u8]) -> impl FnOnce(&mut conversant::config::Config) {
    let secret = secret.to_vec();
    move |c| c.signing = Signing::Hs256 { secret }
}

#[tokio::test]
async fn an_hs256_deployment_walks_the_basket_to_a_priced_checkout() {
    let app = spawn_with(hs256(&[42; 32])).await;
    let basket = app.post_empty("/basket/checkouts").await;
    assert_eq!(basket.status, 201);
    let (header, _) = decode(&token_of(&basket.link("add-item")));
    assert_eq!(header["alg"], "HS256");
    let basket = app
        .post_json(&basket.link("add-item"), json!({ "sku": "margherita" }))
        .await;
    assert_eq!(basket.status, 200, "{:#}", basket.body);
    let priced = app.post_empty(&basket.link("checkout")).await;
    assert_eq!(priced.status, 200, "{:#}", priced.body);
    assert_eq!(priced.body["status"], "priced");
    assert_eq!(priced.body["state"]["total"], 950 + 250);
    assert_eq!(jwks(&app).await, Vec::<Value>::new(), "no public keys");
}

#[tokio::test]
async fn an_hs256_deployment_refuses_an_eddsa_token() {
    let hs = spawn_with(hs256(&[42; 32])).await;
    let ed = spawn_app().await;
    let basket = ed.post_empty("/basket/checkouts").await;
    let response = hs
        .post_json(
            &basket.link("add-item").replace(&ed.base, &hs.base),
            json!({ "sku": "margherita" }),
        )
        .await;
    assert_eq!(response.status, 401, "{:#}", response.body);
    assert_eq!(response.content_type(), "application/problem+json");
}

#[tokio::test]
async fn an_hs256_deployment_refuses_a_token_of_another_secret() {
    let ours = spawn_with(hs256(&[42; 32])).await;
    let theirs = spawn_with(hs256(&[43; 32])).await;
    let basket = theirs.post_empty("/basket/checkouts").await;
    let href = basket.link("add-item").replace(&theirs.base, &ours.base);
    let response = ours.post_json(&href, json!({ "sku": "margherita" })).await;
    assert_eq!(response.status, 401, "{:#}", response.body);
    assert_eq!(response.problem_type(), "/problems/invalid-token");
}
