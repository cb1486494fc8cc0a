//! The PostgreSQL leg: the modules of `tests/it`, compiled a second time with
//! every server on its own database of one throwaway PostgreSQL cluster (see
//! `tests/it/support.rs`). Without PostgreSQL installed the leg says so loudly
//! and is skipped; with `CI` set that is a failure.

#[path = "../it/basket.rs"]
mod basket;
#[path = "../it/bench.rs"]
mod bench;
#[path = "../it/conversations.rs"]
mod conversations;
#[path = "../it/exchanges.rs"]
mod exchanges;
#[path = "../it/housekeeping.rs"]
mod housekeeping;
#[path = "../it/idempotency.rs"]
mod idempotency;
#[path = "../it/instances.rs"]
mod instances;
#[path = "../it/keys.rs"]
mod keys;
#[path = "../it/once_only.rs"]
mod once_only;
#[path = "../it/openapi.rs"]
mod openapi;
#[path = "../it/outbox.rs"]
mod outbox;
#[path = "../it/receiver.rs"]
mod receiver;
#[path = "../it/repair.rs"]
mod repair;
#[path = "../it/robust_out_only.rs"]
mod robust_out_only;
#[path = "../it/routing_slip.rs"]
mod routing_slip;
#[path = "../it/saga.rs"]
mod saga;
#[path = "../it/serve.rs"]
mod serve;
#[path = "../it/shutdown.rs"]
mod shutdown;
#[path = "../it/snapshots.rs"]
mod snapshots;
#[path = "../it/solicit.rs"]
mod solicit;
#[path = "../it/split.rs"]
mod split;
#[path = "../it/support.rs"]
mod support;
#[path = "../it/tokens.rs"]
mod tokens;
#[path = "../it/turn_taking.rs"]
mod turn_taking;

/// The engine of every server these tests start.
pub const ENGINE: support::Engine = support::Engine::Postgres;

/// A module added to `tests/it/main.rs` but not here would never run on
/// PostgreSQL, and nothing else would say so.
#[test]
fn every_module_of_tests_it_runs_on_postgres_too() {
    fn modules(main_rs: &str) -> Vec<&str> {
        let mut names: Vec<&str> = main_rs
            .lines()
            .map(|line| line.trim().trim_start_matches("pub "))
            .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
            .collect();
        names.sort_unstable();
        names
    }
    assert_eq!(
        modules(include_str!("main.rs")),
        modules(include_str!("../it/main.rs")),
        "tests/pg/main.rs must declare every module of tests/it/main.rs \
         (with #[path = \"../it/<module>.rs\"])"
    );
}
