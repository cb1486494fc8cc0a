//! A throwaway PostgreSQL cluster for tests.
//!
//! Every storage test runs on both engines, so tests need a PostgreSQL server
//! without anyone setting one up. [`TempPostgres::start`] finds the server
//! binaries (`initdb`, `pg_ctl`; on `PATH` or under `/usr/lib/postgresql/*/bin`),
//! creates a cluster in a fresh temporary directory, starts it on a free port of
//! 127.0.0.1 (its unix socket stays inside the directory) with durability turned
//! off for speed, and trusts local connections as the `postgres` superuser.
//! PostgreSQL refuses to run as root, so when we are root the directory is
//! handed to `nobody` and the binaries run through `runuser`.
//!
//! Dropping the handle stops the cluster and removes the directory. A watchdog
//! process does the same if the test process exits without dropping it (a
//! cluster kept in a `static`, or a panic that aborts), so no cluster outlives
//! its tests.
//!
//! Without the binaries, `start` returns `None` after a loud warning that the
//! PostgreSQL leg is skipped — unless `CI` is set, where both legs must run and
//! it panics instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sqlx::Connection;

/// The user that runs PostgreSQL when the tests run as root.
const UNPRIVILEGED_USER: &str = "nobody";

/// A running throwaway PostgreSQL cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_user: Option<&'static str>,
    watchdog: Option<Child>,
}

impl TempPostgres {
    /// Starts a cluster, or returns `None` (outside CI) when PostgreSQL is not installed.
    ///
    /// # Panics
    ///
    /// When the binaries exist but the cluster cannot be started, and in CI
    /// when they do not exist.
    pub fn start() -> Option<TempPostgres> {
        let Some(bin) = find_binaries() else {
            if in_ci() {
                panic!("CI is set but PostgreSQL (initdb, pg_ctl) is not installed");
            }
            eprintln!(
                "\n*** WARNING: PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in \
                 /usr/lib/postgresql/*/bin: the PostgreSQL leg of these tests is SKIPPED. ***\n"
            );
            return None;
        };
        let as_user = running_as_root().then_some(UNPRIVILEGED_USER);
        let dir = std::env::temp_dir().join(format!("conversant-pg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir(&dir).expect("create the cluster directory");
        if let Some(user) = as_user {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("hand the directory over");
        }
        let mut pg = TempPostgres {
            dir,
            bin,
            port: 0,
            as_user,
            watchdog: None,
        };
        pg.init();
        pg.watchdog = Some(pg.spawn_watchdog());
        pg.port = pg.start_on_free_port();
        Some(pg)
    }

    /// A URL for the `postgres` database of the cluster.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Creates an empty database and returns its URL, so tests sharing one
    /// cluster do not share tables.
    pub async fn new_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&self.url())
            .await
            .expect("connect to cluster");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.ok();
        self.url_for(&name)
    }

    fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command running `program` from the PostgreSQL bin directory as the cluster's user.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn init(&self) {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server, retrying when the free port we picked is taken meanwhile.
    fn start_on_free_port(&self) -> u16 {
        let log = self.dir.join("server.log");
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=300",
                self.dir.display()
            );
            let status = self
                .command("pg_ctl")
                .arg("start")
                .args(["-w", "-t", "60", "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(["-o", &options])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run pg_ctl start");
            if status.success() {
                return port;
            }
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("PostgreSQL did not start; server log:\n{log}");
    }

    /// Stops the server and deletes the directory once this process is gone.
    fn spawn_watchdog(&self) -> Child {
        const SCRIPT: &str = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
shift
"$@" >/dev/null 2>&1
rm -rf "$DIR""#;
        let stop = self.command("pg_ctl");
        let mut args = vec![stop.get_program().to_owned()];
        args.extend(stop.get_args().map(ToOwned::to_owned));
        Command::new("sh")
            .args(["-c", SCRIPT, "watchdog"])
            .arg(std::process::id().to_string())
            .args(args)
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .env("DIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the cluster watchdog")
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            watchdog.kill().ok();
            watchdog.wait().ok();
        }
        if self.port != 0 {
            self.command("pg_ctl")
                .args(["stop", "-w", "-m", "fast", "-D"])
                .arg(self.data())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok();
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The directory holding `initdb` and `pg_ctl`: `PATH` first, then the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| has_both(dir));
    if let Some(dir) = on_path {
        // Resolve symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb,
        // since initdb finds `postgres` next to its real location.
        return std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf))
            .filter(|dir| has_both(dir))
            .or(Some(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    command_output(Command::new("id").arg("-u")) == "0"
}

fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        command_output(Command::new("id").args([flag, user]))
            .parse()
            .unwrap_or_else(|_| panic!("user {user} must exist to run PostgreSQL as non-root"))
    };
    (id("-u"), id("-g"))
}

fn command_output(command: &mut Command) -> String {
    command
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("find a free port")
}
