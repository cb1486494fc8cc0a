//! The token attack suite: forged, tampered and misused conversation-state
//! tokens sent to a real step (`add-item` of a real basket), one test per
//! attack. Every refusal must be a problem document with the right status,
//! never a 500 (DESIGN §3).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use conversant::config::Config;
use conversant::conversation::KeyRing;
use conversant::conversation::keys::LiveKey;
use conversant::participant::Participant;
use serde_json::{Value, json};

use crate::support::{Response, TestApp, spawn_app, spawn_in, spawn_with, token_of};

// ---------------------------------------------------------------------------
// Forging tokens.

/// `base64url(json)`.
pub fn segment(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// `header.claims`, the signing input.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", segment(header), segment(claims))
}

/// A token with the given signature bytes, whatever they are.
pub fn with_signature(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}",
        signing_input(header, claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// A token signed with an Ed25519 key.
pub fn ed_signed(header: &Value, claims: &Value, key: &Ed25519KeyPair) -> String {
    let input = signing_input(header, claims);
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// A token signed with HMAC (`algorithm` is SHA-256 or SHA-512).
pub fn hmac_signed(
    header: &Value,
    claims: &Value,
    algorithm: hmac::Algorithm,
    secret: &[u8],
) -> String {
    let input = signing_input(header, claims);
    let tag = hmac::sign(&hmac::Key::new(algorithm, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The header and the claims of a token, decoded (not verified).
pub fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let bytes = URL_SAFE_NO_PAD
            .decode(parts.next().expect("a segment"))
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    (next(), next())
}

/// A key pair nobody trusts.
pub fn attacker_key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// The target: a real server, a real basket token, and basket's real key.

struct Target {
    app: TestApp,
    /// Basket's live signing key, read from the data directory.
    key: LiveKey,
    /// A token the server minted for an empty basket (allows `add-item`).
    token: String,
    header: Value,
    claims: Value,
}

async fn target() -> Target {
    target_with(|_| {}).await
}

/// [`target`] on a server whose configuration `tweak` adjusts.
async fn target_with(tweak: impl FnOnce(&mut Config)) -> Target {
    let app = spawn_with(tweak).await;
    let key = basket_key(&app);
    let basket = app.post_empty("/basket/checkouts").await;
    assert_eq!(basket.status, 201);
    let token = token_of(&basket.link("add-item"));
    let (header, claims) = decode(&token);
    assert_eq!(header["kid"], key.kid.as_str());
    Target {
        app,
        key,
        token,
        header,
        claims,
    }
}

/// Basket's newest live key in `app`'s data directory.
pub fn basket_key(app: &TestApp) -> LiveKey {
    KeyRing::load_or_create(app.data_dir.path(), Participant::Basket)
        .unwrap()
        .live()
        .unwrap()
        .pop()
        .unwrap()
}

impl Target {
    /// The real header with some members changed (`null` removes one).
    fn header_with(&self, changes: Value) -> Value {
        merged(&self.header, changes)
    }

    /// The real claims with some members changed (`null` removes one).
    fn claims_with(&self, changes: Value) -> Value {
        merged(&self.claims, changes)
    }

    /// Signed with basket's real key.
    fn signed(&self, header: &Value, claims: &Value) -> String {
        ed_signed(header, claims, &self.key.pair)
    }

    /// Takes `add-item` with the token in `?state=`.
    async fn send(&self, token: &str) -> Response {
        send_add_item(&self.app, token).await
    }
}

fn merged(base: &Value, changes: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in changes.as_object().expect("an object of changes") {
        if v.is_null() {
            out.as_object_mut().unwrap().remove(k);
        } else {
            out[k] = v.clone();
        }
    }
    out
}

async fn send_add_item(app: &TestApp, token: &str) -> Response {
    app.post_json(
        &format!("/basket/checkouts/add-item?state={token}"),
        json!({ "sku": "margherita" }),
    )
    .await
}

/// The response is a refusal with `status`, as a problem document, whose
/// detail says `because` (so a case cannot pass for the wrong reason).
#[track_caller]
fn assert_refused(response: &Response, status: u16, because: &str) {
    assert_eq!(response.status, status, "{:#}", response.body);
    assert_eq!(response.content_type(), "application/problem+json");
    assert!(
        response.problem_type().starts_with("/problems/"),
        "{:#}",
        response.body
    );
    assert_eq!(response.body["status"], status);
    // RFC 9110 §15.5.2: a 401 names the credential it wants; a 403 does not.
    let challenge = response.headers.get("www-authenticate");
    if status == 401 {
        assert_eq!(
            challenge.and_then(|v| v.to_str().ok()),
            Some(r#"Conversation-State realm="conversant""#)
        );
    } else {
        assert!(challenge.is_none(), "{challenge:?} on a {status}");
    }
    let detail = response.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(because),
        "refused for `{detail}`, not `{because}`"
    );
}

// ---------------------------------------------------------------------------
// The positive controls.

#[tokio::test]
async fn a_server_minted_token_works_in_the_query() {
    let t = target().await;
    let response = t.send(&t.token).await;
    assert_eq!(response.status, 200, "{:#}", response.body);
    assert_eq!(response.body["state"]["items"][0]["sku"], "margherita");
}

#[tokio::test]
async fn a_server_minted_token_works_in_the_header() {
    let t = target().await;
    let response = t
        .app
        .client
        .post(t.app.url("/basket/checkouts/add-item"))
        .header("conversation-state", &t.token)
        .json(&json!({ "sku": "margherita" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_token_forged_with_the_real_key_and_the_real_claims_works() {
    // The control for every forged case below: the forging itself is sound.
    let t = target().await;
    let token = t.signed(&t.header, &t.claims);
    assert_eq!(t.send(&token).await.status, 200);
}

// ---------------------------------------------------------------------------
// `alg: none`, and no `alg` at all.

async fn alg_none(spelling: &str, signature: &[u8]) {
    let t = target().await;
    let header = t.header_with(json!({ "alg": spelling }));
    let token = with_signature(&header, &t.claims, signature);
    assert_refused(&t.send(&token).await, 401, "algorithm");
}

#[tokio::test]
async fn alg_none_lowercase_without_signature_is_refused() {
    alg_none("none", b"").await;
}

#[tokio::test]
async fn alg_none_capitalised_without_signature_is_refused() {
    alg_none("None", b"").await;
}

#[tokio::test]
async fn alg_none_uppercase_without_signature_is_refused() {
    alg_none("NONE", b"").await;
}

#[tokio::test]
async fn alg_none_mixed_case_without_signature_is_refused() {
    alg_none("nOnE", b"").await;
}

#[tokio::test]
async fn alg_none_lowercase_with_a_signature_is_refused() {
    alg_none("none", &[7; 64]).await;
}

#[tokio::test]
async fn alg_none_capitalised_with_a_signature_is_refused() {
    alg_none("None", &[7; 64]).await;
}

#[tokio::test]
async fn alg_none_uppercase_with_a_signature_is_refused() {
    alg_none("NONE", &[7; 64]).await;
}

#[tokio::test]
async fn alg_none_mixed_case_with_a_signature_is_refused() {
    alg_none("nOnE", &[7; 64]).await;
}

#[tokio::test]
async fn a_header_without_alg_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "alg": null }));
    assert_refused(
        &t.send(&t.signed(&header, &t.claims)).await,
        401,
        "algorithm",
    );
}

// ---------------------------------------------------------------------------
// Algorithms outside the allow-list, and algorithm confusion.

#[tokio::test]
async fn rs256_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "alg": "RS256" }));
    assert_refused(
        &t.send(&with_signature(&header, &t.claims, &[1; 256])).await,
        401,
        "algorithm",
    );
}

