//! Minting and verifying conversation-state tokens.
//!
//! **Minting** costs one signature per response: every next-step link of a
//! response carries the same token, and the step a link performs is in its
//! path. Keys are parsed once at start, and the JWS header of each key is
//! encoded once, so a mint is one JSON serialisation and one signature.
//!
//! **Verification** is strict (DESIGN §3): the key is chosen by `kid` only from
//! the trust store (the participants this deployment knows; `jku`, `x5u` and
//! `jwk` headers are never followed), the algorithm is pinned per key, `typ`
//! must be `conv+jwt`, `exp` and `nbf` are required and checked, `iss` must be
//! the participant that owns the key, and only then are the audience and the
//! requested step checked. Failures of the first kind are 401 (the token is
//! not a valid token), of the second 403 (a valid token, used where it does
//! not apply). Keys of remote peers are fetched from the JWKS URL the peers
//! configuration names, when a token shows a `kid` of theirs we do not know.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::chain;
use super::claims::{Claims, Pattern};
use super::keys::{KeyError, KeyRing, LiveKey, Signing, public_jwk, unix_now};
use crate::ids::{ConversationId, MessageId};
use crate::participant::Participant;
use crate::store::MessageKind;

/// The JWS `typ` of a conversation-state token.
pub const TYP: &str = "conv+jwt";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Allowed clock skew between participants, by default (`--token-leeway`):
/// a token is accepted until `exp` + leeway, and from `nbf` - leeway.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
/// The largest leeway a deployment may set: beyond, an expired token lives
/// on for longer than clock skew explains.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Why a token was refused. Every variant is a client error: 401 when the
/// token is not valid, 403 when a valid token is used where it does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no conversation-state token was given")]
    Missing,
    #[error("the token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    #[error("the token is not a well-formed JWS: {0}")]
    Malformed(&'static str),
    #[error("the token's algorithm is not the one its key is pinned to")]
    Algorithm,
    #[error("the token's `typ` is not `conv+jwt`")]
    WrongType,
    #[error("the token's key is not known")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's claims are invalid: {0}")]
    Claims(&'static str),
    #[error("the token's issuer does not own its key")]
    IssuerMismatch,
    #[error("the token was issued by {0}, not by a participant expected here")]
    WrongIssuer(String),
    #[error("the token is not addressed to {0}")]
    WrongAudience(&'static str),
    #[error("the token does not allow the step `{0}`")]
    StepNotAllowed(String),
}

impl TokenError {
    /// 403 for a valid token used where it does not apply, 401 otherwise.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            TokenError::WrongIssuer(_)
                | TokenError::WrongAudience(_)
                | TokenError::StepNotAllowed(_)
        )
    }
}

/// What a step expects of the token it is given.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The participant serving the step: must be in `aud`.
    pub participant: Participant,
    /// The step being taken: must be in `nxt`.
    pub step: &'a str,
    /// Where only some issuers may have signed (a reply from a provider).
    pub issuers: Option<&'a [Participant]>,
}

impl<'a> Expect<'a> {
    pub fn step(participant: Participant, step: &'a str) -> Self {
        Expect {
            participant,
            step,
            issuers: None,
        }
    }

    pub fn from(mut self, issuers: &'a [Participant]) -> Self {
        self.issuers = Some(issuers);
        self
    }
}

/// The next message of a conversation, before it is signed.
#[derive(Clone, Debug)]
pub struct Next {
    pub cid: ConversationId,
    pub pat: Pattern,
    pub seq: u32,
    prev_chn: String,
    /// The step that produced this message (what the chain records).
    pub step: String,
    pub aud: Vec<Participant>,
    pub nxt: Vec<String>,
    pub st: Value,
    pub slip: Option<Value>,
    /// The message this one answers or follows (for the journal).
    pub causation: Option<MessageId>,
    /// What the message is in its exchange, when not the default (a request
    /// to another participant, or a reply to the client).
    pub kind: Option<MessageKind>,
    /// A lifetime other than the minter's default (durable messages that a
    /// relay may deliver late live longer).
    pub ttl: Option<Duration>,
}

