//! Each participant's signing keys: generated on first start, kept in the
//! data directory, rotated and retired, and published as a JWKS.
//!
//! A key ring is one JSON file per participant (`{data-dir}/keys/{name}.json`,
//! mode 0600). The newest live key signs; every live key verifies, so tokens
//! minted before a rotation stay valid until their key is retired. A retired
//! key is kept in the file (so its `kid` is never reused) but neither signs,
//! verifies nor appears in the JWKS.
//!
//! `kid`s are `{participant}.{8 hex digits of the public key's SHA-256}`: the
//! prefix tells a verifier which participant a key belongs to, and a verifier
//! only ever accepts a key for the participant that published it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::participant::Participant;

/// How participants sign their tokens.
#[derive(Clone)]
pub enum Signing {
    /// Ed25519 (`EdDSA`), a key pair per participant: the default.
    EdDsa,
    /// HMAC-SHA-256 with one shared secret (≥ 32 bytes): only for a single
    /// trust domain, since every holder of the secret can sign as anyone.
    Hs256 { secret: Vec<u8> },
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signing::EdDsa => f.write_str("EdDsa"),
            Signing::Hs256 { .. } => f.write_str("Hs256 { secret: <redacted> }"),
        }
    }
}

/// The shortest HS256 secret we accept, in bytes.
pub const MIN_HS256_SECRET: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {path} is not a valid key ring: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0} has no key `{1}`")]
    UnknownKid(Participant, String),
    #[error("refusing to retire `{0}`: it is the only live key")]
    LastLiveKey(String),
    #[error("could not generate a key")]
    Generate,
}

/// One stored key.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    /// Unix seconds.
    pub created: i64,
    /// The PKCS#8 document (base64), private: never leaves this file.
    pkcs8: String,
    #[serde(default)]
    pub retired: bool,
}

/// A participant's key ring.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyRing {
    pub participant: Participant,
    pub keys: Vec<StoredKey>,
}

/// A live key, parsed and ready to sign or verify.
pub struct LiveKey {
    pub kid: String,
    pub pair: Ed25519KeyPair,
}

impl KeyRing {
    /// Where the participant's key ring is kept: `{data-dir}/keys/{name}.json`.
    pub fn path(data_dir: &Path, participant: Participant) -> PathBuf {
        data_dir.join("keys").join(format!("{participant}.json"))
    }

    /// Loads the participant's key ring; `None` if it has none (or the data
    /// directory does not exist). Creates nothing, so it is what a command
    /// that only reads keys uses.
    pub fn load(data_dir: &Path, participant: Participant) -> Result<Option<Self>, KeyError> {
        let path = Self::path(data_dir, participant);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        let ring: KeyRing = serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if ring.participant != participant {
            return Err(KeyError::Corrupt {
                path,
                reason: format!("it belongs to {}", ring.participant),
            });
        }
        Ok(Some(ring))
    }

    /// Loads the participant's key ring, generating a first key if there is none.
    pub fn load_or_create(data_dir: &Path, participant: Participant) -> Result<Self, KeyError> {
        if let Some(ring) = Self::load(data_dir, participant)? {
            return Ok(ring);
        }
        let mut ring = KeyRing {
            participant,
            keys: Vec::new(),
        };
        ring.rotate()?;
        ring.save(data_dir)?;
        Ok(ring)
    }

    /// Adds a new key, which signs from now on; older keys still verify.
    pub fn rotate(&mut self) -> Result<&StoredKey, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::Generate)?;
        let digest = Sha256::digest(pair.public_key().as_ref());
        self.keys.push(StoredKey {
            kid: format!("{}.{}", self.participant, hex::encode(&digest[..4])),
            created: unix_now(),
            pkcs8: STANDARD.encode(pkcs8.as_ref()),
            retired: false,
        });
        Ok(self.keys.last().expect("just pushed"))
    }

    /// Retires a key: it no longer verifies and leaves the JWKS.
    pub fn retire(&mut self, kid: &str) -> Result<(), KeyError> {
        let live = self.keys.iter().filter(|k| !k.retired).count();
        let key = self
            .keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .ok_or_else(|| KeyError::UnknownKid(self.participant, kid.to_owned()))?;
        if !key.retired && live == 1 {
            return Err(KeyError::LastLiveKey(kid.to_owned()));
        }
        key.retired = true;
        Ok(())
    }

    /// Writes the ring atomically (temp file + rename), readable by its owner only.
    pub fn save(&self, data_dir: &Path) -> Result<(), KeyError> {
        let path = Self::path(data_dir, self.participant);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("keys dir")).map_err(io)?;
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self).expect("key ring serialises");
        write_private(&tmp, &body).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// The live keys, newest last.
    pub fn live(&self) -> Result<Vec<LiveKey>, KeyError> {
        self.keys
            .iter()
            .filter(|k| !k.retired)
            .map(|k| {
                let corrupt = |reason: &str| KeyError::Corrupt {
                    path: PathBuf::from(format!("{}.json", self.participant)),
                    reason: format!("{}: {reason}", k.kid),
                };
                let der = STANDARD
                    .decode(&k.pkcs8)
                    .map_err(|_| corrupt("not base64"))?;
                let pair =
                    Ed25519KeyPair::from_pkcs8(&der).map_err(|_| corrupt("not an Ed25519 key"))?;
                Ok(LiveKey {
                    kid: k.kid.clone(),
                    pair,
                })
            })
            .collect()
    }
}

/// The JWK of a live key's public half.
pub fn public_jwk(key: &LiveKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.pair.public_key().as_ref()),
        "kid": key.kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(body)?;
    file.sync_all()
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_restart_and_rotation_keeps_old_keys_live() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyRing::load_or_create(dir.path(), Participant::Basket).unwrap();
        let again = KeyRing::load_or_create(dir.path(), Participant::Basket).unwrap();
        assert_eq!(first.keys[0].kid, again.keys[0].kid);

        let mut ring = again;
        let new_kid = ring.rotate().unwrap().kid.clone();
        ring.save(dir.path()).unwrap();
        let live = KeyRing::load_or_create(dir.path(), Participant::Basket)
            .unwrap()
            .live()
            .unwrap();
        assert_eq!(live.len(), 2);
        assert_eq!(live.last().unwrap().kid, new_kid);
        assert!(new_kid.starts_with("basket."));
    }

    #[test]
    fn loading_creates_nothing_and_finds_what_load_or_create_made() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(
            KeyRing::load(&missing, Participant::Basket)
                .unwrap()
                .is_none()
        );
        assert!(!missing.exists(), "the data directory was created");
        assert!(
            KeyRing::load(dir.path(), Participant::Basket)
                .unwrap()
                .is_none()
        );
        assert!(
            !dir.path().join("keys").exists(),
            "the keys directory was created"
        );

        let made = KeyRing::load_or_create(dir.path(), Participant::Basket).unwrap();
        let loaded = KeyRing::load(dir.path(), Participant::Basket)
            .unwrap()
            .expect("the ring just made");
        assert_eq!(loaded.keys[0].kid, made.keys[0].kid);
        assert!(
            KeyRing::load(dir.path(), Participant::Pricing)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_last_live_key_cannot_be_retired() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::load_or_create(dir.path(), Participant::Pricing).unwrap();
        let kid = ring.keys[0].kid.clone();
        assert!(matches!(ring.retire(&kid), Err(KeyError::LastLiveKey(_))));
        ring.rotate().unwrap();
        ring.retire(&kid).unwrap();
        assert_eq!(ring.live().unwrap().len(), 1);
    }
}