#[tokio::test]
async fn es256_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "alg": "ES256" }));
    assert_refused(
        &t.send(&with_signature(&header, &t.claims, &[1; 64])).await,
        401,
        "algorithm",
    );
}

#[tokio::test]
async fn hs512_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "alg": "HS512" }));
    let public = t.key.pair.public_key().as_ref().to_vec();
    let token = hmac_signed(&header, &t.claims, hmac::HMAC_SHA512, &public);
    assert_refused(&t.send(&token).await, 401, "algorithm");
}

#[tokio::test]
async fn hs256_keyed_with_the_real_ed25519_public_key_is_refused() {
    // Algorithm confusion: the public key is public, so an HMAC keyed with it
    // is forgeable by anyone; the key's algorithm is pinned to EdDSA.
    let t = target().await;
    let header = t.header_with(json!({ "alg": "HS256" }));
    let public = t.key.pair.public_key().as_ref().to_vec();
    let token = hmac_signed(&header, &t.claims, hmac::HMAC_SHA256, &public);
    assert_refused(&t.send(&token).await, 401, "algorithm");
}

#[tokio::test]
async fn hs256_keyed_with_the_published_jwk_x_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "alg": "HS256" }));
    let x = URL_SAFE_NO_PAD.encode(t.key.pair.public_key().as_ref());
    let token = hmac_signed(&header, &t.claims, hmac::HMAC_SHA256, x.as_bytes());
    assert_refused(&t.send(&token).await, 401, "algorithm");
}