impl Next {
    /// The first message of a new conversation.
    pub fn start(pat: Pattern, step: &str) -> Self {
        Next {
            cid: ConversationId::new(),
            pat,
            seq: 0,
            prev_chn: chain::GENESIS.to_owned(),
            step: step.to_owned(),
            aud: Vec::new(),
            nxt: Vec::new(),
            st: Value::Null,
            slip: None,
            causation: None,
            kind: None,
            ttl: None,
        }
    }

    /// The message that follows `prev` in its conversation.
    pub fn after(prev: &Claims, step: &str) -> Self {
        Next {
            cid: prev.cid,
            pat: prev.pat,
            seq: prev.seq + 1,
            prev_chn: prev.chn.clone(),
            step: step.to_owned(),
            aud: Vec::new(),
            nxt: Vec::new(),
            st: prev.st.clone(),
            slip: prev.slip.clone(),
            causation: Some(prev.jti),
            kind: None,
            ttl: None,
        }
    }

    /// The message that follows `head` in its conversation, for a participant
    /// that keeps the conversation centrally (the saga) rather than receiving
    /// its latest token with the request. A head without a message starts
    /// the chain in `head.cid`.
    pub fn resume(head: &Head, pat: Pattern, step: &str) -> Self {
        Next {
            cid: head.cid,
            pat,
            seq: head.jti.map_or(0, |_| head.seq.saturating_add(1)),
            prev_chn: head.chn.clone(),
            step: step.to_owned(),
            aud: Vec::new(),
            nxt: Vec::new(),
            st: Value::Null,
            slip: None,
            causation: head.jti,
            kind: None,
            ttl: None,
        }
    }

    /// Who may act on the token.
    pub fn to(mut self, aud: &[Participant]) -> Self {
        self.aud = aud.to_vec();
        self
    }

