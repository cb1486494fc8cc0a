//! `conversant serve` as a process: it announces its address only once it
//! can answer, a start that fails announces nothing, and SIGTERM stops it.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ANNOUNCEMENT: &str = "conversant listening on http://";

/// `conversant serve` on port 0 over `data_dir`, with `extra` flags.
fn serve(data_dir: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_conversant"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start conversant serve")
}

#[tokio::test]
async fn a_start_that_fails_exits_non_zero_without_announcing_an_address() {
    let dir = tempfile::tempdir().unwrap();
    // The database's directory does not exist: it cannot be opened.
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("missing").join("conversant.db").display()
    );
    let child = serve(dir.path(), &["--database-url", &url]);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the failed start exits")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{:?}", output.status);
    assert!(
        !stdout.contains(ANNOUNCEMENT),
        "announced a server that never opened: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("opening the database"), "{stderr}");
    // And why: the driver's own words, not only that it failed.
    assert!(
        stderr.contains("unable to open database file"),
        "the cause is named: {stderr}"
    );
}

#[tokio::test]
async fn the_announced_server_answers_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve(dir.path(), &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("an announcement")
        .unwrap()
        .expect("a line on stdout");
    let base = line
        .strip_prefix(ANNOUNCEMENT)
        .unwrap_or_else(|| panic!("not the announcement: {line}"));
    assert!(
        dir.path().join("conversant.db").exists(),
        "the database is open before the address is announced"
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = client
        .get(format!("http://{base}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the announced server answers");
    assert_eq!(health.status(), 200);

    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("SIGTERM stops the server promptly")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_token_leeway_over_300_seconds_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let child = serve(dir.path(), &["--token-leeway", "301"]);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the refused start exits")
        .unwrap();
    assert!(!output.status.success(), "{:?}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(ANNOUNCEMENT), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--token-leeway 301") && stderr.contains("at most 300 seconds"),
        "{stderr}"
    );
    assert!(
        dir.path().read_dir().unwrap().next().is_none(),
        "nothing was created before the refusal"
    );
}