// ---------------------------------------------------------------------------
// Tampering and shape.

#[tokio::test]
async fn a_payload_changed_after_signing_is_refused() {
    let t = target().await;
    let (head, _, signature) = three(&t.token);
    let claims = t.claims_with(json!({ "st": { "items": [{ "sku": "margherita", "qty": 99 }] } }));
    let token = format!("{head}.{}.{signature}", segment(&claims));
    assert_refused(&t.send(&token).await, 401, "signature does not verify");
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let t = target().await;
    let (head, payload, signature) = three(&t.token);
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 0x01;
    let token = format!("{head}.{payload}.{}", URL_SAFE_NO_PAD.encode(bytes));
    assert_refused(&t.send(&token).await, 401, "signature does not verify");
}

#[tokio::test]
async fn a_truncated_signature_is_refused() {
    let t = target().await;
    let (head, payload, signature) = three(&t.token);
    let token = format!("{head}.{payload}.{}", &signature[..signature.len() - 10]);
    assert_refused(&t.send(&token).await, 401, "signature does not verify");
}

#[tokio::test]
async fn an_empty_signature_is_refused() {
    let t = target().await;
    let (head, payload, _) = three(&t.token);
    assert_refused(
        &t.send(&format!("{head}.{payload}.")).await,
        401,
        "signature does not verify",
    );
}

#[tokio::test]
async fn two_segments_are_refused() {
    let t = target().await;
    let (head, payload, _) = three(&t.token);
    assert_refused(
        &t.send(&format!("{head}.{payload}")).await,
        401,
        "three segments",
    );
}

#[tokio::test]
async fn four_segments_are_refused() {
    let t = target().await;
    assert_refused(
        &t.send(&format!("{}.AAAA", t.token)).await,
        401,
        "three segments",
    );
}

#[tokio::test]
async fn five_segments_are_refused() {
    // The shape of a JWE compact serialisation.
    let t = target().await;
    assert_refused(
        &t.send(&format!("{}.AAAA.AAAA", t.token)).await,
        401,
        "three segments",
    );
}

#[tokio::test]
async fn three_segments_of_garbage_are_a_malformed_token_not_an_algorithm() {
    // `abc` is base64url, but of two bytes that are not JSON: no header at
    // all, so nothing to say about its algorithm.
    let t = target().await;
    let response = t.send("abc.def.ghi").await;
    assert_refused(
        &response,
        401,
        "the token is not a well-formed JWS: the header is not JSON",
    );
    assert_eq!(response.problem_type(), "/problems/invalid-token");
    assert!(
        !response.body["detail"]
            .as_str()
            .unwrap()
            .contains("algorithm"),
        "{:#}",
        response.body
    );
}

#[tokio::test]
async fn a_token_over_8_kib_is_refused() {
    let t = target().await;
    let padding = "x".repeat(9 * 1024);
    let claims = t.claims_with(json!({ "st": { "items": [], "pad": padding } }));
    let token = t.signed(&t.header, &claims);
    assert!(token.len() > 8 * 1024);
    assert_refused(&t.send(&token).await, 401, "longer than 8192");
}

fn three(token: &str) -> (&str, &str, &str) {
    let mut parts = token.split('.');
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

// ---------------------------------------------------------------------------
// Keys: `kid`, and the headers that would point elsewhere.

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "kid": "basket.00000000" }));
    assert_refused(
        &t.send(&t.signed(&header, &t.claims)).await,
        401,
        "key is not known",
    );
}

