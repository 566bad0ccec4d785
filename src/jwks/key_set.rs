//! Parsing a JWKS document into verification keys, with the filtering rules of
//! RFC 8725: only asymmetric signature keys, one algorithm per key, allow-listed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;

use super::public_key::PublicKey;
use super::Algorithm;
use crate::error::{AuthError, AuthErrorKind};

/// One verification key, its algorithm pinned when the set was loaded and its
/// public key parsed then (never per verification).
pub(crate) struct VerifyingKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: PublicKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// An immutable snapshot of the usable keys. Swapped whole on refresh, so readers
/// never lock.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<Box<str>, Arc<VerifyingKey>>,
    without_kid: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    /// The key for a token header. A token without `kid` is accepted only when the
    /// set holds exactly one key without `kid` for its algorithm (no key guessing).
    pub(crate) fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<&Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => {
                let mut matching = self.without_kid.iter().filter(|k| k.algorithm == algorithm);
                match (matching.next(), matching.next()) {
                    (Some(key), None) => Some(key),
                    _ => None,
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    #[cfg(test)]
    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(AsRef::as_ref)
    }

    /// Parses a JWKS document. Keys that are unusable or not allowed are skipped
    /// (with a debug log), so one exotic key never takes down the whole set; a
    /// document that is not a JWKS at all is an error.
    pub(crate) fn parse(body: &[u8], allowed: &[Algorithm], max_keys: usize) -> Result<Self, AuthError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(body).map_err(|_| {
            AuthError::with_detail(AuthErrorKind::KeySetUnavailable, "the key set is not a JWKS document")
        })?;
        if document.keys.len() > max_keys {
            return Err(AuthError::with_detail(
                AuthErrorKind::KeySetUnavailable,
                format!("the key set has {} keys, more than the limit of {max_keys}", document.keys.len()),
            ));
        }
        let mut set = KeySet::default();
        let mut with_kid: Vec<(String, Arc<VerifyingKey>)> = Vec::new();
        for value in document.keys {
            let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
                tracing::debug!("skipping a JWK that does not parse");
                continue;
            };
            let kid = jwk.kid.clone();
            match jwk.into_key(allowed) {
                Ok(key) => match kid {
                    Some(kid) => with_kid.push((kid, Arc::new(key))),
                    None => set.without_kid.push(Arc::new(key)),
                },
                Err(reason) => tracing::debug!(kid = kid.as_deref(), reason, "skipping JWK"),
            }
        }
        // A kid shared by two or more usable keys does not say which key signed: use
        // none of them, however many copies there are. Counted over usable keys only,
        // as RFC 7517 section 4.5 lets keys of different types (e.g. an encryption key,
        // never used here) share a kid.
        let mut copies: HashMap<Box<str>, usize> = HashMap::with_capacity(with_kid.len());
        for (kid, _) in &with_kid {
            *copies.entry(Box::from(kid.as_str())).or_default() += 1;
        }
        for (kid, key) in with_kid {
            if copies.get(kid.as_str()).is_some_and(|&n| n == 1) {
                set.by_kid.insert(kid.into_boxed_str(), key);
            }
        }
        for (kid, n) in copies.iter().filter(|&(_, &n)| n > 1) {
            tracing::warn!(kid = &**kid, copies = n, "kid used by several keys in the key set; ignoring that kid");
        }
        Ok(set)
    }
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    /// Private parts must never be published; a set that does is misconfigured.
    d: Option<serde::de::IgnoredAny>,
}

/// RSA keys below 2048 bits are refused (NIST SP 800-131A).
const MIN_RSA_MODULUS_BITS: usize = 2048;

