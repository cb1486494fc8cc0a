//! Notifications to subscribers: CloudEvents 1.0 over HTTP, signed per
//! Standard Webhooks.
//!
//! Out-Only (publish-subscribe): the publisher speaks first, to whoever
//! subscribed. Each delivery is a structured-mode CloudEvent
//! (`application/cloudevents+json`) with the three Standard Webhooks
//! headers: `webhook-id` (the event id, stable across retries so receivers
//! can de-duplicate), `webhook-timestamp` (unix seconds), and
//! `webhook-signature` (`v1,` + base64 HMAC-SHA-256 over
//! `{id}.{timestamp}.{body}` with the subscription's secret, itself given
//! to the subscriber as `whsec_` + base64).

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// A fresh subscription secret, `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator works");
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The Standard Webhooks signature header value for one delivery.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Some(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// Whether any `v1` signature of a `webhook-signature` header verifies
/// (receivers use this; so do our tests).
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(expected) = sign(secret, id, timestamp, body) else {
        return false;
    };
    header
        .split(' ')
        .any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
}

/// How far a delivery's `webhook-timestamp` may be from now, in seconds
/// (the Standard Webhooks scheme's replay window).
pub const TOLERANCE_SECS: u64 = 300;

/// Whether a delivery's `webhook-timestamp` (Unix seconds) is within
/// [`TOLERANCE_SECS`] of now, whatever number a sender put there.
pub fn is_recent(timestamp: i64) -> bool {
    (crate::store::now_ms() / 1000).abs_diff(timestamp) <= TOLERANCE_SECS
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A CloudEvents 1.0 event in structured mode.
pub fn cloud_event(
    id: &str,
    source: &str,
    kind: &str,
    time: &str,
    subject: &str,
    data: &Value,
) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": kind,
        "time": time,
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn the_published_test_vector_verifies() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sign(secret, id, ts, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(verify(
            secret,
            id,
            ts,
            body,
            "v1,bm9ldHUjKzFob2VudXRob2VodW9lYW9lZWE= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!verify(
            secret,
            id,
            ts + 1,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }

    #[test]
    fn fresh_secrets_sign() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        let sig = sign(&secret, "evt", 1, b"{}").unwrap();
        assert!(verify(&secret, "evt", 1, b"{}", &sig));
    }
}