#[tokio::test]
async fn a_missing_kid_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "kid": null }));
    assert_refused(
        &t.send(&t.signed(&header, &t.claims)).await,
        401,
        "key is not known",
    );
}

/// A TCP listener that counts the connections it is offered.
struct Honeypot {
    url: String,
    connections: Arc<AtomicUsize>,
}

async fn honeypot() -> Honeypot {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    Honeypot { url, connections }
}

impl Honeypot {
    fn visits(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_jku_header_is_never_fetched() {
    let t = target().await;
    let pot = honeypot().await;
    let attacker = attacker_key();
    let header = t.header_with(json!({ "kid": "basket.attacker", "jku": pot.url }));
    assert_refused(
        &t.send(&ed_signed(&header, &t.claims, &attacker)).await,
        401,
        "key is not known",
    );
    assert_eq!(pot.visits(), 0, "the jku URL was fetched");
}

#[tokio::test]
async fn an_x5u_header_is_never_fetched() {
    let t = target().await;
    let pot = honeypot().await;
    let attacker = attacker_key();
    let header = t.header_with(json!({ "kid": "basket.attacker", "x5u": pot.url }));
    assert_refused(
        &t.send(&ed_signed(&header, &t.claims, &attacker)).await,
        401,
        "key is not known",
    );
    assert_eq!(pot.visits(), 0, "the x5u URL was fetched");
}

#[tokio::test]
async fn an_embedded_jwk_is_never_trusted() {
    let t = target().await;
    let attacker = attacker_key();
    let jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(attacker.public_key().as_ref()),
        "alg": "EdDSA",
        "use": "sig",
    });
    let without_kid = t.header_with(json!({ "kid": null, "jwk": jwk }));
    assert_refused(
        &t.send(&ed_signed(&without_kid, &t.claims, &attacker)).await,
        401,
        "key is not known",
    );
    let with_kid = t.header_with(json!({ "kid": "basket.attacker", "jwk": jwk }));
    assert_refused(
        &t.send(&ed_signed(&with_kid, &t.claims, &attacker)).await,
        401,
        "key is not known",
    );
}

#[tokio::test]
async fn an_embedded_jwk_naming_the_real_kid_is_ignored() {
    // The attacker names the real `kid` but embeds their own key: the server
    // verifies with the key it knows for that kid, so the signature fails.
    let t = target().await;
    let attacker = attacker_key();
    let jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(attacker.public_key().as_ref()),
        "kid": t.key.kid,
    });
    let header = t.header_with(json!({ "jwk": jwk }));
    assert_refused(
        &t.send(&ed_signed(&header, &t.claims, &attacker)).await,
        401,
        "signature does not verify",
    );
}

#[tokio::test]
async fn a_validly_signed_token_carrying_jku_is_accepted_because_the_header_is_ignored() {
    let t = target().await;
    let pot = honeypot().await;
    let header = t.header_with(json!({ "jku": pot.url, "x5u": pot.url }));
    let response = t.send(&t.signed(&header, &t.claims)).await;
    assert_eq!(response.status, 200, "{:#}", response.body);
    assert_eq!(pot.visits(), 0);
}

// ---------------------------------------------------------------------------
// Time claims.

#[tokio::test]
async fn a_missing_exp_is_refused() {
    let t = target().await;
    let claims = t.claims_with(json!({ "exp": null }));
    assert_refused(
        &t.send(&t.signed(&t.header, &claims)).await,
        401,
        "claims are invalid",
    );
}

#[tokio::test]
async fn a_missing_nbf_is_refused() {
    let t = target().await;
    let claims = t.claims_with(json!({ "nbf": null }));
    assert_refused(
        &t.send(&t.signed(&t.header, &claims)).await,
        401,
        "claims are invalid",
    );
}

#[tokio::test]
async fn exp_as_a_string_is_refused() {
    let t = target().await;
    let exp = (now() + 600).to_string();
    let claims = t.claims_with(json!({ "exp": exp }));
    assert_refused(
        &t.send(&t.signed(&t.header, &claims)).await,
        401,
        "claims are invalid",
    );
}

