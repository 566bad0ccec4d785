//! Signing keys of the dev issuer: generation, JWKs, signing and verification.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey,
    VerificationAlgorithm,
};
use serde_json::{json, Value};

use super::util::{b64url, random_uuid};
use super::DevAlg;

/// Key generation or signing failed inside the crypto library.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CryptoError;

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dev issuer: crypto operation failed")
    }
}

impl std::error::Error for CryptoError {}

impl From<aws_lc_rs::error::Unspecified> for CryptoError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        CryptoError
    }
}

enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One key pair with its id, algorithm and public JWK.
pub(crate) struct DevKey {
    pub(crate) kid: String,
    pub(crate) alg: DevAlg,
    material: Material,
    /// Raw public key as the verifier wants it (PKCS#1 for RSA, SEC1 point, Ed25519 bytes).
    public_raw: Vec<u8>,
    /// X.509 `SubjectPublicKeyInfo` DER.
    pub(crate) spki_der: Vec<u8>,
    pub(crate) jwk: Value,
}

impl fmt::Debug for DevKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl DevKey {
    /// Generates a fresh key pair for `alg` with a new random `kid`.
    pub(crate) fn generate(alg: DevAlg) -> Result<Self, CryptoError> {
        let kid = format!("jwk-test-{}", random_uuid());
        let alg_name = alg.as_str();
        let (material, public_raw, spki_der, jwk) = match alg {
            DevAlg::RS256 | DevAlg::PS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)?;
                let public = pair.public_key();
                let components = RsaPublicKeyComponents::<Vec<u8>>::from(public);
                let jwk = json!({
                    "kty": "RSA",
                    "kid": kid,
                    "alg": alg_name,
                    "use": "sig",
                    "n": b64url(&components.n),
                    "e": b64url(&components.e),
                });
                let raw = public.as_ref().to_vec();
                let spki = public.as_der()?.as_ref().to_vec();
                (Material::Rsa(pair), raw, spki, jwk)
            }
            DevAlg::ES256 | DevAlg::ES384 => {
                let (signing, crv, coord) = if alg == DevAlg::ES256 {
                    (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pair = EcdsaKeyPair::generate(signing)?;
                let point = pair.public_key().as_ref().to_vec();
                // Uncompressed SEC1 point: 0x04 || x || y.
                if point.len() != 1 + 2 * coord || point.first() != Some(&4) {
                    return Err(CryptoError);
                }
                let x = &point[1..=coord];
                let y = &point[1 + coord..];
                let jwk = json!({
                    "kty": "EC",
                    "kid": kid,
                    "alg": alg_name,
                    "use": "sig",
                    "crv": crv,
                    "x": b64url(x),
                    "y": b64url(y),
                });
                let spki = pair.public_key().as_der()?.as_ref().to_vec();
                (Material::Ec(pair), point, spki, jwk)
            }
            DevAlg::EdDSA => {
                let pair = Ed25519KeyPair::generate()?;
                let raw = pair.public_key().as_ref().to_vec();
                let jwk = json!({
                    "kty": "OKP",
                    "kid": kid,
                    "alg": alg_name,
                    "use": "sig",
                    "crv": "Ed25519",
                    "x": b64url(&raw),
                });
                let spki = pair.public_key().as_der()?.as_ref().to_vec();
                (Material::Ed(pair), raw, spki, jwk)
            }
        };
        Ok(DevKey { kid, alg, material, public_raw, spki_der, jwk })
    }

    /// Signs `message` with this key's own algorithm; returns the raw signature.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.material {
            Material::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding =
                    if self.alg == DevAlg::PS256 { &sig::RSA_PSS_SHA256 } else { &sig::RSA_PKCS1_SHA256 };
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &SystemRandom::new(), message, &mut out)?;
                Ok(out)
            }
            Material::Ec(pair) => Ok(pair.sign(&SystemRandom::new(), message)?.as_ref().to_vec()),
            Material::Ed(pair) => Ok(pair.try_sign(message)?.as_ref().to_vec()),
        }
    }

    /// Checks a signature made with this key's own algorithm.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &'static dyn VerificationAlgorithm = match self.alg {
            DevAlg::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            DevAlg::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            DevAlg::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            DevAlg::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            DevAlg::EdDSA => &sig::ED25519,
        };
        UnparsedPublicKey::new(algorithm, &self.public_raw).verify(message, signature).is_ok()
    }
}

struct KeyEntry {
    key: Arc<DevKey>,
    served: bool,
}

/// All keys the issuer ever made; some served in the JWKS, one signer per algorithm.
#[derive(Default)]
pub(crate) struct KeyStore {
    keys: Vec<KeyEntry>,
    signers: HashMap<DevAlg, Arc<DevKey>>,
}

impl KeyStore {
    /// Adds a key; it is served, and becomes the signer for its algorithm if `signer`.
    pub(crate) fn insert(&mut self, key: DevKey, signer: bool) -> Arc<DevKey> {
        let key = Arc::new(key);
        if signer {
            self.signers.insert(key.alg, Arc::clone(&key));
        }
        self.keys.push(KeyEntry { key: Arc::clone(&key), served: true });
        key
    }

    /// The current signer for `alg`, if one was made.
    pub(crate) fn signer(&self, alg: DevAlg) -> Option<Arc<DevKey>> {
        self.signers.get(&alg).cloned()
    }

    /// Any key ever made with this `kid`, served or not.
    pub(crate) fn any(&self, kid: &str) -> Option<Arc<DevKey>> {
        self.keys.iter().find(|e| e.key.kid == kid).map(|e| Arc::clone(&e.key))
    }

    /// A key with this `kid` that is currently served.
    pub(crate) fn served(&self, kid: &str) -> Option<Arc<DevKey>> {
        self.keys.iter().find(|e| e.served && e.key.kid == kid).map(|e| Arc::clone(&e.key))
    }

    /// Stops serving `kid`. Returns whether it was served.
    pub(crate) fn remove(&mut self, kid: &str) -> bool {
        let mut removed = false;
        for entry in &mut self.keys {
            if entry.served && entry.key.kid == kid {
                entry.served = false;
                removed = true;
            }
        }
        removed
    }

    /// The JWKS document: every served key's public JWK, oldest first.
    pub(crate) fn jwks(&self) -> Value {
        self.jwks_of(|_| true)
    }

    /// The JWKS document of the served keys of the algorithms `keep` accepts.
    pub(crate) fn jwks_of(&self, keep: impl Fn(DevAlg) -> bool) -> Value {
        let keys: Vec<Value> =
            self.keys.iter().filter(|e| e.served && keep(e.key.alg)).map(|e| e.key.jwk.clone()).collect();
        json!({ "keys": keys })
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}