/// The size of a big-endian unsigned integer in bits: leading zero bytes (a DER-style
/// sign byte) and the leading zero bits of the first significant byte do not count.
fn bit_length(big_endian: &[u8]) -> usize {
    let significant = big_endian.iter().position(|&b| b != 0).map_or(&[][..], |at| &big_endian[at..]);
    match significant.first() {
        None => 0,
        Some(&first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

impl RawJwk {
    fn into_key(self, allowed: &[Algorithm]) -> Result<VerifyingKey, &'static str> {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return Err("not a signature key");
        }
        if self.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|op| op == "verify")) {
            return Err("key_ops does not allow verify");
        }
        if self.d.is_some() {
            return Err("private key material published");
        }
        let algorithm = match (self.kty.as_str(), self.alg.as_deref(), self.crv.as_deref()) {
            ("RSA", None, _) => Algorithm::RS256,
            ("RSA", Some(alg @ ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512")), _) => parse_alg(alg)?,
            ("EC", None | Some("ES256"), Some("P-256")) => Algorithm::ES256,
            ("EC", None | Some("ES384"), Some("P-384")) => Algorithm::ES384,
            ("OKP", None | Some("EdDSA" | "Ed25519"), Some("Ed25519")) => Algorithm::EdDSA,
            ("oct", _, _) => return Err("symmetric keys are never accepted from a key set"),
            _ => return Err("unsupported key type, curve or algorithm"),
        };
        if !allowed.contains(&algorithm) {
            return Err("algorithm not allowed");
        }
        // Strict unpadded base64url, as RFC 7518 §6 requires of every member.
        let decode = |member: &str, what: &'static str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(member).map_err(|_| what)
        };
        let key = match self.kty.as_str() {
            "RSA" => {
                let (Some(n), Some(e)) = (&self.n, &self.e) else { return Err("RSA key without n/e") };
                let modulus = decode(n, "RSA modulus is not base64url")?;
                if bit_length(&modulus) < MIN_RSA_MODULUS_BITS {
                    return Err("RSA key shorter than 2048 bits");
                }
                let exponent = decode(e, "RSA exponent is not base64url")?;
                PublicKey::rsa(algorithm, &modulus, &exponent)?
            }
            "EC" => {
                let (Some(x), Some(y)) = (&self.x, &self.y) else { return Err("EC key without x/y") };
                PublicKey::ec(algorithm, &decode(x, "invalid EC key")?, &decode(y, "invalid EC key")?)?
            }
            _ => {
                let Some(x) = &self.x else { return Err("OKP key without x") };
                PublicKey::ed25519(&decode(x, "invalid OKP key")?)?
            }
        };
        Ok(VerifyingKey { algorithm, key })
    }
}

fn parse_alg(name: &str) -> Result<Algorithm, &'static str> {
    name.parse().map_err(|_| "unknown algorithm")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    #[test]
    fn filters_keys() {
        let body = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "use": "enc", "kid": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "good",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "alg": "RS256", "kid": "mismatch",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "short"},
            "not an object"
        ]});
        let set = KeySet::parse(body.to_string().as_bytes(), ALL, 10).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), ["good"]);
        assert_eq!(set.find(Some("good"), Algorithm::ES256).unwrap().algorithm, Algorithm::ES256);
        assert!(set.find(Some("hmac"), Algorithm::HS256).is_none());
    }

    #[test]
    fn counts_rsa_modulus_bits() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        let mut n = vec![0xff; 256];
        assert_eq!(bit_length(&n), 2048);
        n[0] = 0x01;
        assert_eq!(bit_length(&n), 2041);
        n.insert(0, 0);
        assert_eq!(bit_length(&n), 2041, "a leading zero byte is not part of the size");
    }

    #[test]
    fn rejects_non_jwks_and_oversized_sets() {
        assert_eq!(KeySet::parse(b"<html>", ALL, 10).unwrap_err().kind(), AuthErrorKind::KeySetUnavailable);
        let many = serde_json::json!({"keys": vec![serde_json::json!({"kty": "oct"}); 11]});
        assert_eq!(
            KeySet::parse(many.to_string().as_bytes(), ALL, 10).unwrap_err().kind(),
            AuthErrorKind::KeySetUnavailable
        );
    }
}

/// Every algorithm verifies through the key parsed at load time, and only through
/// the key and algorithm it was loaded for.
#[cfg(test)]
mod parsed_key_tests {
    use super::*;
    use tower_stepup_dev_issuer::{DevAlg, DevIssuer, DevIssuerConfig};