#[tokio::test]
async fn nbf_as_a_string_is_refused() {
    let t = target().await;
    let nbf = (now() - 60).to_string();
    let claims = t.claims_with(json!({ "nbf": nbf }));
    assert_refused(
        &t.send(&t.signed(&t.header, &claims)).await,
        401,
        "claims are invalid",
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let t = target().await;
    let claims = t.claims_with(json!({
        "iat": now() - 4000, "nbf": now() - 4000, "exp": now() - 3600,
    }));
    let response = t.send(&t.signed(&t.header, &claims)).await;
    assert_refused(&response, 401, "expired");
    assert_eq!(response.problem_type(), "/problems/expired-token");
}

#[tokio::test]
async fn a_token_not_valid_for_an_hour_is_refused() {
    let t = target().await;
    let claims = t.claims_with(json!({ "nbf": now() + 3600, "exp": now() + 7200 }));
    let response = t.send(&t.signed(&t.header, &claims)).await;
    assert_refused(&response, 401, "not valid yet");
    assert_eq!(response.problem_type(), "/problems/expired-token");
}

/// A token that expired 3 s ago, and one valid only in 3 s: within the
/// default leeway for clock skew (5 s), outside none.
fn skewed(t: &Target) -> [String; 2] {
    let expired = t.claims_with(json!({ "iat": now() - 60, "nbf": now() - 60, "exp": now() - 3 }));
    let early = t.claims_with(json!({ "iat": now(), "nbf": now() + 3, "exp": now() + 600 }));
    [t.signed(&t.header, &expired), t.signed(&t.header, &early)]
}

#[tokio::test]
async fn a_token_3_s_past_exp_or_before_nbf_is_accepted_within_the_default_leeway() {
    let t = target().await;
    for token in skewed(&t) {
        let response = t.send(&token).await;
        assert_eq!(response.status, 200, "{:#}", response.body);
    }
}

#[tokio::test]
async fn a_token_3_s_past_exp_or_before_nbf_is_refused_with_no_leeway() {
    let t = target_with(|c| c.token_leeway = std::time::Duration::ZERO).await;
    let [expired, early] = skewed(&t);
    assert_refused(&t.send(&expired).await, 401, "expired");
    assert_refused(&t.send(&early).await, 401, "not valid yet");
}

// ---------------------------------------------------------------------------
// `typ`, `iss`, `aud`, `nxt`.

#[tokio::test]
async fn typ_jwt_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "typ": "JWT" }));
    assert_refused(&t.send(&t.signed(&header, &t.claims)).await, 401, "typ");
}

#[tokio::test]
async fn a_missing_typ_is_refused() {
    let t = target().await;
    let header = t.header_with(json!({ "typ": null }));
    assert_refused(&t.send(&t.signed(&header, &t.claims)).await, 401, "typ");
}

#[tokio::test]
async fn an_unknown_issuer_is_refused() {
    let t = target().await;
    let claims = t.claims_with(json!({ "iss": "mallory" }));
    assert_refused(
        &t.send(&t.signed(&t.header, &claims)).await,
        401,
        "issuer does not own",
    );
}

