//! Crash points: where the crash-safety harness kills the process.
//!
//! Compiled in only with the `failpoints` feature (the crash tests turn it
//! on); otherwise [`point`] is an empty inline function. With the feature,
//! `CONVERSANT_CRASH_POINTS="name=probability,..."` makes the process send
//! itself SIGKILL at a named point with that probability — no unwinding, no
//! destructors, no flushing: exactly what a power cut or an OOM kill does.
//!
//! The points:
//! - `inbox-after-claim`: the inbox row is written, the transaction not committed;
//! - `after-commit`: the effect and its outbox messages are committed, the relay not woken;
//! - `relay-after-send`: a message was delivered, its delivery not recorded;
//! - `relay-mid-batch`: between two deliveries of one claimed batch.

#[cfg(feature = "failpoints")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    fn points() -> &'static HashMap<String, f64> {
        static POINTS: OnceLock<HashMap<String, f64>> = OnceLock::new();
        POINTS.get_or_init(|| {
            std::env::var("CONVERSANT_CRASH_POINTS")
                .unwrap_or_default()
                .split(',')
                .filter_map(|entry| {
                    let (name, p) = entry.split_once('=')?;
                    Some((name.trim().to_owned(), p.trim().parse().ok()?))
                })
                .collect()
        })
    }

    pub fn point(name: &str) {
        let Some(&probability) = points().get(name) else {
            return;
        };
        let mut bytes = [0u8; 4];
        if aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes)
            .is_err()
        {
            return;
        }
        if f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) < probability {
            eprintln!("crash point `{name}`: SIGKILL");
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

/// Maybe dies here (only with the `failpoints` feature and a configured probability).
#[cfg(feature = "failpoints")]
pub fn point(name: &str) {
    enabled::point(name);
}

/// Crash points are compiled out without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn point(_name: &str) {}