    /// The steps the token allows next.
    pub fn allow(mut self, steps: &[&str]) -> Self {
        self.nxt = steps.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn state(mut self, st: Value) -> Self {
        self.st = st;
        self
    }

    pub fn kind(mut self, kind: MessageKind) -> Self {
        self.kind = Some(kind);
        self
    }

    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// Where a conversation stands: its latest message's id, turn and chain
/// digest. What a participant keeps to continue a conversation whose latest
/// token it holds no longer (see [`Next::resume`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub cid: ConversationId,
    /// The latest message; `None` before the first.
    pub jti: Option<MessageId>,
    pub seq: u32,
    pub chn: String,
}

impl Head {
    /// A conversation with no message yet.
    pub fn empty(cid: ConversationId) -> Self {
        Head {
            cid,
            jti: None,
            seq: 0,
            chn: chain::GENESIS.to_owned(),
        }
    }
}

impl From<&Claims> for Head {
    fn from(claims: &Claims) -> Self {
        Head {
            cid: claims.cid,
            jti: Some(claims.jti),
            seq: claims.seq,
            chn: claims.chn.clone(),
        }
    }
}

/// A signed token and the claims it carries.
#[derive(Clone, Debug)]
pub struct Minted {
    pub token: String,
    pub claims: Claims,
}

enum Key {
    Ed(Box<Ed25519KeyPair>),
    Hs(Box<hmac::Key>),
}

struct SigningKey {
    /// `base64url(header) + "."`, encoded once.
    header_prefix: String,
    key: Key,
}

/// Signs tokens for the participants this process hosts.
pub struct Minter {
    keys: HashMap<Participant, SigningKey>,
    ttl: Duration,
}

/// The mint failed: only if the claims cannot be serialised, which is a bug.
#[derive(Debug, thiserror::Error)]
#[error("could not sign a conversation-state token: {0}")]
pub struct MintError(String);

impl Minter {
    /// Signs for `iss`, which must be hosted here.
    pub fn mint(&self, iss: Participant, next: Next) -> Result<Minted, MintError> {
        let key = self
            .keys
            .get(&iss)
            .ok_or_else(|| MintError(format!("{iss} is not hosted here")))?;
        let now = unix_now();
        let jti = MessageId::new();
        let claims = Claims {
            iss: iss.as_str().to_owned(),
            aud: next.aud.iter().map(|p| p.as_str().to_owned()).collect(),
            iat: now,
            nbf: now,
            exp: now + next.ttl.unwrap_or(self.ttl).as_secs() as i64,
            jti,
            cid: next.cid,
            pat: next.pat,
            seq: next.seq,
            chn: chain::extend(&next.prev_chn, jti, iss.as_str(), &next.step),
            nxt: next.nxt,
            st: next.st,
            slip: next.slip,
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| MintError(e.to_string()))?;
        let mut token = String::with_capacity(key.header_prefix.len() + payload.len() * 2 + 90);
        token.push_str(&key.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &key.key {
            Key::Ed(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
            Key::Hs(hmac_key) => hmac::sign(hmac_key, token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(Minted { token, claims })
    }

    /// How long a freshly minted token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

struct Trusted {
    participant: Participant,
    /// The one algorithm this key verifies (pinned: a token naming another is refused).
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys this deployment trusts, by `kid`, and where to fetch more.
pub struct TrustStore {
    keys: RwLock<HashMap<String, Arc<Trusted>>>,
    /// Remote peers: participant → JWKS URL.
    remote: HashMap<Participant, String>,
    last_fetch: tokio::sync::Mutex<HashMap<Participant, Instant>>,
    http: reqwest::Client,
    hs256: bool,
    /// Allowed clock skew, in seconds: `exp` and `nbf` are checked this much
    /// more leniently.
    leeway: i64,
}

/// The published public keys of the hosted participants.
pub struct Jwks(pub Value);

/// Builds the minter, the trust store and the JWKS for the hosted
/// participants. Tokens live `ttl`, and are verified with `leeway` for
/// clock skew.
pub fn load(
    data_dir: &std::path::Path,
    signing: &Signing,
    hosted: &[Participant],
    remote: HashMap<Participant, String>,
    ttl: Duration,
    leeway: Duration,
    http: reqwest::Client,
) -> Result<(Minter, TrustStore, Jwks), KeyError> {
    let mut signing_keys = HashMap::new();
    let mut trusted = HashMap::new();
    let mut jwks = Vec::new();
    match signing {
        Signing::EdDsa => {
            for &participant in hosted {
                let mut live = KeyRing::load_or_create(data_dir, participant)?.live()?;
                for key in &live {
                    jwks.push(public_jwk(key));
                    trusted.insert(key.kid.clone(), ed_trusted(participant, key));
                }
                let LiveKey { kid, pair } = live.pop().expect("a ring has a live key");
                signing_keys.insert(
                    participant,
                    SigningKey {
                        header_prefix: header_prefix(Algorithm::EdDSA, &kid),
                        key: Key::Ed(Box::new(pair)),
                    },
                );
            }
        }
        Signing::Hs256 { secret } => {
            // One trust domain: every participant, hosted or not, shares the secret.
            for participant in Participant::ALL {
                let kid = format!("{participant}.hs256");
                trusted.insert(
                    kid.clone(),
                    Arc::new(Trusted {
                        participant,
                        alg: Algorithm::HS256,
                        key: DecodingKey::from_secret(secret),
                    }),
                );
                if hosted.contains(&participant) {
                    signing_keys.insert(
                        participant,
                        SigningKey {
                            header_prefix: header_prefix(Algorithm::HS256, &kid),
                            key: Key::Hs(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
                        },
                    );
                }
            }
        }
    }
    let store = TrustStore {
        keys: RwLock::new(trusted),
        remote,
        last_fetch: Default::default(),
        http,
        hs256: matches!(signing, Signing::Hs256 { .. }),
        leeway: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
    };
    let minter = Minter {
        keys: signing_keys,
        ttl,
    };
    Ok((minter, store, Jwks(serde_json::json!({ "keys": jwks }))))
}

fn header_prefix(alg: Algorithm, kid: &str) -> String {
    let alg = match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        other => unreachable!("{other:?} is not in the allow-list"),
    };
    let header = serde_json::json!({ "alg": alg, "typ": TYP, "kid": kid });
    let mut prefix = URL_SAFE_NO_PAD.encode(header.to_string());
    prefix.push('.');
    prefix
}

fn ed_trusted(participant: Participant, key: &LiveKey) -> Arc<Trusted> {
    use aws_lc_rs::signature::KeyPair;
    Arc::new(Trusted {
        participant,
        alg: Algorithm::EdDSA,
        key: DecodingKey::from_ed_der(key.pair.public_key().as_ref()),
    })
}

/// How often a remote peer's JWKS may be fetched again for an unknown `kid`.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

impl TrustStore {
    /// Verifies `token` strictly and checks it against `expect`.
    pub async fn verify(&self, token: &str, expect: Expect<'_>) -> Result<Claims, TokenError> {
        match self.verify_known(token, expect) {
            Err(TokenError::UnknownKey) => {
                if self.refresh_for(token).await {
                    self.verify_known(token, expect)
                } else {
                    Err(TokenError::UnknownKey)
                }
            }
            other => other,
        }
    }

    /// Verifies against the keys already known, without any I/O.
    pub fn verify_known(&self, token: &str, expect: Expect<'_>) -> Result<Claims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        if token.split('.').count() != 3 {
            return Err(TokenError::Malformed("a JWS has three segments"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) => unreadable_header(token),
            _ => TokenError::Malformed("the header is not base64url"),
        })?;
        // The rest of the token's shape, before any key is looked up: a
        // payload that is not even base64url is no JWS, whatever signs it.
        // (Its JSON is read only once the signature verifies.)
        let (message, signature) = token.rsplit_once('.').ok_or(MALFORMED)?;
        let (_, payload) = message.split_once('.').ok_or(MALFORMED)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed("the payload is not base64url"))?;
        if header.typ.as_deref() != Some(TYP) {
            return Err(TokenError::WrongType);
        }
        if header.crit.is_some() {
            return Err(TokenError::Malformed(
                "no critical header extension is understood",
            ));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let trusted = self
            .keys
            .read()
            .expect("trust store lock")
            .get(&kid)
            .cloned()
            .ok_or(TokenError::UnknownKey)?;
        if header.alg != trusted.alg {
            return Err(TokenError::Algorithm);
        }
        let claims = verified_claims(message, signature, &payload, &trusted, self.leeway)?;
        if claims.iss != trusted.participant.as_str() {
            return Err(TokenError::IssuerMismatch);
        }
        if let Some(issuers) = expect.issuers
            && !issuers.iter().any(|p| p.as_str() == claims.iss)
        {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if !claims.is_for(expect.participant.as_str()) {
            return Err(TokenError::WrongAudience(expect.participant.as_str()));
        }
        if !claims.allows(expect.step) {
            return Err(TokenError::StepNotAllowed(expect.step.to_owned()));
        }
        Ok(claims)
    }

    /// Fetches the JWKS of the remote peer that the token's `kid` names, at most
    /// once per [`REFETCH_AFTER`]. Returns whether new keys were loaded.
    async fn refresh_for(&self, token: &str) -> bool {
        if self.hs256 {
            return false;
        }
        let Some(participant) = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .and_then(|kid| {
                kid.split_once('.')
                    .and_then(|(p, _)| p.parse::<Participant>().ok())
            })
        else {
            return false;
        };
        let Some(url) = self.remote.get(&participant) else {
            return false;
        };
        {
            let mut last = self.last_fetch.lock().await;
            if last
                .get(&participant)
                .is_some_and(|at| at.elapsed() < REFETCH_AFTER)
            {
                return false;
            }
            last.insert(participant, Instant::now());
        }
        let jwks: Value = match self.http.get(url).send().await {
            Ok(resp) if resp.status().is_success() => match resp.json().await {
                Ok(jwks) => jwks,
                Err(e) => {
                    tracing::warn!(%participant, error = %e, "peer JWKS is not JSON");
                    return false;
                }
            },
            Ok(resp) => {
                tracing::warn!(%participant, status = %resp.status(), "peer JWKS unavailable");
                return false;
            }
            Err(e) => {
                tracing::warn!(%participant, error = %e, "peer JWKS unreachable");
                return false;
            }
        };
        let fresh = parse_jwks(&jwks, participant);
        let mut keys = self.keys.write().expect("trust store lock");
        keys.retain(|_, t| t.participant != participant);
        let loaded = !fresh.is_empty();
        keys.extend(fresh);
        loaded
    }
}

/// A three-segment token whose header is not a JWS header: the JSON error
/// jsonwebtoken gives says neither which nor why. A header that is not
/// base64url JSON (`abc.def.ghi`) is malformed; a JSON header whose `alg` is
/// missing or names no algorithm (`none` in any spelling) is refused for its
/// algorithm, as the alg-confusion attacks it stands for; any other member of
/// the wrong type is malformed again.
fn unreadable_header(token: &str) -> TokenError {
    use serde::Deserialize;
    let segment = token.split('.').next().unwrap_or_default();
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(segment) else {
        return TokenError::Malformed("the header is not base64url");
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(members)) => match members.get("alg") {
            Some(alg) if Algorithm::deserialize(alg).is_ok() => {
                TokenError::Malformed("a header member has the wrong type")
            }
            _ => TokenError::Algorithm,
        },
        Ok(_) => TokenError::Malformed("the header is not a JSON object"),
        Err(_) => TokenError::Malformed("the header is not JSON"),
    }
}

/// A token that cannot be taken apart (cannot happen past the segment count).
const MALFORMED: TokenError = TokenError::Malformed("the token cannot be decoded");

/// Checks the signature of `message` (`header.payload`) with `trusted`'s
/// key, then reads the claims from the decoded `payload` (once) and checks
/// `exp` and `nbf`, which the claims type requires, `leeway` seconds leniently.
///
/// `jsonwebtoken::decode` would do the same, but it parses the header twice
/// more and the claims twice, on every turn. The signature is checked before
/// the payload's JSON is read, and the errors map as they did there.
fn verified_claims(
    message: &str,
    signature: &str,
    payload: &[u8],
    trusted: &Trusted,
    leeway: i64,
) -> Result<Claims, TokenError> {
    let valid =
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), &trusted.key, trusted.alg)
            .map_err(|e| match e.kind() {
                // The key cannot verify its own pinned algorithm: not the
                // token's shape (the header's `alg` was compared before).
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    TokenError::Algorithm
                }
                ErrorKind::Base64(_) => TokenError::Malformed("the signature is not base64url"),
                _ => MALFORMED,
            })?;
    if !valid {
        return Err(TokenError::BadSignature);
    }
    let claims: Claims = serde_json::from_slice(payload).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            TokenError::Claims("a claim has the wrong type or is missing")
        }
        _ => TokenError::Malformed("the payload is not JSON"),
    })?;
    let now = unix_now();
    if claims.exp < now.saturating_sub(leeway) {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now.saturating_add(leeway) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// The Ed25519 keys of `participant` in a peer's JWKS; keys it lists for
/// anyone else are ignored (a peer speaks only for itself).
fn parse_jwks(jwks: &Value, participant: Participant) -> Vec<(String, Arc<Trusted>)> {
    let prefix = format!("{participant}.");
    jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519" && k["alg"] == "EdDSA")
        .filter_map(|k| {
            let kid = k["kid"].as_str()?;
            if !kid.starts_with(&prefix) {
                return None;
            }
            let key = DecodingKey::from_ed_components(k["x"].as_str()?).ok()?;
            Some((
                kid.to_owned(),
                Arc::new(Trusted {
                    participant,
                    alg: Algorithm::EdDSA,
                    key,
                }),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = &[42; 32];

    /// An HS256 deployment hosting basket (no key files: nothing on disk),
    /// and a token it minted for `add-item`.
    fn hs256_store() -> (TrustStore, String) {
        let (minter, store, _) = load(
            std::path::Path::new("/nonexistent"),
            &Signing::Hs256 {
                secret: SECRET.to_vec(),
            },
            &[Participant::Basket],
            HashMap::new(),
            Duration::from_secs(60),
            DEFAULT_LEEWAY,
            reqwest::Client::new(),
        )
        .unwrap();
        let next = Next::start(Pattern::TurnTaking, "start-checkout")
            .to(&[Participant::Basket])
            .allow(&["add-item"]);
        let token = minter.mint(Participant::Basket, next).unwrap().token;
        (store, token)
    }

    fn add_item() -> Expect<'static> {
        Expect::step(Participant::Basket, "add-item")
    }

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    /// `header.payload` signed with the deployment's secret.
    fn hs256_signed(header: &str, payload: &str) -> String {
        let input = format!("{header}.{payload}");
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let tag = hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    #[test]
    fn a_minted_token_verifies() {
        // The control for the cases below.
        let (store, token) = hs256_store();
        assert!(store.verify_known(&token, add_item()).is_ok());
    }

    #[test]
    fn a_token_that_is_not_a_jws_is_malformed_and_says_why() {
        let (store, token) = hs256_store();
        let (header, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let cases = [
            // Three segments of garbage: the header decodes to two bytes that are not JSON.
            ("abc.def.ghi".to_owned(), "the header is not JSON"),
            (
                format!("{}.{payload}.{signature}", b64("not json")),
                "the header is not JSON",
            ),
            (
                format!("{}.{payload}.{signature}", b64(r#"["EdDSA"]"#)),
                "the header is not a JSON object",
            ),
            (
                format!(
                    "{}.{payload}.{signature}",
                    b64(r#"{"alg":"HS256","kid":7}"#)
                ),
                "a header member has the wrong type",
            ),
            (
                format!("no*base64.{payload}.{signature}"),
                "the header is not base64url",
            ),
            // The real header, a payload that is not base64url: whatever signs it.
            (
                format!("{header}.garbage!.{signature}"),
                "the payload is not base64url",
            ),
            (format!("{header}.!!!.ghi"), "the payload is not base64url"),
            // Base64url but not JSON, correctly signed (an unsigned one is a
            // bad signature: the payload is not read before it verifies).
            (
                hs256_signed(header, &b64("not json")),
                "the payload is not JSON",
            ),
            (
                format!("{header}.{payload}.sig*nature"),
                "the signature is not base64url",
            ),
        ];
        for (token, why) in cases {
            let error = store.verify_known(&token, add_item()).unwrap_err();
            assert_eq!(error, TokenError::Malformed(why), "{token}");
            assert_eq!(
                error.to_string(),
                format!("the token is not a well-formed JWS: {why}")
            );
        }
        assert_eq!(
            store
                .verify_known(
                    &format!("{header}.{}.{signature}", b64("not json")),
                    add_item()
                )
                .unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn a_json_header_naming_another_or_no_algorithm_is_an_algorithm_error() {
        let (store, token) = hs256_store();
        let (_, rest) = token.split_once('.').unwrap();
        let headers = [
            r#"{"alg":"none","typ":"conv+jwt","kid":"basket.hs256"}"#,
            r#"{"alg":"nOnE","typ":"conv+jwt","kid":"basket.hs256"}"#,
            r#"{"typ":"conv+jwt","kid":"basket.hs256"}"#,
            r#"{"alg":7,"typ":"conv+jwt","kid":"basket.hs256"}"#,
            // Known to jsonwebtoken, but not the algorithm the key is pinned to.
            r#"{"alg":"EdDSA","typ":"conv+jwt","kid":"basket.hs256"}"#,
            r#"{"alg":"HS512","typ":"conv+jwt","kid":"basket.hs256"}"#,
        ];
        for header in headers {
            let token = format!("{}.{rest}", b64(header));
            assert_eq!(
                store.verify_known(&token, add_item()),
                Err(TokenError::Algorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn resuming_from_a_head_continues_its_chain_like_after_does() {
        let first = Next::start(Pattern::TurnTaking, "start-checkout");
        let claims = Claims {
            iss: "orders".into(),
            aud: vec!["deliveries".into()],
            iat: 0,
            nbf: 0,
            exp: 0,
            jti: MessageId::new(),
            cid: first.cid,
            pat: Pattern::TurnTaking,
            seq: 7,
            nxt: vec![],
            chn: "digest".into(),
            st: Value::Null,
            slip: None,
        };
        let after = Next::after(&claims, "order.placed");
        let resumed = Next::resume(
            &Head::from(&claims),
            Pattern::ProcessManager,
            "order.placed",
        );
        assert_eq!(
            (
                resumed.cid,
                resumed.seq,
                &resumed.prev_chn,
                resumed.causation
            ),
            (after.cid, after.seq, &after.prev_chn, after.causation)
        );
        assert_eq!(resumed.pat, Pattern::ProcessManager);

        let fresh = Next::resume(&Head::empty(first.cid), Pattern::ProcessManager, "create");
        assert_eq!((fresh.seq, fresh.causation), (0, None));
        assert_eq!(fresh.prev_chn, chain::GENESIS);
        assert_eq!(fresh.cid, first.cid);
    }
}