#[tokio::test]
async fn another_participant_as_issuer_with_basket_key_is_refused() {
    let t = target().await;
    let claims = t.claims_with(json!({ "iss": "pricing" }));
    assert_refused(
        &t.send(&t.signed(&t.header, &claims)).await,
        401,
        "issuer does not own",
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_forbidden() {
    let t = target().await;
    let claims = t.claims_with(json!({ "aud": ["pricing"] }));
    let response = t.send(&t.signed(&t.header, &claims)).await;
    assert_refused(&response, 403, "not addressed to basket");
    assert_eq!(response.problem_type(), "/problems/wrong-audience");
}

#[tokio::test]
async fn a_step_not_in_nxt_is_forbidden() {
    let t = target().await;
    let claims = t.claims_with(json!({ "nxt": ["view", "cancel"] }));
    let response = t.send(&t.signed(&t.header, &claims)).await;
    assert_refused(&response, 403, "does not allow the step `add-item`");
    assert_eq!(response.problem_type(), "/problems/step-not-allowed");
}

// ---------------------------------------------------------------------------
// Other deployments, rotation and retirement.

#[tokio::test]
async fn a_valid_token_from_another_deployment_is_refused() {
    let ours = spawn_app().await;
    let theirs = spawn_app().await;
    let basket = theirs.post_empty("/basket/checkouts").await;
    let token = token_of(&basket.link("add-item"));
    assert_eq!(send_add_item(&theirs, &token).await.status, 200);
    assert_refused(&send_add_item(&ours, &token).await, 401, "key is not known");
}

/// Adds a key to basket's ring in `dir`; returns the old kid.
fn rotate_basket(dir: &std::path::Path) -> String {
    let mut ring = KeyRing::load_or_create(dir, Participant::Basket).unwrap();
    let old = ring.keys.last().unwrap().kid.clone();
    ring.rotate().unwrap();
    ring.save(dir).unwrap();
    old
}

#[tokio::test]
async fn a_token_from_before_a_rotation_still_verifies() {
    let t = target().await;
    let dir = t.app.stop().await;
    let old = rotate_basket(dir.path());
    let app = spawn_in(dir, |_| {}).await;
    assert_eq!(t.header["kid"], old.as_str());
    let response = send_add_item(&app, &t.token).await;
    assert_eq!(response.status, 200, "{:#}", response.body);
    let (header, _) = decode(&token_of(&response.link("add-item")));
    assert_ne!(header["kid"], old.as_str(), "the new key signs");
}

#[tokio::test]
async fn a_token_signed_by_a_retired_key_is_refused() {
    let t = target().await;
    let dir = t.app.stop().await;
    let old = rotate_basket(dir.path());
    let mut ring = KeyRing::load_or_create(dir.path(), Participant::Basket).unwrap();
    ring.retire(&old).unwrap();
    ring.save(dir.path()).unwrap();
    let app = spawn_in(dir, |_| {}).await;

    let response = send_add_item(&app, &t.token).await;
    assert_refused(&response, 401, "key is not known");
    // Freshly signed by the retired key, too.
    let fresh = merged(
        &t.claims,
        json!({ "iat": now(), "nbf": now(), "exp": now() + 600 }),
    );
    let token = ed_signed(&t.header, &fresh, &t.key.pair);
    assert_refused(&send_add_item(&app, &token).await, 401, "key is not known");
}

// ---------------------------------------------------------------------------
// The token is judged before the body.

/// Takes `add-item` with `token` and a body that is not JSON at all.
async fn send_malformed(app: &TestApp, token: &str) -> Response {
    let response = app
        .client
        .post(app.url(&format!("/basket/checkouts/add-item?state={token}")))
        .header("content-type", "application/json")
        .body(r#"{"sku":"#)
        .send()
        .await
        .unwrap();
    Response::read(response).await
}

#[tokio::test]
async fn a_bad_token_is_refused_before_a_bad_body_is_read() {
    let t = target().await;
    // A signature that does not match: 401, whatever the body.
    // (A character inside the signature: the last one carries padding bits,
    // and changing it may make the base64 undecodable instead.)
    let at = t.token.len() - 10;
    let was = &t.token[at..=at];
    let tampered = format!(
        "{}{}{}",
        &t.token[..at],
        if was == "A" { "B" } else { "A" },
        &t.token[at + 1..]
    );
    assert_refused(&send_malformed(&t.app, &tampered).await, 401, "signature");
    // A sound token for other steps: 403, whatever the body.
    let claims = t.claims_with(json!({ "nxt": ["view", "cancel"] }));
    let other_steps = t.signed(&t.header, &claims);
    assert_refused(
        &send_malformed(&t.app, &other_steps).await,
        403,
        "does not allow the step `add-item`",
    );
    // The right token: now the body's fault, with the basket's links to go on.
    let response = send_malformed(&t.app, &t.token).await;
    assert_eq!(response.status, 400, "{:#}", response.body);
    assert_eq!(response.problem_type(), "/problems/malformed-body");
    assert_eq!(response.body["conversation"], t.claims["cid"]);
    assert_eq!(token_of(&response.link("basket")), t.token);
    assert_eq!(t.send(&t.token).await.status, 200, "the token still works");
}