    const ALGS: [(DevAlg, Algorithm); 5] = [
        (DevAlg::RS256, Algorithm::RS256),
        (DevAlg::PS256, Algorithm::PS256),
        (DevAlg::ES256, Algorithm::ES256),
        (DevAlg::ES384, Algorithm::ES384),
        (DevAlg::EdDSA, Algorithm::EdDSA),
    ];

    #[tokio::test]
    async fn each_algorithm_verifies_with_its_parsed_key_only() {
        let dev_algs: Vec<DevAlg> = ALGS.iter().map(|(dev, _)| *dev).collect();
        let issuer = DevIssuer::start_with(DevIssuerConfig::default().with_algs(&dev_algs)).await.unwrap();
        let body = reqwest::get(issuer.jwks_url()).await.unwrap().bytes().await.unwrap();
        let allowed: Vec<Algorithm> = ALGS.iter().map(|(_, alg)| *alg).collect();
        let set = KeySet::parse(&body, &allowed, 50).unwrap();
        let claims = serde_json::json!({"sub": "u"});
        for (dev, alg) in ALGS {
            let kid = issuer.current_kid(dev);
            let key = set.find(Some(&kid), alg).unwrap_or_else(|| panic!("{alg} key loaded"));
            assert_eq!(key.algorithm, alg);
            let token = issuer.sign_raw(serde_json::json!({"alg": alg.as_str(), "kid": kid}), &claims, &kid);
            let (signed, signature) = token.rsplit_once('.').unwrap();
            assert!(key.key.verify(signed.as_bytes(), signature), "{alg}: a good signature verifies");
            // One changed message byte, or a signature from another key, does not.
            let mut other = signed.to_owned();
            other.push('A');
            assert!(!key.key.verify(other.as_bytes(), signature), "{alg}: another message");
            assert!(!key.key.verify(signed.as_bytes(), "AAAA"), "{alg}: garbage signature");
            assert!(!key.key.verify(signed.as_bytes(), "not base64!"), "{alg}: not base64url");
            for (other_dev, other_alg) in ALGS.into_iter().filter(|(_, a)| *a != alg) {
                let other_kid = issuer.current_kid(other_dev);
                let other_token = issuer.sign_raw(serde_json::json!({"alg": other_alg.as_str()}), &claims, &other_kid);
                let (other_signed, other_signature) = other_token.rsplit_once('.').unwrap();
                assert!(!key.key.verify(other_signed.as_bytes(), other_signature), "{alg} key, {other_alg} token");
            }
        }
        // An RSA modulus written with a leading zero byte (a DER habit) is the same key.
        let mut document: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rs_kid = issuer.current_kid(DevAlg::RS256);
        for jwk in document["keys"].as_array_mut().unwrap() {
            if jwk["kid"] == rs_kid.as_str() {
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
                let padded = [&[0u8][..], &n].concat();
                jwk["n"] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(padded).into();
            }
        }
        let set = KeySet::parse(document.to_string().as_bytes(), &allowed, 50).unwrap();
        let token = issuer.sign_raw(serde_json::json!({"alg": "RS256"}), &claims, &rs_kid);
        let (signed, signature) = token.rsplit_once('.').unwrap();
        assert!(set.find(Some(&rs_kid), Algorithm::RS256).unwrap().key.verify(signed.as_bytes(), signature));
        issuer.shutdown();
    }

    /// A JWK whose point is not on its curve or has the wrong size is refused when
    /// the set loads, not at each verification.
    #[test]
    fn invalid_keys_are_refused_at_load() {
        let body = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "off-curve",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FFzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "short",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvR", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-short", "x": "AAAA"},
        ]});
        let all = [Algorithm::ES256, Algorithm::EdDSA];
        let set = KeySet::parse(body.to_string().as_bytes(), &all, 10).unwrap();
        #[cfg(feature = "aws-lc-rs")]
        assert_eq!(set.kids().count(), 0, "every key refused at load");
        let _ = set;
    }
}
